package query

import "net/netip"

// The filter's tree: concrete node structs, one op each (no interfaces),
// built by the parser, walked by the matcher, the printer and the planner.

type nodeOp uint8

const (
	opAnd nodeOp = iota
	opOr
	opNot
	opHost      // addr, ver, dir
	opNet       // prefix, ver, dir
	opPort      // proto (0 = tcp/udp/sctp), lo..hi, dir
	opProto     // ver (0 = any), proto
	opEtherType // etherType; flag also accepted
	opVLAN      // vlan; anyVLAN
	opMPLS      //
	opFlow      // addr:pa <> addr2:pb, proto (0 = tcp/udp/sctp when ports given, any otherwise)
	opCommunity // comm
)

// Directions of host, net and port primitives.
const (
	dirAny  uint8 = iota // src or dst (the default)
	dirSrc               // src
	dirDst               // dst
	dirBoth              // src and dst
)

type node struct {
	op   nodeOp
	kids []*node

	dir   uint8
	ver   uint8 // 4 or 6 for host/net/flow; 0, 4 or 6 for proto
	proto uint8
	flag  uint32 // opEtherType: a Decoded flag that also counts as a match

	etherType uint16
	lo, hi    uint16 // port range; vlan id in lo
	anyVLAN   bool

	addr, addr2    [16]byte // host; flow endpoints (IPv4-mapped for IPv4)
	pa, pb         uint16
	hasPA, hasPB   bool
	prefix         netip.Prefix
	netHi, netLo   uint64 // opNet: masked network, 16-byte form
	maskHi, maskLo uint64

	comm *communityMatch
}

func (n *node) clone() *node {
	if n == nil {
		return nil
	}
	c := *n
	if n.kids != nil {
		c.kids = make([]*node, len(n.kids))
		for i, k := range n.kids {
			c.kids[i] = k.clone()
		}
	}
	if n.comm != nil {
		cm := *n.comm
		cm.lastHave = false
		c.comm = &cm
	}
	return &c
}
