package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

// tpkt is a packet as a test writes it and expects to read it back.
type tpkt struct {
	ts   int64
	wire uint32
	data []byte
}

// testPackets returns n packets of varied lengths (0 to 1500 bytes, so every
// pcapng padding occurs), with nanosecond timestamps.
func testPackets(n int) []tpkt {
	pkts := make([]tpkt, n)
	for i := range pkts {
		d := make([]byte, (i*397)%1501)
		for j := range d {
			d[j] = byte(i*31 + j)
		}
		pkts[i] = tpkt{ts: 1_700_000_000_123_456_789 + int64(i)*1_000_001, wire: uint32(len(d) + i%3), data: d}
	}
	return pkts
}

// wantTS is ts as a file of resolution r keeps it.
func wantTS(ts int64, r Resolution) int64 {
	if r == Microsecond {
		return ts / 1e3 * 1e3
	}
	return ts
}

// readBuf is readAll's packet buffer.
var readBuf [MaxSnapLen]byte

// readAll reads every packet of b, copying each, and returns them with the
// error that ended the stream.
func readAll(t *testing.T, b []byte) ([]tpkt, []CaptureInfo, *Reader, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b), "mem")
	if err != nil {
		return nil, nil, nil, err
	}
	buf := readBuf[:]
	var got []tpkt
	var cis []CaptureInfo
	for {
		ci, data, err := r.ReadPacket(buf)
		if err != nil {
			return got, cis, r, err
		}
		got = append(got, tpkt{ts: ci.TS, wire: ci.WireLen, data: bytes.Clone(data)})
		cis = append(cis, ci)
	}
}

func checkPackets(t *testing.T, got, want []tpkt, r Resolution) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		w := want[i]
		if got[i].ts != wantTS(w.ts, r) || got[i].wire != w.wire || !bytes.Equal(got[i].data, w.data) {
			t.Fatalf("packet %d: got ts %d wire %d len %d, want ts %d wire %d len %d",
				i, got[i].ts, got[i].wire, len(got[i].data), wantTS(w.ts, r), w.wire, len(w.data))
		}
	}
}

type variant struct {
	name  string
	bo    binary.ByteOrder
	resol Resolution
}

func variants() []variant {
	var vs []variant
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, r := range []Resolution{Microsecond, Nanosecond} {
			vs = append(vs, variant{fmt.Sprintf("%s/resol=%d", bo, r), bo, r})
		}
	}
	return vs
}

func writePcap(t *testing.T, v variant, lt uint16, snap uint32, pkts []tpkt) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, lt, snap, WithByteOrder(v.bo), WithResolution(v.resol), WithBufferSize(512))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(p.ts, p.wire, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeNg writes pkts alternating between two interfaces of link types lt
// and lt+1.
func writeNg(t *testing.T, v variant, lt uint16, pkts []tpkt) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewNgWriter(&buf, WithByteOrder(v.bo), WithResolution(v.resol), WithUserAppl("pcap test"))
	if err != nil {
		t.Fatal(err)
	}
	for i := uint16(0); i < 2; i++ {
		id, err := w.AddInterface(lt+i, 0)
		if err != nil || id != uint32(i) {
			t.Fatalf("AddInterface: got %d, %v, want %d, nil", id, err, i)
		}
	}
	for i, p := range pkts {
		if err := w.WritePacket(p.ts, p.wire, uint32(i%2), p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPcapRoundTrip(t *testing.T) {
	pkts := testPackets(50)
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			b := writePcap(t, v, LinkTypeRaw, 0, pkts)
			got, cis, r, err := readAll(t, b)
			if err != io.EOF || r.Warning() != nil {
				t.Fatalf("got %v and warning %v, want io.EOF and none", err, r.Warning())
			}
			checkPackets(t, got, pkts, v.resol)
			for i, ci := range cis {
				if ci.LinkType != LinkTypeRaw || ci.Iface != 0 {
					t.Fatalf("packet %d: got link type %d iface %d, want %d and 0", i, ci.LinkType, ci.Iface, LinkTypeRaw)
				}
			}
			ifs := r.Interfaces()
			want := Interface{LinkType: LinkTypeRaw, SnapLen: MaxSnapLen, TSResol: uint8(v.resol)}
			if len(ifs) != 1 || ifs[0] != want {
				t.Fatalf("got interfaces %+v, want [%+v]", ifs, want)
			}
			if r.Offset() != int64(len(b)) {
				t.Fatalf("got offset %d, want %d", r.Offset(), len(b))
			}
			// gopacket reads the same file the same way.
			pr, err := pcapgo.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range pkts {
				data, ci, err := pr.ReadPacketData()
				if err != nil || !bytes.Equal(data, w.data) || ci.Timestamp.UnixNano() != wantTS(w.ts, v.resol) || ci.Length != int(w.wire) {
					t.Fatalf("pcapgo packet %d: got %d bytes, %+v, %v", i, len(data), ci, err)
				}
			}
		})
	}
}

func TestPcapngRoundTrip(t *testing.T) {
	pkts := testPackets(50)
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			b := writeNg(t, v, LinkTypeEthernet, pkts)
			got, cis, r, err := readAll(t, b)
			if err != io.EOF || r.Warning() != nil {
				t.Fatalf("got %v and warning %v, want io.EOF and none", err, r.Warning())
			}
			checkPackets(t, got, pkts, v.resol)
			for i, ci := range cis {
				if ci.Iface != uint16(i%2) || ci.LinkType != LinkTypeEthernet+uint16(i%2) {
					t.Fatalf("packet %d: got link type %d iface %d, want %d and %d", i, ci.LinkType, ci.Iface, LinkTypeEthernet+uint16(i%2), i%2)
				}
			}
			ifs := r.Interfaces()
			if len(ifs) != 2 || ifs[1] != (Interface{LinkType: LinkTypeEthernet + 1, TSResol: uint8(v.resol)}) {
				t.Fatalf("got interfaces %+v", ifs)
			}
			pr, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{WantMixedLinkType: true})
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range pkts {
				data, ci, err := pr.ReadPacketData()
				if err != nil || !bytes.Equal(data, w.data) || ci.Timestamp.UnixNano() != wantTS(w.ts, v.resol) || ci.Length != int(w.wire) {
					t.Fatalf("pcapgo packet %d: got %d bytes, %+v, %v", i, len(data), ci, err)
				}
			}
		})
	}
}

// TestCountMatchesReader checks that Count agrees with Reader on whole files.
func TestCountMatchesReader(t *testing.T) {
	pkts := testPackets(20)
	for _, v := range variants() {
		for _, b := range [][]byte{writePcap(t, v, LinkTypeEthernet, 0, pkts), writeNg(t, v, LinkTypeEthernet, pkts)} {
			got, err := Count(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			var max uint32
			for _, p := range pkts {
				max = maxU32(max, uint32(len(p.data)))
			}
			if want := (Counts{Packets: int64(len(pkts)), MaxCapLen: max}); got != want {
				t.Errorf("%s: got %+v, want %+v", v.name, got, want)
			}
		}
	}
	if _, err := Count(strings.NewReader("GIF89a..")); !errors.Is(err, ErrFormat) {
		t.Errorf("got %v, want ErrFormat", err)
	}
}

func maxU32(a, b uint32) uint32 {
	if a > b {
		return a
	}
	return b
}

func TestWriterLimits(t *testing.T) {
	v := variant{"le", binary.LittleEndian, Nanosecond}
	// snaplen cuts the data and keeps the wire length.
	b := writePcap(t, v, LinkTypeEthernet, 100, []tpkt{{ts: 5, wire: 300, data: make([]byte, 300)}})
	got, _, _, err := readAll(t, b)
	if err != io.EOF || len(got) != 1 || len(got[0].data) != 100 || got[0].wire != 300 {
		t.Fatalf("got %+v, %v, want one packet of 100 bytes, wire 300", got, err)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range []int64{-1, (1 << 32) * 1e9} {
		if err := w.WritePacket(ts, 0, nil); err == nil || !strings.Contains(err.Error(), "outside pcap's range") {
			t.Errorf("ts %d: got %v, want an out-of-range error", ts, err)
		}
	}
	ng, err := NewNgWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := ng.WritePacket(0, 0, 0, nil); err == nil {
		t.Error("got nil for a packet of an interface never added, want an error")
	}
	if _, err := ng.AddInterface(LinkTypeEthernet, 0); err != nil {
		t.Fatal(err)
	}
	if err := ng.WritePacket(-1, 0, 0, nil); err == nil {
		t.Error("got nil for a negative timestamp, want an error")
	}
}

// TestShortBuffer checks that a packet that does not fit is left unread.
func TestShortBuffer(t *testing.T) {
	pkts := testPackets(3)[1:] // 397 and 794 bytes
	v := variant{"le", binary.LittleEndian, Nanosecond}
	for name, b := range map[string][]byte{"pcap": writePcap(t, v, 1, 0, pkts), "pcapng": writeNg(t, v, 1, pkts)} {
		r, err := NewReader(bytes.NewReader(b), name)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 400)
		if _, data, err := r.ReadPacket(buf); err != nil || len(data) != 397 {
			t.Fatalf("%s: got %d bytes, %v, want 397 and nil", name, len(data), err)
		}
		off := r.Offset()
		if _, _, err := r.ReadPacket(buf); err != io.ErrShortBuffer || r.Offset() != off {
			t.Fatalf("%s: got %v at offset %d, want io.ErrShortBuffer at %d", name, err, r.Offset(), off)
		}
		if _, data, err := r.ReadPacket(make([]byte, 800)); err != nil || !bytes.Equal(data, pkts[1].data) {
			t.Fatalf("%s: got %d bytes, %v, want packet 2", name, len(data), err)
		}
	}
}

// TestTruncated cuts files at every byte: the packets before the cut are
// delivered, the end is io.EOF, and a cut inside a record leaves a warning
// wrapping ErrTruncated.
func TestTruncated(t *testing.T) {
	pkts := testPackets(4)
	for i := range pkts {
		pkts[i].data = pkts[i].data[:min(len(pkts[i].data), 61)] // keep the cuts few
		pkts[i].wire = uint32(len(pkts[i].data))
	}
	for _, v := range variants() {
		for name, b := range map[string][]byte{"pcap": writePcap(t, v, 1, 0, pkts), "pcapng": writeNg(t, v, 1, pkts)} {
			for cut := 0; cut < len(b); cut++ {
				got, _, r, err := readAll(t, b[:cut])
				if r == nil {
					if err == nil {
						t.Fatalf("%s %s cut %d: NewReader gave no reader and no error", v.name, name, cut)
					}
					continue
				}
				if err != io.EOF {
					t.Fatalf("%s %s cut %d: got %v, want io.EOF", v.name, name, cut, err)
				}
				if len(got) > len(pkts) {
					t.Fatalf("%s %s cut %d: got %d packets", v.name, name, cut, len(got))
				}
				checkPackets(t, got, pkts[:len(got)], v.resol)
				if w := r.Warning(); w != nil && !errors.Is(w, ErrTruncated) {
					t.Fatalf("%s %s cut %d: got warning %v, want one wrapping ErrTruncated", v.name, name, cut, w)
				}
			}
		}
	}
}

func TestGarbage(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "only 0 bytes"},
		{"short", []byte{0xa1, 0xb2}, "only 2 bytes"},
		{"text", []byte("hello, world"), "not a pcap or pcapng file"},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0}, "gzip-compressed"},
		{"pcap header cut", []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0}, "capture file cut short"},
		{"bad byte order", append([]byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0}, make([]byte, 20)...), "byte-order magic"},
	} {
		_, err := NewReader(bytes.NewReader(tc.in), "x.pcap")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "x.pcap") {
			t.Errorf("%s: got %v, want an error naming x.pcap and saying %q", tc.name, err, tc.want)
		}
	}
	// A pcap record claiming more than MaxSnapLen is corrupt, after the
	// packets before it; the error is sticky.
	v := variant{"le", binary.LittleEndian, Nanosecond}
	b := writePcap(t, v, 1, 0, testPackets(2))
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, MaxSnapLen+1)
	b = binary.LittleEndian.AppendUint32(b, MaxSnapLen+1)
	got, _, r, err := readAll(t, b)
	if len(got) != 2 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %d packets and %v, want 2 and ErrCorrupt", len(got), err)
	}
	if _, _, again := r.ReadPacket(make([]byte, 10)); again != err {
		t.Fatalf("got %v after the fault, want the same %v", again, err)
	}
	// A pcapng packet naming an interface the section lacks is corrupt.
	b = writeNg(t, v, 1, testPackets(1))
	var w bytes.Buffer
	ng, _ := NewNgWriter(&w)
	ng.AddInterface(1, 0)
	ng.nIfaces = 6 // write a packet of an interface the file does not describe
	if err := ng.WritePacket(0, 0, 5, []byte{1}); err != nil {
		t.Fatal(err)
	}
	ng.Flush()
	b = append(b, w.Bytes()[28+4:]...) // skip the second SHB (28 B + end of options)
	got, _, _, err = readAll(t, b)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %d packets and %v, want ErrCorrupt", len(got), err)
	}
}

func TestTSConv(t *testing.T) {
	for _, tc := range []struct {
		resol uint8
		off   int64
		units uint64
		want  int64
	}{
		{6, 0, 1700000000123456, 1700000000123456000},
		{9, 0, 1700000000123456789, 1700000000123456789},
		{0, 0, 1700000000, 1700000000 * 1e9},
		{3, 2, 1500, 3500 * 1e6},
		{10, 0, 17000000001234567891, 1700000000123456789},
		{19, 0, 1 << 63, (1 << 63) / 10000000000},
		{0x80, 0, 3, 3e9}, // 2^0 s
		{0x80 | 10, 0, 1024 * 5, 5e9},
		{0x80 | 30, 0, 3 << 30, 3e9},
		{0x80 | 64, 0, 1 << 63, 5e8},
		{0x80 | 70, 0, 1 << 63, 5e8 / 64},
		{127, -1, 12345, -1e9},
	} {
		c := newTSConv(tc.resol, tc.off)
		if got := c.ns(tc.units); got != tc.want {
			t.Errorf("tsresol %#x offset %d units %d: got %d ns, want %d", tc.resol, tc.off, tc.units, got, tc.want)
		}
	}
}

func TestReadAllocs(t *testing.T) {
	v := variant{"le", binary.LittleEndian, Nanosecond}
	for name, b := range map[string][]byte{"pcap": writePcap(t, v, 1, 0, testPackets(200)), "pcapng": writeNg(t, v, 1, testPackets(200))} {
		r, err := NewReader(bytes.NewReader(b), name)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, MaxSnapLen)
		if a := testing.AllocsPerRun(100, func() {
			if _, _, err := r.ReadPacket(buf); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%s: got %v allocs per packet, want 0", name, a)
		}
	}
}

// TestNgNamedInterface: an interface's name survives a write and a read, and
// an unnamed one stays byte-identical to what AddInterface always wrote.
func TestNgNamedInterface(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewNgWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sensor-a", "", "b"} {
		id, err := w.AddNamedInterface(LinkTypeEthernet, 0, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(int64(id+1)*1000, 4, id, []byte{1, 2, 3, 4}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf, "named")
	if err != nil {
		t.Fatal(err)
	}
	var ifaces []uint16
	pbuf := make([]byte, 64)
	for {
		ci, _, err := r.ReadPacket(pbuf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ifaces = append(ifaces, ci.Iface)
	}
	got := r.Interfaces()
	if len(got) != 3 || got[0].Name != "sensor-a" || got[1].Name != "" || got[2].Name != "b" {
		t.Fatalf("interfaces: got %+v, want sensor-a, \"\", b", got)
	}
	if len(ifaces) != 3 || ifaces[0] != 0 || ifaces[2] != 2 {
		t.Errorf("packets' interfaces: got %v, want [0 1 2]", ifaces)
	}
}
