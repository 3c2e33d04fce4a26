package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"tapvault/analytics"
	"tapvault/bench"
	"tapvault/dataplane"
	"tapvault/pcap"
	"tapvault/pipeline"
	"tapvault/query"
	"tapvault/tracegen"
)

func addGenFlags(cmd *cobra.Command, o *tracegen.Options) {
	f := cmd.Flags()
	f.StringVar(&o.Kind, "kind", "imix", "traffic: udp64, imix (7:4:1 of 64/594/1518 B over TCP flows), mixed, app (HTTP, DNS, PostgreSQL, Redis with known timings)")
	f.IntVar(&o.Packets, "packets", 1_000_000, "packets to generate")
	f.IntVar(&o.Flows, "flows", 10_000, "flows")
	f.Int64Var(&o.Seed, "seed", 1, "seed: the same options give the same bytes")
	f.Float64Var(&o.PPS, "pps", 1_000_000, "packet rate the timestamps are spaced for")
	f.IntVar(&o.Active, "active", 0, "flows active at a time (a window sliding over --flows, so flows come and go); 0: all flows active throughout")
}

// benchOptions are the flags of `tapvault bench`.
type benchOptions struct {
	gen        tracegen.Options
	kinds      []string
	sources    []string
	loops      int
	diskBytes  string // --disk-bytes: the disk measurement ("0": none)
	data       string
	keep       bool
	out        string
	search     bool
	trial      time.Duration
	maxTrials  int
	vethRates  []string
	vethPMDs   []string
	peers      []string
	queryLoad  int
	queryCLI   int
	queryRates []string
	traces     []string
	decoders   string // on, off, both
	repeat     int
}

func newBenchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Replay generated traffic through DPDK into a store and report rates, drops per stage, CPU, storage, loss-free rate and peers",
		Long: `Bench generates a trace per traffic kind and replays it through the real
dataplane into fresh stores:

  ring  from memory through net_ring at maximum speed (a producer thread
        transmits into the ring, the pinned worker receives): the top rate
  pcap  from the trace file through net_pcap
  veth  through net_af_packet (and/or net_af_xdp: --veth-pmds) on a veth
        pair whose peer sits in a network namespace the bench creates and
        removes, fed by tcpreplay; tcpdump and dumpcap capture the same
        replays for comparison (--peers); with --decoders both tapvault runs
        with analytics off and on (needs root, iproute2, tcpreplay)

With --search it looks for the loss-free rate on the ring path, RFC 2544
style: trials of --trial each, bisecting between the highest rate with no
drop at any stage and the lowest with drops.

It writes report.md, report.json and report.png into --out. Goals are
reported, never asserted. Stores go on the filesystem of --data: on a disk
the rate to durable blocks is bounded by the disk; on tmpfs (/dev/shm) it
measures the CPU path.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range o.sources {
				if s != "ring" && s != "pcap" && s != "veth" {
					return fmt.Errorf("--sources: unknown source %q (want ring, pcap, veth)", s)
				}
			}
			for _, k := range o.kinds {
				switch k {
				case tracegen.KindUDP64, tracegen.KindIMIX, tracegen.KindMixed, tracegen.KindApp:
				default:
					return fmt.Errorf("--kinds: unknown kind %q (want udp64, imix, mixed, app)", k)
				}
			}
			if t := strings.TrimSpace(o.diskBytes); t != "0" {
				if _, err := parseSize(t); err != nil {
					return fmt.Errorf("--disk-bytes: %w", err)
				}
			}
			for _, r := range o.vethRates {
				if _, err := bench.ParseRate(r); err != nil {
					return fmt.Errorf("--veth-rates: %w", err)
				}
			}
			for _, p := range o.vethPMDs {
				if p != "af_packet" && p != "af_xdp" {
					return fmt.Errorf("--veth-pmds: unknown PMD %q (want af_packet, af_xdp)", p)
				}
			}
			// af_packet first: its socket opens when EAL probes the vdev
			// and fills its ring with whatever the veth carries until
			// the first af_packet run reads it (later runs re-create the
			// vdev, and with it a fresh socket).
			slices.SortStableFunc(o.vethPMDs, func(a, b string) int {
				return boolInt(b == "af_packet") - boolInt(a == "af_packet")
			})
			if slices.Contains(o.vethPMDs, "af_xdp") && slices.Contains(o.sources, "veth") {
				kinds := len(o.kinds)
				if len(o.traces) > 0 {
					kinds = len(o.traces)
				}
				if n := kinds * len(o.vethRates) * o.repeat * len(decoderModes(o.decoders)); n > 1 {
					return fmt.Errorf("--veth-pmds af_xdp: %d af_xdp captures asked for, but one process can open net_af_xdp0 only once (DPDK 22.11's af_xdp PMD leaves its AF_XDP socket bound to the queue after close, so the next bind fails): run the bench once per kind, rate and --decoders setting (on or off), with --repeat 1", n)
				}
			}
			if slices.Equal(o.peers, []string{"none"}) {
				o.peers = []string{}
			}
			if o.decoders != "on" && o.decoders != "off" && o.decoders != "both" {
				return fmt.Errorf("--decoders %q: want on, off or both", o.decoders)
			}
			if o.repeat < 1 {
				return fmt.Errorf("--repeat %d: must be at least 1", o.repeat)
			}
			if o.trial <= 0 || o.loops < 1 || o.gen.Packets < 1 {
				return errors.New("--trial, --loops and --packets must be positive")
			}
			return runBench(cmd, o, os.Args)
		},
	}
	addGenFlags(cmd, &o.gen)
	f := cmd.Flags()
	f.StringSliceVar(&o.kinds, "kinds", []string{"imix"}, "traffic kinds to run, in order (overrides --kind)")
	f.StringSliceVar(&o.traces, "trace", nil, "replay your own pcap/pcapng file(s) instead of generated kinds (repeatable)")
	f.StringSliceVar(&o.sources, "sources", []string{"ring", "pcap"}, "replay paths: ring, pcap, veth")
	f.StringVar(&o.diskBytes, "disk-bytes", "1GiB", "measure the store's disk first (O_DIRECT, O_DIRECT+fdatasync, buffered+fdatasync, each this many bytes, as dd does) and report each run's stored MB/s against it; 0: skip")
	f.IntVar(&o.loops, "loops", 3, "passes over the trace on the ring path at maximum speed")
	f.StringVar(&o.data, "data", "", "directory for traces and stores (default: a temporary one, removed)")
	f.BoolVar(&o.keep, "keep", false, "keep traces and stores")
	f.StringVar(&o.out, "out", "bench-out", "directory for report.md, report.json and report.png")
	f.BoolVar(&o.search, "search", false, "search the loss-free rate on the ring path")
	f.DurationVar(&o.trial, "trial", 10*time.Second, "length of one loss-free search trial")
	f.IntVar(&o.maxTrials, "max-trials", 12, "most trials per search")
	f.StringSliceVar(&o.vethRates, "veth-rates", []string{"pps=100000", "max"}, "tcpreplay rates on the veth path: max, pps=N, mbps=N, xF (original timing times F)")
	f.IntVar(&o.queryLoad, "query-load", 0, "also run each ring replay with N concurrent queries (flow, host, time) against the live store, and report their latency and the capture's drops with and without them")
	f.IntVar(&o.queryCLI, "query-cli", 0, "also run N concurrent loops of 'tapvault query' processes against the live store in the --query-load runs (a separate process scans block headers: it cannot open the capture's index)")
	f.StringSliceVar(&o.queryRates, "query-rate", nil, "rates for the --query-load runs: packets/s, or a percentage of the loss-free rate found by --search (e.g. 50%,90%); default: the loss-free rate found, else half the maximum")
	f.StringVar(&o.decoders, "decoders", "on", "in-stream analytics in the replays: on (as capture), off, or both (each max-speed run twice, off then on, to compare in the same run)")
	f.IntVar(&o.repeat, "repeat", 1, "run each max-speed replay this many times (interleaved with --decoders both), for medians")
	f.StringSliceVar(&o.vethPMDs, "veth-pmds", []string{"af_packet"}, "DPDK drivers tapvault captures the veth with: af_packet (net_af_packet), af_xdp (net_af_xdp; the veth MTU drops to 3498 for its XDP program, and one process runs one af_xdp capture: one rate, --decoders on or off, --repeat 1)")
	f.StringSliceVar(&o.peers, "peers", nil, "peers to run on the veth path (default: those installed of tcpdump, dumpcap; none to skip)")

	var out string
	genCmd := &cobra.Command{
		Use:   "gen -o FILE",
		Short: "Write a reproducible generated trace (pcap, ns timestamps)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("-o FILE is required")
			}
			t0 := time.Now()
			st, err := tracegen.GenerateFile(out, o.gen)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d packets, %d bytes, %d flows in %s\n", out, st.Packets, st.Bytes, st.Flows, time.Since(t0).Round(time.Millisecond))
			return nil
		},
	}
	addGenFlags(genCmd, &o.gen)
	genCmd.Flags().StringVarP(&out, "out", "o", "", "output pcap file")
	cmd.AddCommand(genCmd)
	return cmd
}

// kindRun is what bench prepares per traffic kind.
type kindRun struct {
	kind   string
	trace  string
	frames [][]byte
	pcapID int
}

func runBench(cmd *cobra.Command, o benchOptions, argv []string) error {
	w := cmd.OutOrStdout()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cmd.Flags().Changed("kind") && !cmd.Flags().Changed("kinds") {
		o.kinds = []string{o.gen.Kind}
	}
	if o.data == "" {
		d, err := os.MkdirTemp("", "tapvault-bench-")
		if err != nil {
			return err
		}
		o.data = d
		if !o.keep {
			defer os.RemoveAll(d)
		}
	} else if err := os.MkdirAll(o.data, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	rep := &bench.Report{Machine: bench.DescribeMachine(o.data), Command: bench.CommandLine(argv)}
	if strings.TrimSpace(o.diskBytes) != "0" {
		n, err := parseSize(o.diskBytes)
		if err != nil {
			return fmt.Errorf("--disk-bytes: %w", err)
		}
		fmt.Fprintf(w, "bench: measuring the disk under %s (%s written three ways)\n", o.data, o.diskBytes)
		ds := bench.MeasureDisk(o.data, n)
		rep.Disk = &ds
	}

	// Traces first: net_pcap opens its files when EAL starts.
	var runs []*kindRun
	ring := slices.Contains(o.sources, "ring")
	if len(o.traces) > 0 {
		// A user's own traces: the file replays through net_pcap and veth
		// as it is; the ring path replays its frames from memory.
		for i, path := range o.traces {
			abs, err := filepath.Abs(path)
			if err != nil {
				return err
			}
			kr := &kindRun{kind: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), trace: abs, pcapID: i}
			src, err := dataplane.OpenFile(abs)
			if err != nil {
				return fmt.Errorf("bench --trace: %w", err)
			}
			var b dataplane.Burst
			for ring {
				n, err := src.Recv(&b)
				for j := 0; j < n; j++ {
					if b.Pkts[j].LinkType != pcap.LinkTypeEthernet {
						src.Close()
						return fmt.Errorf("bench --trace %s: packet of link type %d: the replay paths carry Ethernet only", path, b.Pkts[j].LinkType)
					}
					kr.frames = append(kr.frames, append([]byte(nil), b.Pkts[j].Data...))
				}
				if err != nil {
					if !errors.Is(err, io.EOF) {
						src.Close()
						return fmt.Errorf("bench --trace %s: %w", path, err)
					}
					break
				}
			}
			src.Close()
			fmt.Fprintf(w, "trace %s: %s\n", kr.kind, abs)
			runs = append(runs, kr)
		}
	}
	for i, k := range o.kinds {
		if len(o.traces) > 0 {
			break
		}
		g := o.gen
		g.Kind = k
		kr := &kindRun{kind: k, trace: filepath.Join(o.data, "trace-"+k+".pcap"), pcapID: i}
		t0 := time.Now()
		gs, err := tracegen.GenerateFile(kr.trace, g)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "trace %s: %d packets, %d bytes, %d flows (generated in %s)\n", k, gs.Packets, gs.Bytes, gs.Flows, time.Since(t0).Round(time.Millisecond))
		if ring {
			if _, err := tracegen.GenerateFrames(g, func(_ int64, f []byte) error {
				kr.frames = append(kr.frames, append([]byte(nil), f...))
				return nil
			}); err != nil {
				return err
			}
		}
		runs = append(runs, kr)
	}

	// The veth pair must exist before EAL starts: its af_packet port is a
	// --vdev of EAL.
	var veth *bench.Veth
	eal := "-l 0-1 --no-pci --vdev=net_ring0"
	for _, kr := range runs {
		eal += fmt.Sprintf(" --vdev=net_pcap%d,rx_pcap=%s", kr.pcapID, kr.trace)
	}
	if slices.Contains(o.sources, "veth") {
		v, err := bench.NewVeth()
		if err != nil {
			return fmt.Errorf("bench: veth path: %w (it needs root, iproute2 and tcpreplay: scripts/setup.sh installs them)", err)
		}
		defer v.Close()
		veth = v
		for _, pmd := range o.vethPMDs {
			switch pmd {
			case "af_packet":
				eal += " --vdev=" + bench.AFPacketVdev(v.CaptureIface())
			case "af_xdp":
				if err := bench.CheckAFXDP(); err != nil {
					return fmt.Errorf("bench: veth path: %w", err)
				}
				// Every capturer then runs at this MTU, so they still
				// see the same traffic.
				if err := v.SetMTU(bench.AFXDPMaxMTU); err != nil {
					return fmt.Errorf("bench: veth path: af_xdp: %w", err)
				}
				eal += " --vdev=" + bench.AFXDPVdev(v.CaptureIface())
			}
		}
	}
	args := ealArgs(eal)
	if err := dataplane.InitEAL(args); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	worker := dataplane.MainLcore()
	if l := dataplane.WorkerLcores(); len(l) > 0 {
		worker = l[0]
	}
	m := rep.Machine
	fmt.Fprintf(w, "machine: %s, %d CPUs, %s memory, hugepages %d free of %d; DPDK %s; store on %s (%s)\n",
		m.CPUModel, m.LogicalCPUs, humanBytes(m.MemTotal), m.HugePages.Free, m.HugePages.Total, m.DPDKVersion, m.Store.FSType, m.Store.Device)
	fmt.Fprintf(w, "EAL %s; worker on lcore %d, producer on lcore %d\n\n", strings.Join(args, " "), worker, dataplane.MainLcore())

	n := 0
	store := func(name string) string {
		n++
		return filepath.Join(o.data, fmt.Sprintf("store-%02d-%s", n, name))
	}
	// Every run maintains the index, as capture does: the figures are
	// "to durable compressed blocks + index".
	base := withDecoders(bench.RunOptions{WorkerLcore: worker, ProducerLcore: dataplane.MainLcore(), Logger: slog.Default(), Store: pipeline.Options{Index: true}}, o.decoders)
	done := func(dir string) {
		if !o.keep {
			os.RemoveAll(dir)
		}
	}
	for _, kr := range runs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for r := 0; r < o.repeat; r++ {
			for _, dec := range decoderModes(o.decoders) {
				suffix := ""
				if o.decoders == "both" {
					suffix = ", decoders " + dec
				}
				if ring {
					ro := withDecoders(base, dec)
					ro.Port, ro.Frames, ro.Loops, ro.Dir = "net_ring0", kr.frames, o.loops, store("ring-"+kr.kind)
					name := fmt.Sprintf("%s ring max (%d x %d frames)%s", kr.kind, o.loops, len(kr.frames), suffix)
					if err := benchRun(w, rep, name, ro, done); err != nil {
						return err
					}
				}
				if slices.Contains(o.sources, "pcap") {
					ro := withDecoders(base, dec)
					ro.Port, ro.Dir = fmt.Sprintf("net_pcap%d", kr.pcapID), store("pcap-"+kr.kind)
					if err := benchRun(w, rep, kr.kind+" pcap max"+suffix, ro, done); err != nil {
						return err
					}
				}
			}
		}
		if ring && o.search {
			if err := benchSearch(ctx, w, rep, kr, base, o, store, done); err != nil {
				return err
			}
		}
		if ring && (o.queryLoad > 0 || o.queryCLI > 0) {
			if err := benchQueryLoad(w, rep, kr, base, o, store, done); err != nil {
				return err
			}
		}
		if veth != nil {
			for _, rs := range o.vethRates {
				rate, _ := bench.ParseRate(rs)
				if err := benchVeth(ctx, w, rep, veth, kr, rate, base, o, store, done); err != nil {
					return err
				}
			}
		}
	}
	addGoals(rep)
	return writeBenchReport(w, rep, o.out)
}

// benchVeth replays one kind at one rate on the veth, --repeat times: each
// time into tapvault once per --veth-pmds PMD and analytics setting, then
// into each peer (their rows come with the first tapvault run's table).
func benchVeth(ctx context.Context, w io.Writer, rep *bench.Report, veth *bench.Veth, kr *kindRun, rate bench.Rate, base bench.RunOptions, o benchOptions, store func(string) string, done func(string)) error {
	for r := 0; r < o.repeat; r++ {
		first := true
		for _, pmd := range o.vethPMDs {
			for _, dec := range decoderModes(o.decoders) {
				peers := []string{}
				if first {
					peers, first = o.peers, false
				}
				name := "tapvault " + pmd
				if o.decoders == "both" {
					name += ", analytics " + dec
				}
				dir := store("veth-" + pmd + "-" + kr.kind)
				var xdpMode string
				c, err := bench.CompareOnVeth(ctx, veth, kr.trace, rate, filepath.Join(o.data, "peers"), peers,
					func(start func() error) (*bench.Result, error) {
						ro := withDecoders(base, dec)
						ro.Port, ro.Dir = "net_"+pmd+"0", dir
						if pmd == "af_xdp" {
							ro.TxQueue = true
							ro.RxDesc, ro.Mbufs = bench.AFXDPRing, bench.AFXDPMbufs
							// The program is attached while the port is
							// open: the pipeline opens after the port.
							ro.During = func(context.Context, *pipeline.Pipeline) { xdpMode = bench.XDPMode(veth.CaptureIface()) }
						}
						res, err := bench.RunLive(ro, start)
						if err != nil && pmd == "af_xdp" {
							err = fmt.Errorf("af_xdp on %s: %w (DPDK's af_xdp log lines above say which step failed: the XDP program's attach, the UMEM or the socket's bind; with DPDK 22.11.11 a second net_af_xdp0 in one process fails in xsk_configure, \"Failed to create xsk socket\": run one af_xdp capture per bench process)", veth.CaptureIface(), err)
						}
						return res, err
					})
				if err != nil {
					return fmt.Errorf("veth %s: %w", rate, err)
				}
				c.Name = name
				if xdpMode != "" {
					c.Name += " (XDP " + xdpMode + ")"
				}
				bench.WriteComparison(w, &c)
				fmt.Fprintln(w)
				rep.Peers = append(rep.Peers, bench.PeersFrom(&c)...)
				if c.Tapvault != nil {
					s := bench.RunSummaryFrom(c.Tapvault)
					s.Name = fmt.Sprintf("%s veth %s %s", kr.kind, rate, c.Name)
					rep.Runs = append(rep.Runs, s)
				}
				done(dir)
			}
		}
	}
	return nil
}

func benchRun(w io.Writer, rep *bench.Report, name string, ro bench.RunOptions, done func(string)) error {
	bench.ResetPeakRSS()
	res, err := bench.Run(ro)
	if err != nil {
		return fmt.Errorf("bench %s: %w", name, err)
	}
	bench.WriteReport(w, name, res)
	fmt.Fprintln(w)
	s := bench.RunSummaryFrom(res)
	s.Name = name
	s.PeakRSS = bench.PeakRSS()
	rep.Runs = append(rep.Runs, s)
	done(ro.Dir)
	return nil
}

// benchSearch finds the loss-free rate of one kind on the ring path: each
// trial replays the frames at a fixed rate for the trial length into a fresh
// store, and passes only with no drop at any stage, end to end to durable
// blocks.
func benchSearch(ctx context.Context, w io.Writer, rep *bench.Report, kr *kindRun, base bench.RunOptions, o benchOptions, store func(string) string, done func(string)) error {
	// Start from the measured maximum-speed rate of this kind, if any.
	maxRate := 0.0
	for i := len(rep.Runs) - 1; i >= 0; i-- {
		if n := rep.Runs[i].Name; strings.HasPrefix(n, kr.kind+" ring max") && !strings.Contains(n, " queries") {
			maxRate = rep.Runs[i].Mpps() * 1e6
			break
		}
	}
	if maxRate <= 0 {
		return fmt.Errorf("search %s: no maximum-speed ring run to start from", kr.kind)
	}
	trial := func(ctx context.Context, rate float64) (bench.TrialResult, error) {
		d := bench.TrialDuration(ctx)
		ro := base
		ro.Port, ro.Frames, ro.PPS, ro.Dir = "net_ring0", kr.frames, rate, store("search-"+kr.kind)
		ro.Loops = max(1, int(math.Ceil(rate*d.Seconds()/float64(len(kr.frames)))))
		res, err := bench.Run(ro)
		if err != nil {
			return bench.TrialResult{}, err
		}
		defer done(ro.Dir)
		r := &res.Report
		el := r.Elapsed.Seconds()
		tr := bench.TrialResult{
			Offered:     res.Sent,
			Received:    r.Writer.PacketsCommitted,
			Bytes:       r.RxBytes,
			Elapsed:     r.Elapsed,
			OfferedPPS:  float64(res.Sent) / el,
			ReceivedPPS: float64(r.Writer.PacketsCommitted) / el,
			Drops: bench.Drops{
				bench.DropIMissed:     res.PortStat.IMissed,
				bench.DropRxNoMbuf:    res.PortStat.RxNoMbuf,
				bench.DropIErrors:     res.PortStat.IErrors,
				bench.DropNoBuffer:    r.DropNoBuffer,
				bench.DropWriterQueue: r.DropWriter,
			},
			CPU: map[string]float64{"producer": res.Producer.Seconds()},
		}
		if r.Index != nil {
			tr.Drops[bench.DropIndexQueue] = r.Index.QueueDrops
		}
		if r.Writer.PacketsLost > 0 {
			tr.Drops[bench.DropDisk] = r.Writer.PacketsLost
		}
		var wcpu time.Duration
		for _, c := range r.WorkerCPU {
			wcpu += c
		}
		tr.CPU["worker"] = wcpu.Seconds()
		tr.CPU["compress+write+runtime"] = (r.ProcessCPU - wcpu - res.Producer).Seconds()
		return tr, nil
	}
	fmt.Fprintf(w, "loss-free search, %s on net_ring, %s trials, from %.3f Mpps\n", kr.kind, o.trial, maxRate/1e6)
	sr, err := bench.SearchLossFree(ctx, bench.SearchOptions{Kind: kr.kind, MaxRate: maxRate, Duration: o.trial, MaxTrials: o.maxTrials},
		trial, func(p bench.TrialProgress) { fmt.Fprintln(w, "  "+p.String()) })
	if err != nil {
		return fmt.Errorf("search %s: %w", kr.kind, err)
	}
	fmt.Fprintf(w, "  loss-free rate %s: %.3f Mpps, %.3f Gbps (%s)\n\n", kr.kind, sr.LossFreePPS/1e6, sr.LossFreeGbps, sr.Outcome)
	rep.Searches = append(rep.Searches, sr)
	return nil
}

// addGoals records the goals against what this run measured. They
// are reported, never asserted.
func addGoals(rep *bench.Report) {
	for _, s := range rep.Searches {
		if s.Kind == tracegen.KindIMIX {
			rep.Goals = append(rep.Goals, bench.CheckGoal("0 drops at >= 5 Gbps IMIX, net_ring to durable compressed blocks", "Gbps", 5, s.LossFreeGbps, false))
		}
	}
	for _, r := range rep.Runs {
		if strings.HasPrefix(r.Name, tracegen.KindUDP64+" ring max") {
			rep.Goals = append(rep.Goals, bench.CheckGoal(">= 10 Mpps of 64-byte frames, RX to blocks", "Mpps", 10, r.Mpps(), false))
		}
	}
}

func writeBenchReport(w io.Writer, rep *bench.Report, dir string) error {
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{"report.md", rep.WriteMarkdown},
		{"report.json", rep.WriteJSON},
		{"report.png", rep.WriteChart},
	} {
		p := filepath.Join(dir, f.name)
		file, err := os.Create(p)
		if err != nil {
			return err
		}
		err = f.write(file)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	fmt.Fprintf(w, "report: %s/report.md, report.json, report.png\n", dir)
	return nil
}

// benchQueryLoad replays one kind through the ring at a fixed rate (the
// loss-free rate found by --search, else half the maximum-speed rate) for
// one trial length, twice: without and with N concurrent queries against the
// live store. The capture's drops in the two runs say whether queries stall
// it; the queries' latencies say what a user waits meanwhile.
func benchQueryLoad(w io.Writer, rep *bench.Report, kr *kindRun, base bench.RunOptions, o benchOptions, store func(string) string, done func(string)) error {
	var lossFree, half float64
	for _, s := range rep.Searches {
		if s.Kind == kr.kind && s.LossFreePPS > 0 {
			lossFree = s.LossFreePPS
		}
	}
	for _, r := range rep.Runs {
		if strings.HasPrefix(r.Name, kr.kind+" ring max") {
			half = r.Mpps() * 1e6 / 2
		}
	}
	rates, err := queryLoadRates(o.queryRates, lossFree, half)
	if err != nil {
		return fmt.Errorf("query load %s: %w", kr.kind, err)
	}
	for _, rate := range rates {
		if err := benchQueryLoadAt(w, rep, kr, base, o, rate, store, done); err != nil {
			return err
		}
	}
	return nil
}

// queryLoadRates turns the --query-rate values into packets/s: a plain number
// is a rate, "N%" a percentage of the loss-free rate (which --search must
// have found). Without values it is the loss-free rate, else half the
// maximum-speed rate.
func queryLoadRates(vals []string, lossFree, half float64) ([]float64, error) {
	if len(vals) == 0 {
		switch {
		case lossFree > 0:
			return []float64{lossFree}, nil
		case half > 0:
			return []float64{half}, nil
		}
		return nil, errors.New("no ring run to take a rate from")
	}
	var out []float64
	for _, v := range vals {
		if pct, ok := strings.CutSuffix(v, "%"); ok {
			f, err := strconv.ParseFloat(pct, 64)
			if err != nil || f <= 0 {
				return nil, fmt.Errorf("--query-rate %q: want packets/s or a positive percentage", v)
			}
			if lossFree == 0 {
				return nil, fmt.Errorf("--query-rate %q: a percentage needs the loss-free rate: add --search", v)
			}
			out = append(out, lossFree*f/100)
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return nil, fmt.Errorf("--query-rate %q: want packets/s or a positive percentage", v)
		}
		out = append(out, f)
	}
	return out, nil
}

// benchQueryLoadAt replays one kind through the ring at a fixed rate for one
// trial length, twice: without and with the query load (N in-process
// queries, as the capture's API runs them, and M loops of query processes)
// against the live store. The capture's drops in the two runs say whether
// queries stall it; the queries' latencies say what a user waits meanwhile.
func benchQueryLoadAt(w io.Writer, rep *bench.Report, kr *kindRun, base bench.RunOptions, o benchOptions, rate float64, store func(string) string, done func(string)) error {
	ro := base
	ro.Port, ro.Frames, ro.PPS = "net_ring0", kr.frames, rate
	ro.Loops = max(1, int(math.Ceil(rate*o.trial.Seconds()/float64(len(kr.frames)))))
	for _, withQ := range []bool{false, true} {
		ro.Dir = store("ring-q-" + kr.kind)
		name := fmt.Sprintf("%s ring at %.3f Mpps", kr.kind, rate/1e6)
		var (
			ql  *queryLoad
			cli *cliQueryLoad
		)
		ro.During = nil
		if withQ {
			// As capture does when it serves its API: Ps for the
			// low-priority query threads.
			prev := runtime.GOMAXPROCS(0)
			query.ReserveQueryProcs(o.queryLoad)
			defer runtime.GOMAXPROCS(prev)
			if o.queryLoad > 0 {
				ql = newQueryLoad(o.queryLoad, 1000, kr.frames)
			}
			if o.queryCLI > 0 {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("query load: %w", err)
				}
				cli = &cliQueryLoad{n: o.queryCLI, exe: exe, load: newQueryLoad(o.queryCLI, 1000, kr.frames)}
			}
			dir := ro.Dir
			ro.During = func(ctx context.Context, p *pipeline.Pipeline) {
				var wg sync.WaitGroup
				if cli != nil {
					wg.Add(1)
					go func() { defer wg.Done(); cli.run(ctx, p, dir) }()
				}
				if ql != nil {
					ql.run(ctx, p, dir)
				}
				wg.Wait()
			}
			name += fmt.Sprintf(" with %d queries", o.queryLoad)
			if cli != nil {
				name += fmt.Sprintf(" + %d query processes", o.queryCLI)
			}
		}
		if err := benchRun(w, rep, name, ro, done); err != nil {
			return err
		}
		for _, line := range []string{ql.summaryIf(), cli.summaryIf()} {
			if line != "" {
				line = name + ": " + line
				fmt.Fprintf(w, "%s\n\n", line)
				rep.Notes = append(rep.Notes, line)
			}
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// decoderModes lists the analytics settings of the max-speed runs.
func decoderModes(d string) []string {
	if d == "both" {
		return []string{"off", "on"}
	}
	return []string{d}
}

// withDecoders turns the in-stream analytics on (all decoders, as capture
// runs them) or off in a run's store options; "both" means on.
func withDecoders(ro bench.RunOptions, d string) bench.RunOptions {
	if d == "off" {
		ro.Store.Analytics = nil
		return ro
	}
	c := analytics.DefaultConfig()
	ro.Store.Analytics = &c
	return ro
}
