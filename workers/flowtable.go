package workers

import (
	"time"

	"tapvault/packet"
)

// FlowEntry is the per-worker state of one flow: the packet.Flow the
// analytics see, and what the table and the block builder keep beside it.
type FlowEntry struct {
	packet.Flow // first, so &e.Flow costs nothing on the hot path
	hash        uint64

	// The worker caches where this flow sits in the open block's summary:
	// valid while blkGen equals the builder's generation.
	blkGen uint32
	blkIdx int32

	// ended: TCP's FIN seen from A (bit 0) or B (bit 1), or an RST (bit
	// 2). A flow with both FINs or an RST goes after CloseLinger of
	// quiet instead of the idle timeout.
	ended uint8
}

// TCP ends a flow entry records (FlowEntry.ended).
const (
	endFinAB  = 1 << packet.DirAB
	endFinBA  = 1 << packet.DirBA
	endRST    = 4
	endClosed = endFinAB | endFinBA

	// TCP's flag bits (packet.Decoded.TCPFlags) that end a connection.
	tcpFIN     = 0x01
	tcpRST     = 0x04
	ipProtoTCP = 6
)

// CloseLinger is how long a closed TCP flow (both FINs, or an RST) stays in
// the table after its last packet, for the retransmitted FINs and ACKs of
// its close: Zeek's tcp_close_delay. Without it closed connections held
// their entries for the whole idle timeout (120 s): a server taking more
// than 2 200 connections a second filled the default 262 144 entries with
// dead ones, and new connections went untracked (an import of a 6M-packet
// generated app trace analysed 108 021 of its exchanges).
const CloseLinger = 5 * time.Second

// closed reports whether e's TCP connection has ended.
func (e *FlowEntry) closed() bool { return e.ended&endRST != 0 || e.ended&endClosed == endClosed }

// tcpEnd records a TCP segment's FIN or RST (flags, TCP's flags byte) sent
// in direction dir.
func (e *FlowEntry) tcpEnd(flags uint8, dir uint8) {
	if flags&tcpRST != 0 {
		e.ended |= endRST
	}
	if flags&tcpFIN != 0 {
		e.ended |= 1 << (dir & 1)
	}
}

// FlowTableStats counts what the flow table did.
type FlowTableStats struct {
	Active  int    // flows in the table now
	Created uint64 // flows ever inserted
	Evicted uint64 // flows removed for idleness
	Full    uint64 // packets whose new flow found the table full (not tracked)
}

// FlowTable is a per-worker, unshared, fixed-capacity hash table of flows.
//
// It is split in two so that lookups touch little memory: an open-addressing
// slot array of 8-byte words (32 bits of hash as a tag, 32 bits of entry
// number) and a dense array of entries. With 10k active flows the entries
// take about 1 MiB however large the bound is, and a probe compares tags
// without touching entries. Measured: the one-array layout (56 MiB of wide
// slots at the default bound) spent half the worker's time in cache misses.
//
// Memory is allocated once (the bound). A new flow that finds the table full
// is counted and not tracked. Idle flows are evicted by a clock hand over the
// dense entries, a few per burst, so eviction never stalls RX.
type FlowTable struct {
	slots   []uint64 // tag<<32 | (entry+1); 0 = empty
	mask    uint64
	entries []FlowEntry
	slotOf  []uint32 // entry -> its slot, for O(1) removal
	max     int
	idle    int64
	linger  int64 // closed TCP flows: min(idle, CloseLinger)
	hand    int
	stats   FlowTableStats
}

// NewFlowTable sizes a table for maxFlows flows evicted after idleNS of
// inactivity (in packet time).
func NewFlowTable(maxFlows int, idleNS int64) *FlowTable {
	if maxFlows < 16 {
		maxFlows = 16
	}
	n := 1
	for n < 2*maxFlows { // load factor at most 0.5: short probes
		n <<= 1
	}
	return &FlowTable{
		slots:   make([]uint64, n),
		mask:    uint64(n - 1),
		entries: make([]FlowEntry, 0, maxFlows),
		slotOf:  make([]uint32, 0, maxFlows),
		max:     maxFlows,
		idle:    idleNS,
		linger:  min(idleNS, int64(CloseLinger)),
	}
}

// Stats returns the table's counters.
func (t *FlowTable) Stats() FlowTableStats {
	s := t.stats
	s.Active = len(t.entries)
	return s
}

// Lookup finds the entry for k (whose hashKey is h), inserting it if it is
// new. It returns nil when the flow is new and the table is full. The
// pointer is valid until the next Lookup or Evict call.
func (t *FlowTable) Lookup(k *packet.FlowKey, h uint64, ts int64, dir uint8) *FlowEntry {
	tag := h >> 32
	i := h & t.mask
	for {
		s := t.slots[i]
		if s == 0 {
			break
		}
		if s>>32 == tag {
			e := &t.entries[uint32(s)-1]
			if e.Key == *k {
				return e
			}
		}
		i = (i + 1) & t.mask
	}
	if len(t.entries) >= t.max {
		t.stats.Full++
		return nil
	}
	t.entries = append(t.entries, FlowEntry{Flow: packet.Flow{Key: *k, FirstTS: ts, LastTS: ts, FirstDir: dir}, hash: h})
	t.slotOf = append(t.slotOf, uint32(i))
	t.slots[i] = tag<<32 | uint64(len(t.entries))
	t.stats.Created++
	return &t.entries[len(t.entries)-1]
}

// Evict advances the clock hand over up to n entries, removing flows idle
// since before now-idle, and closed TCP flows quiet since before
// now-CloseLinger. It returns how many it evicted. onEvict, if not nil,
// sees each flow before it goes.
func (t *FlowTable) Evict(now int64, n int, onEvict func(*FlowEntry)) int {
	evicted := 0
	for ; n > 0 && len(t.entries) > 0; n-- {
		if t.hand >= len(t.entries) {
			t.hand = 0
		}
		e := &t.entries[t.hand]
		if quiet := now - e.LastTS; quiet > t.idle || quiet > t.linger && e.closed() {
			if onEvict != nil {
				onEvict(e)
			}
			t.remove(t.hand) // moves the last entry here: look at it again
			evicted++
			continue
		}
		t.hand++
	}
	t.stats.Evicted += uint64(evicted)
	return evicted
}

// remove deletes entry x: its slot goes by backward-shift deletion (linear
// probing stays correct without tombstones) and the last entry moves into x.
func (t *FlowTable) remove(x int) {
	i := int(t.slotOf[x])
	mask := int(t.mask)
	for {
		t.slots[i] = 0
		j := i
		for {
			j = (j + 1) & mask
			s := t.slots[j]
			if s == 0 {
				goto moved
			}
			home := int(t.entries[uint32(s)-1].hash & t.mask)
			// Slot j may move back to i if i lies cyclically in [home, j).
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				t.slots[i] = s
				t.slotOf[uint32(s)-1] = uint32(i)
				i = j
				break
			}
		}
	}
moved:
	last := len(t.entries) - 1
	if x != last {
		t.entries[x] = t.entries[last]
		t.slotOf[x] = t.slotOf[last]
		s := t.slotOf[x]
		t.slots[s] = t.slots[s]&^0xffffffff | uint64(x+1)
	}
	t.entries = t.entries[:last]
	t.slotOf = t.slotOf[:last]
}

// Range calls fn for every flow in the table.
func (t *FlowTable) Range(fn func(*FlowEntry)) {
	for i := range t.entries {
		fn(&t.entries[i])
	}
}

// flow is the entry's packet.Flow, or nil for a flow the full table does
// not track.
func (e *FlowEntry) flow() *packet.Flow {
	if e == nil {
		return nil
	}
	return &e.Flow
}
