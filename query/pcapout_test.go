package query

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

type outPkt struct {
	ts    int64
	wire  uint32
	lt    uint16
	iface uint16
	data  []byte
}

func outPayload(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2246822519 + 7
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// outPkts makes n packets; pairs lists the (link type, iface) pairs to cycle
// through.
func outPkts(n int, pairs [][2]uint16) []outPkt {
	var pkts []outPkt
	for i := 0; i < n; i++ {
		d := outPayload(i, 1+i*53%1600)
		wire := uint32(len(d))
		if i%4 == 1 {
			wire += 999 // cut by a snaplen at capture
		}
		pr := pairs[i%len(pairs)]
		pkts = append(pkts, outPkt{ts: 1700000000*1e9 + int64(i)*123456789 + int64(i%7), wire: wire, lt: pr[0], iface: pr[1], data: d})
	}
	return pkts
}

type readPkt struct {
	ts    int64
	cap   int
	wire  int
	iface int
	data  []byte
}

func readPcapgo(t *testing.T, b []byte, ng bool) ([]readPkt, []layers.LinkType) {
	t.Helper()
	var src gopacket.PacketDataSource
	var lts []layers.LinkType
	if ng {
		r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			t.Fatalf("pcapgo: %v", err)
		}
		src = r
		defer func() {
			for i := 0; i < r.NInterfaces(); i++ {
				ifc, _ := r.Interface(i)
				if ifc.TimestampResolution != 9 {
					t.Errorf("interface %d: got tsresol %d, want 9", i, ifc.TimestampResolution)
				}
			}
		}()
	} else {
		r, err := pcapgo.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("pcapgo: %v", err)
		}
		if got := r.Resolution(); got != gopacket.TimestampResolutionNanosecond {
			t.Errorf("got resolution %v, want ns", got)
		}
		lts = append(lts, r.LinkType())
		src = r
	}
	var out []readPkt
	for {
		d, ci, err := src.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("pcapgo: packet %d: %v", len(out), err)
		}
		out = append(out, readPkt{ci.Timestamp.UnixNano(), ci.CaptureLength, ci.Length, ci.InterfaceIndex, bytes.Clone(d)})
	}
	if ng {
		r := src.(*pcapgo.NgReader)
		for i := 0; i < r.NInterfaces(); i++ {
			ifc, _ := r.Interface(i)
			lts = append(lts, ifc.LinkType)
		}
	}
	return out, lts
}

func checkRead(t *testing.T, got []readPkt, want []outPkt, snap int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		wd := w.data
		if len(wd) > snap {
			wd = wd[:snap]
		}
		if g.ts != w.ts {
			t.Errorf("packet %d: got ts %d, want %d", i, g.ts, w.ts)
		}
		if g.cap != len(wd) || !bytes.Equal(g.data, wd) {
			t.Errorf("packet %d: got %d bytes, want %d (or the bytes differ)", i, g.cap, len(wd))
		}
		if g.wire != int(w.wire) {
			t.Errorf("packet %d: got wire length %d, want %d", i, g.wire, w.wire)
		}
	}
}

func writePcap(t *testing.T, pkts []outPkt, lt uint16, snap uint32) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewPcapWriter(&buf, lt, snap)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(p.ts, p.wire, p.lt, p.iface, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writePcapng(t *testing.T, pkts []outPkt) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewPcapngWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(p.ts, p.wire, p.lt, p.iface, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPcapWriter(t *testing.T) {
	pkts := outPkts(500, [][2]uint16{{1, 0}, {1, 2}})
	file := writePcap(t, pkts, 1, 0)
	got, lts := readPcapgo(t, file, false)
	checkRead(t, got, pkts, maxPcapSnap)
	if len(lts) != 1 || lts[0] != layers.LinkTypeEthernet {
		t.Errorf("got link types %v, want [Ethernet]", lts)
	}

	// A snaplen cuts packets and keeps their original length.
	file = writePcap(t, pkts, 1, 100)
	got, _ = readPcapgo(t, file, false)
	for i := range pkts {
		if pkts[i].wire < uint32(len(pkts[i].data)) {
			t.Fatal("BUG: test packet shorter on the wire than captured")
		}
	}
	checkRead(t, got, pkts, 100)
}

func TestPcapWriterErrors(t *testing.T) {
	w, err := NewPcapWriter(io.Discard, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = w.WritePacket(1, 10, 101, 0, make([]byte, 10))
	if !errors.Is(err, ErrMixedLinkTypes) {
		t.Errorf("got %v, want ErrMixedLinkTypes", err)
	}
	if err == nil || !strings.Contains(err.Error(), "pcapng") {
		t.Errorf("got %v, want it to point to pcapng", err)
	}
	for _, ts := range []int64{-1, 0x100000000 * 1e9} {
		if err := w.WritePacket(ts, 10, 1, 0, make([]byte, 10)); err == nil {
			t.Errorf("ts %d: got no error, want one", ts)
		}
	}
	nw, err := NewPcapngWriter(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := nw.WritePacket(-5, 10, 1, 0, make([]byte, 10)); err == nil {
		t.Errorf("got no error for a negative timestamp, want one")
	}
}

func TestPcapngWriter(t *testing.T) {
	pairs := [][2]uint16{{1, 0}, {101, 0}, {1, 0}, {1, 3}, {113, 7}}
	pkts := outPkts(600, pairs)
	file := writePcapng(t, pkts)
	got, lts := readPcapgo(t, file, true)
	checkRead(t, got, pkts, maxPcapSnap)
	// IDBs are created on first use, in order: (1,0) (101,0) (1,3) (113,7).
	wantLT := []layers.LinkType{1, 101, 1, 113}
	if len(lts) != len(wantLT) {
		t.Fatalf("got %d interfaces %v, want %v", len(lts), lts, wantLT)
	}
	for i := range wantLT {
		if lts[i] != wantLT[i] {
			t.Errorf("interface %d: got link type %d, want %d", i, lts[i], wantLT[i])
		}
	}
	idOf := map[[2]uint16]int{{1, 0}: 0, {101, 0}: 1, {1, 3}: 2, {113, 7}: 3}
	for i, p := range pkts {
		if want := idOf[[2]uint16{p.lt, p.iface}]; got[i].iface != want {
			t.Errorf("packet %d: got interface %d, want %d", i, got[i].iface, want)
		}
	}
	// Every block is 4-byte aligned, so the file is too.
	if len(file)%4 != 0 {
		t.Errorf("got file length %d, want a multiple of 4", len(file))
	}
}

// TestWritersTcpdump has libpcap (through tcpdump) read the files and write
// them back as ns pcap, which is then compared with what was written.
func TestWritersTcpdump(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump is not installed")
	}
	// libpcap wants one link type per pcapng file, but several interfaces
	// are fine.
	pkts := outPkts(300, [][2]uint16{{1, 0}, {1, 1}})
	dir := t.TempDir()
	for name, file := range map[string][]byte{
		"out.pcap":   writePcap(t, pkts, 1, 0),
		"out.pcapng": writePcapng(t, pkts),
	} {
		t.Run(name, func(t *testing.T) {
			in := filepath.Join(dir, name)
			if err := os.WriteFile(in, file, 0o644); err != nil {
				t.Fatal(err)
			}
			back := in + ".back"
			cmd := exec.Command(tcpdump, "--time-stamp-precision=nano", "-r", in, "-w", back)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("tcpdump: %v: %s", err, out)
			}
			b, err := os.ReadFile(back)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := readPcapgo(t, b, false)
			checkRead(t, got, pkts, maxPcapSnap)

			// And its text output agrees on every timestamp. Payloads are
			// random, so some packets print more than one line: only
			// lines that start with a timestamp are packets.
			out, err := exec.Command(tcpdump, "--time-stamp-precision=nano", "-tt", "-nn", "-r", in).Output()
			if err != nil {
				t.Fatalf("tcpdump: %v", err)
			}
			var stamps []string
			for _, l := range strings.Split(string(out), "\n") {
				if f, _, ok := strings.Cut(l, " "); ok && tsLine.MatchString(f) {
					stamps = append(stamps, f)
				}
			}
			if len(stamps) != len(pkts) {
				t.Fatalf("got %d tcpdump packet lines, want %d", len(stamps), len(pkts))
			}
			for i, p := range pkts {
				if want := fmt.Sprintf("%d.%09d", p.ts/1e9, p.ts%1e9); stamps[i] != want {
					t.Errorf("packet %d: tcpdump printed ts %s, want %s", i, stamps[i], want)
				}
			}
		})
	}
}

var tsLine = regexp.MustCompile(`^[0-9]{10}\.[0-9]{9}$`)

func TestWritersSteadyStateAllocs(t *testing.T) {
	data := outPayload(1, 1500)
	pw, err := NewPcapWriter(io.Discard, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	nw, err := NewPcapngWriter(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	nw.WritePacket(1, 1500, 1, 0, data) // the first packet of a pair adds its IDB
	nw.WritePacket(1, 1500, 1, 1, data)
	for name, w := range map[string]PacketWriter{"pcap": pw, "pcapng": nw} {
		i := 0
		allocs := testing.AllocsPerRun(2000, func() {
			i++
			if err := w.WritePacket(int64(i), 1500, 1, uint16(i%2), data[:i%1500]); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: got %.2f allocs per packet, want 0", name, allocs)
		}
	}
}
