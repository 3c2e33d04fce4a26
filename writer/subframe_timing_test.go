package writer

import (
	"testing"

	"tapvault/block"
	"tapvault/tracegen"

	"github.com/klauspost/compress/zstd"
)

// BenchmarkBuildRecordTrace is the compressor's work per 1 MiB block on
// generated traces with real flows: IMIX over 10k interleaved flows (a
// third text payloads, the rest random), and the application trace. ratio
// is the whole record over the raw records and summary, the number the
// issue's compression goal is about.
func BenchmarkBuildRecordTrace(b *testing.B) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	for _, c := range []struct {
		name string
		opts tracegen.Options
	}{
		{"imix-10k", tracegen.Options{Kind: tracegen.KindIMIX, Packets: 30000, Flows: 10000, Seed: 1}},
		{"app", tracegen.Options{Kind: tracegen.KindApp, Packets: 30000, Seed: 1, PPS: 200000}},
	} {
		frames := traceFrames(b, c.opts)
		// Blocks from the middle of the trace, past the handshakes.
		fb := &frameBlocks{frames: frames, tsOf: func(i int) int64 { return int64(i) }}
		pool := block.NewPool(8, block.DefaultSize, block.DefaultMaxFlows)
		var blks []*block.Block
		for fb.next < len(frames) {
			blk := pool.Get()
			fb.fill(blk, block.DefaultSize)
			if len(blk.Data) > block.DefaultSize*9/10 {
				blks = append(blks, blk)
			}
		}
		b.Run("trace="+c.name, func(b *testing.B) {
			var rb recBuf
			var raw, stored int64
			for _, blk := range blks {
				buildRecord(&rb, blk, enc, 0) // size the buffers
				raw += int64(len(blk.Data)) + int64(rb.h.sumRaw)
				stored += int64(len(rb.rec))
			}
			b.SetBytes(raw / int64(len(blks)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				buildRecord(&rb, blks[i%len(blks)], enc, 0)
			}
			b.ReportMetric(float64(stored)/float64(raw), "ratio")
		})
	}
}

// BenchmarkReadBlockTrace is a full read of 1 MiB blocks of the IMIX trace
// (10k flows): read, check, decompress and, in version 2, put the
// sub-frames back in block order. MB/s is raw records and summary.
func BenchmarkReadBlockTrace(b *testing.B) {
	dir := b.TempDir()
	frames := traceFrames(b, tracegen.Options{Kind: tracegen.KindIMIX, Packets: 30000, Flows: 10000, Seed: 1})
	_, metas := storeFrames(b, dir, frames, block.DefaultSize, func(i int) int64 { return int64(i) })
	r, err := OpenReader(dir, WithReaderLogger(quietLog))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var raw int64
	for _, m := range metas {
		raw += int64(m.RawLen)
	}
	var buf BlockBuf
	b.SetBytes(raw / int64(len(metas)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.ReadBlock(metas[i%len(metas)].Ref, &buf); err != nil {
			b.Fatal(err)
		}
	}
}
