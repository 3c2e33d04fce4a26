package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"tapvault/dataplane"
)

// Capture through the kernel (AF_PACKET, TPACKET_V3) for endpoints where
// DPDK cannot own the NIC: cloud VMs. The workers sleep in poll(2) while
// nothing arrives, and the rest of the pipeline (decode, analytics, blocks,
// index) is the one DPDK capture feeds.

// ifaceOptions are capture's --iface flags.
type ifaceOptions struct {
	iface        string
	workers      int
	snaplen      int
	filter       string
	metadataOnly bool
	ring         string
	noPromisc    bool
}

// Endpoint defaults, applied with --iface to the store flags the user did
// not set. They bound the resident memory of a small sensor (issue 16: at
// most 256 MiB; docs/PERFORMANCE.md, "Issue 16: endpoint capture", has the
// measurement): the DPDK defaults size the queues for 10 Gbit/s.
var endpointDefaultValues = []struct{ flag, value string }{
	{"blocks", "8"},            // block buffers per worker (DPDK: 32): 8 MiB
	{"index-queue", "8MiB"},    // DPDK: 32 MiB
	{"index-memtable", "4MiB"}, // DPDK: 16 MiB; Badger keeps several
	{"record-queue", "8MiB"},   // DPDK: 32 MiB
	{"compressors", "1"},       // one zstd encoder's window and tables
	{"max-flows", "65536"},     // flow table per worker (DPDK: 262144)
	{"max-conns", "65536"},     // analysed connections per worker
	{"frag-max-bytes", "1MiB"}, // IP reassembly per worker (default 4 MiB)
	{"max-parsers", "2048"},    // parsers decoding at once per worker (8192)
	{"segment-size", "256MiB"}, // smaller files for small disks
	// One zstd frame per block instead of 64 KiB flow sub-frames: 5.2-5.4
	// against 6.0-6.4 % of a core at 10k pkt/s of app traffic (2 runs
	// each); a flow query then decompresses its whole block, which at an
	// endpoint's rates is one small block a second.
	{"subframe-size", "0"},
	{"stop-timeout", "30s"}, // well inside the unit's TimeoutStopSec
	// The Go soft memory limit, below the endpoint unit's MemoryHigh. The
	// bounds above add up to ~600 MiB in the worst case (auto would set
	// 90 % of that) while the measured peak RSS is near 110 MiB: past
	// 200 MiB the GC works harder rather than the cgroup reclaiming.
	{"memory-limit", "200MiB"},
}

func (o *ifaceOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.iface, "iface", "", "capture from this network interface through the kernel (AF_PACKET TPACKET_V3, no DPDK, no polling); excludes --eal")
	f.IntVar(&o.workers, "workers", 1, "with --iface: sockets in one PACKET_FANOUT_HASH group, each feeding its own worker (flows stay on one worker)")
	f.IntVar(&o.snaplen, "snaplen", 0, "with --iface: keep at most this many bytes of each packet, cut in the kernel; the original length is kept (0: whole packets)")
	f.StringVar(&o.filter, "filter", "", "with --iface: tcpdump filter expression, compiled by tcpdump into classic BPF and run in the kernel (what it rejects costs nothing)")
	f.BoolVar(&o.metadataOnly, "metadata-only", false, "with --iface: analyse whole packets (exchange and connection records) but store them cut to their headers (L2 to L4, no payload)")
	f.StringVar(&o.ring, "ring", "16MiB", "with --iface: kernel ring per worker, in 512 KiB blocks (resident memory; a larger ring absorbs longer bursts)")
	f.BoolVar(&o.noPromisc, "no-promisc", false, "with --iface: do not put the interface in promiscuous mode (see only the host's own traffic)")
}

// set reports whether capture is from an interface.
func (o *ifaceOptions) set() bool { return o.iface != "" }

// check refuses flags that belong to the other kind of capture.
func (o *ifaceOptions) check(cmd *cobra.Command, eal string) error {
	f := cmd.Flags()
	if !o.set() {
		for _, n := range []string{"workers", "snaplen", "filter", "metadata-only", "ring", "no-promisc"} {
			if f.Changed(n) {
				return fmt.Errorf("--%s applies to kernel capture: give --iface too", n)
			}
		}
		return nil
	}
	if eal != "" {
		return errors.New("--iface and --eal exclude each other: --iface captures through the kernel, --eal through DPDK (give one)")
	}
	for _, n := range []string{"port", "queues", "mbufs", "rx-desc", "lossless"} {
		if f.Changed(n) {
			return fmt.Errorf("--%s is a DPDK option; with --iface use --workers, --ring, --snaplen", n)
		}
	}
	if o.workers < 1 || o.workers > 64 {
		return fmt.Errorf("--workers %d: want 1 to 64", o.workers)
	}
	if o.snaplen < 0 {
		return fmt.Errorf("--snaplen %d: must not be negative", o.snaplen)
	}
	if o.snaplen > 0 && o.snaplen < 64 {
		// A shorter cut loses the TCP header behind options or tunnels,
		// and with it the flow: say so rather than store packets no
		// analysis can use.
		return fmt.Errorf("--snaplen %d: at least 64 bytes (the headers); use --metadata-only to drop payloads", o.snaplen)
	}
	if _, err := o.ringBlocks(); err != nil {
		return err
	}
	return nil
}

// ringBlocks is --ring in blocks of dataplane.DefaultAFBlockSize.
func (o *ifaceOptions) ringBlocks() (int, error) {
	n, err := parseSize(o.ring)
	if err != nil {
		return 0, fmt.Errorf("--ring: %w", err)
	}
	if n < 1<<20 || n%(1<<20) != 0 {
		return 0, fmt.Errorf("--ring %s: want a whole number of MiB, at least 1MiB", o.ring)
	}
	return int(n / dataplane.DefaultAFBlockSize), nil
}

// endpointDefaults replaces the defaults of the store flags with the
// endpoint's. It runs before the config file is read: a flag's Value is
// set without marking it Changed, so the config file and the command line
// still override it.
func endpointDefaults(cmd *cobra.Command) {
	f := cmd.Flags()
	for _, d := range endpointDefaultValues {
		fl := f.Lookup(d.flag)
		if fl == nil || f.Changed(d.flag) {
			continue
		}
		if err := fl.Value.Set(d.value); err != nil {
			panic(fmt.Sprintf("BUG: endpoint default --%s %s: %v", d.flag, d.value, err))
		}
		fl.DefValue = d.value
	}
}

// endpointProcs sets GOMAXPROCS to the workers, unless the environment
// sets it, and returns what it is. An endpoint must not take the host's
// cores: with one P per worker the compressor, the analytics' record
// stage and the index run in the gaps the workers leave, and a wake-up
// does not set a second thread spinning for work. Measured at 10k pkt/s of
// app traffic on a 2-vCPU VM with the API off, 3 runs interleaved: 6.1-6.4
// % of a core against 6.8-8.4 % with GOMAXPROCS=2; idle 0.7-1.0 % against
// 0.9-1.2 %. A query adds a P while it runs (query.RunLowPriority).
// GOMAXPROCS=N in the environment gives a busier sensor more.
func endpointProcs(workers int) int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	n := min(max(workers, 1), runtime.NumCPU())
	runtime.GOMAXPROCS(n)
	return n
}

// runIfaceCapture is runCapture for --iface: the sockets stand where the
// DPDK port stands, and the rest (store, API, metrics, signals, summary)
// is the same.
func runIfaceCapture(cmd *cobra.Command, so storeOptions, o ifaceOptions, statsInt time.Duration, apiOpts apiOptions) error {
	blocks, err := o.ringBlocks()
	if err != nil {
		return err
	}
	cfg := dataplane.AFPacketConfig{Iface: o.iface, Snaplen: o.snaplen, Blocks: blocks, NoPromisc: o.noPromisc}
	if o.filter != "" {
		lt, err := dataplane.IfaceLinkType(o.iface)
		if err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		if cfg.Filter, err = dataplane.CompileFilter(o.filter, lt, o.snaplen); err != nil {
			return fmt.Errorf("capture: --filter: %w", err)
		}
	}
	so.headersOnly = o.metadataOnly
	socks, err := dataplane.OpenAFPacketGroup(cfg, o.workers)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	// The pipeline closes each source once its worker has stopped; until
	// Run starts, an error path closes them here.
	started := false
	defer func() {
		if !started {
			for _, s := range socks {
				s.Close()
			}
		}
	}()
	procs := endpointProcs(o.workers)
	slog.Info("capturing through the kernel", "iface", o.iface, "workers", o.workers, "ring_per_worker", o.ring,
		"snaplen", o.snaplen, "filter", o.filter != "", "metadata_only", o.metadataOnly, "promisc", !o.noPromisc,
		"gomaxprocs", procs)

	if so.retainBytes == "" && so.keepFree == 0 && so.retainAge == 0 {
		slog.Warn("no retention limit (--keep-free, --retain-bytes, --retain-age): the store grows until the filesystem is nearly full, then new packets are dropped (counted) instead of replacing the oldest")
	}
	st, err := openStore(so, len(socks), nil, false)
	if err != nil {
		return err
	}
	defer st.close()

	// The sockets' kernel counters stand in for the NIC's: tp_drops (the
	// ring was full) is counted where DPDK's imissed is.
	stats := startPortPoller("socket statistics", statsInt, func() (dataplane.PortStats, error) {
		var ps dataplane.PortStats
		for _, s := range socks {
			a, err := s.Stats()
			if err != nil {
				return ps, err
			}
			ps.IPackets += a.Packets
			ps.IMissed += a.Drops
			ps.IBytes += a.Bytes
		}
		return ps, nil
	})

	// The API and the signals, as for DPDK capture (runCapture).
	apiCtx, apiStop := context.WithCancel(context.Background())
	defer apiStop()
	srv, closeAPI, err := startCaptureAPI(apiCtx, apiOpts, so.data, st, stats.get)
	if err != nil {
		return err
	}
	defer closeAPI()
	defer watchCaptureSignals(st, srv, apiOpts.reload, so.stopTimeout)()

	if apiOpts.user != "" {
		// The sockets are open: nothing further needs root.
		if err := dropPrivileges(apiOpts.user, so.data); err != nil {
			return fmt.Errorf("capture: %w", err)
		}
	}
	sources := make([]dataplane.Source, len(socks))
	for i, s := range socks {
		sources[i] = s
	}
	stopProgress := startProgress(cmd.ErrOrStderr(), func() string {
		ps, read := stats.get()
		var port *dataplane.PortStats
		if read {
			port = &ps
		}
		return progressLine("capture", st.p.Live(), port)
	})
	started = true
	rep, err := st.p.Run(sources)
	stopProgress()
	stats.stop()
	if ferr := st.finish(); ferr != nil && err == nil {
		err = ferr
	}
	ps, _ := stats.get()
	printReport(cmd.OutOrStdout(), rep, &ps)
	return err
}
