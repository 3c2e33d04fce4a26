package workers

import (
	"encoding/binary"
	"tapvault/block"
	"tapvault/packet"
	"time"
)

// builder appends packets to the worker's open block and keeps the block's
// flow summary. The summary's distinct-flow set is an open-addressing table
// of indexes into Block.Summary.Flows, cleared per block by walking only the
// slots that were used, so resetting costs O(flows in block), not O(table).
type builder struct {
	pool     *block.Pool
	cur      *block.Block
	queue    uint16
	maxFlows int

	gen    uint32  // incremented per block; FlowEntry.blkGen caches membership
	runID  uint32  // high half of block IDs
	seq    uint32  // per-queue block sequence number, low half of block IDs
	set    []int32 // slot -> index+1 into cur.Summary.Flows; 0 = empty
	hashes []uint64
	used   []int32 // slots set in this block
	mask   uint64
}

func newBuilder(pool *block.Pool, queue uint16, maxFlows int) *builder {
	n := 1
	for n < 2*maxFlows {
		n <<= 1
	}
	return &builder{
		pool:     pool,
		gen:      1, // FlowEntry.blkGen starts at 0: never a valid generation
		queue:    queue,
		maxFlows: maxFlows,
		set:      make([]int32, n),
		hashes:   make([]uint64, 0, maxFlows),
		used:     make([]int32, 0, maxFlows),
		mask:     uint64(n - 1),
	}
}

// open takes a fresh block from the pool. It returns false if none is free.
func (b *builder) open(now int64, wait bool) bool {
	var blk *block.Block
	if wait {
		blk = b.pool.GetWait()
	} else {
		blk = b.pool.Get()
	}
	if blk == nil {
		return false
	}
	blk.Queue = b.queue
	b.seq++
	if b.seq == 0 { // after 2^32 blocks; 0 would make ID 0 when runID is 0
		b.seq = 1
	}
	blk.ID = uint64(b.runID)<<32 | uint64(b.seq)
	blk.OpenedAt = now
	blk.Arrived = time.Now().UnixNano() // once per block, not per packet
	b.cur = blk
	return true
}

// take hands the open block out (for sealing) and clears the flow set.
func (b *builder) take() *block.Block {
	blk := b.cur
	b.cur = nil
	b.gen++
	for _, s := range b.used {
		b.set[s] = 0
	}
	b.used = b.used[:0]
	b.hashes = b.hashes[:0]
	return blk
}

// fits reports whether a record of caplen bytes may go into the open block
// without passing the seal size. An empty block takes any packet: its buffer
// has room for one maximum-size packet beyond the seal size.
func (b *builder) fits(caplen int) bool {
	return b.cur.Count == 0 || len(b.cur.Data)+block.RecordHeaderSize+caplen <= b.pool.BlockSize()
}

// addFlow accounts one packet to flow k in the open block's summary and
// returns the flow's index in it. It returns -1 if the flow is new and the
// block already holds maxFlows flows: the caller seals the block and retries
// in a new one.
func (b *builder) addFlow(k *packet.FlowKey, h uint64, dir uint8, ts int64, wireLen uint32) int32 {
	flows := &b.cur.Summary.Flows
	i := h & b.mask
	for {
		v := b.set[i]
		if v == 0 {
			break
		}
		if b.hashes[v-1] == h && (*flows)[v-1].Key == *k {
			b.countFlow(v-1, dir, ts, wireLen)
			return v - 1
		}
		i = (i + 1) & b.mask
	}
	if len(*flows) >= b.maxFlows {
		return -1
	}
	*flows = append(*flows, block.FlowStat{Key: *k, FirstTS: ts, LastTS: ts, FirstDir: dir})
	f := &(*flows)[len(*flows)-1]
	f.Pkts[dir] = 1
	f.Bytes[dir] = uint64(wireLen)
	b.hashes = append(b.hashes, h)
	b.set[i] = int32(len(*flows))
	b.used = append(b.used, int32(i))
	return int32(len(*flows) - 1)
}

// countFlow accounts one packet to the flow at index x of the summary.
func (b *builder) countFlow(x int32, dir uint8, ts int64, wireLen uint32) {
	f := &b.cur.Summary.Flows[x]
	f.Pkts[dir]++
	f.Bytes[dir] += uint64(wireLen)
	// The earliest and latest, not the first and last: time can step back
	// inside a block (files imported out of time order, a clock step).
	if ts > f.LastTS {
		f.LastTS = ts
	} else if ts < f.FirstTS {
		f.FirstTS = ts
	}
}

// appendRecord copies one packet into the open block. The caller checked
// fits. data must be at most MaxPacketSize bytes.
func (b *builder) appendRecord(ts int64, wireLen uint32, linkType, iface uint16, data []byte) {
	blk := b.cur
	n := len(blk.Data)
	end := n + block.RecordHeaderSize + len(data)
	blk.Data = blk.Data[:end]
	r := blk.Data[n:end]
	binary.LittleEndian.PutUint64(r[0:], uint64(ts))
	binary.LittleEndian.PutUint32(r[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(r[12:], wireLen)
	binary.LittleEndian.PutUint16(r[16:], linkType)
	binary.LittleEndian.PutUint16(r[18:], iface)
	copy(r[block.RecordHeaderSize:], data)
	if blk.Count == 0 || ts < blk.MinTS {
		blk.MinTS = ts
	}
	if blk.Count == 0 || ts > blk.MaxTS {
		blk.MaxTS = ts
	}
	blk.Count++
	blk.Bytes += uint64(wireLen)
}
