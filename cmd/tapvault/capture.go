package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"tapvault/analytics"
	"tapvault/api"
	"tapvault/dataplane"
	"tapvault/pipeline"
)

// captureConfig is the capture configuration file (YAML). Every key has the
// same meaning and default as the flag of the same name; flags given on the
// command line override the file.
type captureConfig struct {
	EAL          string        `yaml:"eal"`
	Data         string        `yaml:"data"`
	Port         string        `yaml:"port"`
	Queues       int           `yaml:"queues"`
	Mbufs        int           `yaml:"mbufs"`
	RxDesc       int           `yaml:"rx_desc"`
	BlockSize    string        `yaml:"block_size"`
	Blocks       int           `yaml:"blocks"`
	SealAfter    time.Duration `yaml:"seal_after"`
	SegmentSize  string        `yaml:"segment_size"`
	SegmentAge   time.Duration `yaml:"segment_age"`
	Compressors  int           `yaml:"compressors"`
	NoIndex      bool          `yaml:"no_index"`
	IndexReserve string        `yaml:"index_reserve"`
	RetainBytes  string        `yaml:"retain_bytes"`
	RetainAge    time.Duration `yaml:"retain_age"`
	KeepFree     float64       `yaml:"keep_free"`
	Lossless     string        `yaml:"lossless"`
	Listen       *string       `yaml:"listen"` // pointer: "" (API off) differs from absent
	TokenFile    string        `yaml:"token_file"`
	User         string        `yaml:"user"`
	TLSCert      string        `yaml:"tls_cert"`
	TLSKey       string        `yaml:"tls_key"`
	StatsEvery   time.Duration `yaml:"stats_interval"`
	MaxFlows     int           `yaml:"max_flows"`
	IndexQueue   string        `yaml:"index_queue"`
	IndexMemTab  string        `yaml:"index_memtable"`
	RecordQueue  string        `yaml:"record_queue"`
	MemoryLimit  string        `yaml:"memory_limit"`
	StopTimeout  time.Duration `yaml:"stop_timeout"`
	WriteIO      string        `yaml:"write_io"`
	SegmentDirs  []string      `yaml:"segment_dirs"`
	SubFrame     string        `yaml:"subframe_size"`
	CompressWait *bool         `yaml:"compress_wait"`
	// Kernel capture (--iface and its flags), probes and the fleet: the
	// endpoint unit's and a sensor's settings in one file.
	Iface *struct {
		Name         string `yaml:"name"`
		Workers      int    `yaml:"workers"`
		Snaplen      int    `yaml:"snaplen"`
		Filter       string `yaml:"filter"`
		MetadataOnly bool   `yaml:"metadata_only"`
		Ring         string `yaml:"ring"`
		NoPromisc    bool   `yaml:"no_promisc"`
	} `yaml:"iface"`
	Probes string `yaml:"probes"`
	Fleet  *struct {
		ClickHouse string `yaml:"clickhouse"`
		Database   string `yaml:"database"`
		Sensor     string `yaml:"sensor"`
		Batch      int    `yaml:"batch"`
		NoFlows    bool   `yaml:"no_flows"`
		Listen     string `yaml:"listen"`
		Cert       string `yaml:"cert"`
		Key        string `yaml:"key"`
		CA         string `yaml:"ca"`
		CRL        string `yaml:"crl"`
	} `yaml:"fleet"`
	Analytics *struct {
		Enabled      *bool             `yaml:"enabled"`
		Decoders     []string          `yaml:"decoders"`
		Ports        map[uint16]string `yaml:"ports"`
		MaxStatement int               `yaml:"max_statement"`
		MaxConns     int               `yaml:"max_conns"`
		MaxParsers   int               `yaml:"max_parsers"`
		SlowNetwork  time.Duration     `yaml:"slow_network"`
		SlowServer   time.Duration     `yaml:"slow_server"`
		LateAck      time.Duration     `yaml:"late_ack"`
		FragMaxDgram *int              `yaml:"frag_max_datagrams"`
		FragMaxBytes string            `yaml:"frag_max_bytes"`
		FragTimeout  time.Duration     `yaml:"frag_timeout"`
	} `yaml:"analytics"`
}

// stopGrace is how long past --stop-timeout a capture still waits for its
// stop before it exits: the default 60 s plus it is well inside systemd's
// TimeoutStopSec (120 s in scripts/tapvault.service).
const stopGrace = 15 * time.Second

func loadCaptureConfig(path string) (*captureConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var c captureConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // an unknown or misspelt key is an error naming it
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

func newCaptureCmd() *cobra.Command {
	var (
		so       storeOptions
		eal      string
		port     string
		queues   int
		mbufs    int
		rxDesc   int
		config   string
		statsInt time.Duration
		lossless string
		listen   string
		fl       fleetListen
		tokenF   string
		tlsCert  string
		tlsKey   string
		runAs    string
		ship     fleetShipOptions // --fleet-clickhouse (fleet.go)
		probes   string           // --probes (probe.go)
		ifo      ifaceOptions     // --iface: kernel capture (capture_iface.go)
	)
	cmd := &cobra.Command{
		Use:   "capture --eal \"EAL ARGS\" --data DIR",
		Short: "Capture from a DPDK port into a store",
		Long: `Capture receives packets from one DPDK port with one worker per RX queue,
each pinned to its own lcore, and stores them compressed in DIR.

Any DPDK port works: a NIC bound to vfio-pci, net_af_packet (a kernel
interface), net_pcap (replay a file; capture stops at its end), net_ring or
net_null. Examples:

  tapvault capture --eal "-l 0-1 --no-pci --vdev=net_pcap0,rx_pcap=trace.pcap" --data store
  tapvault capture --eal "-l 0-1 --vdev=net_af_packet0,iface=veth1" --data store

Without DPDK (a cloud VM, an endpoint), capture through the kernel instead:

  tapvault capture --iface eth0 --data store [--filter EXPR --snaplen N --metadata-only]

Without free hugepages tapvault adds --no-huge itself. It always uses a
process-unique --file-prefix unless one is given, so tests, benchmarks and a
running capture do not collide. SIGINT or SIGTERM drain every stage, flush,
and print the summary.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ifo.set() {
				endpointDefaults(cmd) // before the config file, which overrides them
			}
			if config != "" {
				c, err := loadCaptureConfig(config)
				if err != nil {
					return err
				}
				f := cmd.Flags()
				set := func(name string, apply func()) {
					if !f.Changed(name) {
						apply()
					}
				}
				if !ifo.set() && c.Iface != nil && c.Iface.Name != "" && !f.Changed("iface") {
					// Kernel capture from the file: the endpoint's defaults,
					// before the file's other keys override them.
					ifo.iface = c.Iface.Name
					endpointDefaults(cmd)
				}
				set("eal", func() { eal = orStr(c.EAL, eal) })
				set("data", func() { so.data = orStr(c.Data, so.data) })
				set("port", func() { port = orStr(c.Port, port) })
				set("queues", func() { queues = orInt(c.Queues, queues) })
				set("mbufs", func() { mbufs = orInt(c.Mbufs, mbufs) })
				set("rx-desc", func() { rxDesc = orInt(c.RxDesc, rxDesc) })
				set("block-size", func() { so.blockSize = orStr(c.BlockSize, so.blockSize) })
				set("blocks", func() { so.blocks = orInt(c.Blocks, so.blocks) })
				set("seal-after", func() { so.sealAfter = orDur(c.SealAfter, so.sealAfter) })
				set("segment-size", func() { so.segmentSize = orStr(c.SegmentSize, so.segmentSize) })
				set("segment-age", func() { so.segmentAge = orDur(c.SegmentAge, so.segmentAge) })
				set("compressors", func() { so.compressors = orInt(c.Compressors, so.compressors) })
				set("no-index", func() { so.noIndex = so.noIndex || c.NoIndex })
				set("index-reserve", func() { so.indexReserve = orStr(c.IndexReserve, so.indexReserve) })
				set("retain-bytes", func() { so.retainBytes = orStr(c.RetainBytes, so.retainBytes) })
				set("retain-age", func() { so.retainAge = orDur(c.RetainAge, so.retainAge) })
				set("keep-free", func() {
					if c.KeepFree != 0 {
						so.keepFree = c.KeepFree
					}
				})
				set("lossless", func() { lossless = orStr(c.Lossless, lossless) })
				set("token-file", func() { tokenF = orStr(c.TokenFile, tokenF) })
				set("tls-cert", func() { tlsCert = orStr(c.TLSCert, tlsCert) })
				set("user", func() { runAs = orStr(c.User, runAs) })
				set("tls-key", func() { tlsKey = orStr(c.TLSKey, tlsKey) })
				set("stats-interval", func() { statsInt = orDur(c.StatsEvery, statsInt) })
				set("max-flows", func() { so.maxFlows = orInt(c.MaxFlows, so.maxFlows) })
				set("index-queue", func() { so.indexQueue = orStr(c.IndexQueue, so.indexQueue) })
				set("index-memtable", func() { so.indexMemTab = orStr(c.IndexMemTab, so.indexMemTab) })
				set("record-queue", func() { so.recordQueue = orStr(c.RecordQueue, so.recordQueue) })
				set("memory-limit", func() { so.memoryLimit = orStr(c.MemoryLimit, so.memoryLimit) })
				set("stop-timeout", func() { so.stopTimeout = orDur(c.StopTimeout, so.stopTimeout) })
				set("write-io", func() { so.writeIO = orStr(c.WriteIO, so.writeIO) })
				set("segment-dir", func() {
					if len(c.SegmentDirs) > 0 {
						so.segmentDirs = c.SegmentDirs
					}
				})
				set("subframe-size", func() { so.subFrame = orStr(c.SubFrame, so.subFrame) })
				if c.CompressWait != nil {
					set("compress-wait", func() { so.compressWait = *c.CompressWait })
				}
				if c.Listen != nil {
					set("listen", func() { listen = *c.Listen })
				}
				if i := c.Iface; i != nil {
					set("iface", func() { ifo.iface = orStr(i.Name, ifo.iface) })
					set("workers", func() { ifo.workers = orInt(i.Workers, ifo.workers) })
					set("snaplen", func() { ifo.snaplen = orInt(i.Snaplen, ifo.snaplen) })
					set("filter", func() { ifo.filter = orStr(i.Filter, ifo.filter) })
					set("metadata-only", func() { ifo.metadataOnly = ifo.metadataOnly || i.MetadataOnly })
					set("ring", func() { ifo.ring = orStr(i.Ring, ifo.ring) })
					set("no-promisc", func() { ifo.noPromisc = ifo.noPromisc || i.NoPromisc })
				}
				set("probes", func() { probes = orStr(c.Probes, probes) })
				if fc := c.Fleet; fc != nil {
					set("fleet-clickhouse", func() { ship.url = orStr(fc.ClickHouse, ship.url) })
					set("fleet-database", func() { ship.db = orStr(fc.Database, ship.db) })
					set("sensor", func() { ship.sensor = orStr(fc.Sensor, ship.sensor) })
					set("fleet-batch", func() { ship.batch = orInt(fc.Batch, ship.batch) })
					set("fleet-no-flows", func() { ship.noFlows = ship.noFlows || fc.NoFlows })
					set("fleet-listen", func() { fl.addr = orStr(fc.Listen, fl.addr) })
					set("fleet-cert", func() { fl.cert = orStr(fc.Cert, fl.cert) })
					set("fleet-key", func() { fl.key = orStr(fc.Key, fl.key) })
					set("fleet-ca", func() { fl.ca = orStr(fc.CA, fl.ca) })
					set("fleet-crl", func() { fl.crl = orStr(fc.CRL, fl.crl) })
				}
				if a := c.Analytics; a != nil {
					if a.Enabled != nil {
						set("no-analytics", func() { so.noAnalytics = !*a.Enabled })
					}
					set("decoders", func() { so.decoders = a.Decoders })
					set("max-statement", func() { so.maxStatement = orInt(a.MaxStatement, so.maxStatement) })
					set("max-conns", func() { so.maxConns = orInt(a.MaxConns, so.maxConns) })
					set("max-parsers", func() { so.maxParsers = orInt(a.MaxParsers, so.maxParsers) })
					set("slow-network", func() { so.slowNetwork = orDur(a.SlowNetwork, so.slowNetwork) })
					set("slow-server", func() { so.slowServer = orDur(a.SlowServer, so.slowServer) })
					set("late-ack", func() { so.lateAck = orDur(a.LateAck, so.lateAck) })
					if a.FragMaxDgram != nil {
						set("frag-max-datagrams", func() { so.fragDatagrams = *a.FragMaxDgram })
					}
					set("frag-max-bytes", func() { so.fragBytes = orStr(a.FragMaxBytes, so.fragBytes) })
					set("frag-timeout", func() { so.fragTimeout = orDur(a.FragTimeout, so.fragTimeout) })
					if !f.Changed("decoder-port") {
						for port, name := range a.Ports {
							so.decoderPorts = append(so.decoderPorts, fmt.Sprintf("%d=%s", port, name))
						}
					}
				}
			}
			if err := ifo.check(cmd, eal); err != nil {
				return err
			}
			if !dataplane.Available && !ifo.set() {
				return fmt.Errorf("capture: %w", dataplane.ErrNoDPDK)
			}
			if eal == "" && !ifo.set() {
				return errors.New("--eal (DPDK) or --iface (kernel capture) is required (e.g. --eal \"-l 0-1 --no-pci --vdev=net_pcap0,rx_pcap=trace.pcap\" or --iface eth0)")
			}
			if err := so.check(); err != nil {
				return err
			}
			stopShip, err := startCaptureShipping(ship, so.data)
			if err != nil {
				return err
			}
			defer stopShip()
			stopProbes, err := startCaptureProbes(probes, ship.sensor)
			if err != nil {
				return err
			}
			defer stopProbes()
			defer startClockLog(so.data)()
			if queues < 1 {
				return fmt.Errorf("--queues %d: must be at least 1", queues)
			}
			if lossless != "auto" && lossless != "true" && lossless != "false" {
				return fmt.Errorf("--lossless %q: want auto, true or false", lossless)
			}
			token, err := loadToken(tokenF, os.Getenv(tokenEnv))
			if err != nil {
				return err
			}
			apiOpts := apiOptions{listen: listen, token: token, tlsCert: tlsCert, tlsKey: tlsKey, user: runAs, fleet: fl}
			// SIGHUP re-reads what can change on a running capture: the
			// retention limits, the API token and the decoders (list, port
			// map, limits). Flags given on the command line keep
			// precedence, as at start.
			apiOpts.reload = func() (reloaded, error) {
				r := storeOptions{retainBytes: so.retainBytes, retainAge: so.retainAge, keepFree: so.keepFree, retainEvery: so.retainEvery,
					decoders: so.decoders, decoderPorts: so.decoderPorts, maxStatement: so.maxStatement, maxConns: so.maxConns, maxParsers: so.maxParsers,
					slowNetwork: so.slowNetwork, slowServer: so.slowServer, lateAck: so.lateAck,
					fragDatagrams: so.fragDatagrams, fragBytes: so.fragBytes, fragTimeout: so.fragTimeout}
				tf := tokenF
				if config != "" {
					c, err := loadCaptureConfig(config)
					if err != nil {
						return reloaded{}, err
					}
					f := cmd.Flags()
					if !f.Changed("retain-bytes") {
						r.retainBytes = c.RetainBytes
					}
					if !f.Changed("retain-age") {
						r.retainAge = c.RetainAge
					}
					if !f.Changed("keep-free") {
						r.keepFree = c.KeepFree
					}
					if !f.Changed("token-file") {
						tf = c.TokenFile
					}
					if a := c.Analytics; a != nil {
						if !f.Changed("decoders") {
							r.decoders = a.Decoders
						}
						if !f.Changed("max-statement") {
							r.maxStatement = a.MaxStatement
						}
						if !f.Changed("decoder-port") {
							r.decoderPorts = nil
							for port, name := range a.Ports {
								r.decoderPorts = append(r.decoderPorts, fmt.Sprintf("%d=%s", port, name))
							}
						}
					}
				}
				var out reloaded
				var err error
				if out.ret, err = r.retention(); err != nil {
					return out, err
				}
				if !so.noAnalytics {
					if out.analytics, err = r.analyticsConfig(); err != nil {
						return out, err
					}
				}
				out.token, err = loadToken(tf, os.Getenv(tokenEnv))
				return out, err
			}
			if ifo.set() {
				return runIfaceCapture(cmd, so, ifo, statsInt, apiOpts)
			}
			return runCapture(cmd, so, eal, port, queues, mbufs, rxDesc, statsInt, lossless, apiOpts)
		},
	}
	so.addFlags(cmd)
	ifo.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&eal, "eal", "", "DPDK EAL arguments, as one string")
	f.StringVar(&port, "port", "", "DPDK device to capture from (default: the only --vdev or -a device)")
	f.IntVar(&queues, "queues", 1, "RX queues, one worker (and lcore) each; RSS spreads flows symmetrically")
	f.IntVar(&mbufs, "mbufs", 0, "mbufs in the port's mempool (default: the dataplane's, sized per queue)")
	f.IntVar(&rxDesc, "rx-desc", 0, "RX descriptors per queue (default: the dataplane's)")
	f.StringVar(&config, "config", "", "YAML configuration file; flags override it")
	f.DurationVar(&statsInt, "stats-interval", time.Second, "how often port statistics are read")
	f.StringVar(&listen, "listen", api.DefaultAPIAddr, "HTTP API address while capturing (\"\" turns it off); off loopback a token is required")
	f.StringVar(&tokenF, "token-file", "", "file holding the API bearer token (else $"+tokenEnv+")")
	f.StringVar(&runAs, "user", "", "once DPDK, the port, the store and the API are set up, give the store to this user and run as it (needs root)")
	f.StringVar(&tlsCert, "tls-cert", "", "serve the API over TLS with this PEM certificate (with --tls-key)")
	f.StringVar(&tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	fl.flags(f)
	ship.flags(f, "fleet-clickhouse")
	f.StringVar(&probes, "probes", "", "run the probes of this file (docs/probes.md) while capturing, their exchanges tagged with probe and location; with the fleet configuration, those of the location that lists --sensor")
	f.StringVar(&lossless, "lossless", "auto", "wait for buffers instead of dropping: auto = only for net_pcap replays, whose PMD reads the file only when polled, so waiting loses nothing; never use on a live port")
	return cmd
}

func orStr(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
func orInt(v, def int) int {
	if v != 0 {
		return v
	}
	return def
}
func orDur(v, def time.Duration) time.Duration {
	if v != 0 {
		return v
	}
	return def
}

// defaultFilePrefix and the pid make the EAL --file-prefix when none is
// given.
const defaultFilePrefix = "tapvault-"

// ealArgs splits the --eal string and adds what a safe run needs: --no-huge
// when no hugepages are free, and a process-unique --file-prefix.
func ealArgs(s string) []string {
	args := strings.Fields(s)
	has := func(name string) bool {
		for _, a := range args {
			if a == name || strings.HasPrefix(a, name+"=") {
				return true
			}
		}
		return false
	}
	if !has("--no-huge") && !hugepagesFree() {
		slog.Info("no free hugepages: running EAL with --no-huge (scripts/setup.sh reserves them when root)")
		args = append(args, "--no-huge")
	}
	if has("--no-huge") && !has("-m") && !has("--socket-mem") {
		// EAL's default without hugepages is 64 MiB: too little for a
		// port's mempool beside a replay's preloaded file.
		args = append(args, "-m", "1024")
	}
	if has("--no-huge") && !has("--no-shconf") {
		args = append(args, "--no-shconf")
	}
	if !has("--file-prefix") {
		// A prefix of its own: no secondary process can attach, so the
		// hugepage files need not outlive start-up (EAL would keep them,
		// and their hugepages, after exit).
		args = append(args, fmt.Sprintf("--file-prefix=%s%d", defaultFilePrefix, os.Getpid()))
		if !has("--no-huge") && !has("--huge-unlink") && !has("--in-memory") {
			args = append(args, "--huge-unlink")
		}
	}
	return args
}

func hugepagesFree() bool {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return false
	}
	free := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "HugePages_Free:") {
			fmt.Sscan(strings.TrimPrefix(l, "HugePages_Free:"), &free)
		}
	}
	if free == 0 {
		return false
	}
	m, _ := os.ReadFile("/proc/mounts")
	return bytes.Contains(m, []byte(" hugetlbfs "))
}

// devices lists the device names the EAL arguments create or allow.
func devices(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		var v string
		switch {
		case strings.HasPrefix(a, "--vdev="):
			v = strings.TrimPrefix(a, "--vdev=")
		case strings.HasPrefix(a, "--allow="):
			v = strings.TrimPrefix(a, "--allow=")
		case (a == "--vdev" || a == "-a" || a == "--allow") && i+1 < len(args):
			i++
			v = args[i]
		case strings.HasPrefix(a, "-a") && len(a) > 2:
			v = a[2:]
		default:
			continue
		}
		out = append(out, strings.SplitN(v, ",", 2)[0])
	}
	return out
}

// apiOptions configure the HTTP API a capture serves, and what a SIGHUP
// reloads.
type apiOptions struct {
	listen, token   string
	tlsCert, tlsKey string
	user            string // drop to this user once set up
	fleet           fleetListen
	reload          func() (reloaded, error)
}

// reloaded is what a SIGHUP re-read.
type reloaded struct {
	ret       pipeline.RetentionOptions
	token     string
	analytics *analytics.Config // nil: analytics are off
}

func runCapture(cmd *cobra.Command, so storeOptions, ealStr, port string, queues, mbufs, rxDesc int, statsInt time.Duration, lossless string, apiOpts apiOptions) error {
	args := ealArgs(ealStr)
	devs := devices(args)
	if port == "" && len(devs) != 1 {
		return fmt.Errorf("--port is required when the EAL arguments name %d devices (%s)", len(devs), strings.Join(devs, ", "))
	}
	if port == "" {
		port = devs[0]
	}
	// What EAL would only log (a missing rx_pcap file, an unknown
	// interface) is checked first, so the error says it.
	if err := dataplane.CheckEALArgs(args); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	// EAL's runtime directory (tapvault-PID under /var/run/dpdk) goes at
	// exit, on error exits too, and those of killed runs at the next start.
	if removed, err := dataplane.RemoveStaleRuntimeDirs(defaultFilePrefix); err != nil {
		slog.Warn("stale DPDK runtime directories", "err", err)
	} else if len(removed) > 0 {
		slog.Info("removed DPDK runtime directories of runs that are gone", "dirs", removed)
	}
	if removed, err := dataplane.RemoveStaleHugepageFiles(defaultFilePrefix); err != nil {
		slog.Warn("stale DPDK hugepage files", "err", err)
	} else if len(removed) > 0 {
		slog.Info("removed DPDK hugepage files of runs that are gone", "files", removed)
	}
	defer func() {
		if err := dataplane.CleanupEAL(); err != nil {
			slog.Warn("DPDK cleanup", "err", err)
		}
	}()
	slog.Info("initialising DPDK EAL", "args", strings.Join(args, " "))
	if err := dataplane.InitEAL(args); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	lcores := dataplane.WorkerLcores()
	if len(lcores) == 0 {
		slog.Warn("EAL gave no worker lcores; the worker shares the main lcore's CPU", "lcore", dataplane.MainLcore())
		lcores = []int{dataplane.MainLcore()}
	}
	if len(lcores) < queues {
		return fmt.Errorf("capture: %d queues need %d worker lcores, EAL gave %d (%v): widen -l", queues, queues, len(lcores), lcores)
	}
	// Each busy-polling worker holds a Go P for as long as it runs; with
	// isolated cores the start-up affinity (and so GOMAXPROCS) can be
	// smaller than the workers plus what the storage path needs.
	if need := queues + 2; runtime.GOMAXPROCS(0) < need {
		slog.Info("raising GOMAXPROCS so the pinned workers leave Ps for compression and writing", "from", runtime.GOMAXPROCS(0), "to", need)
		runtime.GOMAXPROCS(need)
	}
	p, err := dataplane.OpenPort(dataplane.PortConfig{Name: port, RxQueues: queues, Mbufs: mbufs, RxDesc: rxDesc, Promisc: true})
	if err != nil {
		return fmt.Errorf("capture: open port %s: %w", port, err)
	}
	defer p.Stop()
	slog.Info("port started", "port", port, "driver", p.Driver(), "queues", queues, "lcores", lcores[:queues])

	if so.retainBytes == "" && so.keepFree == 0 && so.retainAge == 0 {
		if r, _ := so.reserve(); r < 0 && !so.noIndex {
			slog.Warn("no retention limit (--keep-free, --retain-bytes, --retain-age) and no --index-reserve: the store grows until the filesystem is full; the writer survives a full disk, but the index (Badger, memory-mapped) may not")
		} else {
			slog.Warn("no retention limit (--keep-free, --retain-bytes, --retain-age): the store grows until the filesystem is nearly full, then new packets are dropped (counted) instead of replacing the oldest")
		}
	}
	wait := lossless == "true" || (lossless == "auto" && p.Driver() == "net_pcap")
	if wait {
		slog.Info("lossless mode: workers wait for the writer instead of dropping", "driver", p.Driver())
	}
	st, err := openStore(so, queues, func(i int) error { return dataplane.PinThread(lcores[i]) }, wait)
	if err != nil {
		return err
	}
	defer st.close()

	// Port statistics are read periodically and kept; the last reading goes
	// into the summary.
	stats := startPortPoller("port statistics", statsInt, p.Stats)

	// The HTTP API reads committed blocks beside the capture.
	apiCtx, apiStop := context.WithCancel(context.Background())
	defer apiStop()
	srv, closeAPI, err := startCaptureAPI(apiCtx, apiOpts, so.data, st, stats.get)
	if err != nil {
		return err
	}
	defer closeAPI()
	defer watchCaptureSignals(st, srv, apiOpts.reload, so.stopTimeout)()

	if apiOpts.user != "" {
		// Everything that needs root is done; the workers have not
		// started, so every thread they lock is the new user's too.
		// EAL's runtime directory is root's: remove it while we can (a
		// prefix of our own has no secondary process to serve).
		if slices.Contains(args, fmt.Sprintf("--file-prefix=%s%d", defaultFilePrefix, os.Getpid())) {
			if err := dataplane.RemoveRuntimeDir(); err != nil {
				slog.Warn("DPDK runtime directory", "err", err)
			}
		}
		if err := dropPrivileges(apiOpts.user, so.data); err != nil {
			return fmt.Errorf("capture: %w", err)
		}
	}
	sources := make([]dataplane.Source, queues)
	for i := range sources {
		sources[i] = p.Source(i)
	}
	stopProgress := startProgress(cmd.ErrOrStderr(), func() string {
		ps, read := stats.get()
		var port *dataplane.PortStats
		if read {
			port = &ps
		}
		return progressLine("capture", st.p.Live(), port)
	})
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

// reloadCapture applies a SIGHUP: new retention limits and API token. A
// reload that fails changes nothing and says why; capture goes on.
func reloadCapture(st *store, srv *api.Server, reload func() (reloaded, error)) {
	if reload == nil {
		return
	}
	r, err := reload()
	if err != nil {
		slog.Error("SIGHUP: reload failed; nothing changed", "err", err)
		return
	}
	if srv != nil {
		if err := srv.SetToken(r.token); err != nil {
			slog.Error("SIGHUP: API token not changed", "err", err)
			return
		}
	}
	if err := st.p.SetRetention(r.ret); err != nil {
		slog.Error("SIGHUP: retention not changed", "err", err)
		return
	}
	decoders := "off"
	if r.analytics != nil {
		if err := st.p.SetAnalytics(*r.analytics); err != nil {
			slog.Error("SIGHUP: decoders not changed", "err", err)
			return
		}
		decoders = "all"
		if len(r.analytics.Enabled) > 0 {
			decoders = strings.Join(r.analytics.Enabled, ",")
		}
	}
	slog.Info("SIGHUP: reloaded", "retain_bytes", r.ret.MaxBytes, "keep_free_percent", r.ret.KeepFreePercent, "retain_age", r.ret.MaxAge,
		"api_token", r.token != "", "decoders", decoders, "decoder_ports", len(mapOrNil(r.analytics)))
}

func mapOrNil(c *analytics.Config) map[uint16]string {
	if c == nil {
		return nil
	}
	return c.PortMap
}
