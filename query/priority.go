package query

import (
	"runtime"
	"sync/atomic"
	"syscall"

	"tapvault/internal/procs"
	"tapvault/msgquery"
)

// QueryNice is the nice value query threads run at: the lowest priority, so
// that the kernel gives capture (workers, compressors, writer) the CPU first
// and queries what is left (DESIGN-NOTES: reads must not starve capture).
// Query threads are also in the idle I/O class.
const QueryNice = 19

// lowPriorityFailed is set once setting the priority has failed, so the
// warning is not repeated.
var lowPriorityFailed atomic.Bool

// protect, when set, says whether there is capture to protect now; query
// threads run at QueryNice only when it says so (SetProtectCapture).
var protect atomic.Pointer[func() bool]

// SetProtectCapture sets the test RunLowPriority asks before it lowers a
// query thread's priority: the low priority exists to keep capture's CPU
// and disk first, so where no capture runs (tapvault serve on a store no
// capture writes) queries need not yield to everything else on the
// machine, a browser on the same host included. nil (the default, and
// what tapvault capture keeps) lowers every query thread. The test is
// asked once per query thread, when it starts: a capture that starts
// meanwhile has the CPU first from the next query on.
func SetProtectCapture(f func() bool) {
	if f == nil {
		protect.Store(nil)
		return
	}
	protect.Store(&f)
}

// lowPriority reports whether a query thread starting now should yield to
// capture.
func lowPriority() bool {
	f := protect.Load()
	return f == nil || (*f)()
}

// RunLowPriority runs fn on a fresh OS thread whose nice value is QueryNice
// and waits for it. The goroutine exits still locked to that thread, so Go
// discards the thread and its priority never leaks to other goroutines.
//
// A descheduled low-priority thread keeps its scheduler P while it waits for
// the CPU, so GOMAXPROCS is one higher while fn runs (internal/procs): the
// capture's goroutines always have Ps of their own. (It was raised by the
// query concurrency for the process's life before; idle Ps cost an endpoint
// sensor wake-ups: 1.4 % of a core idle with the API on against 0.95 %
// without, docs/PERFORMANCE.md "Issue 16".)
//
// Where there is no capture to yield to (SetProtectCapture), fn runs on the
// caller's goroutine, with neither a thread nor a P of its own.
func RunLowPriority(fn func()) {
	if !lowPriority() {
		// No capture to yield to (SetProtectCapture): fn runs here, an
		// ordinary goroutine with no P of its own. A P added for each of
		// a scan's goroutines made GOMAXPROCS 7 on 2 CPUs, and the
		// scheduler's preemption of the extra threads 6 % of a
		// diagnosis's CPU (profiled).
		fn()
		return
	}
	procs.Add(1)
	defer procs.Add(-1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lowPriorityThread(fn)
	}()
	<-done
}

func init() {
	// msgquery's parallel work (a diagnosis's servers, an Aggregator's
	// groups) runs as the query that calls it does.
	msgquery.Spawn = goLowPriority
}

// goLowPriority starts fn as RunLowPriority runs it, without waiting for
// it: a parallel scan's producer and workers (msgstore.Query.Spawn).
func goLowPriority(fn func()) {
	if !lowPriority() {
		go fn()
		return
	}
	procs.Add(1)
	go func() {
		defer procs.Add(-1)
		lowPriorityThread(fn)
	}()
}

// lowPriorityThread locks the calling goroutine to its thread, lowers the
// thread's CPU and I/O priority, and runs fn. The caller's goroutine must
// end after it, so that Go discards the thread. (Where there is no capture
// to yield to, RunLowPriority and goLowPriority run fn on an ordinary
// goroutine instead: locked to threads of their own, a scan's producer,
// workers and consumer handed each frame over with a futex wake-up, a
// third of a latency series' CPU in the scheduler, profiled.)
func lowPriorityThread(fn func()) {
	runtime.LockOSThread()
	// No UnlockOSThread: the thread dies with the goroutine.
	tid := syscall.Gettid()
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, QueryNice); err != nil {
		lowPriorityFailed.Store(true)
	}
	// Idle I/O class: the query's reads wait for the disk to have
	// nothing else to do, so they never delay the writer's appends
	// and fsyncs (CFQ/BFQ honour it; other schedulers may not).
	const ioprioWhoProcess, ioprioClassIdle = 1, 3
	if _, _, e := syscall.Syscall(syscall.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioClassIdle<<13); e != 0 {
		lowPriorityFailed.Store(true)
	}
	fn()
}

// scanWorkers is how many goroutines decode message frames for one scan
// (msgstore.Query.Workers): reading the records is most of a full scan's
// work, and it spreads over cores. At most 4: past that the one goroutine
// that runs the query's own work on the records is the limit.
func scanWorkers() int { return min(runtime.NumCPU(), 4) }

// ReserveQueryProcs raises GOMAXPROCS by n for the process's life and
// returns the new value: for a benchmark's load of threads that are not
// started through RunLowPriority. Queries need not call it: RunLowPriority
// adds a P while it runs.
func ReserveQueryProcs(n int) int { return procs.Add(n) }
