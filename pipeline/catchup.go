package pipeline

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tapvault/block"
	"tapvault/index"
	"tapvault/internal/procs"
	"tapvault/writer"
)

// background is the index catch-up of a live capture (not Lossless): it
// indexes the blocks committed while nobody indexed them (a crash, a stop
// that left blocks to the next start, an index rebuilt from scratch) beside
// the capture, on a low-priority thread, instead of delaying its start: a
// live port loses the packets that arrive before the workers run. Until it
// is done the index's watermark stays where it was, so queries find the
// blocks after it by their headers (query.Store.plan).
//
// It indexes only the blocks committed before this run (refs below until,
// the first segment the writer can open): this run's blocks are the
// commit hook's. A stop interrupts it; what it did not index stays past
// the watermark, or a hole, for the next start's catch-up.
type background struct {
	until writer.Ref // this run's blocks are at or after it

	stop     chan struct{} // closed to interrupt
	stopOnce sync.Once
	done     chan struct{} // closed once it has returned; err is set
	err      error

	started atomic.Bool
	total   atomic.Int64 // blocks to index, counted before it starts; -1 until then
	indexed atomic.Int64 // blocks indexed so far
}

// errCatchUpStopped ends a background catch-up that a stop interrupted.
var errCatchUpStopped = errors.New("interrupted by the stop")

// errWalkEnd ends a walk at the first block of this run.
var errWalkEnd = errors.New("end of the blocks before this run")

// catchUpStep, if set (tests), is called after each block the background
// catch-up indexes, with its count so far, on the catch-up's thread.
var catchUpStep func(n int64)

// newBackground prepares the background catch-up of a store whose writer
// has recovered and not written yet.
func newBackground(dir string) (*background, error) {
	r, err := writer.OpenReader(dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	segs, err := r.Segments()
	if err != nil {
		return nil, err
	}
	var last uint32
	if n := len(segs); n > 0 {
		last = segs[n-1].Number
	}
	// The writer opens a segment numbered past every one listed (and past
	// the commit marker's) for its first block.
	b := &background{until: writer.MakeRef(last+1, 0), stop: make(chan struct{}), done: make(chan struct{})}
	b.total.Store(-1)
	return b, nil
}

// interrupt asks the catch-up to stop; it returns after the block it is on.
func (b *background) interrupt() { b.stopOnce.Do(func() { close(b.stop) }) }

func (b *background) stopped() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// start runs the catch-up on a thread of its own at the lowest priority.
func (b *background) start(ix *index.Index, opts Options) {
	b.started.Store(true)
	// A descheduled low-priority thread keeps its scheduler P while it
	// waits for the CPU (internal/procs says why): one more P
	// while it runs, so the capture's goroutines never go without.
	procs.Add(1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread dies with the goroutine, so its
		// priority never passes to other goroutines.
		defer func() {
			procs.Add(-1)
			close(b.done)
		}()
		lowerPriority(opts)
		b.err = b.run(ix, opts)
	}()
}

// wait waits for the catch-up to return (at once if it never started), or
// until by when it is not zero: a stop interrupts the catch-up between
// blocks, but a group write in progress may stall on the disk, and the
// stop's deadline (CloseBy) must still hold. ok says whether it returned.
func (b *background) wait(by time.Time) (ok bool, err error) {
	if !b.started.Load() {
		return true, nil
	}
	if by.IsZero() {
		<-b.done
		return true, b.err
	}
	t := time.NewTimer(time.Until(by))
	defer t.Stop()
	select {
	case <-b.done:
		return true, b.err
	case <-t.C:
		return false, nil
	}
}

func (b *background) run(ix *index.Index, opts Options) error {
	r, err := writer.OpenReader(opts.Dir, writer.WithReaderLogger(opts.Logger))
	if err != nil {
		return err
	}
	defer r.Close()
	t0 := time.Now()
	from := ix.CatchUpFrom()
	// The count reads block headers only; the catch-up reads summaries.
	total, err := b.count(r, from)
	if err != nil {
		if errors.Is(err, errCatchUpStopped) {
			opts.Logger.Info("index: background catch-up stopped before it began; the next start does it")
			return nil
		}
		return err
	}
	b.total.Store(total)
	opts.Logger.Info("index: catching up with the segments in the background, capture runs meanwhile (blocks after the watermark are found by header scan until it ends)",
		"blocks", total, "from", from)
	err = ix.CatchUp(func(from writer.Ref, fn func(writer.BlockMeta, *block.Summary) error) error {
		err := r.WalkSummaries(from, func(m writer.BlockMeta, sum *block.Summary) error {
			if m.Ref >= b.until {
				return errWalkEnd
			}
			if b.stopped() {
				return errCatchUpStopped
			}
			if err := fn(m, sum); err != nil {
				return err
			}
			n := b.indexed.Add(1)
			if catchUpStep != nil {
				catchUpStep(n)
			}
			return nil
		})
		if errors.Is(err, errWalkEnd) {
			return nil
		}
		return err
	})
	took := time.Since(t0).Round(time.Millisecond)
	switch {
	case errors.Is(err, errCatchUpStopped):
		opts.Logger.Warn("index: background catch-up interrupted by the stop; the next start indexes the rest (queries find it by header scan meanwhile)",
			"blocks_indexed", b.indexed.Load(), "blocks_left", total-b.indexed.Load(), "took", took)
		return nil
	case err != nil:
		return fmt.Errorf("background index catch-up: %w", err)
	}
	opts.Logger.Info("index: background catch-up done", "blocks", b.indexed.Load(), "took", took)
	return nil
}

// count counts the blocks of the store in [from, until).
func (b *background) count(r *writer.Reader, from writer.Ref) (int64, error) {
	segs, err := r.Segments()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range segs {
		if s.Number < from.Segment() || s.Number >= b.until.Segment() {
			continue
		}
		if b.stopped() {
			return n, errCatchUpStopped
		}
		err := r.ScanSegment(s.Number, func(m writer.BlockMeta) error {
			if m.Ref >= from && m.Ref < b.until {
				n++
			}
			return nil
		})
		var ce *writer.CorruptionError
		switch {
		case err == nil, errors.Is(err, writer.ErrSegmentGone), errors.As(err, &ce):
			// Gone since listed (retention), or counted up to the damage.
		case errors.Is(err, os.ErrNotExist):
		default:
			return n, err
		}
	}
	return n, nil
}

// lowerPriority gives the calling OS thread the lowest CPU priority (nice
// 19) and the idle I/O class, as queries have (query.QueryNice): the
// catch-up gets what capture leaves. Failing that it runs at normal
// priority, with a warning.
func lowerPriority(opts Options) {
	tid := syscall.Gettid()
	err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19)
	const ioprioWhoProcess, ioprioClassIdle = 1, 3
	if _, _, e := syscall.Syscall(syscall.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioClassIdle<<13); e != 0 && err == nil {
		err = e
	}
	if err != nil {
		opts.Logger.Warn("index: background catch-up runs at normal priority", "err", err)
	}
}
