package writer

import (
	"fmt"
	"tapvault/block"
)

// Ref addresses one block in the store: the segment number in the high 32
// bits and the block's byte offset within that segment in the low 32 bits.
// Refs of one store increase with write order, and a packet is addressed as
// (Ref, ordinal within the block).
type Ref uint64

// MakeRef builds a Ref from a segment number and offset.
func MakeRef(segment, offset uint32) Ref { return Ref(uint64(segment)<<32 | uint64(offset)) }

// Segment is the segment number of r.
func (r Ref) Segment() uint32 { return uint32(r >> 32) }

// Offset is the byte offset of r's block within its segment.
func (r Ref) Offset() uint32 { return uint32(r) }

func (r Ref) String() string { return fmt.Sprintf("%d:%d", r.Segment(), r.Offset()) }

// Codec of a stored block payload.
const (
	CodecRaw  uint8 = 0
	CodecZstd uint8 = 1
)

// BlockMeta describes one committed block: what its header says.
type BlockMeta struct {
	Ref       Ref
	Queue     uint16
	Codec     uint8
	Count     uint32 // packets
	MinTS     int64
	MaxTS     int64
	RawLen    uint32 // uncompressed payload bytes (summary + records)
	StoredLen uint32 // payload bytes on disk
	WireBytes uint64 // sum of the packets' wire lengths
	// ID is the block ID its worker gave it (block.Block.ID), which packet
	// refs in message records name. Set by ReadBlock, ReadSummary and the
	// commit hook; 0 from ScanSegment and for blocks written before IDs.
	ID uint64

	// Arrived is the wall-clock Unix ns at which the block's first packet
	// reached its worker. Only the commit hook sees it (it is not stored):
	// hook time minus Arrived is the oldest packet's time to durable.
	Arrived int64
}

// CommitHook is called once per block after the block is durable (fsynced)
// and before its buffer is recycled. sum is borrowed: valid only during the
// call. The index uses it; it must not block for long, because the writer
// goroutine waits for it. Hooks are called from that one goroutine, in
// increasing Ref order.
type CommitHook func(meta BlockMeta, sum *block.Summary)
