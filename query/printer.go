package query

import (
	"fmt"
	"net/netip"
	"strings"
)

// The canonical form of a filter (Filter.String): every qualifier written
// out, every nested and/or parenthesised.

func (n *node) write(b *strings.Builder) {
	switch n.op {
	case opAnd, opOr:
		sep := " and "
		if n.op == opOr {
			sep = " or "
		}
		for i, k := range n.kids {
			if i > 0 {
				b.WriteString(sep)
			}
			k.writeKid(b)
		}
	case opNot:
		b.WriteString("not ")
		n.kids[0].writeKid(b)
	case opHost:
		writeDir(b, n.dir)
		b.WriteString("host ")
		b.WriteString(n.prefix.Addr().String())
	case opNet:
		writeDir(b, n.dir)
		b.WriteString("net ")
		b.WriteString(n.prefix.String())
	case opPort:
		if n.proto != 0 {
			b.WriteString(ipProtoName(n.proto))
			b.WriteByte(' ')
		}
		writeDir(b, n.dir)
		if n.lo == n.hi {
			fmt.Fprintf(b, "port %d", n.lo)
		} else {
			fmt.Fprintf(b, "portrange %d-%d", n.lo, n.hi)
		}
	case opProto:
		for _, pn := range pnames {
			if pn.proto == n.proto && pn.ver == n.ver {
				b.WriteString(pn.name)
				return
			}
		}
		switch n.ver {
		case 4:
			b.WriteString("ip ")
		case 6:
			b.WriteString("ip6 ")
		}
		fmt.Fprintf(b, "proto %d", n.proto)
	case opEtherType:
		for _, e := range etherNames {
			if e.etherType == n.etherType {
				b.WriteString(e.name)
				return
			}
		}
		fmt.Fprintf(b, "ether proto 0x%04x", n.etherType)
	case opVLAN:
		if n.anyVLAN {
			b.WriteString("vlan")
		} else {
			fmt.Fprintf(b, "vlan %d", n.lo)
		}
	case opMPLS:
		b.WriteString("mpls")
	case opFlow:
		if n.proto != 0 {
			b.WriteString(ipProtoName(n.proto))
			b.WriteByte(' ')
		}
		b.WriteString("flow ")
		writeEndpoint(b, n.addr, n.ver, n.pa, n.hasPA)
		b.WriteString(" <> ")
		writeEndpoint(b, n.addr2, n.ver, n.pb, n.hasPB)
	case opCommunity:
		b.WriteString("community-id ")
		b.Write(n.comm.want[:])
	default:
		panic("BUG: unknown filter node")
	}
}

func (n *node) writeKid(b *strings.Builder) {
	if n.op == opAnd || n.op == opOr {
		b.WriteByte('(')
		n.write(b)
		b.WriteByte(')')
		return
	}
	n.write(b)
}

func writeDir(b *strings.Builder, dir uint8) {
	switch dir {
	case dirSrc:
		b.WriteString("src ")
	case dirDst:
		b.WriteString("dst ")
	case dirBoth:
		b.WriteString("src and dst ")
	}
}

func writeEndpoint(b *strings.Builder, a [16]byte, ver uint8, port uint16, hasPort bool) {
	addr := netip.AddrFrom16(a)
	if ver == 4 {
		addr = addr.Unmap()
	}
	if !hasPort {
		b.WriteString(addr.String())
		return
	}
	b.WriteString(netip.AddrPortFrom(addr, port).String())
}
