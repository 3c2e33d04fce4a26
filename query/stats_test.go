package query

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"

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
