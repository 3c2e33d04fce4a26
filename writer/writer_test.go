package writer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"tapvault/block"
	"testing"
	"time"
)

// storeBlocks writes blocks generated from seeds 1..n (kind chosen by kindOf)
// into a new writer with opts, closes it, and returns what each block must
// read back as, by MinTS, and the committed metas in commit order.
func storeBlocks(t testing.TB, opts Options, pool *block.Pool, n, size int, kindOf func(i int) int) (map[int64]want, []BlockMeta) {
	t.Helper()
	var hl hookLog
	opts.CommitHook = hl.hook
	if opts.Logger == nil {
		opts.Logger = quietLog
	}
	w, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	wants := make(map[int64]want)
	for i := 1; i <= n; i++ {
		b := getBlock(t, pool)
		fillBlock(b, uint64(i), size, kindOf(i))
		wants[b.MinTS] = wantOf(b)
		if !w.Submit(b) {
			t.Fatalf("Submit of block %d: got false, want true (queues sized for the pool)", i)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := pool.Free(); got != pool.Cap() {
		t.Fatalf("free blocks after Close: got %d, want %d (every block released)", got, pool.Cap())
	}
	metas := hl.all()
	for i := 1; i < len(metas); i++ {
		if metas[i].Ref <= metas[i-1].Ref {
			t.Fatalf("hook %d: ref %v after %v, want increasing refs", i, metas[i].Ref, metas[i-1].Ref)
		}
	}
	return wants, metas
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	pool := block.NewPool(6, 256<<10, 16)
	const n = 24
	kindOf := func(i int) int {
		if i%4 == 0 {
			return payloadRandom
		}
		return payloadText
	}
	wants, metas := storeBlocks(t, Options{Dir: dir, QueueLen: 6, Compressors: 2}, pool, n, 256<<10, kindOf)
	if len(metas) != n {
		t.Fatalf("hook calls: got %d, want %d", len(metas), n)
	}
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	defer r.Close()
	var buf, sbuf BlockBuf
	byRef := make(map[Ref]BlockMeta)
	for _, m := range metas {
		w, ok := wants[m.MinTS]
		if !ok {
			t.Fatalf("hook reported a block with MinTS %d that was never submitted", m.MinTS)
		}
		got := checkBlock(t, r, m.Ref, w, &buf)
		if got != m {
			t.Fatalf("ReadBlock(%v): got meta %+v, hook said %+v", m.Ref, got, m)
		}
		sm, err := r.ReadSummary(m.Ref, &sbuf)
		if err != nil {
			t.Fatalf("ReadSummary(%v): %v", m.Ref, err)
		}
		if sm != m || string(sbuf.Summary()) != string(w.summary) || len(sbuf.Records()) != 0 {
			t.Fatalf("ReadSummary(%v): got meta %+v summary %d bytes records %d bytes, want %+v, %d, 0",
				m.Ref, sm, len(sbuf.Summary()), len(sbuf.Records()), m, len(w.summary))
		}
		var s block.Summary
		if err := block.ParseSummary(sbuf.Summary(), &s); err != nil {
			t.Fatalf("ParseSummary(%v): %v", m.Ref, err)
		}
		byRef[m.Ref] = m
		delete(wants, m.MinTS)
	}
	if len(wants) != 0 {
		t.Fatalf("blocks submitted but never committed: %d", len(wants))
	}

	segs, err := r.Segments()
	if err != nil {
		t.Fatalf("Segments: %v", err)
	}
	if len(segs) != 1 || segs[0].Number != 1 || segs[0].Created == 0 {
		t.Fatalf("Segments: got %+v, want one segment numbered 1 with a creation time", segs)
	}
	var scanned []BlockMeta
	if err := r.ScanSegment(1, func(m BlockMeta) error { scanned = append(scanned, m); return nil }); err != nil {
		t.Fatalf("ScanSegment: %v", err)
	}
	if len(scanned) != n {
		t.Fatalf("ScanSegment: got %d blocks, want %d", len(scanned), n)
	}
	for i, m := range scanned {
		if byRef[m.Ref] != m {
			t.Fatalf("ScanSegment block %d: got %+v, want %+v", i, m, byRef[m.Ref])
		}
		if i > 0 && m.Ref <= scanned[i-1].Ref {
			t.Fatalf("ScanSegment: refs not increasing: %v after %v", m.Ref, scanned[i-1].Ref)
		}
	}
	rep, err := Verify(dir, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() || rep.Blocks != n {
		t.Fatalf("Verify: got %+v, want %d good blocks and none bad", rep, n)
	}
}

func TestIncompressibleStoredRaw(t *testing.T) {
	dir := t.TempDir()
	pool := block.NewPool(4, 128<<10, 16)
	var hl hookLog
	w, err := Open(Options{Dir: dir, CommitHook: hl.hook, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	kinds := map[int64]int{}
	for i, kind := range []int{payloadText, payloadRandom, payloadText, payloadRandom} {
		b := getBlock(t, pool)
		fillBlock(b, uint64(i+1), 128<<10, kind)
		kinds[b.MinTS] = kind
		if !w.Submit(b) {
			t.Fatalf("Submit %d: got false, want true", i)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, m := range hl.all() {
		switch kinds[m.MinTS] {
		case payloadText:
			if m.Codec != CodecZstd || m.StoredLen*2 > m.RawLen {
				t.Fatalf("text block: got codec %d stored %d of %d raw, want zstd at under half", m.Codec, m.StoredLen, m.RawLen)
			}
		case payloadRandom:
			// The records go raw; the summary section may still compress.
			if m.Codec != CodecRaw || m.StoredLen > m.RawLen {
				t.Fatalf("random block: got codec %d stored %d of %d raw, want raw and no larger", m.Codec, m.StoredLen, m.RawLen)
			}
		}
	}
	if got := w.Stats().RawIncompressible; got != 2 {
		t.Fatalf("RawIncompressible: got %d, want 2", got)
	}
}

func TestRotateBySize(t *testing.T) {
	dir := t.TempDir()
	pool := block.NewPool(4, 16<<10, 16)
	const segSize = 40 << 10 // about 3-4 random 16 KiB blocks
	wants, metas := storeBlocks(t, Options{Dir: dir, SegmentSize: segSize, QueueLen: 4}, pool, 20, 16<<10,
		func(int) int { return payloadRandom })
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	defer r.Close()
	segs, err := r.Segments()
	if err != nil {
		t.Fatalf("Segments: %v", err)
	}
	if len(segs) < 5 {
		t.Fatalf("segments: got %d, want at least 5 for 20 x 16 KiB blocks in 40 KiB segments", len(segs))
	}
	for i, s := range segs {
		if s.Size > segSize {
			t.Fatalf("segment %d: got %d bytes, want at most %d", s.Number, s.Size, segSize)
		}
		if s.Number != uint32(i+1) {
			t.Fatalf("segment %d: got number %d, want %d", i, s.Number, i+1)
		}
	}
	var buf BlockBuf
	for _, m := range metas {
		checkBlock(t, r, m.Ref, wants[m.MinTS], &buf)
	}
}

func TestRotateOversizeBlockGetsOwnSegment(t *testing.T) {
	dir := t.TempDir()
	pool := block.NewPool(2, 64<<10, 16)
	wants, metas := storeBlocks(t, Options{Dir: dir, SegmentSize: MinSegmentSize, QueueLen: 2}, pool, 3, 64<<10,
		func(int) int { return payloadRandom })
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	defer r.Close()
	var buf BlockBuf
	segsSeen := map[uint32]bool{}
	for _, m := range metas {
		checkBlock(t, r, m.Ref, wants[m.MinTS], &buf)
		if segsSeen[m.Ref.Segment()] {
			t.Fatalf("block %v shares a segment, want one block per segment larger than SegmentSize", m.Ref)
		}
		segsSeen[m.Ref.Segment()] = true
	}
}

func TestRotateByAge(t *testing.T) {
	dir := t.TempDir()
	pool := block.NewPool(2, 8<<10, 16)
	var hl hookLog
	w, err := Open(Options{Dir: dir, SegmentAge: 100 * time.Millisecond, CommitHook: hl.hook, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer w.Close()
	submit := func(seed uint64) {
		b := getBlock(t, pool)
		fillBlock(b, seed, 8<<10, payloadText)
		if !w.Submit(b) {
			t.Fatalf("Submit: got false, want true")
		}
	}
	submit(1)
	submit(2)
	waitFor(t, "two blocks committed", func() bool { return w.Stats().BlocksCommitted == 2 })
	if got := w.Stats().Segment; got != 1 {
		t.Fatalf("open segment: got %d, want 1", got)
	}
	// An idle writer closes an old segment on its own...
	waitFor(t, "idle segment closed by age", func() bool { return w.Stats().Segment == 0 })
	// ...and the next block starts a new one.
	submit(3)
	waitFor(t, "third block committed", func() bool { return w.Stats().BlocksCommitted == 3 })
	m := hl.all()
	if m[0].Ref.Segment() != 1 || m[1].Ref.Segment() != 1 || m[2].Ref.Segment() != 2 {
		t.Fatalf("segments of blocks: got %d %d %d, want 1 1 2", m[0].Ref.Segment(), m[1].Ref.Segment(), m[2].Ref.Segment())
	}
	if got := w.Stats().Segments; got != 2 {
		t.Fatalf("segments created: got %d, want 2", got)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRawWhenCompressorsBehind fills the compress queue faster than one
// compressor drains it: the overflow must be stored raw, not dropped, and
// every accepted block must come back intact.
func TestRawWhenCompressorsBehind(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	pool := block.NewPool(n, 1<<20, 16)
	var hl hookLog
	w, err := Open(Options{Dir: dir, Compressors: 1, QueueLen: 4, CommitHook: hl.hook, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// Fill every block first, then submit in a tight loop: compressing
	// 1 MiB of text takes milliseconds, submitting microseconds.
	blocks := make([]*block.Block, n)
	wants := map[int64]want{}
	for i := range blocks {
		blocks[i] = getBlock(t, pool)
		fillBlock(blocks[i], uint64(i+1), 1<<20, payloadText)
		wants[blocks[i].MinTS] = wantOf(blocks[i])
	}
	accepted := 0
	for _, b := range blocks {
		if w.Submit(b) {
			accepted++
		} else {
			delete(wants, b.MinTS)
			b.Release()
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := w.Stats()
	if st.RawBehind == 0 {
		t.Fatalf("RawBehind: got 0, want > 0 (%+v)", st)
	}
	if st.BlocksCommitted != uint64(accepted) || st.Rejected != uint64(n-accepted) {
		t.Fatalf("got %d committed, %d rejected; want %d, %d", st.BlocksCommitted, st.Rejected, accepted, n-accepted)
	}
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	defer r.Close()
	var buf BlockBuf
	raw := 0
	for _, m := range hl.all() {
		checkBlock(t, r, m.Ref, wants[m.MinTS], &buf)
		if m.Codec == CodecRaw {
			raw++ // text blocks are raw only when stored by the behind path
		}
	}
	if uint64(raw) != st.RawBehind {
		t.Fatalf("raw text blocks on disk: got %d, want RawBehind %d", raw, st.RawBehind)
	}
}

// TestSubmitFullNeverBlocks stalls the write goroutine in the commit hook:
// Submit must keep returning at once, and turn blocks away once both queues
// are full.
func TestSubmitFullNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	const queueLen, compressors = 2, 1
	pool := block.NewPool(32, 4<<10, 16)
	stall := make(chan struct{})
	entered := make(chan struct{}, 1)
	var once sync.Once
	hook := func(BlockMeta, *block.Summary) {
		once.Do(func() { entered <- struct{}{}; <-stall })
	}
	w, err := Open(Options{Dir: dir, Compressors: compressors, QueueLen: queueLen, CommitHook: hook, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b := getBlock(t, pool)
	fillBlock(b, 1, 4<<10, payloadText)
	if !w.Submit(b) {
		t.Fatal("first Submit: got false, want true")
	}
	<-entered // the write goroutine is now stuck in the hook
	accepted, rejected := 1, 0
	for i := 2; i < 32 && rejected < 3; i++ {
		b := getBlock(t, pool)
		fillBlock(b, uint64(i), 4<<10, payloadText)
		t0 := time.Now()
		ok := w.Submit(b)
		if d := time.Since(t0); d > 100*time.Millisecond {
			t.Fatalf("Submit took %v, want it never to block", d)
		}
		if ok {
			accepted++
		} else {
			rejected++
			b.Release()
		}
		time.Sleep(5 * time.Millisecond) // let the compressor move blocks along
	}
	// Queues plus what compressors and the writer hold in hand.
	if limit := 2*queueLen + compressors + 1; accepted > limit {
		t.Fatalf("accepted %d blocks while stalled, want at most %d", accepted, limit)
	}
	if rejected == 0 {
		t.Fatal("Submit never returned false with the writer stalled")
	}
	close(stall)
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := w.Stats()
	if st.BlocksCommitted != uint64(accepted) || st.Rejected != uint64(rejected) {
		t.Fatalf("got %d committed, %d rejected; want %d, %d", st.BlocksCommitted, st.Rejected, accepted, rejected)
	}
	if pool.Free() != pool.Cap() {
		t.Fatalf("free blocks: got %d, want %d", pool.Free(), pool.Cap())
	}
}

func TestSubmitAfterClose(t *testing.T) {
	pool := block.NewPool(1, 4<<10, 4)
	w, err := Open(Options{Dir: t.TempDir(), Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: got %v, want nil", err)
	}
	b := getBlock(t, pool)
	if w.Submit(b) {
		t.Fatal("Submit after Close: got true, want false")
	}
	b.Release()
}

func TestOpenLockedAndPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	pool := block.NewPool(1, 4<<10, 4)
	w, err := Open(Options{Dir: dir, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if w2, err := Open(Options{Dir: dir, Logger: quietLog}); err == nil {
		w2.Close()
		t.Fatal("second Open of a locked store: got nil error, want one")
	} else if !strings.Contains(err.Error(), "lock") {
		t.Fatalf("second Open: got %v, want a lock error", err)
	}
	b := getBlock(t, pool)
	fillBlock(b, 1, 4<<10, payloadText)
	w.Submit(b)
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	fi, err := os.Stat(segmentsDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Fatalf("segments dir mode: got %o, want 700", got)
	}
	fi, err = os.Stat(filepath.Join(segmentsDir(dir), segmentName(1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("segment mode: got %o, want 600", got)
	}
	// Reopening starts a new segment rather than appending to the old one.
	w, err = Open(Options{Dir: dir, Logger: quietLog})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if rec := w.Recovery(); rec.Segment != 1 || rec.Blocks != 1 || rec.CutAt != -1 || len(rec.Corrupt) != 0 {
		t.Fatalf("Recovery: got %+v, want segment 1 with 1 block, nothing cut", rec)
	}
	b = getBlock(t, pool)
	fillBlock(b, 2, 4<<10, payloadText)
	w.Submit(b)
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := w.Stats(); st.Segments != 1 {
		t.Fatalf("segments created after reopen: got %d, want 1", st.Segments)
	}
	if _, err := os.Stat(filepath.Join(segmentsDir(dir), segmentName(2))); err != nil {
		t.Fatalf("segment 2 after reopen: %v", err)
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []Options{
		{},
		{Dir: t.TempDir(), SegmentSize: 100},
		{Dir: t.TempDir(), SegmentSize: 1 << 32},
	} {
		if w, err := Open(o); err == nil {
			w.Close()
			t.Fatalf("Open(%+v): got nil error, want one", o)
		}
	}
}

func TestReaderWhileWriting(t *testing.T) {
	dir := t.TempDir()
	pool := block.NewPool(8, 32<<10, 16)
	w, err := Open(Options{Dir: dir, SegmentSize: 256 << 10, QueueLen: 8, SyncEvery: time.Millisecond, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 60; i++ {
			b := getBlock(t, pool)
			fillBlock(b, uint64(i), 32<<10, i%2)
			if !w.Submit(b) {
				b.Release()
			}
		}
	}()
	r, err := OpenReader(dir, WithReaderLogger(quietLog))
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	defer r.Close()
	var buf BlockBuf
	seen := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		segs, err := r.Segments()
		if err != nil {
			t.Fatalf("Segments: %v", err)
		}
		for _, s := range segs {
			err := r.ScanSegment(s.Number, func(m BlockMeta) error {
				seen++
				_, err := r.ReadBlock(m.Ref, &buf)
				return err
			})
			if err != nil {
				t.Fatalf("scan segment %d while writing: %v", s.Number, err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if seen == 0 {
		t.Fatal("the reader saw no blocks while the writer ran")
	}
}

func TestCorruptionErrorUnwraps(t *testing.T) {
	inner := errors.New("x")
	var err error = &CorruptionError{Path: "p", Offset: 7, Err: inner}
	if !errors.Is(err, inner) {
		t.Fatalf("errors.Is: got false, want true")
	}
	if got, want := err.Error(), `corrupt record in "p" at offset 7: x`; got != want {
		t.Fatalf("Error(): got %q, want %q", got, want)
	}
}

// TestScanSeesCommittedOnly holds a written block back from its commit (a
// sync interval far away): a live reader must not see it until the commit,
// although its bytes are in the file. With O_DIRECT a record reaches the
// file before its commit only once it fills a staging buffer, so that case
// uses an incompressible block larger than one (dioChunk).
func TestScanSeesCommittedOnly(t *testing.T) {
	for _, tc := range []struct {
		io         IOMode
		size, kind int
	}{
		{IOBuffered, 8 << 10, payloadText},
		{IODirect, dioChunk + dioChunk/2, payloadRandom},
	} {
		t.Run("io="+tc.io.String(), func(t *testing.T) {
			skipNoDirect(t, tc.io)
			testScanSeesCommittedOnly(t, tc.io, tc.size, tc.kind)
		})
	}
}

func testScanSeesCommittedOnly(t *testing.T, io IOMode, size, kind int) {
	dir := t.TempDir()
	pool := block.NewPool(2, size, 16)
	w, err := Open(Options{Dir: dir, SyncEvery: time.Hour, IO: io, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b := getBlock(t, pool)
	fillBlock(b, 1, size, kind)
	w.Submit(b)
	path := filepath.Join(segmentsDir(dir), segmentName(1))
	waitFor(t, "block written", func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() > segHeaderSize
	})
	r, err := OpenReader(dir, WithReaderLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := len(scanAll(t, r, 1)); got != 0 {
		t.Fatalf("live writer, block not synced: scanned %d blocks, want 0", got)
	}
	if st := w.Stats(); st.BlocksCommitted != 0 {
		t.Fatalf("BlocksCommitted: got %d, want 0 before the sync interval", st.BlocksCommitted)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := len(scanAll(t, r, 1)); got != 1 {
		t.Fatalf("after Close: scanned %d blocks, want 1", got)
	}

	// A live writer that committed: its blocks show, a stale marker from
	// an earlier writer does not hide anything once no writer is live.
	w, err = Open(Options{Dir: dir, SyncEvery: time.Millisecond, IO: io, Logger: quietLog})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if got := len(scanAll(t, r, 1)); got != 1 {
		t.Fatalf("reopened writer: scanned %d blocks of segment 1, want 1", got)
	}
	b = getBlock(t, pool)
	fillBlock(b, 2, size, kind)
	w.Submit(b)
	waitFor(t, "second block committed", func() bool { return w.Stats().BlocksCommitted == 1 })
	if got := len(scanAll(t, r, 2)); got != 1 {
		t.Fatalf("live writer, block committed: scanned %d blocks of segment 2, want 1", got)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, markerName), appendMarker(nil, 1, segHeaderSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := len(scanAll(t, r, 2)); got != 1 {
		t.Fatalf("no live writer, stale marker: scanned %d blocks of segment 2, want 1", got)
	}
}

func TestGroupCommit(t *testing.T) {
	const n = 20
	pool := block.NewPool(n, 4<<10, 16)
	submitAll := func(w *Writer) {
		for i := 1; i <= n; i++ {
			b := getBlock(t, pool)
			fillBlock(b, uint64(i), 4<<10, payloadText)
			if !w.Submit(b) {
				t.Fatalf("Submit %d: got false, want true", i)
			}
		}
	}

	// A burst within one sync interval is committed in few syncs.
	w, err := Open(Options{Dir: t.TempDir(), SyncEvery: 200 * time.Millisecond, QueueLen: n, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t0 := time.Now()
	submitAll(w)
	waitFor(t, "burst committed", func() bool { return w.Stats().BlocksCommitted == n })
	if d := time.Since(t0); d < 150*time.Millisecond {
		t.Fatalf("burst committed after %v, want the group to wait for the %v interval", d, 200*time.Millisecond)
	}
	if st := w.Stats(); st.Fsyncs == 0 || st.Fsyncs > 3 {
		t.Fatalf("fsyncs for a %d-block burst: got %d, want 1 to 3", n, st.Fsyncs)
	}
	w.Close()

	// SyncBytes ends a group early: here every block, as long as a group
	// is free (blocks arrive one after another's commit).
	w, err = Open(Options{Dir: t.TempDir(), SyncEvery: time.Hour, SyncBytes: 1, QueueLen: n, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for i := 1; i <= n; i++ {
		b := getBlock(t, pool)
		fillBlock(b, uint64(i), 4<<10, payloadText)
		w.Submit(b)
		waitFor(t, "block committed by size", func() bool { return w.Stats().BlocksCommitted == uint64(i) })
	}
	if st := w.Stats(); st.Fsyncs != n || st.FsyncNanos == 0 || st.FsyncMaxNanos == 0 {
		t.Fatalf("fsyncs with SyncBytes 1: got %d (%d ns, max %d), want %d with times", st.Fsyncs, st.FsyncNanos, st.FsyncMaxNanos, n)
	}
	w.Close()

	// Syncs slower than the blocks arrive: the groups in flight are
	// all taken, so the group being written grows past SyncBytes
	// instead of the writer waiting: fewer syncs, every block committed.
	ops := realOps
	ops.sync = func(f *os.File) error { time.Sleep(20 * time.Millisecond); return fdatasync(f) }
	w, err = Open(Options{Dir: t.TempDir(), SyncEvery: time.Hour, SyncBytes: 1, QueueLen: n, Logger: quietLog, ops: &ops})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	submitAll(w)
	waitFor(t, "blocks committed by size, slow syncs", func() bool { return w.Stats().BlocksCommitted == n })
	if st := w.Stats(); st.Fsyncs >= n || st.Fsyncs < maxGroups {
		t.Fatalf("fsyncs with SyncBytes 1 and 20 ms syncs: got %d, want fewer than %d blocks and at least %d", st.Fsyncs, n, maxGroups)
	}
	w.Close()
}

// TestSegmentCreateFailure removes the segments directory under a running
// writer: blocks cannot be stored, so they must be counted lost, released,
// never reported committed, and Close must say so.
func TestSegmentCreateFailure(t *testing.T) {
	dir := t.TempDir()
	pool := block.NewPool(2, 4<<10, 16)
	var hl hookLog
	w, err := Open(Options{Dir: dir, CommitHook: hl.hook, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := os.RemoveAll(segmentsDir(dir)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		b := getBlock(t, pool)
		fillBlock(b, uint64(i), 4<<10, payloadText)
		if !w.Submit(b) {
			t.Fatalf("Submit %d: got false, want true", i)
		}
	}
	err = w.Close()
	if err == nil || !strings.Contains(err.Error(), "3 accepted blocks were not committed") {
		t.Fatalf("Close: got %v, want an error counting 3 lost blocks", err)
	}
	st := w.Stats()
	if st.BlocksLost != 3 || st.WriteErrors != 3 || st.BlocksCommitted != 0 || len(hl.all()) != 0 {
		t.Fatalf("got lost %d, write errors %d, committed %d, hooks %d; want 3, 3, 0, 0",
			st.BlocksLost, st.WriteErrors, st.BlocksCommitted, len(hl.all()))
	}
	if pool.Free() != pool.Cap() {
		t.Fatalf("free blocks: got %d, want %d", pool.Free(), pool.Cap())
	}
}

// TestSegmentMinTS: Stats.SegmentMinTS is the oldest packet time written to
// the open segment, also when a later block is older (a clock stepped
// back), and starts again with a new segment. Retention keeps the records
// of packets from that time on.
func TestSegmentMinTS(t *testing.T) {
	const blockSize = 64 << 10
	pool := block.NewPool(4, blockSize, 16)
	w, err := Open(Options{Dir: t.TempDir(), QueueLen: 4, Compressors: 1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer w.Close()
	if got := w.Stats().SegmentMinTS; got != 0 {
		t.Fatalf("SegmentMinTS before any block: got %d, want 0", got)
	}
	var mins []int64
	for _, seed := range []uint64{5, 9, 2} {
		b := getBlock(t, pool)
		fillBlock(b, seed, blockSize, payloadText)
		mins = append(mins, b.MinTS)
		w.Submit(b)
	}
	waitFor(t, "3 blocks committed", func() bool { return w.Stats().BlocksCommitted == 3 })
	if got, want := w.Stats().SegmentMinTS, slices.Min(mins); got != want {
		t.Fatalf("SegmentMinTS: got %d, want %d (the oldest of %v)", got, want, mins)
	}
}
