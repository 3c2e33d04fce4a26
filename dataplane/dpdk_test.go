//go:build cgo && !nodpdk

package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"tapvault/pcap"
	"testing"
	"time"
	"unsafe"
)

// EAL initialises once per process, so TestMain does it for every test
// with all the virtual devices they need:
//
//	net_pcap0  replay of replayPkts (µs pcap, incl. a 9000-byte jumbo)
//	net_pcap1  two queues: the same packets as pcapng, and as ns pcap
//	net_pcap2  the same file, for the idle-timeout fallback
//	net_pcap3  the same file, replayed into mbufs too small for the jumbo
//	net_ring0  rings: TX queue q feeds RX queue q
//	net_null0  endless 64-byte packets (benchmarks)
//	net_null1  for Stop
var (
	ealErr     error
	replayPkts []testPacket
)

// net_ring0 queue pairs, one per test or benchmark, so that no test sees
// another's leftovers.
const (
	ringQBasic   = 0
	ringQShared  = 1
	ringQMapping = 2
	ringQRate    = 3
	ringQBench   = 4
	ringQueues   = 5
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	switch os.Getenv("TAPVAULT_DATAPLANE_CHILD") {
	case "eal-fail":
		ealFailChild()
		return 0
	case "eal-cleanup":
		ealCleanupChild(false)
		return 0
	case "eal-cleanup-fail":
		ealCleanupChild(true)
		return 0
	case "eal-probe-fail":
		ealProbeFailChild()
		return 0
	}
	dir, err := os.MkdirTemp("", "tapvault-dataplane-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	RemoveStaleRuntimeDirs("tvtest") // of test runs killed before their cleanup
	replayPkts = testPackets(300)
	usFile := filepath.Join(dir, "replay.pcap")
	ngPath := filepath.Join(dir, "replay.pcapng")
	nsFile := filepath.Join(dir, "replay-ns.pcap")
	writeTestPcap(mainTB{}, usFile, replayPkts, false, binary.LittleEndian)
	writeTestPcapng(mainTB{}, ngPath, replayPkts)
	writeTestPcap(mainTB{}, nsFile, replayPkts, true, binary.BigEndian)

	lcores := "0"
	if runtime.NumCPU() > 1 {
		lcores = "0-1"
	}
	ealErr = InitEAL([]string{
		"-l", lcores,
		"--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "512",
		fmt.Sprintf("--file-prefix=tvtest%d", os.Getpid()),
		"--log-level=lib.eal:warning",
		"--vdev=net_pcap0,rx_pcap=" + usFile,
		"--vdev", "net_pcap1,rx_pcap=" + ngPath + ",rx_pcap=" + nsFile,
		"--vdev=net_pcap2,rx_pcap=" + usFile,
		"--vdev=net_pcap3,rx_pcap=" + usFile,
		"--vdev=net_ring0",
		"--vdev=net_null0",
		"--vdev=net_null1",
	})
	code := m.Run()
	// The runtime directory goes with the process, as a capture's does.
	if err := CleanupEAL(); err != nil {
		fmt.Fprintln(os.Stderr, "CleanupEAL:", err)
		code = max(code, 1)
	}
	return code
}

// ealFailChild runs in a subprocess of TestEALFailure: a first InitEAL
// with an unknown argument, then a second one.
func ealFailChild() {
	err1 := InitEAL([]string{"--no-huge", "--no-shconf", "--no-pci", "--tapvault-not-an-eal-flag"})
	err2 := InitEAL([]string{"--no-huge", "--no-shconf", "--no-pci"})
	fmt.Printf("first: %v\nsecond: %v\ninitialised: %v\n", err1, err2, EALInitialised())
}

// ealCleanupChild runs in a subprocess of TestFaultEALRuntimeDir: InitEAL
// with a prefix of its own (after creating its runtime directory, as
// another process holding the prefix would, when fail), then CleanupEAL,
// reporting whether the runtime directory exists at each step.
func ealCleanupChild(fail bool) {
	prefix := fmt.Sprintf("tvclean%d", os.Getpid())
	dir := filepath.Join(RuntimeBaseDir(), prefix)
	args := []string{"-l", "0", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "64", "--file-prefix=" + prefix, "--log-level=lib.eal:error"}
	if fail {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			fmt.Printf("mkdir: %v\n", err)
			return
		}
		defer os.RemoveAll(dir)
		args = append(args, "--tapvault-not-an-eal-flag")
	}
	exists := func() bool { _, err := os.Stat(dir); return err == nil }
	err := InitEAL(args)
	fmt.Printf("init: %v\nafter init: %v\n", err, exists())
	err = CleanupEAL()
	fmt.Printf("cleanup: %v\nafter cleanup: %v\ninitialised: %v\n", err, exists(), EALInitialised())
	fmt.Printf("again: %v\n", CleanupEAL())
}

// TestFaultEALRuntimeDir: CleanupEAL ends EAL and removes the runtime
// directory it made (every capture left one under /var/run/dpdk); after a
// failed init it keeps a directory it did not make (another process may
// hold the prefix). Each case runs in a fresh process.
func TestFaultEALRuntimeDir(t *testing.T) {
	for _, c := range []struct {
		child string
		want  []string
	}{
		{"eal-cleanup", []string{"init: <nil>\n", "after init: true\n", "cleanup: <nil>\n", "after cleanup: false\n", "initialised: false\n", "again: <nil>\n"}},
		{"eal-cleanup-fail", []string{"init: init eal", "invalid argument\n", "after init: true\n", "cleanup: <nil>\n", "after cleanup: true\n"}},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "TAPVAULT_DATAPLANE_CHILD="+c.child)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s child: %v\n%s", c.child, err, out)
		}
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s child output %q: want it to contain %q", c.child, out, w)
			}
		}
	}
}

// ealProbeFailChild runs in a subprocess of TestFaultProbeFailureSaysWhy:
// EAL with a net_pcap whose file is missing (EAL only logs that), then
// OpenPort of it.
func ealProbeFailChild() {
	missing := filepath.Join(os.TempDir(), fmt.Sprintf("tapvault-missing-%d.pcap", os.Getpid()))
	err := InitEAL([]string{"-l", "0", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "64",
		fmt.Sprintf("--file-prefix=tvprobe%d", os.Getpid()), "--vdev=net_pcap0,rx_pcap=" + missing})
	fmt.Printf("init: %v\n", err)
	_, err = OpenPort(PortConfig{Name: "net_pcap0"})
	fmt.Printf("open: %v\nmissing: %s\n", err, missing)
	CleanupEAL()
}

// TestFaultProbeFailureSaysWhy: a vdev that fails to probe gives an
// OpenPort error that carries DPDK's logged reason (it said only "no
// such ethdev ... operation not permitted"), and the log still reaches
// stderr.
func TestFaultProbeFailureSaysWhy(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TAPVAULT_DATAPLANE_CHILD=eal-probe-fail")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s\n%s", err, out, stderr.String())
	}
	got := string(out)
	_, missing, _ := strings.Cut(got, "missing: ")
	missing = strings.TrimSpace(missing)
	for _, want := range []string{"init: <nil>\n", `open: open port "net_pcap0": no such ethdev`, "DPDK logged: ", "Couldn't open " + missing} {
		if !strings.Contains(got, want) {
			t.Errorf("child output %q: want it to contain %q", got, want)
		}
	}
	if !strings.Contains(stderr.String(), "Couldn't open "+missing) {
		t.Errorf("DPDK's log is not on stderr:\n%s", stderr.String())
	}
}

// TestEALFailure checks, in a fresh process, that a failed InitEAL reports
// the error and cannot be retried.
func TestEALFailure(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TAPVAULT_DATAPLANE_CHILD=eal-fail")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{
		"first: init eal [\"--no-huge\" \"--no-shconf\" \"--no-pci\" \"--tapvault-not-an-eal-flag\"]: invalid argument",
		"second: init eal: already initialised",
		"initialised: false",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("child output %q: want it to contain %q", got, want)
		}
	}
}

// mainTB lets the fixture writers run in TestMain.
type mainTB struct{ testing.TB }

func (mainTB) Helper() {}
func (mainTB) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func needEAL(t testing.TB) {
	t.Helper()
	if ealErr != nil {
		t.Fatalf("InitEAL: %v", ealErr)
	}
}

var (
	ringOnce sync.Once
	ringP    *Port
	ringErr  error
)

// ringPort opens net_ring0 once for all tests: a vdev port cannot be
// reopened after Stop.
func ringPort(t testing.TB) *Port {
	t.Helper()
	needEAL(t)
	ringOnce.Do(func() {
		ringP, ringErr = OpenPort(PortConfig{Name: "net_ring0", RxQueues: ringQueues, TxQueues: ringQueues, Mbufs: 8191})
	})
	if ringErr != nil {
		t.Fatalf("OpenPort(net_ring0): %v", ringErr)
	}
	return ringP
}

func TestEALOnce(t *testing.T) {
	needEAL(t)
	if !EALInitialised() {
		t.Fatalf("EALInitialised: got false, want true")
	}
	if err := InitEAL([]string{"--no-huge"}); err == nil {
		t.Fatalf("second InitEAL: got nil error, want one")
	}
	if got := MainLcore(); got != 0 {
		t.Errorf("MainLcore: got %d, want 0", got)
	}
	want := 0
	if runtime.NumCPU() > 1 {
		want = 1
	}
	if got := WorkerLcores(); len(got) != want || (want == 1 && got[0] != 1) {
		t.Errorf("WorkerLcores: got %v, want %d lcore(s) starting at 1", got, want)
	}
}

// threadAffinity returns the CPUs the calling thread may run on.
func threadAffinity(t *testing.T) []int {
	t.Helper()
	var mask [16]uint64
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask)))
	if e != 0 {
		t.Fatalf("sched_getaffinity: %v", e)
	}
	var cpus []int
	for i := 0; i < 64*len(mask); i++ {
		if mask[i/64]&(1<<(i%64)) != 0 {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

func TestPinThread(t *testing.T) {
	needEAL(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		before := threadAffinity(t)
		if got := CurrentLcore(); got != -1 {
			t.Errorf("CurrentLcore before PinThread: got %d, want -1", got)
		}
		lcore := 0
		if w := WorkerLcores(); len(w) > 0 {
			lcore = w[0]
		}
		if err := PinThread(lcore); err != nil {
			t.Errorf("PinThread(%d): %v", lcore, err)
			return
		}
		if got := threadAffinity(t); len(got) != 1 || got[0] != lcore {
			t.Errorf("affinity after PinThread(%d): got %v, want [%d]", lcore, got, lcore)
		}
		id := CurrentLcore()
		if id < 0 {
			t.Errorf("CurrentLcore after PinThread: got %d, want a registered lcore id", id)
		}
		if err := UnpinThread(); err != nil {
			t.Errorf("UnpinThread: %v", err)
		}
		if got := CurrentLcore(); got != -1 {
			t.Errorf("CurrentLcore after UnpinThread: got %d, want -1", got)
		}
		if got := threadAffinity(t); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Errorf("affinity after UnpinThread: got %v, want %v", got, before)
		}
	}()
	<-done

	done = make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		before := threadAffinity(t)
		if err := RegisterThread(); err != nil {
			t.Errorf("RegisterThread: %v", err)
			return
		}
		if got := CurrentLcore(); got < 0 {
			t.Errorf("CurrentLcore after RegisterThread: got %d, want a registered lcore id", got)
		}
		if got := threadAffinity(t); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Errorf("affinity after RegisterThread: got %v, want %v (unchanged)", got, before)
		}
		if err := UnpinThread(); err != nil {
			t.Errorf("UnpinThread: %v", err)
		}
		if got := CurrentLcore(); got != -1 {
			t.Errorf("CurrentLcore after UnpinThread: got %d, want -1", got)
		}
	}()
	<-done
	if err := PinThread(1000); err == nil {
		t.Errorf("PinThread(1000): got nil error, want one")
	}
}

// recvAll receives from q until io.EOF, copying packets, or fails the test
// at the deadline.
func recvAll(t *testing.T, q Source, deadline time.Duration) []testPacket {
	t.Helper()
	var got []testPacket
	var b Burst
	end := time.Now().Add(deadline)
	for {
		n, err := q.Recv(&b)
		for i := 0; i < n; i++ {
			p := &b.Pkts[i]
			if p.LinkType != pcap.LinkTypeEthernet {
				t.Fatalf("packet %d: got link type %d, want %d", len(got), p.LinkType, pcap.LinkTypeEthernet)
			}
			// net_pcap sets pkt_len to the captured length: snapped
			// packets lose their original length on replay.
			if int(p.WireLen) != len(p.Data) {
				t.Fatalf("packet %d: got wire length %d, want %d (captured length)", len(got), p.WireLen, len(p.Data))
			}
			got = append(got, testPacket{Data: bytes.Clone(p.Data), TS: p.TS})
		}
		if n != b.N {
			t.Fatalf("Recv returned %d, b.N = %d", n, b.N)
		}
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if n == 0 && time.Now().After(end) {
			t.Fatalf("no io.EOF after %v: got %d packets, want %d", deadline, len(got), len(replayPkts))
		}
	}
}

// samePackets compares received packets with the generated ones; tsDiv
// truncates expected timestamps to the file's precision.
func samePackets(t *testing.T, what string, got, want []testPacket) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d packets, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !bytes.Equal(got[i].Data, want[i].Data) {
			t.Errorf("%s: packet %d: got %d bytes %x..., want %d bytes %x...", what, i,
				len(got[i].Data), got[i].Data[:min(20, len(got[i].Data))], len(want[i].Data), want[i].Data[:20])
			return
		}
		if got[i].TS != want[i].TS {
			t.Errorf("%s: packet %d: got ts %d, want %d", what, i, got[i].TS, want[i].TS)
			return
		}
	}
}

func TestPcapReplay(t *testing.T) {
	needEAL(t)
	p, err := OpenPort(PortConfig{Name: "net_pcap0", Mbufs: 2047})
	if err != nil {
		t.Fatalf("OpenPort: %v", err)
	}
	defer p.Stop()
	if got := p.Driver(); got != "net_pcap" {
		t.Errorf("Driver: got %q, want net_pcap", got)
	}
	if got, want := p.DataRoom(), 9000+128; got < want {
		t.Errorf("DataRoom: got %d, want >= %d (largest packet + headroom)", got, want)
	}
	q := p.Queue(0)
	if q == nil || p.Queue(1) != nil {
		t.Fatalf("Queue(0), Queue(1): got %v, %v, want one queue", q, p.Queue(1))
	}
	if got := q.Timestamps(); got != TimestampPcap {
		t.Errorf("Timestamps: got %v, want %v", got, TimestampPcap)
	}
	src := p.Source(0)
	if _, ok := src.(*replayQueue); !ok {
		t.Fatalf("Source(0): got %T, want a replay source", src)
	}
	start := time.Now()
	got := recvAll(t, src, 10*time.Second)
	if el := time.Since(start); el > time.Second {
		t.Errorf("replay of %d packets took %v: the end was found by timeout, not by count", len(replayPkts), el)
	}
	samePackets(t, "net_pcap0", got, replayPkts)
	st := q.Stats()
	if st.Packets != uint64(len(replayPkts)) || st.Truncated != 0 {
		t.Errorf("queue stats: got %+v, want %d packets, 0 truncated", st, len(replayPkts))
	}
	ps, err := p.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if ps.IPackets != uint64(len(replayPkts)) {
		t.Errorf("port ipackets: got %d, want %d", ps.IPackets, len(replayPkts))
	}
	var wantBytes uint64
	for _, pk := range replayPkts {
		wantBytes += uint64(len(pk.Data))
	}
	if ps.IBytes != wantBytes || st.Bytes != wantBytes {
		t.Errorf("bytes: got port %d, queue %d, want %d", ps.IBytes, st.Bytes, wantBytes)
	}
	// EOF is sticky.
	var b Burst
	if n, err := src.Recv(&b); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("Recv after the end: got %d, %v, want 0, io.EOF", n, err)
	}
	// The queue itself knows nothing of the replay: it never ends.
	if n, err := q.Recv(&b); n != 0 || err != nil {
		t.Errorf("RxQueue.Recv after the end: got %d, %v, want 0, nil", n, err)
	}
}

func TestPcapReplayMultiQueue(t *testing.T) {
	needEAL(t)
	p, err := OpenPort(PortConfig{Name: "net_pcap1", RxQueues: 2, Mbufs: 4095})
	if err != nil {
		t.Fatalf("OpenPort: %v", err)
	}
	defer p.Stop()
	if p.RSS() {
		t.Errorf("RSS: got true, want false (net_pcap has no RSS)")
	}
	var wg sync.WaitGroup
	res := make([][]testPacket, 2)
	for qi := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[qi] = recvAll(t, p.Source(qi), 10*time.Second)
		}()
	}
	wg.Wait()
	samePackets(t, "pcapng queue", res[0], replayPkts)
	// libpcap reads nanosecond files at microsecond precision.
	samePackets(t, "ns pcap queue", res[1], replayPkts)
}

func TestPcapReplayIdleEnd(t *testing.T) {
	needEAL(t)
	idle := 200 * time.Millisecond
	p, err := OpenPort(PortConfig{Name: "net_pcap2", Mbufs: 2047, ReplayIdle: idle})
	if err != nil {
		t.Fatalf("OpenPort: %v", err)
	}
	defer p.Stop()
	q := p.Source(0).(*replayQueue)
	// Pretend the PMD lost five packets: the count is never reached, so
	// only the idle fallback can end the replay.
	q.expect += 5
	start := time.Now()
	got := recvAll(t, q, 10*time.Second)
	el := time.Since(start)
	if len(got) != len(replayPkts) {
		t.Errorf("got %d packets, want %d", len(got), len(replayPkts))
	}
	if el < idle || el > idle+2*time.Second {
		t.Errorf("idle end after %v, want about %v", el, idle)
	}
}

// ringFrames makes n frames of size bytes (size < 0: varied sizes).
func ringFrames(n, size int) [][]byte {
	fr := make([][]byte, n)
	for i := range fr {
		s := size
		if s < 0 {
			s = 60 + (i*97)%1455
		}
		fr[i] = testFrame(i, s)
	}
	return fr
}

// ringRun sends frames loops times on TX queue q of net_ring0 from lcore
// txLcore while receiving on RX queue q from rxLcore, and checks that
// every packet arrives byte-identical and in order.
func ringRun(t *testing.T, q int, frames [][]byte, loops, txLcore, rxLcore int, pps float64) *Producer {
	t.Helper()
	p := ringPort(t)
	pr, err := NewProducer(p, q, frames, ProducerOptions{Loops: loops, PPS: pps})
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	prodErr := make(chan error, 1)
	go func() { prodErr <- pr.Run(txLcore) }()
	defer pr.Stop()

	want := len(frames) * max(loops, 1)
	rq := p.Queue(q)
	before, err := p.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	qBefore := rq.Stats()
	recvErr := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if rxLcore >= 0 {
			if err := PinThread(rxLcore); err != nil {
				recvErr <- err
				return
			}
			defer UnpinThread()
		}
		var b Burst
		got := 0
		end := time.Now().Add(30 * time.Second)
		for got < want {
			n, err := rq.Recv(&b)
			if err != nil {
				recvErr <- fmt.Errorf("Recv: %w", err)
				return
			}
			for i := 0; i < n; i++ {
				if f := frames[got%len(frames)]; !bytes.Equal(b.Pkts[i].Data, f) {
					recvErr <- fmt.Errorf("packet %d: got %d bytes, want %d bytes of frame %d", got, len(b.Pkts[i].Data), len(f), got%len(frames))
					return
				}
				got++
			}
			if n == 0 && time.Now().After(end) {
				recvErr <- fmt.Errorf("timeout: got %d packets, want %d", got, want)
				return
			}
		}
		// Release the last burst so the producer's pool can be freed.
		if n, err := rq.Recv(&b); n != 0 || err != nil {
			recvErr <- fmt.Errorf("Recv after the last packet: got %d, %v, want 0, nil", n, err)
			return
		}
		recvErr <- nil
	}()
	if err := <-recvErr; err != nil {
		pr.Stop()
		<-prodErr
		t.Fatalf("receiver: %v", err)
	}
	if err := <-prodErr; err != nil {
		t.Fatalf("producer: %v", err)
	}
	if got := pr.Sent(); got != uint64(want) {
		t.Errorf("Sent: got %d, want %d", got, want)
	}
	after, err := p.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	var wantBytes uint64
	for i := range want {
		wantBytes += uint64(len(frames[i%len(frames)]))
	}
	if d := after.IPackets - before.IPackets; d != uint64(want) {
		t.Errorf("port ipackets moved by %d, want %d", d, want)
	}
	if d := after.IBytes - before.IBytes; d != 0 && d != wantBytes {
		t.Errorf("port ibytes moved by %d, want %d (or 0: net_ring counts no bytes)", d, wantBytes)
	}
	qs := rq.Stats()
	if d := qs.Packets - qBefore.Packets; d != uint64(want) {
		t.Errorf("queue packets moved by %d, want %d", d, want)
	}
	if d := qs.Bytes - qBefore.Bytes; d != wantBytes {
		t.Errorf("queue bytes moved by %d, want %d", d, wantBytes)
	}
	if err := pr.Close(); err != nil {
		t.Errorf("producer Close: %v", err)
	}
	return pr
}

func TestRingProducer(t *testing.T) {
	rx, tx := 0, 0
	if w := WorkerLcores(); len(w) > 0 {
		tx = w[0]
	}
	pr := ringRun(t, ringQBasic, ringFrames(1000, -1), 20, tx, rx, 0)
	t.Logf("separate lcores %d/%d: sent %d, refused (retried) %d, no mbuf %d", tx, rx, pr.Sent(), pr.Refused(), pr.NoMbuf())
}

// TestRingSharedCore runs the producer and the receiver, both busy-polling,
// pinned to the same lcore: the kernel time-slices them, so it is slow, but
// it must finish.
func TestRingSharedCore(t *testing.T) {
	lc := 0
	if w := WorkerLcores(); len(w) > 0 {
		lc = w[0]
	}
	start := time.Now()
	pr := ringRun(t, ringQShared, ringFrames(500, 64), 20, lc, lc, 0)
	t.Logf("shared lcore %d: %d packets in %v, refused (retried) %d", lc, pr.Sent(), time.Since(start), pr.Refused())
}

func TestRingRate(t *testing.T) {
	const pps = 20000
	start := time.Now()
	ringRun(t, ringQRate, ringFrames(100, 128), 20, -1, -1, pps)
	el := time.Since(start)
	want := time.Duration(2000 / float64(pps) * float64(time.Second))
	// Faster than the rate means the pacing failed; slower is the
	// machine's load (timings are for benchmarks), logged.
	if el < want*9/10 {
		t.Errorf("2000 packets at %d pps took %v, want at least about %v", pps, el, want)
	} else if el > want*3 {
		t.Logf("2000 packets at %d pps took %v (%v asked): a loaded machine", pps, el, want)
	}
}

// TestRingQueueMapping checks that what is sent on TX queue q arrives on RX
// queue q and nowhere else.
func TestRingQueueMapping(t *testing.T) {
	p := ringPort(t)
	frames := ringFrames(10, 100)
	pr, err := NewProducer(p, ringQMapping, frames, ProducerOptions{})
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	if err := pr.Run(-1); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var b Burst
	for q := range p.NumQueues() {
		if q == ringQMapping {
			continue
		}
		if n, err := p.Queue(q).Recv(&b); n != 0 || err != nil {
			t.Errorf("queue %d: got %d packets, %v, want 0, nil", q, n, err)
		}
	}
	got := 0
	end := time.Now().Add(5 * time.Second)
	for got < len(frames) && time.Now().Before(end) {
		n, err := p.Queue(ringQMapping).Recv(&b)
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		got += n
	}
	if got != len(frames) {
		t.Errorf("queue %d: got %d packets, want %d", ringQMapping, got, len(frames))
	}
	p.Queue(ringQMapping).Recv(&b) // release the last burst
	if err := pr.Close(); err != nil {
		t.Errorf("producer Close: %v", err)
	}
}

func TestTSCTimestamps(t *testing.T) {
	needEAL(t)
	p, err := OpenPort(PortConfig{Name: "net_null1", Mbufs: 2047})
	if err != nil {
		t.Fatalf("OpenPort: %v", err)
	}
	q := p.Queue(0)
	if got := q.Timestamps(); got != TimestampTSC {
		t.Errorf("Timestamps: got %v, want %v", got, TimestampTSC)
	}
	var b Burst
	for range 3 {
		before := time.Now().UnixNano()
		n, err := q.Recv(&b)
		after := time.Now().UnixNano()
		if err != nil || n == 0 {
			t.Fatalf("Recv: got %d, %v, want packets", n, err)
		}
		for i := 0; i < n; i++ {
			// Allow 1 ms of TSC-vs-realtime skew.
			if ts := b.Pkts[i].TS; ts < before-1e6 || ts > after+1e6 {
				t.Fatalf("packet %d: ts %d outside [%d, %d]", i, ts, before, after)
			}
			if got := len(b.Pkts[i].Data); got != 64 {
				t.Fatalf("packet %d: got %d bytes, want 64 (net_null default)", i, got)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if n, err := q.Recv(&b); n != 0 || !errors.Is(err, ErrClosed) {
		t.Errorf("Recv after Stop: got %d, %v, want 0, %v", n, err, ErrClosed)
	}
	// The closed vdev is re-created from its --vdev arguments.
	p2, err := OpenPort(PortConfig{Name: "net_null1", Mbufs: 2047})
	if err != nil {
		t.Fatalf("OpenPort after Stop: %v", err)
	}
	if n, err := p2.Queue(0).Recv(&b); n == 0 || err != nil {
		t.Errorf("Recv on the reopened port: got %d, %v, want packets", n, err)
	}
	if err := p2.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

func TestOpenPortErrors(t *testing.T) {
	needEAL(t)
	for _, tc := range []struct {
		name string
		cfg  PortConfig
	}{
		{"unknown device", PortConfig{Name: "net_nosuch0"}},
		{"too many queues", PortConfig{Name: "net_null0", RxQueues: 70000}},
		{"too few mbufs", PortConfig{Name: "net_null0", Mbufs: 100}},
	} {
		if p, err := OpenPort(tc.cfg); err == nil {
			p.Stop()
			t.Errorf("%s: OpenPort(%+v): got nil error, want one", tc.name, tc.cfg)
		}
	}
}

// TestPcapReplaySmallMbufs replays into mbufs smaller than the jumbo
// frames: net_pcap chains them into multi-segment mbufs, which Recv
// delivers as their first segment, reporting the truncation.
func TestPcapReplaySmallMbufs(t *testing.T) {
	needEAL(t)
	p, err := OpenPort(PortConfig{Name: "net_pcap3", Mbufs: 4095, DataRoom: DefaultDataRoom})
	if err != nil {
		t.Fatalf("OpenPort: %v", err)
	}
	defer p.Stop()
	q := p.Queue(0)
	src := p.Source(0)
	var b Burst
	i, jumbo := 0, 0
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		n, err := src.Recv(&b)
		for k := 0; k < n; k++ {
			pk := &b.Pkts[k]
			want := replayPkts[i].Data
			if int(pk.WireLen) != len(want) {
				t.Fatalf("packet %d: got wire length %d, want %d", i, pk.WireLen, len(want))
			}
			room := DefaultDataRoom - 128
			if len(want) > room {
				jumbo++
				if len(pk.Data) != room {
					t.Errorf("packet %d: got %d bytes, want the first segment of %d", i, len(pk.Data), room)
				}
			}
			if !bytes.Equal(pk.Data, want[:len(pk.Data)]) {
				t.Fatalf("packet %d: bytes differ", i)
			}
			i++
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
	}
	if i != len(replayPkts) {
		t.Errorf("got %d packets, want %d", i, len(replayPkts))
	}
	if st := q.Stats(); st.Truncated != uint64(jumbo) || jumbo == 0 {
		t.Errorf("Truncated: got %d, want %d (> 0)", st.Truncated, jumbo)
	}
}
