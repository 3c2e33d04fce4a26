package block

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"tapvault/packet"
)

// SubFrameTarget is the raw size a block's flow sub-frames are cut at: a
// flow query decompresses one of them instead of the whole block. 64 KiB is
// Arkime's compressed-block size; docs/format/block.md has the measurements
// behind it.
const SubFrameTarget = 64 << 10

// maxFlowSubFrames bounds the flow sub-frames of one block, so a sub-frame
// number fits in a byte with room for the non-flow one.
const maxFlowSubFrames = 128

// flowHashBytes is how much of the packet.AppendFlowKey encoding FlowHash
// covers: the two addresses and ports (36 bytes), not the protocol, IP
// version and VLAN ids after them. A flow's packets then share a sub-frame
// on every VLAN, as a flow selector means them, and a selector without a
// protocol ("flow A:p <> B:q", the tcp, udp and sctp keys) names one
// sub-frame, not three.
const flowHashBytes = 16 + 16 + 2 + 2

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FlowHash is the stable hash that places a flow's packets in a block's
// sub-frame: CRC32C of the first 36 bytes of packet.AppendFlowKey (the
// addresses and ports of the normalised key), then murmur3's 32-bit
// finaliser so the top bits,
// which choose the sub-frame, depend on every key byte. It is part of the
// block format (docs/format/block.md): never change it.
//
// It allocates its 42-byte scratch (crc32 keeps its argument); the
// per-packet path uses Partition.PacketHash, which does not.
func FlowHash(k *packet.FlowKey) uint32 {
	b := make([]byte, 0, packet.FlowKeySize)
	return flowHash(b, k)
}

func flowHash(b []byte, k *packet.FlowKey) uint32 {
	b = packet.AppendFlowKey(b[:0], k)
	return fmix32(crc32.Checksum(b[:flowHashBytes], castagnoli))
}

func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// SubFrame is one part of a partitioned block payload: the packets whose
// flow hash lies in [Start, the next flow sub-frame's Start), or, when
// NonFlow, the packets with no flow key. Off and Len place its records in
// Partition.Data.
type SubFrame struct {
	Start   uint32
	NonFlow bool
	Off     uint32
	Len     uint32
	Count   uint32
}

// Partition splits a block payload into sub-frames by flow hash. The flow
// sub-frames come first, in ascending Start (the first starts at 0), then
// at most one non-flow sub-frame. Within a sub-frame packets keep their
// order in the block; Seq names each packet's sub-frame, in block order, so
// the block is put back together bit for bit by taking, for each packet,
// the next record of the sub-frame Seq names. The zero value is ready to
// use; its buffers are reused by the next Build.
type Partition struct {
	Subs []SubFrame
	Seq  []uint8
	Data []byte // the records, sub-frame after sub-frame

	offs  []uint32 // per packet: its record's offset in the payload
	bkt   []uint16 // per packet: its hash bucket (top 8 bits), nonFlowBucket without a flow
	bytes [nBuckets + 1]uint32
	subOf [nBuckets + 1]uint8
	next  []uint32 // per sub-frame: write position in Data while copying
	dec   packet.Decoder
	d     packet.Decoded
	k     packet.FlowKey
	kb    [packet.FlowKeySize]byte
}

const (
	nBuckets      = 256
	nonFlowBucket = nBuckets
)

// PacketHash decodes one packet record and returns its FlowHash, or ok
// false for a packet without a flow key (ARP, other non-IP).
func (p *Partition) PacketHash(r *Record) (h uint32, ok bool) {
	p.dec.Decode(r.Data, r.LinkType, &p.d)
	if _, ok := packet.FlowKeyInto(&p.k, &p.d); !ok {
		return 0, false
	}
	return flowHash(p.kb[:0], &p.k), true
}

// Build partitions the packet records in data (which must walk cleanly with
// NextRecord) into sub-frames of about target raw bytes (at least
// SubFrameTarget/16; at most 128 flow sub-frames).
func (p *Partition) Build(data []byte, target int) error {
	target = max(target, SubFrameTarget/16)
	p.offs, p.bkt = p.offs[:0], p.bkt[:0]
	clear(p.bytes[:])
	for rest := data; len(rest) > 0; {
		off := len(data) - len(rest)
		r, next, err := NextRecord(rest)
		if err != nil {
			return fmt.Errorf("packet record %d: %w", len(p.offs), err)
		}
		b := uint16(nonFlowBucket)
		if h, ok := p.PacketHash(&r); ok {
			b = uint16(h >> 24)
		}
		p.offs = append(p.offs, uint32(off))
		p.bkt = append(p.bkt, b)
		p.bytes[b] += uint32(len(rest) - len(next))
		rest = next
	}
	// Cut the buckets, in hash order, into k sub-frames of about equal
	// size, k the flow bytes over target, rounded (a 1 MiB block in 16 of
	// 64 KiB). A bucket is about 1/256 of the flow bytes, so each is within
	// a few KiB of its share. Empty buckets join the sub-frame before them.
	p.Subs = p.Subs[:0]
	var total uint64
	for _, n := range p.bytes[:nBuckets] {
		total += uint64(n)
	}
	if total > 0 {
		k := uint64(max(1, min((int(total)+target/2)/target, maxFlowSubFrames)))
		p.Subs = append(p.Subs, SubFrame{Start: 0})
		var cum uint64
		for b := 0; b < nBuckets; b++ {
			j := uint64(len(p.Subs))
			if j < k && cum >= j*total/k && p.bytes[b] > 0 {
				p.Subs = append(p.Subs, SubFrame{Start: uint32(b) << 24})
			}
			s := len(p.Subs) - 1
			p.subOf[b] = uint8(s)
			p.Subs[s].Len += p.bytes[b]
			cum += uint64(p.bytes[b])
		}
	}
	if p.bytes[nonFlowBucket] > 0 {
		p.subOf[nonFlowBucket] = uint8(len(p.Subs))
		p.Subs = append(p.Subs, SubFrame{NonFlow: true, Len: p.bytes[nonFlowBucket]})
	}
	// Lay the sub-frames out back to back and copy each record to the
	// next place of its sub-frame.
	p.next = p.next[:0]
	var off uint32
	for i := range p.Subs {
		p.Subs[i].Off = off
		p.next = append(p.next, off)
		off += p.Subs[i].Len
	}
	p.Data = grow(p.Data, len(data))
	p.Seq = p.Seq[:0]
	for i, o := range p.offs {
		s := p.subOf[p.bkt[i]]
		end := uint32(len(data))
		if i+1 < len(p.offs) {
			end = p.offs[i+1]
		}
		p.next[s] += uint32(copy(p.Data[p.next[s]:], data[o:end]))
		p.Subs[s].Count++
		p.Seq = append(p.Seq, s)
	}
	return nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// RecordLen returns the length of the packet record at the start of p
// (header and data), or false when p is too short to hold it.
func RecordLen(p []byte) (int, bool) {
	if len(p) < RecordHeaderSize {
		return 0, false
	}
	n := uint64(binary.LittleEndian.Uint32(p[8:])) + RecordHeaderSize
	if n > uint64(len(p)) {
		return 0, false
	}
	return int(n), true
}
