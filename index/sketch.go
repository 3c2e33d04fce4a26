package index

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"

	"github.com/FastFilter/xorfilter"
	"github.com/cespare/xxhash/v2"

	"tapvault/packet"
	"tapvault/writer"
)

// A group whose flows are nearly all new in each block (a scan, a flood, a
// link of many short flows) costs far more as exact keys than it holds:
// 500k single-packet flows made an index of 112 % of the stored bytes,
// about 35 bytes a key for a flow, two hosts and two ports a packet. Such a
// group is written as sketches instead: one Q key per block, whose value is
// a binary fuse filter (8-bit fingerprints, about 9 bits an entry, 1/256
// false positives) over the hashes of every attribute value the block
// holds: its hosts, ports and VLANs, each hashed with its sub-kind
// (attrHash). A query on one value tests each sketch of the segment and
// keeps the blocks whose filter may hold it, a query on one flow (or one
// 5-tuple on any VLAN stack) the blocks whose filter may hold each of the
// flow's values; a query on a range (a network, a port range) keeps every
// sketched block. Both are
// supersets, as the index's answers may be: the query reads the blocks and
// matches every packet. writeGroup picks, per group, whichever of the two
// is smaller by its estimate (sketchWorth).
//
//	D|seg|Q|goff|gen|k  ->  filter of the group's k-th block
//
// Value: version (1) | seed (8) | segment length (4) | its mask (4) |
// segment count (4) | count length (4) | fingerprints (n), integers
// little-endian as xorfilter has them.

// sketchVersion is the first byte of a sketch value.
const sketchVersion = 1

// sketchHeaderSize is the bytes before the fingerprints.
const sketchHeaderSize = 1 + 8 + 4*4

// sketchKeySize is D | seg | Q | goff | gen | k.
const sketchKeySize = dataPrefixSize + 4 + 1 + 2

// attrHash is the hash of one attribute value in a sketch: sub-kind, then
// the value as its attribute key has it.
func attrHash(kind byte, attr []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.Write([]byte{kind})
	d.Write(attr)
	return d.Sum64()
}

// appendSketchKey appends D | seg | Q | goff | gen | k.
func appendSketchKey(dst []byte, g groupID, k uint16) []byte {
	dst = appendDataPrefix(dst, g.Ref.Segment(), kindSketch)
	dst = binary.BigEndian.AppendUint32(dst, g.Ref.Offset())
	dst = append(dst, g.Gen)
	return binary.BigEndian.AppendUint16(dst, k)
}

// parseSketchKey parses a sketch key: its group and block position.
func parseSketchKey(b []byte) (g groupID, k uint16, err error) {
	if len(b) != sketchKeySize || b[0] != kindData || b[5] != kindSketch {
		return g, 0, fmt.Errorf("parse sketch key: %d bytes kind %#x, want %d bytes sub-kind %q", len(b), firstByte(b), sketchKeySize, kindSketch)
	}
	seg := binary.BigEndian.Uint32(b[1:])
	p := b[dataPrefixSize:]
	g.Ref = writer.MakeRef(seg, binary.BigEndian.Uint32(p))
	g.Gen = p[4]
	k = binary.BigEndian.Uint16(p[5:])
	if k >= GroupBlocks {
		return g, 0, fmt.Errorf("parse sketch key: block %d of a group of at most %d", k, GroupBlocks)
	}
	return g, k, nil
}

// sketch is a decoded sketch value; its fingerprints are borrowed.
type sketch struct{ f xorfilter.BinaryFuse8 }

// appendSketch appends the value of f.
func appendSketch(dst []byte, f *xorfilter.BinaryFuse8) []byte {
	dst = append(dst, sketchVersion)
	dst = binary.LittleEndian.AppendUint64(dst, f.Seed)
	dst = binary.LittleEndian.AppendUint32(dst, f.SegmentLength)
	dst = binary.LittleEndian.AppendUint32(dst, f.SegmentLengthMask)
	dst = binary.LittleEndian.AppendUint32(dst, f.SegmentCount)
	dst = binary.LittleEndian.AppendUint32(dst, f.SegmentCountLength)
	return append(dst, f.Fingerprints...)
}

// parseSketch decodes a sketch value, borrowing b. It checks what Contains
// relies on, so that a damaged value is an error and never an index out of
// range: the segment length a power of two with its mask, the count length
// a whole number (at least one) of segments, as xorfilter makes it
// (Contains XORs a position with the mask, which stays below the next
// multiple; with a count length of 0 the first position is 0, not below
// it), and the last position a hash can reach (count length + 2 segment
// lengths) inside the fingerprints.
func parseSketch(b []byte) (s sketch, err error) {
	if len(b) < sketchHeaderSize || b[0] != sketchVersion {
		return s, fmt.Errorf("parse sketch: %d bytes, version %d, want %d", len(b), firstByte(b), sketchVersion)
	}
	f := &s.f
	f.Seed = binary.LittleEndian.Uint64(b[1:])
	f.SegmentLength = binary.LittleEndian.Uint32(b[9:])
	f.SegmentLengthMask = binary.LittleEndian.Uint32(b[13:])
	f.SegmentCount = binary.LittleEndian.Uint32(b[17:])
	f.SegmentCountLength = binary.LittleEndian.Uint32(b[21:])
	f.Fingerprints = b[sketchHeaderSize:]
	sl := f.SegmentLength
	if sl == 0 || bits.OnesCount32(sl) != 1 || f.SegmentLengthMask != sl-1 || f.SegmentCount == 0 ||
		uint64(f.SegmentCountLength) != uint64(f.SegmentCount)*uint64(sl) ||
		uint64(f.SegmentCountLength)+2*uint64(sl) > uint64(len(f.Fingerprints)) {
		return s, fmt.Errorf("parse sketch: segment length %d mask %d count %d count length %d over %d fingerprints", sl, f.SegmentLengthMask, f.SegmentCount, f.SegmentCountLength, len(f.Fingerprints))
	}
	return s, nil
}

// has reports whether the block may hold the value with hash h.
func (s *sketch) has(h uint64) bool { return s.f.Contains(h) }

// sketchBuilder builds a group's sketches, reusing its buffers.
type sketchBuilder struct {
	hashes [][]uint64 // per block
	fuse   xorfilter.BinaryFuseBuilder
	attr   []byte
}

// sketchEntries is what the sketches of a group would hold: one entry per
// (block, attribute value), counted from each flow's blocks (two hosts,
// two ports, VLANs). Hosts and ports shared by flows of one block
// are counted once per flow, so it is an upper bound, which only errs
// toward exact keys.
func sketchEntries(t *flowTable) int {
	n := 0
	for i := range t.keys {
		k := &t.keys[i]
		per := 2 // two hosts
		if portProto(k.Proto) {
			per += 2
		}
		if k.VLAN != 0 {
			per++
		}
		if k.VLAN2 != 0 {
			per++
		}
		blocks := 0
		for w := range t.words {
			blocks += bits.OnesCount64(t.words[w][i])
		}
		n += per * blocks
	}
	return n
}

// sketchWorth reports whether a group of nblocks blocks holding stored
// bytes of packets is written as sketches: when its exact keys would be
// more than above (Options.SketchAbove) of stored, and the sketches less
// than half of them. An exact key costs about 35 bytes on disk
// (prefix-compressed, Snappy; measured on 1.04M keys of 500k single-packet
// flows), a sketch entry about 9 bits and each sketch about 60 bytes.
// Exact keys answer without false positives, and a query on them seeks to
// its value where one on sketches reads every sketch of the segment: so
// sketches only where exact keys cost a share of the store that matters.
func sketchWorth(exactKeys, entries, nblocks int, stored int64, above float64) bool {
	const exactKeyBytes, sketchOverhead = 35, 60
	if above < 0 {
		return false
	}
	exact := exactKeys * exactKeyBytes
	sketchBytes := entries*9/8 + nblocks*sketchOverhead
	return float64(exact) > above*float64(stored) && 2*sketchBytes < exact
}

// build returns the sketch values of g's blocks, in block order: values[k]
// is block k's, nil for a block without any flow (only packets without
// one), which gets no key.
func (b *sketchBuilder) build(g *group) (values [][]byte, err error) {
	n := len(g.members)
	for len(b.hashes) < n {
		b.hashes = append(b.hashes, nil)
	}
	for k := range n {
		b.hashes[k] = b.hashes[k][:0]
	}
	if cap(b.attr) < flowAttrSize {
		b.attr = make([]byte, 0, flowAttrSize)
	}
	t := &g.flows
	for i := range t.keys {
		fk := &t.keys[i]
		for w := range t.words {
			word := t.words[w][i]
			for word != 0 {
				k := w*64 + bits.TrailingZeros64(word)
				word &= word - 1
				if k < n {
					b.hashes[k] = appendAttrHashes(b.hashes[k], b.attr[:0], fk)
				}
			}
		}
	}
	values = make([][]byte, n)
	for k := range n {
		hs := b.hashes[k]
		if len(hs) == 0 {
			continue
		}
		slices.Sort(hs)
		hs = slices.Compact(hs)
		f, err := xorfilter.BuildBinaryFuse[uint8](&b.fuse, hs)
		if err != nil {
			return nil, fmt.Errorf("sketch of block %d (%d values): %w", k, len(hs), err)
		}
		f8 := xorfilter.BinaryFuse8(f)
		values[k] = appendSketch(nil, &f8)
		b.hashes[k] = hs[:0]
	}
	return values, nil
}

// flowHashes is the hashes a sketch holds for flow k: a block may hold k
// only if its sketch has every one.
func flowHashes(k *packet.FlowKey) []uint64 { return appendAttrHashes(nil, nil, k) }

// appendAttrHashes appends the hashes of flow k's hosts, ports and VLANs,
// as attrSet.addFlow derives them, using attr as scratch. The flow itself
// is not hashed: a query on a flow keeps the blocks whose sketch may hold
// each of its values (flowHashes), and with single-packet flows a flow's
// entry would be a third of a sketch (measured on 500k packets of udp64:
// 5.2 % of the stored bytes with it).
func appendAttrHashes(dst []uint64, attr []byte, k *packet.FlowKey) []uint64 {
	dst = append(dst, attrHash(kindHost, appendHostAttr(attr[:0], &k.A)))
	if k.B != k.A {
		dst = append(dst, attrHash(kindHost, appendHostAttr(attr[:0], &k.B)))
	}
	if portProto(k.Proto) {
		dst = append(dst, attrHash(kindPort, appendPortAttr(attr[:0], k.Proto, k.PortA)))
		if k.PortB != k.PortA {
			dst = append(dst, attrHash(kindPort, appendPortAttr(attr[:0], k.Proto, k.PortB)))
		}
	}
	if k.VLAN != 0 {
		dst = append(dst, attrHash(kindVLAN, appendVLANAttr(attr[:0], k.VLAN)))
	}
	if k.VLAN2 != 0 && k.VLAN2 != k.VLAN {
		dst = append(dst, attrHash(kindVLAN, appendVLANAttr(attr[:0], k.VLAN2)))
	}
	return dst
}
