package index

import (
	"encoding/binary"
	"math/bits"

	"tapvault/packet"
	"tapvault/writer"
)

// IP protocols whose ports are indexed. ICMP keys carry type and code in
// their port fields and are indexed by flow and host only.
const (
	protoTCP  = 6
	protoUDP  = 17
	protoSCTP = 132
)

func portProto(p uint8) bool { return p == protoTCP || p == protoUDP || p == protoSCTP }

// member is one block of a group, as queries need it.
type member struct {
	Meta    writer.BlockMeta
	NonFlow uint32
}

// group aggregates up to GroupBlocks consecutive blocks of one segment: the
// distinct flows they hold, each with a bitmap of the blocks it appears in.
// Hosts, ports and VLANs are derived from the flows when the group is
// written, which costs one pass over the distinct flows instead of one per
// block.
type group struct {
	id      groupID
	seg     uint32
	last    writer.Ref
	members []member
	opened  int64 // wall-clock ns of the first block, for the age limit
	minTS   int64
	maxTS   int64

	flows flowTable
}

func (g *group) reset() {
	g.id, g.seg, g.last, g.opened, g.minTS, g.maxTS = groupID{}, 0, 0, 0, 0, 0
	g.members = g.members[:0]
	g.flows.reset()
}

// maxGroupFlows caps the distinct flows of a group, which bounds its memory
// (about 300 bytes a flow: 20 MB) on links with far more flows than 10k.
const maxGroupFlows = 1 << 16

// full reports whether g can take no more blocks.
func (g *group) full() bool { return len(g.members) >= GroupBlocks || g.flows.len() >= maxGroupFlows }

// accepts reports whether the block at ref may join g: same segment, after
// the last block, and room left.
func (g *group) accepts(ref writer.Ref) bool {
	return len(g.members) > 0 && !g.full() && ref.Segment() == g.seg && ref > g.last
}

// add appends one block. flows are the block's flow keys.
func (g *group) add(meta writer.BlockMeta, nonFlow uint32, flows []packet.FlowKey, now int64) {
	k := len(g.members)
	if k == 0 {
		g.seg = meta.Ref.Segment()
		g.opened = now
		g.minTS, g.maxTS = meta.MinTS, meta.MaxTS
	}
	if meta.MinTS < g.minTS {
		g.minTS = meta.MinTS
	}
	if meta.MaxTS > g.maxTS {
		g.maxTS = meta.MaxTS
	}
	g.members = append(g.members, member{Meta: meta, NonFlow: nonFlow})
	g.last = meta.Ref
	for i := range flows {
		g.flows.set(g.flows.index(&flows[i]), k)
	}
}

// flowTable is an open-addressing hash table from FlowKey to bitmap, sized
// to the distinct flows of a group and reused from group to group.
//
// Bitmaps are stored word-major: words[w][i] is word w of flow i's bitmap.
// Every flow of one block sets a bit in the same word, so a block's updates
// touch one 8-byte-per-flow array (80 KB for 10k flows, L2-resident) instead
// of a 128-byte bitmap per flow: profiled 2.3x faster aggregation.
type flowTable struct {
	slots []int32 // index+1 into keys, 0 = empty
	keys  []packet.FlowKey
	words [bitmapWords][]uint64
	mask  uint64
}

func (t *flowTable) reset() {
	clear(t.slots)
	t.keys = t.keys[:0]
	for w := range t.words {
		t.words[w] = t.words[w][:0]
	}
}

func (t *flowTable) len() int { return len(t.keys) }

// index returns the index of k, inserting k if it is new.
func (t *flowTable) index(k *packet.FlowKey) int {
	if 2*(len(t.keys)+1) > len(t.slots) {
		t.grow()
	}
	for i := hashFlow(k) & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			t.keys = append(t.keys, *k)
			for w := range t.words {
				t.words[w] = append(t.words[w], 0)
			}
			t.slots[i] = int32(len(t.keys))
			return len(t.keys) - 1
		}
		if t.keys[s-1] == *k {
			return int(s - 1)
		}
	}
}

// find returns the index of k, or -1.
func (t *flowTable) find(k *packet.FlowKey) int {
	if len(t.slots) == 0 {
		return -1
	}
	for i := hashFlow(k) & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return -1
		}
		if t.keys[s-1] == *k {
			return int(s - 1)
		}
	}
}

// set marks flow i as present in the group's block k.
func (t *flowTable) set(i, k int) { t.words[k>>6][i] |= 1 << (k & 63) }

// bitmap returns flow i's bitmap.
func (t *flowTable) bitmap(i int) (b bitmap) {
	for w := range b {
		b[w] = t.words[w][i]
	}
	return b
}

func (t *flowTable) grow() {
	n := 2 * len(t.slots)
	if n < 1024 {
		n = 1024
	}
	t.slots = make([]int32, n)
	t.mask = uint64(n - 1)
	for j := range t.keys {
		i := hashFlow(&t.keys[j]) & t.mask
		for t.slots[i] != 0 {
			i = (i + 1) & t.mask
		}
		t.slots[i] = int32(j + 1)
	}
}

// hashFlow is a process-local hash of a flow key, for in-memory tables only
// (never persisted): the key's words folded with rotations, then mixed by
// two multiplications.
func hashFlow(k *packet.FlowKey) uint64 {
	a := binary.LittleEndian.Uint64(k.A[0:]) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(k.A[8:]), 21)
	b := binary.LittleEndian.Uint64(k.B[0:]) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(k.B[8:]), 43)
	c := uint64(k.PortA)<<48 | uint64(k.PortB)<<32 | uint64(k.Proto)<<24 | uint64(k.IPVer)<<16 | uint64(k.VLAN)
	c ^= uint64(k.VLAN2) << 7
	return mix64(a^bits.RotateLeft64(c, 17), b^c)
}

func mix64(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^0x9e3779b97f4a7c15, b^0xd6e8feb86659fd93)
	hi, lo = bits.Mul64(hi^lo, 0xff51afd7ed558ccd)
	return hi ^ lo
}

// attrSet accumulates the derived attributes (hosts, ports, VLANs) of a
// group when it is written, and of a dropped segment. Process-local maps,
// never persisted as such.
type attrSet struct {
	hosts map[[16]byte]bitmap
	ports map[uint32]bitmap // proto<<16 | port
	vlans map[uint16]bitmap
}

func newAttrSet() *attrSet {
	return &attrSet{
		hosts: make(map[[16]byte]bitmap),
		ports: make(map[uint32]bitmap),
		vlans: make(map[uint16]bitmap),
	}
}

func (s *attrSet) reset() {
	clear(s.hosts)
	clear(s.ports)
	clear(s.vlans)
}

// addFlow ORs b into the attributes of flow k.
func (s *attrSet) addFlow(k *packet.FlowKey, b *bitmap) {
	orInto(s.hosts, k.A, b)
	if k.B != k.A {
		orInto(s.hosts, k.B, b)
	}
	if portProto(k.Proto) {
		p := uint32(k.Proto) << 16
		orInto(s.ports, p|uint32(k.PortA), b)
		if k.PortB != k.PortA {
			orInto(s.ports, p|uint32(k.PortB), b)
		}
	}
	if k.VLAN != 0 {
		orInto(s.vlans, k.VLAN, b)
	}
	if k.VLAN2 != 0 && k.VLAN2 != k.VLAN {
		orInto(s.vlans, k.VLAN2, b)
	}
}

func orInto[K comparable](m map[K]bitmap, k K, b *bitmap) {
	v := m[k]
	v.or(b)
	m[k] = v
}
