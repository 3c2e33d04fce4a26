package query

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"tapvault/block"
	"tapvault/packet"
	"tapvault/writer"
)

// FlowRecord is one flow over a time range: the per-block summaries of the
// blocks that hold it, added up. A is the endpoint that sent the first packet
// seen (the client, when the capture saw the start).
type FlowRecord struct {
	Key         packet.FlowKey `json:"-"`
	Proto       uint8          `json:"proto"`
	A           string         `json:"a"` // ip:port of the initiator
	B           string         `json:"b"`
	VLAN        uint16         `json:"vlan,omitempty"`
	VLAN2       uint16         `json:"vlan2,omitempty"`
	CommunityID string         `json:"community_id"`
	FirstNS     int64          `json:"first_ns"`
	LastNS      int64          `json:"last_ns"`
	PktsAB      uint64         `json:"packets_ab"` // initiator to responder
	PktsBA      uint64         `json:"packets_ba"`
	BytesAB     uint64         `json:"bytes_ab"`
	BytesBA     uint64         `json:"bytes_ba"`
}

// flowAcc adds up one flow's block summaries.
type flowAcc struct {
	key      packet.FlowKey
	first    int64
	last     int64
	firstDir uint8
	pkts     [2]uint64
	bytes    [2]uint64
}

// flowDecoded builds the Decoded a packet of flow k in direction dir would
// decode to, as far as a filter can look at it, so that filters select flows
// with the same meaning they select packets.
func flowDecoded(k *packet.FlowKey, dir uint8, d *packet.Decoded) {
	*d = packet.Decoded{IPVer: k.IPVer, Proto: k.Proto, L3Off: -1, L4Off: -1, PayloadOff: -1}
	src, dst, sp, dp := k.A, k.B, k.PortA, k.PortB
	if dir == packet.DirBA {
		src, dst, sp, dp = dst, src, dp, sp
	}
	d.Src, d.Dst = src, dst
	if k.IPVer == 4 {
		d.Flags |= packet.FlagIPv4
	} else {
		d.Flags |= packet.FlagIPv6
	}
	if k.VLAN != 0 {
		d.Flags |= packet.FlagVLAN
		d.VLANs[0], d.NVLAN = k.VLAN, 1
		if k.VLAN2 != 0 {
			d.VLANs[1], d.NVLAN = k.VLAN2, 2
		}
	}
	switch k.Proto {
	case 6:
		d.Flags |= packet.FlagTCP | packet.FlagPorts
	case 17:
		d.Flags |= packet.FlagUDP | packet.FlagPorts
	case 132:
		d.Flags |= packet.FlagSCTP | packet.FlagPorts
	case 1:
		d.Flags |= packet.FlagICMP
		d.ICMPType, d.ICMPCode = uint8(sp), uint8(dp)
	case 58:
		d.Flags |= packet.FlagICMPv6
		d.ICMPType, d.ICMPCode = uint8(sp), uint8(dp)
	}
	if d.Flags&packet.FlagPorts != 0 {
		d.SrcPort, d.DstPort = sp, dp
	}
}

// FlowMatches reports whether a filter selects any packet of flow k: a
// packet in either direction.
func FlowMatches(f *Filter, k *packet.FlowKey) bool {
	if f == nil || f.MatchAll() {
		return true
	}
	var d packet.Decoded
	flowDecoded(k, packet.DirAB, &d)
	if f.Match(&d) {
		return true
	}
	flowDecoded(k, packet.DirBA, &d)
	return f.Match(&d)
}

func flowEndpoint(ip [16]byte, port uint16, proto uint8) string {
	a := netip.AddrFrom16(ip).Unmap()
	switch proto {
	case 6, 17, 132:
		return netip.AddrPortFrom(a, port).String()
	}
	return a.String()
}

// Flows lists the flows of the blocks overlapping [req.From, req.To] that
// the filter selects, from the block summaries alone (no packet is read).
// Counts cover whole blocks: a block that straddles a bound counts entirely.
// Records are sorted by first timestamp. req.Limit bounds the number of
// records (0: all).
func (s *Store) Flows(req Request) (out []FlowRecord, err error) {
	RunLowPriority(func() { out, err = s.flows(req) })
	return out, err
}

func (s *Store) flows(req Request) ([]FlowRecord, error) {
	blocks, _, err := s.plannedBlocks(req)
	if err != nil {
		return nil, err
	}
	SortBlocks(blocks)
	acc := map[packet.FlowKey]*flowAcc{}
	var (
		buf writer.BlockBuf
		sum block.Summary
		f   = req.Filter
	)
	if f != nil {
		f = f.Clone()
	}
	for _, b := range blocks {
		if _, err := s.R.ReadSummary(b.Ref, &buf); err != nil {
			s.Log.Warn("skipping block whose summary cannot be read", "ref", b.Ref.String(), "err", err)
			continue
		}
		if err := block.ParseSummary(buf.Summary(), &sum); err != nil {
			s.Log.Warn("skipping block with a bad summary", "ref", b.Ref.String(), "err", err)
			continue
		}
		for i := range sum.Flows {
			fs := &sum.Flows[i]
			a := acc[fs.Key]
			if a == nil {
				if !FlowMatches(f, &fs.Key) {
					continue
				}
				a = &flowAcc{key: fs.Key, first: fs.FirstTS, last: fs.LastTS, firstDir: fs.FirstDir}
				acc[fs.Key] = a
			}
			if fs.FirstTS < a.first {
				a.first, a.firstDir = fs.FirstTS, fs.FirstDir
			}
			a.last = max(a.last, fs.LastTS)
			for d := 0; d < 2; d++ {
				a.pkts[d] += uint64(fs.Pkts[d])
				a.bytes[d] += fs.Bytes[d]
			}
		}
	}
	out := make([]FlowRecord, 0, len(acc))
	var cid []byte
	for _, a := range acc {
		k := &a.key
		r := FlowRecord{Key: *k, Proto: k.Proto, VLAN: k.VLAN, VLAN2: k.VLAN2, FirstNS: a.first, LastNS: a.last}
		ab, ba := packet.DirAB, packet.DirBA
		r.A, r.B = flowEndpoint(k.A, k.PortA, k.Proto), flowEndpoint(k.B, k.PortB, k.Proto)
		if a.firstDir == packet.DirBA {
			r.A, r.B = r.B, r.A
			ab, ba = ba, ab
		}
		r.PktsAB, r.PktsBA = a.pkts[ab], a.pkts[ba]
		r.BytesAB, r.BytesBA = a.bytes[ab], a.bytes[ba]
		cid = packet.AppendCommunityID(cid[:0], k, 0)
		r.CommunityID = string(cid)
		out = append(out, r)
	}
	slices.SortFunc(out, func(x, y FlowRecord) int {
		if c := cmp.Compare(x.FirstNS, y.FirstNS); c != 0 {
			return c
		}
		return cmp.Compare(x.CommunityID, y.CommunityID)
	})
	if req.Limit > 0 && len(out) > req.Limit {
		out = out[:req.Limit]
	}
	return out, nil
}

// String formats a flow record as one line for `tapvault flows`.
func (r *FlowRecord) String() string {
	vlan := ""
	if r.VLAN != 0 {
		vlan = fmt.Sprintf(" vlan %d", r.VLAN)
		if r.VLAN2 != 0 {
			vlan += fmt.Sprintf("/%d", r.VLAN2)
		}
	}
	return fmt.Sprintf("%s %s > %s%s %s first %d last %d  %d pkts %d B >  %d pkts %d B <",
		protoName(r.Proto), r.A, r.B, vlan, r.CommunityID, r.FirstNS, r.LastNS, r.PktsAB, r.BytesAB, r.PktsBA, r.BytesBA)
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmp6"
	case 132:
		return "sctp"
	}
	return fmt.Sprintf("proto-%d", p)
}
