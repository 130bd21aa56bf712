//go:build !unix

package admin

import "errors"

func lockFile(string) (func() error, error) {
	return nil, errors.New("the admin socket needs a Unix system")
}
