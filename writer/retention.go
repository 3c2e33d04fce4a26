package writer

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"

	"tapvault/internal/durable"
)

// ErrSegmentGone says a segment was removed (by retention) after it was
// listed or planned. Readers treat a block whose segment is gone as missing:
// skipped, neither corrupt nor fatal.
var ErrSegmentGone = errors.New("segment removed")

// ErrLiveSegment is returned by DropSegment for the segment being appended
// to (or one that could become it).
var ErrLiveSegment = errors.New("segment is being written")

// DropSegment durably deletes sealed segment n: the file is unlinked and the
// segments directory fsynced. It is retention's unit of deletion: a whole
// segment, never part of one.
//
// It never races rotation, without taking any lock of the write goroutine:
// segment numbers only grow, and the writer only ever appends to its newest
// segment, so a segment is sealed for good once a higher-numbered segment
// exists. DropSegment refuses (ErrLiveSegment) the highest-numbered segment
// in the directory and the one the writer has open, so the newest segment
// always stays, even between segments or after Close.
//
// Readers that have the file open keep reading it until they let it go (the
// space is freed then); readers that open it afterwards get ErrSegmentGone.
func (w *Writer) DropSegment(n uint32) error {
	if n == 0 {
		return fmt.Errorf("drop segment %d: no such segment", n)
	}
	if cur := w.st.segment.Load(); n == cur {
		return fmt.Errorf("drop segment %d: %w", n, ErrLiveSegment)
	}
	// A segment directory gone while capturing (a disk failed) must not
	// stop retention on the others: it is skipped here (the readers log
	// it). The newest segment listed stays refused, so the writer's is
	// never taken for an old one.
	locs, err := w.dirs.list(true, func(d string, err error) {
		w.log.Debug("drop segment: segment directory unreadable, skipped", "dir", d, "err", err)
	})
	if err != nil {
		return fmt.Errorf("drop segment %d: %w", n, err)
	}
	if len(locs) == 0 || n >= locs[len(locs)-1].n {
		return fmt.Errorf("drop segment %d: %w", n, ErrLiveSegment)
	}
	i, found := slices.BinarySearchFunc(locs, n, func(l segLoc, n uint32) int { return cmp.Compare(l.n, n) })
	if !found {
		return fmt.Errorf("drop segment %d: %w", n, os.ErrNotExist)
	}
	path := locs[i].path()
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("drop segment %q: %w", path, err)
	}
	if err := durable.SyncDir(locs[i].dir); err != nil {
		return fmt.Errorf("drop segment %q: %w", path, err)
	}
	return nil
}

// SegmentSpan is a segment with the packet time its blocks cover.
type SegmentSpan struct {
	SegmentInfo
	Blocks       int
	Packets      uint64
	MinTS, MaxTS int64 // over its blocks, ns; both 0 when it has none
}

// Span reads the block headers of segment si (no payloads) and returns the
// packet time its blocks cover. The file is opened for this call only, so a
// segment dropped afterwards is not kept alive by the reader. A segment
// with a damaged header, or one removed since it was listed, has no blocks
// (and ErrSegmentGone for the latter). Like ScanSegment, it stops at the
// committed end the live writer publishes, and skips corrupt records.
func (r *Reader) Span(si SegmentInfo) (SegmentSpan, error) {
	sp := SegmentSpan{SegmentInfo: si}
	if si.Err != nil {
		return sp, nil
	}
	f, err := os.Open(si.Path)
	if errors.Is(err, os.ErrNotExist) {
		return sp, fmt.Errorf("open segment %q: %w: %w", si.Path, ErrSegmentGone, err)
	}
	if err != nil {
		return sp, fmt.Errorf("open segment %q: %w", si.Path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sp, fmt.Errorf("stat segment %q: %w", si.Path, err)
	}
	size := fi.Size()
	if mseg, msize, live := r.committed(); live {
		switch {
		case si.Number > mseg:
			size = segHeaderSize
		case si.Number == mseg:
			size = min(size, msize)
		}
	}
	wk := segWalker{f: f, path: si.Path, seg: si.Number, size: size}
	_, _, err = wk.walk(
		func(h *blockHeader, _ []byte) error {
			if sp.Blocks == 0 || h.minTS < sp.MinTS {
				sp.MinTS = h.minTS
			}
			if sp.Blocks == 0 || h.maxTS > sp.MaxTS {
				sp.MaxTS = h.maxTS
			}
			sp.Blocks++
			sp.Packets += uint64(h.count)
			return nil
		},
		func(*CorruptionError) error { return nil })
	if err != nil {
		return sp, fmt.Errorf("scan segment %q: %w", si.Path, err)
	}
	return sp, nil
}
