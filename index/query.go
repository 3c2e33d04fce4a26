package index

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"tapvault/packet"
	"tapvault/writer"
)

// A query has two parts, both snapshot when the iterator is made: the blocks
// still in memory (queued, in an open group, or being written) and the
// blocks in Badger. The memory is read first and the Badger transaction
// opened after, so a group that moves from memory to Badger in between is
// seen in at least one of them.

// matcher selects flows in memory; on disk the key ranges do.
type matcher struct {
	exact *packet.FlowKey // a single flow: hash lookup in groups
	match func(k *packet.FlowKey) bool
}

func overlaps(m *writer.BlockMeta, from, to int64) bool { return m.MinTS <= to && m.MaxTS >= from }

// snapshot returns the matching in-memory refs and the segments worth
// scanning on disk, ascending.
func (ix *Index) snapshot(m *matcher, from, to int64) (mem []writer.Ref, segs []uint32) {
	ix.gmu.RLock()
	ix.pmu.Lock()
	for _, e := range ix.pending {
		if !overlaps(&e.meta, from, to) {
			continue
		}
		if m == nil {
			mem = append(mem, e.meta.Ref)
			continue
		}
		for i := range e.flows {
			if m.matches(&e.flows[i]) {
				mem = append(mem, e.meta.Ref)
				break
			}
		}
	}
	ix.pmu.Unlock()
	for _, gs := range [2][]*group{ix.open, ix.writing} {
		for _, g := range gs {
			mem = g.match(mem, m, from, to)
		}
	}
	for _, s := range ix.segs {
		if s.MinTS <= to && s.MaxTS >= from {
			segs = append(segs, s.Seg)
		}
	}
	ix.gmu.RUnlock()
	slices.Sort(segs)
	return sortUnique(mem), segs
}

func (m *matcher) matches(k *packet.FlowKey) bool {
	if m.exact != nil {
		return *k == *m.exact
	}
	return m.match(k)
}

// match appends the refs of g's blocks that hold a flow m selects (every
// block if m is nil) and overlap [from, to].
func (g *group) match(dst []writer.Ref, m *matcher, from, to int64) []writer.Ref {
	var bits bitmap
	switch {
	case m == nil:
		for k := range g.members {
			bits.set(k)
		}
	case m.exact != nil:
		if i := g.flows.find(m.exact); i >= 0 {
			bits = g.flows.bitmap(i)
		}
	default:
		for i := range g.flows.keys {
			if m.match(&g.flows.keys[i]) {
				b := g.flows.bitmap(i)
				bits.or(&b)
			}
		}
	}
	for k := range g.members {
		if bits.has(k) && overlaps(&g.members[k].Meta, from, to) {
			dst = append(dst, g.members[k].Meta.Ref)
		}
	}
	return dst
}

// Time iterates the blocks overlapping [from, to] (both inclusive, ns).
func (ix *Index) Time(from, to int64) Iterator {
	if ix.closed.Load() {
		return &errIter{fmt.Errorf("index time query: %w", ErrClosed)}
	}
	mem, segs := ix.snapshot(nil, from, to)
	d := ix.newDiskIter(segs, from, to)
	d.load = d.loadTime
	return withMem(mem, d)
}

// Flow iterates the blocks holding flow k and overlapping [from, to]. k is a
// normalised key, as the decoder makes it.
func (ix *Index) Flow(k packet.FlowKey, from, to int64) Iterator {
	return ix.single(kindFlow, appendFlowAttr(nil, &k), &matcher{exact: &k}, from, to)
}

// Host iterates the blocks with a flow from or to ip (IPv4-mapped for IPv4).
func (ix *Index) Host(ip [16]byte, from, to int64) Iterator {
	return ix.single(kindHost, appendHostAttr(nil, &ip), &matcher{match: func(k *packet.FlowKey) bool {
		return k.A == ip || k.B == ip
	}}, from, to)
}

// VLAN iterates the blocks with a flow tagged with VLAN id (outer or inner).
// Untagged traffic (id 0) is not indexed.
func (ix *Index) VLAN(id uint16, from, to int64) Iterator {
	if id == 0 {
		return newSliceIter(nil)
	}
	return ix.single(kindVLAN, appendVLANAttr(nil, id), &matcher{match: func(k *packet.FlowKey) bool {
		return k.VLAN == id || k.VLAN2 == id
	}}, from, to)
}

// Port iterates the blocks with a TCP, UDP or SCTP flow using port at either
// end. proto 0 means any of the three.
func (ix *Index) Port(proto uint8, port uint16, from, to int64) Iterator {
	if proto == 0 {
		return Union(ix.Port(protoTCP, port, from, to), ix.Port(protoUDP, port, from, to), ix.Port(protoSCTP, port, from, to))
	}
	if !portProto(proto) {
		return newSliceIter(nil)
	}
	return ix.single(kindPort, appendPortAttr(nil, proto, port), &matcher{match: func(k *packet.FlowKey) bool {
		return k.Proto == proto && (k.PortA == port || k.PortB == port)
	}}, from, to)
}

// PortRange is Port for every port in [lo, hi].
func (ix *Index) PortRange(proto uint8, lo, hi uint16, from, to int64) Iterator {
	if proto == 0 {
		return Union(ix.PortRange(protoTCP, lo, hi, from, to), ix.PortRange(protoUDP, lo, hi, from, to), ix.PortRange(protoSCTP, lo, hi, from, to))
	}
	if !portProto(proto) || lo > hi {
		return newSliceIter(nil)
	}
	if lo == hi {
		return ix.Port(proto, lo, from, to)
	}
	in := func(p uint16) bool { return p >= lo && p <= hi }
	return ix.ranged(kindPort, appendPortAttr(nil, proto, lo), appendPortAttr(nil, proto, hi), &matcher{match: func(k *packet.FlowKey) bool {
		return k.Proto == proto && (in(k.PortA) || in(k.PortB))
	}}, from, to)
}

// Net iterates the blocks with a flow from or to an address in prefix.
func (ix *Index) Net(prefix netip.Prefix, from, to int64) Iterator {
	if !prefix.IsValid() {
		return &errIter{fmt.Errorf("index net query: invalid prefix %v", prefix)}
	}
	prefix = prefix.Masked()
	bitsLen := prefix.Bits()
	if prefix.Addr().Is4() {
		bitsLen += 96
	}
	lo := netip.AddrFrom16(prefix.Addr().As16()).As16()
	hi := lo
	for i := bitsLen; i < 128; i++ {
		hi[i/8] |= 0x80 >> (i % 8)
	}
	if lo == hi {
		return ix.Host(lo, from, to)
	}
	in := func(a *[16]byte) bool {
		return bytes.Compare(a[:], lo[:]) >= 0 && bytes.Compare(a[:], hi[:]) <= 0
	}
	return ix.ranged(kindHost, lo[:], hi[:], &matcher{match: func(k *packet.FlowKey) bool {
		return in(&k.A) || in(&k.B)
	}}, from, to)
}

// single is a query on one attribute value.
func (ix *Index) single(kind byte, attr []byte, m *matcher, from, to int64) Iterator {
	return ix.ranged(kind, attr, attr, m, from, to)
}

// ranged is a query on the attribute values [lo, hi]: lazily, one prefix
// scan per candidate segment.
func (ix *Index) ranged(kind byte, lo, hi []byte, m *matcher, from, to int64) Iterator {
	if ix.closed.Load() {
		return &errIter{fmt.Errorf("index query: %w", ErrClosed)}
	}
	mem, segs := ix.snapshot(m, from, to)
	d := ix.newDiskIter(segs, from, to)
	d.kind, d.lo, d.hi = kind, lo, hi
	d.load = d.loadAttr
	return withMem(mem, d)
}

func withMem(mem []writer.Ref, d *diskIter) Iterator {
	if len(mem) == 0 {
		return d
	}
	return Union(newSliceIter(mem), d)
}

// diskIter walks the Badger part of a query one candidate segment at a time.
type diskIter struct {
	ix       *Index
	txn      *badger.Txn
	it       *badger.Iterator // over the query's key kind
	bit      *badger.Iterator // over B keys, to resolve groups
	segs     []uint32
	si       int // next segment to load
	from, to int64
	kind     byte   // attribute sub-kind
	lo, hi   []byte // attribute range
	load     func(seg uint32) error
	key      []byte
	members  map[groupID][]blockSpan
	buf      []writer.Ref
	bi       int
	err      error
	closed   bool
}

func (ix *Index) newDiskIter(segs []uint32, from, to int64) *diskIter {
	return &diskIter{ix: ix, segs: segs, from: from, to: to, bi: -1, members: make(map[groupID][]blockSpan)}
}

func (d *diskIter) begin() {
	if d.txn == nil && !d.closed {
		d.txn = d.ix.db.NewTransaction(false)
	}
}

func (d *diskIter) Next() bool {
	for {
		if d.err != nil || d.closed {
			return false
		}
		if d.bi+1 < len(d.buf) {
			d.bi++
			return true
		}
		if d.si >= len(d.segs) {
			d.bi = len(d.buf)
			return false
		}
		d.fill()
	}
}

// fill loads the next candidate segment into buf.
func (d *diskIter) fill() {
	d.begin()
	seg := d.segs[d.si]
	d.si++
	d.buf, d.bi = d.buf[:0], -1
	// Badger reads table blocks here, in this goroutine: a block damaged
	// on the medium after its table was verified (see verifiedFile) may
	// panic in its decoder. One recover per segment loaded.
	if err := recovered(func() error { return d.load(seg) }); err != nil {
		d.err = err
		return
	}
	d.buf = sortUnique(d.buf)
}

func (d *diskIter) Seek(ref writer.Ref) bool {
	if d.err != nil || d.closed {
		return false
	}
	if d.bi >= 0 && d.bi < len(d.buf) && d.buf[d.bi] >= ref {
		return true
	}
	for {
		if len(d.buf) > 0 && d.buf[len(d.buf)-1] >= ref {
			if d.bi < 0 {
				d.bi = 0
			}
			j, _ := slices.BinarySearch(d.buf[d.bi:], ref)
			d.bi += j
			return true
		}
		// Nothing left here: skip the segments before ref's.
		for d.si < len(d.segs) && d.segs[d.si] < ref.Segment() {
			d.si++
		}
		if d.si >= len(d.segs) {
			d.buf, d.bi = d.buf[:0], 0
			return false
		}
		d.fill()
		if d.err != nil {
			return false
		}
	}
}

func (d *diskIter) At() writer.Ref { return d.buf[d.bi] }
func (d *diskIter) Err() error     { return d.err }

func (d *diskIter) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	if d.it != nil {
		d.it.Close()
	}
	if d.bit != nil {
		d.bit.Close()
	}
	if d.txn != nil {
		d.txn.Discard()
	}
	return nil
}

// loadTime adds the blocks of seg that overlap the query's time range.
func (d *diskIter) loadTime(seg uint32) error {
	if d.it == nil {
		d.it = d.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kindData}})
	}
	prefix := appendDataPrefix(d.key[:0], seg, kindBlock)
	for d.it.Seek(prefix); d.it.ValidForPrefix(prefix); d.it.Next() {
		e, err := parseBlockKey(d.it.Item().Key())
		if err != nil {
			return fmt.Errorf("index time query: %w", err)
		}
		if overlaps(&e.Meta, d.from, d.to) {
			d.buf = append(d.buf, e.Meta.Ref)
		}
	}
	return nil
}

// loadAttr adds the blocks of seg holding an attribute value in [lo, hi].
func (d *diskIter) loadAttr(seg uint32) error {
	if d.it == nil {
		d.it = d.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kindData}})
	}
	prefix := appendDataPrefix(nil, seg, d.kind)
	n := len(d.lo)
	for d.it.Seek(append(d.key[:0], append(prefix, d.lo...)...)); d.it.ValidForPrefix(prefix); d.it.Next() {
		k := d.it.Item().Key()
		if len(k) < dataPrefixSize+n || bytes.Compare(k[dataPrefixSize:dataPrefixSize+n], d.hi) > 0 {
			break
		}
		ak, err := parseAttrKey(k)
		if err != nil {
			return fmt.Errorf("index query: %w", err)
		}
		if err := d.resolve(ak.Group, &ak.Bits); err != nil {
			return err
		}
	}
	return d.loadSketches(seg)
}

// anyVLAN reports whether the flow key range [lo, hi] is FlowAnyVLAN's: one
// 5-tuple, VLAN ids 0/0 to 0xffff/0xffff.
func anyVLAN(lo, hi []byte) bool {
	const v = flowAttrSize - 4
	return len(lo) == flowAttrSize && len(hi) == flowAttrSize && bytes.Equal(lo[:v], hi[:v]) &&
		bytes.Equal(lo[v:], []byte{0, 0, 0, 0}) && bytes.Equal(hi[v:], []byte{0xff, 0xff, 0xff, 0xff})
}

// loadSketches adds the blocks of seg's sketched groups (sketch.go) that
// overlap the query's time range and may hold its value: each whose
// filter has it when the query is on one value, every one when it is on
// a range.
func (d *diskIter) loadSketches(seg uint32) error {
	prefix := appendDataPrefix(nil, seg, kindSketch)
	one := bytes.Equal(d.lo, d.hi)
	hs := []uint64{attrHash(d.kind, d.lo)}
	if d.kind == kindFlow && (one || anyVLAN(d.lo, d.hi)) {
		// One flow, or one 5-tuple on any VLAN stack (FlowAnyVLAN, the
		// planner's `flow A <> B`): its hosts and ports (and VLANs for
		// one flow; lo's are 0, which are not hashed).
		k, ok := packet.ParseFlowKey(d.lo)
		if !ok {
			return fmt.Errorf("index query: flow key of %d bytes", len(d.lo))
		}
		hs, one = flowHashes(&k), true
	}
	for d.it.Seek(prefix); d.it.ValidForPrefix(prefix); d.it.Next() {
		item := d.it.Item()
		g, k, err := parseSketchKey(item.Key())
		if err != nil {
			return fmt.Errorf("index query: %w", err)
		}
		ms, err := d.groupMembers(g)
		if err != nil {
			return err
		}
		if int(k) >= len(ms) || ms[k].MinTS > d.to || ms[k].MaxTS < d.from {
			continue
		}
		keep := !one
		if one {
			err = item.Value(func(v []byte) error {
				s, err := parseSketch(v)
				if err != nil {
					return fmt.Errorf("index query: group %v block %d: %w", g.Ref, k, err)
				}
				keep = true
				for _, h := range hs {
					keep = keep && s.has(h)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if keep {
			d.buf = append(d.buf, ms[k].Ref)
		}
	}
	return nil
}

// resolve adds the blocks of group g whose bit is set and that overlap the
// query's time range.
func (d *diskIter) resolve(g groupID, bits *bitmap) error {
	ms, err := d.groupMembers(g)
	if err != nil {
		return err
	}
	for k := range ms {
		if bits.has(k) && ms[k].MinTS <= d.to && ms[k].MaxTS >= d.from {
			d.buf = append(d.buf, ms[k].Ref)
		}
	}
	return nil
}

// blockSpan is what resolving a group needs of each block.
type blockSpan struct {
	Ref          writer.Ref
	MinTS, MaxTS int64
}

// groupMembers reads the blocks of group g from its B keys, which follow
// g's first block in order, through the index's cache of complete groups.
func (d *diskIter) groupMembers(g groupID) ([]blockSpan, error) {
	if ms, ok := d.members[g]; ok {
		return ms, nil
	}
	if ms, ok := d.ix.spans.get(g); ok {
		d.members[g] = ms
		return ms, nil
	}
	if d.bit == nil {
		d.bit = d.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kindData}})
	}
	var ms []blockSpan
	found, scanned := 0, 0
	prefix := appendDataPrefix(nil, g.Ref.Segment(), kindBlock)
	for d.bit.Seek(appendBlockPrefix(d.key[:0], g.Ref)); d.bit.ValidForPrefix(prefix); d.bit.Next() {
		e, err := parseBlockKey(d.bit.Item().Key())
		if err != nil {
			return nil, fmt.Errorf("index query: group %v: %w", g.Ref, err)
		}
		scanned++
		if e.Group == g {
			if ms == nil {
				ms = make([]blockSpan, e.N)
				for i := range ms {
					// A member whose B key is missing (a crash, or a
					// segment being dropped) overlaps no time range.
					ms[i].MinTS, ms[i].MaxTS = math.MaxInt64, math.MinInt64
				}
			}
			if int(e.K) < len(ms) && ms[e.K].MinTS == math.MaxInt64 {
				ms[e.K] = blockSpan{Ref: e.Meta.Ref, MinTS: e.Meta.MinTS, MaxTS: e.Meta.MaxTS}
				found++
			}
			if found == len(ms) {
				break
			}
		}
		if scanned > 4*GroupBlocks {
			break
		}
	}
	if len(d.members) >= 1024 {
		clear(d.members)
	}
	d.members[g] = ms
	if ms != nil && found == len(ms) {
		d.ix.spans.put(g, ms)
	}
	return ms, nil
}

// spanCache keeps the block spans of recently resolved, complete groups:
// a written group never changes, and resolving one reads up to GroupBlocks
// block keys. About 48 KB per full group.
type spanCache struct {
	mu    sync.Mutex
	m     map[groupID][]blockSpan
	order []groupID // insertion order, for FIFO eviction
	max   int
}

func (c *spanCache) get(g groupID) ([]blockSpan, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ms, ok := c.m[g]
	return ms, ok
}

func (c *spanCache) put(g groupID, ms []blockSpan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[groupID][]blockSpan)
	}
	if _, ok := c.m[g]; ok {
		return
	}
	for len(c.order) >= c.max && len(c.order) > 0 {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[g] = ms
	c.order = append(c.order, g)
}

// dropSegment forgets the groups of seg.
func (c *spanCache) dropSegment(seg uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order = slices.DeleteFunc(c.order, func(g groupID) bool {
		if g.Ref.Segment() == seg {
			delete(c.m, g)
			return true
		}
		return false
	})
}

// Meta returns the indexed meta of the block at ref.
func (ix *Index) Meta(ref writer.Ref) (writer.BlockMeta, bool) {
	if ix.closed.Load() {
		return writer.BlockMeta{}, false
	}
	ix.gmu.RLock()
	ix.pmu.Lock()
	for _, e := range ix.pending {
		if e.meta.Ref == ref {
			m := e.meta
			ix.pmu.Unlock()
			ix.gmu.RUnlock()
			return m, true
		}
	}
	ix.pmu.Unlock()
	for _, gs := range [2][]*group{ix.open, ix.writing} {
		for _, g := range gs {
			for i := range g.members {
				if g.members[i].Meta.Ref == ref {
					m := g.members[i].Meta
					ix.gmu.RUnlock()
					return m, true
				}
			}
		}
	}
	ix.gmu.RUnlock()
	var m writer.BlockMeta
	var ok bool
	prefix := appendBlockPrefix(nil, ref)
	err := recovered(func() error { // see diskIter.fill
		return ix.db.View(func(txn *badger.Txn) error {
			return scanPrefix(txn, prefix, func(k []byte) error {
				e, err := parseBlockKey(k)
				if err == nil {
					m, ok = e.Meta, true
					return errStop
				}
				return nil
			})
		})
	})
	if err != nil && !errors.Is(err, errStop) {
		return writer.BlockMeta{}, false
	}
	return m, ok
}

var errStop = errors.New("stop")
