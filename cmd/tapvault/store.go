package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"tapvault/analytics"
	"tapvault/pipeline"
	"tapvault/writer"
)

// storeOptions are the flags shared by everything that writes a store.
type storeOptions struct {
	data        string
	blockSize   string
	blocks      int
	sealAfter   time.Duration
	segmentSize string
	segmentAge  time.Duration
	compressors int
	noIndex     bool
	retainBytes string
	retainAge   time.Duration
	keepFree    float64
	retainEvery time.Duration

	indexReserve string
	noAnalytics  bool
	decoders     []string
	decoderPorts []string // PORT=NAME
	maxStatement int
	slowNetwork  time.Duration // analytics classes (0: the default)
	slowServer   time.Duration
	lateAck      time.Duration

	// How blocks are written (writer.Options).
	writeIO      string
	segmentDirs  []string
	subFrame     string
	compressWait bool
	headersOnly  bool // store packets cut to their headers (capture --metadata-only)

	// IP reassembly for the analytics (analytics.Config.Frag*).
	fragDatagrams int    // -1: the default; 0 turns reassembly off
	fragBytes     string // "": the default
	fragTimeout   time.Duration

	// Memory bounds (docs/config.md, "Memory").
	maxFlows    int
	maxConns    int
	maxParsers  int
	indexQueue  string
	indexMemTab string
	recordQueue string
	memoryLimit string
	stopTimeout time.Duration
}

func (o *storeOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "", "store directory (created if missing)")
	f.StringVar(&o.blockSize, "block-size", "1MiB", "payload size at which a block seals")
	f.IntVar(&o.blocks, "blocks", 0, "block buffers between workers and disk; bounds memory (default 32 per worker)")
	f.DurationVar(&o.sealAfter, "seal-after", time.Second, "seal a block after this long even if not full, so quiet links still commit")
	f.StringVar(&o.segmentSize, "segment-size", "1GiB", "rotate segment files at this size (< 4GiB)")
	f.DurationVar(&o.segmentAge, "segment-age", time.Hour, "rotate segment files at this age")
	f.IntVar(&o.compressors, "compressors", 0, "compression goroutines (default: the writer's)")
	f.StringVar(&o.retainBytes, "retain-bytes", "", "retention: keep the segment and message files under this size (e.g. 500GiB); the oldest whole segments (with their index entries) and message files go first")
	f.DurationVar(&o.retainAge, "retain-age", 0, "retention: drop segments and message files whose newest packet or record is older than this, relative to the newest one stored (e.g. 720h)")
	f.DurationVar(&o.retainEvery, "retention-every", 10*time.Second, "retention: how often the limits are checked")
	f.Float64Var(&o.keepFree, "keep-free", 0, "retention: keep this percentage of the store's filesystem free (e.g. 10)")
	f.StringArrayVar(&o.segmentDirs, "segment-dir", nil, "a directory for segment files, one per disk (repeatable): new segments go to them in turn, skipping one without room for a segment; the store records them (DATA/SEGMENT_DIRS) so queries, retention and verify find every segment (default DATA/segments; docs/format/segment.md)")
	f.StringVar(&o.writeIO, "write-io", "buffered", "how segments are written: buffered (through the page cache), direct (O_DIRECT), or auto (O_DIRECT where the filesystem takes it); buffered measured fastest here (docs/PERFORMANCE.md, issue 14)")
	f.StringVar(&o.subFrame, "subframe-size", "64KiB", "compressed blocks keep their packets in flow sub-frames of about this size, so a flow query decompresses only its flow's (docs/format/block.md); 0: one frame per block (smaller stores on compressible traffic, flow queries read whole blocks)")
	f.BoolVar(&o.compressWait, "compress-wait", false, "lossless sources wait for a compressor instead of storing a block raw when the compressors fall behind (import's default: a file has no packets to lose; a replay's rate would be the compressors')")
	f.BoolVar(&o.noIndex, "no-index", false, "do not maintain the index (queries then scan block headers; `tapvault reindex` builds it later)")
	f.StringVar(&o.indexReserve, "index-reserve", "32MiB", "keep this much of the filesystem free for the index (Badger cannot fail cleanly when full): the index pauses below it, and blocks are dropped (counted as disk-full drops) below 1.5 times it; 0 turns it off")
	f.BoolVar(&o.noAnalytics, "no-analytics", false, "do not decode application messages or measure latency in stream (tapvault reanalyze can do it later)")
	f.StringSliceVar(&o.decoders, "decoders", nil, "decoders to run, comma-separated (default all: "+strings.Join(decoderNames(), ",")+")")
	f.StringArrayVar(&o.decoderPorts, "decoder-port", nil, "PORT=NAME: decode this server port with decoder NAME, or PORT= to decode nothing there (repeatable)")
	f.IntVar(&o.maxStatement, "max-statement", 0, "truncate SQL statements and other free text in records to this many bytes (default 256)")
	f.DurationVar(&o.slowNetwork, "slow-network", 0, "an exchange is slow_net when the path's round trip (both legs) reaches this, or a message was retransmitted (default 20ms)")
	f.DurationVar(&o.slowServer, "slow-server", 0, "an exchange is slow_app when the server's own time reaches this (default 10ms)")
	f.DurationVar(&o.lateAck, "late-ack", 0, "an ACK later than the round trip by more than max(this, RTT/2) is not prompt (default 5ms)")
	f.IntVar(&o.fragDatagrams, "frag-max-datagrams", -1, "IP reassembly for the analytics: fragmented UDP datagrams held at once per worker, the oldest dropped beyond it, counted (default 1024; 0 turns reassembly off: a first fragment is analysed alone)")
	f.StringVar(&o.fragBytes, "frag-max-bytes", "", "IP reassembly: fragment bytes held per worker, the oldest datagram dropped beyond it, counted (default 4MiB; at least 64KiB, the largest datagram)")
	f.DurationVar(&o.fragTimeout, "frag-timeout", 0, "IP reassembly: a datagram not whole this long (packet time) after its first fragment is dropped, counted (default 30s)")
	f.IntVar(&o.maxFlows, "max-flows", 0, "flows tracked per worker; packets of further new flows are stored but not tracked, counted (default 262144)")
	f.IntVar(&o.maxConns, "max-conns", 0, "connections analysed per worker; further ones are counted, not analysed (default 262144)")
	f.IntVar(&o.maxParsers, "max-parsers", 0, "connections decoded at once per worker, bounding the parsers' buffers in total; further ones are timed, not decoded, counted (default 8192)")
	f.StringVar(&o.indexQueue, "index-queue", "32MiB", "memory for committed blocks waiting for the index; blocks beyond it are indexed later from the segments (holes), counted")
	f.StringVar(&o.indexMemTab, "index-memtable", "16MiB", "size of the index's Badger memtables, which scales most of Badger's memory (several memtables, and table builders sized like them)")
	f.StringVar(&o.recordQueue, "record-queue", "32MiB", "memory for analytics records waiting for the message store; records beyond it are dropped, counted")
	f.StringVar(&o.memoryLimit, "memory-limit", "auto", "Go soft memory limit (runtime/debug.SetMemoryLimit): auto = 90% of the sum of the configured bounds, logged at start; 0 = none; $GOMEMLIMIT overrides it")
	f.DurationVar(&o.stopTimeout, "stop-timeout", 60*time.Second, "a stop (SIGTERM, SIGINT) ends within this; index work left then is done by the next start (keep it under systemd's TimeoutStopSec)")
}

func decoderNames() []string {
	var n []string
	for _, d := range analytics.Decoders() {
		n = append(n, d.Name)
	}
	return n
}

// analyticsConfig is the analytics part of the options: nil when off.
func (o *storeOptions) analyticsConfig() (*analytics.Config, error) {
	if o.noAnalytics {
		return nil, nil
	}
	c := analytics.DefaultConfig()
	c.Enabled = o.decoders
	if o.maxStatement != 0 {
		c.MaxStatement = o.maxStatement
	}
	if o.maxConns != 0 {
		c.MaxConns = o.maxConns
	}
	if o.maxParsers != 0 {
		c.MaxParsers = o.maxParsers
	}
	if o.slowNetwork != 0 {
		c.SlowNetwork = o.slowNetwork
	}
	if o.slowServer != 0 {
		c.SlowServer = o.slowServer
	}
	if o.lateAck != 0 {
		c.LateAck = o.lateAck
	}
	if o.fragDatagrams >= 0 {
		c.FragMaxDatagrams = o.fragDatagrams
	}
	if o.fragBytes != "" {
		n, err := parseSize(o.fragBytes)
		if err != nil || n > math.MaxInt32 {
			return nil, fmt.Errorf("--frag-max-bytes %q: want a size such as 4MiB", o.fragBytes)
		}
		c.FragMaxBytes = int(n)
	}
	if o.fragTimeout != 0 {
		c.FragTimeout = o.fragTimeout
	}
	for _, pm := range o.decoderPorts {
		ps, name, ok := strings.Cut(pm, "=")
		port, err := strconv.ParseUint(ps, 10, 16)
		if !ok || err != nil || port == 0 {
			return nil, fmt.Errorf("--decoder-port %q: want PORT=NAME with a port from 1 to 65535", pm)
		}
		if c.PortMap == nil {
			c.PortMap = map[uint16]string{}
		}
		c.PortMap[uint16(port)] = name
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("analytics: %w", err)
	}
	return &c, nil
}

func (o *storeOptions) check() error {
	if o.data == "" {
		return errors.New("--data DIR is required")
	}
	if _, err := parseSize(o.blockSize); err != nil {
		return fmt.Errorf("--block-size: %w", err)
	}
	n, err := parseSize(o.segmentSize)
	if err != nil {
		return fmt.Errorf("--segment-size: %w", err)
	}
	if n >= 4<<30 {
		return fmt.Errorf("--segment-size %s: must be below 4GiB (block offsets are 32-bit)", o.segmentSize)
	}
	if o.sealAfter <= 0 {
		return fmt.Errorf("--seal-after %s: must be positive", o.sealAfter)
	}
	if o.retainBytes != "" {
		if _, err := parseSize(o.retainBytes); err != nil {
			return fmt.Errorf("--retain-bytes: %w", err)
		}
	}
	if o.retainAge < 0 {
		return fmt.Errorf("--retain-age %s: must not be negative", o.retainAge)
	}
	if o.retainEvery <= 0 {
		return fmt.Errorf("--retention-every %s: must be positive", o.retainEvery)
	}
	if o.keepFree < 0 || o.keepFree >= 100 {
		return fmt.Errorf("--keep-free %g: want a percentage from 0 to below 100", o.keepFree)
	}
	if _, err := o.reserve(); err != nil {
		return err
	}
	if _, err := o.writerIO(); err != nil {
		return err
	}
	if _, err := o.subFrameSize(); err != nil {
		return err
	}
	if _, err := o.analyticsConfig(); err != nil {
		return err
	}
	if o.maxFlows < 0 {
		return fmt.Errorf("--max-flows %d: must not be negative", o.maxFlows)
	}
	for _, q := range []struct{ name, v string }{{"--index-queue", o.indexQueue}, {"--index-memtable", o.indexMemTab}, {"--record-queue", o.recordQueue}} {
		if _, err := parseSize(q.v); err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
	}
	if _, err := o.memLimit(); err != nil {
		return err
	}
	if o.stopTimeout <= 0 {
		return fmt.Errorf("--stop-timeout %s: must be positive", o.stopTimeout)
	}
	return nil
}

// writerIO reads --write-io.
func (o *storeOptions) writerIO() (writer.IOMode, error) {
	m, err := writer.ParseIOMode(o.writeIO)
	if err != nil {
		return 0, fmt.Errorf("--write-io: %w", err)
	}
	return m, nil
}

// subFrameSize reads --subframe-size: writer.Options.SubFrame (-1: none).
func (o *storeOptions) subFrameSize() (int, error) {
	if strings.TrimSpace(o.subFrame) == "0" {
		return -1, nil
	}
	n, err := parseSize(o.subFrame)
	switch {
	case err != nil:
		return 0, fmt.Errorf("--subframe-size: %w", err)
	case n == 0:
		return -1, nil
	case n < 4<<10 || n > 16<<20:
		return 0, fmt.Errorf("--subframe-size %s: want 0 (none) or 4KiB to 16MiB", o.subFrame)
	}
	return int(n), nil
}

// memLimit reads --memory-limit: -1 for auto, 0 for none.
func (o *storeOptions) memLimit() (int64, error) {
	switch t := strings.TrimSpace(o.memoryLimit); t {
	case "auto", "":
		return -1, nil
	case "0", "off", "none":
		return 0, nil
	}
	n, err := parseSize(o.memoryLimit)
	if err != nil {
		return 0, fmt.Errorf("--memory-limit: %w (or auto, 0)", err)
	}
	return n, nil
}

// applyMemoryLimit logs the run's memory bounds and sets the Go soft memory
// limit to 90% of their sum (or to --memory-limit), so the garbage
// collector keeps the heap near what is live instead of twice it: GOGC
// alone let RSS reach 2x the live heap (1.2 GB for 650 MB live in a
// 500k-flow import). The runtime lets the heap grow up to its limit, so the
// limit sits below the bound, leaving the rest for what the Go runtime does
// not account (C allocations, the kernel's lag in taking pages back).
// $GOMEMLIMIT, read by the runtime, wins.
func (o *storeOptions) applyMemoryLimit(po pipeline.Options, workers int) {
	b := po.Memory(workers)
	lim, _ := o.memLimit()
	if lim < 0 {
		lim = b.Total() / 10 * 9
	}
	switch {
	case os.Getenv("GOMEMLIMIT") != "":
		slog.Info("memory bounds", "bounds", b.String(), "go_memory_limit", "from $GOMEMLIMIT")
	case lim > 0:
		debug.SetMemoryLimit(lim)
		slog.Info("memory bounds", "bounds", b.String(), "go_memory_limit_mib", lim>>20)
	default:
		slog.Info("memory bounds", "bounds", b.String(), "go_memory_limit", "none")
	}
}

// parseSize reads "1048576", "512k", "1MiB", "1.5GB" (k/M/G are powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10}, {"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1}} {
		if strings.HasSuffix(t, suf.s) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, suf.s)), suf.m
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 1048576, 512KiB, 1MiB, 1GiB)", s)
	}
	return int64(v * float64(mult)), nil
}

// reserve reads --index-reserve: "0" turns it off (-1 for the pipeline).
func (o *storeOptions) reserve() (int64, error) {
	if t := strings.TrimSpace(o.indexReserve); t == "0" || t == "" {
		return -1, nil
	}
	n, err := parseSize(o.indexReserve)
	if err != nil {
		return 0, fmt.Errorf("--index-reserve: %w", err)
	}
	return n, nil
}

// store is an open store with a pipeline writing into it.
type store struct {
	p *pipeline.Pipeline
}

func openStore(o storeOptions, workers int, pin func(int) error, lossless bool) (*store, error) {
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	// An existing directory keeps its mode: tighten it, packets are
	// sensitive.
	if fi, err := os.Stat(o.data); err == nil && fi.Mode().Perm()&0o077 != 0 {
		slog.Warn("store directory was readable by others: setting it to 0700", "dir", o.data, "was", fi.Mode().Perm().String())
		if err := os.Chmod(o.data, 0o700); err != nil {
			return nil, fmt.Errorf("restrict store directory: %w", err)
		}
	}
	bs, _ := parseSize(o.blockSize)
	ret, err := o.retention()
	if err != nil {
		return nil, err
	}
	ss, _ := parseSize(o.segmentSize)
	ac, err := o.analyticsConfig()
	if err != nil {
		return nil, err
	}
	reserve, _ := o.reserve()
	iq, _ := parseSize(o.indexQueue)
	rq, _ := parseSize(o.recordQueue)
	imt, _ := parseSize(o.indexMemTab)
	wio, _ := o.writerIO()
	sub, _ := o.subFrameSize()
	po := pipeline.Options{
		MaxFlows:         o.maxFlows,
		IndexQueueBytes:  iq,
		IndexMemTable:    imt,
		RecordQueueBytes: rq,
		StopTimeout:      o.stopTimeout,
		IndexReserve:     reserve,
		Analytics:        ac,
		Dir:              o.data,
		BlockSize:        int(bs),
		Blocks:           o.blocks,
		SealAfter:        o.sealAfter,
		SegmentSize:      ss,
		SegmentAge:       o.segmentAge,
		Compressors:      o.compressors,
		Pin:              pin,
		Lossless:         lossless,
		HeadersOnly:      o.headersOnly,
		WriterIO:         wio,
		SegmentDirs:      o.segmentDirs,
		SubFrame:         sub,
		WaitCompress:     o.compressWait,
		Index:            !o.noIndex,
		Retention:        ret,
		Logger:           slog.Default(),
	}
	o.applyMemoryLimit(po, workers)
	p, err := pipeline.Open(po, workers)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", o.data, err)
	}
	st := &store{p: p}
	captureStore.Store(st) // the fleet shipper's health reports (fleet.go)
	return st, nil
}

// finish flushes what follows the writer (the index). Call after Run.
func (s *store) finish() error { return nil }

// close releases anything finish did not.
func (s *store) close() {}

// retention is the retention part of the options.
func (o *storeOptions) retention() (pipeline.RetentionOptions, error) {
	var rb int64
	if o.retainBytes != "" {
		var err error
		if rb, err = parseSize(o.retainBytes); err != nil {
			return pipeline.RetentionOptions{}, fmt.Errorf("retain_bytes: %w", err)
		}
	}
	if o.retainAge < 0 || o.keepFree < 0 || o.keepFree >= 100 {
		return pipeline.RetentionOptions{}, fmt.Errorf("retention: retain_age %s, keep_free %g: want a non-negative age and a percentage below 100", o.retainAge, o.keepFree)
	}
	return pipeline.RetentionOptions{MaxBytes: rb, MaxAge: o.retainAge, KeepFreePercent: o.keepFree, Every: o.retainEvery}, nil
}
