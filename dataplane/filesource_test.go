package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"tapvault/pcap"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// File magic numbers the builders write (pcap owns the format; these are
// the test's own copies, so that a wrong constant there fails here).
const (
	magicPcapMicro    = 0xa1b2c3d4
	magicPcapNano     = 0xa1b23c4d
	magicPcapModified = 0xa1b2cd34
	magicNgSHB        = 0x0a0d0d0a
	ngByteOrderMagic  = 0x1a2b3c4d

	ngBlockIDB = 0x00000001
	ngBlockPB  = 0x00000002
	ngBlockSPB = 0x00000003
	ngBlockEPB = 0x00000006

	ngOptEnd      = 0
	ngOptIfName   = 2
	ngOptTSResol  = 9
	ngOptTSOffset = 14
)

// order is what the builders need of a byte order.
type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// tpkt is a packet as a test expects to read it back.
type tpkt struct {
	ts    int64
	data  []byte
	wire  uint32
	lt    uint16
	iface uint16
}

// payload returns n deterministic bytes that differ per seed.
func payload(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// appendPcap builds a classic pcap file. Timestamps are written in µs when
// nano is false (the test's ts values must then be whole µs).
func appendPcap(dst []byte, bo order, nano bool, lt uint16, pkts []tpkt) []byte {
	magic := uint32(magicPcapMicro)
	if nano {
		magic = magicPcapNano
	}
	dst = bo.AppendUint32(dst, magic)
	dst = bo.AppendUint16(dst, 2)
	dst = bo.AppendUint16(dst, 4)
	dst = bo.AppendUint32(dst, 0)
	dst = bo.AppendUint32(dst, 0)
	dst = bo.AppendUint32(dst, 65535)
	dst = bo.AppendUint32(dst, uint32(lt))
	for _, p := range pkts {
		dst = bo.AppendUint32(dst, uint32(p.ts/1e9))
		if nano {
			dst = bo.AppendUint32(dst, uint32(p.ts%1e9))
		} else {
			dst = bo.AppendUint32(dst, uint32(p.ts%1e9/1e3))
		}
		dst = bo.AppendUint32(dst, uint32(len(p.data)))
		dst = bo.AppendUint32(dst, p.wire)
		dst = append(dst, p.data...)
	}
	return dst
}

// ngBuilder builds pcapng files block by block.
type ngBuilder struct {
	bo  order
	buf []byte
	// ends[i] is the offset just past the i-th packet block.
	ends []int
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (g *ngBuilder) block(typ uint32, body []byte) {
	body = pad4(body)
	l := uint32(12 + len(body))
	g.buf = g.bo.AppendUint32(g.buf, typ)
	g.buf = g.bo.AppendUint32(g.buf, l)
	g.buf = append(g.buf, body...)
	g.buf = g.bo.AppendUint32(g.buf, l)
}

func (g *ngBuilder) option(dst []byte, code uint16, v []byte) []byte {
	dst = g.bo.AppendUint16(dst, code)
	dst = g.bo.AppendUint16(dst, uint16(len(v)))
	return pad4(append(dst, v...))
}

func (g *ngBuilder) shb(bo order) {
	g.bo = bo
	var body []byte
	body = bo.AppendUint32(body, ngByteOrderMagic)
	body = bo.AppendUint16(body, 1)
	body = bo.AppendUint16(body, 0)
	body = bo.AppendUint64(body, ^uint64(0)) // section length unknown
	body = g.option(body, 4, []byte("tapvault test"))
	body = g.option(body, ngOptEnd, nil)
	g.block(magicNgSHB, body)
}

// idb adds an interface; tsresol 0 leaves the option out (default µs).
func (g *ngBuilder) idb(lt uint16, snap uint32, name string, tsresol uint8, tsoff int64) {
	var body []byte
	body = g.bo.AppendUint16(body, lt)
	body = g.bo.AppendUint16(body, 0)
	body = g.bo.AppendUint32(body, snap)
	if name != "" {
		body = g.option(body, ngOptIfName, []byte(name))
	}
	if tsresol != 0 {
		body = g.option(body, ngOptTSResol, []byte{tsresol})
	}
	if tsoff != 0 {
		body = g.option(body, ngOptTSOffset, g.bo.AppendUint64(nil, uint64(tsoff)))
	}
	body = g.option(body, ngOptEnd, nil)
	g.block(ngBlockIDB, body)
}

func (g *ngBuilder) epb(iface uint32, units uint64, data []byte, orig uint32) {
	var body []byte
	body = g.bo.AppendUint32(body, iface)
	body = g.bo.AppendUint32(body, uint32(units>>32))
	body = g.bo.AppendUint32(body, uint32(units))
	body = g.bo.AppendUint32(body, uint32(len(data)))
	body = g.bo.AppendUint32(body, orig)
	body = pad4(append(body, data...))
	body = g.option(body, 1, []byte("a comment")) // opt_comment
	body = g.option(body, ngOptEnd, nil)
	g.block(ngBlockEPB, body)
	g.ends = append(g.ends, len(g.buf))
}

func (g *ngBuilder) pb(iface uint16, units uint64, data []byte, orig uint32) {
	var body []byte
	body = g.bo.AppendUint16(body, iface)
	body = g.bo.AppendUint16(body, 0) // drops
	body = g.bo.AppendUint32(body, uint32(units>>32))
	body = g.bo.AppendUint32(body, uint32(units))
	body = g.bo.AppendUint32(body, uint32(len(data)))
	body = g.bo.AppendUint32(body, orig)
	body = append(body, data...)
	g.block(ngBlockPB, body)
	g.ends = append(g.ends, len(g.buf))
}

func (g *ngBuilder) spb(orig uint32, data []byte) {
	var body []byte
	body = g.bo.AppendUint32(body, orig)
	body = append(body, data...)
	g.block(ngBlockSPB, body)
	g.ends = append(g.ends, len(g.buf))
}

// readAll reads every packet of s, copying the data.
func readAll(t testing.TB, s *FileSource) ([]tpkt, error) {
	t.Helper()
	var out []tpkt
	var b Burst
	for i := 0; ; i++ {
		n, err := s.Recv(&b)
		if n != b.N {
			t.Fatalf("got n %d, want b.N %d", n, b.N)
		}
		for _, p := range b.Pkts[:n] {
			out = append(out, tpkt{ts: p.TS, data: bytes.Clone(p.Data), wire: p.WireLen, lt: p.LinkType, iface: p.Iface})
		}
		if err != nil {
			return out, err
		}
		if n == 0 {
			t.Fatalf("Recv returned 0 packets and no error at call %d", i)
		}
	}
}

func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func openBytes(t testing.TB, b []byte) (*FileSource, error) {
	t.Helper()
	return newFileSource("mem", bytes.NewReader(b), int64(len(b)), nil)
}

func comparePkts(t *testing.T, got, want []tpkt) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ts != w.ts {
			t.Errorf("packet %d: got ts %d, want %d", i, g.ts, w.ts)
		}
		if !bytes.Equal(g.data, w.data) {
			t.Errorf("packet %d: got %d data bytes %x..., want %d bytes", i, len(g.data), g.data[:min(8, len(g.data))], len(w.data))
		}
		if g.wire != w.wire {
			t.Errorf("packet %d: got wire length %d, want %d", i, g.wire, w.wire)
		}
		if g.lt != w.lt {
			t.Errorf("packet %d: got link type %d, want %d", i, g.lt, w.lt)
		}
		if g.iface != w.iface {
			t.Errorf("packet %d: got iface %d, want %d", i, g.iface, w.iface)
		}
	}
}

func pcapPkts(n int, nano bool, lt uint16) []tpkt {
	var pkts []tpkt
	ts := int64(1700000000123456789)
	for i := 0; i < n; i++ {
		d := payload(i, 1+i*37%1500)
		t := ts + int64(i)*1234567
		if !nano {
			t -= t % 1000
		}
		wire := uint32(len(d))
		if i%3 == 0 {
			wire += 100 // snaplen-cut packet
		}
		pkts = append(pkts, tpkt{ts: t, data: d, wire: wire, lt: lt})
	}
	return pkts
}

func TestFileSourcePcap(t *testing.T) {
	for _, tc := range []struct {
		name string
		bo   order
		nano bool
		lt   uint16
	}{
		{"le/us", binary.LittleEndian, false, pcap.LinkTypeEthernet},
		{"le/ns", binary.LittleEndian, true, pcap.LinkTypeRaw},
		{"be/us", binary.BigEndian, false, pcap.LinkTypeLinuxSLL},
		{"be/ns", binary.BigEndian, true, pcap.LinkTypeNull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := pcapPkts(300, tc.nano, tc.lt)
			file := appendPcap(nil, tc.bo, tc.nano, tc.lt, want)
			path := writeTemp(t, "x.pcapng", file) // the name must not matter
			s, err := OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.Size(); got != int64(len(file)) {
				t.Errorf("got Size %d, want %d", got, len(file))
			}
			got, err := readAll(t, s)
			if err != io.EOF {
				t.Fatalf("got error %v, want io.EOF", err)
			}
			comparePkts(t, got, want)
			if w := s.Warning(); w != nil {
				t.Errorf("got warning %v, want nil", w)
			}
			if got := s.Offset(); got != int64(len(file)) {
				t.Errorf("got Offset %d, want %d", got, len(file))
			}
			ifs := s.Interfaces()
			wantRes := uint8(6)
			if tc.nano {
				wantRes = 9
			}
			if len(ifs) != 1 || ifs[0].LinkType != tc.lt || ifs[0].SnapLen != 65535 || ifs[0].TSResol != wantRes {
				t.Errorf("got interfaces %+v, want one with link type %d, snaplen 65535, tsresol %d", ifs, tc.lt, wantRes)
			}
			// Recv after EOF keeps returning EOF.
			var b Burst
			if n, err := s.Recv(&b); n != 0 || err != io.EOF {
				t.Errorf("got %d, %v after EOF, want 0, io.EOF", n, err)
			}
		})
	}
}

// ngFile is a two-section pcapng file exercising interfaces, resolutions,
// offsets, block kinds and an unknown block; it returns the file and the
// packets it holds.
func ngFile() ([]byte, []tpkt) {
	var want []tpkt
	g := &ngBuilder{}
	g.shb(binary.LittleEndian)
	g.idb(pcap.LinkTypeEthernet, 0, "eth0", 9, 0)       // global iface 0: ns
	g.idb(pcap.LinkTypeRaw, 1500, "tun0", 0x80|20, 100) // 1: 2^-20 s, +100 s
	g.block(0x00000BAD, []byte("unknown block type"))   // skipped
	g.idb(pcap.LinkTypeLinuxSLL, 0, "", 10, 0)          // 2: 0.1 ns, no name
	base := int64(1700000000) * 1e9
	for i := 0; i < 20; i++ {
		d := payload(i, 60+i*13)
		switch i % 3 {
		case 0:
			ts := base + int64(i)*1e6 + 7
			g.epb(0, uint64(ts), d, uint32(len(d)))
			want = append(want, tpkt{ts, d, uint32(len(d)), pcap.LinkTypeEthernet, 0})
		case 1:
			// k seconds and a half, in 2^-20 units: exact in ns.
			k := uint64(1700000000 + i)
			units := k<<20 | 1<<19
			g.epb(1, units, d, uint32(len(d))+40)
			want = append(want, tpkt{int64(k)*1e9 + 5e8 + 100e9, d, uint32(len(d)) + 40, pcap.LinkTypeRaw, 1})
		case 2:
			units := uint64(base+int64(i)*1e6)*10 + 9 // sub-ns part is dropped
			g.epb(2, units, d, uint32(len(d)))
			want = append(want, tpkt{base + int64(i)*1e6, d, uint32(len(d)), pcap.LinkTypeLinuxSLL, 2})
		}
	}
	// SPB on interface 0: no timestamp, so the previous packet's.
	d := payload(99, 80)
	g.spb(80, d)
	want = append(want, tpkt{want[len(want)-1].ts, d, 80, pcap.LinkTypeEthernet, 0})

	// Second section, big-endian, its own numbering from 0.
	g.shb(binary.BigEndian)
	g.block(0x40000BAD, []byte("local use"))
	g.idb(pcap.LinkTypeEthernet, 96, "eth1", 0, -5) // global iface 3: µs, -5 s
	for i := 0; i < 10; i++ {
		d := payload(100+i, 96)
		us := uint64(1600000000000000 + i*250)
		if i%2 == 0 {
			g.epb(0, us, d, 300)
		} else {
			g.pb(0, us, d, 300)
		}
		want = append(want, tpkt{int64(us)*1000 - 5e9, d, 300, pcap.LinkTypeEthernet, 3})
	}
	// SPB longer than the interface's snaplen of 96: cut to it.
	d = payload(200, 120)
	g.spb(120, d)
	want = append(want, tpkt{want[len(want)-1].ts, d[:96], 120, pcap.LinkTypeEthernet, 3})
	return g.buf, want
}

func TestFileSourcePcapng(t *testing.T) {
	file, want := ngFile()
	path := writeTemp(t, "x.pcap", file)
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// OpenFile reads the interfaces that directly follow the header.
	if got := len(s.Interfaces()); got != 2 {
		t.Errorf("before Recv: got %d interfaces, want 2", got)
	}
	got, err := readAll(t, s)
	if err != io.EOF {
		t.Fatalf("got error %v, want io.EOF", err)
	}
	comparePkts(t, got, want)
	if w := s.Warning(); w != nil {
		t.Errorf("got warning %v, want nil", w)
	}
	wantIfs := []pcap.Interface{
		{Section: 0, LinkType: pcap.LinkTypeEthernet, Name: "eth0", TSResol: 9},
		{Section: 0, LinkType: pcap.LinkTypeRaw, SnapLen: 1500, Name: "tun0", TSResol: 0x80 | 20, TSOffset: 100},
		{Section: 0, LinkType: pcap.LinkTypeLinuxSLL, TSResol: 10},
		{Section: 1, LinkType: pcap.LinkTypeEthernet, SnapLen: 96, Name: "eth1", TSResol: 6, TSOffset: -5},
	}
	ifs := s.Interfaces()
	if len(ifs) != len(wantIfs) {
		t.Fatalf("got %d interfaces, want %d", len(ifs), len(wantIfs))
	}
	for i := range ifs {
		if ifs[i] != wantIfs[i] {
			t.Errorf("interface %d: got %+v, want %+v", i, ifs[i], wantIfs[i])
		}
	}
}

// TestFileSourcePcapModified reads the 0xa1b2cd34 variant, whose records
// carry 8 more bytes (ifindex, protocol, packet type, padding).
func TestFileSourcePcapModified(t *testing.T) {
	want := pcapPkts(20, false, pcap.LinkTypeEthernet)
	var f []byte
	f = binary.BigEndian.AppendUint32(f, magicPcapModified)
	f = binary.BigEndian.AppendUint16(f, 2)
	f = binary.BigEndian.AppendUint16(f, 4)
	f = append(f, make([]byte, 8)...)
	f = binary.BigEndian.AppendUint32(f, 65535)
	f = binary.BigEndian.AppendUint32(f, uint32(pcap.LinkTypeEthernet)|4<<28) // FCS bits set: ignored
	for _, p := range want {
		f = binary.BigEndian.AppendUint32(f, uint32(p.ts/1e9))
		f = binary.BigEndian.AppendUint32(f, uint32(p.ts%1e9/1e3))
		f = binary.BigEndian.AppendUint32(f, uint32(len(p.data)))
		f = binary.BigEndian.AppendUint32(f, p.wire)
		f = append(f, 0, 0, 0, 2, 8, 0, 0, 0)
		f = append(f, p.data...)
	}
	s, err := openBytes(t, f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, s)
	if err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	comparePkts(t, got, want)
}

// TestFileSourceTruncated cuts files at every byte and checks that the
// packets before the cut are all delivered, and that a warning says the file
// was cut when the cut is inside a record.
func TestFileSourceTruncated(t *testing.T) {
	var pkts []tpkt
	for i := 0; i < 12; i++ {
		pkts = append(pkts, tpkt{ts: int64(i) * 1001, data: payload(i, 20+i*5), wire: 64})
	}
	pcapFile := appendPcap(nil, binary.LittleEndian, true, pcap.LinkTypeEthernet, pkts)
	var pcapEnds []int
	off := 24
	for _, p := range pkts {
		off += 16 + len(p.data)
		pcapEnds = append(pcapEnds, off)
	}
	g := &ngBuilder{}
	g.shb(binary.BigEndian)
	g.idb(pcap.LinkTypeEthernet, 0, "eth0", 9, 0)
	g.block(0xBAD, []byte("x"))
	shbLen := int(binary.BigEndian.Uint32(g.buf[4:]))
	for i := 0; i < 8; i++ {
		g.epb(0, uint64(i), payload(i, 50+i), 200)
		if i == 3 {
			g.block(0xBAD, []byte("between packets"))
			g.shb(binary.LittleEndian)
			g.idb(pcap.LinkTypeRaw, 0, "", 0, 0)
		}
	}
	for _, tc := range []struct {
		name   string
		file   []byte
		ends   []int // offset just past each packet's record or block
		header int   // bytes needed before OpenFile succeeds
	}{
		{"pcap", pcapFile, pcapEnds, 24},
		{"pcapng", g.buf, g.ends, shbLen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for cut := 0; cut < len(tc.file); cut++ {
				s, err := openBytes(t, tc.file[:cut])
				if cut < tc.header {
					if err == nil {
						t.Fatalf("cut %d: OpenFile succeeded, want an error", cut)
					}
					if cut >= 4 && !errors.Is(err, pcap.ErrTruncated) {
						t.Fatalf("cut %d: got %v, want pcap.ErrTruncated", cut, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("cut %d: %v", cut, err)
				}
				got, err := readAll(t, s)
				if err != io.EOF {
					t.Fatalf("cut %d: got error %v, want io.EOF", cut, err)
				}
				want := 0
				atEnd := cut == tc.header
				for _, e := range tc.ends {
					if e <= cut {
						want++
					}
					if e == cut {
						atEnd = true
					}
				}
				if len(got) != want {
					t.Fatalf("cut %d: got %d packets, want %d", cut, len(got), want)
				}
				warn := s.Warning()
				if warn != nil && !errors.Is(warn, pcap.ErrTruncated) {
					t.Fatalf("cut %d: got warning %v, want one wrapping pcap.ErrTruncated", cut, warn)
				}
				if atEnd && warn != nil {
					t.Fatalf("cut %d at a packet boundary: got warning %v, want nil", cut, warn)
				}
				if !atEnd && warn == nil && !boundary(tc.name, tc.file, cut) {
					t.Fatalf("cut %d inside a record: got no warning", cut)
				}
				if warn != nil && !strings.Contains(warn.Error(), fmt.Sprintf("after %d packets", want)) {
					t.Fatalf("cut %d: warning %q does not say \"after %d packets\"", cut, warn, want)
				}
			}
		})
	}
}

// boundary reports whether cut falls between two pcapng blocks (where
// stopping is a clean end of file even if no packet ends there).
func boundary(kind string, file []byte, cut int) bool {
	if kind != "pcapng" {
		return false
	}
	off := 0
	bo := binary.ByteOrder(binary.LittleEndian)
	for off+12 <= len(file) {
		if off == cut {
			return true
		}
		if binary.BigEndian.Uint32(file[off:]) == magicNgSHB {
			if binary.LittleEndian.Uint32(file[off+8:]) == ngByteOrderMagic {
				bo = binary.LittleEndian
			} else {
				bo = binary.BigEndian
			}
		}
		off += int(bo.Uint32(file[off+4:]))
	}
	return off == cut
}

func TestFileSourceArenaAndLimits(t *testing.T) {
	// Large packets fill the arena before MaxBurst: bursts end early and no
	// packet is lost or overwritten while its burst is current.
	var pkts []tpkt
	for i := 0; i < 60; i++ {
		n := 60000
		if i == 7 {
			n = MaxFilePacket
		}
		d := payload(i, n)
		pkts = append(pkts, tpkt{ts: int64(i) * 1e9, data: d, wire: uint32(n), lt: pcap.LinkTypeEthernet})
	}
	s, err := openBytes(t, appendPcap(nil, binary.LittleEndian, true, pcap.LinkTypeEthernet, pkts))
	if err != nil {
		t.Fatal(err)
	}
	var b Burst
	i := 0
	bursts := 0
	for {
		n, err := s.Recv(&b)
		for _, p := range b.Pkts[:n] {
			if !bytes.Equal(p.Data, pkts[i].data) {
				t.Fatalf("packet %d: data differs", i)
			}
			i++
		}
		bursts++
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if i != len(pkts) {
		t.Fatalf("got %d packets, want %d", i, len(pkts))
	}
	if bursts < 4 {
		t.Errorf("got %d bursts, want at least 4 (arena of %d bytes)", bursts, arenaSize)
	}

	// A pcap record claiming more than MaxFilePacket is corrupt: the packets
	// before it are delivered, then an pcap.ErrCorrupt error.
	bad := appendPcap(nil, binary.LittleEndian, false, pcap.LinkTypeEthernet, pcapPkts(3, false, pcap.LinkTypeEthernet))
	bad = binary.LittleEndian.AppendUint32(bad, 1)
	bad = binary.LittleEndian.AppendUint32(bad, 0)
	bad = binary.LittleEndian.AppendUint32(bad, 0xfffffff0)
	bad = binary.LittleEndian.AppendUint32(bad, 0xfffffff0)
	s, err = openBytes(t, bad)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, s)
	if len(got) != 3 || !errors.Is(err, pcap.ErrCorrupt) {
		t.Fatalf("got %d packets and %v, want 3 and pcap.ErrCorrupt", len(got), err)
	}

	// A pcapng packet longer than MaxFilePacket is cut to it, keeping its
	// original length, and the packets after it are read.
	g := &ngBuilder{}
	g.shb(binary.LittleEndian)
	g.idb(pcap.LinkTypeEthernet, 0, "", 9, 0)
	g.epb(0, 1, payload(1, MaxFilePacket+1000), MaxFilePacket+5000)
	g.epb(0, 2, payload(2, 10), 10)
	s, err = openBytes(t, g.buf)
	if err != nil {
		t.Fatal(err)
	}
	got, err = readAll(t, s)
	if err != io.EOF || len(got) != 2 {
		t.Fatalf("got %d packets and %v, want 2 and io.EOF", len(got), err)
	}
	if len(got[0].data) != MaxFilePacket || got[0].wire != MaxFilePacket+5000 || !bytes.Equal(got[1].data, payload(2, 10)) {
		t.Errorf("got lengths %d/%d and second packet %x, want %d/%d and %x",
			len(got[0].data), got[0].wire, got[1].data, MaxFilePacket, MaxFilePacket+5000, payload(2, 10))
	}
}

func TestFileSourceBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		file []byte
		want string // substring of the OpenFile error
	}{
		{"empty", nil, "not a pcap or pcapng file (only 0 bytes)"},
		{"text", []byte("hello world\n"), "not a pcap or pcapng file (magic 0x68656c6c)"},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0}, "gzip-compressed"},
		{"short pcap", []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0}, "cut short"},
		{"bad bom", append([]byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0}, make([]byte, 20)...), "byte-order magic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, "f", tc.file)
			_, err := OpenFile(path)
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("got %q, want it to contain %q and the path", err, tc.want)
			}
		})
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want os.ErrNotExist", err)
	}

	// Structural faults after the header are pcap.ErrCorrupt.
	g := &ngBuilder{}
	g.shb(binary.LittleEndian)
	g.idb(pcap.LinkTypeEthernet, 0, "", 0, 0)
	g.epb(0, 1, payload(1, 20), 20)
	good := len(g.buf)
	g.epb(5, 1, payload(1, 20), 20) // no interface 5
	s, err := openBytes(t, g.buf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, s)
	if len(got) != 1 || !errors.Is(err, pcap.ErrCorrupt) || !strings.Contains(err.Error(), "interface 5") {
		t.Errorf("got %d packets and %v, want 1 and pcap.ErrCorrupt naming interface 5", len(got), err)
	}
	bad := bytes.Clone(g.buf[:good])
	bad = binary.LittleEndian.AppendUint32(bad, ngBlockEPB)
	bad = binary.LittleEndian.AppendUint32(bad, 13) // not a multiple of 4
	bad = append(bad, make([]byte, 20)...)
	s, err = openBytes(t, bad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, s); len(got) != 1 || !errors.Is(err, pcap.ErrCorrupt) {
		t.Errorf("got %d packets and %v, want 1 and pcap.ErrCorrupt", len(got), err)
	}
}

// TestFileSourceVsPcapgo reads files written by gopacket's pcapgo writers,
// an implementation independent of this package's test builders.
func TestFileSourceVsPcapgo(t *testing.T) {
	var want []tpkt
	for i := 0; i < 200; i++ {
		d := payload(i, 14+i*7%1400)
		want = append(want, tpkt{ts: 1650000000*1e9 + int64(i)*987654321, data: d, wire: uint32(len(d) + i%2*10), lt: pcap.LinkTypeEthernet})
	}
	ci := func(p tpkt) gopacket.CaptureInfo {
		return gopacket.CaptureInfo{Timestamp: time.Unix(0, p.ts), CaptureLength: len(p.data), Length: int(p.wire)}
	}

	var pc bytes.Buffer
	w := pcapgo.NewWriterNanos(&pc)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, p := range want {
		if err := w.WritePacket(ci(p), p.data); err != nil {
			t.Fatal(err)
		}
	}

	var ng bytes.Buffer
	nw, err := pcapgo.NewNgWriter(&ng, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range want {
		if err := nw.WritePacket(ci(p), p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := nw.Flush(); err != nil {
		t.Fatal(err)
	}

	for name, file := range map[string][]byte{"pcap": pc.Bytes(), "pcapng": ng.Bytes()} {
		t.Run(name, func(t *testing.T) {
			s, err := openBytes(t, file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAll(t, s)
			if err != io.EOF {
				t.Fatalf("got %v, want io.EOF", err)
			}
			comparePkts(t, got, want)
		})
	}
}

func TestFileSourceSteadyStateAllocs(t *testing.T) {
	pkts := pcapPkts(4000, true, pcap.LinkTypeEthernet)
	file := appendPcap(nil, binary.LittleEndian, true, pcap.LinkTypeEthernet, pkts)
	s, err := openBytes(t, file)
	if err != nil {
		t.Fatal(err)
	}
	var b Burst
	allocs := testing.AllocsPerRun(40, func() {
		if _, err := s.Recv(&b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("got %.1f allocs per Recv, want 0", allocs)
	}
}
