package packet

import (
	"math/rand/v2"
	"strings"
	"tapvault/pcap"
	"testing"
)

// FuzzDecode feeds any bytes as any link type: Decode must not panic, every
// offset must lie within the data, and the flow key and Community-ID of
// whatever came out must be computable.
func FuzzDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 64; i++ {
		s := randomSpec(r)
		s.payload = min(s.payload, 64)
		f.Add(genPacket(f, s), s.link)
	}
	for _, lt := range []uint16{pcap.LinkTypeNull, pcap.LinkTypeEthernet, pcap.LinkTypeRaw,
		pcap.LinkTypeLoop, pcap.LinkTypeLinuxSLL, pcap.LinkTypeIPv4, pcap.LinkTypeIPv6,
		pcap.LinkTypeLinuxSLL2, 0xffff} {
		f.Add([]byte{}, lt)
		f.Add([]byte{0x45}, lt)
		f.Add([]byte{0x60, 0, 0, 0}, lt)
	}
	var dec Decoder
	f.Fuzz(func(t *testing.T, data []byte, lt uint16) {
		var d, again Decoded
		dec.Decode(data, lt, &d)
		if diffs := boundsDiffs(&d, len(data)); len(diffs) > 0 {
			t.Fatalf("link type %d, %d bytes: %s", lt, len(data), strings.Join(diffs, "; "))
		}
		if d.LinkType != lt {
			t.Fatalf("got LinkType %d, want %d", d.LinkType, lt)
		}
		if d.Flags&(FlagIPv4|FlagIPv6) != 0 && d.L3Off < 0 {
			t.Fatalf("IP flags %#x without L3Off", d.Flags)
		}
		if (d.IPVer == 4) != (d.Flags&FlagIPv4 != 0) || (d.IPVer == 6) != (d.Flags&FlagIPv6 != 0) {
			t.Fatalf("IPVer %d disagrees with flags %#x", d.IPVer, d.Flags)
		}
		dec.Decode(data, lt, &again)
		if again != d {
			t.Fatalf("second decode differs: got %+v, want %+v", again, d)
		}
		k, dir, ok := FlowKeyOf(&d)
		dirty := FlowKey{A: [16]byte{1}, PortA: 9, Proto: 6, VLAN: 3, VLAN2: 4}
		if dir2, ok2 := FlowKeyInto(&dirty, &d); dirty != k || dir2 != dir || ok2 != ok {
			t.Fatalf("FlowKeyInto gives %+v %d %v, FlowKeyOf %+v %d %v", dirty, dir2, ok2, k, dir, ok)
		}
		if ok != (d.IPVer != 0) {
			t.Fatalf("FlowKeyOf ok %v for IPVer %d", ok, d.IPVer)
		}
		if ok {
			if dir != DirAB && dir != DirBA {
				t.Fatalf("got direction %d", dir)
			}
			if id := AppendCommunityID(nil, &k, 0); len(id) != CommunityIDLen {
				t.Fatalf("got Community-ID %q, want %d bytes", id, CommunityIDLen)
			}
		}
	})
}
