package writer

import (
	"fmt"
	"tapvault/block"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

var benchKinds = []struct {
	name string
	kind int
}{{"imix-text", payloadText}, {"imix-mixed", payloadMixed}, {"random", payloadRandom}}

func benchBlock(kind int) *block.Block {
	b := block.NewPool(1, block.DefaultSize, 64).Get()
	fillBlock(b, 1, block.DefaultSize, kind)
	return b
}

// BenchmarkBuildRecord is the compressor's work per block: summary encode,
// two EncodeAll calls (or the raw copy) into a reused buffer.
func BenchmarkBuildRecord(b *testing.B) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	for _, k := range benchKinds {
		blk := benchBlock(k.kind)
		for _, codec := range []string{"zstd", "raw"} {
			b.Run(fmt.Sprintf("data=%s/codec=%s/size=1MiB", k.name, codec), func(b *testing.B) {
				e := enc
				if codec == "raw" {
					e = nil
				}
				var rb recBuf
				buildRecord(&rb, blk, e, 0) // size the buffers
				b.SetBytes(int64(len(blk.Data)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					buildRecord(&rb, blk, e, 0)
				}
				b.ReportMetric(float64(len(rb.rec))/float64(len(blk.Data)), "ratio")
			})
		}
	}
}

// BenchmarkSealRecord is the write goroutine's CPU work per block: patch the
// ref, CRC32C the header and the whole record.
func BenchmarkSealRecord(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			rec := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sealRecord(rec, MakeRef(1, uint32(i)))
			}
		})
	}
}

// BenchmarkWriter runs the whole writer: Submit, compress, append, group
// commit (fdatasync on the test's temp dir), hook, release. Each iteration
// copies a prepared 1 MiB block into a pool block (a memcpy, as a worker
// fills one) and submits it; a refused block is retried.
func BenchmarkWriter(b *testing.B) {
	for _, k := range benchKinds {
		tmpl := benchBlock(k.kind)
		for _, comp := range []int{1, 2} {
			b.Run(fmt.Sprintf("data=%s/compressors=%d/size=1MiB", k.name, comp), func(b *testing.B) {
				const poolN = 16
				pool := block.NewPool(poolN, block.DefaultSize, 64)
				w, err := Open(Options{Dir: b.TempDir(), Compressors: comp, QueueLen: poolN, Logger: quietLog})
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
					for !w.Submit(blk) {
						time.Sleep(20 * time.Microsecond)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				st := w.Stats()
				b.ReportMetric(float64(st.StoredBytes)/float64(st.RawBytes), "ratio")
				b.ReportMetric(float64(st.RawBehind)/float64(b.N), "rawbehind/op")
				if st.Fsyncs > 0 {
					b.ReportMetric(float64(st.FsyncNanos)/float64(st.Fsyncs)/1e6, "ms/fsync")
					b.ReportMetric(float64(st.BlocksCommitted)/float64(st.Fsyncs), "blocks/fsync")
				}
			})
		}
	}
}

// BenchmarkReadBlock reads, CRC-checks and decompresses one 1 MiB block.
func BenchmarkReadBlock(b *testing.B) {
	for _, k := range benchKinds {
		b.Run(fmt.Sprintf("data=%s/size=1MiB", k.name), func(b *testing.B) {
			dir := b.TempDir()
			var hl hookLog
			w, err := Open(Options{Dir: dir, CommitHook: hl.hook, Logger: quietLog})
			if err != nil {
				b.Fatal(err)
			}
			blk := benchBlock(k.kind)
			n := len(blk.Data)
			w.Submit(blk)
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			r, err := OpenReader(dir)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			ref := hl.all()[0].Ref
			var buf BlockBuf
			if _, err := r.ReadBlock(ref, &buf); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := r.ReadBlock(ref, &buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
