package tracegen

import (
	"io"
	"testing"
)

// BenchmarkAppGenerate measures app trace generation: frames (serialised,
// not written), the pcap writer on top, and ground truth alone.
func BenchmarkAppGenerate(b *testing.B) {
	opts := Options{Kind: KindApp, Packets: 100000, Seed: 1, PPS: 1e5}
	st, err := GenerateFrames(opts, func(int64, []byte) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	b.Run("out=frames", func(b *testing.B) {
		b.SetBytes(st.Bytes)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := GenerateFrames(opts, func(int64, []byte) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("out=pcap", func(b *testing.B) {
		b.SetBytes(st.Bytes)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Generate(io.Discard, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("out=truth", func(b *testing.B) {
		b.SetBytes(st.Bytes)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := AppGroundTruth(opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}
