package writer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"tapvault/block"
	"testing"
)

// The fault suite: damage a cleanly closed store where it can be damaged,
// then check that Verify reports it, that readers skip exactly the damaged
// blocks, and that reopening the store for writing never cuts a committed
// byte.

// faultStore writes blocks of incompressible data into a store with small
// segments, so it has sealed segments and a newest one with at least four
// blocks, closes it, and returns the dir and the committed blocks in ref
// order.
func faultStore(t *testing.T) (string, []BlockMeta) {
	t.Helper()
	dir := t.TempDir()
	pool := block.NewPool(2, 8<<10, 16)
	_, metas := storeBlocks(t, Options{Dir: dir, SegmentSize: 64 << 10, QueueLen: 2, Compressors: 1}, pool, 22, 8<<10,
		func(int) int { return payloadRandom })
	newest := metas[len(metas)-1].Ref.Segment()
	if newest < 3 || len(segBlocks(metas, newest)) < 4 || len(segBlocks(metas, 1)) < 3 {
		t.Fatalf("want 3+ segments, 3+ blocks in the first and 4+ in the newest; got %d blocks up to %v", len(metas), metas[len(metas)-1].Ref)
	}
	return dir, metas
}

// segBlocks returns the blocks of segment n.
func segBlocks(metas []BlockMeta, n uint32) []BlockMeta {
	var out []BlockMeta
	for _, m := range metas {
		if m.Ref.Segment() == n {
			out = append(out, m)
		}
	}
	return out
}

// recordLen returns the on-disk length of block m's record.
func recordLen(t *testing.T, dir string, metas []BlockMeta, m BlockMeta) int64 {
	t.Helper()
	for i, o := range metas {
		if o.Ref == m.Ref && i+1 < len(metas) && metas[i+1].Ref.Segment() == m.Ref.Segment() {
			return int64(metas[i+1].Ref.Offset() - m.Ref.Offset())
		}
	}
	return segFileSize(t, dir, m.Ref.Segment()) - int64(m.Ref.Offset())
}

func segFileSize(t *testing.T, dir string, n uint32) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(segmentsDir(dir), segmentName(n)))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// segSizes returns the size of every segment file.
func segSizes(t *testing.T, dir string) map[uint32]int64 {
	t.Helper()
	nums, err := listSegments(segmentsDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[uint32]int64)
	for _, n := range nums {
		out[n] = segFileSize(t, dir, n)
	}
	return out
}

// flipByte inverts one bit at off in file path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// unreadable returns the committed blocks ReadBlock refuses: what a query
// through the index skips.
func unreadable(t *testing.T, dir string, metas []BlockMeta) []Ref {
	t.Helper()
	r, err := OpenReader(dir, WithReaderLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf BlockBuf
	var bad []Ref
	for _, m := range metas {
		if _, err := r.ReadBlock(m.Ref, &buf); err != nil {
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("ReadBlock(%v): got %v, want a CorruptionError", m.Ref, err)
			}
			bad = append(bad, m.Ref)
		}
	}
	return bad
}

func packets(metas []BlockMeta) uint64 {
	var n uint64
	for _, m := range metas {
		n += uint64(m.Count)
	}
	return n
}

// reopenAndWrite opens the store for writing, checks that recovery cut
// nothing and changed no file, writes one more block, closes it, and
// returns the recovery and the new block.
func reopenAndWrite(t *testing.T, dir string) (Recovery, BlockMeta) {
	t.Helper()
	before := segSizes(t, dir)
	var hl hookLog
	w, err := Open(Options{Dir: dir, Logger: quietLog, CommitHook: hl.hook})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	rec := w.Recovery()
	if rec.CutAt != -1 || rec.BytesCut != 0 {
		t.Fatalf("Open cut %d bytes at %d (%v) of a store whose bytes were all committed", rec.BytesCut, rec.CutAt, rec.CutReason)
	}
	for n, size := range before {
		if got := segFileSize(t, dir, n); got != size {
			t.Fatalf("Open changed segment %d from %d to %d bytes", n, size, got)
		}
	}
	pool := block.NewPool(1, 8<<10, 16)
	b := getBlock(t, pool)
	fillBlock(b, 1000, 8<<10, payloadText)
	if !w.Submit(b) {
		t.Fatal("Submit: got false")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := hl.all(); len(got) != 1 {
		t.Fatalf("committed after reopening: got %d blocks, want 1", len(got))
	}
	return rec, hl.all()[0]
}

// TestFaultBitFlip flips one bit in each kind of place a block can be hit:
// Verify must name exactly that block, readers must refuse exactly it, and
// reopening for writing must cut nothing, so the store afterwards holds
// every packet but the damaged block's. Before the commit marker decided,
// a flip in the newest segment's last block verified OK as a torn tail and
// the next Open cut it off.
func TestFaultBitFlip(t *testing.T) {
	cases := []struct {
		name   string
		seg    func(newest uint32) uint32
		pick   func(blocks []BlockMeta) BlockMeta
		offset func(recLen int64) int64 // within the record
	}{
		{"newest/first block header", newestSeg, first, at(offCount)},
		{"newest/middle block payload", newestSeg, middle, at(blockHeaderLen + 100)},
		{"newest/last block header", newestSeg, last, at(offMinTS)},
		{"newest/last block header crc", newestSeg, last, at(offHdrCRC)},
		{"newest/last block payload", newestSeg, last, at(blockHeaderLen + 500)},
		{"newest/last block trailing crc", newestSeg, last, func(n int64) int64 { return n - 1 }},
		{"sealed/first block header", firstSeg, first, at(offRef)},
		{"sealed/last block payload", firstSeg, last, at(blockHeaderLen + 500)},
		{"sealed/last block trailing crc", firstSeg, last, func(n int64) int64 { return n - 2 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, metas := faultStore(t)
			seg := c.seg(metas[len(metas)-1].Ref.Segment())
			victim := c.pick(segBlocks(metas, seg))
			path := filepath.Join(segmentsDir(dir), segmentName(seg))
			flipByte(t, path, int64(victim.Ref.Offset())+c.offset(recordLen(t, dir, metas, victim)))
			want := packets(metas) - uint64(victim.Count)

			checkOneBad(t, dir, victim, want, "before reopening")
			if bad := unreadable(t, dir, metas); len(bad) != 1 || bad[0] != victim.Ref {
				t.Fatalf("unreadable blocks: got %v, want only %v", bad, victim.Ref)
			}
			rec, added := reopenAndWrite(t, dir)
			if seg == metas[len(metas)-1].Ref.Segment() &&
				(len(rec.Corrupt) != 1 || rec.Corrupt[0].Offset != int64(victim.Ref.Offset())) {
				t.Fatalf("recovery of the damaged newest segment: got %+v, want the block at %d reported", rec, victim.Ref.Offset())
			}
			checkOneBad(t, dir, victim, want+uint64(added.Count), "after reopening and writing")
			if bad := unreadable(t, dir, append(metas, added)); len(bad) != 1 || bad[0] != victim.Ref {
				t.Fatalf("unreadable blocks after reopening: got %v, want only %v", bad, victim.Ref)
			}
		})
	}
}

func newestSeg(n uint32) uint32      { return n }
func firstSeg(uint32) uint32         { return 1 }
func first(b []BlockMeta) BlockMeta  { return b[0] }
func middle(b []BlockMeta) BlockMeta { return b[len(b)/2] }
func last(b []BlockMeta) BlockMeta   { return b[len(b)-1] }
func at(off int64) func(int64) int64 { return func(int64) int64 { return off } }

// checkOneBad verifies dir and wants exactly victim reported bad, and
// packets packets in the valid blocks.
func checkOneBad(t *testing.T, dir string, victim BlockMeta, packets uint64, when string) {
	t.Helper()
	rep, err := Verify(dir, nil)
	if err != nil {
		t.Fatalf("%s: Verify: %v", when, err)
	}
	if rep.OK() || rep.BadBlocks != 1 || rep.MarkerErr != nil {
		t.Fatalf("%s: Verify: got OK %v, %d bad blocks, marker error %v; want 1 bad block", when, rep.OK(), rep.BadBlocks, rep.MarkerErr)
	}
	for _, s := range rep.Segments {
		if len(s.Bad) == 1 && (s.Number != victim.Ref.Segment() || s.Bad[0].Offset != int64(victim.Ref.Offset())) {
			t.Fatalf("%s: Verify names segment %d offset %d (%v), the damage is in %v", when, s.Number, s.Bad[0].Offset, s.Bad[0].Err, victim.Ref)
		}
		if s.TailBytes != 0 {
			t.Fatalf("%s: Verify: segment %d has a %d-byte tail, want none (every byte is committed)", when, s.Number, s.TailBytes)
		}
	}
	if rep.Packets != packets {
		t.Fatalf("%s: Verify: got %d packets in valid blocks, want %d", when, rep.Packets, packets)
	}
}

// TestFaultDamageAcrossBlocks damages the bytes either side of the boundary
// between two blocks, so one bad region holds two blocks: Verify must count
// two bad blocks, as many as readers refuse (it used to count the region as
// one, while a query skipped both).
func TestFaultDamageAcrossBlocks(t *testing.T) {
	for _, seg := range []string{"sealed", "newest"} {
		t.Run(seg, func(t *testing.T) {
			dir, metas := faultStore(t)
			n := uint32(1)
			if seg == "newest" {
				n = metas[len(metas)-1].Ref.Segment()
			}
			blocks := segBlocks(metas, n)
			a, b := blocks[1], blocks[2]
			path := filepath.Join(segmentsDir(dir), segmentName(n))
			for off := int64(b.Ref.Offset()) - 8; off < int64(b.Ref.Offset())+8; off++ {
				flipByte(t, path, off)
			}
			bad := unreadable(t, dir, metas)
			if len(bad) != 2 || bad[0] != a.Ref || bad[1] != b.Ref {
				t.Fatalf("unreadable: got %v, want %v and %v", bad, a.Ref, b.Ref)
			}
			rep, err := Verify(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.BadBlocks != len(bad) {
				t.Fatalf("Verify counts %d bad blocks, readers refuse %d", rep.BadBlocks, len(bad))
			}
			s := rep.Segments[n-1]
			if len(s.Bad) != 2 || s.Bad[0].Offset != int64(a.Ref.Offset()) || s.Bad[1].Offset != int64(b.Ref.Offset()) {
				t.Fatalf("Verify names %v, want blocks at %d and %d", s.Bad, a.Ref.Offset(), b.Ref.Offset())
			}
			if want := packets(metas) - uint64(a.Count+b.Count); rep.Packets != want {
				t.Fatalf("Verify: got %d packets, want %d", rep.Packets, want)
			}
		})
	}
}

// TestFaultTruncate cuts segment files short, inside a block, at a block
// boundary and inside the header: Verify must report the committed bytes
// missing, and reopening for writing must not cut anything more.
func TestFaultTruncate(t *testing.T) {
	cases := []struct {
		name string
		seg  func(newest uint32) uint32
		// cut returns where to cut and the first block lost.
		cut func(blocks []BlockMeta) (int64, int)
		// lasting: the damage is still visible once a writer has moved
		// the commit marker past the segment (a cut inside a block
		// leaves bytes that are no block; a clean cut leaves none).
		lasting bool
	}{
		{"newest/inside last block", newestSeg, func(b []BlockMeta) (int64, int) { return int64(b[len(b)-1].Ref.Offset()) + 100, len(b) - 1 }, true},
		{"newest/inside last block header", newestSeg, func(b []BlockMeta) (int64, int) { return int64(b[len(b)-1].Ref.Offset()) + 10, len(b) - 1 }, true},
		{"newest/inside middle block", newestSeg, func(b []BlockMeta) (int64, int) { return int64(b[1].Ref.Offset()) + 3000, 1 }, true},
		{"newest/at a block boundary", newestSeg, func(b []BlockMeta) (int64, int) { return int64(b[len(b)-1].Ref.Offset()), len(b) - 1 }, false},
		{"sealed/inside last block", firstSeg, func(b []BlockMeta) (int64, int) { return int64(b[len(b)-1].Ref.Offset()) + 100, len(b) - 1 }, true},
		// Not here: a sealed segment cut at a block boundary. The marker
		// holds only the newest segment's size, so such a cut is seen only
		// by readers, whose refs from the index point past the end.
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, metas := faultStore(t)
			seg := c.seg(metas[len(metas)-1].Ref.Segment())
			blocks := segBlocks(metas, seg)
			cut, lost := c.cut(blocks)
			if err := os.Truncate(filepath.Join(segmentsDir(dir), segmentName(seg)), cut); err != nil {
				t.Fatal(err)
			}
			want := packets(metas) - packets(blocks[lost:])

			rep, err := Verify(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := rep.Segments[seg-1]
			if rep.OK() || len(s.Bad) == 0 || s.Bad[0].Offset > cut || s.TailBytes != 0 {
				t.Fatalf("Verify of segment %d cut at %d: got OK %v, bad %v, tail %d; want the cut reported", seg, cut, rep.OK(), s.Bad, s.TailBytes)
			}
			if rep.Packets != want {
				t.Fatalf("Verify: got %d packets, want %d", rep.Packets, want)
			}
			if bad := unreadable(t, dir, metas); len(bad) != len(blocks)-lost {
				t.Fatalf("unreadable: got %d blocks, want the %d cut off", len(bad), len(blocks)-lost)
			}
			rec, added := reopenAndWrite(t, dir)
			if seg == metas[len(metas)-1].Ref.Segment() && len(rec.Corrupt) == 0 {
				t.Fatalf("recovery of the cut newest segment reported nothing: %+v", rec)
			}
			rep, err = Verify(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Packets != want+uint64(added.Count) {
				t.Fatalf("after reopening: Verify got %d packets, want %d", rep.Packets, want+uint64(added.Count))
			}
			if c.lasting && (rep.OK() || rep.Segments[seg-1].Bad[0].Offset != int64(blocks[lost].Ref.Offset())) {
				t.Fatalf("after reopening: Verify got OK %v, bad %v; want the cut block at %d reported", rep.OK(), rep.Segments[seg-1].Bad, blocks[lost].Ref.Offset())
			}
		})
	}
}

// TestFaultMarker damages the commit marker itself: Verify must report it,
// and Open must cut nothing it cannot prove uncommitted, then write a sound
// marker.
func TestFaultMarker(t *testing.T) {
	markerPath := func(dir string) string { return filepath.Join(dir, markerName) }
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string, newest uint32)
	}{
		{"bit flip", func(t *testing.T, dir string, _ uint32) { flipByte(t, markerPath(dir), 9) }},
		{"crc bit flip", func(t *testing.T, dir string, _ uint32) { flipByte(t, markerPath(dir), 17) }},
		{"truncated", func(t *testing.T, dir string, _ uint32) {
			if err := os.Truncate(markerPath(dir), 10); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing", func(t *testing.T, dir string, _ uint32) {
			if err := os.Remove(markerPath(dir)); err != nil {
				t.Fatal(err)
			}
		}},
		{"names a segment that is gone", func(t *testing.T, dir string, newest uint32) {
			if err := os.WriteFile(markerPath(dir), appendMarker(nil, newest+2, 4096), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		for _, torn := range []bool{false, true} {
			name := c.name
			if torn {
				name += "/with a torn tail"
			}
			t.Run(name, func(t *testing.T) {
				dir, metas := faultStore(t)
				newest := metas[len(metas)-1].Ref.Segment()
				c.damage(t, dir, newest)
				if torn { // a block half written when the marker went bad
					path := filepath.Join(segmentsDir(dir), segmentName(newest))
					f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
					if err != nil {
						t.Fatal(err)
					}
					f.Write([]byte("TVBK half a record"))
					f.Close()
				}
				rep, err := Verify(dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				// A marker naming a later segment says the newest is
				// committed whole: a tail there is damage.
				wantBad := 0
				if torn && c.name == "names a segment that is gone" {
					wantBad = 1
				}
				if rep.OK() || rep.MarkerErr == nil || rep.BadBlocks != wantBad || rep.Packets != packets(metas) {
					t.Fatalf("Verify: got OK %v, marker error %v, %d bad, %d packets; want the marker reported, %d bad and %d packets",
						rep.OK(), rep.MarkerErr, rep.BadBlocks, rep.Packets, wantBad, packets(metas))
				}
				rec, added := reopenAndWrite(t, dir)
				if torn != (len(rec.Corrupt) > 0 && strings.Contains(rec.Corrupt[len(rec.Corrupt)-1].Error(), "kept")) && c.name != "names a segment that is gone" {
					t.Fatalf("recovery: got %+v; want the unprovable tail kept and reported only when there is one", rec)
				}
				if c.name == "names a segment that is gone" {
					if len(rec.Corrupt) == 0 || !strings.Contains(rec.Corrupt[0].Error(), "missing") {
						t.Fatalf("recovery: got %+v, want the missing segments reported", rec)
					}
					if got := added.Ref.Segment(); got != newest+3 {
						t.Fatalf("block written after recovery went to segment %d, want %d (numbers of missing segments are not reused)", got, newest+3)
					}
				}
				rep, err = Verify(dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				if rep.MarkerErr != nil || rep.Packets != packets(metas)+uint64(added.Count) {
					t.Fatalf("after reopening: Verify got marker error %v, %d packets; want a sound marker and %d packets",
						rep.MarkerErr, rep.Packets, packets(metas)+uint64(added.Count))
				}
				// The kept tail is now committed bytes that hold no block.
				if wantBad := map[bool]int{false: 0, true: 1}[torn]; rep.BadBlocks != wantBad {
					t.Fatalf("after reopening: Verify got %d bad blocks, want %d", rep.BadBlocks, wantBad)
				}
			})
		}
	}
}

// TestFaultSegmentHeader flips a bit in the header of the newest segment
// and of a sealed one: Verify must report the header, yet every block stays
// readable (each carries its own ref and CRCs) and reopening cuts nothing.
// Before, readers refused every block of such a segment, while Verify
// counted one bad block.
func TestFaultSegmentHeader(t *testing.T) {
	for _, c := range []struct {
		name string
		seg  func(newest uint32) uint32
	}{{"newest", newestSeg}, {"sealed", firstSeg}} {
		t.Run(c.name, func(t *testing.T) {
			dir, metas := faultStore(t)
			seg := c.seg(metas[len(metas)-1].Ref.Segment())
			flipByte(t, filepath.Join(segmentsDir(dir), segmentName(seg)), 9) // the segment number
			check := func(when string, packets uint64) {
				t.Helper()
				rep, err := Verify(dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK() || rep.BadHeaders != 1 || rep.Segments[seg-1].HeaderErr == nil || rep.BadBlocks != 0 || rep.Packets != packets {
					t.Fatalf("%s: Verify got OK %v, %d bad headers, %d bad blocks, %d packets; want segment %d's header reported, no bad block, %d packets",
						when, rep.OK(), rep.BadHeaders, rep.BadBlocks, rep.Packets, seg, packets)
				}
			}
			check("before reopening", packets(metas))
			if bad := unreadable(t, dir, metas); len(bad) != 0 {
				t.Fatalf("unreadable: got %v, want none", bad)
			}
			_, added := reopenAndWrite(t, dir)
			check("after reopening", packets(metas)+uint64(added.Count))
		})
	}
}

// TestMarkerCoversStoreAfterClose: a store closed cleanly has a marker
// covering every byte of every segment, so nothing in it can be taken for
// a torn tail; so does a store opened and closed without a write.
func TestMarkerCoversStoreAfterClose(t *testing.T) {
	dir, metas := faultStore(t)
	check := func(when string) {
		t.Helper()
		m := readMarker(dir)
		newest := metas[len(metas)-1].Ref.Segment()
		if !m.ok || m.seg != newest || m.size != segFileSize(t, dir, newest) {
			t.Fatalf("%s: marker %+v, want segment %d size %d", when, m, newest, segFileSize(t, dir, newest))
		}
	}
	check("after Close")
	w, err := Open(Options{Dir: dir, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	check("after an Open and Close with no write")
}

// TestFaultSegmentCutInHeader cuts the newest segment inside its header:
// Open must leave it as it is and start, and Verify must report the header
// and the committed bytes missing, also after the reopen rewrote the
// marker.
func TestFaultSegmentCutInHeader(t *testing.T) {
	dir, metas := faultStore(t)
	newest := metas[len(metas)-1].Ref.Segment()
	if err := os.Truncate(filepath.Join(segmentsDir(dir), segmentName(newest)), 10); err != nil {
		t.Fatal(err)
	}
	want := packets(metas) - packets(segBlocks(metas, newest))
	check := func(when string, packets uint64, wantBad int) {
		t.Helper()
		rep, err := Verify(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() || rep.BadHeaders != 1 || rep.MarkerErr != nil || rep.BadBlocks != wantBad || rep.Packets != packets {
			t.Fatalf("%s: Verify got OK %v, %d bad headers, marker error %v, %d bad blocks, %d packets; want 1 bad header, %d bad, %d packets",
				when, rep.OK(), rep.BadHeaders, rep.MarkerErr, rep.BadBlocks, rep.Packets, wantBad, packets)
		}
	}
	check("before reopening", want, 1) // and the file ends short of the committed size
	rec, added := reopenAndWrite(t, dir)
	if len(rec.Corrupt) != 1 || rec.Corrupt[0].Offset != 0 {
		t.Fatalf("recovery: got %+v, want the segment header reported", rec)
	}
	check("after reopening", want+uint64(added.Count), 0)
}

// TestFaultStaleMarker is what a machine crash can leave: a marker behind
// the blocks that were synced (it is synced at most every MarkerSyncEvery),
// and a torn block after them. Recovery must keep every valid block past
// the stale marker and cut only the torn bytes.
func TestFaultStaleMarker(t *testing.T) {
	dir, metas := faultStore(t)
	newest := metas[len(metas)-1].Ref.Segment()
	blocks := segBlocks(metas, newest)
	if err := os.WriteFile(filepath.Join(dir, markerName), appendMarker(nil, newest, int64(blocks[1].Ref.Offset())), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(segmentsDir(dir), segmentName(newest))
	size := segFileSize(t, dir, newest)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("TVBK a torn record"))
	f.Close()
	rep, err := Verify(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Packets != packets(metas) || rep.Segments[newest-1].TailBytes != 18 {
		t.Fatalf("Verify: got OK %v, %d packets, tail %d; want OK, %d packets, an 18-byte tail", rep.OK(), rep.Packets, rep.Segments[newest-1].TailBytes, packets(metas))
	}
	w, err := Open(Options{Dir: dir, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	rec := w.Recovery()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if rec.CutAt != size || rec.BytesCut != 18 || len(rec.Corrupt) != 0 || rec.Blocks != len(blocks) {
		t.Fatalf("recovery: got %+v, want the 18 torn bytes cut at %d and %d blocks kept", rec, size, len(blocks))
	}
	if bad := unreadable(t, dir, metas); len(bad) != 0 {
		t.Fatalf("unreadable after recovery: %v", bad)
	}
}
