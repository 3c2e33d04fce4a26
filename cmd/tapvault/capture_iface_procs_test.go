package main

import (
	"runtime"
	"testing"
)

// capture --iface takes one P per worker unless GOMAXPROCS is set.
func TestEndpointProcs(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)

	t.Setenv("GOMAXPROCS", "")
	for _, c := range []struct{ workers, want int }{{1, 1}, {0, 1}, {runtime.NumCPU() + 5, runtime.NumCPU()}} {
		if got := endpointProcs(c.workers); got != c.want || runtime.GOMAXPROCS(0) != c.want {
			t.Errorf("workers %d: got %d (GOMAXPROCS %d), want %d", c.workers, got, runtime.GOMAXPROCS(0), c.want)
		}
	}
	// The environment wins: the runtime read it at start, capture leaves it.
	t.Setenv("GOMAXPROCS", "3")
	runtime.GOMAXPROCS(3)
	if got := endpointProcs(1); got != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("GOMAXPROCS=3 in the environment: got %d (GOMAXPROCS %d), want 3 kept", got, runtime.GOMAXPROCS(0))
	}
}
