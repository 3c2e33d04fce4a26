package writer

import (
	"tapvault/block"
	"testing"
	"time"
)

// BenchmarkWriterDisk measures the write path alone, at the disk's speed:
// 1 MiB incompressible blocks go straight to the write queue, as they do
// when the compressors are behind (stored raw: record build, CRC, append,
// group commit with fdatasync, hook, release), on the test's temporary
// directory. Run it with -benchtime=2048x to write 2 GiB, as
// `dd bs=1M count=2048` does, and compare MB/s with dd on the same
// filesystem (docs/PERFORMANCE.md).
func BenchmarkWriterDisk(b *testing.B) {
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"io=buffered", Options{IO: IOBuffered}},
		{"io=direct", Options{IO: IODirect}},
		{"io=direct/preallocate=64MiB", Options{IO: IODirect, Preallocate: 64 << 20}},
	} {
		b.Run(c.name, func(b *testing.B) { benchWriterDisk(b, c.opts) })
	}
}

func benchWriterDisk(b *testing.B, opts Options) {
	tmpl := benchBlock(payloadRandom)
	// As many blocks as a two-worker capture has (pipeline: 32 each):
	// blocks return to the pool only once their group is synced.
	const poolN = 64
	pool := block.NewPool(poolN, block.DefaultSize, 64)
	opts.Dir, opts.QueueLen, opts.Logger = b.TempDir(), poolN, quietLog
	w, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(tmpl.Data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var blk *block.Block
		for blk = pool.Get(); blk == nil; blk = pool.Get() {
			time.Sleep(20 * time.Microsecond)
		}
		blk.Data = append(blk.Data[:0], tmpl.Data...)
		blk.Summary.Flows = append(blk.Summary.Flows[:0], tmpl.Summary.Flows...)
		blk.Summary.NonFlow = tmpl.Summary.NonFlow
		blk.Count, blk.MinTS, blk.MaxTS, blk.Bytes = tmpl.Count, tmpl.MinTS, tmpl.MaxTS, tmpl.Bytes
		w.writeQ <- item{b: blk, seq: uint64(i)}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := w.Stats()
	if st.BlocksCommitted != uint64(b.N) {
		b.Fatalf("committed %d of %d blocks", st.BlocksCommitted, b.N)
	}
	if st.Fsyncs > 0 {
		b.ReportMetric(float64(st.FsyncNanos)/float64(st.Fsyncs)/1e6, "ms/fsync")
		b.ReportMetric(float64(st.BlocksCommitted)/float64(st.Fsyncs), "blocks/fsync")
	}
}

// BenchmarkWriterLossless is a lossless source (an import, a net_pcap
// replay) handing 1 MiB IMIX-like blocks, half text and half random, to
// SubmitWait with one compressor: the rate it reaches is what the writer
// lets a lossless replay do. Blocks the compressor has no room for are
// stored raw (rawbehind/op).
func BenchmarkWriterLossless(b *testing.B) {
	tmpl := benchBlock(payloadMixed)
	const poolN = 16
	pool := block.NewPool(poolN, block.DefaultSize, 64)
	w, err := Open(Options{Dir: b.TempDir(), Compressors: 1, QueueLen: poolN / 4, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(tmpl.Data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		blk := pool.GetWait()
		blk.Data = append(blk.Data[:0], tmpl.Data...)
		blk.Summary.Flows = append(blk.Summary.Flows[:0], tmpl.Summary.Flows...)
		blk.Summary.NonFlow = tmpl.Summary.NonFlow
		blk.Count, blk.MinTS, blk.MaxTS, blk.Bytes = tmpl.Count, tmpl.MinTS, tmpl.MaxTS, tmpl.Bytes
		w.SubmitWait(blk)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := w.Stats()
	b.ReportMetric(float64(st.StoredBytes)/float64(st.RawBytes), "ratio")
	b.ReportMetric(float64(st.RawBehind)/float64(b.N), "rawbehind/op")
}
