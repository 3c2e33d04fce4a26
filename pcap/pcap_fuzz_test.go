package pcap

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader checks that no input makes the readers panic, loop or break
// their contracts: at most MaxSnapLen bytes a packet, io.EOF or ErrCorrupt at
// the end, and a warning only wrapping ErrTruncated. Count must not panic
// either, and never counts more packets than the file has blocks.
func FuzzReader(f *testing.F) {
	pkts := testPackets(5)
	for _, v := range variants() {
		f.Add(fuzzSeed(f, v, false, pkts))
		f.Add(fuzzSeed(f, v, true, pkts))
	}
	f.Add([]byte{0x4d, 0x3c, 0xb2, 0xa1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Count(bytes.NewReader(data)); err != nil && errors.Is(err, io.ErrShortBuffer) {
			t.Fatalf("Count: %v", err)
		}
		r, err := NewReader(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		buf := make([]byte, MaxSnapLen)
		for i := 0; ; i++ {
			ci, p, err := r.ReadPacket(buf)
			if err != nil {
				if err == io.EOF {
					if w := r.Warning(); w != nil && !errors.Is(w, ErrTruncated) {
						t.Fatalf("got warning %v, want one wrapping ErrTruncated", w)
					}
					return
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("got error %v, want io.EOF or ErrCorrupt", err)
				}
				return
			}
			if len(p) > MaxSnapLen || ci.WireLen < uint32(len(p)) {
				t.Fatalf("got %d bytes of wire length %d", len(p), ci.WireLen)
			}
			if int(ci.Iface) >= len(r.Interfaces()) {
				t.Fatalf("got interface %d of %d", ci.Iface, len(r.Interfaces()))
			}
			if i > len(data) {
				t.Fatalf("got more packets than input bytes")
			}
		}
	})
}

func fuzzSeed(f *testing.F, v variant, ng bool, pkts []tpkt) []byte {
	var buf bytes.Buffer
	if ng {
		w, err := NewNgWriter(&buf, WithByteOrder(v.bo), WithResolution(v.resol))
		if err != nil {
			f.Fatal(err)
		}
		w.AddInterface(1, 0)
		for _, p := range pkts {
			w.WritePacket(p.ts, p.wire, 0, p.data[:min(len(p.data), 40)])
		}
		w.Flush()
		return buf.Bytes()
	}
	w, err := NewWriter(&buf, 1, 0, WithByteOrder(v.bo), WithResolution(v.resol))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range pkts {
		w.WritePacket(p.ts, p.wire, p.data[:min(len(p.data), 40)])
	}
	w.Flush()
	return buf.Bytes()
}
