package query

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tapvault/analytics"
	"tapvault/block"
	"tapvault/msgquery"
	"tapvault/msgstore"
	"tapvault/writer"
)

// RefSlack widens the time range searched for a record's blocks: a block's
// [MinTS, MaxTS] holds every packet in it, so the record's own time range
// is enough; the slack only covers a record whose times are rounded.
const RefSlack = 1_000_000 // 1 ms

// RefResult says how a drill-down went.
type RefResult struct {
	Wanted   int // refs asked for
	Found    int // packets returned
	NotSaved int // refs with block 0: the packet was never stored (no block buffer)
	Missing  int // refs to blocks not found (refused by the writer, lost, dropped by retention, corrupt)
	Blocks   int // blocks read
}

// Packets calls fn for the stored packets that refs name (the packets of a
// message record), in time order (ties in ref order). The blocks are found
// among those overlapping [from, to] (the record's time range), through the
// index when there is one, and identified by the block ID in their header.
// Packets that cannot be found are counted, not an error: a drill-down
// returns everything that is still there.
func (s *Store) Packets(ctx context.Context, refs []analytics.PktRef, from, to int64, fn func(p *Packet) error) (res RefResult, err error) {
	RunLowPriority(func() { res, err = s.packets(ctx, refs, from, to, fn) })
	return res, err
}

type blockKey struct {
	id    uint64
	queue uint16
}

func (s *Store) packets(ctx context.Context, refs []analytics.PktRef, from, to int64, fn func(p *Packet) error) (RefResult, error) {
	res := RefResult{Wanted: len(refs)}
	want := map[blockKey]map[uint32]int{} // ordinal -> position in refs
	queues := map[uint16]bool{}
	for i, r := range refs {
		if r.Block == 0 {
			res.NotSaved++
			continue
		}
		k := blockKey{r.Block, r.Queue}
		if want[k] == nil {
			want[k] = map[uint32]int{}
		}
		if _, dup := want[k][r.Ord]; !dup {
			want[k][r.Ord] = i
		}
		queues[r.Queue] = true
	}
	if len(want) == 0 {
		return res, nil
	}
	blocks, _, err := s.plannedBlocks(Request{From: from - RefSlack, To: to + RefSlack})
	if err != nil {
		return res, err
	}
	type hit struct {
		pos int
		p   Packet
	}
	var hits []hit
	var buf writer.BlockBuf
	found := map[blockKey]bool{}
	for _, m := range blocks {
		if !queues[m.Queue] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		meta, err := s.R.ReadBlock(m.Ref, &buf)
		if err != nil {
			var ce *writer.CorruptionError
			if errors.As(err, &ce) || errors.Is(err, writer.ErrSegmentGone) {
				s.Log.Warn("drill-down: skipping a block that cannot be read", "block", m.Ref, "err", err)
				continue
			}
			return res, fmt.Errorf("read block %s: %w", m.Ref, err)
		}
		k := blockKey{meta.ID, meta.Queue}
		ords := want[k]
		if ords == nil || found[k] {
			continue
		}
		found[k] = true
		res.Blocks++
		p := buf.Records()
		for ord := uint32(0); len(p) > 0; ord++ {
			rec, rest, err := block.NextRecord(p)
			if err != nil {
				s.Log.Warn("drill-down: bad packet record", "block", m.Ref, "err", err)
				break
			}
			p = rest
			if pos, ok := ords[ord]; ok {
				data := append([]byte(nil), rec.Data...)
				rec.Data = data
				hits = append(hits, hit{pos: pos, p: Packet{Record: rec, Ref: m.Ref, Ordinal: ord}})
			}
		}
	}
	for k, ords := range want {
		if !found[k] {
			res.Missing += len(ords)
		}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if hits[i].p.TS != hits[j].p.TS {
			return hits[i].p.TS < hits[j].p.TS
		}
		return hits[i].pos < hits[j].pos
	})
	for i := range hits {
		if err := fn(&hits[i].p); err != nil {
			return res, err
		}
		res.Found++
	}
	return res, nil
}

// MessageSel selects message records: a time range, an expression (nil:
// all), and whether to link tiers (front-end exchanges to their backend
// calls) within Window ns. NoDetail passes the records without their
// Fields and Packets (msgstore.Query.NoDetail), for callers that read
// neither, the expression included (msgquery.Expr.UsesFields).
// Exchanges leaves out the tcp connection records (msgquery.IsConnection),
// which the tier linker then never holds: for callers that ignore them (a
// diagnosis, the tiers), that is four records in ten fewer to copy and
// order on the 1.1M-record store of docs/PERFORMANCE.md, and fewer to
// read: the message store keeps them in frames of their own, which the
// scan skips (msgstore.Query.Kind).
type MessageSel struct {
	From, To  int64
	Expr      *msgquery.Expr
	Tiers     bool
	Window    int64
	NoDetail  bool
	Exchanges bool
	// Pos, when not nil and without Tiers, is set to each record's place
	// in the store before fn gets it (msgstore.Query.Pos): ReadMessagesAt
	// reads it again with its detail.
	Pos *msgstore.Pos

	// prune, when Expr is nil, lets the skip index leave out what it
	// cannot match (pruneBy) without matching records by it: a shared
	// pass (share.go) whose members all prune alike.
	prune *msgquery.Expr
}

func (s *MessageSel) match(r *analytics.Record) bool { return s.Expr == nil || s.Expr.Match(r) }

// keeps says whether a scan without tier links hands r to its caller: the
// expression selects it, and it is not a connection record left out
// (Exchanges). conn is the scan's own.
func (s *MessageSel) keeps(r *analytics.Record, conn *msgquery.ConnTest) bool {
	return s.match(r) && !(s.Exchanges && conn.Is(r))
}

// ScanMessages calls fn for each stored record sel selects, in store order
// (about the order exchanges completed; msgstore.Reader.Scan), with its
// tier links when sel.Tiers: then each exchange comes once its links are
// final, a window after it was read, and a connection record (never
// linked) as it is read, so ahead of exchanges read before it. The record is fn's only during the call. Parts of the message
// store that are damaged are skipped and returned as warnings.
func ScanMessages(ctx context.Context, dir string, sel MessageSel, fn func(r *analytics.Record, t *msgquery.Tier) error) (warnings []error, err error) {
	rd, err := msgstore.OpenReader(dir)
	if err != nil {
		return nil, err
	}
	q := msgstore.Query{From: sel.From, To: sel.To, NoDetail: sel.NoDetail, Workers: scanWorkers(), Spawn: goLowPriority,
		OnCorrupt: func(err error) { warnings = append(warnings, err) }}
	if sel.Exchanges {
		q.Kind = msgstore.Exchanges // the connection records' frames are skipped unread
	}
	var conn msgquery.ConnTest
	if !sel.Tiers {
		// Tier links need the backend exchanges whatever the expression
		// selects, so the skip index prunes only without them.
		if sel.Expr != nil {
			pruneBy(&q, sel.Expr)
		} else if sel.prune != nil {
			pruneBy(&q, sel.prune)
		}
		q.Pos = sel.Pos
		err = rd.Scan(ctx, q, func(r *analytics.Record) error {
			if !sel.keeps(r, &conn) {
				return nil
			}
			r.UpgradeClass()
			return fn(r, nil)
		})
		return warnings, err
	}
	tl, err := msgquery.NewTierLinker(sel.Window, nil)
	if err != nil {
		return nil, err
	}
	whole := false
	if sel.Expr != nil && (len(sel.Expr.Terms()) > 0 || len(sel.Expr.AnyTerms()) > 0) {
		// The first pass's damaged frames are reported when it finds
		// nothing; otherwise the second pass reports those it reads.
		var preWarn []error
		pq := q
		pq.OnCorrupt = func(err error) { preWarn = append(preWarn, err) }
		nq, found, err := narrowForTiers(ctx, rd, pq, sel)
		if err != nil || found == 0 {
			return preWarn, err
		}
		if found > 0 && found <= maxWhole && !sel.NoDetail && !sel.Expr.UsesFields() {
			// A few records selected (an exchange's view): the window
			// around them is linked without detail, and only the
			// selected ones are read whole (scanLinked): decoding every
			// record of the window with its detail was 0.5 s of the
			// 0.6 s one ID's tiers took on the 1.8M-record store.
			nq.NoDetail = true
			whole = true
		}
		nq.OnCorrupt = q.OnCorrupt
		q = nq
	}
	err = scanLinked(ctx, rd, q, sel, tl, whole, fn)
	return warnings, err
}

// ReadMessagesAt calls fn for each record at ps (positions a scan gave
// through MessageSel.Pos), with its fields and refs, in store order. A
// record whose file retention removed since is skipped; damaged parts of
// the store are skipped and returned as warnings.
func ReadMessagesAt(ctx context.Context, dir string, ps []msgstore.Pos, fn func(r *analytics.Record, pos msgstore.Pos) error) (warnings []error, err error) {
	rd, err := msgstore.OpenReader(dir)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	err = rd.ReadAt(ctx, ps, func(err error) { warnings = append(warnings, err) }, func(r *analytics.Record, pos msgstore.Pos) error {
		r.UpgradeClass()
		return fn(r, pos)
	})
	return warnings, err
}

// pruneBy sets q to skip, through the message store's skip index, what e
// cannot match: the terms every match has, or else the alternatives one of
// which it has, and its protocols.
func pruneBy(q *msgstore.Query, e *msgquery.Expr) {
	q.Terms, q.Protos = e.Terms(), e.Protos()
	if len(q.Terms) == 0 {
		q.AnyTerms = e.AnyTerms()
	}
}

// maxWhole is how many selected records a narrowed tier scan reads whole
// one by one (a frame each) instead of decoding the whole window's detail.
const maxWhole = 16

// maxNarrowed is how many matching records narrowForTiers looks for: past
// it, the scan is not narrowed (the records it found are many, and their
// time spans as good as the whole).
const maxNarrowed = 1000

// narrowForTiers narrows a scan with tier links to the time around the
// records the expression selects, found first through the skip index (an
// exchange's view asks for one ID with its tiers: reading every record of
// a 1.4M-record store to link them took 5 s). A record's tier context is
// the records whose spans overlap its own (the front exchange that holds a
// backend call, the backend calls inside a front's wait, the other fronts
// that hold those calls), and the store's time filter keeps every record
// that overlaps the range, so reading the selected records' spans with a
// margin gives them the full scan's links: the records are pushed in the
// same order, and with fewer of them the linker holds each at least as
// long. (It can only link more where the full scan, past its documented
// disorder bound, released a front too early.) The margin, the smaller of
// the window and 1 s, is for records without a response, whose spans end
// early. found is how many records match (0: none, and nothing to read),
// or -1 when the scan is not narrowed (more than maxNarrowed, or matches
// without times).
func narrowForTiers(ctx context.Context, rd *msgstore.Reader, q msgstore.Query, sel MessageSel) (_ msgstore.Query, found int, err error) {
	pre := q
	pruneBy(&pre, sel.Expr)
	pre.NoDetail = !sel.Expr.UsesFields()
	lo, hi, n := int64(math.MaxInt64), int64(math.MinInt64), 0
	errMany := errors.New("many")
	err = rd.Scan(ctx, pre, func(r *analytics.Record) error {
		if !sel.match(r) {
			return nil
		}
		n++
		if n > maxNarrowed {
			return errMany
		}
		for _, t := range [4]int64{r.ReqFirst, r.ReqLast, r.RespFirst, r.RespLast} {
			if t != 0 {
				lo, hi = min(lo, t), max(hi, t)
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errMany):
		return q, -1, nil
	case err != nil:
		return q, -1, err
	case n == 0:
		return q, 0, nil
	case lo > hi:
		return q, -1, nil // matches without times: read everything
	}
	w := sel.Window
	if w <= 0 {
		w = msgquery.DefaultTierWindow
	}
	w = min(w, int64(time.Second))
	from, to := lo-w, hi+w
	if q.From != 0 {
		from = max(from, q.From)
	}
	if q.To != 0 {
		to = min(to, q.To)
	}
	q.From, q.To = max(from, 1), to
	return q, n, nil
}

// pipeBatchLen is how many linked records go to fn's stage at a time.
const pipeBatchLen = 512

// errPipeStopped stops a scan whose fn stage has failed.
var errPipeStopped = errors.New("fn stopped")

// linkBatchLen is how many released records go back to the scan at a
// time.
const linkBatchLen = 256

// recycler passes the records the linker has released back to the scan,
// which decodes the next records into them (msgstore.Query.Records): a
// stack of batches of linkBatchLen, up to a linker's most pending records.
// The linker releases a window's worth at once when the records jump
// ahead in time (a store imported from overlapping traces, a burst): a
// channel of a few batches took 2048 of them and the rest became garbage,
// and a diagnosis of 1.8M records allocated 257 MB of new ones (its
// memory profile, /var/tmp/big).
type recycler struct {
	mu      sync.Mutex
	batches [][]*analytics.Record
	cur     []*analytics.Record // the batch records are taken from
}

// put keeps b for the scan, or reports false when it has enough.
func (r *recycler) put(b []*analytics.Record) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) >= msgquery.DefaultMaxPending/linkBatchLen {
		return false
	}
	r.batches = append(r.batches, b)
	return true
}

// record returns a released record, or a new one: the scan's workers
// decode into it (msgstore.Query.Records).
func (r *recycler) record() *analytics.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cur) == 0 {
		n := len(r.batches)
		if n == 0 {
			return new(analytics.Record)
		}
		r.cur = r.batches[n-1]
		r.batches[n-1] = nil
		r.batches = r.batches[:n-1]
	}
	n := len(r.cur) - 1
	rec := r.cur[n]
	r.cur[n] = nil
	r.cur = r.cur[:n]
	return rec
}

// scanLinked is ScanMessages with tiers. The scan's workers decode each record
// into one of the records the linker released before
// (msgstore.Query.Records), and the linker, on this goroutine, holds it
// without a copy until its links are final; fn has it only during its
// call, and it goes back to the workers for a later record: about a
// window's worth of records are allocated, not one per record (which,
// with the garbage collection it caused, was a third of a diagnosis on
// 1.1M records). Decoding spreads over the workers; linking stays on this
// goroutine and fn's work has one of its own (fnStage), but for whole.
//
// With whole, the scan reads no detail (q.NoDetail) and each record the
// expression selects (one that uses no fields) is read again whole, from
// its place in the store, before fn gets it: for a few selected records.
func scanLinked(ctx context.Context, rd *msgstore.Reader, q msgstore.Query, sel MessageSel, tl *msgquery.TierLinker, whole bool, fn func(r *analytics.Record, t *msgquery.Tier) error) error {
	var (
		freed recycler
		conn  msgquery.ConnTest
		one   [1]msgquery.Linked
		pos   msgstore.Pos
		posOf map[*analytics.Record]msgstore.Pos // whole: the selected records held
	)
	back := (&freeList{r: &freed}).add
	if whole {
		q.Pos, posOf = &pos, map[*analytics.Record]msgstore.Pos{}
		// Each selected record read again whole, here: they are few.
		inner := fn
		fn = func(r *analytics.Record, t *msgquery.Tier) error {
			p, ok := posOf[r]
			if !ok {
				return nil
			}
			delete(posOf, r)
			var err error
			found := false
			rerr := rd.ReadAt(ctx, []msgstore.Pos{p}, q.OnCorrupt, func(w *analytics.Record, _ msgstore.Pos) error {
				if w.ID != r.ID {
					return nil
				}
				found = true
				w.UpgradeClass()
				err = inner(w, t)
				return nil
			})
			switch {
			case rerr != nil:
				return rerr
			case !found:
				return nil // its file went (retention) since the scan read it
			}
			return err
		}
	}
	emit := func(ls []msgquery.Linked) error {
		for _, l := range ls {
			if sel.match(l.Rec) {
				if err := fn(l.Rec, l.Tier); err != nil {
					return err
				}
			}
			back(l.Rec)
		}
		return nil
	}
	finish := func(err error) error { return err }
	if !whole {
		st := startFnStage(ctx, sel, fn, &freed)
		defer st.close()
		emit, finish = st.emit, st.finish
	}
	q.Records = freed.record
	err := rd.Scan(ctx, q, func(r *analytics.Record) error {
		isConn := conn.Is(r)
		if isConn && sel.Exchanges {
			back(r) // (q.Kind has the reader leave them out already)
			return nil
		}
		r.UpgradeClass()
		if whole && sel.match(r) {
			posOf[r] = pos
		}
		if isConn {
			// A connection record is never linked, nor held: its frames
			// are not in time order with the exchanges' (the writer keeps
			// them apart), and one pushed would move the linker's clock
			// past exchanges still to come.
			one[0] = msgquery.Linked{Rec: r}
			return emit(one[:])
		}
		return emit(tl.Push(r))
	})
	if err == nil {
		err = emit(tl.Flush())
	}
	return finish(err)
}

// freeList gathers released records and hands them back to the scan's
// recycler linkBatchLen at a time. It is used from one goroutine.
type freeList struct {
	r *recycler
	b []*analytics.Record
}

func (f *freeList) add(rec *analytics.Record) {
	f.b = append(f.b, rec)
	if len(f.b) == linkBatchLen {
		if f.r.put(f.b) {
			f.b = make([]*analytics.Record, 0, linkBatchLen)
		} else {
			f.b = f.b[:0] // the scan has enough: the rest is garbage
		}
	}
}

// fnStage runs a linked scan's fn on a goroutine of its own (a query
// thread, as the scan's), fed batches of pipeBatchLen linked records in
// order: the linker and fn had shared the scan's one goroutine
// (diagnosis of the 14M-packet store, 4 rounds alternating: 1.54 -> 1.35 s
// median, answers identical). The stage hands each record back to the
// scan's workers itself.
type fnStage struct {
	ctx     context.Context
	batch   []msgquery.Linked
	batches chan []msgquery.Linked
	spare   chan []msgquery.Linked
	done    chan struct{}
	ferr    error       // fn's error (read after done)
	failed  atomic.Bool // fn failed: the scan stops
	stopped atomic.Bool // the scan failed: fn is called no more
}

func startFnStage(ctx context.Context, sel MessageSel, fn func(*analytics.Record, *msgquery.Tier) error, freed *recycler) *fnStage {
	st := &fnStage{ctx: ctx, batches: make(chan []msgquery.Linked, 8), spare: make(chan []msgquery.Linked, 10), done: make(chan struct{})}
	goLowPriority(func() {
		defer close(st.done)
		// A panic in fn is this scan's error, as it was on the caller's
		// goroutine (where an HTTP handler recovers it), not the
		// process's end.
		defer func() {
			if p := recover(); p != nil {
				st.ferr = fmt.Errorf("scan: panic in the records' callback: %v", p)
				st.failed.Store(true)
				for range st.batches {
				}
			}
		}()
		free := freeList{r: freed}
		for b := range st.batches {
			if st.ferr == nil && ctx.Err() != nil {
				st.stopped.Store(true) // the scan ends on it
			}
			if st.ferr == nil && !st.stopped.Load() {
				for _, l := range b {
					if sel.match(l.Rec) {
						if st.ferr = fn(l.Rec, l.Tier); st.ferr != nil {
							st.failed.Store(true)
							break
						}
					}
				}
			}
			for _, l := range b {
				free.add(l.Rec)
			}
			select {
			case st.spare <- b[:0]:
			default:
			}
		}
	})
	return st
}

// emit queues linked records for fn; errPipeStopped once fn has failed.
func (st *fnStage) emit(ls []msgquery.Linked) error {
	if st.failed.Load() {
		return errPipeStopped
	}
	st.batch = append(st.batch, ls...)
	if len(st.batch) >= pipeBatchLen {
		st.flush()
	}
	return nil
}

func (st *fnStage) flush() {
	if len(st.batch) > 0 {
		st.batches <- st.batch
		select {
		case st.batch = <-st.spare:
		default:
			st.batch = make([]msgquery.Linked, 0, pipeBatchLen)
		}
	}
}

// finish ends the stage after the scan returned err: the rest queued goes
// to fn if the scan succeeded, and fn's error, if any, wins.
func (st *fnStage) finish(err error) error {
	if err == nil {
		st.flush()
	} else {
		st.stopped.Store(true)
	}
	close(st.batches)
	<-st.done
	if st.ferr != nil {
		return st.ferr
	}
	if errors.Is(err, errPipeStopped) {
		return nil
	}
	return err
}

// close ends the stage if finish did not (the scan panicked): the goroutine
// ends, and fn is not called after scanLinked returns.
func (st *fnStage) close() {
	select {
	case <-st.done:
	default:
		st.stopped.Store(true)
		close(st.batches)
		<-st.done
	}
}

// MessageDrill is what a drill-down found.
type MessageDrill struct {
	Record *analytics.Record
	RefResult
	Connection bool // a tcp connection record: its connection's packets
}

// String says what the drill-down returned, for a log line or stderr.
func (d *MessageDrill) String() string {
	r := d.Record
	if d.Connection {
		return fmt.Sprintf("message %016x (%s %s -> %s): %d packets of the connection", r.ID, r.Proto, r.Client, r.Server, d.Found)
	}
	s := fmt.Sprintf("message %016x (%s %s -> %s): %d of %d packets", r.ID, r.Proto, r.Client, r.Server, d.Found, d.Wanted)
	if d.NotSaved > 0 {
		s += fmt.Sprintf("; %d were never stored (dropped at capture)", d.NotSaved)
	}
	if d.Missing > 0 {
		s += fmt.Sprintf("; %d are no longer in the store (retention, or a block lost or corrupt)", d.Missing)
	}
	if r.Flags&analytics.FlagRefsCut != 0 {
		s += fmt.Sprintf("; the record lists only its first %d packets", len(r.Packets))
	}
	return s
}

// ErrNoMessage is returned by MessagePackets for an unknown ID.
var ErrNoMessage = errors.New("no message record with that ID")

// MessagePackets is the drill-down: the stored packets of both messages of
// the record with ID id, in time order. A tcp connection record (which
// lists no packets) gives its connection's packets over its life.
func (s *Store) MessagePackets(ctx context.Context, id uint64, fn func(p *Packet) error) (MessageDrill, error) {
	var d MessageDrill
	rd, err := msgstore.OpenReader(s.Dir)
	if err != nil {
		return d, err
	}
	r, err := rd.Get(ctx, id)
	if errors.Is(err, msgstore.ErrNotFound) {
		return d, fmt.Errorf("message %016x: %w", id, ErrNoMessage)
	}
	if err != nil {
		return d, fmt.Errorf("message %016x: %w", id, err)
	}
	r.UpgradeClass()
	d.Record = r
	from, to := RecordSpan(r)
	if r.Proto == "tcp" || len(r.Packets) == 0 {
		d.Connection = true
		c, sv := r.Client, r.Server
		expr := fmt.Sprintf("host %s and host %s and port %d and port %d", c.Addr().Unmap(), sv.Addr().Unmap(), c.Port(), sv.Port())
		if r.Transport == 17 {
			expr = "udp and " + expr
		} else {
			expr = "tcp and " + expr
		}
		flt, err := ParseFilter(expr)
		if err != nil {
			return d, fmt.Errorf("message %016x: %w", id, err)
		}
		res, err := s.Run(ctx, Request{From: from, To: to, Filter: flt}, fn)
		d.Found = int(res.Matched)
		return d, err
	}
	d.RefResult, err = s.Packets(ctx, r.Packets, from, to, fn)
	return d, err
}

// RecordSpan is the time range a record's packets lie in.
func RecordSpan(r *analytics.Record) (from, to int64) {
	from, to = MaxTime, MinTime
	for _, t := range []int64{r.ReqFirst, r.ReqLast, r.RespFirst, r.RespLast, r.ServerAck, r.ClientAck} {
		if t == 0 {
			continue
		}
		from, to = min(from, t), max(to, t)
	}
	if from > to {
		return MinTime, MaxTime
	}
	return from, to
}

// ParseMessageID reads a record ID: the 16 hex digits messages prints.
func ParseMessageID(s string) (uint64, error) {
	t := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "0x")
	if len(t) == 0 || len(t) > 16 {
		return 0, fmt.Errorf("message ID %q: want the 16 hex digits of a record ID", s)
	}
	id, err := strconv.ParseUint(t, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("message ID %q: want the 16 hex digits of a record ID", s)
	}
	return id, nil
}
