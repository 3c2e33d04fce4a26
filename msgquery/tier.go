package msgquery

import (
	"fmt"
	"net/netip"
	"slices"

	"tapvault/analytics"
)

// DefaultTierWindow is the default TierLinker window: 10 s.
const DefaultTierWindow = int64(10_000_000_000)

// DefaultBackendProtos are the protocols a front end's backend calls use by
// default: the decoders marked Backend (analytics.BackendProtos).
var DefaultBackendProtos = analytics.BackendProtos()

// DefaultMaxPending is the default TierLinker.MaxPending.
const DefaultMaxPending = 1 << 20

// Tier is what the tier linker found for one record.
//
// On a front exchange (IsFront), the split of its wait (ReqLast ->
// RespFirst) into the front end's own time and its backend calls:
// Backends are the IDs of the backend exchanges its server made inside the
// wait, in time order (by ReqFirst); Before is the first backend's ReqFirst
// - ReqLast (-1 without backends); Backend is the sum over the backends of
// RespLast - ReqFirst (0 without backends; parallel calls are each counted,
// so Self can be negative); After is RespFirst - the latest backend
// RespLast (-1 without backends); Self is RespFirst - ReqLast - Backend.
//
// On a backend exchange (not IsFront), Frontend is the ID of the front
// exchange it was linked to.
type Tier struct {
	IsFront  bool
	Backends []uint64
	Before   int64
	Backend  int64
	After    int64
	Self     int64
	Frontend uint64
}

// Linked is a record whose linking is final. Tier is nil when the linker
// has nothing to say about the record: a "tcp" flow record, a front
// exchange without a response or longer than the window, a backend
// exchange that no front exchange contains.
type Linked struct {
	Rec  *analytics.Record
	Tier *Tier
}

// TierLinker links, on one capture point, each client-facing ("front")
// exchange to the backend exchanges its server made while the client
// waited. A backend exchange B belongs to the front exchange F when
//
//   - B's proto is a backend protocol and F's is not (and is not "tcp"),
//   - B.Client's address is F.Server's address (the same host; ports and
//     VLANs may differ: the backend network is often another VLAN),
//   - F.ReqLast <= B.ReqFirst and B.RespLast <= F.RespFirst (B is inside
//     F's wait).
//
// When several front exchanges of the host contain B (concurrent requests
// to the front end), B goes to the one with the latest ReqLast: the most
// recent request is the likeliest cause, and without a request ID in the
// backend call nothing better is known. Each backend exchange is given to
// one front at most, so tiers never double-count.
//
// It is streaming with bounded memory: records go in with Push in about the
// order they completed (RespLast, or the latest time they have without a
// response) and come out when their linking is final, which is when the
// newest completion time pushed is more than Window past theirs. A front
// exchange longer than Window (ReqLast -> RespLast) is never linked (Tier
// nil), so that a result never depends on how long records were held.
// Linking is exact when a front exchange's duration plus the arrival
// disorder is at most Window; a record pushed later than that misses links.
// Memory is the records of one window (about rate × Window records) and at
// most MaxPending records: beyond it the oldest are released early.
//
// A TierLinker is used from one goroutine.
type TierLinker struct {
	// MaxPending bounds the records held (default DefaultMaxPending).
	MaxPending int

	window   int64
	backend  map[string]bool
	fifo     []heapItem // pending, in release order (pendPush)
	fifoHead int
	heap     []heapItem // pending, pushed out of order
	fronts   map[netip.Addr]*frontList
	newest   int64
	out      []Linked
	free     []*tierEntry // entries no list or heap holds, for reuse
	tiers    []Tier       // allocated a slab at a time, handed out once
	seq      uint64       // records pushed

	// The last protocol's kind and host's front list: records come in
	// runs of a few protocols and hosts, and the map lookups were a tenth
	// of linking 1.1M records (profiled).
	lastProto     string
	lastBackend   bool // a backend protocol
	lastTCP       bool // "tcp": connection records
	lastAddr      netip.Addr
	lastFrontList *frontList
}

type tierRole uint8

const (
	roleOther tierRole = iota
	roleFront
	roleBackend
)

// A front's ID and times are copied into its entry: a released front stays
// in its host's list (findFront's binary search reads its times) after its
// record went back to the caller, who may reuse it.
type tierEntry struct {
	rec                *analytics.Record // nil once released
	done               int64             // completion time: the release order
	role               tierRole
	released           bool
	id                 uint64       // roleFront: rec.ID
	reqLast, respFirst int64        // roleFront: rec.ReqLast, rec.RespFirst
	backends           []backendRef // roleFront: the backends linked so far
}

type backendRef struct {
	id                uint64
	reqFirst, respEnd int64
}

// frontList holds one host's pending front exchanges, sorted by ReqLast;
// entries before head are gone, released ones are skipped.
type frontList struct {
	head int
	list []*tierEntry
}

// NewTierLinker returns a linker holding records for window ns (0: the
// default, 10 s) and treating backendProtos as backend protocols (nil: the
// default, DefaultBackendProtos; aliases such as pgsql are accepted).
func NewTierLinker(window int64, backendProtos []string) (*TierLinker, error) {
	if window < 0 {
		return nil, fmt.Errorf("new tier linker: negative window %d", window)
	}
	if window == 0 {
		window = DefaultTierWindow
	}
	if backendProtos == nil {
		backendProtos = DefaultBackendProtos
	}
	l := &TierLinker{
		MaxPending: DefaultMaxPending,
		window:     window,
		backend:    make(map[string]bool),
		fronts:     make(map[netip.Addr]*frontList),
	}
	for _, p := range backendProtos {
		if p == "" {
			return nil, fmt.Errorf("new tier linker: empty backend protocol")
		}
		l.backend[analytics.CanonicalProto(p)] = true
	}
	return l, nil
}

// Completion is when r completed for the linker: RespLast, else the latest
// time it has.
func Completion(r *analytics.Record) int64 { return completion(r) }

// completion is when r completed: RespLast, else the latest time it has.
func completion(r *analytics.Record) int64 {
	if r.RespLast > 0 {
		return r.RespLast
	}
	return max(r.ReqFirst, r.ReqLast, r.RespFirst, 0)
}

// Push hands r to the linker, which owns it until it comes back in a
// Linked.Rec (the caller must not change it meanwhile; afterwards the
// linker never reads it again, so the caller may reuse it), and returns the
// records whose linking is now final, in completion order. The returned
// slice is reused: it is valid until the next Push or Flush.
func (l *TierLinker) Push(r *analytics.Record) []Linked {
	l.out = l.out[:0]
	var e *tierEntry
	if n := len(l.free); n > 0 {
		e, l.free = l.free[n-1], l.free[:n-1]
		*e = tierEntry{rec: r, done: completion(r), backends: e.backends[:0]}
	} else {
		e = &tierEntry{rec: r, done: completion(r)}
	}
	l.newest = max(l.newest, e.done)
	if r.Proto != l.lastProto || l.lastProto == "" {
		p := analytics.CanonicalProto(r.Proto)
		l.lastProto, l.lastBackend, l.lastTCP = r.Proto, l.backend[p], p == analytics.FlowProto
	}
	switch {
	case l.lastBackend:
		if r.ReqFirst > 0 && r.RespLast > 0 {
			e.role = roleBackend
		}
	case l.lastTCP || r.Class == analytics.ClassFlow:
	default:
		if r.ReqLast > 0 && r.RespFirst >= r.ReqLast && r.RespLast-r.ReqLast <= l.window {
			e.role = roleFront
			e.id, e.reqLast, e.respFirst = r.ID, r.ReqLast, r.RespFirst
			l.addFront(e)
		}
	}
	l.seq++
	l.pendPush(heapItem{done: e.done, seq: l.seq, backend: e.role == roleBackend, e: e})
	l.releaseDue()
	return l.out
}

// Skip is Push for a record the caller does not want back: one the
// linker would never link (a "tcp" connection record). It is not held;
// only its completion time advances the linker's clock, exactly as
// pushing it would, so the other records are released, and linked, as
// they would be had it been pushed (unless MaxPending is reached, which
// counts only the records held). It returns the records now final, as
// Push does.
func (l *TierLinker) Skip(r *analytics.Record) []Linked { return l.SkipUntil(completion(r)) }

// SkipUntil is Skip for a record whose completion time is done
// (Completion).
func (l *TierLinker) SkipUntil(done int64) []Linked {
	l.out = l.out[:0]
	l.newest = max(l.newest, done)
	l.releaseDue()
	return l.out
}

// IsConnection reports whether r is a connection record (proto "tcp", or
// class flow: analytics.IsConnection), which the linker never links.
func IsConnection(r *analytics.Record) bool { return analytics.IsConnection(r) }

// ConnTest is IsConnection for a stream of records: it remembers the last
// protocol's answer (analytics.CanonicalProto walks the decoder registry,
// and a scan's records come in runs of a few protocols). The zero value
// is ready to use.
type ConnTest struct {
	proto string
	tcp   bool
}

// Is reports whether r is a connection record.
func (c *ConnTest) Is(r *analytics.Record) bool {
	if r.Proto != c.proto || c.proto == "" {
		c.proto, c.tcp = r.Proto, analytics.CanonicalProto(r.Proto) == analytics.FlowProto
	}
	return c.tcp || r.Class == analytics.ClassFlow // (analytics.IsConnection: no older class is flow)
}

// Flush releases every record still held, in completion order. The
// returned slice is valid until the next Push or Flush.
func (l *TierLinker) Flush() []Linked {
	l.out = l.out[:0]
	for l.pending() > 0 {
		l.release(l.pendPop())
	}
	return l.out
}

// frontList returns a host's list of pending fronts (nil if none).
func (l *TierLinker) frontList(a netip.Addr) *frontList {
	if l.lastFrontList != nil && a == l.lastAddr {
		return l.lastFrontList
	}
	fl := l.fronts[a]
	if fl != nil {
		l.lastAddr, l.lastFrontList = a, fl
	}
	return fl
}

// newTier hands out a zeroed Tier from the slab.
func (l *TierLinker) newTier() *Tier {
	if len(l.tiers) == 0 {
		l.tiers = make([]Tier, 256)
	}
	t := &l.tiers[0]
	l.tiers = l.tiers[1:]
	return t
}

func (l *TierLinker) addFront(e *tierEntry) {
	a := e.rec.Server.Addr()
	fl := l.frontList(a)
	if fl == nil {
		fl = &frontList{}
		l.fronts[a] = fl
	}
	// Sorted by ReqLast (ties by ID); records arrive about in order, so the
	// insertion point is near the end.
	i := len(fl.list)
	for i > fl.head && frontLess(e, fl.list[i-1]) {
		i--
	}
	fl.list = slices.Insert(fl.list, i, e)
}

func frontLess(a, b *tierEntry) bool {
	if a.reqLast != b.reqLast {
		return a.reqLast < b.reqLast
	}
	return a.id < b.id
}

// findFront returns the pending front exchange that contains backend b
// with the latest ReqLast, or nil.
func (l *TierLinker) findFront(b *analytics.Record) *tierEntry {
	fl := l.frontList(b.Client.Addr())
	if fl == nil {
		return nil
	}
	live := fl.list[fl.head:]
	// The last front whose request ended by b's start, then back from it.
	i, _ := slices.BinarySearchFunc(live, b.ReqFirst, func(e *tierEntry, t int64) int {
		if e.reqLast <= t {
			return -1
		}
		return 1
	})
	for i--; i >= 0; i-- {
		f := live[i]
		if f.released {
			continue
		}
		if f.respFirst >= b.RespLast {
			return f
		}
		if b.ReqFirst-f.reqLast > l.window {
			break // fronts are at most window long: none further back contains b
		}
	}
	return nil
}

func (l *TierLinker) release(e *tierEntry) {
	r := e.rec
	var t *Tier
	switch e.role {
	case roleBackend:
		if f := l.findFront(r); f != nil {
			f.backends = append(f.backends, backendRef{id: r.ID, reqFirst: r.ReqFirst, respEnd: r.RespLast})
			t = l.newTier()
			t.Frontend = f.id
		}
	case roleFront:
		e.released = true
		l.dropFronts(r.Server.Addr())
		t = l.newTier()
		frontTier(t, r, e.backends)
		e.backends = e.backends[:0]
	}
	e.rec = nil
	if e.role != roleFront {
		// A released front stays in its host's list (findFront's binary
		// search reads its times) until dropFronts trims it.
		l.free = append(l.free, e)
	}
	l.out = append(l.out, Linked{Rec: r, Tier: t})
}

// frontTier computes a front exchange's Tier from its backends into t
// (zeroed).
func frontTier(t *Tier, f *analytics.Record, bs []backendRef) {
	t.IsFront, t.Before, t.After = true, -1, -1
	slices.SortFunc(bs, func(a, b backendRef) int {
		switch {
		case a.reqFirst != b.reqFirst:
			return cmpI64(a.reqFirst, b.reqFirst)
		case a.respEnd != b.respEnd:
			return cmpI64(a.respEnd, b.respEnd)
		}
		return cmpU64(a.id, b.id)
	})
	var last int64
	for _, b := range bs {
		t.Backends = append(t.Backends, b.id)
		t.Backend += b.respEnd - b.reqFirst
		last = max(last, b.respEnd)
	}
	if len(bs) > 0 {
		t.Before = bs[0].reqFirst - f.ReqLast
		t.After = f.RespFirst - last
	}
	t.Self = f.RespFirst - f.ReqLast - t.Backend
}

func cmpI64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// dropFronts advances a host's front list past released entries and
// compacts it when half of it is dead.
func (l *TierLinker) dropFronts(a netip.Addr) {
	fl := l.frontList(a)
	if fl == nil {
		return
	}
	for fl.head < len(fl.list) && fl.list[fl.head].released {
		l.free = append(l.free, fl.list[fl.head])
		fl.list[fl.head] = nil
		fl.head++
	}
	if fl.head == len(fl.list) {
		delete(l.fronts, a)
		if l.lastFrontList == fl {
			l.lastFrontList = nil
		}
		return
	}
	if fl.head > len(fl.list)/2 {
		n := copy(fl.list, fl.list[fl.head:])
		clear(fl.list[n:])
		fl.list = fl.list[:n]
		fl.head = 0
	}
}

// heapItem is an entry in the release heap, with its ordering keys beside
// the pointer: comparing through the pointers (a cache miss each, over a
// window of records) was a tenth of a diagnosis of 1.1M records
// (profiled).
type heapItem struct {
	done    int64
	seq     uint64 // push order: ties are released first in, first out
	backend bool
	e       *tierEntry
}

// The heap orders entries by completion time, backends before others at
// the same time (a backend ending when its front's response starts is
// released first, so it is linked before the front's Tier is computed),
// then in the order they were pushed: the order is total, so records not
// pushed (Skip) change nothing in the order of the others.
func entryLess(a, b *heapItem) bool {
	if a.done != b.done {
		return a.done < b.done
	}
	if a.backend != b.backend {
		return a.backend
	}
	return a.seq < b.seq
}

// The pending records are held in two parts: fifo, the records pushed in
// release order (each not before the one pushed before it: nearly all of
// them, since records come about in completion order), and heap, the
// others. The next to release is the lesser of the two heads: the same
// total order as one heap, with a heap operation only for records that
// came out of order (a heap of a window's records was a fifth of the
// linker's time, profiled on 1.8M records).

// pending is the number of records held.
func (l *TierLinker) pending() int { return len(l.fifo) - l.fifoHead + len(l.heap) }

// pendPush holds e.
func (l *TierLinker) pendPush(e heapItem) {
	if n := len(l.fifo); n == l.fifoHead || !entryLess(&e, &l.fifo[n-1]) {
		l.fifo = append(l.fifo, e)
		return
	}
	l.heapPush(e)
}

// pendTop is the next record to release (pending() > 0).
func (l *TierLinker) pendTop() *heapItem {
	switch {
	case l.fifoHead == len(l.fifo):
		return &l.heap[0]
	case len(l.heap) == 0 || entryLess(&l.fifo[l.fifoHead], &l.heap[0]):
		return &l.fifo[l.fifoHead]
	}
	return &l.heap[0]
}

// pendPop removes and returns the next record to release.
func (l *TierLinker) pendPop() *tierEntry {
	if l.fifoHead == len(l.fifo) || len(l.heap) > 0 && !entryLess(&l.fifo[l.fifoHead], &l.heap[0]) {
		return l.heapPop()
	}
	e := l.fifo[l.fifoHead].e
	l.fifo[l.fifoHead] = heapItem{}
	l.fifoHead++
	if l.fifoHead == len(l.fifo) {
		l.fifo, l.fifoHead = l.fifo[:0], 0
	} else if l.fifoHead > 1024 && l.fifoHead > len(l.fifo)/2 {
		n := copy(l.fifo, l.fifo[l.fifoHead:])
		clear(l.fifo[n:])
		l.fifo, l.fifoHead = l.fifo[:n], 0
	}
	return e
}

// releaseDue releases the records whose links are final: more than window
// before the newest completion, or beyond MaxPending.
func (l *TierLinker) releaseDue() {
	for l.pending() > 0 && (l.newest-l.pendTop().done > l.window || l.pending() > max(l.MaxPending, 1)) {
		l.release(l.pendPop())
	}
}

func (l *TierLinker) heapPush(e heapItem) {
	l.heap = append(l.heap, e)
	i := len(l.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !entryLess(&l.heap[i], &l.heap[p]) {
			break
		}
		l.heap[i], l.heap[p] = l.heap[p], l.heap[i]
		i = p
	}
}

func (l *TierLinker) heapPop() *tierEntry {
	h := l.heap
	top := h[0].e
	n := len(h) - 1
	h[0] = h[n]
	h[n] = heapItem{}
	h = h[:n]
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && entryLess(&h[c+1], &h[c]) {
			c++
		}
		if !entryLess(&h[c], &h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	l.heap = h
	return top
}
