package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"tapvault/tracegen"
	"testing"
	"time"
)

func TestParseTcpdumpStats(t *testing.T) {
	for _, tc := range []struct {
		in         string
		recv, drop uint64
		ok         bool
	}{
		{"tcpdump: listening on tvb1c1, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n3002 packets captured\n3002 packets received by filter\n0 packets dropped by kernel\n", 3002, 0, true},
		{"1 packet captured\n1 packet received by filter\n7 packets dropped by kernel\n2 packets dropped by interface\n", 1, 7, true},
		{"tcpdump: listening on x\n", 0, 0, false},
		{"tcpdump: tvb1c1: No such device exists\n", 0, 0, false},
	} {
		r, d, ok := parseTcpdumpStats(tc.in)
		if r != tc.recv || d != tc.drop || ok != tc.ok {
			t.Errorf("%q: got %d/%d/%v, want %d/%d/%v", tc.in, r, d, ok, tc.recv, tc.drop, tc.ok)
		}
	}
}

func TestParseDumpcapStats(t *testing.T) {
	for _, tc := range []struct {
		in         string
		recv, drop uint64
		ok         bool
	}{
		{"Capturing on 'tvtc'\nFile: /tmp/dc.pcapng\nPackets captured: 3000\nPackets received/dropped on interface 'tvtc': 3000/0 (pcap:0/dumpcap:0/flushed:0/ps_ifdrop:0) (100.0%)\n", 3000, 0, true},
		{"Packets: 10 Packets captured: 10\nPackets received/dropped on interface 'a': 10/4 (pcap:4/dumpcap:0/flushed:0/ps_ifdrop:0) (71.4%)\nPackets received/dropped on interface 'b': 5/1 (pcap:1/dumpcap:0/flushed:0/ps_ifdrop:0) (83.3%)\n", 15, 5, true},
		{"Capturing on 'tvtc'\n", 0, 0, false},
	} {
		r, d, ok := parseDumpcapStats(tc.in)
		if r != tc.recv || d != tc.drop || ok != tc.ok {
			t.Errorf("%q: got %d/%d/%v, want %d/%d/%v", tc.in, r, d, ok, tc.recv, tc.drop, tc.ok)
		}
	}
}

func TestReadyLine(t *testing.T) {
	for _, tc := range []struct {
		kind, line string
		want       bool
	}{
		{PeerTcpdump, "tcpdump: listening on tvb1c1, link-type EN10MB (Ethernet), snapshot length 262144 bytes", true},
		{PeerTcpdump, "tcpdump: tvb1c1: No such device exists", false},
		{PeerDumpcap, "Capturing on 'tvb1c1'", true},
		{PeerDumpcap, "dumpcap: There are no interfaces on which a capture can be done", false},
		{"other", "listening on x", false},
	} {
		if got := readyLine(tc.kind, tc.line); got != tc.want {
			t.Errorf("%s %q: got %v, want %v", tc.kind, tc.line, got, tc.want)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 123, stime 45
	// (fields 14 and 15).
	line := "20390 (tc (x) dump) S 20388 20388 17157 0 -1 4194560 402 0 0 0 123 45 0 0 20 0 1 0 222752 49246208 9590\n"
	got, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 1680 * time.Millisecond; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	for _, bad := range []string{"", "20390 (x) S 1 2", "20390 (x) S 1 1 1 0 -1 1 1 0 0 0 x 45 0"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("%q: got nil error, want one", bad)
		}
	}
	// Our own process has a readable, parseable stat.
	if _, err := ProcCPU(os.Getpid()); err != nil {
		t.Errorf("ProcCPU(self): %v", err)
	}
}

func TestPeerArgs(t *testing.T) {
	a, err := PeerArgs(PeerTcpdump, "if0", "/d/f.pcap")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(a, " "), "tcpdump -i if0 -w /d/f.pcap -s 0 -B 32768 -n -Z root"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	a, err = PeerArgs(PeerDumpcap, "if0", "/d/f.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(a, " "), "dumpcap -i if0 -w /d/f.pcapng -q -s 0 -B 32"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := PeerArgs("wireshark", "if0", "f"); err == nil {
		t.Errorf("unknown peer: got nil error, want one")
	}
}

func TestCountPackets(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.pcap")
	if _, err := tracegen.GenerateFile(p, tracegen.Options{Kind: tracegen.KindIMIX, Packets: 777}); err != nil {
		t.Fatal(err)
	}
	n, err := CountPackets(p)
	if err != nil || n != 777 {
		t.Errorf("got %d, %v, want 777, nil", n, err)
	}
}

func TestWriteComparison(t *testing.T) {
	c := &Comparison{Rate: Rate{PPS: 1000}, Trace: "/x/t.pcap", Tapvault: &Result{}, TapvaultReplay: ReplayResult{Packets: 100, PPS: 1000}}
	c.Tapvault.Report.Writer.PacketsCommitted = 90
	c.Tapvault.Report.ProcessCPU = 9 * time.Millisecond
	c.Peers = []PeerRun{{PeerResult: PeerResult{Kind: PeerTcpdump, Captured: 100, CPU: 20 * time.Millisecond, Reported: true}, Replay: ReplayResult{Packets: 100, PPS: 1000}}}
	var b bytes.Buffer
	WriteComparison(&b, c)
	out := b.String()
	// tapvault: 10 lost of 100 (10.00%); 100 µs/pkt vs tcpdump's 200:
	// captured ratio 0.900, CPU per packet ratio 0.50.
	for _, want := range []string{"pps=1000 of t.pcap", "10.00", "0.900", "0.50"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestPeersOnVeth replays a generated trace through the veth at a modest
// rate into every installed peer and checks each captured exactly what
// tcpreplay sent.
func TestPeersOnVeth(t *testing.T) {
	vethTools(t)
	peers := AvailablePeers()
	if len(peers) == 0 {
		t.Skip("needs tcpdump or dumpcap (Debian packages tcpdump, tshark)")
	}
	if len(peers) < 2 {
		t.Logf("only %v installed; the other peer is not tested", peers)
	}
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.pcap")
	gs, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindIMIX, Packets: 3000, PPS: 1e5})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVeth()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := CompareOnVeth(ctx, v, trace, Rate{PPS: 10000}, dir, peers, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Peers) != len(peers) {
		t.Fatalf("got %d peer runs, want %d", len(c.Peers), len(peers))
	}
	var b bytes.Buffer
	WriteComparison(&b, &c)
	t.Log("\n" + b.String())
	for _, p := range c.Peers {
		if p.Err != nil {
			t.Errorf("%s: %v", p.Kind, p.Err)
			continue
		}
		if p.Replay.Packets != uint64(gs.Packets) {
			t.Errorf("%s: tcpreplay sent %d, want %d", p.Kind, p.Replay.Packets, gs.Packets)
		}
		if p.Captured != p.Replay.Packets {
			t.Errorf("%s: captured %d, want %d (sent)", p.Kind, p.Captured, p.Replay.Packets)
		}
		if !p.Reported || p.Received != p.Captured || p.KernelDrops != 0 {
			t.Errorf("%s: reported %v received %d dropped %d, want received %d dropped 0\n%s", p.Kind, p.Reported, p.Received, p.KernelDrops, p.Captured, p.Stderr)
		}
		if fi, err := os.Stat(p.File); err != nil || fi.Size() != p.Bytes || p.Bytes < int64(gs.Bytes) {
			t.Errorf("%s: Bytes %d, want the size of %s (%v), at least the trace's %d packet bytes", p.Kind, p.Bytes, p.File, err, gs.Bytes)
		}
		if p.CPU <= 0 || p.CPU > p.Elapsed {
			t.Errorf("%s: CPU %s over %s, want more than 0 and at most the elapsed time", p.Kind, p.CPU, p.Elapsed)
		}
	}
}

// TestRunPeerStartError: a failing replay is reported, and the peer is
// still stopped and its file counted.
func TestRunPeerStartError(t *testing.T) {
	vethTools(t, PeerTcpdump)
	v, err := NewVeth()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	old := PeerTail
	PeerTail = 0
	defer func() { PeerTail = old }()
	boom := errors.New("no replay")
	r, err := RunPeer(context.Background(), PeerTcpdump, v.CaptureIface(), t.TempDir(), func() error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("got %v, want %v", err, boom)
	}
	if r.Captured != 0 || r.Elapsed <= 0 {
		t.Errorf("got captured %d elapsed %s, want 0 and > 0", r.Captured, r.Elapsed)
	}
	if _, err := RunPeer(context.Background(), PeerTcpdump, "tvb-no-such-if", t.TempDir(), func() error { return nil }); err == nil {
		t.Errorf("missing interface: got nil error, want one")
	}
}
