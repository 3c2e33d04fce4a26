package index

import "tapvault/packet"

// FlowAnyVLAN iterates the blocks holding the flow k on any VLAN stack: k's
// VLAN fields are ignored. The VLAN ids are the last four bytes of the flow
// attribute, so this is one range scan from the key with ids 0/0 to the key
// with ids 0xffff/0xffff. The query planner uses it for `flow A <> B`,
// which names endpoints, not tags.
func (ix *Index) FlowAnyVLAN(k packet.FlowKey, from, to int64) Iterator {
	lo, hi := k, k
	lo.VLAN, lo.VLAN2 = 0, 0
	hi.VLAN, hi.VLAN2 = 0xffff, 0xffff
	return ix.ranged(kindFlow, appendFlowAttr(nil, &lo), appendFlowAttr(nil, &hi), &matcher{match: func(f *packet.FlowKey) bool {
		return f.A == k.A && f.B == k.B && f.PortA == k.PortA && f.PortB == k.PortB && f.Proto == k.Proto && f.IPVer == k.IPVer
	}}, from, to)
}
