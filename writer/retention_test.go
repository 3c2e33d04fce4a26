package writer

import (
	"errors"
	"os"
	"path/filepath"
	"tapvault/block"
	"testing"
	"time"
)

func TestDropSegment(t *testing.T) {
	dir := t.TempDir()
	pool := block.NewPool(4, 8<<10, 16)
	_, metas := storeBlocks(t, Options{Dir: dir, SegmentSize: 3 * (8 << 10), QueueLen: 4}, pool, 12, 8<<10,
		func(int) int { return payloadRandom })
	last := metas[len(metas)-1].Ref.Segment()
	if last < 4 {
		t.Fatalf("got %d segments, want at least 4", last)
	}
	bySeg := map[uint32][]BlockMeta{}
	for _, m := range metas {
		bySeg[m.Ref.Segment()] = append(bySeg[m.Ref.Segment()], m)
	}

	// A long-lived reader that has segment 1 open already.
	old, err := OpenReader(dir, WithReaderLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	var buf BlockBuf
	if _, err := old.ReadBlock(bySeg[1][0].Ref, &buf); err != nil {
		t.Fatal(err)
	}
	// Spans, before anything goes.
	segs, err := old.Segments()
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range segs {
		sp, err := old.Span(si)
		if err != nil {
			t.Fatal(err)
		}
		ms := bySeg[si.Number]
		var pkts uint64
		for _, m := range ms {
			pkts += uint64(m.Count)
		}
		if sp.Packets != pkts {
			t.Fatalf("span of segment %d: got %d packets, want %d", si.Number, sp.Packets, pkts)
		}
		if sp.Blocks != len(ms) || sp.MinTS != ms[0].MinTS || sp.MaxTS != ms[len(ms)-1].MaxTS {
			t.Fatalf("span of segment %d: got %d blocks [%d, %d], want %d [%d, %d]",
				si.Number, sp.Blocks, sp.MinTS, sp.MaxTS, len(ms), ms[0].MinTS, ms[len(ms)-1].MaxTS)
		}
	}

	w, err := Open(Options{Dir: dir, SegmentSize: 3 * (8 << 10), QueueLen: 4, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	// The newest segment stays, even with no segment open.
	if err := w.DropSegment(last); !errors.Is(err, ErrLiveSegment) {
		t.Fatalf("drop newest segment %d: got %v, want ErrLiveSegment", last, err)
	}
	for _, n := range []uint32{1, 2} {
		if err := w.DropSegment(n); err != nil {
			t.Fatalf("drop segment %d: %v", n, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "segments", segmentName(n))); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("segment %d after drop: got stat error %v, want not exist", n, err)
		}
	}
	if err := w.DropSegment(1); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("drop segment 1 twice: got %v, want ErrNotExist", err)
	}

	// A block appended now opens a new segment: that one is live.
	b := getBlock(t, pool)
	fillBlock(b, 100, 8<<10, payloadText)
	if !w.Submit(b) {
		t.Fatal("Submit: got false, want true")
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().BlocksCommitted < 1 {
		if time.Now().After(deadline) {
			t.Fatal("block not committed within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	if cur := w.Stats().Segment; cur != last+1 {
		t.Fatalf("segment being written: got %d, want %d", cur, last+1)
	}
	if err := w.DropSegment(last + 1); !errors.Is(err, ErrLiveSegment) {
		t.Fatalf("drop segment being written: got %v, want ErrLiveSegment", err)
	}
	// The previous newest is sealed now.
	if err := w.DropSegment(last); err != nil {
		t.Fatalf("drop sealed segment %d: %v", last, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// The old reader still had segment 1 open; listing lets it go, and
	// from then on its blocks are gone, not corrupt.
	if _, err := old.Segments(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint32{1, 2, last} {
		_, err := old.ReadBlock(bySeg[n][0].Ref, &buf)
		var ce *CorruptionError
		if !errors.Is(err, ErrSegmentGone) || errors.As(err, &ce) {
			t.Fatalf("read block of dropped segment %d: got %v, want ErrSegmentGone", n, err)
		}
		if err := old.ScanSegment(n, func(BlockMeta) error { return nil }); !errors.Is(err, ErrSegmentGone) {
			t.Fatalf("scan dropped segment %d: got %v, want ErrSegmentGone", n, err)
		}
	}
	if _, err := old.ReadBlock(bySeg[3][0].Ref, &buf); err != nil {
		t.Fatalf("read block of kept segment 3: %v", err)
	}
	if _, err := old.Span(SegmentInfo{Number: 1, Path: filepath.Join(dir, "segments", segmentName(1))}); !errors.Is(err, ErrSegmentGone) {
		t.Fatalf("span of dropped segment: got %v, want ErrSegmentGone", err)
	}
	var walked int
	if err := old.WalkSummaries(0, func(m BlockMeta, _ *block.Summary) error {
		if s := m.Ref.Segment(); s == 1 || s == 2 || s == last {
			t.Fatalf("walk: got block %v of a dropped segment", m.Ref)
		}
		walked++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := len(metas) - len(bySeg[1]) - len(bySeg[2]) - len(bySeg[last]) + 1; walked != want {
		t.Fatalf("walk: got %d blocks, want %d", walked, want)
	}
	rep, err := Verify(dir, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("Verify after drops: got %+v, %v, want OK", rep, err)
	}
}
