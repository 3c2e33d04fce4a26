// Package procs changes GOMAXPROCS by a delta, atomically with respect to
// the other changes made through it.
//
// A low-priority thread (a query, the index catch-up) keeps its scheduler P
// while the kernel makes it wait for the CPU, so whoever starts one adds a
// P for as long as it runs: the capture's goroutines then never go without
// one. Reading GOMAXPROCS and setting it again is a race between two such
// callers; Add serialises them.
package procs

import (
	"runtime"
	"sync"
)

var mu sync.Mutex

// Add changes GOMAXPROCS by n (at least 1 remains) and returns the new
// value.
func Add(n int) int {
	mu.Lock()
	defer mu.Unlock()
	p := max(1, runtime.GOMAXPROCS(0)+n)
	runtime.GOMAXPROCS(p)
	return p
}
