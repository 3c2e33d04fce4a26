package query

import (
	"fmt"
	"io"
	"testing"
)

// BenchmarkWriters writes packets to io.Discard. One op is one packet; MB/s
// counts packet bytes.
func BenchmarkWriters(b *testing.B) {
	for _, format := range []string{"pcap", "pcapng"} {
		for _, size := range []int{64, 594, 1518} {
			b.Run(fmt.Sprintf("format=%s/size=%d", format, size), func(b *testing.B) {
				data := outPayload(1, size)
				var w PacketWriter
				var err error
				if format == "pcap" {
					w, err = NewPcapWriter(io.Discard, 1, 0)
				} else {
					w, err = NewPcapngWriter(io.Discard)
				}
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := w.WritePacket(int64(i)*1000, uint32(size), 1, uint16(i&1), data); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
