package pipeline

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"tapvault/analytics"
	"tapvault/block"
	"tapvault/dataplane"
	"tapvault/index"
	"tapvault/msgstore"
	"tapvault/workers"
	"tapvault/writer"
)

// Options configures a run.
type Options struct {
	Dir string // store directory

	BlockSize     int           // seal size of a block's payload (default block.DefaultSize)
	Blocks        int           // block buffers in the pool; bounds memory (default 32 per worker, at least 16)
	SealAfter     time.Duration // time limit of an open block (default 1 s)
	MaxBlockFlows int           // distinct flows a block summarises before it seals (default 16384)
	MaxFlows      int           // flow-table bound per worker
	FlowIdle      time.Duration // flow idle eviction

	SegmentSize int64
	SegmentAge  time.Duration
	Compressors int
	// WriterIO is how segments are written (writer.Options.IO): the zero
	// value, writer.IOBuffered, through the page cache; writer.IOAuto
	// with O_DIRECT where the filesystem takes it.
	WriterIO writer.IOMode
	// SegmentDirs are where new segments go, one directory per disk, in
	// turn (writer.Options.SegmentDirs); empty: Dir/segments.
	SegmentDirs []string
	// WaitCompress and SubFrame are writer.Options': an import waits for
	// the compressors; SubFrame sets the flow sub-frames (negative: none).
	WaitCompress bool
	SubFrame     int

	// Index keeps the store's index (Dir/index) up to date: it is opened or
	// created, catches up on blocks committed while nobody indexed them
	// (in Open when Lossless, else in the background once Run starts, so
	// a live port captures at once), and sees every durable block through
	// the writer's commit hook.
	Index bool
	// IndexReserve is the free space kept for the index: Badger writes
	// through memory-mapped files and cannot fail cleanly on a full
	// filesystem, so the index pauses below it (blocks stay queryable by
	// header scan, indexed later) and the writer drops blocks below 1.5
	// times it, counted as disk-full drops. Default DefaultIndexReserve;
	// negative: no reserve (the writer fills the filesystem).
	IndexReserve int64
	// IndexWait is how long to wait for an index another process holds
	// (a query, serve) before capturing without it (default 10 s).
	IndexWait time.Duration
	// IndexQueueBytes bounds the memory of the index's queue of committed
	// blocks waiting for Badger (index.Options.QueueBytes; default
	// index.DefaultQueueBytes). Blocks beyond it are holes, indexed later.
	IndexQueueBytes int64
	// IndexMemTable is the size of the index's Badger memtables
	// (index.Options.MemTableSize, default 16 MiB), which scales most of
	// Badger's memory (index.MemoryBound).
	IndexMemTable int64

	// StopTimeout bounds a stop (Stop, i.e. SIGTERM): draining the
	// workers, the writer and the record queue, then the index, which
	// writes what it can and leaves the rest for the next start's
	// catch-up (index.Index.CloseBy). Default DefaultStopTimeout, well
	// under systemd's TimeoutStopSec (120 s in the shipped unit).
	StopTimeout time.Duration

	// Lossless makes workers wait for buffers and the writer instead of
	// dropping: for imports, never for live ports. They wait for the disk
	// only: a block the compressors have no room for is stored raw
	// (writer.Writer.SubmitWait), so compression never sets the rate.
	Lossless bool

	// Retention limits what the store keeps (see RetentionOptions); the
	// zero value keeps everything.
	Retention RetentionOptions

	// Analytics, if set, runs the in-stream analytics in every worker with
	// this configuration (validated by Open) and stores their records in
	// Dir/messages. nil: no analytics.
	Analytics *analytics.Config
	// RecordQueueBytes bounds the memory of the records waiting between
	// the analyzers and the message store (default
	// DefaultRecordQueueBytes); records beyond it are dropped and counted.
	RecordQueueBytes int64
	// Messages configures the message store (frame and file sizes); the
	// zero value takes its defaults.
	Messages msgstore.Options

	// HeadersOnly stores packets cut to their headers while the analytics
	// see them whole (workers.Config.HeadersOnly).
	HeadersOnly bool

	// Pin, if set, is called on each worker's goroutine after it has been
	// locked to its OS thread, to pin it (DPDK lcores).
	Pin func(worker int) error

	Logger *slog.Logger
}

// DefaultStopTimeout is Options.StopTimeout's default.
const DefaultStopTimeout = 60 * time.Second

// DefaultIndexReserve is Options.IndexReserve's default: room for Badger
// to flush a memtable (16 MiB) and write its manifest, twice over.
const DefaultIndexReserve = 32 << 20

func (o *Options) indexReserve() int64 {
	switch {
	case o.IndexReserve < 0:
		return -1
	case o.IndexReserve == 0:
		return DefaultIndexReserve
	}
	return o.IndexReserve
}

// Pipeline is one run of sources through workers into the store.
type Pipeline struct {
	opts    Options
	pool    *block.Pool
	w       *writer.Writer
	workers []*workers.Worker
	ix      *index.Index
	ttq     *latencies
	ret     *retainer    // nil without retention
	stage   *recordStage // nil without analytics
	bg      *background  // the index catch-up beside a live capture; nil for imports and without an index
	an      []*analytics.Analyzer
	runID   uint32
	stop    atomic.Bool
	stopAt  atomic.Int64 // Unix ns of the first Stop
	started atomic.Int64 // Unix ns when Run began; Live reads it concurrently

	workerCPU []time.Duration
}

// Open opens the store for writing and builds n workers.
func Open(opts Options, n int) (*Pipeline, error) {
	if n < 1 {
		return nil, errors.New("pipeline: need at least one source")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BlockSize <= 0 {
		opts.BlockSize = block.DefaultSize
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.Blocks <= 0 {
		opts.Blocks = max(16, 32*n)
	}
	if opts.MaxBlockFlows <= 0 {
		opts.MaxBlockFlows = workers.DefaultMaxBlockFlows
	}
	pool := block.NewPool(opts.Blocks, opts.BlockSize, opts.MaxBlockFlows)
	var (
		ix   *index.Index
		hook writer.CommitHook
		err  error
		ttq  = new(latencies)
	)
	if opts.Index {
		if ix, err = openIndex(opts); err != nil {
			return nil, err
		}
		if ix != nil {
			// Time to queryable: from the arrival of a block's first (so
			// oldest) packet to the moment the index can return the block,
			// which is when its hook returns.
			ihook := ix.Hook()
			hook = func(m writer.BlockMeta, sum *block.Summary) {
				ihook(m, sum)
				if m.Arrived != 0 {
					ttq.add(time.Now().UnixNano() - m.Arrived)
				}
			}
		}
	}
	w, err := writer.Open(writer.Options{
		Dir:         opts.Dir,
		SegmentSize: opts.SegmentSize,
		SegmentAge:  opts.SegmentAge,
		Compressors: opts.Compressors,
		IO:          opts.WriterIO,
		SegmentDirs: opts.SegmentDirs,
		// Only a lossless pipeline may wait for the compressors.
		WaitCompress: opts.WaitCompress && opts.Lossless,
		SubFrame:     opts.SubFrame,
		// The compress queue is a quarter of the pool: when compression
		// falls behind, blocks go to disk raw (counted) well before the
		// workers run out of buffers and would have to drop packets.
		QueueLen:   max(2, opts.Blocks/4),
		CommitHook: hook,
		Reserve:    writerReserve(opts),
		Logger:     opts.Logger,
	})
	if err != nil {
		if ix != nil {
			ix.Close()
		}
		return nil, err
	}
	var bg *background
	if ix != nil {
		// Index what was committed while nobody indexed it (a crash, a
		// stop that left blocks to this start, an index rebuilt from
		// scratch), after the writer's recovery. An import does it now,
		// before new blocks arrive; a live capture in the background once
		// it runs (Run), since packets arriving before the workers run are
		// lost.
		var err error
		if opts.Lossless {
			err = catchUp(ix, opts)
		} else {
			bg, err = newBackground(opts.Dir)
		}
		if err != nil {
			w.Close()
			ix.Close()
			return nil, err
		}
	}
	p := &Pipeline{opts: opts, pool: pool, w: w, ix: ix, ttq: ttq, runID: newRunID(), bg: bg}
	if opts.Analytics != nil {
		if err := opts.Analytics.Validate(); err != nil {
			w.Close()
			if ix != nil {
				ix.Close()
			}
			return nil, fmt.Errorf("analytics: %w", err)
		}
		mo := opts.Messages
		if mo.Logger == nil {
			mo.Logger = opts.Logger
		}
		if mo.Reserve == 0 {
			// Message records keep the index's room as blocks do.
			mo.Reserve = writerReserve(opts)
		}
		ms, err := msgstore.OpenWriter(opts.Dir, mo)
		if err != nil {
			w.Close()
			if ix != nil {
				ix.Close()
			}
			return nil, fmt.Errorf("open message store: %w", err)
		}
		p.stage = newRecordStage(ms, opts.RecordQueueBytes, opts.Logger)
	}
	// The retainer runs even without limits (it then does nothing), so a
	// reload can set them on a running capture.
	{
		if p.ret, err = newRetainer(opts.Retention, opts.Dir, w, ix, opts.Logger); err != nil {
			w.Close()
			if ix != nil {
				ix.Close()
			}
			return nil, err
		}
		if p.stage != nil {
			p.ret.ms = p.stage.ms
		}
	}
	for i := 0; i < n; i++ {
		var an *analytics.Analyzer
		var wan workers.Analyzer
		if p.stage != nil {
			an = analytics.NewAnalyzer(*opts.Analytics, p.stage.emit)
			p.an = append(p.an, an)
			wan = an
		}
		p.workers = append(p.workers, workers.NewWorker(workers.Config{
			RunID:         p.runID,
			Analyzer:      wan,
			Queue:         uint16(i),
			Pool:          pool,
			Sink:          w,
			SealAfter:     opts.SealAfter,
			MaxBlockFlows: opts.MaxBlockFlows,
			MaxFlows:      opts.MaxFlows,
			FlowIdle:      opts.FlowIdle,
			Lossless:      opts.Lossless,
			HeadersOnly:   opts.HeadersOnly,
		}))
	}
	return p, nil
}

// Stop asks every worker to stop after its current burst. Safe to call from
// a signal handler goroutine, more than once.
//
// From the first call the stop must end within Options.StopTimeout: the
// index gets a deadline (index.Index.SetDeadline), so what it has not
// written by then is left for the next start instead of holding the stop.
func (p *Pipeline) Stop() {
	if p.stopAt.CompareAndSwap(0, time.Now().UnixNano()) && p.ix != nil {
		// Three quarters of the time for writing; the rest for the hole
		// markers and closing Badger (CloseBy).
		p.ix.SetDeadline(p.stopDeadline().Add(-p.opts.StopTimeout / 4))
	}
	if p.bg != nil {
		// What the catch-up has not indexed is the next start's.
		p.bg.interrupt()
	}
	p.stop.Store(true)
}

// stopDeadline is when a stop must have ended; zero when none was asked.
func (p *Pipeline) stopDeadline() time.Time {
	at := p.stopAt.Load()
	if at == 0 {
		return time.Time{}
	}
	return time.Unix(0, at).Add(p.opts.StopTimeout)
}

// Workers gives access to the workers (for live counters).
func (p *Pipeline) Workers() []*workers.Worker { return p.workers }

// Writer gives access to the writer (for live counters).
func (p *Pipeline) Writer() *writer.Writer { return p.w }

// Run runs worker i over sources[i] until every source is exhausted or Stop
// is called, then drains: every open block is sealed and every sealed block
// is written and made durable before Run returns. Sources are closed.
func (p *Pipeline) Run(sources []dataplane.Source) (Report, error) {
	if len(sources) != len(p.workers) {
		panic("BUG: one source per worker")
	}
	p.started.Store(time.Now().UnixNano())
	p.workerCPU = make([]time.Duration, len(sources))
	cpu0 := ProcessCPU()
	errs := make([]error, len(sources))
	if p.ret != nil {
		p.ret.start()
	}
	if p.stage != nil {
		go p.stage.run()
	}
	if p.bg != nil {
		p.bg.start(p.ix, p.opts)
	}
	var wg sync.WaitGroup
	for i, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A worker owns its OS thread: it is pinned there (DPDK lcore)
			// and its CPU time is read from that thread alone.
			runtime.LockOSThread()
			if p.opts.Pin == nil {
				defer runtime.UnlockOSThread()
			}
			// A pinned thread is never handed back: the goroutine exits
			// locked, so Go discards the thread with its CPU affinity and
			// DPDK registration instead of reusing it for other work.
			if p.opts.Pin != nil {
				if err := p.opts.Pin(i); err != nil {
					errs[i] = fmt.Errorf("pin worker %d: %w", i, err)
					return
				}
			}
			c0 := ThreadCPU()
			errs[i] = p.workers[i].Run(src, &p.stop)
			p.workerCPU[i] = ThreadCPU() - c0
		}()
	}
	wg.Wait()
	for i, src := range sources {
		if err := src.Close(); err != nil && errs[i] == nil {
			errs[i] = fmt.Errorf("close source %d: %w", i, err)
		}
	}
	// The workers flushed their analyzers when they stopped: every record
	// is in the stage's queue.
	var serr error
	if p.stage != nil {
		if err := p.stage.close(); err != nil {
			serr = fmt.Errorf("close message store: %w", err)
		}
	}
	werr := p.w.Close()
	if werr == nil {
		werr = serr
	}
	if p.bg != nil {
		// A run that ended by itself (its sources did) lets the catch-up
		// finish, as an import would have done it at Open; a stop has
		// interrupted it (Stop).
		// On a stop, wait at most half the stop timeout: the index's
		// close (CloseBy) has the rest.
		var by time.Time
		if dl := p.stopDeadline(); !dl.IsZero() {
			by = dl.Add(-p.opts.StopTimeout / 2)
		}
		if ok, err := p.bg.wait(by); err != nil {
			p.opts.Logger.Error("index catch-up failed; the next start or tapvault reindex indexes what it lacks", "err", err)
		} else if !ok {
			p.opts.Logger.Warn("index: background catch-up still in a write at the stop deadline's half: closing the index without it; the next start indexes the rest")
		}
	}
	if p.ret != nil {
		// A last pass once everything is written, then let go of the store.
		p.ret.stop()
		if p.ix != nil && p.stopAt.Load() == 0 {
			// The index is flushed at close anyway; doing it first moves its
			// watermark past every segment, so index drops the retainer
			// deferred while the index was behind happen in this pass.
			// Not on a stop: Flush would wait out a group write past the
			// stop deadline, which CloseBy bounds; the deferred drops
			// happen at the next start.
			if err := p.ix.Flush(); err != nil {
				p.opts.Logger.Error("index flush failed", "err", err)
			}
		}
		if err := p.ret.check(); err != nil {
			p.opts.Logger.Error("retention check failed", "err", err)
		}
		p.ret.close()
	}
	if p.ix != nil {
		// Blocks the index dropped at its queue during the run (it fell
		// behind) are holes: fill them from the segments now, so the run
		// leaves a complete index rather than a task for reindex.
		// Only lossless runs (imports) do it before they exit: a live
		// capture must stop promptly (a service manager's stop timeout),
		// and its holes are durable (M keys) and filled by the catch-up at
		// the next start or by tapvault reindex.
		// A stop (SIGTERM) does not wait for it either: its holes are
		// durable too.
		if holes := p.ix.Stats().Holes; holes > 0 && p.opts.Lossless && p.stopAt.Load() == 0 {
			p.opts.Logger.Info("index: filling the blocks it dropped while behind", "blocks", holes)
			if err := catchUp(p.ix, p.opts); err != nil && werr == nil {
				werr = fmt.Errorf("index catch-up: %w", err)
			}
		} else if holes > 0 {
			p.opts.Logger.Warn("index: blocks dropped while it was behind are not indexed yet; the next start or tapvault reindex fills them", "blocks", holes)
		}
		// The writer has called the hook for every committed block: make
		// them durable in the index too, or, on a stop, what fits in the
		// time left.
		var cerr error
		if dl := p.stopDeadline(); dl.IsZero() {
			cerr = p.ix.Close()
		} else {
			cerr = p.ix.CloseBy(dl)
		}
		if st := p.ix.Stats(); st.StopShed > 0 || errors.Is(cerr, index.ErrStopDeadline) {
			p.opts.Logger.Warn("index: stop deadline reached; the blocks not indexed yet are indexed by the next start's catch-up (or tapvault reindex)",
				"blocks_left", st.StopShed, "stop_timeout", p.opts.StopTimeout, "err", cerr)
			if errors.Is(cerr, index.ErrStopDeadline) {
				cerr = nil // nothing is lost: the next Open catches up
			}
		}
		if cerr != nil && werr == nil {
			werr = fmt.Errorf("close index: %w", cerr)
		}
	}
	r := p.report()
	r.WorkerCPU = p.workerCPU
	r.ProcessCPU = ProcessCPU() - cpu0
	return r, errors.Join(append(errs, werr)...)
}

// Report is the accounting of a run, stage by stage.
type Report struct {
	Elapsed time.Duration

	RxPackets    uint64 // packets the workers received
	RxBytes      uint64 // their wire bytes
	Stored       uint64 // packets in blocks handed to the writer
	DropNoBuffer uint64 // dropped at the block builder: no free block buffer
	DropWriter   uint64 // dropped at the writer queue: full
	Cut          uint64 // packets cut to the maximum record size
	Malformed    uint64 // packets with an inconsistent header (kept and stored)
	Truncated    uint64 // packets captured short inside a header (kept and stored)
	Blocks       uint64
	BlocksTimed  uint64
	Flows        uint64 // flows created across workers
	FlowsFull    uint64 // packets whose new flow found the flow table full (MaxFlows): stored, not tracked

	WorkerCPU  []time.Duration // CPU time of each worker's thread (RX, decode, flow, block build)
	ProcessCPU time.Duration   // CPU time of the whole process during Run

	Writer writer.Stats

	Index      *index.Stats // nil without an index
	IndexBytes int64
	// SegmentBytes is the size of the store's segment files (all runs):
	// what the index, which covers every run, is compared with.
	SegmentBytes int64
	// TimeToQueryable is, over the run's blocks, the time from the arrival
	// of a block's first packet to the index returning the block.
	TimeToQueryable LatencySummary

	RetentionDrops int   // segments retention dropped during the run
	RetentionBytes int64 // their bytes
	// RetentionMessageFiles and RetentionMessageBytes are the message
	// files retention dropped during the run.
	RetentionMessageFiles int
	RetentionMessageBytes int64

	Analytics *AnalyticsReport // nil without analytics
}

// AnalyticsReport sums the analyzers' and the record stage's counters.
type AnalyticsReport struct {
	Records      uint64 // records the analyzers emitted
	DropQueue    uint64 // records lost at the record queue (full)
	DropStore    uint64 // records the message store lost (write errors, codec limits, below its free-space reserve)
	Stored       uint64 // records the message store wrote
	Exchanges    uint64
	Unanswered   uint64
	Conns        uint64 // connections analysed
	ConnsFull    uint64 // packets of connections not analysed (limits)
	ParsersFull  uint64 // connections timed but not decoded (MaxParsers)
	Defragged    uint64 // UDP datagrams reassembled from IP fragments
	FragDropped  uint64 // IP fragments not reassembled (all reasons; still stored)
	GapBytes     uint64
	Retrans      uint64
	OutOfOrder   uint64
	BufferFull   uint64
	MessageBytes int64 // size of Dir/messages
}

func (p *Pipeline) report() Report {
	r := Report{Elapsed: time.Duration(time.Now().UnixNano() - p.started.Load()), Writer: p.w.Stats()}
	if p.ret != nil {
		r.RetentionDrops, r.RetentionBytes = int(p.ret.drops.Load()), p.ret.bytes.Load()
		r.RetentionMessageFiles, r.RetentionMessageBytes = int(p.ret.msgDrops.Load()), p.ret.msgBytes.Load()
	}
	if p.ix != nil {
		st := p.ix.Stats()
		r.Index = &st
		lsm, vlog := p.ix.Size()
		r.IndexBytes = lsm + vlog
		// The index covers the whole store, not only this run.
		if n, err := writer.SegmentBytes(p.opts.Dir); err == nil {
			r.SegmentBytes = n
		}
		r.TimeToQueryable = p.ttq.summary()
	}
	if p.stage != nil {
		r.Analytics = p.analyticsReport()
	}
	for _, w := range p.workers {
		s := w.Stats()
		r.RxPackets += s.RxPackets.Load()
		r.RxBytes += s.RxBytes.Load()
		r.Stored += s.Stored.Load()
		r.DropNoBuffer += s.DropNoBuffer.Load()
		r.DropWriter += s.DropSink.Load()
		r.Cut += s.Cut.Load()
		r.Malformed += s.Malformed.Load()
		r.Truncated += s.Truncated.Load()
		r.Blocks += s.Blocks.Load()
		r.BlocksTimed += s.BlocksTimed.Load()
		r.Flows += s.FlowsCreated.Load()
		r.FlowsFull += s.FlowsFull.Load()
	}
	return r
}

// SetRetention replaces the retention limits of a running pipeline (a
// SIGHUP reload); the next check, within RetentionOptions.Every, applies
// them. A negative value is refused.
func (p *Pipeline) SetRetention(o RetentionOptions) error {
	if o.MaxBytes < 0 || o.MaxAge < 0 || o.KeepFreePercent < 0 || o.KeepFreePercent >= 100 {
		return fmt.Errorf("retention: bad limits %+v", o)
	}
	p.ret.setLimits(o)
	return nil
}

// Index is the run's index, nil without one.
func (p *Pipeline) Index() *index.Index { return p.ix }

// Live returns the report so far, for progress display while Run runs.
func (p *Pipeline) Live() Report { return p.report() }

// newRunID returns a random non-zero run ID for block IDs.
func newRunID() uint32 {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return uint32(time.Now().UnixNano())
		}
		if v := binary.LittleEndian.Uint32(b[:]); v != 0 {
			return v
		}
	}
}

func (p *Pipeline) analyticsReport() *AnalyticsReport {
	a := &AnalyticsReport{MessageBytes: msgstore.Size(p.opts.Dir)}
	a.Stored, a.DropStore = p.stage.storeCounts()
	for _, an := range p.an {
		s := an.Stats()
		a.Records += s.Records.Load()
		a.DropQueue += s.RecordsDrop.Load()
		a.Exchanges += s.Exchanges.Load()
		a.Unanswered += s.Unanswered.Load()
		a.Conns += s.ConnsTotal.Load()
		a.ConnsFull += s.ConnsFull.Load()
		a.ParsersFull += s.ParsersFull.Load()
		a.Defragged += s.Defragged.Load()
		for i := range s.FragDropped {
			a.FragDropped += s.FragDropped[i].Load()
		}
		a.GapBytes += s.GapBytes.Load()
		a.Retrans += s.Retrans.Load()
		a.OutOfOrder += s.OutOfOrder.Load()
		a.BufferFull += s.BufferFull.Load()
	}
	return a
}

// Analyzers returns the workers' analyzers (nil without analytics).
func (p *Pipeline) Analyzers() []*analytics.Analyzer { return p.an }

// SetAnalytics replaces the analytics configuration of a running pipeline
// (a SIGHUP reload): each worker applies it at its next tick. Connections
// being decoded keep their decoder. A pipeline opened without analytics
// cannot start them.
func (p *Pipeline) SetAnalytics(c analytics.Config) error {
	if p.stage == nil {
		return errors.New("analytics are off in this capture (started with --no-analytics or analytics.enabled false): restart to turn them on")
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("analytics: %w", err)
	}
	for _, an := range p.an {
		an.Reload(c)
	}
	return nil
}

// writerReserve is the free space the writer keeps: 1.5 times the index's
// reserve when there is an index, so the index is never the one to run out.
func writerReserve(o Options) int64 {
	if !o.Index || o.indexReserve() < 0 {
		return 0
	}
	r := o.indexReserve()
	return r + r/2
}
