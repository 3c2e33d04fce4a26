package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tapvault/analytics"
	"tapvault/dataplane"
	"tapvault/msgstore"
	"tapvault/writer"
)

// Prometheus metrics of a run (docs/metrics.md lists every one).
//
// The Collector reads the counters the data path already keeps (workers
// publish atomics once per burst, the writer and the index keep their own)
// at scrape time: a scrape costs the hot path nothing. Per-queue counters
// are totals; Prometheus derives pps and bps with rate().

// PortFunc returns the counters of the port (NIC) being captured, and false
// when there are none (an import, or the port could not be read yet). The
// capture supplies it, so this package needs no DPDK call.
type PortFunc func() (dataplane.PortStats, bool)

// TimeToQueryableBuckets are the upper bounds, in seconds, of the
// tapvault_time_to_queryable_seconds histogram. A block is queryable after
// the seal delay (at most --seal-after, 1 s by default), compression and one
// group fsync, so the buckets are dense around a second.
var TimeToQueryableBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10, 30}

// Drop stages and causes, the values of the stage and cause labels of
// tapvault_dropped_packets_total.
const (
	StageNIC          = "nic"
	StageBlockBuilder = "block_builder"
	StageWriter       = "writer"

	CauseIMissed   = "imissed"    // the NIC had no RX descriptor: the queue was not polled fast enough
	CauseRxNoMbuf  = "rx_nombuf"  // the NIC had no mbuf: the mempool was empty
	CauseIErrors   = "ierrors"    // the NIC received the packet in error
	CauseNoBuffer  = "no_buffer"  // no free block buffer
	CauseQueueFull = "queue_full" // both writer queues full
)

var retentionReasons = []string{ReasonMaxBytes, ReasonKeepFree, ReasonMaxAge}

// Collector is a prometheus.Collector over one Pipeline. It is safe for
// concurrent scrapes, before, during and after Run.
type Collector struct {
	p      *Pipeline
	port   PortFunc
	queues []string // label value of each worker
	statfs func(path string) (total, avail uint64, err error)

	mu sync.Mutex // guards what follows: state carried from scrape to scrape
	// Time to queryable: the pipeline keeps every sample (up to maxSamples);
	// each scrape buckets only those added since the last one.
	ttqNext   int
	ttqCounts []uint64 // per bucket, not cumulative
	ttqCount  uint64
	ttqSum    float64
	// Retention actions by reason, tailed from DIR/retention.log from where
	// it ended when the collector was made.
	retOff   int64
	retSegs  map[string]uint64
	retBytes map[string]uint64
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector of p's metrics; port may be nil (no NIC
// counters). Make it before Run, so retention actions of the whole run are
// counted by reason.
func NewCollector(p *Pipeline, port PortFunc) *Collector {
	c := &Collector{
		p:         p,
		port:      port,
		statfs:    p.opts.Retention.Statfs,
		ttqCounts: make([]uint64, len(TimeToQueryableBuckets)),
		retSegs:   make(map[string]uint64),
		retBytes:  make(map[string]uint64),
	}
	if c.statfs == nil {
		c.statfs = statfs
	}
	for i := range p.workers {
		c.queues = append(c.queues, strconv.Itoa(i))
	}
	if fi, err := os.Stat(filepath.Join(p.opts.Dir, RetentionLogName)); err == nil {
		c.retOff = fi.Size()
	}
	return c
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("tapvault_"+name, help, labels, nil)
}

var (
	// Per RX queue (worker).
	dRxPackets    = desc("rx_packets_total", "Packets received by the queue's worker.", "queue")
	dRxBytes      = desc("rx_bytes_total", "Wire bytes of the packets received by the queue's worker.", "queue")
	dStored       = desc("stored_packets_total", "Packets in blocks the writer accepted, by queue.", "queue")
	dBlocksSealed = desc("blocks_sealed_total", "Blocks sealed by the queue's worker and accepted by the writer.", "queue")
	dBlocksTimed  = desc("blocks_sealed_by_time_total", "Of the sealed blocks, those sealed by the time limit (--seal-after) rather than full.", "queue")
	dFlowsActive  = desc("flows_active", "Flows in the queue's flow table.", "queue")
	dFlowsCreated = desc("flows_created_total", "Flows created in the queue's flow table.", "queue")
	dFlowsEvicted = desc("flows_evicted_total", "Flows evicted (idle) from the queue's flow table.", "queue")

	dDropped = desc("dropped_packets_total", "Packets lost, by stage (nic, block_builder, writer) and cause.", "stage", "cause")
	dFlagged = desc("packets_flagged_total", "Packets kept and stored but flagged: cut to the maximum record size, malformed or truncated inside a header, without an IP flow, or of a new flow the full flow table could not track.", "flag")

	dNICPackets = desc("nic_rx_packets_total", "Packets the NIC port received (all queues).")
	dNICBytes   = desc("nic_rx_bytes_total", "Bytes the NIC port received (all queues).")

	// Writer.
	dBlocksCommitted  = desc("blocks_committed_total", "Blocks durable on disk.")
	dPacketsCommitted = desc("packets_committed_total", "Packets in durable blocks.")
	dWireCommitted    = desc("wire_bytes_committed_total", "Wire bytes of the packets in durable blocks.")
	dRawBytes         = desc("block_raw_bytes_total", "Uncompressed bytes (summary and packet records) of durable blocks.")
	dStoredBytes      = desc("block_stored_bytes_total", "On-disk bytes of durable block records; raw/stored is the compression ratio.")
	dStoredRaw        = desc("blocks_stored_raw_total", "Blocks stored uncompressed, by reason: incompressible (zstd saved < 5%) or behind (the compressors were behind).", "reason")
	dRejected         = desc("writer_rejected_blocks_total", "Sealed blocks the writer refused (both queues full); their packets are counted as dropped at stage writer.")
	dLost             = desc("writer_lost_blocks_total", "Blocks the writer accepted but could not make durable (write, sync or segment errors).")
	dWriteErrors      = desc("writer_errors_total", "Failed writes, syncs and segment creations.")
	dFsyncs           = desc("fsyncs_total", "Group fsyncs of segment files.")
	dFsyncSeconds     = desc("fsync_seconds_total", "Time spent in fsyncs.")
	dFsyncMax         = desc("fsync_max_seconds", "Longest fsync so far.")
	dCompressSeconds  = desc("compress_seconds_total", "Time the compressor goroutines spent building block records.")
	dWriteSeconds     = desc("write_seconds_total", "Time the write goroutine spent writing block records, fsyncs apart.")
	dSegmentsCreated  = desc("segments_created_total", "Segment files this run created.")
	dSegment          = desc("segment_current", "Number of the segment being written (0: none open).")
	dWriterQueue      = desc("writer_queue_blocks", "Blocks waiting in a writer queue (compress or write).", "stage")

	// Index.
	dIndexEnabled  = desc("index_enabled", "1 if the run keeps the index up to date, else 0.")
	dIndexBlocks   = desc("index_blocks_total", "Blocks written to the index.")
	dIndexGroups   = desc("index_groups_total", "Groups (batches of blocks) written to the index.")
	dIndexKeys     = desc("index_keys_total", "Keys set in the index.")
	dIndexDeletes  = desc("index_deletes_total", "Keys deleted from the index (retention, hole markers).")
	dIndexDropped  = desc("index_dropped_blocks_total", "Committed blocks the index queue dropped (it was full): holes, indexed again later; no packet is lost.")
	dIndexLag      = desc("index_lag_blocks", "Committed blocks not yet durable in the index (they are already queryable).")
	dIndexHoles    = desc("index_holes_blocks", "Dropped blocks not yet indexed again.")
	dIndexQBytes   = desc("index_queue_bytes", "Memory the index queue holds (copied flow keys), bounded by index_queue_bytes.")
	dIndexStopShed = desc("index_stop_left_blocks_total", "Blocks a stop left unindexed at its deadline (stop_timeout): holes the next start indexes; no packet is lost.")
	dIndexBatch    = desc("index_batch_seconds_total", "Time spent writing groups to the index.")
	dIndexCaughtUp = desc("index_caught_up", "1 once the index has caught up with the segments since it was opened.")
	dIndexCatchUp  = desc("index_catchup_blocks", "Blocks of earlier runs the start-up catch-up has to index (state todo: counted when it starts, -1 before) and has indexed (done); a live capture runs it in the background.", "state")
	dIndexBytes    = desc("index_size_bytes", "On-disk size of the index, by part (lsm: SSTables, vlog: value log and memtables).", "part")
	dTTQ           = desc("time_to_queryable_seconds", "Time from the arrival of a block's first packet to the index returning the block.")

	// Disk and retention.
	dSegmentBytes  = desc("store_segment_bytes", "Size of the store's segment files.")
	dFSSize        = desc("filesystem_size_bytes", "Size of the filesystem holding the store.")
	dFSAvail       = desc("filesystem_avail_bytes", "Bytes available to unprivileged users on the filesystem holding the store.")
	dRetentionSegs = desc("retention_dropped_segments_total", "Segments retention dropped, by reason (max_bytes, keep_free, max_age).", "reason")
	dRetentionByte = desc("retention_dropped_bytes_total", "Bytes of the segments and message files retention dropped, by reason.", "reason")
	dStartTime     = desc("start_time_seconds", "Unix time the run started (0 before it does).")

	// Retention of message files the fleet shipper has not shipped yet.
	dUnshippedFiles = desc("fleet_unshipped_dropped_files_total", "Message files retention dropped before the fleet shipper had shipped them: only when the disk is at its limit (keep_free); otherwise unshipped files are kept.")
	dUnshippedRecs  = desc("fleet_unshipped_dropped_records_total", "Records in those files: lost to the fleet's ClickHouse, still counted here.")
	dUnshippedBytes = desc("fleet_unshipped_bytes", "Message bytes the fleet shipper has not shipped yet (after its cursor, DIR/fleet/cursor); absent when the store is not shipped.")
	dShipLag        = desc("fleet_ship_lag_seconds", "Now minus the time of the oldest record not yet shipped to the fleet; 0 when caught up; absent when the store is not shipped.")

	// Analytics (the latency histograms and per-protocol counts come from
	// the record stage's own collectors).
	dAnRecords  = desc("analytics_records_total", "Records the analyzers emitted (exchanges and tcp connection records).")
	dAnDropped  = desc("analytics_records_dropped_total", "Records lost, by stage: queue (the record queue was full) or store (the message store did not write them: a write failed, or the free space was below its reserve).", "stage")
	dAnConns    = desc("analytics_connections", "Connections being analysed.")
	dAnConnFull = desc("analytics_untracked_packets_total", "Packets of connections not analysed: the analyzer's or the flow table's limit was reached.")
	dAnGapBytes = desc("analytics_gap_bytes_total", "TCP stream bytes the analyzers never saw (capture loss, or the reassembly limits).")
	dAnBuffered = desc("analytics_reassembly_bytes", "Out-of-order TCP bytes held for reassembly.")
	dAnParsers  = desc("analytics_parsers", "Connections being decoded (bounded by analytics.max_parsers per worker).")
	dAnParsFull = desc("analytics_undecoded_connections_total", "Connections timed but not decoded: analytics.max_parsers was reached.")
	dAnQBytes   = desc("analytics_record_queue_bytes", "Memory the records waiting in the record queue hold, bounded by record_queue_bytes.")
	dAnDefrag   = desc("analytics_reassembled_datagrams_total", "UDP datagrams the analytics reassembled from IP fragments.")
	dAnFragDrop = desc("analytics_fragments_dropped_total", "IP fragments the analytics dropped (still stored), by reason: incomplete (not whole within the timeout, or at the end), overlap (conflicting overlapping fragments), limit (too many datagrams or bytes held), malformed, truncated (cut by the snaplen).", "reason")
	dAnFragHeld = desc("analytics_fragment_bytes", "Fragment bytes the analytics hold for reassembly.")
	dTCPRetrans = desc("tcp_retransmissions_total", "TCP retransmissions (Wireshark's tcp.analysis.retransmission, fast and spurious ones included).")
	dTCPOOO     = desc("tcp_out_of_order_total", "TCP out-of-order segments.")
	dMsgBytes   = desc("store_message_bytes", "Size of the message store (DIR/messages).")
)

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		dRxPackets, dRxBytes, dStored, dBlocksSealed, dBlocksTimed, dFlowsActive, dFlowsCreated, dFlowsEvicted,
		dDropped, dFlagged, dNICPackets, dNICBytes,
		dBlocksCommitted, dPacketsCommitted, dWireCommitted, dRawBytes, dStoredBytes, dStoredRaw, dRejected, dLost,
		dWriteErrors, dFsyncs, dFsyncSeconds, dFsyncMax, dCompressSeconds, dWriteSeconds, dSegmentsCreated, dSegment, dWriterQueue,
		dIndexEnabled, dIndexBlocks, dIndexGroups, dIndexKeys, dIndexDeletes, dIndexDropped, dIndexLag, dIndexHoles,
		dIndexBatch, dIndexCaughtUp, dIndexCatchUp, dIndexBytes, dTTQ, dIndexQBytes, dIndexStopShed,
		dSegmentBytes, dFSSize, dFSAvail, dRetentionSegs, dRetentionByte, dStartTime, dUnshippedFiles, dUnshippedRecs, dUnshippedBytes, dShipLag,
		dAnRecords, dAnDropped, dAnConns, dAnConnFull, dAnGapBytes, dAnBuffered, dTCPRetrans, dTCPOOO, dMsgBytes,
		dAnParsers, dAnParsFull, dAnQBytes, dAnDefrag, dAnFragDrop, dAnFragHeld,
	} {
		ch <- d
	}
	if c.p.stage != nil {
		c.p.stage.Describe(ch)
	}
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func seconds(ns uint64) float64 { return float64(ns) / 1e9 }

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect reads the live counters.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	var noBuf, sinkDrop, cut, malformed, truncated, noFlow, flowsFull uint64
	for i, w := range p.workers {
		s, q := w.Stats(), c.queues[i]
		counter(ch, dRxPackets, float64(s.RxPackets.Load()), q)
		counter(ch, dRxBytes, float64(s.RxBytes.Load()), q)
		counter(ch, dStored, float64(s.Stored.Load()), q)
		counter(ch, dBlocksSealed, float64(s.Blocks.Load()), q)
		counter(ch, dBlocksTimed, float64(s.BlocksTimed.Load()), q)
		gauge(ch, dFlowsActive, float64(s.FlowsActive.Load()), q)
		counter(ch, dFlowsCreated, float64(s.FlowsCreated.Load()), q)
		counter(ch, dFlowsEvicted, float64(s.FlowsEvicted.Load()), q)
		noBuf += s.DropNoBuffer.Load()
		sinkDrop += s.DropSink.Load()
		cut += s.Cut.Load()
		malformed += s.Malformed.Load()
		truncated += s.Truncated.Load()
		noFlow += s.NoFlow.Load()
		flowsFull += s.FlowsFull.Load()
	}
	counter(ch, dDropped, float64(noBuf), StageBlockBuilder, CauseNoBuffer)
	counter(ch, dDropped, float64(sinkDrop), StageWriter, CauseQueueFull)
	if c.port != nil {
		if ps, ok := c.port(); ok {
			counter(ch, dDropped, float64(ps.IMissed), StageNIC, CauseIMissed)
			counter(ch, dDropped, float64(ps.RxNoMbuf), StageNIC, CauseRxNoMbuf)
			counter(ch, dDropped, float64(ps.IErrors), StageNIC, CauseIErrors)
			counter(ch, dNICPackets, float64(ps.IPackets))
			counter(ch, dNICBytes, float64(ps.IBytes))
		}
	}
	counter(ch, dFlagged, float64(cut), "cut")
	counter(ch, dFlagged, float64(malformed), "malformed")
	counter(ch, dFlagged, float64(truncated), "truncated")
	counter(ch, dFlagged, float64(noFlow), "no_flow")
	counter(ch, dFlagged, float64(flowsFull), "flow_table_full")

	ws := p.w.Stats()
	counter(ch, dBlocksCommitted, float64(ws.BlocksCommitted))
	counter(ch, dPacketsCommitted, float64(ws.PacketsCommitted))
	counter(ch, dWireCommitted, float64(ws.WireBytesCommitted))
	counter(ch, dRawBytes, float64(ws.RawBytes))
	counter(ch, dStoredBytes, float64(ws.StoredBytes))
	counter(ch, dStoredRaw, float64(ws.RawIncompressible), "incompressible")
	counter(ch, dStoredRaw, float64(ws.RawBehind), "behind")
	counter(ch, dRejected, float64(ws.Rejected))
	counter(ch, dLost, float64(ws.BlocksLost))
	counter(ch, dWriteErrors, float64(ws.WriteErrors))
	counter(ch, dFsyncs, float64(ws.Fsyncs))
	counter(ch, dFsyncSeconds, seconds(ws.FsyncNanos))
	gauge(ch, dFsyncMax, seconds(ws.FsyncMaxNanos))
	counter(ch, dCompressSeconds, seconds(ws.CompressNanos))
	counter(ch, dWriteSeconds, seconds(ws.WriteNanos))
	counter(ch, dSegmentsCreated, float64(ws.Segments))
	gauge(ch, dSegment, float64(ws.Segment))
	gauge(ch, dWriterQueue, float64(ws.CompressQueue), "compress")
	gauge(ch, dWriterQueue, float64(ws.WriteQueue), "write")

	gauge(ch, dIndexEnabled, boolf(p.ix != nil))
	if p.ix != nil {
		is := p.ix.Stats()
		counter(ch, dIndexBlocks, float64(is.Blocks))
		counter(ch, dIndexGroups, float64(is.Groups))
		counter(ch, dIndexKeys, float64(is.Keys))
		counter(ch, dIndexDeletes, float64(is.Deletes))
		counter(ch, dIndexDropped, float64(is.QueueDrops))
		gauge(ch, dIndexLag, float64(is.Lag))
		gauge(ch, dIndexHoles, float64(is.Holes))
		gauge(ch, dIndexQBytes, float64(is.QueueBytes))
		counter(ch, dIndexStopShed, float64(is.StopShed))
		counter(ch, dIndexBatch, is.BatchTime.Seconds())
		gauge(ch, dIndexCaughtUp, boolf(is.CaughtUp))
		if b := p.bg; b != nil {
			gauge(ch, dIndexCatchUp, float64(b.total.Load()), "todo")
			gauge(ch, dIndexCatchUp, float64(b.indexed.Load()), "done")
		}
		lsm, vlog := p.ix.Size()
		gauge(ch, dIndexBytes, float64(lsm), "lsm")
		gauge(ch, dIndexBytes, float64(vlog), "vlog")
		ch <- c.ttqHistogram()
	}

	if n, err := writer.SegmentBytes(p.opts.Dir); err == nil {
		gauge(ch, dSegmentBytes, float64(n))
	} else {
		ch <- prometheus.NewInvalidMetric(dSegmentBytes, err)
	}
	if total, avail, err := c.statfs(p.opts.Dir); err == nil {
		gauge(ch, dFSSize, float64(total))
		gauge(ch, dFSAvail, float64(avail))
	} else {
		ch <- prometheus.NewInvalidMetric(dFSSize, err)
	}
	retSegs, retBytes := c.retention()
	for _, r := range retentionReasons {
		counter(ch, dRetentionSegs, float64(retSegs[r]), r)
		counter(ch, dRetentionByte, float64(retBytes[r]), r)
	}
	gauge(ch, dStartTime, float64(p.started.Load())/1e9)
	if p.ret != nil {
		counter(ch, dUnshippedFiles, float64(p.ret.unshippedFiles.Load()))
		counter(ch, dUnshippedRecs, float64(p.ret.unshippedRecords.Load()))
	}
	// The shipper may run in this process (capture --fleet-clickhouse) or
	// another (fleet ship --follow): read its durable cursor, not its state.
	if cur, err := fleetCursor(p.opts.Dir); err == nil && cur != nil {
		if b, err := msgstore.BacklogAfter(p.opts.Dir, *cur); err == nil {
			gauge(ch, dUnshippedBytes, float64(b.Bytes))
			lag := 0.0
			if b.Bytes > 0 && b.OldestTS > 0 {
				lag = max(float64(time.Now().UnixNano()-b.OldestTS)/1e9, 0)
			}
			gauge(ch, dShipLag, lag)
		}
	}
	if p.stage != nil {
		c.collectAnalytics(ch)
	}
}

func (c *Collector) collectAnalytics(ch chan<- prometheus.Metric) {
	p := c.p
	var recs, qdrop, conns, full, gap, buf, retx, ooo, parsers, pfull, defrag, fheld uint64
	var fdrop [analytics.FragReasons]uint64
	for _, an := range p.an {
		s := an.Stats()
		recs += s.Records.Load()
		qdrop += s.RecordsDrop.Load()
		conns += uint64(s.Conns.Load())
		full += s.ConnsFull.Load()
		gap += s.GapBytes.Load()
		buf += uint64(s.Buffered.Load())
		retx += s.Retrans.Load()
		ooo += s.OutOfOrder.Load()
		parsers += uint64(s.Parsers.Load())
		pfull += s.ParsersFull.Load()
		defrag += s.Defragged.Load()
		fheld += uint64(s.FragHeld.Load())
		for i := range fdrop {
			fdrop[i] += s.FragDropped[i].Load()
		}
	}
	counter(ch, dAnRecords, float64(recs))
	counter(ch, dAnDropped, float64(qdrop), "queue")
	_, storeDrop := p.stage.storeCounts()
	counter(ch, dAnDropped, float64(storeDrop), "store")
	gauge(ch, dAnConns, float64(conns))
	counter(ch, dAnConnFull, float64(full))
	counter(ch, dAnGapBytes, float64(gap))
	gauge(ch, dAnBuffered, float64(buf))
	gauge(ch, dAnParsers, float64(parsers))
	counter(ch, dAnParsFull, float64(pfull))
	gauge(ch, dAnQBytes, float64(p.stage.queued.Load()))
	counter(ch, dAnDefrag, float64(defrag))
	for i, n := range fdrop {
		counter(ch, dAnFragDrop, float64(n), analytics.FragReasonNames[i])
	}
	gauge(ch, dAnFragHeld, float64(fheld))
	counter(ch, dTCPRetrans, float64(retx))
	counter(ch, dTCPOOO, float64(ooo))
	gauge(ch, dMsgBytes, float64(msgstore.Size(p.opts.Dir)))
	p.stage.Collect(ch)
}

// ttqHistogram buckets the time-to-queryable samples added since the last
// scrape and returns the histogram so far. Past maxSamples blocks the
// pipeline keeps no more samples and the histogram stops growing.
func (c *Collector) ttqHistogram() prometheus.Metric {
	l := c.p.ttq
	l.mu.Lock()
	s := l.samples // elements below len are never written again: read them unlocked
	l.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ns := range s[c.ttqNext:] {
		v := float64(ns) / 1e9
		c.ttqSum += v
		c.ttqCount++
		for i, ub := range TimeToQueryableBuckets {
			if v <= ub {
				c.ttqCounts[i]++
				break
			}
		}
	}
	c.ttqNext = len(s)
	buckets := make(map[float64]uint64, len(TimeToQueryableBuckets))
	var cum uint64
	for i, ub := range TimeToQueryableBuckets {
		cum += c.ttqCounts[i]
		buckets[ub] = cum
	}
	return prometheus.MustNewConstHistogram(dTTQ, c.ttqCount, c.ttqSum, buckets)
}

// retention reads the retention actions appended to DIR/retention.log since
// the last scrape and returns the totals by reason. A line without its
// newline yet is read again next time.
func (c *Collector) retention() (segs, byts map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tailRetentionLog()
	segs, byts = make(map[string]uint64, len(c.retSegs)), make(map[string]uint64, len(c.retBytes))
	for k, v := range c.retSegs {
		segs[k] = v
	}
	for k, v := range c.retBytes {
		byts[k] = v
	}
	return segs, byts
}

func (c *Collector) tailRetentionLog() {
	f, err := os.Open(filepath.Join(c.p.opts.Dir, RetentionLogName))
	if err != nil {
		return // none yet
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() == c.retOff {
		return
	} else if fi.Size() < c.retOff {
		c.retOff = 0 // replaced by a shorter file: read it whole
	}
	if _, err := f.Seek(c.retOff, io.SeekStart); err != nil {
		return
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return // EOF: a partial line (or none) is left for next time
		}
		c.retOff += int64(len(line))
		var a RetentionAction
		if json.Unmarshal(bytes.TrimSpace(line), &a) != nil {
			continue
		}
		if !a.IsMessageFile() {
			c.retSegs[a.Reason]++
		}
		c.retBytes[a.Reason] += uint64(max(a.Bytes, 0))
	}
}

// NewRegistry returns a registry holding cs and the standard Go runtime
// and process collectors.
func NewRegistry(cs ...prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(cs...)
	return reg
}

// MetricsHandler serves reg in the Prometheus exposition formats. A metric
// that cannot be read (statfs failing) is left out of the scrape; the rest
// is served.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	// OpenMetrics (when the scraper asks for it) carries the exemplars:
	// the message latency histograms name a record ID per bucket, the
	// drill-down from a latency figure to its exchange and packets.
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
}
