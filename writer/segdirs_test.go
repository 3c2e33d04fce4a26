package writer

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"tapvault/block"
	"testing"
	"time"
)

// writeBlocks submits n blocks (seeds from seed) and waits until they are
// committed, returning what each should read back as, by MinTS.
func writeBlocks(t *testing.T, w *Writer, pool *block.Pool, seed, n int, wants map[int64]want) {
	t.Helper()
	before := w.Stats().BlocksCommitted
	for i := range n {
		b := getBlock(t, pool)
		fillBlock(b, uint64(seed+i), 32<<10, payloadText)
		wants[b.MinTS] = wantOf(b)
		if !w.Submit(b) {
			t.Fatal("Submit: false")
		}
	}
	waitFor(t, "blocks committed", func() bool { return w.Stats().BlocksCommitted == before+uint64(n) })
}

// readAll reads every block of the store through a new Reader, checks it
// against wants and returns how many segments each directory holds.
func readAll(t *testing.T, dir string, wants map[int64]want) map[string]int {
	t.Helper()
	r, err := OpenReader(dir, WithReaderLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	segs, err := r.Segments()
	if err != nil {
		t.Fatal(err)
	}
	perDir := make(map[string]int)
	var buf BlockBuf
	seen := 0
	for _, si := range segs {
		perDir[filepath.Dir(si.Path)]++
		err := r.ScanSegment(si.Number, func(m BlockMeta) error {
			w, ok := wants[m.MinTS]
			if !ok {
				t.Fatalf("segment %d: a block nobody wrote (MinTS %d)", si.Number, m.MinTS)
			}
			checkBlock(t, r, m.Ref, w, &buf)
			seen++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if seen != len(wants) {
		t.Fatalf("read %d blocks back, wrote %d", seen, len(wants))
	}
	return perDir
}

// TestSegmentDirs writes a store over three segment directories: segments
// go to them in turn, every block reads back, Verify finds nothing, a
// restart goes on in turn from where the last run stopped, and a writer
// given fewer directories (or none) writes where it is told while the
// store still reads the segments the others hold. Retention's DropSegment
// finds a segment in whichever directory holds it.
func TestSegmentDirs(t *testing.T) {
	dir := t.TempDir()
	base := t.TempDir()
	d1, d2, d3 := filepath.Join(base, "disk1"), filepath.Join(base, "disk2"), filepath.Join(base, "disk3")
	pool := block.NewPool(8, 32<<10, 16)
	wants := make(map[int64]want)
	open := func(dirs ...string) *Writer {
		t.Helper()
		w, err := Open(Options{Dir: dir, SegmentDirs: dirs, SegmentSize: MinSegmentSize, Compressors: 1, Logger: quietLog})
		if err != nil {
			t.Fatalf("Open(%v): %v", dirs, err)
		}
		return w
	}

	w := open(d1, d2, d3)
	writeBlocks(t, w, pool, 1, 7, wants) // a segment a block (MinSegmentSize)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	perDir := readAll(t, dir, wants)
	if perDir[d1] != 3 || perDir[d2] != 2 || perDir[d3] != 2 || perDir[segmentsDir(dir)] != 0 {
		t.Fatalf("segments per directory %v: want 3, 2, 2 in turn, none in segments/", perDir)
	}
	b, err := os.ReadFile(filepath.Join(dir, segDirsName))
	if err != nil || !strings.Contains(string(b), d1+"\n"+d2+"\n"+d3+"\n") {
		t.Fatalf("%s: %q, %v: want the three directories in order", segDirsName, b, err)
	}
	for _, d := range []string{d1, d2, d3} {
		if own, err := os.ReadFile(filepath.Join(d, ownerName)); err != nil || strings.TrimSpace(string(own)) != dir {
			t.Fatalf("%s/%s: %q, %v: want %q", d, ownerName, own, err, dir)
		}
	}

	// A restart goes on with the directory after the last segment's (d1).
	w = open(d1, d2, d3)
	writeBlocks(t, w, pool, 100, 2, wants)
	w.Close()
	if perDir := readAll(t, dir, wants); perDir[d2] != 3 || perDir[d3] != 3 {
		t.Fatalf("after a restart, segments per directory %v: want d2 and d3 next", perDir)
	}

	// Without the flag, new segments go to segments/, and the old ones
	// are still read (SEGMENT_DIRS keeps them).
	w = open()
	writeBlocks(t, w, pool, 200, 2, wants)
	if perDir := readAll(t, dir, wants); perDir[segmentsDir(dir)] != 2 || perDir[d1]+perDir[d2]+perDir[d3] != 9 {
		t.Fatalf("segments per directory %v: want 2 in segments/, 9 elsewhere", perDir)
	}
	// DropSegment finds segment 1 in d1.
	if err := w.DropSegment(1); err != nil {
		t.Fatalf("DropSegment(1): %v", err)
	}
	if _, err := os.Stat(filepath.Join(d1, segmentName(1))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment 1 still in %s: %v", d1, err)
	}
	w.Close()
	rep, err := Verify(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BadBlocks != 0 || rep.BadHeaders != 0 || rep.MarkerErr != nil || len(rep.Segments) != 10 {
		t.Fatalf("Verify: %d segments, %d bad blocks, %d bad headers, marker %v: want 10 clean segments", len(rep.Segments), rep.BadBlocks, rep.BadHeaders, rep.MarkerErr)
	}
}

// TestSegmentDirsRefused: a directory another store claimed, one holding
// segments of no known store, a recorded directory that is missing (a disk
// not mounted: the writer refuses to start, readers go on with the rest)
// and a segment number found in two directories.
func TestSegmentDirsRefused(t *testing.T) {
	base := t.TempDir()
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	disk1, disk2 := filepath.Join(base, "disk1"), filepath.Join(base, "disk2")
	pool := block.NewPool(4, 32<<10, 16)
	wants := make(map[int64]want)
	w, err := Open(Options{Dir: a, SegmentDirs: []string{disk1, disk2}, SegmentSize: MinSegmentSize, Compressors: 1, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, w, pool, 1, 4, wants)
	w.Close()

	_, err = Open(Options{Dir: b, SegmentDirs: []string{disk1}, Logger: quietLog})
	if err == nil || !strings.Contains(err.Error(), "belongs to the store") {
		t.Fatalf("a second store on a claimed directory: got %v, want a refusal", err)
	}
	stray := filepath.Join(base, "stray")
	os.MkdirAll(stray, 0o700)
	os.WriteFile(filepath.Join(stray, segmentName(5)), []byte("x"), 0o600)
	_, err = Open(Options{Dir: b, SegmentDirs: []string{stray}, Logger: quietLog})
	if err == nil || !strings.Contains(err.Error(), "already holds segments") {
		t.Fatalf("a directory with foreign segments: got %v, want a refusal", err)
	}
	if err := os.WriteFile(filepath.Join(base, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = Open(Options{Dir: b, SegmentDirs: []string{filepath.Join(base, "file")}, Logger: quietLog}); err == nil {
		t.Fatal("a segment directory that is a file: no error")
	}

	// disk2 "not mounted".
	if err := os.Rename(disk2, disk2+".away"); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Options{Dir: a, SegmentDirs: []string{disk1}, Logger: quietLog})
	if err == nil || !strings.Contains(err.Error(), "mount it") {
		t.Fatalf("a recorded directory missing: got %v, want a refusal naming it", err)
	}
	var logs lockedBuf
	r, err := OpenReader(a, WithReaderLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	segs, err := r.Segments()
	r.Close()
	if err != nil || len(segs) != 2 || logs.count("segment directory unreadable") != 1 {
		t.Fatalf("reader with a directory missing: %d segments, %v, log %q: want disk1's 2 and one error logged", len(segs), err, logs.b.String())
	}
	if _, err := Verify(a, nil); err == nil {
		t.Fatal("Verify with a segment directory missing: no error")
	}
	os.Rename(disk2+".away", disk2)

	// The same segment number in two directories.
	src, _ := os.ReadFile(filepath.Join(disk1, segmentName(1)))
	os.WriteFile(filepath.Join(disk2, segmentName(1)), src, 0o600)
	if _, err = Open(Options{Dir: a, SegmentDirs: []string{disk1, disk2}, Logger: quietLog}); err == nil || !strings.Contains(err.Error(), "two segment directories") {
		t.Fatalf("a segment in two directories: got %v, want a refusal", err)
	}
}

// TestSegmentDirsDiskFull fills one of two segment directories: the
// writer loses the block whose write found it full (counted) and goes on
// at once in the other directory, instead of dropping for DiskFullRetry.
func TestSegmentDirsDiskFull(t *testing.T) {
	dir := t.TempDir()
	base := t.TempDir()
	d1, d2 := filepath.Join(base, "disk1"), filepath.Join(base, "disk2")
	var full atomic.Bool
	ops := realOps
	ops.retry = time.Hour // only going elsewhere can save the next blocks
	ops.avail = func(d string) (int64, error) {
		if full.Load() && d == d1 {
			return 0, nil
		}
		return 1 << 40, nil
	}
	ops.writeAt = func(f *os.File, b []byte, off int64) (int, error) {
		if full.Load() && strings.HasPrefix(f.Name(), d1+"/") {
			return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
		}
		return f.WriteAt(b, off)
	}
	pool := block.NewPool(4, 32<<10, 16)
	w, err := Open(Options{Dir: dir, SegmentDirs: []string{d1, d2}, Compressors: 1, Logger: quietLog, ops: &ops})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wants := make(map[int64]want)
	writeBlocks(t, w, pool, 1, 2, wants) // one segment, in d1
	full.Store(true)
	b := getBlock(t, pool)
	fillBlock(b, 50, 32<<10, payloadText)
	w.Submit(b)
	waitFor(t, "the block that found the disk full dropped", func() bool { return w.Stats().DiskFullBlocks == 1 })
	writeBlocks(t, w, pool, 100, 3, wants)
	if st := w.Stats(); st.DiskFullBlocks != 1 || st.BlocksLost != 1 {
		t.Fatalf("disk-full drops %d, lost %d: want 1 and 1", st.DiskFullBlocks, st.BlocksLost)
	}
	if perDir := readAll(t, dir, wants); perDir[d1] != 1 || perDir[d2] != 1 {
		t.Fatalf("segments per directory %v: want the first in disk1, the rest in disk2", perDir)
	}
}

// TestSegmentDirsReaderBefore: a Reader opened while the store had only
// segments/ reads, by ref, a block of a segment that a writer later put in
// a new segment directory, without listing first (a query planned from the
// index does not list). It must not take the block for one retention
// removed.
func TestSegmentDirsReaderBefore(t *testing.T) {
	dir := t.TempDir()
	d1 := filepath.Join(t.TempDir(), "disk1")
	pool := block.NewPool(8, 32<<10, 16)
	wants := make(map[int64]want)
	w, err := Open(Options{Dir: dir, SegmentSize: MinSegmentSize, Compressors: 1, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, w, pool, 1, 1, wants)
	w.Close()
	r, err := OpenReader(dir, WithReaderLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Segments(); err != nil {
		t.Fatal(err)
	}

	w, err = Open(Options{Dir: dir, SegmentDirs: []string{d1}, SegmentSize: MinSegmentSize, Compressors: 1, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, w, pool, 100, 1, wants)
	w.Close()
	// The new block's ref, through a reader of its own.
	r2, err := OpenReader(dir, WithReaderLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	segs, err := r2.Segments()
	if err != nil {
		t.Fatal(err)
	}
	last := segs[len(segs)-1]
	if filepath.Dir(last.Path) != d1 {
		t.Fatalf("newest segment %s: want it in %s", last.Path, d1)
	}
	var refs []Ref
	if err := r2.ScanSegment(last.Number, func(m BlockMeta) error { refs = append(refs, m.Ref); return nil }); err != nil || len(refs) != 1 {
		t.Fatalf("segment %d: %d blocks, %v: want 1", last.Number, len(refs), err)
	}
	var buf BlockBuf
	if _, err := r.ReadBlock(refs[0], &buf); err != nil {
		t.Fatalf("ReadBlock(%s) through the reader opened before %s was added: %v", refs[0], d1, err)
	}
}

// TestSegmentDirsDropWithDiskGone: a segment directory that disappears
// while the writer runs (a failed disk) does not stop retention on the
// others.
func TestSegmentDirsDropWithDiskGone(t *testing.T) {
	dir := t.TempDir()
	base := t.TempDir()
	d1, d2 := filepath.Join(base, "disk1"), filepath.Join(base, "disk2")
	w, err := Open(Options{Dir: dir, SegmentDirs: []string{d1, d2}, SegmentSize: MinSegmentSize, Compressors: 1, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pool := block.NewPool(4, 32<<10, 16)
	writeBlocks(t, w, pool, 1, 5, make(map[int64]want)) // segments 1, 3, 5 in disk1; 2, 4 in disk2
	if err := os.Rename(d2, d2+".failed"); err != nil {
		t.Fatal(err)
	}
	if err := w.DropSegment(1); err != nil {
		t.Fatalf("DropSegment(1) with disk2 gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d1, segmentName(1))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment 1 still on disk1: %v", err)
	}
	if err := w.DropSegment(5); !errors.Is(err, ErrLiveSegment) {
		t.Fatalf("DropSegment of the newest segment listed: %v, want ErrLiveSegment", err)
	}
	os.Rename(d2+".failed", d2)
}

// TestSegmentDirsOwnBySymlink: the store's own segments/ given through a
// symlink is segments/, not a second directory holding the same files.
func TestSegmentDirsOwnBySymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(segmentsDir(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "segs")
	if err := os.Symlink(segmentsDir(dir), link); err != nil {
		t.Fatal(err)
	}
	d2 := filepath.Join(t.TempDir(), "disk2")
	w, err := Open(Options{Dir: dir, SegmentDirs: []string{link, d2}, SegmentSize: MinSegmentSize, Compressors: 1, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	pool := block.NewPool(4, 32<<10, 16)
	wants := make(map[int64]want)
	writeBlocks(t, w, pool, 1, 4, wants)
	w.Close()
	if perDir := readAll(t, dir, wants); perDir[segmentsDir(dir)] != 2 || perDir[d2] != 2 {
		t.Fatalf("segments per directory %v: want 2 in segments/ and 2 in disk2", perDir)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, segDirsName)); strings.Contains(string(b), link) {
		t.Fatalf("%s lists the symlink to segments/: %q", segDirsName, b)
	}
}

// FuzzLoadSegDirs: whatever SEGMENT_DIRS holds, loadSegDirs returns an
// error or a list that starts with DIR/segments and holds only clean,
// absolute, distinct paths; it never panics.
func FuzzLoadSegDirs(f *testing.F) {
	f.Add([]byte("# comment\n/disk1/tv\n/disk2/tv\n"))
	f.Add([]byte("relative/dir\n"))
	f.Add([]byte("/a//b/../c\n/a/c\n\n  /d  \n"))
	f.Add([]byte{0xff, '\n', '/', 0})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, segDirsName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		ds, err := loadSegDirs(dir)
		if err != nil {
			return
		}
		if len(ds) == 0 || ds[0] != segmentsDir(dir) {
			t.Fatalf("list %q does not start with %q", ds, segmentsDir(dir))
		}
		seen := map[string]bool{}
		for _, d := range ds[1:] {
			if !filepath.IsAbs(d) || filepath.Clean(d) != d || seen[d] {
				t.Fatalf("entry %q of %q: want clean, absolute and distinct", d, ds)
			}
			seen[d] = true
		}
	})
}
