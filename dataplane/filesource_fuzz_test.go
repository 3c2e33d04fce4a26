package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"tapvault/pcap"
	"testing"
)

// FuzzFileSource feeds arbitrary bytes to the pcap/pcapng reader. It must
// never panic, never loop forever, and every packet it hands out must obey
// the Packet contract.
//
// The reader has many branches, so the fuzzer finds new coverage often and
// spends its time minimising it: run with a bounded minimisation, e.g.
//
//	go test ./dataplane -run XXX -fuzz FuzzFileSource -fuzzminimizetime 200x
func FuzzFileSource(f *testing.F) {
	ng, _ := ngFile()
	f.Add(ng)
	f.Add(ng[:len(ng)-7])
	for _, nano := range []bool{false, true} {
		for _, bo := range []order{binary.LittleEndian, binary.BigEndian} {
			f.Add(appendPcap(nil, bo, nano, pcap.LinkTypeEthernet, pcapPkts(4, nano, pcap.LinkTypeEthernet)))
		}
	}
	g := &ngBuilder{}
	g.shb(binary.BigEndian)
	g.idb(pcap.LinkTypeRaw, 64, "x", 0x80|10, -3)
	g.spb(100, payload(1, 64))
	g.pb(0, 77, payload(2, 30), 30)
	f.Add(g.buf)
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a})

	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := newFileSource("fuzz", bytes.NewReader(data), int64(len(data)), nil)
		if err != nil {
			return
		}
		defer s.Close()
		var b Burst
		total := 0
		for calls := 0; ; calls++ {
			// Every Recv consumes at least one block or record (12 bytes
			// or more), so the number of calls is bounded by the input.
			if calls > len(data)+2 {
				t.Fatalf("Recv called %d times on %d bytes without ending", calls, len(data))
			}
			n, err := s.Recv(&b)
			if n != b.N || n < 0 || n > MaxBurst {
				t.Fatalf("got n %d, b.N %d", n, b.N)
			}
			for _, p := range b.Pkts[:n] {
				if len(p.Data) > MaxFilePacket {
					t.Fatalf("got %d data bytes, more than %d", len(p.Data), MaxFilePacket)
				}
				if int64(p.WireLen) < int64(len(p.Data)) {
					t.Fatalf("got wire length %d below captured %d", p.WireLen, len(p.Data))
				}
				if int(p.Iface) >= len(s.Interfaces()) {
					t.Fatalf("got iface %d of %d interfaces", p.Iface, len(s.Interfaces()))
				}
			}
			total += n
			if s.Offset() > s.Size() {
				t.Fatalf("got offset %d past size %d", s.Offset(), s.Size())
			}
			if err == io.EOF {
				if w := s.Warning(); w != nil && !errors.Is(w, pcap.ErrTruncated) {
					t.Fatalf("got warning %v, want one wrapping pcap.ErrTruncated", w)
				}
				return
			}
			if err != nil {
				if !errors.Is(err, pcap.ErrCorrupt) {
					t.Fatalf("got error %v, want io.EOF or pcap.ErrCorrupt", err)
				}
				return
			}
			if n == 0 {
				t.Fatalf("got 0 packets and no error")
			}
		}
	})
}
