package procs

import (
	"runtime"
	"sync"
	"testing"
)

// Concurrent adds and removals leave GOMAXPROCS where it was.
func TestAddConcurrent(t *testing.T) {
	start := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			Add(1)
			Add(-1)
		}()
	}
	wg.Wait()
	if got := runtime.GOMAXPROCS(0); got != start {
		t.Fatalf("GOMAXPROCS %d after balanced adds, want %d", got, start)
	}
	if got := Add(-(start + 5)); got != 1 {
		t.Errorf("removing more than there are: got %d, want 1", got)
	}
	runtime.GOMAXPROCS(start)
}
