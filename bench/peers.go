package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"tapvault/dataplane"
)

// Peers: other capturers installed on the machine, run on the same veth
// with the same trace and rate as tapvault, one after another (never at the
// same time: on 2 cores they would compete for CPU and measure each other).
//
// Settings, each the peer's usual fast configuration for writing a file:
//
//	tcpdump -i IF -w FILE -s 0 -B 32768 -n -Z root
//	    whole packets, 32 MiB kernel ring (TPACKET_V3 through libpcap), no
//	    name resolution; -Z root keeps it from switching to the tcpdump user
//	    (Debian's default), which could not write into a root-owned store
//	    directory. No --immediate-mode: the block-wise default is tcpdump's
//	    fastest.
//	dumpcap -i IF -w FILE -q -s 0 -B 32
//	    whole packets, 32 MiB buffer, pcapng (dumpcap's default format).
//
// The 32 MiB matches the AF_PACKET ring tapvault gets (AFPacketVdev).

// Peer kinds.
const (
	PeerTcpdump = "tcpdump"
	PeerDumpcap = "dumpcap"
)

// PeerTail is how long a peer keeps capturing after the replay: more than
// libpcap's 1 s TPACKET_V3 block timeout, or packets in a block the kernel
// has not yet handed over are lost when the peer stops (measured: tcpdump
// stopped 300 ms after a 3000-packet replay had written 1643 of them).
var PeerTail = 2 * time.Second

// PeerReadyTimeout bounds the wait for a peer's "listening" line.
var PeerReadyTimeout = 10 * time.Second

// PeerResult is one peer's run.
type PeerResult struct {
	Kind     string
	Args     []string // the command line
	File     string   // its output file
	Captured uint64   // packets in File, counted by tapvault's own reader
	Bytes    int64    // File's size

	// What the peer says on exit (tcpdump: "received by filter", "dropped
	// by kernel"; dumpcap: "received/dropped on interface"). Reported is
	// false when its summary could not be parsed.
	Reported    bool
	Received    uint64
	KernelDrops uint64

	CPU       time.Duration // user+sys of the peer's whole life (rusage of the child after Wait)
	CPUAtStop time.Duration // user+sys from /proc/PID/stat just before SIGINT
	Elapsed   time.Duration // peer start to exit
	Stderr    string
}

// PeerArgs is the command line RunPeer uses for kind.
func PeerArgs(kind, iface, file string) ([]string, error) {
	switch kind {
	case PeerTcpdump:
		return []string{"tcpdump", "-i", iface, "-w", file, "-s", "0", "-B", "32768", "-n", "-Z", "root"}, nil
	case PeerDumpcap:
		return []string{"dumpcap", "-i", iface, "-w", file, "-q", "-s", "0", "-B", "32"}, nil
	}
	return nil, fmt.Errorf("peer %q: want %s or %s", kind, PeerTcpdump, PeerDumpcap)
}

// AvailablePeers lists the peer kinds installed (in PATH).
func AvailablePeers() []string {
	var out []string
	for _, k := range []string{PeerTcpdump, PeerDumpcap} {
		if _, err := exec.LookPath(k); err == nil {
			out = append(out, k)
		}
	}
	return out
}

// readyLine tells whether a peer's stderr line says it is capturing.
func readyLine(kind, line string) bool {
	switch kind {
	case PeerTcpdump:
		return strings.Contains(line, "listening on")
	case PeerDumpcap:
		return strings.HasPrefix(line, "Capturing on")
	}
	return false
}

// RunPeer starts the peer kind capturing iface into a file in outDir (on
// the same disk as tapvault's store), waits until it says it is capturing,
// calls start (the replay), waits PeerTail, stops the peer with SIGINT and
// counts the packets in its file. An error from start is returned with the
// rest of the result filled in.
func RunPeer(ctx context.Context, kind, iface, outDir string, start func() error) (PeerResult, error) {
	res := PeerResult{Kind: kind}
	ext := ".pcap"
	if kind == PeerDumpcap {
		ext = ".pcapng"
	}
	res.File = filepath.Join(outDir, kind+ext)
	args, err := PeerArgs(kind, iface, res.File)
	if err != nil {
		return res, err
	}
	res.Args = args
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return res, fmt.Errorf("peer %s: %w", kind, err)
	}
	os.Remove(res.File)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	// The peer must outlive a SIGINT sent to our process group by a
	// terminal: we stop it ourselves, after its tail.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return res, fmt.Errorf("peer %s: %w", kind, err)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("peer %s: %w", kind, err)
	}
	var (
		mu    sync.Mutex
		errb  strings.Builder
		ready = make(chan struct{})
		eof   = make(chan struct{})
	)
	go func() {
		defer close(eof)
		said := false
		readLines(stderr, func(l string) {
			mu.Lock()
			errb.WriteString(l)
			errb.WriteByte('\n')
			mu.Unlock()
			if !said && readyLine(kind, l) {
				said = true
				close(ready)
			}
		})
	}()
	stop := func() {
		res.CPUAtStop, _ = ProcCPU(cmd.Process.Pid)
		cmd.Process.Signal(syscall.SIGINT)
		exited := make(chan struct{})
		go func() {
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
			}
		}()
		<-eof // the stderr pipe is read to its end before Wait closes it
		cmd.Wait()
		close(exited)
		res.Elapsed = time.Since(t0)
		if ps := cmd.ProcessState; ps != nil {
			res.CPU = ps.UserTime() + ps.SystemTime()
		}
		mu.Lock()
		res.Stderr = errb.String()
		mu.Unlock()
	}
	select {
	case <-ready:
	case <-eof:
		stop()
		return res, fmt.Errorf("peer %s exited before capturing: %s", kind, lastLines(res.Stderr, 3))
	case <-time.After(PeerReadyTimeout):
		stop()
		return res, fmt.Errorf("peer %s: not capturing after %s: %s", kind, PeerReadyTimeout, lastLines(res.Stderr, 3))
	}
	startErr := start()
	if startErr == nil {
		select {
		case <-time.After(PeerTail):
		case <-ctx.Done():
		}
	}
	stop()
	switch kind {
	case PeerTcpdump:
		res.Received, res.KernelDrops, res.Reported = parseTcpdumpStats(res.Stderr)
	case PeerDumpcap:
		res.Received, res.KernelDrops, res.Reported = parseDumpcapStats(res.Stderr)
	}
	n, err := CountPackets(res.File)
	res.Captured = n
	if fi, serr := os.Stat(res.File); serr == nil {
		res.Bytes = fi.Size()
	}
	if err != nil {
		err = fmt.Errorf("peer %s: %w (stderr: %s)", kind, err, lastLines(res.Stderr, 3))
	}
	if startErr != nil {
		return res, errors.Join(fmt.Errorf("replay under %s: %w", kind, startErr), err)
	}
	return res, err
}

// CountPackets counts the packets in a pcap or pcapng file with the
// dataplane's file reader. A file cut short counts what precedes the cut.
func CountPackets(path string) (uint64, error) {
	src, err := dataplane.OpenFile(path)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	var b dataplane.Burst
	var n uint64
	for {
		k, err := src.Recv(&b)
		n += uint64(k)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("count %s: %w", path, err)
		}
	}
}

var (
	reTcpdumpRecv = regexp.MustCompile(`(?m)^(\d+) packets? received by filter`)
	reTcpdumpDrop = regexp.MustCompile(`(?m)^(\d+) packets? dropped by kernel`)
	reDumpcapStat = regexp.MustCompile(`(?m)^Packets received/dropped on interface '[^']*': (\d+)/(\d+)`)
)

// parseTcpdumpStats reads tcpdump's exit summary:
//
//	3002 packets captured
//	3002 packets received by filter
//	0 packets dropped by kernel
func parseTcpdumpStats(s string) (received, dropped uint64, ok bool) {
	r := reTcpdumpRecv.FindStringSubmatch(s)
	d := reTcpdumpDrop.FindStringSubmatch(s)
	if r == nil || d == nil {
		return 0, 0, false
	}
	received, _ = strconv.ParseUint(r[1], 10, 64)
	dropped, _ = strconv.ParseUint(d[1], 10, 64)
	return received, dropped, true
}

// parseDumpcapStats reads dumpcap's exit summary (4.0):
//
//	Packets captured: 3000
//	Packets received/dropped on interface 'tvtc': 3000/0 (pcap:0/dumpcap:0/flushed:0/ps_ifdrop:0) (100.0%)
//
// With several interfaces the counts are summed.
func parseDumpcapStats(s string) (received, dropped uint64, ok bool) {
	for _, m := range reDumpcapStat.FindAllStringSubmatch(s, -1) {
		r, _ := strconv.ParseUint(m[1], 10, 64)
		d, _ := strconv.ParseUint(m[2], 10, 64)
		received += r
		dropped += d
		ok = true
	}
	return received, dropped, ok
}

// userHZ is the unit of /proc/PID/stat times. It is 100 on every Linux
// architecture Go supports (USER_HZ, fixed by the ABI, unlike CONFIG_HZ).
const userHZ = 100

// ProcCPU is the user+system CPU time of a live process, from
// /proc/PID/stat (10 ms resolution).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(b)
}

// parseProcStat returns utime+stime (fields 14 and 15) of a /proc/PID/stat
// line. The command name (field 2) is in parentheses and may itself hold
// spaces and parentheses, so fields are counted from the last ')'.
func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no ')' in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field k is f[k-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("proc stat: %w", err)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// Comparison is one rate's run of tapvault and the peers over the same
// trace on the same veth, one after another.
type Comparison struct {
	Rate  Rate
	Trace string
	// Name labels tapvault's run: "tapvault" when empty; the bench names
	// the PMD and the analytics setting, e.g. "tapvault af_xdp, analytics
	// off".
	Name string

	Tapvault       *Result // nil when tapvault was not run
	TapvaultReplay ReplayResult
	TapvaultErr    error

	Peers []PeerRun
}

// PeerRun is one peer's run with its own replay.
type PeerRun struct {
	PeerResult
	Replay ReplayResult
	Err    error
}

// CompareOnVeth replays trace at rate into tapvault, then into each peer in
// turn, each time with a fresh tcpreplay, and collects what each captured.
// runTapvault (nil: tapvault is left out) must capture from
// v.CaptureIface() and call start exactly once when it is ready, e.g.
//
//	func(start func() error) (*bench.Result, error) {
//		return bench.RunAFPacket(bench.RunOptions{Dir: ..., WorkerLcore: ...}, start)
//	}
//
// with EAL initialised with --vdev=AFPacketVdev(v.CaptureIface()).
// peers nil means AvailablePeers(). Peer files go to outDir, which should be
// on the disk of tapvault's store. A failing capturer is recorded in its
// entry and the others still run; the error returned is the context's.
func CompareOnVeth(ctx context.Context, v *Veth, trace string, rate Rate, outDir string, peers []string,
	runTapvault func(start func() error) (*Result, error)) (Comparison, error) {
	c := Comparison{Rate: rate, Trace: trace}
	if _, err := rate.tcpreplayArgs(); err != nil {
		return c, err
	}
	if peers == nil {
		peers = AvailablePeers()
	}
	replay := func(dst *ReplayResult) func() error {
		return func() error {
			r, err := v.Replay(ctx, trace, rate)
			*dst = r
			return err
		}
	}
	if runTapvault != nil {
		c.Tapvault, c.TapvaultErr = runTapvault(replay(&c.TapvaultReplay))
	}
	for _, k := range peers {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		var pr PeerRun
		pr.PeerResult, pr.Err = RunPeer(ctx, k, v.CaptureIface(), outDir, replay(&pr.Replay))
		c.Peers = append(c.Peers, pr)
	}
	return c, ctx.Err()
}

// TapvaultName is Name, or "tapvault".
func (c *Comparison) TapvaultName() string {
	if c.Name == "" {
		return "tapvault"
	}
	return c.Name
}

// TapvaultCaptured is what tapvault's run stored (committed packets).
func (c *Comparison) TapvaultCaptured() uint64 {
	if c.Tapvault == nil {
		return 0
	}
	return c.Tapvault.Report.Writer.PacketsCommitted
}

// WriteComparison prints a comparison as a table: per capturer packets
// sent (tcpreplay's count), captured, lost, CPU, and tapvault's ratios to
// each peer (captured, and CPU per captured packet).
func WriteComparison(w io.Writer, c *Comparison) {
	fmt.Fprintf(w, "veth replay %s of %s\n", c.Rate, filepath.Base(c.Trace))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "capturer\tsent\tsent pps\tcaptured\tlost\tloss %\tdrops reported\tCPU\tCPU µs/pkt\ttapvault captured ×\ttapvault CPU/pkt ×\t")
	row := func(name string, rr ReplayResult, captured uint64, drops string, cpu time.Duration, ratio string, err error) {
		lost := int64(rr.Packets) - int64(captured)
		loss := 0.0
		if rr.Packets > 0 {
			loss = 100 * float64(lost) / float64(rr.Packets)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%d\t%.2f\t%s\t%s\t%.2f\t%s\n", name, rr.Packets, rr.PPS, captured, lost, loss, drops,
			cpu.Round(time.Millisecond), perPkt(cpu, captured), ratio)
		if err != nil {
			fmt.Fprintf(tw, "  %s error: %v\t\t\t\t\t\t\t\t\t\t\t\n", name, err)
		}
	}
	tvCap := c.TapvaultCaptured()
	var tvCPU time.Duration
	name := c.TapvaultName()
	if c.Tapvault != nil {
		tvCPU = c.Tapvault.Report.ProcessCPU
		drops := fmt.Sprintf("%d", c.Tapvault.Drops())
		row(name, c.TapvaultReplay, tvCap, drops, tvCPU, "-\t-\t", c.TapvaultErr)
	} else if c.TapvaultErr != nil {
		fmt.Fprintf(tw, "%s error: %v\t\t\t\t\t\t\t\t\t\t\t\n", name, c.TapvaultErr)
	}
	for _, p := range c.Peers {
		drops := "?"
		if p.Reported {
			drops = fmt.Sprintf("%d", p.KernelDrops)
		}
		ratio := "-\t-\t"
		if c.Tapvault != nil && p.Captured > 0 {
			cpuRatio := "-"
			if pp := perPkt(p.CPU, p.Captured); pp > 0 && tvCap > 0 {
				cpuRatio = fmt.Sprintf("%.2f", perPkt(tvCPU, tvCap)/pp)
			}
			ratio = fmt.Sprintf("%.3f\t%s\t", float64(tvCap)/float64(p.Captured), cpuRatio)
		}
		row(p.Kind, p.Replay, p.Captured, drops, p.CPU, ratio, p.Err)
	}
	tw.Flush()
	if t := c.Tapvault; t != nil {
		rx := t.Report.RxPackets
		before := "kernel ring: DPDK 22.11's af_packet PMD reports no imissed"
		if t.Driver == "net_af_xdp" {
			before = fmt.Sprintf("the AF_XDP socket's rx_dropped, as imissed: %d", t.PortStat.IMissed)
		}
		fmt.Fprintf(w, "  %s: %d received from the port, %d lost before it (%s); dropped after it: %d no block buffer, %d writer queue; %d B on disk\n",
			name, rx, int64(c.TapvaultReplay.Packets)-int64(rx), before, t.Report.DropNoBuffer, t.Report.DropWriter, t.DiskSize)
		fmt.Fprintln(w, "  tapvault CPU is the whole process during the run, including the worker's busy polling (a full core however low the rate)")
	}
}

func perPkt(cpu time.Duration, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(n)
}
