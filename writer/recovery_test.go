package writer

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"tapvault/block"
	"testing"
)

// smallStore writes n small text blocks into a new store in one segment and
// returns the segment's bytes, the metas in ref order and the wanted
// contents by MinTS.
func smallStore(t testing.TB, n, size int) ([]byte, []BlockMeta, map[int64]want) {
	t.Helper()
	dir := t.TempDir()
	pool := block.NewPool(2, size, 16)
	wants, metas := storeBlocks(t, Options{Dir: dir, QueueLen: 2, Compressors: 1}, pool, n, size,
		func(i int) int { return i % 2 })
	if len(metas) != n {
		t.Fatalf("committed: got %d, want %d", len(metas), n)
	}
	for i := 1; i < len(metas); i++ {
		if metas[i].Ref <= metas[i-1].Ref {
			t.Fatalf("one compressor: refs not in commit order: %v after %v", metas[i].Ref, metas[i-1].Ref)
		}
	}
	seg, err := os.ReadFile(filepath.Join(segmentsDir(dir), segmentName(1)))
	if err != nil {
		t.Fatal(err)
	}
	return seg, metas, wants
}

// storeWith writes seg as segment 1 of a new store, with a commit marker
// saying its first committed bytes are committed (none if committed < 0),
// and returns the dir.
func storeWith(t *testing.T, seg []byte, committed int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(segmentsDir(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(segmentsDir(dir), segmentName(1)), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	if committed >= 0 {
		if err := os.WriteFile(filepath.Join(dir, markerName), appendMarker(nil, 1, committed), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func segSize(t *testing.T, dir string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(segmentsDir(dir), segmentName(1)))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func scanAll(t *testing.T, r *Reader, seg uint32) []BlockMeta {
	t.Helper()
	var out []BlockMeta
	if err := r.ScanSegment(seg, func(m BlockMeta) error { out = append(out, m); return nil }); err != nil {
		t.Fatalf("ScanSegment(%d): %v", seg, err)
	}
	return out
}

// TestRecoveryTornTail cuts the last segment at every byte offset inside
// its last block: readers must stop before the torn block without touching
// the file, and Open must cut it off and keep every block before it.
func TestRecoveryTornTail(t *testing.T) {
	seg, metas, wants := smallStore(t, 4, 2048)
	last := metas[len(metas)-1]
	lastOff := int64(last.Ref.Offset())
	if lastOff+blockHeaderSize >= int64(len(seg)) {
		t.Fatalf("last block at %d of %d bytes: too small to test", lastOff, len(seg))
	}
	for cut := lastOff; cut < int64(len(seg)); cut++ {
		dir := storeWith(t, seg[:cut], lastOff) // the last block was never committed

		r, err := OpenReader(dir, WithReaderLogger(quietLog))
		if err != nil {
			t.Fatalf("cut %d: OpenReader: %v", cut, err)
		}
		if got := len(scanAll(t, r, 1)); got != len(metas)-1 {
			t.Fatalf("cut %d: reader scanned %d blocks, want %d", cut, got, len(metas)-1)
		}
		if _, err := r.ReadBlock(last.Ref, &BlockBuf{}); err == nil {
			t.Fatalf("cut %d: ReadBlock of the torn block: got nil error", cut)
		}
		r.Close()
		if got := segSize(t, dir); got != cut {
			t.Fatalf("cut %d: reader changed the file size to %d", cut, got)
		}

		w, err := Open(Options{Dir: dir, Logger: quietLog})
		if err != nil {
			t.Fatalf("cut %d: Open: %v", cut, err)
		}
		rec := w.Recovery()
		if err := w.Close(); err != nil {
			t.Fatalf("cut %d: Close: %v", cut, err)
		}
		wantCut := lastOff
		if cut == lastOff {
			wantCut = -1 // the file ends cleanly after the third block
		}
		if rec.CutAt != wantCut || rec.Blocks != len(metas)-1 || len(rec.Corrupt) != 0 {
			t.Fatalf("cut %d: got recovery %+v, want CutAt %d, %d blocks, no corruption", cut, rec, wantCut, len(metas)-1)
		}
		if wantCut >= 0 && rec.BytesCut != cut-lastOff {
			t.Fatalf("cut %d: got BytesCut %d, want %d", cut, rec.BytesCut, cut-lastOff)
		}
		if got := segSize(t, dir); got != lastOff {
			t.Fatalf("cut %d: size after recovery %d, want %d", cut, got, lastOff)
		}
		rep, err := Verify(dir, nil)
		if err != nil {
			t.Fatalf("cut %d: Verify: %v", cut, err)
		}
		if !rep.OK() || rep.Blocks != len(metas)-1 || rep.Segments[0].TailBytes != 0 {
			t.Fatalf("cut %d: Verify got %+v, want %d good blocks", cut, rep, len(metas)-1)
		}
		if cut == lastOff+blockHeaderSize+1 || cut == int64(len(seg))-1 { // content spot checks
			r, err := OpenReader(dir)
			if err != nil {
				t.Fatal(err)
			}
			var buf BlockBuf
			for _, m := range metas[:len(metas)-1] {
				checkBlock(t, r, m.Ref, wants[m.MinTS], &buf)
			}
			r.Close()
		}
	}
}

func TestRecoveryGarbageTail(t *testing.T) {
	seg, metas, wants := smallStore(t, 3, 2048)
	last := metas[len(metas)-1]
	lastRec := seg[last.Ref.Offset():]
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 5000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	cases := map[string][]byte{
		"random":              random,
		"zeros":               make([]byte, 4096),
		"one byte":            {0x56},
		"copy of last header": lastRec[:blockHeaderSize],
		// A whole valid record, but its ref names where it was first
		// written: a stray copy is never taken for a block.
		"copy of last record": lastRec,
		"magic then garbage":  append([]byte("TVBK"), random[:100]...),
	}
	for name, garbage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := storeWith(t, append(bytes.Clone(seg), garbage...), int64(len(seg)))
			rep, err := Verify(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Blocks != len(metas) || rep.Segments[0].TailBytes != int64(len(garbage)) {
				t.Fatalf("Verify: got %+v, want %d blocks and a %d-byte tail", rep, len(metas), len(garbage))
			}
			w, err := Open(Options{Dir: dir, Logger: quietLog})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			rec := w.Recovery()
			w.Close()
			if rec.CutAt != int64(len(seg)) || rec.BytesCut != int64(len(garbage)) || rec.Blocks != len(metas) {
				t.Fatalf("got recovery %+v, want cut at %d of %d bytes, %d blocks", rec, len(seg), len(garbage), len(metas))
			}
			if got := segSize(t, dir); got != int64(len(seg)) {
				t.Fatalf("size after recovery: got %d, want %d", got, len(seg))
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
		})
	}
}

// TestCorruptionMiddle damages the second of four blocks: nothing may be
// truncated, the damage must be reported by offset, and every other block
// must stay readable.
func TestCorruptionMiddle(t *testing.T) {
	seg, metas, wants := smallStore(t, 4, 2048)
	bad := metas[1]
	off := int(bad.Ref.Offset())
	cases := []struct {
		name        string
		damage      func(b []byte)
		scanSkipped bool // the header itself is bad, so header scans skip it
	}{
		{"payload byte", func(b []byte) { b[off+blockHeaderSize+10] ^= 0x40 }, false},
		{"trailing crc", func(b []byte) { b[int(metas[2].Ref.Offset())-1] ^= 1 }, false},
		{"header count", func(b []byte) { b[off+offCount] ^= 1 }, true},
		{"magic", func(b []byte) { copy(b[off:], "XXXX") }, true},
		{"zeroed header", func(b []byte) { clear(b[off : off+blockHeaderSize]) }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(seg)
			c.damage(b)
			// Also tear the tail: recovery must cut it and still keep
			// the damaged block in the middle.
			b = b[:len(b)-3]
			dir := storeWith(t, b, int64(metas[3].Ref.Offset())) // the last block was never committed

			w, err := Open(Options{Dir: dir, Logger: quietLog})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			rec := w.Recovery()
			w.Close()
			lastOff := int64(metas[3].Ref.Offset())
			if len(rec.Corrupt) != 1 || rec.Corrupt[0].Offset != int64(off) || rec.CutAt != lastOff || rec.Blocks != 2 {
				t.Fatalf("got recovery %+v, want one corruption at %d, cut at %d, 2 blocks", rec, off, lastOff)
			}
			if got := segSize(t, dir); got != lastOff {
				t.Fatalf("size after recovery: got %d, want %d (the damaged middle block kept)", got, lastOff)
			}

			r, err := OpenReader(dir, WithReaderLogger(quietLog))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var buf BlockBuf
			_, err = r.ReadBlock(bad.Ref, &buf)
			var ce *CorruptionError
			if !errors.As(err, &ce) || ce.Offset != int64(off) || ce.Path != filepath.Join(segmentsDir(dir), segmentName(1)) {
				t.Fatalf("ReadBlock of the damaged block: got %v, want a CorruptionError at %d", err, off)
			}
			for _, m := range []BlockMeta{metas[0], metas[2]} {
				checkBlock(t, r, m.Ref, wants[m.MinTS], &buf)
			}
			scanned := scanAll(t, r, 1)
			wantScan := 3
			if c.scanSkipped {
				wantScan = 2
			}
			if len(scanned) != wantScan {
				t.Fatalf("ScanSegment: got %d blocks, want %d", len(scanned), wantScan)
			}
			rep, err := Verify(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || rep.BadBlocks != 1 || rep.Blocks != 2 || rep.Segments[0].Bad[0].Offset != int64(off) {
				t.Fatalf("Verify: got %+v, want 2 good blocks and block at %d bad", rep, off)
			}
		})
	}
}

// TestVerifySealedSegment damages an older segment, which Open does not
// check: Verify must find it and name the block.
func TestVerifySealedSegment(t *testing.T) {
	dir := t.TempDir()
	pool := block.NewPool(2, 8<<10, 16)
	_, metas := storeBlocks(t, Options{Dir: dir, SegmentSize: MinSegmentSize * 4, QueueLen: 2, Compressors: 1}, pool, 12, 8<<10,
		func(int) int { return payloadRandom })
	if metas[len(metas)-1].Ref.Segment() < 2 {
		t.Fatalf("want several segments, got last ref %v", metas[len(metas)-1].Ref)
	}
	victim := metas[1]
	path := filepath.Join(segmentsDir(dir), segmentName(victim.Ref.Segment()))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[int(victim.Ref.Offset())+blockHeaderSize+100] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var calls int
	var lastDone, lastTotal int64
	rep, err := Verify(dir, func(done, total int64) { calls++; lastDone, lastTotal = done, total })
	if err != nil {
		t.Fatal(err)
	}
	if rep.BadBlocks != 1 || rep.Blocks != len(metas)-1 {
		t.Fatalf("Verify: got %d bad, %d good, want 1, %d", rep.BadBlocks, rep.Blocks, len(metas)-1)
	}
	var found bool
	for _, s := range rep.Segments {
		for _, ce := range s.Bad {
			found = found || (s.Number == victim.Ref.Segment() && ce.Offset == int64(victim.Ref.Offset()) && ce.Path == path)
		}
	}
	if !found {
		t.Fatalf("Verify did not name segment %d offset %d: %+v", victim.Ref.Segment(), victim.Ref.Offset(), rep.Segments)
	}
	if calls == 0 || lastDone != lastTotal || lastTotal != rep.Bytes {
		t.Fatalf("progress: got %d calls ending %d/%d, want calls ending at %d/%d", calls, lastDone, lastTotal, rep.Bytes, rep.Bytes)
	}
}

func TestOpenWithDamagedLastSegmentHeader(t *testing.T) {
	seg, metas, _ := smallStore(t, 2, 1024)
	bad := bytes.Clone(seg)
	bad[5] ^= 0xff // inside the segment header
	dir := storeWith(t, bad, int64(len(bad)))
	w, err := Open(Options{Dir: dir, Logger: quietLog})
	if err != nil {
		t.Fatalf("Open: got %v, want capture to start despite a damaged segment", err)
	}
	rec := w.Recovery()
	pool := block.NewPool(1, 1024, 4)
	b := getBlock(t, pool)
	fillBlock(b, 9, 1024, payloadText)
	w.Submit(b)
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(rec.Corrupt) != 1 || rec.Corrupt[0].Offset != 0 {
		t.Fatalf("Recovery: got %+v, want the segment header reported", rec)
	}
	if got := segSize(t, dir); got != int64(len(bad)) {
		t.Fatalf("damaged segment size: got %d, want %d (left alone)", got, len(bad))
	}
	r, err := OpenReader(dir, WithReaderLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	segs, err := r.Segments()
	if err != nil {
		t.Fatalf("Segments: %v", err)
	}
	if len(segs) != 2 || segs[0].Err == nil || segs[1].Err != nil {
		t.Fatalf("Segments: got %+v, want segment 1 flagged and segment 2 sound", segs)
	}
	// The blocks carry their own refs and CRCs: a damaged segment header
	// loses none of them.
	for _, m := range metas {
		if _, err := r.ReadBlock(m.Ref, &BlockBuf{}); err != nil {
			t.Fatalf("ReadBlock(%v) in the segment with a damaged header: %v", m.Ref, err)
		}
	}
	if got := scanAll(t, r, 1); len(got) != len(metas) {
		t.Fatalf("ScanSegment of the segment with a damaged header: got %d blocks, want %d", len(got), len(metas))
	}
	rep, err := Verify(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.BadHeaders != 1 || rep.Segments[0].HeaderErr == nil || rep.BadBlocks != 0 || rep.Blocks != len(metas)+1 {
		t.Fatalf("Verify: got OK %v, %d bad headers, %d bad blocks, %d good; want not OK, 1, 0, %d",
			rep.OK(), rep.BadHeaders, rep.BadBlocks, rep.Blocks, len(metas)+1)
	}
}
