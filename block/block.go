package block

import (
	"encoding/binary"
	"errors"
	"fmt"
	"tapvault/packet"
)

// Packet records inside a block's uncompressed payload, back to back:
//
//	0        8        12       16   18   20
//	+--------+--------+--------+----+----+------------------+
//	| ts ns  | caplen | wirelen| lt |ifc | caplen data bytes |
//	| int64  | uint32 | uint32 |u16 |u16 |                   |
//	+--------+--------+--------+----+----+------------------+
//
// All little-endian (the block payload is host data, compressed as a whole;
// only Badger keys are big-endian). lt is the pcap LINKTYPE_*, ifc the
// source interface number.
const RecordHeaderSize = 20

// DefaultSize is the payload size at which a block seals: about 1 MiB,
// the unit n2disk and Arkime also settled on for compression and I/O.
const DefaultSize = 1 << 20

// Record is one packet read back from a block. Data is borrowed from the
// block payload it was parsed from and valid as long as that buffer is.
type Record struct {
	TS       int64
	WireLen  uint32
	LinkType uint16
	Iface    uint16
	Data     []byte
}

// ErrBadRecord is wrapped by NextRecord when a payload is inconsistent.
var ErrBadRecord = errors.New("bad packet record")

// NextRecord parses the record at the start of p and returns it with the rest
// of p. It never panics on bad input.
func NextRecord(p []byte) (Record, []byte, error) {
	if len(p) < RecordHeaderSize {
		return Record{}, nil, fmt.Errorf("%w: %d trailing bytes, header needs %d", ErrBadRecord, len(p), RecordHeaderSize)
	}
	caplen := binary.LittleEndian.Uint32(p[8:])
	if uint64(caplen) > uint64(len(p)-RecordHeaderSize) {
		return Record{}, nil, fmt.Errorf("%w: caplen %d exceeds the %d bytes left", ErrBadRecord, caplen, len(p)-RecordHeaderSize)
	}
	r := Record{
		TS:       int64(binary.LittleEndian.Uint64(p[0:])),
		WireLen:  binary.LittleEndian.Uint32(p[12:]),
		LinkType: binary.LittleEndian.Uint16(p[16:]),
		Iface:    binary.LittleEndian.Uint16(p[18:]),
	}
	end := RecordHeaderSize + int(caplen)
	r.Data = p[RecordHeaderSize:end:end]
	return r, p[end:], nil
}

// FlowStat is what a block knows of one flow: the index summary entry.
type FlowStat struct {
	Key      packet.FlowKey
	Pkts     [2]uint32 // by direction: [DirAB], [DirBA]
	Bytes    [2]uint64 // wire bytes by direction
	FirstTS  int64     // the flow's earliest packet time in this block
	LastTS   int64     // its latest (not the last packet's, if time stepped back)
	FirstDir uint8     // direction of the flow's first packet in this block (the initiator if the block saw the start)
}

// flowStatSize is the encoded size of one FlowStat in a summary.
const flowStatSize = packet.FlowKeySize + 2*4 + 2*8 + 8 + 8 + 1

// Summary is the index summary a block carries: every distinct flow it holds
// with per-direction counts, and the packets that belong to no flow (ARP,
// other non-IP). Hosts, ports and VLANs are the flows' endpoints.
//
// Encoding (little-endian):
//
//	+---------+---------+----------------------------+
//	| nflows  | nonflow | nflows x FlowStat (83 B)    |
//	| uint32  | uint32  | key(42,BE) pA pB bA bB f l d |
//	+---------+---------+----------------------------+
type Summary struct {
	Flows   []FlowStat
	NonFlow uint32 // packets with no flow key
}

// AppendSummary appends the encoding of s to dst.
func AppendSummary(dst []byte, s *Summary) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s.Flows)))
	dst = binary.LittleEndian.AppendUint32(dst, s.NonFlow)
	for i := range s.Flows {
		f := &s.Flows[i]
		dst = packet.AppendFlowKey(dst, &f.Key)
		dst = binary.LittleEndian.AppendUint32(dst, f.Pkts[0])
		dst = binary.LittleEndian.AppendUint32(dst, f.Pkts[1])
		dst = binary.LittleEndian.AppendUint64(dst, f.Bytes[0])
		dst = binary.LittleEndian.AppendUint64(dst, f.Bytes[1])
		dst = binary.LittleEndian.AppendUint64(dst, uint64(f.FirstTS))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(f.LastTS))
		dst = append(dst, f.FirstDir)
	}
	return dst
}

// ParseSummary decodes an encoded summary into s, reusing s.Flows.
func ParseSummary(b []byte, s *Summary) error {
	if len(b) < 8 {
		return fmt.Errorf("summary: %d bytes, want at least 8", len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	s.NonFlow = binary.LittleEndian.Uint32(b[4:])
	b = b[8:]
	if uint64(n)*flowStatSize != uint64(len(b)) {
		return fmt.Errorf("summary: %d flows need %d bytes, have %d", n, uint64(n)*flowStatSize, len(b))
	}
	s.Flows = s.Flows[:0]
	for i := uint32(0); i < n; i++ {
		var f FlowStat
		f.Key, _ = packet.ParseFlowKey(b)
		p := b[packet.FlowKeySize:]
		f.Pkts[0] = binary.LittleEndian.Uint32(p[0:])
		f.Pkts[1] = binary.LittleEndian.Uint32(p[4:])
		f.Bytes[0] = binary.LittleEndian.Uint64(p[8:])
		f.Bytes[1] = binary.LittleEndian.Uint64(p[16:])
		f.FirstTS = int64(binary.LittleEndian.Uint64(p[24:]))
		f.LastTS = int64(binary.LittleEndian.Uint64(p[32:]))
		f.FirstDir = p[40]
		s.Flows = append(s.Flows, f)
		b = b[flowStatSize:]
	}
	return nil
}

// Block is a batch of packet records being built by one worker, then sealed,
// compressed and written. Blocks come from a Pool and go back to it once
// written (or dropped), so the memory of the whole pipeline is bounded by the
// pool.
type Block struct {
	// ID names the block in packet refs (analytics records): the worker's
	// run ID in the high 32 bits and its per-queue block sequence number in
	// the low 32. The writer stores it in the block header.
	ID    uint64
	Queue uint16 // RX queue (worker) that built it
	Count uint32 // packets in Data
	MinTS int64
	MaxTS int64
	Bytes uint64 // wire bytes of the packets (for accounting)

	// Data holds the packet records. Its capacity is fixed at pool creation.
	Data []byte
	// Summary is filled as packets are appended.
	Summary Summary

	// OpenedAt is the worker clock (ns) when the first packet was appended,
	// for the time-based seal.
	OpenedAt int64
	// Arrived is the wall-clock Unix ns at which the first packet arrived,
	// for measuring time to queryable.
	Arrived int64

	pool *Pool
}

// Reset empties b for reuse, keeping its buffers.
func (b *Block) Reset() {
	b.ID, b.Count, b.MinTS, b.MaxTS, b.Bytes, b.OpenedAt, b.Arrived = 0, 0, 0, 0, 0, 0, 0
	b.Data = b.Data[:0]
	b.Summary.Flows = b.Summary.Flows[:0]
	b.Summary.NonFlow = 0
}

// Release returns b to its pool. The caller must not touch b afterwards.
func (b *Block) Release() {
	if b.pool == nil {
		return
	}
	b.Reset()
	b.pool.put(b)
}

// Pool is the free list of block buffers. Its size bounds the memory of
// everything between the workers and the disk: when it is empty a worker
// drops packets and counts them, and never waits (stenographer's rule).
type Pool struct {
	free chan *Block
	size int
}

// NewPool allocates n blocks with payload capacity blockSize (plus room
// for one maximum-size packet, so a block never has to split one).
func NewPool(n, blockSize, maxFlows int) *Pool {
	if n < 1 {
		panic("BUG: NewPool needs at least one block")
	}
	p := &Pool{free: make(chan *Block, n), size: blockSize}
	for i := 0; i < n; i++ {
		p.free <- &Block{
			Data:    make([]byte, 0, blockSize+RecordHeaderSize+MaxPacketSize),
			Summary: Summary{Flows: make([]FlowStat, 0, maxFlows)},
			pool:    p,
		}
	}
	return p
}

// MaxPacketSize is the largest captured length a record holds; longer packets
// are cut to it (and counted) before they are appended.
const MaxPacketSize = 262144

// BlockSize is the payload size at which blocks from this pool seal.
func (p *Pool) BlockSize() int { return p.size }

// Get returns a free block, or nil at once if none is free.
func (p *Pool) Get() *Block {
	select {
	case b := <-p.free:
		return b
	default:
		return nil
	}
}

// GetWait returns a free block, waiting for one. Only lossless sources (files)
// use it; RX never waits.
func (p *Pool) GetWait() *Block { return <-p.free }

// Free is the number of blocks currently free.
func (p *Pool) Free() int { return len(p.free) }

// Cap is the number of blocks in the pool.
func (p *Pool) Cap() int { return cap(p.free) }

func (p *Pool) put(b *Block) {
	select {
	case p.free <- b:
	default:
		panic("BUG: block released twice or into the wrong pool")
	}
}

// Sink receives sealed blocks from workers (the writer implements it).
// Submit must never block. It returns false when it cannot take the block;
// the worker then counts the block's packets as dropped and releases it.
type Sink interface {
	Submit(b *Block) bool
}

// WaitSink is a Sink that can also wait to take a block. Lossless
// workers (imports, replays) use it so that blocks are not stored raw or
// refused when compression is behind.
type WaitSink interface {
	Sink
	// SubmitWait waits until the sink takes b. It returns false only when
	// the sink is closed.
	SubmitWait(b *Block) bool
}

// PacketRef is where a packet was stored: its block's ID, queue, and its
// ordinal in the block. Block 0 means it was not stored.
type PacketRef struct {
	Block uint64
	Queue uint16
	Ord   uint32
}

// DefaultMaxFlows is how many distinct flows a block summarises before it
// seals (the capacity of Summary.Flows in a pool's blocks).
const DefaultMaxFlows = 16384
