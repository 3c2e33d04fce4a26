package dataplane

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"tapvault/pcap"
	"testing"
)

// benchFile builds a capture of about 16 MiB of packets of the given size.
func benchFile(ng bool, size int) ([]byte, int) {
	n := 16 << 20 / (size + 32)
	d := payload(1, size)
	if !ng {
		pkts := make([]tpkt, n)
		for i := range pkts {
			pkts[i] = tpkt{ts: int64(i) * 1000, data: d, wire: uint32(size)}
		}
		return appendPcap(nil, binary.LittleEndian, true, pcap.LinkTypeEthernet, pkts), n
	}
	g := &ngBuilder{}
	g.shb(binary.LittleEndian)
	g.idb(pcap.LinkTypeEthernet, 0, "eth0", 9, 0)
	for i := 0; i < n; i++ {
		g.epb(0, uint64(i)*1000, d, uint32(size))
	}
	return g.buf, n
}

// BenchmarkFileSource reads pcap and pcapng through Recv. One op is one
// packet; MB/s counts file bytes. "mem" reads from memory (the parser
// alone), "file" from a file in the page cache (what import sees).
func BenchmarkFileSource(b *testing.B) {
	for _, format := range []string{"pcap", "pcapng"} {
		for _, size := range []int{64, 594, 1518} {
			file, n := benchFile(format == "pcapng", size)
			path := filepath.Join(b.TempDir(), "bench."+format)
			if err := os.WriteFile(path, file, 0o644); err != nil {
				b.Fatal(err)
			}
			for _, from := range []string{"mem", "file"} {
				b.Run(fmt.Sprintf("format=%s/size=%d/from=%s", format, size, from), func(b *testing.B) {
					open := func() *FileSource {
						var s *FileSource
						var err error
						if from == "mem" {
							s, err = newFileSource("mem", bytes.NewReader(file), int64(len(file)), nil)
						} else {
							s, err = OpenFile(path)
						}
						if err != nil {
							b.Fatal(err)
						}
						return s
					}
					b.SetBytes(int64(len(file) / n))
					b.ReportAllocs()
					s := open()
					var burst Burst
					b.ResetTimer()
					for got := 0; got < b.N; {
						k, err := s.Recv(&burst)
						got += k
						if err == io.EOF {
							s.Close()
							s = open()
						} else if err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					s.Close()
				})
			}
		}
	}
}
