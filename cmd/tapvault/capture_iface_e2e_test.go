package main

import (
	"bufio"
	"bytes"
	"encoding/binary"

	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"context"

	"tapvault/bench"
)

// Kernel capture (--iface) end to end: a veth pair whose peer end sits in a
// network namespace (bench.Veth), tcpreplay sending a generated trace from
// the peer, `tapvault capture --iface` on the other end, then `tapvault
// query`. They need root, iproute2, tcpreplay and tcpdump; without them they
// skip.

func needIfaceCapture(t *testing.T) *bench.Veth {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel capture tests need root (veth pairs, namespaces)")
	}
	for _, tool := range []string{"ip", "tcpreplay", "tcpdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	v, err := bench.NewVeth()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// syncBuf is a bytes.Buffer that a process writes while the test reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bgProc is a process the test started and stops with SIGINT.
type bgProc struct {
	cmd         *exec.Cmd
	out, errOut *syncBuf
	done        chan error
}

// startBg starts argv and waits until its stderr shows ready.
func startBg(t *testing.T, ready string, env []string, argv ...string) *bgProc {
	t.Helper()
	p := &bgProc{cmd: exec.Command(argv[0], argv[1:]...), out: new(syncBuf), errOut: new(syncBuf), done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errOut
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.errOut.String(), ready) {
		select {
		case err := <-p.done:
			t.Fatalf("%s exited before %q: %v\nstderr:\n%s", strings.Join(argv, " "), ready, err, p.errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q in 30s; stderr:\n%s", strings.Join(argv, " "), ready, p.errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// stop sends SIGINT and waits for the exit; it fails the test on a
// non-zero exit.
func (p *bgProc) stop(t *testing.T) string {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("%s: %v\nstderr:\n%s", strings.Join(p.cmd.Args, " "), err, p.errOut.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("%s did not stop in 90s", strings.Join(p.cmd.Args, " "))
	}
	return p.out.String()
}

const ifaceReady = "capturing through the kernel"

// captureIface runs `tapvault capture --iface` on v's capture end while the
// trace is replayed at pps, and returns the capture's summary.
func captureIface(t *testing.T, v *bench.Veth, trace, data string, pps float64, extra ...string) string {
	t.Helper()
	args := append([]string{os.Args[0], "capture", "--iface", v.CaptureIface(), "--data", data, "--listen", "", "--seal-after", "200ms"}, extra...)
	c := startBg(t, ifaceReady, []string{"TAPVAULT_E2E_MAIN=1"}, args...)
	replay(t, v, trace, pps)
	time.Sleep(700 * time.Millisecond) // the ring's block timeout and the workers
	return c.stop(t)
}

func replay(t *testing.T, v *bench.Veth, trace string, pps float64) {
	t.Helper()
	res, err := v.Replay(context.Background(), trace, bench.Rate{PPS: pps})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 0 {
		t.Fatalf("tcpreplay failed to send %d packets", res.Failed)
	}
}

// byTimeThenBytes orders packets the same way whatever worker stored them.
func byTimeThenBytes(a, b filePacket) int {
	if a.ts != b.ts {
		return int(a.ts - b.ts)
	}
	return bytes.Compare(a.data, b.data)
}

func byBytes(a, b filePacket) int { return bytes.Compare(a.data, b.data) }

var reportNum = func(t *testing.T, report, re string) int {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("no %q in the summary:\n%s", re, report)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestIfaceCapture: what `tapvault query` returns of a kernel capture is,
// byte for byte and to the nanosecond, what tcpdump wrote from the same
// interface at the same time; the kernel filter, the snap length and
// metadata-only store what they should.
func TestIfaceCapture(t *testing.T) {
	v := needIfaceCapture(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	genTrace(t, trace, "app", 3000)
	sent := readAll(t, trace)
	var fullRecords int

	t.Run("full=same-as-tcpdump", func(t *testing.T) {
		data := filepath.Join(dir, "full")
		td := filepath.Join(dir, "tcpdump.pcap")
		dump := startBg(t, "listening on", nil, "tcpdump", "-i", v.CaptureIface(), "-w", td, "-Z", "root",
			"--time-stamp-precision=nano", "-B", "16384", "-n", "-U")
		rep := captureIface(t, v, trace, data, 5000, "--workers", "2")
		dump.stop(t)
		tv(t, false, "query", "--data", data, "-w", filepath.Join(dir, "full.pcap"))
		got := readAll(t, filepath.Join(dir, "full.pcap"))
		want := readAll(t, td)
		slices.SortFunc(got, byTimeThenBytes)
		slices.SortFunc(want, byTimeThenBytes)
		samePackets(t, got, want, 1, false)
		// And what tcpdump saw is what was sent.
		slices.SortFunc(want, byBytes)
		s := slices.Clone(sent)
		slices.SortFunc(s, byBytes)
		for i := range s {
			s[i].ts = want[i].ts
		}
		samePackets(t, want, s, 1, false)
		if d := reportNum(t, rep, `imissed (\d+)`); d != 0 {
			t.Errorf("kernel drops %d at 5k pkt/s", d)
		}
		if n := reportNum(t, rep, `port +received (\d+) pkts`); n != len(sent) {
			t.Errorf("socket counters: %d packets, want %d", n, len(sent))
		}
		fullRecords = reportNum(t, rep, `analytics +(\d+) records`)
		if fullRecords == 0 {
			t.Fatalf("no analytics records from an app trace:\n%s", rep)
		}
	})

	t.Run("filter=in-kernel", func(t *testing.T) {
		const expr = "tcp port 5432"
		exp := filepath.Join(dir, "filtered.pcap")
		if out, err := exec.Command("tcpdump", "-r", trace, "-w", exp, expr).CombinedOutput(); err != nil {
			t.Fatalf("tcpdump -r: %v: %s", err, out)
		}
		want := readAll(t, exp)
		if len(want) == 0 || len(want) == len(sent) {
			t.Fatalf("BUG: %q selects %d of %d packets", expr, len(want), len(sent))
		}
		data := filepath.Join(dir, "filter")
		rep := captureIface(t, v, trace, data, 5000, "--filter", expr)
		tv(t, false, "query", "--data", data, "-w", filepath.Join(dir, "filter-out.pcap"))
		got := readAll(t, filepath.Join(dir, "filter-out.pcap"))
		slices.SortFunc(got, byBytes)
		slices.SortFunc(want, byBytes)
		for i := range want {
			if i < len(got) {
				want[i].ts = got[i].ts
			}
		}
		samePackets(t, got, want, 1, false)
		// Rejected in the kernel: the socket never counted them.
		if n := reportNum(t, rep, `port +received (\d+) pkts`); n != len(want) {
			t.Errorf("socket counted %d packets, want the %d the filter accepts", n, len(want))
		}
	})

	t.Run("snaplen", func(t *testing.T) {
		const snap = 100
		data := filepath.Join(dir, "snap")
		captureIface(t, v, trace, data, 5000, "--snaplen", strconv.Itoa(snap))
		tv(t, false, "query", "--data", data, "-w", filepath.Join(dir, "snap.pcap"))
		got := readAll(t, filepath.Join(dir, "snap.pcap"))
		want := slices.Clone(sent)
		for i := range want {
			want[i].data = want[i].data[:min(snap, len(want[i].data))]
		}
		checkCut(t, got, want)
	})

	t.Run("metadata-only", func(t *testing.T) {
		if fullRecords == 0 {
			t.Skip("needs the full capture's record count")
		}
		data := filepath.Join(dir, "meta")
		rep := captureIface(t, v, trace, data, 5000, "--metadata-only")
		tv(t, false, "query", "--data", data, "-w", filepath.Join(dir, "meta.pcap"))
		got := readAll(t, filepath.Join(dir, "meta.pcap"))
		want := slices.Clone(sent)
		for i := range want {
			want[i].data = want[i].data[:headersOf(t, want[i].data)]
		}
		checkCut(t, got, want)
		// The analytics saw whole packets: the same records as a full
		// capture.
		if n := reportNum(t, rep, `analytics +(\d+) records`); n != fullRecords {
			t.Errorf("metadata-only: %d records, full capture %d", n, fullRecords)
		}
		out, _ := tv(t, false, "messages", "--data", data, "--json")
		if n := strings.Count(out, "\n"); n != fullRecords {
			t.Errorf("tapvault messages: %d records, want %d", n, fullRecords)
		}
	})
}

// checkCut compares stored packets with the sent ones cut as wanted: the
// bytes kept, and the original length.
func checkCut(t *testing.T, got, want []filePacket) {
	t.Helper()
	key := func(p filePacket) []byte { return p.data }
	slices.SortFunc(got, func(a, b filePacket) int {
		if c := bytes.Compare(key(a), key(b)); c != 0 {
			return c
		}
		return int(a.wire) - int(b.wire)
	})
	slices.SortFunc(want, func(a, b filePacket) int {
		if c := bytes.Compare(key(a), key(b)); c != 0 {
			return c
		}
		return int(a.wire) - int(b.wire)
	})
	for i := range want {
		if i < len(got) {
			want[i].ts = got[i].ts
		}
	}
	samePackets(t, got, want, 1, false)
}

// headersOf is the length of an Ethernet frame's headers up to the L4
// payload (IPv4/IPv6, TCP/UDP), parsed here independently of the decoder.
func headersOf(t *testing.T, f []byte) int {
	t.Helper()
	off, et := 14, binary.BigEndian.Uint16(f[12:])
	for et == 0x8100 || et == 0x88a8 {
		et, off = binary.BigEndian.Uint16(f[off+2:]), off+4
	}
	var proto byte
	switch et {
	case 0x0800:
		proto = f[off+9]
		off += int(f[off]&0x0f) * 4
	case 0x86dd:
		proto = f[off+6]
		off += 40
	default:
		t.Fatalf("BUG: the app trace has EtherType %#x", et)
	}
	switch proto {
	case 6:
		off += int(f[off+12]>>4) * 4
	case 17:
		off += 8
	default:
		t.Fatalf("BUG: the app trace has IP protocol %d", proto)
	}
	return min(off, len(f))
}

// Bad input is refused before anything is captured, with a clear error and
// a non-zero exit.
func TestIfaceCaptureRefuses(t *testing.T) {
	data := filepath.Join(t.TempDir(), "s")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--iface", "lo", "--eal", "-l 0"}, "exclude each other"},
		{[]string{"--iface", "lo", "--queues", "2"}, "DPDK option"},
		{[]string{"--snaplen", "100", "--eal", "-l 0"}, "give --iface too"},
		{[]string{"--iface", "lo", "--snaplen", "10"}, "at least 64"},
		{[]string{"--iface", "lo", "--workers", "0"}, "--workers 0"},
		{[]string{"--iface", "lo", "--ring", "1.5MiB"}, "whole number of MiB"},
	} {
		_, stderr := tv(t, true, append([]string{"capture", "--data", data, "--listen", ""}, c.args...)...)
		if !strings.Contains(stderr, c.want) {
			t.Errorf("%v: stderr %q, want %q", c.args, stderr, c.want)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("the rest opens sockets: needs root")
	}
	_, stderr := tv(t, true, "capture", "--data", data, "--listen", "", "--iface", "tvnosuch0")
	if !strings.Contains(stderr, `interface "tvnosuch0"`) {
		t.Errorf("unknown interface: stderr %q", stderr)
	}
	if _, err := exec.LookPath("tcpdump"); err == nil {
		_, stderr = tv(t, true, "capture", "--data", data, "--listen", "", "--iface", "lo", "--filter", "tcp prot 80")
		if !strings.Contains(stderr, "syntax error") || !strings.Contains(stderr, "--filter") {
			t.Errorf("bad filter: stderr %q", stderr)
		}
	}
}

// The endpoint unit runs capture as an unprivileged user with only
// CAP_NET_RAW and CAP_NET_ADMIN: that must be enough, and without them the
// error must say what is missing. setpriv gives the same uid and
// capabilities the unit does.
func TestIfaceCaptureWithCapabilitiesOnly(t *testing.T) {
	v := needIfaceCapture(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	dir := t.TempDir()
	// t.TempDir is 0700 under a 0700 directory of the test's.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The test binary, where the unprivileged user can run it.
	bin := filepath.Join(dir, "tapvault")
	copyFile(t, os.Args[0], bin)
	trace := filepath.Join(dir, "app.pcap")
	genTrace(t, trace, "app", 500)
	data := filepath.Join(dir, "store")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	const nobody = "65534"
	if err := os.Chown(data, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	setpriv := func(caps string) []string {
		return []string{"setpriv", "--reuid=" + nobody, "--regid=" + nobody, "--clear-groups",
			"--inh-caps=-all" + caps, "--ambient-caps=-all" + caps, "--bounding-set=-all" + caps, "--"}
	}
	env := []string{"TAPVAULT_E2E_MAIN=1", "HOME=" + dir}

	// Without the capabilities: a clear error.
	cmd := exec.Command("setpriv", append(setpriv("")[1:], bin, "capture", "--iface", v.CaptureIface(), "--data", data, "--listen", "")...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "CAP_NET_RAW") {
		t.Fatalf("without capabilities: err %v, output %q; want a failure naming CAP_NET_RAW", err, out)
	}

	// As the endpoint unit runs it: an empty --filter when none is set.
	argv := append(setpriv(",+net_raw,+net_admin"), bin, "capture", "--iface", v.CaptureIface(), "--data", data, "--listen", "", "--seal-after", "200ms", "--filter", "")
	c := startBg(t, ifaceReady, env, argv...)
	replay(t, v, trace, 5000)
	time.Sleep(700 * time.Millisecond)
	rep := c.stop(t)
	if n := reportNum(t, rep, `total +(\d+) packets stored`); n != 500 {
		t.Errorf("stored %d packets as uid %s with CAP_NET_RAW+CAP_NET_ADMIN, want 500\n%s", n, nobody, rep)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

const endpointUnitPath = "../../scripts/tapvault-endpoint.service"

// TestEndpointUnit: the endpoint unit has its budget and runs unprivileged
// with CAP_NET_RAW and CAP_NET_ADMIN only (TestIfaceCaptureWithCapabilitiesOnly
// shows that is enough), names only flags capture has, and systemd accepts
// it when systemd-analyze is installed.
func TestEndpointUnit(t *testing.T) {
	b, err := os.ReadFile(endpointUnitPath)
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("unit line %q: no =", l)
		}
		kv[k] = append(kv[k], v)
	}
	one := func(k string) string {
		if len(kv[k]) != 1 {
			t.Fatalf("%s= given %d times, want once", k, len(kv[k]))
		}
		return kv[k][0]
	}
	for k, want := range map[string]string{
		"AmbientCapabilities":   "CAP_NET_RAW CAP_NET_ADMIN",
		"CapabilityBoundingSet": "CAP_NET_RAW CAP_NET_ADMIN",
		"NoNewPrivileges":       "yes",
		"UMask":                 "0077",
	} {
		if got := one(k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	if u := one("User"); u == "" || u == "root" || u == "0" {
		t.Errorf("User=%s: the endpoint runs unprivileged", u)
	}
	for _, k := range []string{"CPUQuota", "MemoryMax", "MemoryHigh"} {
		if one(k) == "" {
			t.Errorf("%s= is empty", k)
		}
	}
	exec0 := one("ExecStart")
	f := strings.Fields(exec0)
	if len(f) < 3 || f[1] != "capture" || !slices.Contains(f, "--iface") {
		t.Fatalf("ExecStart=%s: want tapvault capture --iface", exec0)
	}
	flags := newCaptureCmd().Flags()
	for _, a := range f[2:] {
		if name, ok := strings.CutPrefix(a, "--"); ok && flags.Lookup(name) == nil {
			t.Errorf("ExecStart names --%s, which capture does not have", name)
		}
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("/usr/local/bin/tapvault "), []byte(self+" "))
	p := filepath.Join(t.TempDir(), "tapvault-endpoint.service")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: err %v, output:\n%s", err, out)
	}
}

// The endpoint defaults name flags capture has, with values they accept,
// and leave what the command line set alone.
func TestEndpointDefaults(t *testing.T) {
	cmd := newCaptureCmd()
	if err := cmd.Flags().Parse([]string{"--blocks", "3"}); err != nil {
		t.Fatal(err)
	}
	endpointDefaults(cmd) // panics on an unknown flag or a bad value
	for _, d := range endpointDefaultValues {
		fl := cmd.Flags().Lookup(d.flag)
		if fl == nil {
			t.Fatalf("--%s: no such flag", d.flag)
		}
		want := d.value
		if d.flag == "blocks" {
			want = "3"
		}
		if got := fl.Value.String(); got != want {
			t.Errorf("--%s: got %s, want %s", d.flag, got, want)
		}
		if d.flag != "blocks" && cmd.Flags().Changed(d.flag) {
			t.Errorf("--%s: marked as set by the user", d.flag)
		}
	}
}
