package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/dgraph-io/badger/v4"

	"tapvault/block"
	"tapvault/packet"
	"tapvault/writer"
)

// wakeBatch is how many queued blocks wake the batcher; fewer wait for its
// tick (drainEvery).
const (
	wakeBatch  = 16
	drainEvery = 100 * time.Millisecond
)

// DefaultQueueBytes is Options.QueueBytes' default: 32 MiB of copied flow
// keys, 800 blocks of the IMIX 10k-flow trace's ~1000 flows (so QueueLen
// binds first on ordinary traffic), or 48 blocks of 16384 flows each (the
// block builder's limit) when every packet is a new flow.
const DefaultQueueBytes = 32 << 20

// flowKeyBytes is what the hook copies per flow of a block.
const flowKeyBytes = int64(unsafe.Sizeof(packet.FlowKey{}))

// placeChunk is how many pending blocks the batcher aggregates per hold of
// the group lock, so queries never wait long behind it.
const placeChunk = 8

// Hook returns the function to pass as writer.Options.CommitHook. It copies
// the block's flow keys (about 84 KB for 2000 flows) and queues them; it
// never waits for the batcher or for Badger. When QueueLen blocks are already
// waiting, or the block's keys would take the queue past QueueBytes, it
// drops the block from the live index, counts the drop and remembers the
// hole, which CatchUp fills later: memory stays bounded however many flows
// the traffic has, and no packet is lost (the block is in its segment).
func (ix *Index) Hook() writer.CommitHook { return ix.hook }

func (ix *Index) hook(meta writer.BlockMeta, sum *block.Summary) {
	if ix.closed.Load() || ix.opts.ReadOnly {
		ix.drops.Add(1)
		return
	}
	ix.pmu.Lock()
	if !ix.hasLive {
		ix.live, ix.hasLive = meta.Ref, true
	}
	var e *entry
	if len(ix.pending) < ix.opts.QueueLen {
		e = ix.takeEntryLocked(len(sum.Flows))
	}
	if e == nil {
		if _, ok := ix.holes[meta.Ref]; !ok {
			ix.holes[meta.Ref] = false
		}
		ix.pmu.Unlock()
		if ix.drops.Add(1) == 1 {
			ix.log.Warn("index queue full: block dropped from the live index, the index is behind until CatchUp", "ref", meta.Ref,
				"queue_blocks", ix.opts.QueueLen, "queue_bytes", ix.opts.QueueBytes)
		}
		return
	}
	ix.pmu.Unlock()

	e.meta, e.nonFlow = meta, sum.NonFlow
	e.flows = e.flows[:len(sum.Flows)]
	for i := range sum.Flows {
		e.flows[i] = sum.Flows[i].Key
	}

	ix.pmu.Lock()
	ix.pending = append(ix.pending, e)
	n := len(ix.pending)
	ix.pmu.Unlock()
	// Queued blocks are already queryable, so the batcher need not run per
	// block: it is woken once per wakeBatch blocks and otherwise drains on
	// its tick. Measured 2.5 points of a core less at 600 blocks/s.
	if n >= min(wakeBatch, max(1, ix.opts.QueueLen/2)) {
		select {
		case ix.wake <- struct{}{}:
		default:
		}
	}
}

// takeEntryLocked returns an entry with room for n flow keys, within
// QueueBytes: a free entry, or a new one. Free entries' slices are given up
// to make room; nil means the keys do not fit beside the queued ones.
// ix.pmu must be held.
func (ix *Index) takeEntryLocked(n int) *entry {
	var e *entry
	if k := len(ix.free); k > 0 {
		e, ix.free = ix.free[k-1], ix.free[:k-1]
	} else {
		e = new(entry)
	}
	if cap(e.flows) >= n {
		return e
	}
	// Allocated exactly, so the bound is what is accounted.
	grow := int64(n-cap(e.flows)) * flowKeyBytes
	for i := 0; ix.qheld+grow > ix.opts.QueueBytes && i < len(ix.free); i++ {
		if f := ix.free[i]; cap(f.flows) > 0 {
			ix.qheld -= int64(cap(f.flows)) * flowKeyBytes
			f.flows = nil
		}
	}
	if ix.qheld+grow > ix.opts.QueueBytes {
		ix.free = append(ix.free, e)
		return nil
	}
	ix.qheld += grow
	e.flows = make([]packet.FlowKey, 0, n)
	return e
}

// SetDeadline bounds the index's remaining work, for a stop that must end
// in time (a service manager's stop timeout): from t on nothing more is
// written; the blocks still queued or in groups are left unindexed, as
// holes (M keys) that the next Open's CatchUp indexes from the segments,
// and counted (Stats.StopShed). A group being written at t is finished.
// The zero t removes the deadline.
func (ix *Index) SetDeadline(t time.Time) {
	if t.IsZero() {
		ix.stopAt.Store(0)
		return
	}
	ix.stopAt.Store(max(t.UnixNano(), 1))
	select {
	case ix.wake <- struct{}{}: // let the batcher see it now
	default:
	}
}

// pastDeadline reports whether the SetDeadline time has passed.
func (ix *Index) pastDeadline() bool {
	d := ix.stopAt.Load()
	return d != 0 && time.Now().UnixNano() >= d
}

// shedPendingLocked leaves every queued block to CatchUp (see SetDeadline).
// ix.pmu must be held.
func (ix *Index) shedPendingLocked() {
	for _, e := range ix.pending {
		if _, ok := ix.holes[e.meta.Ref]; !ok {
			ix.holes[e.meta.Ref] = false
		}
	}
	ix.stopShed.Add(uint64(len(ix.pending)))
	ix.free = append(ix.free, ix.pending...)
	clear(ix.pending)
	ix.pending = ix.pending[:0]
}

// Add indexes one block synchronously, for reindex, CatchUp and tests. The
// block is queryable when Add returns and durable after Flush or Close (or
// once its group fills). sum is only read during the call.
func (ix *Index) Add(meta writer.BlockMeta, sum *block.Summary) error {
	if ix.closed.Load() {
		return fmt.Errorf("index add %v: %w", meta.Ref, ErrClosed)
	}
	if ix.opts.ReadOnly {
		return fmt.Errorf("index add %v: %w", meta.Ref, ErrReadOnly)
	}
	now := time.Now().UnixNano()
	ix.gmu.Lock()
	g, closed := ix.groupFor(meta, now)
	k := len(g.members)
	g.add(meta, sum.NonFlow, nil, now)
	for i := range sum.Flows {
		g.flows.set(g.flows.index(&sum.Flows[i].Key), k)
	}
	closed = ix.closeIfFull(g, closed)
	ix.gmu.Unlock()
	return ix.writeGroups(closed)
}

// groupFor returns the open group block meta joins, opening one if needed.
// Groups it had to close are appended to closed and moved to writing.
// ix.gmu must be held.
func (ix *Index) groupFor(meta writer.BlockMeta, now int64) (g *group, closed []*group) {
	seg := meta.Ref.Segment()
	for i, og := range ix.open {
		if og.seg != seg {
			continue
		}
		if og.accepts(meta.Ref) {
			g = og
		} else {
			ix.open = slices.Delete(ix.open, i, i+1)
			ix.writing = append(ix.writing, og)
			closed = append(closed, og)
		}
		break
	}
	if g == nil {
		if n := len(ix.gfree); n > 0 {
			g, ix.gfree = ix.gfree[n-1], ix.gfree[:n-1]
		} else {
			g = new(group)
		}
		ix.open = append(ix.open, g)
	}
	s, ok := ix.segs[seg]
	if !ok {
		s = segInfo{Seg: seg, MinTS: meta.MinTS, MaxTS: meta.MaxTS}
	}
	ix.segs[seg] = mergeSeg(s, segInfo{Seg: seg, MinTS: meta.MinTS, MaxTS: meta.MaxTS})
	return g, closed
}

// closeIfFull moves g to writing if it is full. ix.gmu must be held.
func (ix *Index) closeIfFull(g *group, closed []*group) []*group {
	if !g.full() {
		return closed
	}
	ix.open = slices.DeleteFunc(ix.open, func(o *group) bool { return o == g })
	ix.writing = append(ix.writing, g)
	return append(closed, g)
}

// closeGroups moves the open groups that pick selects to writing.
func (ix *Index) closeGroups(pick func(*group) bool) []*group {
	ix.gmu.Lock()
	defer ix.gmu.Unlock()
	var closed []*group
	ix.open = slices.DeleteFunc(ix.open, func(g *group) bool {
		if pick(g) {
			ix.writing = append(ix.writing, g)
			closed = append(closed, g)
			return true
		}
		return false
	})
	return closed
}

// run is the batcher: it aggregates hooked blocks into groups and writes
// groups that are full, too old, or flushed.
func (ix *Index) run() {
	defer close(ix.done)
	tick := time.NewTicker(drainEvery)
	defer tick.Stop()
	for {
		select {
		case <-ix.wake:
			if ix.diskLow() {
				continue
			}
			ix.report(ix.drain())
		case <-tick.C:
			if ix.diskLow() {
				continue
			}
			err := ix.drain()
			if err == nil {
				now := time.Now().UnixNano()
				age := int64(ix.opts.MaxGroupAge)
				err = ix.writeGroups(ix.closeGroups(func(g *group) bool { return now-g.opened >= age }))
			}
			ix.report(err)
		case reply := <-ix.flushReq:
			reply <- ix.flushAll()
		case <-ix.quit:
			ix.report(ix.flushAll())
			return
		}
	}
}

func (ix *Index) report(err error) {
	if err != nil {
		ix.log.Error("index write failed; the index is behind until CatchUp", "err", err)
	}
}

func (ix *Index) flushAll() error {
	if ix.diskLow() {
		// Nothing is written: the blocks still queued or in open groups
		// are past the persisted watermark, so the next Open's CatchUp
		// indexes them, and until then queries scan their headers.
		return fmt.Errorf("index: %w: %d blocks left unindexed for CatchUp", ErrDiskLow, ix.unwritten())
	}
	err := ix.drain()
	return errors.Join(err, ix.writeGroups(ix.closeGroups(func(*group) bool { return true })))
}

// drain aggregates every pending block, a chunk per hold of the group lock.
func (ix *Index) drain() error {
	var errs []error
	for {
		now := time.Now().UnixNano()
		ix.gmu.Lock()
		ix.pmu.Lock()
		if ix.pastDeadline() {
			ix.shedPendingLocked()
		}
		n := min(len(ix.pending), placeChunk)
		var batch [placeChunk]*entry
		copy(batch[:], ix.pending[:n])
		ix.pending = slices.Delete(ix.pending, 0, n)
		ix.pmu.Unlock()
		var closed []*group
		for _, e := range batch[:n] {
			g, c := ix.groupFor(e.meta, now)
			closed = append(closed, c...)
			g.add(e.meta, e.nonFlow, e.flows, now)
			closed = ix.closeIfFull(g, closed)
		}
		ix.gmu.Unlock()
		if n > 0 {
			ix.pmu.Lock()
			ix.free = append(ix.free, batch[:n]...)
			ix.pmu.Unlock()
		}
		if err := ix.writeGroups(closed); err != nil {
			errs = append(errs, err)
		}
		if n < placeChunk {
			return errors.Join(errs...)
		}
	}
}

// writeGroups writes closed groups, in order, and retires them.
func (ix *Index) writeGroups(gs []*group) error {
	if len(gs) == 0 {
		return nil
	}
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	var errs []error
	for _, g := range gs {
		// Past a stop deadline the group is left to CatchUp: a hole.
		shed := ix.pastDeadline()
		var err error
		if !shed {
			start := time.Now()
			err = ix.writeGroup(g)
			ix.batchNS.Add(int64(time.Since(start)))
			if err != nil {
				errs = append(errs, err)
			}
		}
		ix.gmu.Lock()
		ix.writing = slices.DeleteFunc(ix.writing, func(o *group) bool { return o == g })
		ix.gmu.Unlock()
		switch {
		case shed:
			ix.stopShed.Add(uint64(len(g.members)))
			ix.markHoles(g)
		case err == nil:
			ix.advanceWatermark(g)
		default:
			ix.markHoles(g)
		}
		ix.gmu.Lock()
		g.reset()
		ix.gfree = append(ix.gfree, g)
		ix.gmu.Unlock()
	}
	if err := ix.persistWatermark(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// markHoles remembers the blocks of a group that failed to write, so that
// CatchUp indexes them again.
func (ix *Index) markHoles(g *group) {
	ix.pmu.Lock()
	for i := range g.members {
		if _, ok := ix.holes[g.members[i].Meta.Ref]; !ok {
			ix.holes[g.members[i].Meta.Ref] = false
		}
	}
	ix.pmu.Unlock()
}

// writeGroup writes one group's keys in one WriteBatch: the B keys first, so
// that a group id is claimed before any attribute key uses it, then the
// attribute keys, the segment's time range and the hole markers. ix.wmu must
// be held.
func (ix *Index) writeGroup(g *group) error {
	gen, err := ix.nextGen(g.members[0].Meta.Ref)
	if err != nil {
		return err
	}
	g.id = groupID{Ref: g.members[0].Meta.Ref, Gen: gen}

	attrs := ix.attrs
	attrs.reset()
	for i := range g.flows.keys {
		b := g.flows.bitmap(i)
		attrs.addFlow(&g.flows.keys[i], &b)
	}
	exactKeys := g.flows.len() + len(attrs.hosts) + len(attrs.ports) + len(attrs.vlans)
	var sketchVals [][]byte
	var stored int64
	for i := range g.members {
		stored += int64(g.members[i].Meta.StoredLen)
	}
	if sketchWorth(exactKeys, sketchEntries(&g.flows), len(g.members), stored, ix.opts.SketchAbove) {
		if sketchVals, err = ix.sketches.build(g); err != nil {
			return fmt.Errorf("index group %v: %w", g.id.Ref, err)
		}
		// A sketch past the value threshold would go to Badger's value
		// log, whose space nothing reclaims once retention drops it:
		// such a group keeps its exact keys.
		for _, v := range sketchVals {
			if int64(len(v)) > valueThreshold(ix.opts.MemTableSize) {
				sketchVals = nil
				break
			}
		}
	}
	nkeys := len(g.members) + exactKeys
	size := len(g.members)*blockKeySize + g.flows.len()*flowKeySize + len(attrs.hosts)*hostKeySize +
		len(attrs.ports)*portKeySize + len(attrs.vlans)*vlanKeySize + 2*segmentKeySize
	if sketchVals != nil {
		nkeys = len(g.members)
		for _, v := range sketchVals {
			if v != nil {
				nkeys++
			}
		}
		size = len(g.members)*(blockKeySize+sketchKeySize) + 2*segmentKeySize
	}
	// Badger keeps the key slices until the batch is flushed, so they live
	// in one arena that is reused only after Flush returns.
	if cap(ix.arena) < size {
		ix.arena = make([]byte, 0, size+size/4)
	}
	buf := ix.arena[:0]
	// Keys are collected, sorted and then set: the memtable skiplist takes
	// sorted keys faster (neighbouring inserts share their search path), and
	// kind B sorts first, so the group is claimed before it is used.
	keys := ix.keyList[:0]
	setValue := func(start int, v []byte) error {
		keys = append(keys, keyValue{buf[start:len(buf):len(buf)], v})
		return nil
	}
	set := func(start int) error { return setValue(start, nil) }

	for i := range g.members {
		m := &g.members[i]
		start := len(buf)
		buf = appendBlockKey(buf, &blockEntry{Meta: m.Meta, NonFlow: m.NonFlow, Group: g.id, K: uint16(i), N: uint16(len(g.members))})
		if err := set(start); err != nil {
			return fmt.Errorf("index group %v: %w", g.id.Ref, err)
		}
	}
	for k, v := range sketchVals {
		if v == nil {
			continue // a block without flows: no value holds for it
		}
		start := len(buf)
		buf = appendSketchKey(buf, g.id, uint16(k))
		if err := setValue(start, v); err != nil {
			return fmt.Errorf("index group %v: %w", g.id.Ref, err)
		}
	}
	if sketchVals == nil {
		var attr [flowAttrSize]byte
		for i := range g.flows.keys {
			start := len(buf)
			b := g.flows.bitmap(i)
			buf = appendAttrKey(buf, kindFlow, appendFlowAttr(attr[:0], &g.flows.keys[i]), g.id, &b)
			if err := set(start); err != nil {
				return fmt.Errorf("index group %v: %w", g.id.Ref, err)
			}
		}
		for ip, b := range attrs.hosts {
			start := len(buf)
			buf = appendAttrKey(buf, kindHost, appendHostAttr(attr[:0], &ip), g.id, &b)
			if err := set(start); err != nil {
				return fmt.Errorf("index group %v: %w", g.id.Ref, err)
			}
		}
		for pp, b := range attrs.ports {
			start := len(buf)
			buf = appendAttrKey(buf, kindPort, appendPortAttr(attr[:0], uint8(pp>>16), uint16(pp)), g.id, &b)
			if err := set(start); err != nil {
				return fmt.Errorf("index group %v: %w", g.id.Ref, err)
			}
		}
		for v, b := range attrs.vlans {
			start := len(buf)
			buf = appendAttrKey(buf, kindVLAN, appendVLANAttr(attr[:0], v), g.id, &b)
			if err := set(start); err != nil {
				return fmt.Errorf("index group %v: %w", g.id.Ref, err)
			}
		}
	}

	// The segment's time range: set the widened key before deleting the old
	// one, so a crash leaves both (merged on load) rather than neither.
	seg := segInfo{Seg: g.seg, MinTS: g.minTS, MaxTS: g.maxTS}
	old, had := ix.diskSegs[g.seg]
	if had {
		seg = mergeSeg(old, seg)
	}
	if !had || seg != old {
		start := len(buf)
		buf = appendSegmentKey(buf, seg)
		if err := set(start); err != nil {
			return fmt.Errorf("index group %v: %w", g.id.Ref, err)
		}
		nkeys++
	}
	slices.SortFunc(keys, func(a, b keyValue) int { return bytes.Compare(a.k, b.k) })
	ix.keyList = keys[:0]
	wb := ix.db.NewWriteBatch()
	defer wb.Cancel()
	for _, kv := range keys {
		if err := wb.Set(kv.k, kv.v); err != nil {
			return fmt.Errorf("index group %v: %w", g.id.Ref, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("index group %v: flush: %w", g.id.Ref, err)
	}
	if had && seg != old {
		if err := ix.deleteKeys(appendSegmentKey(nil, old)); err != nil {
			return fmt.Errorf("index group %v: %w", g.id.Ref, err)
		}
	}
	ix.diskSegs[g.seg] = seg
	ix.blocks.Add(uint64(len(g.members)))
	ix.groups.Add(1)
	if sketchVals != nil {
		ix.sketched.Add(1)
	}
	ix.keys.Add(uint64(nkeys))
	return nil
}

// deleteKeys deletes keys in one small transaction.
func (ix *Index) deleteKeys(keys ...[]byte) error {
	err := ix.db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		ix.deletes.Add(uint64(len(keys)))
	}
	return err
}

// nextGen returns an unused generation for a group starting at first: one
// more than any group already recorded there (normally none). ix.wmu must be
// held.
func (ix *Index) nextGen(first writer.Ref) (uint8, error) {
	if gen, ok := ix.nextGenAt[first]; ok {
		// Written by this process moments ago, possibly not yet visible to a
		// new read transaction's prefix scan; keep counting.
		if gen == 255 {
			return 0, fmt.Errorf("index group %v: more than 255 groupings start at this block", first)
		}
		ix.nextGenAt[first] = gen + 1
		return gen + 1, nil
	}
	var next int
	prefix := appendBlockPrefix(nil, first)
	err := ix.db.View(func(txn *badger.Txn) error {
		return scanPrefix(txn, prefix, func(k []byte) error {
			e, err := parseBlockKey(k)
			if err != nil {
				return err
			}
			if e.Group.Ref == first && int(e.Group.Gen) >= next {
				next = int(e.Group.Gen) + 1
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("index group %v: find generation: %w", first, err)
	}
	if next > 255 {
		return 0, fmt.Errorf("index group %v: more than 255 groupings start at this block", first)
	}
	if len(ix.nextGenAt) > 4096 {
		clear(ix.nextGenAt)
	}
	ix.nextGenAt[first] = uint8(next)
	return uint8(next), nil
}

// advanceWatermark moves the watermark past the written group's blocks that
// precede every block still in flight or missing, and clears the holes the
// group filled. ix.wmu must be held.
func (ix *Index) advanceWatermark(g *group) {
	var filled [][]byte
	ix.gmu.RLock()
	ix.pmu.Lock()
	for i := range g.members {
		r := g.members[i].Meta.Ref
		if persisted, ok := ix.holes[r]; ok {
			delete(ix.holes, r)
			if persisted {
				filled = append(filled, appendRefKey(nil, kindMissing, r))
			}
		}
	}
	bound, bounded := ix.inflightMinLocked()
	ix.pmu.Unlock()
	ix.gmu.RUnlock()
	if len(filled) > 0 {
		if err := ix.deleteKeys(filled...); err != nil {
			ix.log.Warn("index: delete hole markers", "err", err)
		}
	}
	// Groups written while an earlier block was still in flight are
	// parked by their last block, and counted once the way is clear.
	ix.parked = append(ix.parked, g.last)
	if len(ix.parked) > 4096 {
		ix.parked = ix.parked[1:] // only makes the watermark more conservative
	}
	if !ix.caughtUp {
		return
	}
	for i := len(g.members) - 1; i >= 0; i-- {
		if r := g.members[i].Meta.Ref; !bounded || r < bound {
			ix.raiseWatermark(r)
			break
		}
	}
	ix.parked = slices.DeleteFunc(ix.parked, func(r writer.Ref) bool {
		if !bounded || r < bound {
			ix.raiseWatermark(r)
			return true
		}
		return false
	})
}

func (ix *Index) raiseWatermark(r writer.Ref) {
	if !ix.hasWM || r > ix.wm {
		ix.wm, ix.hasWM = r, true
	}
}

// inflightMinLocked is the lowest ref hooked or added but not durable, or
// missing. ix.gmu and ix.pmu must be held.
func (ix *Index) inflightMinLocked() (writer.Ref, bool) {
	var m writer.Ref
	ok := false
	see := func(r writer.Ref) {
		if !ok || r < m {
			m, ok = r, true
		}
	}
	for _, e := range ix.pending {
		see(e.meta.Ref)
	}
	for _, g := range ix.open {
		see(g.members[0].Meta.Ref)
	}
	for _, g := range ix.writing {
		if len(g.members) > 0 {
			see(g.members[0].Meta.Ref)
		}
	}
	for r := range ix.holes {
		see(r)
	}
	return m, ok
}

// persistWatermark writes the watermark and new hole markers if they
// changed. ix.wmu must be held.
func (ix *Index) persistWatermark() error {
	if ix.opts.ReadOnly {
		return nil
	}
	var set, del [][]byte
	ix.pmu.Lock()
	for r, persisted := range ix.holes {
		if !persisted {
			set = append(set, appendRefKey(nil, kindMissing, r))
			ix.holes[r] = true
		}
	}
	ix.pmu.Unlock()
	var old writer.Ref
	var hadOld bool
	err := ix.db.View(func(txn *badger.Txn) error {
		return scanPrefix(txn, []byte{kindWatermark}, func(k []byte) error {
			r, err := parseRefKey(k, kindWatermark)
			if err == nil && (!hadOld || r > old) {
				old, hadOld = r, true
			}
			if err == nil && (!ix.hasWM || r != ix.wm) {
				del = append(del, slices.Clone(k))
			}
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("index: read watermark: %w", err)
	}
	if ix.hasWM && (!hadOld || old != ix.wm) {
		set = append(set, appendRefKey(nil, kindWatermark, ix.wm))
	}
	if len(set) == 0 && len(del) == 0 {
		return nil
	}
	err = ix.db.Update(func(txn *badger.Txn) error {
		for _, k := range set {
			if err := txn.Set(k, nil); err != nil {
				return err
			}
		}
		for _, k := range del {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index: write watermark: %w", err)
	}
	ix.keys.Add(uint64(len(set)))
	ix.deletes.Add(uint64(len(del)))
	return nil
}

// Flush aggregates every queued block and writes every open group. When it
// returns nil, everything committed before the call is durable in the index.
func (ix *Index) Flush() error {
	if ix.closed.Load() {
		return fmt.Errorf("index flush: %w", ErrClosed)
	}
	reply := make(chan error, 1)
	select {
	case ix.flushReq <- reply:
		return <-reply
	case <-ix.done:
		return fmt.Errorf("index flush: %w", ErrClosed)
	}
}

// Close flushes and closes the index. Blocks hooked after Close are counted
// as drops.
func (ix *Index) Close() error {
	ix.closeMu.Lock()
	defer ix.closeMu.Unlock()
	if ix.closed.Swap(true) {
		return nil
	}
	close(ix.quit)
	<-ix.done
	if err := ix.db.Close(); err != nil {
		return fmt.Errorf("close index %q: %w", ix.opts.Dir, err)
	}
	if !ix.opts.ReadOnly {
		if err := writeVerified(ix.opts.Dir); err != nil { // check.go
			ix.log.Warn("index: list of verified tables not written: the next open verifies them all", "err", err)
		}
	}
	return nil
}

// ErrStopDeadline is returned (wrapped) by CloseBy when Badger had not
// closed by the deadline.
var ErrStopDeadline = errors.New("index not closed by the stop deadline")

// CloseBy is Close for a stop that must end by deadline. Work stops at
// deadline less a quarter of the time left (at most 10 s), or at the
// SetDeadline time if that is earlier; the time after it is kept
// for writing the hole markers and closing Badger (SetDeadline says what
// happens to the blocks not written). If Badger has still not closed at
// deadline (a write stalled behind compaction), CloseBy returns
// ErrStopDeadline and leaves it to finish on its own: the caller exits, the
// next Open replays Badger's write-ahead log, and everything past the
// persisted watermark is indexed by its CatchUp, as after a crash.
func (ix *Index) CloseBy(deadline time.Time) error {
	left := time.Until(deadline)
	// An earlier deadline set by SetDeadline stands.
	if d := deadline.Add(-min(left/4, 10*time.Second)); ix.stopAt.Load() == 0 || d.UnixNano() < ix.stopAt.Load() {
		ix.SetDeadline(d)
	}
	done := make(chan error, 1)
	go func() { done <- ix.Close() }()
	t := time.NewTimer(max(left, 0))
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("close index %q: %w (the next start indexes what it lacks)", ix.opts.Dir, ErrStopDeadline)
	}
}

// Stats returns the index's counters.
func (ix *Index) Stats() Stats {
	s := Stats{
		Blocks:     ix.blocks.Load(),
		Groups:     ix.groups.Load(),
		Sketched:   ix.sketched.Load(),
		Keys:       ix.keys.Load(),
		Deletes:    ix.deletes.Load(),
		QueueDrops: ix.drops.Load(),
		StopShed:   ix.stopShed.Load(),
		BatchTime:  time.Duration(ix.batchNS.Load()),
	}
	ix.gmu.RLock()
	ix.pmu.Lock()
	s.QueueBytes = ix.qheld
	s.Lag = len(ix.pending)
	for _, g := range ix.open {
		s.Lag += len(g.members)
	}
	for _, g := range ix.writing {
		s.Lag += len(g.members)
	}
	s.Holes = len(ix.holes)
	ix.pmu.Unlock()
	ix.gmu.RUnlock()
	ix.wmu.Lock()
	s.Watermark, s.CaughtUp = ix.wm, ix.caughtUp
	ix.wmu.Unlock()
	return s
}

// Size is the bytes on disk of the index's tables (lsm: the .sst files) and
// of its logs (vlog: value log and memtable write-ahead logs, counted as
// allocated, since Badger preallocates them sparse). Badger's own DB.Size
// is refreshed only once a minute, too late for tests and reports.
func (ix *Index) Size() (lsm, vlog int64) { return DiskSize(ix.opts.Dir) }

// Watermark is the highest ref indexed with nothing missing before it, or 0
// when none is known. It advances only after CatchUp has run once since
// Open: before that the index cannot know which blocks the store wrote
// while it was not watching.
func (ix *Index) Watermark() writer.Ref {
	ix.wmu.Lock()
	defer ix.wmu.Unlock()
	return ix.wm
}

// Missing returns the refs of blocks the index knows it lacks (dropped by a
// full queue or a failed write), ascending.
func (ix *Index) Missing() []writer.Ref {
	ix.pmu.Lock()
	out := make([]writer.Ref, 0, len(ix.holes))
	for r := range ix.holes {
		out = append(out, r)
	}
	ix.pmu.Unlock()
	slices.Sort(out)
	return out
}

// BlockWalker calls fn for every committed block of the store with a ref at
// or after from, in ref order. The reader adapter of the store implements
// it over the segments' block summaries.
type BlockWalker func(from writer.Ref, fn func(meta writer.BlockMeta, sum *block.Summary) error) error

// CatchUpFrom is where CatchUp starts walking: after the watermark, or at
// the first hole if one is before it; 0 when there is no watermark.
func (ix *Index) CatchUpFrom() writer.Ref {
	ix.wmu.Lock()
	from, has := ix.wm+1, ix.hasWM
	ix.wmu.Unlock()
	if !has {
		from = 0
	}
	ix.pmu.Lock()
	for r := range ix.holes {
		if r < from {
			from = r
		}
	}
	ix.pmu.Unlock()
	return from
}

// CatchUp indexes what the index lacks: the blocks after the watermark that
// the commit hook did not see since Open, and the holes. On an empty index
// that is every block: a reindex. Call it once after Open, also when the
// store is new, since the watermark advances only afterwards; call it again
// whenever Stats.Holes is not zero.
//
// Live hooking may go on meanwhile (a capture that catches up in the
// background): blocks from the first one hooked on are left to the hook,
// groups the hook writes are parked, and the watermark stays where it was
// until CatchUp has returned nil, so queries scan the headers of every
// block after it. A walk that fails (walk returns an error, e.g. because
// a stop interrupted it) returns that error and moves nothing: what it
// did not index stays past the watermark, or a hole, for the next
// CatchUp. Blocks it added are written by Flush or Close as any others.
func (ix *Index) CatchUp(walk BlockWalker) error {
	if ix.opts.ReadOnly {
		return fmt.Errorf("index catch up: %w", ErrReadOnly)
	}
	from := ix.CatchUpFrom()
	err := walk(from, func(meta writer.BlockMeta, sum *block.Summary) error {
		ix.pmu.Lock()
		_, hole := ix.holes[meta.Ref]
		live := ix.hasLive && meta.Ref >= ix.live
		ix.pmu.Unlock()
		if live && !hole {
			return nil
		}
		return ix.Add(meta, sum)
	})
	if err != nil {
		return fmt.Errorf("index catch up from %v: %w", from, err)
	}
	if err := ix.Flush(); err != nil {
		return fmt.Errorf("index catch up: %w", err)
	}
	ix.wmu.Lock()
	ix.caughtUp = true
	ix.gmu.RLock()
	ix.pmu.Lock()
	bound, bounded := ix.inflightMinLocked()
	ix.pmu.Unlock()
	ix.gmu.RUnlock()
	ix.parked = slices.DeleteFunc(ix.parked, func(r writer.Ref) bool {
		if !bounded || r < bound {
			ix.raiseWatermark(r)
			return true
		}
		return false
	})
	if !bounded {
		// Nothing in flight and nothing missing: everything seen is durable.
		if top, ok, err := ix.maxIndexedRef(); err != nil {
			ix.wmu.Unlock()
			return err
		} else if ok && (!ix.hasWM || top > ix.wm) {
			ix.wm, ix.hasWM = top, true
		}
	}
	err = ix.persistWatermark()
	ix.wmu.Unlock()
	return err
}

// maxIndexedRef is the highest ref with a block key.
func (ix *Index) maxIndexedRef() (writer.Ref, bool, error) {
	var r writer.Ref
	var ok bool
	err := ix.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: []byte{kindData}})
		defer it.Close()
		// From the last segment down, the last block key of each.
		seek := []byte{kindData, 0xff, 0xff, 0xff, 0xff, 0xff}
		for {
			it.Seek(seek)
			if !it.ValidForPrefix([]byte{kindData}) {
				return nil
			}
			seg := binary.BigEndian.Uint32(it.Item().Key()[1:])
			prefix := appendDataPrefix(nil, seg, kindBlock)
			it.Seek(append(prefix, 0xff, 0xff, 0xff, 0xff, 0xff))
			if it.ValidForPrefix(prefix) {
				e, err := parseBlockKey(it.Item().Key())
				if err != nil {
					return err
				}
				r, ok = e.Meta.Ref, true
				return nil
			}
			if seg == 0 {
				return nil
			}
			seek = appendDataPrefix(nil, seg-1, 0xff)
		}
	})
	if err != nil {
		return 0, false, fmt.Errorf("index: find last block: %w", err)
	}
	return r, ok, nil
}

// ErrDiskLow is wrapped by Flush and Close when the index did not write
// because its filesystem is nearly full (Options.MinFree).
var ErrDiskLow = errors.New("filesystem nearly full, index writes paused")

// diskCheckEvery bounds how often diskLow asks the filesystem.
const diskCheckEvery = int64(500 * time.Millisecond)

// diskLow reports whether index writes are paused for lack of space,
// checking the filesystem at most every diskCheckEvery. Writes resume once
// free space is back above MinFree plus a margin (so a store at the limit
// does not flap).
func (ix *Index) diskLow() bool {
	if ix.opts.MinFree < 0 || ix.opts.ReadOnly {
		return false
	}
	now := time.Now().UnixNano()
	if last := ix.diskAt.Load(); now-last < diskCheckEvery && last != 0 {
		return ix.lowDisk.Load()
	}
	ix.diskAt.Store(now)
	avail, err := writer.AvailBytes(ix.opts.Dir)
	if err != nil {
		return ix.lowDisk.Load()
	}
	low := ix.lowDisk.Load()
	switch {
	case !low && avail < ix.opts.MinFree:
		ix.lowDisk.Store(true)
		ix.lowPauses.Add(1)
		ix.log.Warn("index: filesystem nearly full, index writes paused (blocks stay queryable by header scan and are indexed once there is room)",
			"avail_bytes", avail, "min_free_bytes", ix.opts.MinFree)
	case low && avail >= ix.opts.MinFree+ix.opts.MinFree/4:
		ix.lowDisk.Store(false)
		ix.log.Info("index: room again, index writes resume; blocks skipped meanwhile are holes until CatchUp", "avail_bytes", avail)
	}
	return ix.lowDisk.Load()
}

// unwritten counts the blocks queued or in open groups.
func (ix *Index) unwritten() int {
	ix.pmu.Lock()
	n := len(ix.pending)
	ix.pmu.Unlock()
	ix.gmu.RLock()
	for _, g := range ix.open {
		n += len(g.members)
	}
	ix.gmu.RUnlock()
	return n
}

// Memory the index holds besides its queue, by what bounds it (see
// MemoryBound): a group is at most maxGroupFlows flows of about 320 bytes
// (key, bitmap word column, slots), and at most groupsHeld are in memory
// (open in the segment being written and the one rotated from, one being
// written, one reused); writing one takes its keys' arena, key list and
// host/port maps, measured at 60 MiB for a full group.
const (
	groupsHeld     = 4
	groupBytes     = maxGroupFlows * 320
	groupWriteHeld = 64 << 20
)

// MemoryBound is the most memory an index opened with opts holds, by its
// limits: the queue (QueueBytes), the groups being aggregated and written,
// and Badger's memtables, caches and table builders (badgerMemory).
func MemoryBound(opts Options) int64 {
	q := opts.QueueBytes
	if q <= 0 {
		q = DefaultQueueBytes
	}
	return q + groupsHeld*groupBytes + groupWriteHeld + badgerMemory(opts)
}

// badgerMemory bounds what Badger holds with the options badgerOptions
// gives it: NumMemtables memtables plus the one being flushed (each an
// arena a little over MemTableSize), the block and index caches, and the
// table builders' allocators. Badger keeps up to 8 of those allocators
// for reuse, each as large as the largest table it built: a level-0 table
// (a memtable's keys, uncompressed and compressed) or a compaction output
// table (at most BaseTableSize with TableSizeMultiplier 1); so 8 x 3 x
// MemTableSize covers them.
func badgerMemory(opts Options) int64 {
	mt := opts.MemTableSize
	if mt <= 0 {
		mt = 16 << 20
	}
	bc := opts.BlockCacheSize
	if bc <= 0 {
		bc = 32 << 20
	}
	return 4*(mt+mt/4) + bc + indexCacheSize + 8*3*mt
}

// indexCacheSize is Badger's index cache (table indexes and blooms).
const indexCacheSize = 16 << 20
