package bench

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tapvault/dataplane"
	"tapvault/tracegen"
)

func TestParseTcpreplay(t *testing.T) {
	out := `Actual: 3000 packets (241801 bytes) sent in 0.299904 seconds
Rated: 806261.3 Bps, 6.45 Mbps, 10003.20 pps
Flows: 2130 flows, 7102.27 fps, 2401 unique flow packets, 599 unique non-flow packets
Statistics for network device: tvtp
	Successful packets:        2998
	Failed packets:            2
	Truncated packets:         0
	Retried packets (ENOBUFS): 5
	Retried packets (EAGAIN):  7
`
	var r ReplayResult
	if err := parseTcpreplay(out, &r); err != nil {
		t.Fatal(err)
	}
	want := ReplayResult{Packets: 3000, Bytes: 241801, Duration: 299904 * time.Microsecond, Mbps: 6.45, PPS: 10003.2, Failed: 2, Retried: 12}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
	if err := parseTcpreplay("tcpreplay: Fatal Error: failed to open device", &r); err == nil {
		t.Errorf("got nil error for output without a summary, want one")
	}
}

func TestRateArgs(t *testing.T) {
	for _, tc := range []struct {
		r    Rate
		args string
		s    string
	}{
		{Rate{}, "", "x1"},
		{Rate{Max: true}, "--topspeed", "max"},
		{Rate{PPS: 20000}, "--pps=20000", "pps=20000"},
		{Rate{Mbps: 12.5}, "--mbps=12.5", "mbps=12.5"},
		{Rate{Multiplier: 2}, "--multiplier=2", "x2"},
	} {
		a, err := tc.r.tcpreplayArgs()
		if err != nil {
			t.Fatalf("%+v: %v", tc.r, err)
		}
		if got := strings.Join(a, " "); got != tc.args {
			t.Errorf("%+v: got args %q, want %q", tc.r, got, tc.args)
		}
		if got := tc.r.String(); got != tc.s {
			t.Errorf("%+v: got %q, want %q", tc.r, got, tc.s)
		}
		if tc.r == (Rate{}) {
			continue
		}
		back, err := ParseRate(tc.s)
		if err != nil || back != tc.r {
			t.Errorf("ParseRate(%q): got %+v, %v, want %+v", tc.s, back, err, tc.r)
		}
	}
	for _, r := range []Rate{{Max: true, PPS: 1}, {PPS: 1, Mbps: 1}, {PPS: -1}} {
		if _, err := r.tcpreplayArgs(); err == nil {
			t.Errorf("%+v: got nil error, want one", r)
		}
	}
	for _, s := range []string{"", "fast", "pps=", "pps=-3", "mbps=x", "x0"} {
		if _, err := ParseRate(s); err == nil {
			t.Errorf("ParseRate(%q): got nil error, want one", s)
		}
	}
}

func TestAFPacketVdev(t *testing.T) {
	got := AFPacketVdev("tvb12c1")
	want := "net_af_packet0,iface=tvb12c1,qpairs=1,blocksz=1048576,framesz=2048,framecnt=16384"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// PACKET_MMAP: the block holds whole frames, frames are 16-byte
	// aligned, the ring is whole blocks.
	if afPacketBlock%afPacketFrame != 0 || afPacketFrame%16 != 0 || afPacketFrames*afPacketFrame%afPacketBlock != 0 {
		t.Errorf("ring geometry block %d frame %d count %d is not whole", afPacketBlock, afPacketFrame, afPacketFrames)
	}
}

func TestStaleNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		re   bool // matches staleLink or staleNS
		pid  string
	}{
		{"tvb123c1", true, "123"},
		{"tvb123p14", true, "123"},
		{"tvb-123-1", true, "123"},
		{"tvb123x1", false, ""},
		{"tvb-abc-1", false, ""},
		{"eth0", false, ""},
		{"tvbc1", false, ""},
	} {
		m := staleLink.FindStringSubmatch(tc.name)
		if m == nil {
			m = staleNS.FindStringSubmatch(tc.name)
		}
		if (m != nil) != tc.re || (m != nil && m[1] != tc.pid) {
			t.Errorf("%q: got match %v, want match %v with pid %q", tc.name, m, tc.re, tc.pid)
		}
	}
	if !pidAlive(strconv.Itoa(os.Getpid())) {
		t.Errorf("own pid: got not alive, want alive")
	}
	if pidAlive("0") || pidAlive("x") {
		t.Errorf("pid 0 or x: got alive, want not alive")
	}
}

// fakeSource delivers one packet per Recv for the first n calls, then
// nothing.
type fakeSource struct {
	n, calls int
	closed   bool
}

func (f *fakeSource) Recv(b *dataplane.Burst) (int, error) {
	f.calls++
	if f.calls <= f.n {
		b.N = 1
		return 1, nil
	}
	b.N = 0
	return 0, nil
}

func (f *fakeSource) Close() error { f.closed = true; return nil }

func TestReplaySource(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	s := &replaySource{Source: &fakeSource{n: 3}, idle: 50 * time.Millisecond, start: func() error {
		close(started)
		<-release
		return nil
	}}
	var b dataplane.Burst
	got := 0
	for i := 0; i < 3; i++ {
		n, err := s.Recv(&b)
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		got += n
	}
	<-started
	// The replay is still running: empty polls do not end the source,
	// however long they last.
	t0 := time.Now()
	for time.Since(t0) < 120*time.Millisecond {
		if _, err := s.Recv(&b); err != nil {
			t.Fatalf("Recv while the replay runs: got %v, want nil", err)
		}
	}
	close(release)
	var err error
	t1 := time.Now()
	for err == nil && time.Since(t1) < 2*time.Second {
		_, err = s.Recv(&b)
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("after the replay: got %v, want io.EOF", err)
	}
	if d := time.Since(t1); d < 50*time.Millisecond {
		t.Errorf("ended %s after the replay, want at least the idle time 50ms", d)
	}
	if got != 3 {
		t.Errorf("got %d packets, want 3", got)
	}

	failed := errors.New("tcpreplay exploded")
	s = &replaySource{Source: &fakeSource{}, idle: time.Millisecond, start: func() error { return failed }}
	err = nil
	for err == nil {
		_, err = s.Recv(&b)
	}
	if !errors.Is(err, failed) {
		t.Errorf("failed replay: got %v, want %v", err, failed)
	}
}

// vethTools skips the test unless this machine can run the live replay
// path: root, ip netns, tcpreplay, and the given peers.
func vethTools(t *testing.T, peers ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace and veth pair")
	}
	for _, p := range append([]string{"ip", "tcpreplay"}, peers...) {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("needs %s (Debian packages iproute2, tcpreplay, tcpdump, tshark): %v", p, err)
		}
	}
	if err := exec.Command("ip", "netns", "list").Run(); err != nil {
		t.Skipf("ip netns unavailable: %v", err)
	}
}

func TestVethReplay(t *testing.T) {
	vethTools(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.pcap")
	gs, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindUDP64, Packets: 2000, PPS: 1e5})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVeth()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range v.Notes {
		t.Log("veth:", n)
	}
	ns, capIf := v.Namespace(), v.CaptureIface()
	if !linkExists(capIf) || !nsExists(ns) {
		t.Fatalf("after NewVeth: link %s exists %v, namespace %s exists %v, want both", capIf, linkExists(capIf), ns, nsExists(ns))
	}
	if linkExists(v.PeerIface()) {
		t.Errorf("peer end %s is in the root namespace, want it only in %s", v.PeerIface(), ns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rx0 := ifaceCounter(t, capIf, "rx_packets")
	r, err := v.Replay(ctx, trace, Rate{PPS: 20000})
	if err != nil {
		t.Fatal(err)
	}
	if r.Packets != uint64(gs.Packets) || r.Failed != 0 {
		t.Errorf("tcpreplay: got %d sent, %d failed, want %d sent, 0 failed", r.Packets, r.Failed, gs.Packets)
	}
	// The rate reached tcpreplay if it paced the replay to it: faster
	// would mean unpaced (2000 packets at 1e5 pps in the file). Slower is
	// the machine's load, not a defect (timings are for benchmarks).
	if r.PPS > 25000 {
		t.Errorf("tcpreplay rate: got %.0f pps, want at most about 20000 (the rate asked)", r.PPS)
	} else if r.PPS < 15000 {
		t.Logf("tcpreplay reached %.0f pps of the 20000 asked: a loaded machine", r.PPS)
	}
	if rx := ifaceCounter(t, capIf, "rx_packets") - rx0; rx != uint64(gs.Packets) {
		t.Errorf("capture end received %d packets, want %d (only the replay's)", rx, gs.Packets)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if linkExists(capIf) || nsExists(ns) {
		t.Errorf("after Close: link exists %v, namespace exists %v, want neither", linkExists(capIf), nsExists(ns))
	}
	if err := v.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
}

func TestRemoveStaleVeths(t *testing.T) {
	vethTools(t)
	// A namespace and a pair named for a process that no longer exists.
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strconv.Itoa(c.Process.Pid)
	ns, a, b := "tvb-"+dead+"-1", "tvb"+dead+"c1", "tvb"+dead+"p1"
	for _, cmd := range [][]string{{"ip", "netns", "add", ns}, {"ip", "link", "add", a, "type", "veth", "peer", "name", b}} {
		if err := run(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { run("ip", "link", "del", a); run("ip", "netns", "del", ns) })
	if pidAlive(dead) {
		t.Skipf("pid %s was reused", dead)
	}
	removed := RemoveStaleVeths()
	if linkExists(a) || linkExists(b) || nsExists(ns) {
		t.Errorf("after RemoveStaleVeths (removed %v): %s, %s or %s still exists", removed, a, b, ns)
	}
}

func ifaceCounter(t *testing.T, iface, name string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/sys/class/net/" + iface + "/statistics/" + name)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAFXDPVdev(t *testing.T) {
	got := AFXDPVdev("tvb12c1")
	want := "net_af_xdp0,iface=tvb12c1,start_queue=0,queue_count=1"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestXDPModeOf(t *testing.T) {
	for _, tc := range []struct{ out, want string }{
		{"7: tvb1c1@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 3498 xdp qdisc noqueue state UP mode DEFAULT\n    link/ether 5a:1e:aa:bb:cc:dd brd ff:ff:ff:ff:ff:ff link-netns tvb-1-1\n    prog/xdp id 41 name xsk_def_prog tag 03b13f331978c78c jited", "native"},
		{"7: tvb1c1@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9000 xdpgeneric qdisc noqueue state UP\n    prog/xdp id 41", "generic"},
		{"2: eth0: <BROADCAST> mtu 1500 xdpoffload qdisc mq", "offload"},
		{"7: tvb1c1@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9000 qdisc noqueue state UP", ""},
	} {
		if got := xdpModeOf(tc.out); got != tc.want {
			t.Errorf("xdpModeOf(%q): got %q, want %q", tc.out, got, tc.want)
		}
	}
}

func TestVethSetMTU(t *testing.T) {
	vethTools(t)
	v, err := NewVeth()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.SetMTU(AFXDPMaxMTU); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/sys/class/net/" + v.CaptureIface() + "/mtu")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(AFXDPMaxMTU) {
		t.Errorf("capture end MTU: got %s, want %d", got, AFXDPMaxMTU)
	}
	out, err := exec.Command("ip", "-n", v.Namespace(), "-o", "link", "show", "dev", v.PeerIface()).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), " mtu "+strconv.Itoa(AFXDPMaxMTU)+" ") {
		t.Errorf("peer end: got %q, want mtu %d", out, AFXDPMaxMTU)
	}
	if m := XDPMode(v.CaptureIface()); m != "" {
		t.Errorf("XDPMode with no program attached: got %q, want \"\"", m)
	}
}

func TestCheckAFXDP(t *testing.T) {
	err := CheckAFXDP()
	fd, serr := syscall.Socket(afXDP, syscall.SOCK_RAW, 0)
	if serr == nil {
		syscall.Close(fd)
	}
	if errors.Is(serr, syscall.EAFNOSUPPORT) && err == nil {
		t.Fatal("kernel without AF_XDP: got nil error, want one")
	}
	if err != nil {
		t.Logf("af_xdp unavailable here: %v", err)
	}
}
