package main

import (
	"fmt"
	"io"
)

// configCommand runs "edgerelay config [--json]" (skeleton: issue 13
// replaces it).
func configCommand(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "edgerelay config: not built yet")
	return 1
}
