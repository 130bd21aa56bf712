package main

import (
	"net/http"
	"net/http/pprof"
	"runtime"
)

// mountPprof serves Go's profiler on mux (RELAY_PPROF): the index and
// named profiles (heap, goroutine, block, mutex, allocs, …), a CPU profile
// (?seconds=N, below the HTTP write timeout) and an execution trace. It is
// for measuring (docs/benchmarks.md), off by default.
//
// It also turns on the block and mutex profiles, which cost a little on
// every contended lock and blocking wait, and are empty otherwise: a
// blocking event is sampled about once per blockProfileRate of time spent
// blocked, one contended lock in mutexProfileFraction.
func mountPprof(mux *http.ServeMux) {
	runtime.SetBlockProfileRate(blockProfileRate)
	runtime.SetMutexProfileFraction(mutexProfileFraction)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

const (
	blockProfileRate     = 100_000 // ns: 0.1 ms
	mutexProfileFraction = 10
)
