package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tapvault/dataplane"
)

// The live replay path: a veth pair whose peer end sits in a network
// namespace of its own, fed by tcpreplay running inside that namespace.
//
//	 root namespace                      namespace tvb-<pid>-<n>
//	 ─────────────────────────────       ─────────────────────────
//	 tapvault (net_af_packet) ─┐
//	 tcpdump -w               ─┼─ tvb<pid>c<n> ═══ tvb<pid>p<n> ◄── tcpreplay
//	 dumpcap -w               ─┘   (capture end)     (peer end)
//
// Frames tcpreplay sends on the peer end arrive on the capture end and go
// nowhere else: neither end has an IPv4 address, IPv6 is disabled on both
// (no router solicitations or MLD reports mixed into the counts), and the
// generated frames are addressed to MACs that are not the capture end's, so
// the kernel drops them as PACKET_OTHERHOST after the packet taps have seen
// them; nothing is routed or forwarded. A tc ingress drop would say so
// outright but needs cls_matchall/act_gact, which this machine's kernel
// lacks ("TC classifier not found"), so it is not used.
//
// Offloads that merge or split frames (GRO, GSO, TSO) are turned off on both
// ends when ethtool is installed; tcpreplay writes one frame per send, so
// without ethtool only the veth defaults apply (GRO is off on veth unless XDP
// is attached; GSO/TSO apply to locally generated TCP, not to packet-socket
// sends).

// vethMTU is both ends' MTU: above any frame a trace holds (1518 + tags),
// with room for jumbo traces.
const vethMTU = 9000

var vethSeq atomic.Int32

// Veth is a veth pair with its peer end in a private network namespace.
// Create it before dataplane.InitEAL when tapvault captures from it: the
// net_af_packet vdev names the interface at EAL init (AFPacketVdev).
type Veth struct {
	ns, capture, peer string
	// Notes lists what could not be set up as wished (offloads, IPv6), for
	// the report.
	Notes []string

	closeOnce sync.Once
	closeErr  error
	sigStop   chan struct{}
}

// NewVeth removes namespaces and interfaces left by earlier runs that
// crashed (RemoveStaleVeths), then creates namespace tvb-<pid>-<n> and the
// pair tvb<pid>c<n> (capture end, root namespace) / tvb<pid>p<n> (peer end,
// in the namespace), both up with MTU 9000 and no addresses. It needs root
// and iproute2's ip.
//
// Until Close, a SIGINT, SIGTERM or SIGHUP tears the pair down and is then
// raised again with the handler removed, so the process ends as it would
// have without the Veth (other handlers registered with signal.Notify see
// the signal twice).
func NewVeth() (*Veth, error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("veth: iproute2: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("veth: creating a network namespace needs root")
	}
	RemoveStaleVeths()
	pid, n := os.Getpid(), vethSeq.Add(1)
	v := &Veth{
		ns:      fmt.Sprintf("tvb-%d-%d", pid, n),
		capture: fmt.Sprintf("tvb%dc%d", pid, n),
		peer:    fmt.Sprintf("tvb%dp%d", pid, n),
		sigStop: make(chan struct{}),
	}
	if len(v.capture) > 15 {
		return nil, fmt.Errorf("veth: interface name %q is longer than 15 bytes", v.capture)
	}
	if err := v.setup(); err != nil {
		v.teardown()
		return nil, err
	}
	v.watchSignals()
	return v, nil
}

func (v *Veth) setup() error {
	steps := [][]string{
		{"ip", "netns", "add", v.ns},
		{"ip", "link", "add", v.capture, "type", "veth", "peer", "name", v.peer},
		{"ip", "link", "set", v.peer, "netns", v.ns},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return fmt.Errorf("veth: %w", err)
		}
	}
	// IPv6 off before the links go up, else each end sends router
	// solicitations that the captures would count.
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+v.capture+"/disable_ipv6", []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		v.Notes = append(v.Notes, fmt.Sprintf("IPv6 stays on on %s: %v", v.capture, err))
	}
	if err := run("ip", "netns", "exec", v.ns, "sh", "-c",
		"f=/proc/sys/net/ipv6/conf/"+v.peer+"/disable_ipv6; [ ! -e $f ] || echo 1 > $f"); err != nil {
		v.Notes = append(v.Notes, fmt.Sprintf("IPv6 stays on on %s: %v", v.peer, err))
	}
	steps = [][]string{
		{"ip", "link", "set", v.capture, "mtu", strconv.Itoa(vethMTU), "up"},
		{"ip", "-n", v.ns, "link", "set", v.peer, "mtu", strconv.Itoa(vethMTU), "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return fmt.Errorf("veth: %w", err)
		}
	}
	if _, err := exec.LookPath("ethtool"); err == nil {
		for _, feat := range []string{"gro", "gso", "tso"} {
			if err := run("ethtool", "-K", v.capture, feat, "off"); err != nil {
				v.Notes = append(v.Notes, fmt.Sprintf("%s %s: %v", v.capture, feat, err))
			}
			if err := run("ip", "netns", "exec", v.ns, "ethtool", "-K", v.peer, feat, "off"); err != nil {
				v.Notes = append(v.Notes, fmt.Sprintf("%s %s: %v", v.peer, feat, err))
			}
		}
	} else {
		v.Notes = append(v.Notes, "ethtool not installed: offloads left at the veth defaults")
	}
	// The capture end is operationally up once its peer is.
	deadline := time.Now().Add(3 * time.Second)
	for {
		b, err := os.ReadFile("/sys/class/net/" + v.capture + "/operstate")
		if err == nil && strings.TrimSpace(string(b)) == "up" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("veth: %s not up after 3 s (operstate %q, %v)", v.capture, bytes.TrimSpace(b), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watchSignals tears the pair down on SIGINT, SIGTERM or SIGHUP, then raises
// the signal again without our handler.
func (v *Veth) watchSignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		select {
		case s := <-ch:
			v.teardownOnce()
			signal.Stop(ch)
			if sig, ok := s.(syscall.Signal); ok {
				syscall.Kill(os.Getpid(), sig)
			}
		case <-v.sigStop:
		}
	}()
}

// CaptureIface is the capture end's name, in the root namespace.
func (v *Veth) CaptureIface() string { return v.capture }

// PeerIface is the peer end's name, inside Namespace.
func (v *Veth) PeerIface() string { return v.peer }

// Namespace is the network namespace holding the peer end.
func (v *Veth) Namespace() string { return v.ns }

// Close removes the namespace and the pair. It is safe to call more than
// once.
func (v *Veth) Close() error {
	v.teardownOnce()
	return v.closeErr
}

func (v *Veth) teardownOnce() {
	v.closeOnce.Do(func() {
		close(v.sigStop)
		v.closeErr = v.teardown()
	})
}

func (v *Veth) teardown() error {
	var errs []error
	// Deleting the capture end deletes its peer with it; the namespace goes
	// after. Either may already be gone.
	if linkExists(v.capture) {
		if err := run("ip", "link", "del", v.capture); err != nil {
			errs = append(errs, err)
		}
	}
	if nsExists(v.ns) {
		if err := run("ip", "netns", "del", v.ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("veth teardown: %w", err)
	}
	return nil
}

var (
	staleNS   = regexp.MustCompile(`^tvb-(\d+)-\d+$`)
	staleLink = regexp.MustCompile(`^tvb(\d+)[cp]\d+$`)
)

// RemoveStaleVeths deletes tvb-* namespaces and tvb* interfaces whose
// creating process is gone (a crash, SIGKILL). Those of live processes,
// such as a concurrent test run, are left alone. It returns what it removed.
func RemoveStaleVeths() []string {
	var removed []string
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if m := staleLink.FindStringSubmatch(name); m != nil && !pidAlive(m[1]) {
			if run("ip", "link", "del", name) == nil {
				removed = append(removed, name)
			}
		}
	}
	out, _ = exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if m := staleNS.FindStringSubmatch(f[0]); m != nil && !pidAlive(m[1]) {
			if run("ip", "netns", "del", f[0]) == nil {
				removed = append(removed, f[0])
			}
		}
	}
	return removed
}

func pidAlive(s string) bool {
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

// run runs a command; its error carries the command line and its output.
func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Rate is how fast tcpreplay sends. At most one field is set; the zero
// Rate replays at the trace's own timing (Multiplier 1).
type Rate struct {
	Max        bool    // --topspeed: as fast as tcpreplay can
	PPS        float64 // --pps: fixed packets per second
	Mbps       float64 // --mbps: fixed megabits per second
	Multiplier float64 // --multiplier: the trace's timing sped up by this factor
}

func (r Rate) String() string {
	switch {
	case r.Max:
		return "max"
	case r.PPS > 0:
		return "pps=" + strconv.FormatFloat(r.PPS, 'g', -1, 64)
	case r.Mbps > 0:
		return "mbps=" + strconv.FormatFloat(r.Mbps, 'g', -1, 64)
	case r.Multiplier > 0:
		return "x" + strconv.FormatFloat(r.Multiplier, 'g', -1, 64)
	}
	return "x1"
}

// tcpreplayArgs are the rate options for tcpreplay.
func (r Rate) tcpreplayArgs() ([]string, error) {
	set := 0
	for _, on := range []bool{r.Max, r.PPS != 0, r.Mbps != 0, r.Multiplier != 0} {
		if on {
			set++
		}
	}
	if set > 1 {
		return nil, fmt.Errorf("rate %+v: set one of Max, PPS, Mbps, Multiplier", r)
	}
	if r.PPS < 0 || r.Mbps < 0 || r.Multiplier < 0 {
		return nil, fmt.Errorf("rate %+v: negative", r)
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	switch {
	case r.Max:
		return []string{"--topspeed"}, nil
	case r.PPS > 0:
		return []string{"--pps=" + f(r.PPS)}, nil
	case r.Mbps > 0:
		return []string{"--mbps=" + f(r.Mbps)}, nil
	case r.Multiplier > 0:
		return []string{"--multiplier=" + f(r.Multiplier)}, nil
	}
	return nil, nil
}

// ParseRate reads "max", "pps=N", "mbps=N" or "xN" (the trace's timing
// times N), as Rate.String writes them.
func ParseRate(s string) (Rate, error) {
	num := func(v string) (float64, error) {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x <= 0 {
			return 0, fmt.Errorf("rate %q: want a positive number", s)
		}
		return x, nil
	}
	var r Rate
	var err error
	switch {
	case s == "max":
		r.Max = true
	case strings.HasPrefix(s, "pps="):
		r.PPS, err = num(s[4:])
	case strings.HasPrefix(s, "mbps="):
		r.Mbps, err = num(s[5:])
	case strings.HasPrefix(s, "x"):
		r.Multiplier, err = num(s[1:])
	default:
		err = fmt.Errorf("rate %q: want max, pps=N, mbps=N or xN", s)
	}
	return r, err
}

// ReplayResult is tcpreplay's own account of a replay.
type ReplayResult struct {
	Rate     Rate
	Packets  uint64        // "Actual: N packets"
	Bytes    uint64        // "(N bytes)"
	Duration time.Duration // "sent in S seconds"
	PPS      float64       // "Rated: ... N pps"
	Mbps     float64       // "Rated: ... N Mbps"
	Failed   uint64        // "Failed packets:" (not sent: too big, device error)
	Retried  uint64        // ENOBUFS + EAGAIN retries (sent after a retry)
	Wall     time.Duration // the tcpreplay process, start to exit
}

// Replay sends pcap from the peer end with tcpreplay, inside the namespace,
// and waits for it to finish. Traces up to 256 MiB are preloaded into
// memory (--preload-pcap) so that reading the file does not limit the rate.
func (v *Veth) Replay(ctx context.Context, pcap string, rate Rate) (ReplayResult, error) {
	res := ReplayResult{Rate: rate}
	ra, err := rate.tcpreplayArgs()
	if err != nil {
		return res, err
	}
	args := []string{"netns", "exec", v.ns, "tcpreplay", "-i", v.peer}
	args = append(args, ra...)
	if fi, err := os.Stat(pcap); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	} else if fi.Size() <= 256<<20 {
		args = append(args, "--preload-pcap")
	}
	args = append(args, pcap)
	cmd := exec.CommandContext(ctx, "ip", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err = cmd.Run()
	res.Wall = time.Since(t0)
	if err != nil {
		return res, fmt.Errorf("tcpreplay %s: %w: %s", strings.Join(args[3:], " "), err, lastLines(stderr.String(), 3))
	}
	if err := parseTcpreplay(stdout.String(), &res); err != nil {
		return res, err
	}
	return res, nil
}

var (
	reActual = regexp.MustCompile(`Actual: (\d+) packets \((\d+) bytes\) sent in ([0-9.]+) seconds`)
	reRated  = regexp.MustCompile(`Rated: [0-9.]+ Bps, ([0-9.]+) Mbps, ([0-9.]+) pps`)
	reFailed = regexp.MustCompile(`Failed packets:\s+(\d+)`)
	reRetry  = regexp.MustCompile(`Retried packets \([A-Z]+\):\s+(\d+)`)
)

// parseTcpreplay reads tcpreplay's summary (4.x):
//
//	Actual: 3000 packets (241801 bytes) sent in 0.299904 seconds
//	Rated: 806261.3 Bps, 6.45 Mbps, 10003.20 pps
//	...
//		Failed packets:            0
//		Retried packets (ENOBUFS): 0
//		Retried packets (EAGAIN):  0
func parseTcpreplay(out string, r *ReplayResult) error {
	m := reActual.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("tcpreplay: no \"Actual:\" line in its output: %q", lastLines(out, 5))
	}
	r.Packets, _ = strconv.ParseUint(m[1], 10, 64)
	r.Bytes, _ = strconv.ParseUint(m[2], 10, 64)
	secs, _ := strconv.ParseFloat(m[3], 64)
	r.Duration = time.Duration(secs * float64(time.Second))
	if m := reRated.FindStringSubmatch(out); m != nil {
		r.Mbps, _ = strconv.ParseFloat(m[1], 64)
		r.PPS, _ = strconv.ParseFloat(m[2], 64)
	}
	if m := reFailed.FindStringSubmatch(out); m != nil {
		r.Failed, _ = strconv.ParseUint(m[1], 10, 64)
	}
	for _, m := range reRetry.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		r.Retried += n
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// AF_PACKET ring of the net_af_packet vdev: 16384 frames of 2048 bytes in
// 1 MiB blocks, a 32 MiB ring like the 32 MiB buffer the peers get
// (tcpdump -B, dumpcap -B), so the comparison is between capturers, not
// buffer sizes. A 2048-byte frame holds up to 2016 bytes of packet (the
// TPACKET2 header takes the rest), which fits in the dataplane's default
// 2176-byte mbufs as the PMD requires; longer frames are cut by the kernel.
const (
	afPacketBlock  = 1 << 20
	afPacketFrame  = 2048
	afPacketFrames = 16384
)

// AFPacketVdev is the EAL --vdev value (without "--vdev=") that makes
// iface a DPDK port named net_af_packet0 with one RX queue (DPDK 22.11
// af_packet PMD devargs: iface, qpairs, blocksz, framesz, framecnt).
func AFPacketVdev(iface string) string {
	return fmt.Sprintf("net_af_packet0,iface=%s,qpairs=1,blocksz=%d,framesz=%d,framecnt=%d",
		iface, afPacketBlock, afPacketFrame, afPacketFrames)
}

// AFXDPVdev is the EAL --vdev value (without "--vdev=") that makes iface a
// DPDK port named net_af_xdp0 over one AF_XDP socket bound to the
// interface's queue 0 (DPDK 22.11 af_xdp PMD devargs: iface, start_queue,
// queue_count, shared_umem, xdp_prog, busy_budget, force_copy). Without
// xdp_prog the PMD has libxdp load its default program, which redirects
// every frame arriving on the bound queue into the socket; the kernel
// picks the attach mode (native where the driver has XDP, as veth does,
// else generic/skb), and the XDP program comes off with the port's close.
// A veth has one RX queue, so queue 0 sees all its traffic.
func AFXDPVdev(iface string) string {
	return fmt.Sprintf("net_af_xdp0,iface=%s,start_queue=0,queue_count=1", iface)
}

// AFXDPRing is the AF_XDP RX ring (and fill ring) the af_xdp path asks
// for: the 16384 frames of the af_packet path's ring, so the two PMDs
// absorb the same burst while the worker is off the CPU. Measured here
// (2 vCPUs, 200k IMIX packets): with the dataplane's default 1024
// descriptors and 8191 mbufs af_xdp lost 0.5-15% at 50-400 kpps with
// the socket's rx_dropped (imissed) at 0, so somewhere DPDK 22.11 does
// not count (the RX ring full is a candidate: XDP_STATISTICS has it apart,
// and the PMD does not read it); with 16384 it still lost (medians of 3:
// 0-19k of 200k analytics off, 0-47k on, over 50k-max pps), all of it in
// rx_dropped, which copy mode counts when the fill ring has no buffer;
// af_packet with the same depth lost nothing in 25 of 30 runs. AFXDPMbufs is its mempool, which is also the UMEM: the
// fill ring holds AFXDPRing of them, the worker's bursts the rest.
const (
	AFXDPRing  = afPacketFrames
	AFXDPMbufs = 2*AFXDPRing - 1
)

// AFXDPMaxMTU is the largest veth MTU at which the kernel attaches an XDP
// program in native mode without multi-buffer support: a frame must fit
// in one 4 KiB page with 258 bytes of headroom (XDP_PACKET_HEADROOM +
// NET_IP_ALIGN), skb_shared_info (320) and the Ethernet header: 3504.
// libxdp's default program is not frags-aware, so at the bench's 9000 the
// attach fails ("Peer MTU is too large to set XDP"). SetMTU to it for the
// af_xdp path.
const AFXDPMaxMTU = 3498

// SetMTU sets both ends' MTU.
func (v *Veth) SetMTU(mtu int) error {
	if err := run("ip", "link", "set", v.capture, "mtu", strconv.Itoa(mtu)); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	if err := run("ip", "-n", v.ns, "link", "set", v.peer, "mtu", strconv.Itoa(mtu)); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	return nil
}

// XDPMode says how an XDP program is attached to iface, from
// `ip -d link show`: "native" (the driver runs it: xdp), "generic" (the
// kernel's skb path: xdpgeneric), "offload", or "" when none is.
func XDPMode(iface string) string {
	out, err := exec.Command("ip", "-d", "link", "show", "dev", iface).Output()
	if err != nil {
		return ""
	}
	return xdpModeOf(string(out))
}

func xdpModeOf(ipLink string) string {
	for _, f := range strings.Fields(ipLink) {
		switch f {
		case "xdp":
			return "native"
		case "xdpgeneric":
			return "generic"
		case "xdpoffload":
			return "offload"
		}
	}
	return ""
}

// ReplayIdle is how long a live replay capture keeps receiving after the
// replay has ended, for packets still in the rings.
const ReplayIdle = 500 * time.Millisecond

// RunAFPacket runs Run on a live port (default net_af_packet0) for the
// length of one replay: start is called once the port is up and the worker
// polls (its first Recv), and the capture ends ReplayIdle after start has
// returned and no packet has arrived. An error from start ends the run and
// is returned.
func RunAFPacket(opts RunOptions, start func() error) (*Result, error) {
	if opts.Port == "" {
		opts.Port = "net_af_packet0"
	}
	return RunLive(opts, start)
}

// RunLive is RunAFPacket for any live port (opts.Port must be set):
// net_af_packet0, net_af_xdp0.
func RunLive(opts RunOptions, start func() error) (*Result, error) {
	if opts.Port == "" {
		return nil, errors.New("live run: no port named")
	}
	opts.Wrap = func(s dataplane.Source) dataplane.Source {
		return &replaySource{Source: s, start: start, idle: ReplayIdle}
	}
	return Run(opts)
}

// replaySource ends a live source after a replay: it calls start on the
// first Recv, and returns io.EOF once start has returned and idle has passed
// without a packet.
type replaySource struct {
	dataplane.Source
	start func() error
	idle  time.Duration

	done     chan error
	finished bool
	startErr error
	quiet    time.Time // since when nothing arrived after start returned
}

var _ dataplane.Source = (*replaySource)(nil)

func (s *replaySource) Recv(b *dataplane.Burst) (int, error) {
	if s.done == nil {
		s.done = make(chan error, 1)
		go func() { s.done <- s.start() }()
	}
	n, err := s.Source.Recv(b)
	if n > 0 || err != nil {
		s.quiet = time.Time{}
		return n, err
	}
	if !s.finished {
		select {
		case s.startErr = <-s.done:
			s.finished = true
		default:
			return 0, nil
		}
	}
	now := time.Now()
	if s.quiet.IsZero() {
		s.quiet = now
		return 0, nil
	}
	if now.Sub(s.quiet) < s.idle {
		return 0, nil
	}
	if s.startErr != nil {
		return 0, fmt.Errorf("replay: %w", s.startErr)
	}
	return 0, io.EOF
}

// readLines calls fn for each line of r until EOF.
func readLines(r io.Reader, fn func(string)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fn(sc.Text())
	}
}

// afXDP is AF_XDP's address family number (linux/socket.h).
const afXDP = 44

// CheckAFXDP says why the af_xdp path cannot run here, before EAL starts:
// the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS), or no af_xdp PMD
// is installed beside the other DPDK drivers. A nil error is no promise:
// attaching the XDP program or binding the socket can still fail when the
// port opens, and DPDK's log says why.
func CheckAFXDP() error {
	fd, err := syscall.Socket(afXDP, syscall.SOCK_RAW, 0)
	if err != nil {
		if errors.Is(err, syscall.EAFNOSUPPORT) {
			return fmt.Errorf("af_xdp: the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS is off): %w", err)
		}
		return fmt.Errorf("af_xdp: AF_XDP socket: %w", err)
	}
	syscall.Close(fd)
	if dirs := dpdkPMDDirs(); len(dirs) > 0 {
		for _, d := range dirs {
			if m, _ := filepath.Glob(filepath.Join(d, "librte_net_af_xdp.so*")); len(m) > 0 {
				return nil
			}
		}
		return fmt.Errorf("af_xdp: no librte_net_af_xdp in DPDK's driver directories %s: this DPDK was built without the af_xdp PMD (it needs libxdp and libbpf at build time)", strings.Join(dirs, ", "))
	}
	return nil
}

// dpdkPMDDirs are the directories DPDK loads its drivers from (Debian:
// /usr/lib/<triplet>/dpdk/pmds-<ABI>).
func dpdkPMDDirs() []string {
	var dirs []string
	for _, pat := range []string{"/usr/lib/*/dpdk/pmds-*", "/usr/lib/dpdk/pmds-*", "/usr/local/lib/*/dpdk/pmds-*", "/usr/local/lib/dpdk/pmds-*"} {
		m, _ := filepath.Glob(pat)
		dirs = append(dirs, m...)
	}
	return dirs
}
