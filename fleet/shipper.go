package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"tapvault/analytics"
	"tapvault/block"
	"tapvault/msgstore"
	"tapvault/packet"
	"tapvault/writer"
)

// Options configure a Shipper. Zero values take the defaults given.
type Options struct {
	Dir    string  // the store to ship (required)
	Sensor string  // this sensor's name in every row (required)
	Client *Client // the ClickHouse server and database (required)

	// BatchRecords is the most records read into one INSERT (default
	// 20000, about 12 MB of JSON): the shipper's memory bound.
	BatchRecords int
	// Poll is how often a caught-up shipper looks for new records
	// (default 1 s).
	Poll time.Duration
	// HealthEvery is how often a health report is taken and shipped
	// (default 10 s), whether ClickHouse answers or not.
	HealthEvery time.Duration
	// HealthQueue is the most health reports kept in memory while
	// ClickHouse does not take them (default: an hour's at HealthEvery,
	// 360 at 10 s, at most DefaultHealthQueue; about 3 KB a report). They
	// are sent in order when it answers; past the bound the oldest is
	// dropped and counted (health.go).
	HealthQueue int
	// MaxBackoff caps the wait between retries while ClickHouse fails
	// (default 30 s; the first wait is 250 ms, doubling).
	MaxBackoff time.Duration
	// Health adds the capture's own counters (drops, errors) to each
	// health report; nil ships only the shipper's, the disk's and the
	// clock's.
	Health func() map[string]float64
	// NoFlows skips the flow_blocks table.
	NoFlows bool
	Logger  *slog.Logger
}

// flowGroupBytes is the span of segment offsets whose blocks form one
// flow_blocks group: 32 blocks of the default 1 MiB. A group's identity is
// its segment and its offset rounded down to this, fixed by where the
// blocks lie, so re-shipping a group from any cursor makes the same rows.
const flowGroupBytes = 32 << 20

// maxFlowGroups bounds the groups one pass aggregates in memory.
const maxFlowGroups = 4

// Stats are a Shipper's counters.
type Stats struct {
	Records      uint64 // records shipped (a re-shipped batch counts again)
	FlowRows     uint64 // flow_blocks rows shipped
	Batches      uint64 // successful inserts of records
	Errors       uint64 // failed passes (each retried)
	HealthErrors uint64 // failed attempts to ship health reports (each retried)
	// HealthSent is the health reports ClickHouse holds, HealthQueued those
	// waiting for it, HealthDropped those the full queue dropped.
	HealthSent, HealthDropped uint64
	HealthQueued              int
	// LagNs is now minus the time of the oldest record not yet shipped,
	// 0 when caught up. BacklogBytes is the message bytes not yet shipped.
	LagNs, BacklogBytes int64
	Cursor              Cursor
	LastError           string // the last failure, "" once a pass succeeds
}

// Shipper ships one store's message records, flow summaries and health to
// ClickHouse, at least once: it inserts a batch, then makes the cursor
// after it durable. A crash between the two ships the batch again, which
// the tables' ReplacingMergeTree keys make harmless. While ClickHouse is
// down it retries with capped backoff and reads nothing new: the store is
// the buffer, and retention keeps what the cursor has not passed.
type Shipper struct {
	opts Options
	log  *slog.Logger
	rd   *msgstore.Reader
	seg  *writer.Reader // nil until the store has segments
	lock *os.File       // DIR/fleet/lock, flocked while the shipper lives

	mu  sync.Mutex // guards cur, lastErr, lagNs, backlog
	cur Cursor

	lastErr                                        string
	lagNs, backlog                                 int64
	records, flowRows, batches, errs, healthErrors atomic.Uint64
	buf                                            []byte

	// The health queue (health.go): reports not yet in ClickHouse, oldest
	// first, at most hcap. Only Run's goroutine sends; hmu guards hq for
	// the readers of its length.
	hmu                       sync.Mutex
	hq                        []*healthReport
	hcap                      int
	names                     map[string]string // interned health names
	dropLogged                bool              // a drop was logged since the last insert
	healthSent, healthDropped atomic.Uint64
}

// NewShipper opens the store under opts.Dir for shipping from its saved
// cursor (from the start when there is none).
func NewShipper(opts Options) (*Shipper, error) {
	if opts.Dir == "" || opts.Sensor == "" || opts.Client == nil {
		return nil, errors.New("fleet shipper: a store, a sensor name and a ClickHouse client are required")
	}
	if opts.BatchRecords <= 0 {
		opts.BatchRecords = 20000
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.HealthEvery <= 0 {
		opts.HealthEvery = 10 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	lock, err := lockShipping(opts.Dir)
	if err != nil {
		return nil, err
	}
	cur, _, err := LoadCursor(opts.Dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	rd, err := msgstore.OpenReader(opts.Dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s := &Shipper{opts: opts, log: opts.Logger, rd: rd, cur: cur, lock: lock,
		hcap: healthQueueCap(opts), names: map[string]string{}}
	// The cursor file exists from the start, so retention keeps the
	// unshipped files even before the first batch is delivered.
	if err := SaveCursor(opts.Dir, cur); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// lockShipping takes DIR/fleet/lock for this process: two shippers of one
// store would each save their own cursor, and one could move it back.
func lockShipping(dir string) (*os.File, error) {
	path := filepath.Join(dir, "fleet", "lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("fleet shipper: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fleet shipper: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another process ships the store in %s (a capture with --fleet-clickhouse, or tapvault fleet ship): one shipper per store", dir)
		}
		return nil, fmt.Errorf("fleet shipper: lock %s: %w", path, err)
	}
	return f, nil
}

// Close releases the store's readers and the shipping lock. Health
// reports still queued are lost with it, and logged.
func (s *Shipper) Close() error {
	if n := s.HealthQueued(); n > 0 {
		s.log.Warn("fleet: health reports not shipped at close (kept in memory only)", "reports", n)
	}
	if s.seg != nil {
		s.seg.Close()
	}
	err := s.rd.Close()
	s.lock.Close() // releases the flock
	return err
}

// Stats returns the shipper's counters.
func (s *Shipper) Stats() Stats {
	queued := s.HealthQueued()
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Records: s.records.Load(), FlowRows: s.flowRows.Load(), Batches: s.batches.Load(),
		Errors: s.errs.Load(), HealthErrors: s.healthErrors.Load(),
		HealthSent: s.healthSent.Load(), HealthDropped: s.healthDropped.Load(), HealthQueued: queued,
		LagNs: s.lagNs, BacklogBytes: s.backlog, Cursor: s.cur, LastError: s.lastErr,
	}
}

// Run ships until ctx ends (follow) or until it has caught up with the
// store (not follow), retrying failures with capped exponential backoff
// either way: a centre that is down for hours delays shipping, it does not
// end it. A health report is taken every HealthEvery throughout, backoff
// included, and queued until ClickHouse takes it (health.go). It returns
// nil when caught up or stopped by ctx, or a failure that retrying cannot
// fix (a damaged cursor file).
func (s *Shipper) Run(ctx context.Context, follow bool) error {
	backoff := time.Duration(0)
	nextHealth := time.Now()
	var healthRetry time.Time // after a failed flush: when a good pass may try again
	health := func() {
		s.sampleHealth()
		nextHealth = time.Now().Add(s.opts.HealthEvery)
		if s.flushHealth(ctx) != nil {
			healthRetry = time.Now().Add(time.Second)
		}
	}
	for {
		n, err := s.ShipOnce(ctx)
		s.measureBacklog()
		if ctx.Err() != nil {
			s.finalHealth()
			return nil
		}
		switch {
		case !time.Now().Before(nextHealth):
			health()
		case err == nil && s.HealthQueued() > 0 && !time.Now().Before(healthRetry):
			// ClickHouse answers again: what waited goes now, in order.
			if s.flushHealth(ctx) != nil {
				healthRetry = time.Now().Add(time.Second)
			}
		}
		var wait time.Duration
		switch {
		case err != nil:
			s.errs.Add(1)
			s.mu.Lock()
			s.lastErr = err.Error()
			s.mu.Unlock()
			backoff = min(max(2*backoff, 250*time.Millisecond), s.opts.MaxBackoff)
			wait = backoff
			if Retryable(err) {
				s.log.Warn("fleet: ship failed; retrying (the store keeps the records)", "err", err, "retry_in", wait)
			} else {
				s.log.Error("fleet: ClickHouse refused a batch; retrying (run tapvault fleet init if the schema is missing)", "err", err, "retry_in", wait)
			}
		case n > 0:
			backoff = 0
			s.mu.Lock()
			s.lastErr = ""
			s.mu.Unlock()
			continue
		default:
			backoff = 0
			s.mu.Lock()
			s.lastErr = ""
			s.mu.Unlock()
			if !follow {
				s.sampleHealth()
				s.flushHealth(ctx)
				return nil
			}
			wait = s.opts.Poll
		}
		retry := time.NewTimer(wait)
	waiting:
		for {
			due := time.NewTimer(time.Until(nextHealth))
			select {
			case <-ctx.Done():
				retry.Stop()
				due.Stop()
				s.finalHealth()
				return nil
			case <-retry.C:
				due.Stop()
				break waiting
			case <-due.C:
				health() // on time, even while a retry waits
			}
		}
	}
}

// ShipOnce ships one batch of records and one pass of flow summaries, then
// saves the cursor. It returns how many rows it shipped (0: caught up).
func (s *Shipper) ShipOnce(ctx context.Context) (int, error) {
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	next := cur
	shipped := 0

	clk := ReadClock()
	ver := uint64(time.Now().UnixNano())
	s.buf = s.buf[:0]
	n := 0
	var encErr error
	mc, err := s.rd.ReadFrom(ctx, cur.Messages, msgstore.ReadOptions{
		MaxRecords: s.opts.BatchRecords,
		OnCorrupt: func(err error) {
			s.log.Warn("fleet: skipping damaged messages (not shipped)", "err", err)
		},
	}, func(r *analytics.Record) error {
		var err error
		if s.buf, err = appendRecordRow(s.buf, s.opts.Sensor, r, clk, ver); err != nil {
			encErr = err
			return err
		}
		n++
		return nil
	})
	if err != nil && encErr == nil {
		return 0, fmt.Errorf("read messages from %v: %w", cur.Messages, err)
	}
	if encErr != nil {
		// A record JSON cannot encode (never expected): stop here rather
		// than skip it silently.
		return 0, fmt.Errorf("encode record after %v: %w", mc, encErr)
	}
	if n > 0 {
		if err := s.opts.Client.InsertJSON(ctx, "records", s.buf); err != nil {
			return 0, err
		}
		s.records.Add(uint64(n))
		s.batches.Add(1)
		shipped += n
	}
	next.Messages = mc

	if !s.opts.NoFlows {
		rows, fc, err := s.shipFlows(ctx, cur, ver)
		if err != nil {
			// The records went: keep their cursor, retry the flows.
			if n > 0 {
				s.save(next)
			}
			return shipped, err
		}
		next.Flows, next.FlowsBlocks = fc.Flows, fc.FlowsBlocks
		shipped += rows
	}
	if next != cur {
		if err := s.save(next); err != nil {
			return shipped, err
		}
	}
	if len(s.buf) > 4<<20 && n < s.opts.BatchRecords/4 {
		s.buf = nil // a burst grew it; do not keep it while idle
	}
	return shipped, nil
}

func (s *Shipper) save(c Cursor) error {
	if err := SaveCursor(s.opts.Dir, c); err != nil {
		return err
	}
	s.mu.Lock()
	s.cur = c
	s.mu.Unlock()
	return nil
}

// errWalkFull stops a summary walk once maxFlowGroups are aggregated.
var errWalkFull = errors.New("flow groups full")

type flowGroup struct {
	seg, first uint32
	firstRef   writer.Ref
	blocks     int
	flows      map[packet.FlowKey]*flowAgg
}

// shipFlows aggregates the block summaries from the flow cursor by group
// and inserts one row per flow per group. The last group may still grow, so
// the cursor stays at its first block and it is shipped again (replacing
// its rows) when it has more blocks.
func (s *Shipper) shipFlows(ctx context.Context, cur Cursor, ver uint64) (int, Cursor, error) {
	if s.seg == nil {
		if _, err := os.Stat(filepath.Join(s.opts.Dir, "segments")); err != nil {
			return 0, cur, nil // no packets stored (yet)
		}
		r, err := writer.OpenReader(s.opts.Dir, writer.WithReaderLogger(s.log))
		if err != nil {
			return 0, cur, nil
		}
		s.seg = r
	}
	var groups []*flowGroup
	err := s.seg.WalkSummaries(cur.Flows, func(meta writer.BlockMeta, sum *block.Summary) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		seg, first := meta.Ref.Segment(), meta.Ref.Offset()&^(flowGroupBytes-1)
		var g *flowGroup
		if len(groups) > 0 && groups[len(groups)-1].seg == seg && groups[len(groups)-1].first == first {
			g = groups[len(groups)-1]
		} else {
			if len(groups) == maxFlowGroups {
				return errWalkFull
			}
			g = &flowGroup{seg: seg, first: first, firstRef: meta.Ref, flows: map[packet.FlowKey]*flowAgg{}}
			groups = append(groups, g)
		}
		g.blocks++
		for i := range sum.Flows {
			f := &sum.Flows[i]
			a := g.flows[f.Key]
			if a == nil {
				a = &flowAgg{key: f.Key}
				g.flows[f.Key] = a
			}
			a.add(f)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errWalkFull) {
		return 0, cur, fmt.Errorf("read block summaries from %v: %w", cur.Flows, err)
	}
	if len(groups) == 0 || len(groups) == 1 && groups[0].firstRef == cur.Flows && groups[0].blocks == cur.FlowsBlocks {
		return 0, cur, nil // nothing new
	}
	var rows []any
	for _, g := range groups {
		for _, a := range g.flows {
			r := a.row(s.opts.Sensor, g.seg, g.first, uint32(g.blocks), ver)
			rows = append(rows, &r)
		}
	}
	if err := s.opts.Client.Insert(ctx, "flow_blocks", rows); err != nil {
		return 0, cur, err
	}
	s.flowRows.Add(uint64(len(rows)))
	last := groups[len(groups)-1]
	cur.Flows, cur.FlowsBlocks = last.firstRef, last.blocks
	return len(rows), cur, nil
}

// measureBacklog updates the lag and the unshipped bytes.
func (s *Shipper) measureBacklog() {
	s.mu.Lock()
	cur := s.cur.Messages
	s.mu.Unlock()
	b, err := msgstore.BacklogAfter(s.opts.Dir, cur)
	if err != nil {
		return
	}
	var lag int64
	if b.Bytes > 0 && b.OldestTS > 0 {
		lag = max(time.Now().UnixNano()-b.OldestTS, 0)
	}
	s.mu.Lock()
	s.lagNs, s.backlog = lag, b.Bytes
	s.mu.Unlock()
}
