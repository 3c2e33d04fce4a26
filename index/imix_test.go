package index

import (
	"math/rand/v2"
	"net/netip"

	"tapvault/block"
	"tapvault/packet"
	"tapvault/writer"
)

// imix generates the summaries of an IMIX trace with a fixed flow
// population: packets of 64, 576 and 1500 bytes in the ratio 7:4:1, each
// from a flow drawn uniformly (the worst case for the index: every flow is
// in every group). A block seals at 1 MiB of records (20-byte header plus
// packet), so it holds about 2800 packets from about 2400 of 10k flows.
type imix struct {
	rng   *rand.Rand
	flows []packet.FlowKey
	seg   uint32
	off   uint32
	ts    int64
	seen  []int32 // per flow: index+1 in the current block's Flows
	sum   block.Summary
}

func newIMIX(seed uint64, nflows int) *imix {
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	g := &imix{rng: rng, flows: make([]packet.FlowKey, nflows), seg: 1, ts: 1_700_000_000_000_000_000, seen: make([]int32, nflows)}
	servers := []uint16{80, 443, 53, 123, 22, 25, 8080, 3306, 5432, 6379}
	for i := range g.flows {
		k := &g.flows[i]
		client := rng.IntN(2000)
		server := rng.IntN(200)
		k.A = netip.AddrFrom4([4]byte{10, byte(client >> 8), byte(client), 1}).As16()
		k.B = netip.AddrFrom4([4]byte{172, 16, byte(server >> 8), byte(server)}).As16()
		k.IPVer = 4
		k.Proto = protoTCP
		if rng.IntN(4) == 0 {
			k.Proto = protoUDP
		}
		k.PortA = uint16(32768 + rng.IntN(28232))
		k.PortB = servers[rng.IntN(len(servers))]
		if rng.IntN(2) == 0 {
			k.VLAN = uint16(100 + rng.IntN(8))
		}
	}
	return g
}

var imixSizes = [12]uint32{64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1500}

// next returns the next block's meta and summary (valid until the next
// call) and the packet bytes it holds.
func (g *imix) next() (writer.BlockMeta, *block.Summary, uint64) {
	clear(g.seen)
	g.sum.Flows = g.sum.Flows[:0]
	var records, bytes uint64
	var pkts uint32
	minTS := g.ts
	for records < block.DefaultSize {
		size := imixSizes[g.rng.IntN(len(imixSizes))]
		f := g.rng.IntN(len(g.flows))
		if g.seen[f] == 0 {
			g.sum.Flows = append(g.sum.Flows, block.FlowStat{Key: g.flows[f], FirstTS: g.ts})
			g.seen[f] = int32(len(g.sum.Flows))
		}
		st := &g.sum.Flows[g.seen[f]-1]
		dir := g.rng.IntN(2)
		st.Pkts[dir]++
		st.Bytes[dir] += uint64(size)
		st.LastTS = g.ts
		records += block.RecordHeaderSize + uint64(size)
		bytes += uint64(size)
		pkts++
		g.ts += 590 // ~1.7 Mpps
	}
	meta := writer.BlockMeta{
		Ref: writer.MakeRef(g.seg, g.off), Count: pkts, MinTS: minTS, MaxTS: g.ts - 590,
		RawLen: uint32(records), StoredLen: uint32(records / 2), WireBytes: bytes, Codec: writer.CodecZstd,
	}
	g.off += meta.StoredLen + 64
	if g.off > 1<<31 {
		g.seg, g.off = g.seg+1, 0
	}
	return meta, &g.sum, bytes
}
