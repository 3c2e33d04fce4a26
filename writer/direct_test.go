package writer

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"tapvault/block"
	"testing"
	"time"
)

// skipNoDirect skips a test of the O_DIRECT path where the test's temporary
// filesystem refuses it.
func skipNoDirect(t *testing.T, io IOMode) {
	t.Helper()
	if io != IODirect {
		return
	}
	if err := probeDirect(t.TempDir()); err != nil {
		t.Skipf("no O_DIRECT on the temporary directory's filesystem: %v", err)
	}
}

var ioModes = []IOMode{IOBuffered, IODirect}

// copyStore copies a store's files as they are now, the way a kill -9
// leaves them: what the writer wrote is in the files (direct writes are on
// the device, buffered ones in the page cache), nothing more.
func copyStore(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.MkdirAll(segmentsDir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{markerName, filepath.Join("segments", segmentName(1))} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestDirectPaddedTail: with O_DIRECT a committed group ends in a page
// padded with zeros, and the segment is preallocated further (Preallocate)
// or not at all (negative). The marker names the exact committed size; a
// copy of the live store (what a kill -9 leaves) recovers by cutting only
// the zeros, keeping every committed block; Close leaves the segment
// exactly its committed size.
func TestDirectPaddedTail(t *testing.T) {
	for _, pre := range []int64{-1, 1 << 20} {
		t.Run(fmt.Sprintf("preallocate=%d", pre), func(t *testing.T) { testDirectPaddedTail(t, pre) })
	}
}

func testDirectPaddedTail(t *testing.T, pre int64) {
	skipNoDirect(t, IODirect)
	dir := t.TempDir()
	const n, size = 5, 20 << 10
	pool := block.NewPool(n, size, 16)
	var hl hookLog
	w, err := Open(Options{Dir: dir, IO: IODirect, Compressors: 1, QueueLen: n, SyncEvery: time.Millisecond,
		Preallocate: pre, CommitHook: hl.hook, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !w.Stats().Direct {
		t.Fatal("Stats.Direct: got false with IODirect")
	}
	wants := map[int64]want{}
	for i := 1; i <= n; i++ {
		b := getBlock(t, pool)
		fillBlock(b, uint64(i), size, payloadMixed)
		wants[b.MinTS] = wantOf(b)
		if !w.Submit(b) {
			t.Fatal("Submit refused")
		}
		waitFor(t, "block committed", func() bool { return w.Stats().BlocksCommitted == uint64(i) })
	}
	mark := readMarker(dir)
	path := filepath.Join(segmentsDir(dir), segmentName(1))
	live, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !mark.ok || mark.seg != 1 || mark.size%dioAlign == 0 {
		t.Fatalf("marker: got %+v, want segment 1 at an unaligned size (the test's blocks end mid-page)", mark)
	}
	want := int64(alignUp(int(mark.size))) // the last page padded
	if pre > 0 {
		want = pre // preallocated: the blocks are well inside the first step
	}
	if int64(len(live)) != want {
		t.Fatalf("live segment: got %d bytes, want %d (committed %d, preallocate %d)", len(live), want, mark.size, pre)
	}
	if tail := live[mark.size:]; !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Fatalf("live segment: the %d bytes past the committed size are not zeros", len(tail))
	}

	crashed := copyStore(t, dir)
	w2, err := Open(Options{Dir: crashed, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open after the crash copy: %v", err)
	}
	rec := w2.Recovery()
	if err := w2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(rec.Corrupt) != 0 || rec.Blocks != n || rec.Size != mark.size || rec.CutAt != mark.size || rec.BytesCut != int64(len(live))-mark.size {
		t.Fatalf("recovery: got %+v, want %d blocks, the padding [%d, %d) cut, no corruption", rec, n, mark.size, len(live))
	}

	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mark = readMarker(dir); fi.Size() != mark.size {
		t.Fatalf("closed segment: got %d bytes, want the committed size %d", fi.Size(), mark.size)
	}
	for _, d := range []string{dir, crashed} {
		rep, err := Verify(d, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.Blocks != n || rep.Segments[0].TailBytes != 0 {
			t.Fatalf("Verify %s: got OK %v, %d blocks, %d tail bytes; want true, %d, 0", d, rep.OK(), rep.Blocks, rep.Segments[0].TailBytes, n)
		}
		r, err := OpenReader(d)
		if err != nil {
			t.Fatal(err)
		}
		var buf BlockBuf
		for _, m := range hl.all() {
			checkBlock(t, r, m.Ref, wants[m.MinTS], &buf)
		}
		r.Close()
	}
}

// TestDirectRotation writes segments of a few hundred KiB with O_DIRECT:
// every block reads back, and every sealed segment is exactly as long as
// its records (Verify finds no tail and no damage).
func TestDirectRotation(t *testing.T) {
	skipNoDirect(t, IODirect)
	dir := t.TempDir()
	const n, size = 40, 96 << 10
	pool := block.NewPool(8, size, 16)
	kindOf := func(i int) int { return i % 3 }
	wants, metas := storeBlocks(t, Options{Dir: dir, IO: IODirect, SegmentSize: 700 << 10, QueueLen: 8, Compressors: 2, SyncEvery: 3 * time.Millisecond},
		pool, n, size, kindOf)
	if len(metas) != n {
		t.Fatalf("committed: got %d, want %d", len(metas), n)
	}
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf BlockBuf
	for _, m := range metas {
		checkBlock(t, r, m.Ref, wants[m.MinTS], &buf)
	}
	rep, err := Verify(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Blocks != n || len(rep.Segments) < 3 {
		t.Fatalf("Verify: got OK %v, %d blocks in %d segments; want true, %d, at least 3", rep.OK(), rep.Blocks, len(rep.Segments), n)
	}
	for _, s := range rep.Segments {
		if s.TailBytes != 0 {
			t.Fatalf("segment %+v: %d tail bytes, want 0", s, s.TailBytes)
		}
	}
}

// TestDirectFallback: the modes give what they say; where the filesystem
// refuses O_DIRECT, IOAuto writes
// buffered and IODirect fails Open; where a segment refuses it later, the
// writer goes on buffered and loses nothing.
func TestDirectFallback(t *testing.T) {
	skipNoDirect(t, IODirect)
	for _, tc := range []struct {
		io     IOMode
		direct bool
	}{{IOBuffered, false}, {IOAuto, true}, {IODirect, true}} {
		w, err := Open(Options{Dir: t.TempDir(), IO: tc.io, Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Stats().Direct; got != tc.direct {
			t.Fatalf("IO %v on a filesystem that takes O_DIRECT: Stats.Direct %v, want %v", tc.io, got, tc.direct)
		}
		w.Close()
	}
	if (Options{}).IO != IOBuffered {
		t.Fatal("the default is not IOBuffered")
	}

	refuse := func(string) error { return &os.PathError{Op: "open", Path: "probe", Err: syscall.EINVAL} }
	ops := realOps
	ops.probe = refuse
	if _, err := Open(Options{Dir: t.TempDir(), IO: IODirect, Logger: quietLog, ops: &ops}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Open with IODirect on a filesystem refusing O_DIRECT: got %v, want EINVAL", err)
	}

	for _, tc := range []struct {
		name, log string
		ops       func(*fileOps)
	}{
		{"probe", "buffered segment writes: the filesystem refuses O_DIRECT", func(o *fileOps) { o.probe = refuse }},
		{"segment", "O_DIRECT failed on a new segment: buffered writes from now on", func(o *fileOps) {
			o.probe = func(string) error { return nil }
			o.setDirect = func(*os.File) error { return syscall.EINVAL }
		}},
	} {
		t.Run("refused="+tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ops := realOps
			tc.ops(&ops)
			const n, size = 6, 32 << 10
			pool := block.NewPool(2, size, 16)
			var logs lockedBuf
			opts := Options{Dir: dir, IO: IOAuto, SegmentSize: 100 << 10, QueueLen: 2, Compressors: 1, ops: &ops,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			wants, metas := storeBlocks(t, opts, pool, n, size, func(int) int { return payloadRandom })
			if len(metas) != n {
				t.Fatalf("committed: got %d, want %d", len(metas), n)
			}
			if logs.count(tc.log) != 1 {
				t.Fatalf("log: want one line %q:\n%s", tc.log, logs.b.String())
			}
			r, err := OpenReader(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var buf BlockBuf
			for _, m := range metas {
				checkBlock(t, r, m.Ref, wants[m.MinTS], &buf)
			}
			if rep, err := Verify(dir, nil); err != nil || !rep.OK() || rep.Blocks != n {
				t.Fatalf("Verify: got %+v, %v; want %d good blocks", rep, err, n)
			}
		})
	}
}

// TestDirectWriteFails: a direct write that fails (EIO here) loses the
// blocks of its group, counted and reported by Close, and nothing else:
// the blocks committed before it and the blocks after it (in a new
// segment) read back, and no byte of the failed group stays on disk.
func TestDirectWriteFails(t *testing.T) {
	skipNoDirect(t, IODirect)
	dir := t.TempDir()
	failing := make(chan bool, 1) // holds whether writes fail
	failing <- false
	ops := realOps
	ops.writeAt = func(f *os.File, b []byte, off int64) (int, error) {
		fail := <-failing
		failing <- fail
		if fail {
			return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.EIO}
		}
		return f.WriteAt(b, off)
	}
	setFail := func(v bool) { <-failing; failing <- v }
	const size = 48 << 10
	pool := block.NewPool(2, size, 16)
	var hl hookLog
	w, err := Open(Options{Dir: dir, IO: IODirect, QueueLen: 2, Compressors: 1, SyncEvery: time.Millisecond,
		CommitHook: hl.hook, Logger: quietLog, ops: &ops})
	if err != nil {
		t.Fatal(err)
	}
	wants := map[int64]want{}
	submit := func(seed int, keep bool) {
		b := getBlock(t, pool)
		fillBlock(b, uint64(seed), size, payloadMixed)
		if keep {
			wants[b.MinTS] = wantOf(b)
		}
		if !w.Submit(b) {
			t.Fatal("Submit refused")
		}
	}
	submit(1, true)
	waitFor(t, "first block committed", func() bool { return w.Stats().BlocksCommitted == 1 })
	setFail(true)
	submit(2, false)
	waitFor(t, "second block lost", func() bool { return w.Stats().BlocksLost == 1 })
	setFail(false)
	submit(3, true)
	waitFor(t, "third block committed", func() bool { return w.Stats().BlocksCommitted == 2 })
	err = w.Close()
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close: got %v, want the lost block's EIO", err)
	}
	st := w.Stats()
	if st.BlocksLost != 1 || st.WriteErrors == 0 || st.Segments != 2 {
		t.Fatalf("stats: got %d lost, %d write errors, %d segments; want 1, >0, 2", st.BlocksLost, st.WriteErrors, st.Segments)
	}
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf BlockBuf
	for _, m := range hl.all() {
		checkBlock(t, r, m.Ref, wants[m.MinTS], &buf)
	}
	rep, err := Verify(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Blocks != 2 {
		t.Fatalf("Verify: got OK %v, %d blocks; want true, 2", rep.OK(), rep.Blocks)
	}
	for _, s := range rep.Segments {
		if s.TailBytes != 0 {
			t.Fatalf("segment %d: %d tail bytes left of the failed group, want 0", s.Number, s.TailBytes)
		}
	}
}

// TestDirectAllocFree: appending records and ending a group (its writes
// waited for, as the syncer does) allocate nothing.
func TestDirectAllocFree(t *testing.T) {
	skipNoDirect(t, IODirect)
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "seg"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := setDirect(f); err != nil {
		t.Fatal(err)
	}
	d := newDirectIO(2, realOps.writeAt)
	defer d.close()
	hdr := make([]byte, segHeaderSize)
	d.start(f, hdr)
	rec := make([]byte, 300<<10+17)
	var g group
	var off int64
	allocs := testing.AllocsPerRun(20, func() {
		if off > 64<<20 {
			d.start(f, hdr)
			off = 0
		}
		d.append(&g, rec)
		d.append(&g, rec)
		off += 2 * int64(len(rec))
		d.endGroup(&g)
		g.writes.Wait()
		if g.err != nil {
			t.Fatal(g.err)
		}
	})
	if allocs != 0 {
		t.Fatalf("append+endGroup: %v allocations, want 0", allocs)
	}
}
