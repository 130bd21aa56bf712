package main

import (
	"net/http"
	"net/http/pprof"
)

// mountPprof serves Go's profiler on mux (RELAY_PPROF): the index and
// named profiles (heap, goroutine, block, mutex, allocs, …), a CPU profile
// (?seconds=N, below the HTTP write timeout) and an execution trace. It is
// for measuring (docs/benchmarks.md), off by default.
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
