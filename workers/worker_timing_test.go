package workers

import (
	"testing"

	"tapvault/block"
	"tapvault/dataplane"
	"tapvault/pcap"
)

// releaseSink takes every block and recycles it at once, so the benchmark
// measures the worker alone.
type releaseSink struct{}

func (releaseSink) Submit(b *block.Block) bool { b.Release(); return true }

// BenchmarkWorker measures the per-packet cost of the whole worker path:
// decode, flow lookup, per-block flow summary and the copy into the block.
// One op is one packet.
func BenchmarkWorker(b *testing.B) {
	cases := []struct {
		name  string
		sizes []int // cycled
		flows int
	}{
		{"size=64", []int{60}, 1024},
		// IMIX 7:4:1 of 64/594/1518-byte frames (captured lengths without FCS)
		{"mix=imix", []int{60, 60, 590, 60, 60, 590, 1514, 60, 590, 60, 60, 590}, 10000},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			// The worker (its block pool) first, then the frames: the
			// other way round the pool lands elsewhere in the heap and the
			// 64-byte case measures 10 % slower for it (docs/PERFORMANCE.md,
			// issue 10).
			w := NewWorker(Config{Pool: block.NewPool(4, block.DefaultSize, DefaultMaxBlockFlows), Sink: releaseSink{}})
			const n = 4096
			var pkts [n]dataplane.Packet
			var bytes int64
			for i := range pkts {
				sz := c.sizes[i%len(c.sizes)]
				f := i % c.flows
				src := [4]byte{10, byte(f >> 16), byte(f >> 8), byte(f)}
				pkts[i] = dataplane.Packet{Data: udpFrame(sz, src, [4]byte{192, 168, 0, 1}, uint16(1024+f%5000), 443, byte(i)),
					TS: int64(i) * 100, WireLen: uint32(sz + 4), LinkType: pcap.LinkTypeEthernet}
				bytes += int64(sz)
			}
			var burst dataplane.Burst
			b.SetBytes(bytes / n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				burst.N = 0
				for burst.N < 32 && i < b.N {
					p := pkts[i%n]
					p.TS = int64(i) * 100
					burst.Pkts[burst.N] = p
					burst.N++
					i++
				}
				w.ProcessBurst(&burst, 0)
			}
		})
	}
}
