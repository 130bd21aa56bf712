package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/edgerelay/edgerelay/internal/admin"
)

// httpCall runs req against /admin/ of the edgerelay at base (edgerelay
// queue --url), with the bearer token read from tokenFile.
func httpCall(ctx context.Context, base, tokenFile string, req admin.Request, body io.Writer) (*admin.Response, error) {
	if tokenFile == "" {
		return nil, fmt.Errorf("--url needs --token-file (the file holding RELAY_ADMIN_TOKEN)")
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	method, path := http.MethodGet, "/admin/queue"
	switch req.Op {
	case admin.OpShow:
		path += "/" + req.ID
	case admin.OpBody:
		path += "/" + req.ID + "/body"
	case admin.OpRetryAll:
		method, path = http.MethodPost, path+"/retry-all"
	case admin.OpDelete:
		method, path = http.MethodDelete, path+"/"+req.ID
	case admin.OpRetry, admin.OpHold, admin.OpRelease, admin.OpBounce:
		method, path = http.MethodPost, path+"/"+req.ID+"/"+req.Op
	}
	hr, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	hr.Header.Set("Authorization", "Bearer "+strings.TrimRight(string(tok), "\r\n"))
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK && req.Op == admin.OpBody {
		if _, err := io.Copy(body, res.Body); err != nil {
			return nil, fmt.Errorf("reading the message: %w", err)
		}
		return &admin.Response{V: admin.Version, OK: true}, nil
	}
	var resp admin.Response
	if err := json.NewDecoder(io.LimitReader(res.Body, admin.MaxResponseLine)).Decode(&resp); err != nil || resp.V == 0 {
		return nil, fmt.Errorf("%s %s: %s (not an edgerelay admin answer)", method, path, res.Status)
	}
	return &resp, nil
}
