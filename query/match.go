package query

import (
	"bytes"
	"encoding/binary"
	"tapvault/packet"
)

// Matching a packet.Decoded against the tree: a switch per node, no
// allocations.

// communityMatch holds a community-id primitive: the wanted ID and a cache of
// the last flow key looked at, so that the SHA-1 runs once per flow run
// rather than once per packet.
type communityMatch struct {
	want     [packet.CommunityIDLen]byte
	buf      [packet.CommunityIDLen]byte
	last     packet.FlowKey
	lastOK   bool
	lastHave bool
}

func (c *communityMatch) match(d *packet.Decoded) bool {
	k, _, ok := packet.FlowKeyOf(d)
	if !ok {
		return false
	}
	// The ID does not depend on VLANs: clearing them lets a flow seen on two
	// VLANs share the cache entry.
	k.VLAN, k.VLAN2 = 0, 0
	if c.lastHave && k == c.last {
		return c.lastOK
	}
	id := packet.AppendCommunityID(c.buf[:0], &k, 0)
	c.last, c.lastHave = k, true
	c.lastOK = bytes.Equal(id, c.want[:])
	return c.lastOK
}

func (n *node) match(d *packet.Decoded) bool {
	switch n.op {
	case opAnd:
		for _, k := range n.kids {
			if !k.match(d) {
				return false
			}
		}
		return true
	case opOr:
		for _, k := range n.kids {
			if k.match(d) {
				return true
			}
		}
		return false
	case opNot:
		return !n.kids[0].match(d)
	case opHost:
		if d.IPVer != n.ver {
			return false
		}
		switch n.dir {
		case dirSrc:
			return d.Src == n.addr
		case dirDst:
			return d.Dst == n.addr
		case dirBoth:
			return d.Src == n.addr && d.Dst == n.addr
		}
		return d.Src == n.addr || d.Dst == n.addr
	case opNet:
		if d.IPVer != n.ver {
			return false
		}
		switch n.dir {
		case dirSrc:
			return n.inNet(&d.Src)
		case dirDst:
			return n.inNet(&d.Dst)
		case dirBoth:
			return n.inNet(&d.Src) && n.inNet(&d.Dst)
		}
		return n.inNet(&d.Src) || n.inNet(&d.Dst)
	case opPort:
		if d.Flags&packet.FlagPorts == 0 || (n.proto != 0 && d.Proto != n.proto) {
			return false
		}
		// Unsigned wrap-around turns lo <= p <= hi into one compare.
		w := n.hi - n.lo
		switch n.dir {
		case dirSrc:
			return d.SrcPort-n.lo <= w
		case dirDst:
			return d.DstPort-n.lo <= w
		case dirBoth:
			return d.SrcPort-n.lo <= w && d.DstPort-n.lo <= w
		}
		return d.SrcPort-n.lo <= w || d.DstPort-n.lo <= w
	case opProto:
		return d.IPVer != 0 && d.Proto == n.proto && (n.ver == 0 || d.IPVer == n.ver)
	case opEtherType:
		return d.Flags&n.flag != 0 || d.EtherType == n.etherType
	case opVLAN:
		if n.anyVLAN {
			return d.NVLAN > 0
		}
		return d.HasVLAN(n.lo)
	case opMPLS:
		return d.NMPLS > 0
	case opFlow:
		return n.matchFlow(d)
	case opCommunity:
		return n.comm.match(d)
	}
	panic("BUG: unknown filter node")
}

func (n *node) inNet(a *[16]byte) bool {
	return binary.BigEndian.Uint64(a[:8])&n.maskHi == n.netHi &&
		binary.BigEndian.Uint64(a[8:])&n.maskLo == n.netLo
}

func (n *node) matchFlow(d *packet.Decoded) bool {
	if d.IPVer != n.ver {
		return false
	}
	ports := n.hasPA || n.hasPB
	if n.proto != 0 {
		if d.Proto != n.proto {
			return false
		}
	}
	if ports && d.Flags&packet.FlagPorts == 0 {
		return false
	}
	if d.Src == n.addr && d.Dst == n.addr2 &&
		(!n.hasPA || d.SrcPort == n.pa) && (!n.hasPB || d.DstPort == n.pb) {
		return true
	}
	return d.Src == n.addr2 && d.Dst == n.addr &&
		(!n.hasPB || d.SrcPort == n.pb) && (!n.hasPA || d.DstPort == n.pa)
}
