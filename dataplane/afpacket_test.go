//go:build linux

package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tapvault/internal/testframe"
	"tapvault/pcap"
)

// These tests capture on one end of a veth pair made for the test and send
// on the other end through an AF_PACKET socket of their own. They need root
// (or CAP_NET_ADMIN and CAP_NET_RAW) and iproute2; without them they skip.

// vethPair makes a veth pair with IPv6 off (no router solicitations in the
// capture) and returns the sending and the capturing end.
func vethPair(t *testing.T) (send, capture string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("AF_PACKET tests need root to make a veth pair")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 not installed")
	}
	name := fmt.Sprintf("tvaf%d%s", os.Getpid()%100000, strings.ToLower(t.Name()[len(t.Name())-2:]))
	send, capture = name+"s", name+"c"
	if len(send) > 15 {
		t.Fatalf("BUG: interface name %q too long", send)
	}
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	exec.Command("ip", "link", "del", send).Run() // left by a killed run
	run("ip", "link", "add", send, "type", "veth", "peer", "name", capture)
	t.Cleanup(func() { exec.Command("ip", "link", "del", send).Run() })
	for _, n := range []string{send, capture} {
		os.WriteFile("/proc/sys/net/ipv6/conf/"+n+"/disable_ipv6", []byte("1"), 0)
		run("ip", "link", "set", n, "up")
	}
	// The carrier comes up a moment after `ip link set up`; a veth drops
	// what it is given before.
	for _, n := range []string{send, capture} {
		for i := 0; ; i++ {
			b, _ := os.ReadFile("/sys/class/net/" + n + "/operstate")
			if strings.TrimSpace(string(b)) == "up" {
				break
			}
			if i == 500 {
				t.Fatalf("%s: operstate %q after 5s", n, b)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return send, capture
}

// sender is a raw AF_PACKET socket that sends whole frames on an interface.
// It paces itself: a veth delivers through the per-CPU backlog, which drops
// (before any packet socket sees them) what a tight loop sends faster than
// a busy machine's softirq drains it.
type sender struct {
	fd int
	sa unix.SockaddrLinklayer
	n  int
}

func newSender(t *testing.T, iface string) *sender {
	t.Helper()
	ifi, err := netInterfaceIndex(iface)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &sender{fd: fd, sa: unix.SockaddrLinklayer{Ifindex: ifi}}
}

func (s *sender) send(t *testing.T, frame []byte) {
	t.Helper()
	for {
		err := unix.Sendto(s.fd, frame, 0, &s.sa)
		if errors.Is(err, unix.ENOBUFS) {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		if s.n++; s.n%8 == 0 {
			time.Sleep(200 * time.Microsecond)
		}
		return
	}
}

func netInterfaceIndex(name string) (int, error) {
	b, err := os.ReadFile("/sys/class/net/" + name + "/ifindex")
	if err != nil {
		return 0, err
	}
	var i int
	_, err = fmt.Sscan(string(b), &i)
	return i, err
}

// udpFrame is flow f's i-th frame (payload n bytes, marked with i), in
// direction rev.
func udpFrame(f, i, n int, rev bool, vlan uint16) []byte {
	a := netip.AddrFrom4([4]byte{10, 16, byte(f >> 8), byte(f)})
	b := netip.AddrFrom4([4]byte{10, 17, 0, 1})
	pa, pb := uint16(10000+f), uint16(53)
	if rev {
		a, b, pa, pb = b, a, pb, pa
	}
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(i + j)
	}
	fr := &testframe.Frame{IPv4: &testframe.IPv4{Src: a, Dst: b, ID: uint16(i)}, UDP: &testframe.UDP{SrcPort: pa, DstPort: pb}, Payload: p}
	if vlan != 0 {
		fr.VLANs = []uint16{vlan}
	}
	return fr.Bytes()
}

// afRecvAll reads s until want packets came or nothing more comes for a
// second, copying each one.
func afRecvAll(t *testing.T, s *AFPacket, want int) []Packet {
	t.Helper()
	out, err := recvUntilQuiet(s, want)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func recvUntilQuiet(s *AFPacket, want int) ([]Packet, error) {
	var out []Packet
	var b Burst
	last := time.Now()
	for len(out) < want && time.Since(last) < time.Second {
		n, err := s.Recv(&b)
		if err != nil {
			return out, fmt.Errorf("Recv: %w", err)
		}
		if n > 0 {
			last = time.Now()
		}
		for i := 0; i < n; i++ {
			p := b.Pkts[i]
			p.Data = bytes.Clone(p.Data)
			out = append(out, p)
		}
	}
	return out, nil
}

// reading reads s in the background while the test sends: a ring that
// nobody reads holds only Blocks block timeouts' worth of traffic. wait
// returns what came.
func reading(t *testing.T, s *AFPacket, want int) (wait func() []Packet) {
	type res struct {
		p   []Packet
		err error
	}
	c := make(chan res, 1)
	go func() {
		p, err := recvUntilQuiet(s, want)
		c <- res{p, err}
	}()
	return func() []Packet {
		t.Helper()
		r := <-c
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.p
	}
}

func openAF(t *testing.T, cfg AFPacketConfig) *AFPacket {
	t.Helper()
	if cfg.BlockTimeout == 0 {
		cfg.BlockTimeout = 10 * time.Millisecond
	}
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = 50 * time.Millisecond
	}
	s, err := OpenAFPacket(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The bytes that arrive are the bytes sent, with the original length, a
// timestamp from the realtime clock, and a VLAN tag that the receive path
// took off put back.
func TestAFPacketRecvBytes(t *testing.T) {
	tx, rx := vethPair(t)
	s := openAF(t, AFPacketConfig{Iface: rx, Blocks: 16, BlockSize: 64 << 10}) // holds all 300: nothing reads while they are sent
	if s.LinkType() != pcap.LinkTypeEthernet {
		t.Fatalf("link type: got %d, want Ethernet", s.LinkType())
	}
	snd := newSender(t, tx)
	var sent [][]byte
	t0 := time.Now().UnixNano()
	wait := reading(t, s, 300)
	for i := 0; i < 300; i++ {
		var vlan uint16
		if i%10 == 0 {
			vlan = uint16(100 + i)
		}
		f := udpFrame(i%7, i, i*4%1400, false, vlan)
		sent = append(sent, f)
		snd.send(t, f)
	}
	got := wait()
	t1 := time.Now().UnixNano()
	if len(got) != len(sent) {
		st, _ := s.Stats()
		t.Fatalf("packets: got %d, want %d (socket %+v)", len(got), len(sent), st)
	}
	prev := int64(0)
	for i, p := range got {
		if !bytes.Equal(p.Data, sent[i]) {
			t.Fatalf("packet %d: got % x, want % x", i, p.Data[:min(len(p.Data), 32)], sent[i][:32])
		}
		if p.WireLen != uint32(len(sent[i])) || p.LinkType != pcap.LinkTypeEthernet {
			t.Fatalf("packet %d: got wire %d lt %d, want %d, %d", i, p.WireLen, p.LinkType, len(sent[i]), pcap.LinkTypeEthernet)
		}
		if p.TS < t0 || p.TS > t1 || p.TS < prev {
			t.Fatalf("packet %d: timestamp %d not in [%d, %d] after %d", i, p.TS, t0, t1, prev)
		}
		prev = p.TS
	}
	// The receive path moves a tag into the packet's metadata (as a NIC
	// with VLAN stripping does); Recv put the 30 back (the bytes above).
	if s.vlanRestored != 30 && s.vlanRestored != 0 {
		t.Errorf("restored %d VLAN tags, want all 30 or none", s.vlanRestored)
	}
	if s.vlanRestored == 0 {
		t.Log("the kernel left the VLAN tags in the packets: restoring them was not exercised")
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets != uint64(len(sent)) || st.Drops != 0 {
		t.Errorf("stats: got %+v, want %d packets, no drops", st, len(sent))
	}
}

// Snap length and filter act in the kernel: cut packets keep their
// original length, rejected ones are neither delivered nor counted.
func TestAFPacketSnaplenAndFilter(t *testing.T) {
	tx, rx := vethPair(t)
	snd := newSender(t, tx)

	s := openAF(t, AFPacketConfig{Iface: rx, Snaplen: 80})
	wait := reading(t, s, 20)
	for i := 0; i < 20; i++ {
		snd.send(t, udpFrame(1, i, 500, false, 0))
	}
	got := wait()
	if len(got) != 20 {
		t.Fatalf("snaplen: got %d packets, want 20", len(got))
	}
	for i, p := range got {
		want := udpFrame(1, i, 500, false, 0)
		if !bytes.Equal(p.Data, want[:80]) || p.WireLen != uint32(len(want)) {
			t.Fatalf("snaplen packet %d: got %d bytes wire %d, want the first 80 of %d", i, len(p.Data), p.WireLen, len(want))
		}
	}
	s.Close()

	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed: no filter compiler")
	}
	prog, err := CompileFilter("udp src port 10003", pcap.LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := openAF(t, AFPacketConfig{Iface: rx, Filter: prog})
	const want = 10 // i%6 == 3 of 60
	wait = reading(t, f, want+1)
	for i := 0; i < 60; i++ {
		snd.send(t, udpFrame(i%6, i, 100, false, 0))
	}
	got = wait()
	if len(got) != want {
		t.Fatalf("filter: got %d packets, want %d", len(got), want)
	}
	for _, p := range got {
		if port := uint16(p.Data[34])<<8 | uint16(p.Data[35]); port != 10003 {
			t.Fatalf("filter let through source port %d", port)
		}
	}
	if st, _ := f.Stats(); st.Packets != uint64(want) {
		t.Errorf("filter: kernel counted %d packets, want %d (rejected ones are not counted)", st.Packets, want)
	}
}

// A fanout group spreads flows over its sockets, each flow (both
// directions) on one socket, and loses nothing.
func TestAFPacketGroupFanout(t *testing.T) {
	tx, rx := vethPair(t)
	socks, err := OpenAFPacketGroup(AFPacketConfig{Iface: rx, BlockTimeout: 10 * time.Millisecond, PollTimeout: 50 * time.Millisecond}, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range socks {
		t.Cleanup(func() { s.Close() })
	}
	snd := newSender(t, tx)
	const flows, per = 40, 6
	var waits []func() []Packet
	for _, s := range socks {
		waits = append(waits, reading(t, s, flows*per))
	}
	for i := 0; i < flows*per; i++ {
		snd.send(t, udpFrame(i%flows, i, 64, i%2 == 1, 0))
	}
	where := map[int]int{} // flow -> socket
	total := 0
	for si, wait := range waits {
		got := wait()
		if len(got) == 0 {
			t.Errorf("socket %d of 3 got nothing from %d flows", si, flows)
		}
		for _, p := range got {
			// The flow is the 10.16.x.y address, source or destination.
			f := int(p.Data[28])<<8 | int(p.Data[29])
			if p.Data[27] == 17 {
				f = int(p.Data[32])<<8 | int(p.Data[33])
			}
			if w, ok := where[f]; ok && w != si {
				t.Fatalf("flow %d on sockets %d and %d", f, w, si)
			}
			where[f] = si
			total++
		}
	}
	if total != flows*per || len(where) != flows {
		t.Fatalf("got %d packets of %d flows, want %d of %d", total, len(where), flows*per, flows)
	}
}

// A ring that is not read fills, and the kernel counts what it then drops
// (tp_drops): nothing is lost without being counted.
func TestAFPacketDropsCounted(t *testing.T) {
	tx, rx := vethPair(t)
	s := openAF(t, AFPacketConfig{Iface: rx, Blocks: 2, BlockSize: os.Getpagesize()})
	snd := newSender(t, tx)
	const n = 400
	for i := 0; i < n; i++ {
		snd.send(t, udpFrame(1, i, 1000, false, 0))
	}
	time.Sleep(50 * time.Millisecond)
	got := afRecvAll(t, s, n)
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Drops == 0 {
		t.Fatalf("stats %+v: want drops from a 2-page ring", st)
	}
	if st.Packets != uint64(len(got)) || st.Packets+st.Drops != n {
		t.Fatalf("stats %+v, delivered %d: want packets = delivered and packets + drops = %d", st, len(got), n)
	}
}

// With nothing arriving, Recv sleeps in poll for its timeout instead of
// spinning, and costs next to no CPU.
func TestAFPacketIdleSleeps(t *testing.T) {
	_, rx := vethPair(t)
	s := openAF(t, AFPacketConfig{Iface: rx, PollTimeout: 50 * time.Millisecond})
	// The whole process: the goroutine parks on the network poller and
	// may wake on another thread.
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	var b Burst
	t0 := time.Now()
	calls := 0
	for time.Since(t0) < 300*time.Millisecond {
		if n, err := s.Recv(&b); n != 0 || err != nil {
			t.Fatalf("idle Recv: got %d, %v", n, err)
		}
		calls++
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	if calls > 10 {
		t.Errorf("idle: %d Recv calls in 300ms with a 50ms poll timeout: it does not sleep", calls)
	}
	if cpu > 30*time.Millisecond {
		t.Errorf("idle: %v CPU in 300ms", cpu)
	}
}

func TestAFPacketBadInterface(t *testing.T) {
	_, err := OpenAFPacket(AFPacketConfig{Iface: "tvnosuch0"})
	if err == nil || !strings.Contains(err.Error(), `"tvnosuch0"`) {
		t.Fatalf("got %v, want an error naming the interface", err)
	}
	_, err = IfaceLinkType("tvnosuch0")
	if err == nil || !strings.Contains(err.Error(), `"tvnosuch0"`) {
		t.Fatalf("got %v, want an error naming the interface", err)
	}
}

func TestCompileFilter(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed")
	}
	prog, err := CompileFilter("tcp port 80", pcap.LinkTypeEthernet, 96)
	if err != nil {
		t.Fatal(err)
	}
	// The accept value is the snap length.
	found := false
	for _, ins := range prog {
		if ins.Op == unix.BPF_RET|unix.BPF_K && ins.K == 96 {
			found = true
		}
	}
	if !found {
		t.Errorf("no `ret #96` in %v", prog)
	}
	if _, err := CompileFilter("tcp prot 80", pcap.LinkTypeEthernet, 0); err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Errorf("bad filter: got %v, want tcpdump's syntax error", err)
	}
	old := TcpdumpPath
	TcpdumpPath = "/nonexistent/tcpdump"
	defer func() { TcpdumpPath = old }()
	if _, err := CompileFilter("tcp", pcap.LinkTypeEthernet, 0); err == nil || !strings.Contains(err.Error(), "install it") {
		t.Errorf("no tcpdump: got %v, want an error saying to install it", err)
	}
}

func TestParseDDD(t *testing.T) {
	good := "2\n40 0 0 12\n6 0 0 262144\n"
	p, err := parseDDD(good)
	if err != nil || len(p) != 2 || p[0].Op != 40 || p[0].K != 12 || p[1].K != 262144 {
		t.Fatalf("got %v, %v", p, err)
	}
	for _, bad := range []string{"", "x\n", "2\n40 0 0 12\n", "1\n40 0 12\n", "1\n70000 0 0 1\n", "1\n6 0 256 0\n"} {
		if _, err := parseDDD(bad); err == nil {
			t.Errorf("parseDDD(%q): no error", bad)
		}
	}
}

// On loopback the kernel hands a packet socket every packet twice, going
// out and coming in; the capture keeps one copy, with and without a filter
// of its own (a snap length is one).
func TestAFPacketLoopbackOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_RAW)")
	}
	for _, snap := range []int{0, 50} {
		t.Run(fmt.Sprintf("snaplen=%d", snap), func(t *testing.T) {
			s := openAF(t, AFPacketConfig{Iface: "lo", Snaplen: snap})
			if s.LinkType() != pcap.LinkTypeEthernet {
				t.Fatalf("link type: got %d, want Ethernet", s.LinkType())
			}
			ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			port := ln.LocalAddr().(*net.UDPAddr).Port
			c, err := net.DialUDP("udp4", nil, ln.LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const sent = 40
			marker := []byte("tapvault-lo-once")
			for i := 0; i < sent; i++ {
				if _, err := c.Write(append(marker, byte(i))); err != nil {
					t.Fatal(err)
				}
			}
			// Other tests may use lo meanwhile: count only ours, for a
			// second after the last one came.
			ours, seen := 0, map[byte]int{}
			var b Burst
			last := time.Now()
			for time.Since(last) < time.Second {
				n, err := s.Recv(&b)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < n; i++ {
					d := b.Pkts[i].Data
					if len(d) < 42 || d[12] != 0x08 || d[13] != 0 || d[23] != 17 {
						continue
					}
					if int(d[36])<<8|int(d[37]) != port {
						continue
					}
					ours++
					last = time.Now()
					if snap == 0 {
						if len(d) != 42+len(marker)+1 || !bytes.Equal(d[42:42+len(marker)], marker) {
							t.Fatalf("packet %d: got % x", ours, d)
						}
						seen[d[len(d)-1]]++
					} else if len(d) != snap || int(b.Pkts[i].WireLen) != 42+len(marker)+1 {
						t.Fatalf("packet %d: %d bytes, wire %d; want %d of %d", ours, len(d), b.Pkts[i].WireLen, snap, 42+len(marker)+1)
					}
				}
			}
			if ours != sent {
				t.Fatalf("got %d copies of %d datagrams sent over lo, want each once", ours, sent)
			}
			for i, n := range seen {
				if n != 1 {
					t.Errorf("datagram %d seen %d times", i, n)
				}
			}
		})
	}
}
