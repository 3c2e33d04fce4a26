package workers

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"tapvault/block"
	"tapvault/dataplane"
	"tapvault/packet"
)

// Config configures one worker.
type Config struct {
	Queue     uint16      // RX queue number, recorded in every block
	Pool      *block.Pool // shared free list of block buffers
	Sink      block.Sink  // where sealed blocks go (the writer)
	SealAfter time.Duration
	// MaxBlockFlows bounds the distinct flows one block summarises; a block
	// seals early when it would exceed it. Must not exceed the capacity the
	// pool gave Summary.Flows.
	MaxBlockFlows int
	MaxFlows      int           // flow table bound
	FlowIdle      time.Duration // flow idle eviction, in packet time

	// Lossless makes the worker wait for a free block buffer and for the
	// sink instead of dropping. It is for sources that can wait (files
	// being imported); a live port must never set it: RX never blocks.
	Lossless bool

	// HeadersOnly stores each packet cut to its headers (L2 to L4: up to
	// the L4 payload) while the analytics still see it whole: the
	// exchange and connection records are kept, the payloads are not
	// (capture --metadata-only). The original length is kept, as for a
	// snap length.
	HeadersOnly bool

	// RunID goes into the high half of every block ID (Block.ID): a value
	// unique to this capture run, so IDs from different runs never collide.
	RunID uint32
	// Analyzer, if set, sees every packet with an IP flow after storage
	// (analytics): it must not block and must not keep the packet.
	Analyzer Analyzer
}

// Analyzer is the in-stream analytics seam (package analytics implements
// it). All calls come from the worker's goroutine.
type Analyzer interface {
	// Packet is one packet with a flow: d is its decoding, e its flow
	// table entry (nil when the table was full), dir its direction in
	// e.Key. p, d and e are borrowed for the call only (p.Data until the
	// next Recv).
	Packet(p *dataplane.Packet, d *packet.Decoded, f *packet.Flow, dir uint8, ref block.PacketRef)
	// FlowEnd is called when the flow table evicts e (idle), before e is
	// reused.
	FlowEnd(f *packet.Flow)
	// Tick runs timers; now is the worker's step-free packet time (ns,
	// Clock): the newest packet time seen, unless time stepped back.
	Tick(now int64)
	// Flush ends every connection (end of run); the worker calls it from
	// Flush after sealing its block.
	Flush()
}

// Defaults for Config.
const (
	DefaultSealAfter     = time.Second
	DefaultMaxBlockFlows = block.DefaultMaxFlows
	DefaultMaxFlows      = 1 << 18
	DefaultFlowIdle      = packet.DefaultFlowIdle
)

// Stats are one worker's counters. They are written by the worker only,
// once per burst, and may be read from any goroutine.
type Stats struct {
	_ [64]byte // keep neighbouring workers' counters off this cache line

	RxPackets    atomic.Uint64 // packets handed to the worker
	RxBytes      atomic.Uint64 // their wire bytes
	Stored       atomic.Uint64 // packets in blocks the sink accepted
	DropNoBuffer atomic.Uint64 // packets dropped: no free block buffer
	DropSink     atomic.Uint64 // packets dropped: the writer refused a sealed block (queue full)
	Cut          atomic.Uint64 // packets cut to MaxPacketSize
	Malformed    atomic.Uint64 // packets with an inconsistent header (kept and stored)
	Truncated    atomic.Uint64 // packets whose capture ends inside a header (kept and stored)
	NoFlow       atomic.Uint64 // packets with no IP flow (ARP, non-IP, ...)
	Blocks       atomic.Uint64 // blocks sealed and accepted by the sink
	BlocksTimed  atomic.Uint64 // of which sealed by the time limit
	FlowsActive  atomic.Int64
	FlowsCreated atomic.Uint64
	FlowsEvicted atomic.Uint64
	FlowsFull    atomic.Uint64 // packets of new flows the full flow table could not track

	_ [64]byte
}

// PanicError is what a worker returns when it recovered from a panic: the
// lcore entry never lets one escape.
type PanicError struct {
	Queue uint16
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("worker %d panicked: %v\n%s", e.Queue, e.Value, e.Stack)
}

// Worker is the per-core loop: burst -> decode -> flow -> block builder. All
// its state is unshared; it allocates nothing per packet.
type Worker struct {
	cfg   Config
	dec   packet.Decoder
	d     packet.Decoded
	k     packet.FlowKey // the current packet's flow key
	flows *FlowTable
	b     *builder
	t0    time.Time
	clock packet.Clock // packet time without its steps back: flow idleness
	stats *Stats
	an    Analyzer
	evict func(*FlowEntry) // an.FlowEnd, or nil; built once, not per Tick

	// per-burst counter deltas, published to stats once per burst
	c struct {
		rx, rxBytes, stored, noBuf, sinkDrop, cut, malformed, truncated, noFlow, blocks, timed uint64
	}
}

// NewWorker builds a worker. Everything it needs is allocated here.
func NewWorker(cfg Config) *Worker {
	if cfg.Pool == nil || cfg.Sink == nil {
		panic("BUG: worker needs a block pool and a sink")
	}
	if cfg.SealAfter <= 0 {
		cfg.SealAfter = DefaultSealAfter
	}
	if cfg.MaxBlockFlows <= 0 {
		cfg.MaxBlockFlows = DefaultMaxBlockFlows
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.FlowIdle <= 0 {
		cfg.FlowIdle = DefaultFlowIdle
	}
	w := &Worker{
		cfg:   cfg,
		flows: NewFlowTable(cfg.MaxFlows, int64(cfg.FlowIdle)),
		b:     newBuilder(cfg.Pool, cfg.Queue, cfg.MaxBlockFlows),
		t0:    time.Now(),
		stats: new(Stats),
		an:    cfg.Analyzer,
	}
	w.b.runID = cfg.RunID
	if w.an != nil {
		an := w.an
		w.evict = func(e *FlowEntry) { an.FlowEnd(&e.Flow) }
	}
	return w
}

// Stats returns the worker's live counters.
func (w *Worker) Stats() *Stats { return w.stats }

// Flows returns the worker's flow table. Only the worker's goroutine may use
// it while the worker runs.
func (w *Worker) Flows() *FlowTable { return w.flows }

// now is the worker's monotonic clock for the seal timer, in ns.
func (w *Worker) now() int64 { return int64(time.Since(w.t0)) }

// Run reads src until it returns io.EOF, an error, or stop becomes true, then
// seals its open block. Packets are processed before the next Recv, which is
// what releases them.
func (w *Worker) Run(src dataplane.Source, stop *atomic.Bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Queue: w.cfg.Queue, Value: r, Stack: debug.Stack()}
		}
	}()
	burst := new(dataplane.Burst)
	idle := 0
	for !stop.Load() {
		n, rerr := src.Recv(burst)
		now := w.now()
		if n > 0 {
			w.ProcessBurst(burst, now)
			idle = 0
		} else {
			idle++
			w.Tick(now)
			// Poll-mode RX spins; after a run of empty polls, back off so an
			// idle link does not burn the core the compressors need.
			if idle > 256 {
				time.Sleep(20 * time.Microsecond)
			} else if idle > 16 {
				runtime.Gosched()
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				break
			}
			w.Flush()
			return fmt.Errorf("worker %d: receive: %w", w.cfg.Queue, rerr)
		}
	}
	w.Flush()
	return nil
}

// ProcessBurst handles every packet of b, then publishes the counters and
// runs the timers. now is the worker clock (see Run).
func (w *Worker) ProcessBurst(b *dataplane.Burst, now int64) {
	for i := 0; i < b.N; i++ {
		w.process(&b.Pkts[i], now)
	}
	w.Tick(now)
}

func (w *Worker) process(p *dataplane.Packet, now int64) {
	e, h, dir, ok := w.classify(p)
	data := p.Data
	k, d := &w.k, &w.d

	// Storage, then analytics, which never depend on storage: a packet
	// that finds no block buffer is still analysed (with a zero ref). The
	// storage stays inline (a call returning the ref cost ~3 % of the
	// 64-byte path, measured old/new in one run).
	var ref block.PacketRef
	if len(data) > block.MaxPacketSize {
		data = data[:block.MaxPacketSize]
		w.c.cut++
	}
	if w.cfg.HeadersOnly {
		data = data[:HeaderLen(d, data)]
	}
	bl := w.b
	if bl.cur != nil && !bl.fits(len(data)) {
		w.seal(false)
	}
	if bl.cur == nil && !bl.open(now, w.cfg.Lossless) {
		w.c.noBuf++
		goto analyze
	}
	switch {
	case !ok:
		bl.cur.Summary.NonFlow++
	case e != nil && e.blkGen == bl.gen:
		// Fast path: the flow table entry knows where the flow sits in
		// this block's summary, which saves the second hash probe.
		bl.countFlow(e.blkIdx, dir, p.TS, p.WireLen)
	default:
		x := bl.addFlow(k, h, dir, p.TS, p.WireLen)
		if x < 0 {
			w.seal(false)
			if !bl.open(now, w.cfg.Lossless) {
				w.c.noBuf++
				goto analyze
			}
			x = bl.addFlow(k, h, dir, p.TS, p.WireLen)
		}
		if e != nil {
			e.blkGen, e.blkIdx = bl.gen, x
		}
	}
	if w.an != nil {
		ref = block.PacketRef{Block: bl.cur.ID, Queue: w.cfg.Queue, Ord: bl.cur.Count}
	}
	bl.appendRecord(p.TS, p.WireLen, p.LinkType, p.Iface, data)
analyze:
	if ok && w.an != nil {
		w.an.Packet(p, d, e.flow(), dir, ref)
	}
}

// classify is the half of process that Reanalyze shares: decode p into
// w.d, count what the decoder found, make its flow key in w.k, and account
// it to its flow table entry (nil when the table is full or p has no flow;
// ok says whether it has one). A call, not inlined: it costs the 64-byte
// path no measurable time (docs/PERFORMANCE.md, issue 10).
func (w *Worker) classify(p *dataplane.Packet) (e *FlowEntry, h uint64, dir uint8, ok bool) {
	w.c.rx++
	w.c.rxBytes += uint64(p.WireLen)
	d := &w.d
	w.dec.Decode(p.Data, p.LinkType, d)
	if d.Flags&packet.FlagMalformed != 0 {
		w.c.malformed++
	}
	if d.Flags&packet.FlagTruncated != 0 {
		w.c.truncated++
	}
	// FlowKeyInto fills w.k in place: returning the 42-byte key by value
	// cost ~12 ns a packet (measured by the decoder's benchmarks).
	k := &w.k
	dir, ok = packet.FlowKeyInto(k, d)
	// After the decoder: a value live across its call costs a spill.
	seen := w.clock.At(p.TS)
	if !ok {
		w.c.noFlow++
		return nil, 0, dir, false
	}
	h = hashKey(k)
	if e = w.flows.Lookup(k, h, p.TS, dir); e != nil {
		e.LastTS = seen
		e.Pkts[dir]++
		e.Bytes[dir] += uint64(p.WireLen)
		if d.TCPFlags&(tcpFIN|tcpRST) != 0 && d.Proto == ipProtoTCP {
			e.tcpEnd(d.TCPFlags, dir)
		}
	}
	return e, h, dir, true
}

// seal hands the open block to the sink. If the sink refuses it, its packets
// are counted as dropped and the buffer goes back to the pool.
func (w *Worker) seal(timed bool) {
	blk := w.b.take()
	if blk == nil {
		return
	}
	if blk.Count == 0 {
		blk.Release()
		return
	}
	n := uint64(blk.Count)
	if w.cfg.Lossless {
		if ws, ok := w.cfg.Sink.(block.WaitSink); ok {
			if !ws.SubmitWait(blk) {
				w.c.sinkDrop += n
				blk.Release()
				return
			}
		} else {
			for !w.cfg.Sink.Submit(blk) {
				time.Sleep(100 * time.Microsecond)
			}
		}
		w.c.stored += n
		w.c.blocks++
		if timed {
			w.c.timed++
		}
		return
	}
	if w.cfg.Sink.Submit(blk) {
		w.c.stored += n
		w.c.blocks++
		if timed {
			w.c.timed++
		}
		return
	}
	w.c.sinkDrop += n
	blk.Release()
}

// Tick seals a block that has been open longer than SealAfter (so quiet links
// still commit), advances flow eviction, and publishes counters. now is the
// worker clock; flow idleness is judged in packet time.
func (w *Worker) Tick(now int64) {
	if c := w.b.cur; c != nil && c.Count > 0 && now-c.OpenedAt >= int64(w.cfg.SealAfter) {
		w.seal(true)
	}
	// Idleness is judged in packet time, so a replay of an old trace
	// evicts by the trace's clock; without its steps back (Clock), so a
	// file older than the one before it, or a clock stepped back, does not
	// make every flow of the new timeline look idle.
	w.flows.Evict(w.clock.Now(), 8, w.evict)
	if w.an != nil {
		w.an.Tick(w.clock.Now())
	}
	w.publish()
}

// Flush seals the open block regardless of its age and publishes counters.
func (w *Worker) Flush() {
	if w.b.cur != nil {
		w.seal(false)
	}
	if w.an != nil {
		w.an.Flush()
	}
	w.publish()
}

func (w *Worker) publish() {
	s, c := w.stats, &w.c
	if c.rx != 0 {
		s.RxPackets.Add(c.rx)
		s.RxBytes.Add(c.rxBytes)
	}
	if c.stored != 0 {
		s.Stored.Add(c.stored)
	}
	if c.noBuf != 0 {
		s.DropNoBuffer.Add(c.noBuf)
	}
	if c.sinkDrop != 0 {
		s.DropSink.Add(c.sinkDrop)
	}
	if c.cut != 0 {
		s.Cut.Add(c.cut)
	}
	if c.malformed != 0 {
		s.Malformed.Add(c.malformed)
	}
	if c.truncated != 0 {
		s.Truncated.Add(c.truncated)
	}
	if c.noFlow != 0 {
		s.NoFlow.Add(c.noFlow)
	}
	if c.blocks != 0 {
		s.Blocks.Add(c.blocks)
		s.BlocksTimed.Add(c.timed)
	}
	*c = struct {
		rx, rxBytes, stored, noBuf, sinkDrop, cut, malformed, truncated, noFlow, blocks, timed uint64
	}{}
	ft := w.flows.Stats()
	s.FlowsActive.Store(int64(ft.Active))
	s.FlowsCreated.Store(ft.Created)
	s.FlowsEvicted.Store(ft.Evicted)
	s.FlowsFull.Store(ft.Full)
}

// Reanalyze runs the analyzer over one stored packet as process would have
// run it at capture time, without storing it again: ref is where the packet
// is stored. tapvault reanalyze feeds a queue's stored packets through it,
// in the order the queue's worker saw them, then calls Flush. Like a burst,
// every 32 packets it evicts idle flows and runs the analyzer's timers.
func (w *Worker) Reanalyze(p *dataplane.Packet, ref block.PacketRef) {
	if w.c.rx%32 == 31 {
		// As at capture, the timers see this packet's time (At is
		// idempotent: classify's call gives the same answer).
		w.clock.At(p.TS)
		w.flows.Evict(w.clock.Now(), 8, w.evict)
		if w.an != nil {
			w.an.Tick(w.clock.Now())
		}
	}
	e, _, dir, ok := w.classify(p)
	if ok && w.an != nil {
		w.an.Packet(p, &w.d, e.flow(), dir, ref)
	}
}

// NonIPHeaderKeep is what HeadersOnly keeps of a frame with no IP header
// (ARP, LLDP, ...): such frames are control traffic, and this holds an ARP
// packet whole.
const NonIPHeaderKeep = 64

// HeaderLen is how many bytes of data, decoded into d, are headers: up to
// the L4 payload; for an IP packet with no L4 header the decoder knows (a
// later fragment, an unknown protocol), up to the end of the IP header; for
// a frame with no IP header, at most NonIPHeaderKeep bytes.
func HeaderLen(d *packet.Decoded, data []byte) int {
	n := len(data)
	switch {
	case d.PayloadOff >= 0:
		n = int(d.PayloadOff)
	case d.L4Off >= 0:
		n = int(d.L4Off)
	case d.L3Off >= 0 && d.IPVer == 4 && int(d.L3Off) < len(data):
		n = int(d.L3Off) + int(data[d.L3Off]&0x0f)*4
	case d.L3Off >= 0 && d.IPVer == 6:
		n = int(d.L3Off) + 40
	case d.L3Off < 0 || d.IPVer == 0:
		n = NonIPHeaderKeep
	}
	return min(max(n, 0), len(data))
}
