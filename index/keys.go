package index

import (
	"encoding/binary"
	"fmt"

	"tapvault/workers"
	"tapvault/writer"
)

// Key kinds: the first byte of every key. Each kind has one fixed width, so a
// key's kind says how to parse it and a prefix scan never sees a key of
// another shape.
const (
	kindBlock     byte = 'B' // B | ref | gref | gen | k | n | block meta
	kindFlow      byte = 'F' // F | flow key (42) | gref | gen | bits
	kindHost      byte = 'H' // H | ip (16) | gref | gen | bits
	kindMissing   byte = 'M' // M | ref: a block dropped by the queue, not yet indexed
	kindPort      byte = 'P' // P | proto | port | gref | gen | bits
	kindSegment   byte = 'S' // S | seg | minTS | maxTS
	kindVLAN      byte = 'V' // V | vlan | gref | gen | bits
	kindWatermark byte = 'W' // W | ref
	kindFormat    byte = 'X' // X | version | group blocks
)

// GroupBlocks is how many consecutive blocks of one segment share one set of
// attribute keys. Every attribute key carries a GroupBlocks-bit bitmap saying
// which of the group's blocks hold the attribute, so answers stay exact per
// block while the key count drops by the number of blocks an attribute
// appears in per group (see docs/format/index.md for the measurements).
const GroupBlocks = 1024

// bitmapWords is the bitmap size in 64-bit words, bitmapBytes in bytes.
const (
	bitmapWords = GroupBlocks / 64
	bitmapBytes = GroupBlocks / 8
)

// formatVersion is bumped on any change of key layout.
const formatVersion = 1

// Attribute widths and key sizes.
const (
	groupSuffixSize = 8 + 1 + bitmapBytes // gref | gen | bits

	flowAttrSize = workers.FlowKeySize
	hostAttrSize = 16
	portAttrSize = 1 + 2
	vlanAttrSize = 2

	flowKeySize = 1 + flowAttrSize + groupSuffixSize
	hostKeySize = 1 + hostAttrSize + groupSuffixSize
	portKeySize = 1 + portAttrSize + groupSuffixSize
	vlanKeySize = 1 + vlanAttrSize + groupSuffixSize

	blockKeySize     = 1 + 8 + 8 + 1 + 2 + 2 + 8 + 8 + 4 + 8 + 4 + 4 + 2 + 1 + 4
	segmentKeySize   = 1 + 4 + 8 + 8
	missingKeySize   = 1 + 8
	watermarkKeySize = 1 + 8
	formatKeySize    = 1 + 2 + 2
)

// attrSize is the width of the attribute part of an attribute key of kind,
// or -1 if kind is not an attribute kind.
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
// differently).
type groupID struct {
	Ref writer.Ref
	Gen uint8
}

// attrKey is a parsed attribute key.
type attrKey struct {
	Kind  byte
	Attr  []byte // borrowed from the parsed key
	Group groupID
	Bits  bitmap
}

// appendAttrKey appends kind | attr | gref | gen | bits. attr must be
// attrSize(kind) bytes.
func appendAttrKey(dst []byte, kind byte, attr []byte, g groupID, bits *bitmap) []byte {
	dst = append(dst, kind)
	dst = append(dst, attr...)
	return appendGroupSuffix(dst, g, bits)
}

func appendGroupSuffix(dst []byte, g groupID, bits *bitmap) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(g.Ref))
	dst = append(dst, g.Gen)
	for _, w := range bits {
		dst = binary.BigEndian.AppendUint64(dst, w)
	}
	return dst
}

// parseAttrKey parses an attribute key. ak.Attr is borrowed from b.
func parseAttrKey(b []byte) (ak attrKey, err error) {
	if len(b) == 0 {
		return ak, fmt.Errorf("parse attribute key: empty")
	}
	n := attrSize(b[0])
	if n < 0 {
		return ak, fmt.Errorf("parse attribute key: kind %q is not an attribute kind", b[0])
	}
	if len(b) != 1+n+groupSuffixSize {
		return ak, fmt.Errorf("parse attribute key %q: %d bytes, want %d", b[0], len(b), 1+n+groupSuffixSize)
	}
	ak.Kind = b[0]
	ak.Attr = b[1 : 1+n : 1+n]
	s := b[1+n:]
	ak.Group.Ref = writer.Ref(binary.BigEndian.Uint64(s))
	ak.Group.Gen = s[8]
	for i := range ak.Bits {
		ak.Bits[i] = binary.BigEndian.Uint64(s[9+8*i:])
	}
	return ak, nil
}

// appendFlowAttr, appendHostAttr, appendPortAttr and appendVLANAttr append
// the attribute part of an attribute key.
func appendFlowAttr(dst []byte, k *workers.FlowKey) []byte { return workers.AppendFlowKey(dst, k) }
func appendHostAttr(dst []byte, ip *[16]byte) []byte       { return append(dst, ip[:]...) }
func appendPortAttr(dst []byte, proto uint8, port uint16) []byte {
	return binary.BigEndian.AppendUint16(append(dst, proto), port)
}
func appendVLANAttr(dst []byte, id uint16) []byte { return binary.BigEndian.AppendUint16(dst, id) }

// blockEntry is what a B key holds: one indexed block, the group it belongs
// to and its position k among the group's n blocks.
type blockEntry struct {
	Meta    writer.BlockMeta
	NonFlow uint32
	Group   groupID
	K, N    uint16
}

// appendBlockKey appends
// B | ref | gref | gen | k | n | minTS | maxTS | count | wire | raw | stored | queue | codec | nonflow.
func appendBlockKey(dst []byte, e *blockEntry) []byte {
	m := &e.Meta
	dst = append(dst, kindBlock)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Ref))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Group.Ref))
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

// parseBlockKey parses a B key.
func parseBlockKey(b []byte) (e blockEntry, err error) {
	if len(b) != blockKeySize || b[0] != kindBlock {
		return e, fmt.Errorf("parse block key: %d bytes kind %#x, want %d bytes kind %q", len(b), firstByte(b), blockKeySize, kindBlock)
	}
	m := &e.Meta
	m.Ref = writer.Ref(binary.BigEndian.Uint64(b[1:]))
	e.Group.Ref = writer.Ref(binary.BigEndian.Uint64(b[9:]))
	e.Group.Gen = b[17]
	e.K = binary.BigEndian.Uint16(b[18:])
	e.N = binary.BigEndian.Uint16(b[20:])
	m.MinTS = parseTS(b[22:])
	m.MaxTS = parseTS(b[30:])
	m.Count = binary.BigEndian.Uint32(b[38:])
	m.WireBytes = binary.BigEndian.Uint64(b[42:])
	m.RawLen = binary.BigEndian.Uint32(b[50:])
	m.StoredLen = binary.BigEndian.Uint32(b[54:])
	m.Queue = binary.BigEndian.Uint16(b[58:])
	m.Codec = b[60]
	e.NonFlow = binary.BigEndian.Uint32(b[61:])
	if e.N == 0 || e.N > GroupBlocks || e.K >= e.N {
		return e, fmt.Errorf("parse block key %v: position %d of %d out of range", m.Ref, e.K, e.N)
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

func appendFormatKey(dst []byte) []byte {
	dst = append(dst, kindFormat)
	dst = binary.BigEndian.AppendUint16(dst, formatVersion)
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
