package workers

// FlowEntry is the per-worker state of one flow. Analytics (TCP timing,
// message decoders) hang off it in later stages.
type FlowEntry struct {
	Key      FlowKey
	hash     uint64
	used     bool
	FirstTS  int64
	LastTS   int64
	Pkts     [2]uint64
	Bytes    [2]uint64
	FirstDir uint8 // direction of the first packet seen: the initiator's
}

// FlowTableStats counts what the flow table did.
type FlowTableStats struct {
	Active  int    // flows in the table now
	Created uint64 // flows ever inserted
	Evicted uint64 // flows removed for idleness
	Full    uint64 // packets whose new flow found the table full (not tracked)
}

// FlowTable is a per-worker, unshared, fixed-capacity open-addressing hash
// table of flows. Its memory is allocated once (the bound); a new flow that
// finds it full is counted and not tracked, and idle flows are evicted by a
// clock hand that advances a few slots per packet-burst, so eviction cost is
// spread evenly and never stalls RX.
type FlowTable struct {
	slots []FlowEntry
	mask  uint64
	max   int // most entries allowed (load factor bound)
	idle  int64
	hand  int
	stats FlowTableStats
}

// NewFlowTable sizes a table for maxFlows flows evicted after idleNS of
// inactivity (in packet time).
func NewFlowTable(maxFlows int, idleNS int64) *FlowTable {
	if maxFlows < 16 {
		maxFlows = 16
	}
	n := 1
	for n < maxFlows+maxFlows/4 { // keep the load factor at most 0.8
		n <<= 1
	}
	return &FlowTable{slots: make([]FlowEntry, n), mask: uint64(n - 1), max: maxFlows, idle: idleNS}
}

// Stats returns the table's counters.
func (t *FlowTable) Stats() FlowTableStats { return t.stats }

// Lookup finds the entry for k, inserting it if it is new. It returns nil when
// the flow is new and the table is full. The pointer is valid until the next
// Lookup or Evict call.
func (t *FlowTable) Lookup(k *FlowKey, h uint64, ts int64, dir uint8) *FlowEntry {
	i := h & t.mask
	for {
		e := &t.slots[i]
		if !e.used {
			if t.stats.Active >= t.max {
				t.stats.Full++
				return nil
			}
			*e = FlowEntry{Key: *k, hash: h, used: true, FirstTS: ts, LastTS: ts, FirstDir: dir}
			t.stats.Active++
			t.stats.Created++
			return e
		}
		if e.hash == h && e.Key == *k {
			return e
		}
		i = (i + 1) & t.mask
	}
}

// Evict advances the clock hand over n slots, removing flows idle since
// before now-idle. It returns how many it evicted. onEvict, if not nil, sees
// each flow before it goes.
func (t *FlowTable) Evict(now int64, n int, onEvict func(*FlowEntry)) int {
	evicted := 0
	for ; n > 0; n-- {
		t.hand = (t.hand + 1) & int(t.mask)
		e := &t.slots[t.hand]
		if e.used && now-e.LastTS > t.idle {
			if onEvict != nil {
				onEvict(e)
			}
			t.remove(t.hand)
			evicted++
			// The backward shift may have moved another entry into this
			// slot: look at it again.
			t.hand = (t.hand - 1) & int(t.mask)
		}
	}
	t.stats.Evicted += uint64(evicted)
	return evicted
}

// remove deletes slot i with backward-shift deletion, which keeps linear
// probing correct without tombstones.
func (t *FlowTable) remove(i int) {
	mask := int(t.mask)
	for {
		t.slots[i].used = false
		j := i
		for {
			j = (j + 1) & mask
			if !t.slots[j].used {
				t.stats.Active--
				return
			}
			home := int(t.slots[j].hash & t.mask)
			// Move j back to i if i lies cyclically within [home, j).
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				t.slots[i] = t.slots[j]
				i = j
				break
			}
		}
	}
}

// Range calls fn for every flow in the table.
func (t *FlowTable) Range(fn func(*FlowEntry)) {
	for i := range t.slots {
		if t.slots[i].used {
			fn(&t.slots[i])
		}
	}
}
