package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"tapvault/pcap"
	"testing"
)

// testFrame returns a deterministic Ethernet-looking frame of size n that
// carries seq, so that reordering or corruption is visible.
func testFrame(seq, n int) []byte {
	f := make([]byte, n)
	x := uint32(seq)*2654435761 + 12345
	for i := range f {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		f[i] = byte(x)
	}
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 1})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 2})
	f[12], f[13] = 0x08, 0x00
	if n >= 18 {
		binary.BigEndian.PutUint32(f[14:18], uint32(seq))
	}
	return f
}

// testPacket is one generated capture record.
type testPacket struct {
	Data []byte
	TS   int64  // ns since the epoch; whole microseconds for µs files
	Orig uint32 // original length when the packet was snapped, else 0
}

// testPackets makes n packets of varied sizes, including 1514 and a jumbo,
// one microsecond-aligned timestamp each.
func testPackets(n int) []testPacket {
	sizes := []int{60, 64, 128, 256, 511, 1000, 1514, 9000, 1500, 77}
	base := int64(1_700_000_000_000_000_000)
	pk := make([]testPacket, n)
	for i := range pk {
		size := sizes[i%len(sizes)] + i%7
		if size > 9000 {
			size = 9000
		}
		pk[i] = testPacket{Data: testFrame(i, size), TS: base + int64(i)*1_234_567_000 + int64(i%3)*1000}
		if i%50 == 3 {
			pk[i].Orig = uint32(size) + 100 // snapped
		}
	}
	return pk
}

// writeTestPcap writes packets as a classic pcap file (µs or ns precision,
// either byte order).
func writeTestPcap(t testing.TB, path string, pk []testPacket, nano bool, bo binary.ByteOrder) {
	t.Helper()
	var b bytes.Buffer
	magic := uint32(0xa1b2c3d4)
	if nano {
		magic = 0xa1b23c4d
	}
	hdr := make([]byte, 24)
	bo.PutUint32(hdr[0:], magic)
	bo.PutUint16(hdr[4:], 2)
	bo.PutUint16(hdr[6:], 4)
	bo.PutUint32(hdr[16:], 65535)
	bo.PutUint32(hdr[20:], uint32(pcap.LinkTypeEthernet))
	b.Write(hdr)
	rec := make([]byte, 16)
	for _, p := range pk {
		sub := p.TS % 1e9
		if !nano {
			sub /= 1000
		}
		bo.PutUint32(rec[0:], uint32(p.TS/1e9))
		bo.PutUint32(rec[4:], uint32(sub))
		bo.PutUint32(rec[8:], uint32(len(p.Data)))
		bo.PutUint32(rec[12:], max(uint32(len(p.Data)), p.Orig))
		b.Write(rec)
		b.Write(p.Data)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// writeTestPcapng writes packets as a little-endian pcapng file with one
// interface (µs resolution, the default) and enhanced packet blocks.
func writeTestPcapng(t testing.TB, path string, pk []testPacket) {
	t.Helper()
	le := binary.LittleEndian
	var b bytes.Buffer
	block := func(typ uint32, body []byte) {
		n := 12 + (len(body)+3)&^3
		h := make([]byte, 8)
		le.PutUint32(h[0:], typ)
		le.PutUint32(h[4:], uint32(n))
		b.Write(h)
		b.Write(body)
		b.Write(make([]byte, (4-len(body)%4)%4))
		tl := make([]byte, 4)
		le.PutUint32(tl, uint32(n))
		b.Write(tl)
	}
	shb := make([]byte, 16)
	le.PutUint32(shb[0:], 0x1a2b3c4d)
	le.PutUint16(shb[4:], 1)
	le.PutUint64(shb[8:], ^uint64(0))
	block(0x0a0d0d0a, shb)
	idb := make([]byte, 8)
	le.PutUint16(idb[0:], uint16(pcap.LinkTypeEthernet))
	le.PutUint32(idb[4:], 65535)
	block(1, idb)
	for _, p := range pk {
		us := uint64(p.TS / 1000)
		epb := make([]byte, 20, 20+len(p.Data))
		le.PutUint32(epb[4:], uint32(us>>32))
		le.PutUint32(epb[8:], uint32(us))
		le.PutUint32(epb[12:], uint32(len(p.Data)))
		le.PutUint32(epb[16:], max(uint32(len(p.Data)), p.Orig))
		block(6, append(epb, p.Data...))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func TestVdevArgs(t *testing.T) {
	args := []string{"--no-huge", "--vdev=net_ring0", "--vdev", "net_pcap1,rx_pcap=/a.pcap,rx_pcap=/b.pcapng,tx_pcap=/c.pcap", "--vdev=net_pcap10,rx_pcap=/x"}
	for _, tc := range []struct {
		name  string
		ok    bool
		files []string
	}{
		{"net_ring0", true, nil},
		{"net_pcap1", true, []string{"/a.pcap", "/b.pcapng"}},
		{"net_pcap10", true, []string{"/x"}},
		{"net_pcap0", false, nil},
	} {
		kv, ok := vdevArgs(args, tc.name)
		if ok != tc.ok {
			t.Errorf("vdevArgs(%q): got ok=%v, want %v", tc.name, ok, tc.ok)
		}
		if got := pcapRxFiles(kv); !reflect.DeepEqual(got, tc.files) {
			t.Errorf("pcapRxFiles(%q): got %q, want %q", tc.name, got, tc.files)
		}
	}
}

func TestCountCapture(t *testing.T) {
	dir := t.TempDir()
	pk := testPackets(123)
	var maxLen uint32
	for _, p := range pk {
		maxLen = max(maxLen, uint32(len(p.Data)))
	}
	files := map[string]func(string){
		"le.pcap":    func(p string) { writeTestPcap(t, p, pk, false, binary.LittleEndian) },
		"be.pcap":    func(p string) { writeTestPcap(t, p, pk, false, binary.BigEndian) },
		"ns.pcap":    func(p string) { writeTestPcap(t, p, pk, true, binary.LittleEndian) },
		"le.pcapng":  func(p string) { writeTestPcapng(t, p, pk) },
		"empty.pcap": func(p string) { writeTestPcap(t, p, nil, false, binary.LittleEndian) },
	}
	for name, write := range files {
		path := filepath.Join(dir, name)
		write(path)
		want := pcap.Counts{Packets: int64(len(pk)), MaxCapLen: maxLen}
		if name == "empty.pcap" {
			want = pcap.Counts{}
		}
		got, err := countCapture(path)
		if err != nil {
			t.Fatalf("countCapture(%s): %v", name, err)
		}
		if got != want {
			t.Errorf("countCapture(%s): got %+v, want %+v", name, got, want)
		}
	}

	// A file cut in its last record counts the records before it.
	for _, name := range []string{"le.pcap", "le.pcapng"} {
		full, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		cut := filepath.Join(dir, "cut-"+name)
		if err := os.WriteFile(cut, full[:len(full)-10], 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := countCapture(cut)
		if err != nil {
			t.Fatalf("countCapture(cut %s): %v", name, err)
		}
		if got.Packets != int64(len(pk)-1) {
			t.Errorf("countCapture(cut %s): got %d packets, want %d", name, got.Packets, len(pk)-1)
		}
	}

	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("hello world, not a capture"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := countCapture(bad); !errors.Is(err, pcap.ErrFormat) {
		t.Errorf("countCapture(bad): got %v, want %v", err, pcap.ErrFormat)
	}
	if _, err := countCapture(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("countCapture(missing): got %v, want %v", err, os.ErrNotExist)
	}
}

// FuzzCountCapture checks that counting never panics or loops on arbitrary
// input, and never counts more packets than the input could hold.
func FuzzCountCapture(f *testing.F) {
	dir := f.TempDir()
	pk := testPackets(5)
	for i, write := range []func(string){
		func(p string) { writeTestPcap(f, p, pk, false, binary.LittleEndian) },
		func(p string) { writeTestPcap(f, p, pk, true, binary.BigEndian) },
		func(p string) { writeTestPcapng(f, p, pk) },
	} {
		path := filepath.Join(dir, fmt.Sprint(i))
		write(path)
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := pcap.Count(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Every counted record has at least a 12-byte header (SPB: 16).
		if info.Packets > int64(len(b)/12) {
			t.Fatalf("got %d packets from %d bytes, want at most %d", info.Packets, len(b), len(b)/12)
		}
	})
}
