package query

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"tapvault/block"
	"tapvault/packet"
)

// PlanOp is the kind of a Plan node.
type PlanOp uint8

const (
	PlanAll       PlanOp = iota // no pruning possible: every block is a candidate
	PlanAnd                     // all Kids
	PlanOr                      // any of Kids
	PlanHost                    // IP as source or destination
	PlanNet                     // an address in Prefix as source or destination
	PlanPort                    // Port as source or destination port, of Proto (0: any of tcp/udp/sctp)
	PlanPortRange               // a port in Port..PortHi, of Proto (0: any)
	PlanVLAN                    // VLAN anywhere in the tag stack
	PlanFlow                    // the 5-tuple Flow, on any VLAN (see Plan)
)

// Plan is what the index can use to choose blocks: a boolean tree over index
// terms. It is a superset of the filter: every packet Match accepts lies in
// a block the plan selects, so the index may prune with it and the exact
// Filter.Match runs afterwards on the packets read.
//
// How filters map to plans:
//   - src/dst qualifiers are dropped (the index is undirected): a superset.
//   - tcp port 80 is Port(6, 80); port 80 is Port(0, 80).
//   - not, protocol names (tcp, arp, icmp, ...), bare vlan, mpls and
//     community-id have no index term and plan as All. And drops All kids
//     (and is All if none remain); Or with an All kid is All.
//   - flow A:p <> B:q is Flow(key), normalised as packet.FlowKeyOf does
//     (the smaller (address, port) is A) with VLAN and VLAN2 zero. A flow
//     selector names no VLAN, so the term means that 5-tuple on every VLAN:
//     with keys encoded by packet.AppendFlowKey, whose VLAN fields are the
//     last 4 bytes, the index scans the prefix of the first FlowKeySize-4
//     bytes. Without a protocol ("flow", not "tcp flow") it is the Or of the
//     tcp, udp and sctp keys. A flow without both ports plans as
//     And(Host A, Host B, Port ...).
//
// IP is IPv4-mapped for IPv4 (like packet.Decoded); Prefix is a plain IPv4
// or IPv6 prefix.
type Plan struct {
	Op     PlanOp
	Kids   []Plan
	IP     [16]byte
	Prefix netip.Prefix
	Proto  uint8
	Port   uint16
	PortHi uint16
	VLAN   uint16
	Flow   packet.FlowKey
}

// portProtos are the protocols a port term without a protocol stands for.
var portProtos = [3]uint8{6, 17, 132}

func planOf(n *node) Plan {
	switch n.op {
	case opAnd:
		var kids []Plan
		for _, k := range n.kids {
			pk := planOf(k)
			switch pk.Op {
			case PlanAll:
			case PlanAnd:
				kids = append(kids, pk.Kids...)
			default:
				kids = append(kids, pk)
			}
		}
		return andOf(kids)
	case opOr:
		var kids []Plan
		for _, k := range n.kids {
			pk := planOf(k)
			switch pk.Op {
			case PlanAll:
				return Plan{Op: PlanAll}
			case PlanOr:
				kids = append(kids, pk.Kids...)
			default:
				kids = append(kids, pk)
			}
		}
		return Plan{Op: PlanOr, Kids: kids}
	case opHost:
		return Plan{Op: PlanHost, IP: n.addr}
	case opNet:
		return Plan{Op: PlanNet, Prefix: n.prefix}
	case opPort:
		if n.lo == n.hi {
			return Plan{Op: PlanPort, Proto: n.proto, Port: n.lo}
		}
		return Plan{Op: PlanPortRange, Proto: n.proto, Port: n.lo, PortHi: n.hi}
	case opVLAN:
		if !n.anyVLAN {
			return Plan{Op: PlanVLAN, VLAN: n.lo}
		}
	case opFlow:
		return planFlow(n)
	}
	// not, protocol names, bare vlan, mpls, community-id.
	return Plan{Op: PlanAll}
}

func andOf(kids []Plan) Plan {
	switch len(kids) {
	case 0:
		return Plan{Op: PlanAll}
	case 1:
		return kids[0]
	}
	return Plan{Op: PlanAnd, Kids: kids}
}

func planFlow(n *node) Plan {
	if !n.hasPA || !n.hasPB {
		kids := []Plan{{Op: PlanHost, IP: n.addr}, {Op: PlanHost, IP: n.addr2}}
		if n.hasPA {
			kids = append(kids, Plan{Op: PlanPort, Proto: n.proto, Port: n.pa})
		}
		if n.hasPB {
			kids = append(kids, Plan{Op: PlanPort, Proto: n.proto, Port: n.pb})
		}
		return Plan{Op: PlanAnd, Kids: kids}
	}
	key := func(proto uint8) Plan {
		k := packet.FlowKey{A: n.addr, B: n.addr2, PortA: n.pa, PortB: n.pb, Proto: proto, IPVer: n.ver}
		if lessAddrPort(&k.B, &k.A, k.PortB, k.PortA) {
			k.A, k.B, k.PortA, k.PortB = k.B, k.A, k.PortB, k.PortA
		}
		return Plan{Op: PlanFlow, Flow: k}
	}
	if n.proto != 0 {
		return key(n.proto)
	}
	p := Plan{Op: PlanOr}
	for _, proto := range portProtos {
		p.Kids = append(p.Kids, key(proto))
	}
	return p
}

// lessAddrPort orders endpoints as packet.FlowKeyOf does: address bytes,
// then port.
func lessAddrPort(a, b *[16]byte, pa, pb uint16) bool {
	if c := strings.Compare(string(a[:]), string(b[:])); c != 0 {
		return c < 0
	}
	return pa < pb
}

// MatchTerms evaluates the plan against the index terms of the packet d
// itself: its two addresses, its two ports (with its protocol), its VLAN
// ids and its flow key. A sound plan is true for every packet its filter
// matches; the index, which holds the union of these terms per block, then
// never misses a block that has a matching packet.
func (p Plan) MatchTerms(d *packet.Decoded) bool {
	switch p.Op {
	case PlanAll:
		return true
	case PlanAnd:
		for i := range p.Kids {
			if !p.Kids[i].MatchTerms(d) {
				return false
			}
		}
		return true
	case PlanOr:
		for i := range p.Kids {
			if p.Kids[i].MatchTerms(d) {
				return true
			}
		}
		return false
	case PlanHost:
		return d.IPVer != 0 && (d.Src == p.IP || d.Dst == p.IP)
	case PlanNet:
		if d.IPVer == 0 {
			return false
		}
		src, dst := netip.AddrFrom16(d.Src), netip.AddrFrom16(d.Dst)
		if d.IPVer == 4 {
			src, dst = src.Unmap(), dst.Unmap()
		}
		return p.Prefix.Contains(src) || p.Prefix.Contains(dst)
	case PlanPort, PlanPortRange:
		if d.Flags&packet.FlagPorts == 0 || (p.Proto != 0 && d.Proto != p.Proto) {
			return false
		}
		hi := p.PortHi
		if p.Op == PlanPort {
			hi = p.Port
		}
		return (d.SrcPort >= p.Port && d.SrcPort <= hi) || (d.DstPort >= p.Port && d.DstPort <= hi)
	case PlanVLAN:
		return d.HasVLAN(p.VLAN)
	case PlanFlow:
		k, _, ok := packet.FlowKeyOf(d)
		if !ok {
			return false
		}
		k.VLAN, k.VLAN2 = 0, 0
		return k == p.Flow
	}
	panic("BUG: unknown plan op")
}

// FlowHashes returns the block.FlowHash of every flow that a packet the
// plan's filter matches can belong to, when the plan names them: a flow, an
// or of flows, an and with such a kid (the smallest). ok is false when a
// matching packet may lie in any flow. A query then reads, of each
// version-2 block, only the sub-frames holding those hashes
// (writer.Reader.ReadFlow): sound because MatchTerms of a flow term is
// true only for packets whose flow key, VLANs aside, is the term's, and
// FlowHash leaves the VLANs out.
func (p Plan) FlowHashes() (hashes []uint32, ok bool) {
	switch p.Op {
	case PlanFlow:
		return []uint32{block.FlowHash(&p.Flow)}, true
	case PlanOr:
		for i := range p.Kids {
			h, ok := p.Kids[i].FlowHashes()
			if !ok {
				return nil, false
			}
			hashes = append(hashes, h...)
		}
		slices.Sort(hashes)
		return slices.Compact(hashes), len(p.Kids) > 0
	case PlanAnd:
		for i := range p.Kids {
			if h, kok := p.Kids[i].FlowHashes(); kok && (!ok || len(h) < len(hashes)) {
				hashes, ok = h, true
			}
		}
		return hashes, ok
	}
	return nil, false
}

// MatchKey is MatchTerms for the packets of flow k, from the key alone:
// false only when no packet of the flow can satisfy the plan. It errs
// towards true where a key says less than a packet (a VLAN beyond the
// key's two, a port term on a protocol without ports), so a reader that
// keeps only the flows it accepts (summaryFlowReader) loses no packet the
// filter matches.
func (p Plan) MatchKey(k *packet.FlowKey) bool {
	switch p.Op {
	case PlanAnd:
		for i := range p.Kids {
			if !p.Kids[i].MatchKey(k) {
				return false
			}
		}
		return true
	case PlanOr:
		for i := range p.Kids {
			if p.Kids[i].MatchKey(k) {
				return true
			}
		}
		return false
	case PlanHost:
		return k.A == p.IP || k.B == p.IP
	case PlanNet:
		a, b := netip.AddrFrom16(k.A), netip.AddrFrom16(k.B)
		if k.IPVer == 4 {
			a, b = a.Unmap(), b.Unmap()
		}
		return p.Prefix.Contains(a) || p.Prefix.Contains(b)
	case PlanPort, PlanPortRange:
		if p.Proto != 0 && k.Proto != p.Proto {
			return false
		}
		hi := p.PortHi
		if p.Op == PlanPort {
			hi = p.Port
		}
		return (k.PortA >= p.Port && k.PortA <= hi) || (k.PortB >= p.Port && k.PortB <= hi)
	case PlanFlow:
		kk := *k
		kk.VLAN, kk.VLAN2 = 0, 0
		return kk == p.Flow
	}
	return true // PlanAll, PlanVLAN (a packet may carry more tags than its key)
}

// mayMatchNonIP reports whether a packet without an IP layer (a block's
// non-flow packets: ARP and the like) may satisfy the plan: host, net, port
// and flow terms need IP, a VLAN term does not.
func (p Plan) mayMatchNonIP() bool {
	switch p.Op {
	case PlanAnd:
		for i := range p.Kids {
			if !p.Kids[i].mayMatchNonIP() {
				return false
			}
		}
		return true
	case PlanOr:
		for i := range p.Kids {
			if p.Kids[i].mayMatchNonIP() {
				return true
			}
		}
		return false
	case PlanHost, PlanNet, PlanPort, PlanPortRange, PlanFlow:
		return false
	}
	return true
}

// String renders the plan for logs and tests, e.g.
// and(host 10.0.0.1, port tcp/80).
func (p Plan) String() string {
	var b strings.Builder
	p.write(&b)
	return b.String()
}

func (p Plan) write(b *strings.Builder) {
	switch p.Op {
	case PlanAll:
		b.WriteString("all")
	case PlanAnd, PlanOr:
		if p.Op == PlanAnd {
			b.WriteString("and(")
		} else {
			b.WriteString("or(")
		}
		for i, k := range p.Kids {
			if i > 0 {
				b.WriteString(", ")
			}
			k.write(b)
		}
		b.WriteByte(')')
	case PlanHost:
		b.WriteString("host ")
		b.WriteString(netip.AddrFrom16(p.IP).Unmap().String())
	case PlanNet:
		b.WriteString("net ")
		b.WriteString(p.Prefix.String())
	case PlanPort:
		fmt.Fprintf(b, "port %s/%d", planProto(p.Proto), p.Port)
	case PlanPortRange:
		fmt.Fprintf(b, "portrange %s/%d-%d", planProto(p.Proto), p.Port, p.PortHi)
	case PlanVLAN:
		fmt.Fprintf(b, "vlan %d", p.VLAN)
	case PlanFlow:
		k := &p.Flow
		a, bb := netip.AddrFrom16(k.A), netip.AddrFrom16(k.B)
		if k.IPVer == 4 {
			a, bb = a.Unmap(), bb.Unmap()
		}
		fmt.Fprintf(b, "flow %s/%s <> %s", planProto(k.Proto),
			netip.AddrPortFrom(a, k.PortA), netip.AddrPortFrom(bb, k.PortB))
	default:
		fmt.Fprintf(b, "op(%d)", p.Op)
	}
}

func planProto(p uint8) string {
	switch p {
	case 0:
		return "*"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	}
	return fmt.Sprint(p)
}
