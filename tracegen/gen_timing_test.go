package tracegen

import (
	"io"
	"testing"
)

// BenchmarkGenerate measures trace generation into io.Discard (frames plus
// pcap records). One op is one packet; MB/s counts frame bytes.
func BenchmarkGenerate(b *testing.B) {
	for _, kind := range []string{KindUDP64, KindIMIX, KindMixed} {
		b.Run("kind="+kind, func(b *testing.B) {
			b.ReportAllocs()
			st, err := Generate(io.Discard, Options{Kind: kind, Packets: b.N, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(st.Bytes / int64(b.N)) // read when the benchmark ends

		})
	}
}

// BenchmarkGenerateFrames is the in-memory path (no pcap records).
func BenchmarkGenerateFrames(b *testing.B) {
	for _, kind := range []string{KindUDP64, KindIMIX} {
		b.Run("kind="+kind, func(b *testing.B) {
			b.ReportAllocs()
			st, err := GenerateFrames(Options{Kind: kind, Packets: b.N, Seed: 1}, func(int64, []byte) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(st.Bytes / int64(b.N))
		})
	}
}
