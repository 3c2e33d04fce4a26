package query

import (
	"runtime"
	"syscall"
	"testing"
)

// A low-priority run has a P of its own while it runs, on a thread at
// QueryNice, and gives both back.
func TestRunLowPriority(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	var during, nice int
	var err error
	RunLowPriority(func() {
		during = runtime.GOMAXPROCS(0)
		nice, err = syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	})
	if during != before+1 {
		t.Errorf("GOMAXPROCS during the run: %d, want %d", during, before+1)
	}
	if after := runtime.GOMAXPROCS(0); after != before {
		t.Errorf("GOMAXPROCS after the run: %d, want %d back", after, before)
	}
	// getpriority(2) returns 20 - nice.
	if err != nil || 20-nice != QueryNice {
		t.Errorf("the run's thread: priority %d (%v), want nice %d", 20-nice, err, QueryNice)
	}
}

// With no capture to protect (SetProtectCapture's test says false) a query
// runs at the process's priority; when it says true, at QueryNice.
func TestSetProtectCapture(t *testing.T) {
	defer SetProtectCapture(nil)
	runtime.LockOSThread()
	own, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	for _, capturing := range []bool{false, true} {
		asked := 0
		SetProtectCapture(func() bool { asked++; return capturing })
		var nice int
		RunLowPriority(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			nice, err = syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
		})
		want := own
		if capturing {
			want = 20 - QueryNice
		}
		if err != nil || nice != want || asked != 1 {
			t.Errorf("capturing %v: priority %d (%v), want %d; the test asked %d times, want 1", capturing, nice, err, want, asked)
		}
	}
}
