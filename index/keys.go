package index

import (
	"encoding/binary"
	"fmt"

	"tapvault/packet"
	"tapvault/writer"
)

// Key kinds: the first byte of every key. Each kind has one fixed width, so a
// key's kind says how to parse it and a prefix scan never sees a key of
// another shape.
//
// Everything about the blocks of one segment lives under kind D and the
// segment number, then a sub-kind. Putting the segment before the attribute
// keeps each write batch inside one narrow key range (the current segment),
// so Badger's compactions never rewrite older segments (profiled over 30000
// blocks: merging compactions 4% of ingest CPU).
// It also makes a query one prefix scan per candidate segment, and
// retention one range of keys per segment.
const (
	kindData      byte = 'D' // D | seg | sub-kind | ...
	kindMissing   byte = 'M' // M | ref: a block dropped by the queue, not yet indexed
	kindSegment   byte = 'S' // S | seg | minTS | maxTS
	kindWatermark byte = 'W' // W | ref
	kindFormat    byte = 'X' // X | version | group blocks
)

// Sub-kinds of kind D, the byte after the segment number.
const (
	kindBlock byte = 'B' // D | seg | B | off | goff | gen | k | n | block meta
	kindFlow  byte = 'F' // D | seg | F | flow key (42) | goff | gen | bits
	kindHost  byte = 'H' // D | seg | H | ip (16) | goff | gen | bits
	kindPort  byte = 'P' // D | seg | P | proto | port | goff | gen | bits
	kindVLAN  byte = 'V' // D | seg | V | vlan | goff | gen | bits

	// kindSketch: D | seg | Q | goff | gen | k, valued: the filter of a
	// group written as sketches (sketch.go), one key a block.
	kindSketch byte = 'Q'
)

// GroupBlocks is how many consecutive blocks of one segment share one set of
// attribute keys. Every attribute key carries a GroupBlocks-bit bitmap saying
// which of the group's blocks hold the attribute, so answers stay exact per
// block while the key count drops by the number of blocks an attribute
// appears in per group (see docs/format/index.md for the measurements).
const GroupBlocks = 2048

// bitmapWords is the bitmap size in 64-bit words, bitmapBytes in bytes.
const (
	bitmapWords = GroupBlocks / 64
	bitmapBytes = GroupBlocks / 8
)

// formatVersion is bumped on any change of key layout. Version 3 added the
// sketch keys (Q): a version 2 index is read as it is, and marked 3 when
// opened for writing, so that an older tapvault, which would not look at
// sketches and miss their blocks, reads it as another format (and
// rebuilds it) instead.
const formatVersion = 3

// formatVersionNoSketch is the last version without sketch keys.
const formatVersionNoSketch = 2

// Attribute widths and key sizes.
const (
	dataPrefixSize  = 1 + 4 + 1           // D | seg | sub-kind
	groupSuffixSize = 4 + 1 + bitmapBytes // goff | gen | bits

	flowAttrSize = packet.FlowKeySize
	hostAttrSize = 16
	portAttrSize = 1 + 2
	vlanAttrSize = 2

	flowKeySize = dataPrefixSize + flowAttrSize + groupSuffixSize
	hostKeySize = dataPrefixSize + hostAttrSize + groupSuffixSize
	portKeySize = dataPrefixSize + portAttrSize + groupSuffixSize
	vlanKeySize = dataPrefixSize + vlanAttrSize + groupSuffixSize

	blockKeySize     = dataPrefixSize + 4 + 4 + 1 + 2 + 2 + 8 + 8 + 4 + 8 + 4 + 4 + 2 + 1 + 4
	segmentKeySize   = 1 + 4 + 8 + 8
	missingKeySize   = 1 + 8
	watermarkKeySize = 1 + 8
	formatKeySize    = 1 + 2 + 2
)

// attrSize is the width of the attribute part of an attribute key of
// sub-kind kind, or -1 if kind is not an attribute kind.
func attrSize(kind byte) int {
	switch kind {
	case kindFlow:
		return flowAttrSize
	case kindHost:
		return hostAttrSize
	case kindPort:
		return portAttrSize
	case kindVLAN:
		return vlanAttrSize
	}
	return -1
}

// bitmap marks the blocks of one group holding an attribute: bit k (word
// k/64, bit k%64) is the group's k-th block. It is encoded big-endian, word
// 0 first.
type bitmap [bitmapWords]uint64

func (b *bitmap) set(k int)      { b[k>>6] |= 1 << (k & 63) }
func (b *bitmap) has(k int) bool { return b[k>>6]&(1<<(k&63)) != 0 }
func (b *bitmap) or(o *bitmap) {
	for i := range b {
		b[i] |= o[i]
	}
}

// groupID names one group: its first block's ref and a generation that
// tells apart two groupings that started at the same block (after a crash
// the blocks past the watermark are indexed again, possibly grouped
// differently). A group never spans two segments, so keys store only the
// first block's offset (goff) after the segment.
type groupID struct {
	Ref writer.Ref
	Gen uint8
}

// appendDataPrefix appends D | seg | sub.
func appendDataPrefix(dst []byte, seg uint32, sub byte) []byte {
	return append(binary.BigEndian.AppendUint32(append(dst, kindData), seg), sub)
}

// attrKey is a parsed attribute key.
type attrKey struct {
	Kind  byte   // sub-kind
	Attr  []byte // borrowed from the parsed key
	Group groupID
	Bits  bitmap
}

// appendAttrKey appends D | seg | kind | attr | goff | gen | bits, seg being
// the group's. attr must be attrSize(kind) bytes.
func appendAttrKey(dst []byte, kind byte, attr []byte, g groupID, bits *bitmap) []byte {
	dst = appendDataPrefix(dst, g.Ref.Segment(), kind)
	dst = append(dst, attr...)
	dst = binary.BigEndian.AppendUint32(dst, g.Ref.Offset())
	dst = append(dst, g.Gen)
	for _, w := range bits {
		dst = binary.BigEndian.AppendUint64(dst, w)
	}
	return dst
}

// parseAttrKey parses an attribute key. ak.Attr is borrowed from b.
func parseAttrKey(b []byte) (ak attrKey, err error) {
	if len(b) < dataPrefixSize || b[0] != kindData {
		return ak, fmt.Errorf("parse attribute key: %d bytes kind %#x, want kind %q", len(b), firstByte(b), kindData)
	}
	n := attrSize(b[5])
	if n < 0 {
		return ak, fmt.Errorf("parse attribute key: sub-kind %#x is not an attribute", b[5])
	}
	if len(b) != dataPrefixSize+n+groupSuffixSize {
		return ak, fmt.Errorf("parse attribute key %q: %d bytes, want %d", b[5], len(b), dataPrefixSize+n+groupSuffixSize)
	}
	seg := binary.BigEndian.Uint32(b[1:])
	ak.Kind = b[5]
	ak.Attr = b[dataPrefixSize : dataPrefixSize+n : dataPrefixSize+n]
	s := b[dataPrefixSize+n:]
	ak.Group.Ref = writer.MakeRef(seg, binary.BigEndian.Uint32(s))
	ak.Group.Gen = s[4]
	for i := range ak.Bits {
		ak.Bits[i] = binary.BigEndian.Uint64(s[5+8*i:])
	}
	return ak, nil
}

// appendFlowAttr, appendHostAttr, appendPortAttr and appendVLANAttr append
// the attribute part of an attribute key.
func appendFlowAttr(dst []byte, k *packet.FlowKey) []byte { return packet.AppendFlowKey(dst, k) }
func appendHostAttr(dst []byte, ip *[16]byte) []byte      { return append(dst, ip[:]...) }
func appendPortAttr(dst []byte, proto uint8, port uint16) []byte {
	return binary.BigEndian.AppendUint16(append(dst, proto), port)
}
func appendVLANAttr(dst []byte, id uint16) []byte { return binary.BigEndian.AppendUint16(dst, id) }

// blockEntry is what a block key holds: one indexed block, the group it
// belongs to and its position k among the group's n blocks.
type blockEntry struct {
	Meta    writer.BlockMeta
	NonFlow uint32
	Group   groupID
	K, N    uint16
}

// appendBlockPrefix appends D | seg | B | off: the prefix of the block keys
// of the block at ref (one per grouping that holds it, normally one).
func appendBlockPrefix(dst []byte, ref writer.Ref) []byte {
	return binary.BigEndian.AppendUint32(appendDataPrefix(dst, ref.Segment(), kindBlock), ref.Offset())
}

// appendBlockKey appends D | seg | B | off | goff | gen | k | n | minTS |
// maxTS | count | wire | raw | stored | queue | codec | nonflow. The group
// must be in the block's segment.
func appendBlockKey(dst []byte, e *blockEntry) []byte {
	m := &e.Meta
	if e.Group.Ref.Segment() != m.Ref.Segment() {
		panic("BUG: block key for a group of another segment")
	}
	dst = appendBlockPrefix(dst, m.Ref)
	dst = binary.BigEndian.AppendUint32(dst, e.Group.Ref.Offset())
	dst = append(dst, e.Group.Gen)
	dst = binary.BigEndian.AppendUint16(dst, e.K)
	dst = binary.BigEndian.AppendUint16(dst, e.N)
	dst = appendTS(dst, m.MinTS)
	dst = appendTS(dst, m.MaxTS)
	dst = binary.BigEndian.AppendUint32(dst, m.Count)
	dst = binary.BigEndian.AppendUint64(dst, m.WireBytes)
	dst = binary.BigEndian.AppendUint32(dst, m.RawLen)
	dst = binary.BigEndian.AppendUint32(dst, m.StoredLen)
	dst = binary.BigEndian.AppendUint16(dst, m.Queue)
	dst = append(dst, m.Codec)
	dst = binary.BigEndian.AppendUint32(dst, e.NonFlow)
	return dst
}

// parseBlockKey parses a block key.
func parseBlockKey(b []byte) (e blockEntry, err error) {
	if len(b) != blockKeySize || b[0] != kindData || b[5] != kindBlock {
		return e, fmt.Errorf("parse block key: %d bytes kind %#x, want %d bytes kind %q sub-kind %q", len(b), firstByte(b), blockKeySize, kindData, kindBlock)
	}
	seg := binary.BigEndian.Uint32(b[1:])
	p := b[dataPrefixSize:]
	m := &e.Meta
	m.Ref = writer.MakeRef(seg, binary.BigEndian.Uint32(p[0:]))
	e.Group.Ref = writer.MakeRef(seg, binary.BigEndian.Uint32(p[4:]))
	e.Group.Gen = p[8]
	e.K = binary.BigEndian.Uint16(p[9:])
	e.N = binary.BigEndian.Uint16(p[11:])
	m.MinTS = parseTS(p[13:])
	m.MaxTS = parseTS(p[21:])
	m.Count = binary.BigEndian.Uint32(p[29:])
	m.WireBytes = binary.BigEndian.Uint64(p[33:])
	m.RawLen = binary.BigEndian.Uint32(p[41:])
	m.StoredLen = binary.BigEndian.Uint32(p[45:])
	m.Queue = binary.BigEndian.Uint16(p[49:])
	m.Codec = p[51]
	e.NonFlow = binary.BigEndian.Uint32(p[52:])
	if e.N == 0 || e.N > GroupBlocks || e.K >= e.N {
		return e, fmt.Errorf("parse block key %v: position %d of %d out of range", m.Ref, e.K, e.N)
	}
	if e.Group.Ref > m.Ref {
		return e, fmt.Errorf("parse block key %v: group starts after it, at %v", m.Ref, e.Group.Ref)
	}
	return e, nil
}

// segInfo is the time range of one segment's indexed blocks.
type segInfo struct {
	Seg          uint32
	MinTS, MaxTS int64
}

func appendSegmentKey(dst []byte, s segInfo) []byte {
	dst = append(dst, kindSegment)
	dst = binary.BigEndian.AppendUint32(dst, s.Seg)
	dst = appendTS(dst, s.MinTS)
	return appendTS(dst, s.MaxTS)
}

func parseSegmentKey(b []byte) (s segInfo, err error) {
	if len(b) != segmentKeySize || b[0] != kindSegment {
		return s, fmt.Errorf("parse segment key: %d bytes kind %#x, want %d bytes kind %q", len(b), firstByte(b), segmentKeySize, kindSegment)
	}
	s.Seg = binary.BigEndian.Uint32(b[1:])
	s.MinTS = parseTS(b[5:])
	s.MaxTS = parseTS(b[13:])
	if s.MinTS > s.MaxTS {
		return s, fmt.Errorf("parse segment key %d: min ts %d after max ts %d", s.Seg, s.MinTS, s.MaxTS)
	}
	return s, nil
}

// appendRefKey appends kind | ref, for the M and W kinds.
func appendRefKey(dst []byte, kind byte, r writer.Ref) []byte {
	return binary.BigEndian.AppendUint64(append(dst, kind), uint64(r))
}

func parseRefKey(b []byte, kind byte) (writer.Ref, error) {
	if len(b) != 9 || b[0] != kind {
		return 0, fmt.Errorf("parse %q key: %d bytes kind %#x, want 9 bytes", kind, len(b), firstByte(b))
	}
	return writer.Ref(binary.BigEndian.Uint64(b[1:])), nil
}

func appendFormatKey(dst []byte) []byte { return appendFormatKeyVersion(dst, formatVersion) }

func appendFormatKeyVersion(dst []byte, v uint16) []byte {
	dst = append(dst, kindFormat)
	dst = binary.BigEndian.AppendUint16(dst, v)
	return binary.BigEndian.AppendUint16(dst, GroupBlocks)
}

// appendTS encodes a signed timestamp so that byte order is numeric order:
// big-endian with the sign bit flipped.
func appendTS(dst []byte, ts int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(ts)^(1<<63))
}

func parseTS(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
