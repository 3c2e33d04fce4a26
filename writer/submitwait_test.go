package writer

import (
	"tapvault/block"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestSubmitWaitStoresRawWhenBehind: a lossless source that outruns the
// compressors (one, at zstd's slowest level, against submissions that take
// microseconds) gets its overflow stored raw instead of waiting for zstd,
// and loses nothing although it submits far more blocks than the two queues
// hold: SubmitWait waits for the write queue when it is full. The raw
// blocks do not overtake the compressed ones: blocks are written, and
// committed, in the order submitted.
func TestSubmitWaitStoresRawWhenBehind(t *testing.T) {
	for _, io := range ioModes {
		t.Run("io="+io.String(), func(t *testing.T) {
			skipNoDirect(t, io)
			dir := t.TempDir()
			const n, size = 12, 1 << 20
			pool := block.NewPool(n, size, 16)
			var hl hookLog
			w, err := Open(Options{Dir: dir, IO: io, Compressors: 1, QueueLen: 2, Level: zstd.SpeedBestCompression,
				CommitHook: hl.hook, Logger: quietLog})
			if err != nil {
				t.Fatal(err)
			}
			blocks := make([]*block.Block, n)
			wants := map[int64]want{}
			var order []int64 // MinTS in submission order
			for i := range blocks {
				blocks[i] = getBlock(t, pool)
				fillBlock(blocks[i], uint64(i+1), size, payloadText)
				wants[blocks[i].MinTS] = wantOf(blocks[i])
				order = append(order, blocks[i].MinTS)
			}
			for i, b := range blocks {
				if !w.SubmitWait(b) {
					t.Fatalf("SubmitWait of block %d: false on an open writer", i)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			st := w.Stats()
			if st.BlocksCommitted != n || st.BlocksLost != 0 || st.Rejected != 0 || st.RawBehind == 0 {
				t.Fatalf("stats: got %d committed, %d lost, %d rejected, %d raw behind; want %d, 0, 0, >0",
					st.BlocksCommitted, st.BlocksLost, st.Rejected, st.RawBehind, n)
			}
			r, err := OpenReader(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var buf BlockBuf
			for i, m := range hl.all() {
				checkBlock(t, r, m.Ref, wants[m.MinTS], &buf)
				// Written in the order submitted, raw or not.
				if m.MinTS != order[i] {
					t.Fatalf("block %d committed: MinTS %d, want %d (the order submitted)", i, m.MinTS, order[i])
				}
			}
			if w.SubmitWait(getBlock(t, pool)) {
				t.Fatal("SubmitWait after Close: got true")
			}
		})
	}
}

// TestSubmitWaitCompressesAllWhenAsked: with WaitCompress (imports), the
// same slow compressor sets the rate and no block goes raw.
func TestSubmitWaitCompressesAllWhenAsked(t *testing.T) {
	dir := t.TempDir()
	const n, size = 12, 1 << 20
	pool := block.NewPool(n, size, 16)
	w, err := Open(Options{Dir: dir, Compressors: 1, QueueLen: 2, Level: zstd.SpeedBestCompression, WaitCompress: true, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		b := getBlock(t, pool)
		fillBlock(b, uint64(i+1), size, payloadText)
		if !w.SubmitWait(b) {
			t.Fatalf("SubmitWait of block %d: false on an open writer", i)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := w.Stats(); st.BlocksCommitted != n || st.RawBehind != 0 || st.BlocksLost != 0 {
		t.Fatalf("stats: %d committed, %d raw behind, %d lost; want %d, 0, 0", st.BlocksCommitted, st.RawBehind, st.BlocksLost, n)
	}
}
