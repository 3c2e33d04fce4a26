package query

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"tapvault/block"
	"tapvault/writer"
)

// TestStatsSegmentDirs: a store over two segment directories reports each
// one's segments and bytes, adding up to the store's.
func TestStatsSegmentDirs(t *testing.T) {
	dir := t.TempDir()
	d1, d2 := filepath.Join(t.TempDir(), "d1"), filepath.Join(t.TempDir(), "d2")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := writer.Open(writer.Options{Dir: dir, SegmentDirs: []string{d1, d2}, SegmentSize: writer.MinSegmentSize, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	pool := block.NewPool(2, 8192, 16)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 5 {
		b := pool.Get()
		for b == nil {
			b = pool.Get()
		}
		data := make([]byte, 3000) // incompressible: a segment a block
		for j := range data {
			data[j] = byte(rnd.Uint32())
		}
		b.Data = appendRec(b.Data, int64(1000+i), data)
		b.MinTS, b.MaxTS, b.Count = int64(1000+i), int64(1000+i), 1
		if !w.Submit(b) {
			t.Fatal("Submit: false")
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Packets != 5 || s.Segments != 5 || len(s.SegmentDirs) != 3 {
		t.Fatalf("stats: %d packets, %d segments, dirs %+v: want 5, 5, three directories", s.Packets, s.Segments, s.SegmentDirs)
	}
	var n int
	var bytes int64
	for _, d := range s.SegmentDirs {
		n += d.Segments
		bytes += d.Bytes
	}
	if got := [3]int{s.SegmentDirs[0].Segments, s.SegmentDirs[1].Segments, s.SegmentDirs[2].Segments}; got != [3]int{0, 3, 2} || n != s.Segments || bytes != s.SegmentBytes {
		t.Fatalf("per directory %+v: want 0, 3, 2 segments adding up to %d segments, %d bytes", s.SegmentDirs, s.Segments, s.SegmentBytes)
	}
}

// TestStatsSealedCache: Stats reads each sealed segment's headers once and
// only the newest segment's again, and still gives what adding up Blocks
// gives while a writer appends and retention drops segments.
func TestStatsSealedCache(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := writer.Open(writer.Options{Dir: dir, SegmentSize: 16 << 10, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pool := block.NewPool(2, 8192, 16)
	rnd := rand.New(rand.NewPCG(3, 4))
	ts := int64(1000)
	write := func(n int) {
		before := w.Stats().BlocksCommitted
		for range n {
			b := pool.Get()
			for b == nil {
				b = pool.Get()
			}
			data := make([]byte, 3000+rnd.IntN(1000))
			for j := range data {
				data[j] = byte(rnd.Uint32())
			}
			ts += int64(rnd.IntN(50)) - 10 // a little disorder
			b.Data = appendRec(b.Data, ts, data)
			b.MinTS, b.MaxTS, b.Count, b.Bytes = ts, ts, 1, uint64(len(data))
			if !w.Submit(b) {
				t.Fatal("Submit: false")
			}
		}
		for w.Stats().BlocksCommitted < before+uint64(n) {
			time.Sleep(time.Millisecond)
		}
	}
	st, err := OpenStore(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	check := func(what string, wantScans int64) {
		t.Helper()
		s0 := statsScans.Load()
		got, err := st.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if n := statsScans.Load() - s0; wantScans >= 0 && n != wantScans {
			t.Fatalf("%s: %d segments read, want %d", what, n, wantScans)
		}
		blocks, err := st.Blocks(MinTime, MaxTime)
		if err != nil {
			t.Fatal(err)
		}
		var want StoreStats
		for i, b := range blocks {
			if i == 0 || b.MinTS < want.FirstNS {
				want.FirstNS = b.MinTS
			}
			if i == 0 || b.MaxTS > want.LastNS {
				want.LastNS = b.MaxTS
			}
			want.Packets += uint64(b.Count)
			want.WireBytes += b.WireBytes
			want.RawBytes += uint64(b.RawLen)
			want.StoredBytes += uint64(b.StoredLen)
		}
		if got.Blocks != len(blocks) || got.Packets != want.Packets || got.WireBytes != want.WireBytes || got.RawBytes != want.RawBytes ||
			got.StoredBytes != want.StoredBytes || got.FirstNS != want.FirstNS || got.LastNS != want.LastNS {
			t.Fatalf("%s: stats %+v, want %d blocks and %+v", what, got, len(blocks), want)
		}
	}
	write(20)
	segs, _ := st.R.Segments()
	if len(segs) < 4 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	check("first", int64(len(segs)))
	check("again", 1) // the newest only
	write(10)
	segs2, _ := st.R.Segments()
	check("after more blocks", int64(len(segs2)-len(segs)+1))
	if err := w.DropSegment(segs[0].Number); err != nil {
		t.Fatal(err)
	}
	check("after retention", 1)
	if _, ok := st.sealed[segs[0].Number]; ok {
		t.Fatal("a dropped segment's totals are still kept")
	}
}
