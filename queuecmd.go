package main

import (
	"fmt"
	"io"
)

// queueCommand runs "edgerelay queue ..." (skeleton: issue 13 replaces it).
func queueCommand(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "edgerelay queue: not built yet")
	return 1
}
