package workers

import (
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"tapvault/dataplane"
)

// sinkKey keeps the compiler from discarding the benchmarked work.
var sinkKey FlowKey

// BenchmarkDecode measures Decode plus FlowKeyOf per packet, the per-packet
// part of the worker's budget (67 ns at 15 Mpps on one core).
func BenchmarkDecode(b *testing.B) {
	udp64 := genSpec{link: dataplane.LinkTypeEthernet, l4: layers.IPProtocolUDP, payload: 18} // 14+20+8+18 = 60, +FCS on the wire = 64
	b.Run("size=64", func(b *testing.B) {
		pkts := [][]byte{genPacket(b, udp64)}
		benchDecode(b, pkts)
	})
	b.Run("mix=imix", func(b *testing.B) {
		// 7:4:1 of 64, 594 and 1518-byte frames (wire sizes, FCS included),
		// TCP and UDP alternating, IPv4 and some IPv6, shuffled so the
		// branch predictor cannot learn the order.
		var pkts [][]byte
		r := rand.New(rand.NewPCG(7, 8))
		for rep := 0; rep < 8; rep++ {
			for _, n := range []struct{ size, count int }{{64, 7}, {594, 4}, {1518, 1}} {
				for i := 0; i < n.count; i++ {
					s := genSpec{link: dataplane.LinkTypeEthernet, l4: layers.IPProtocolUDP, v6: i%4 == 3}
					hdr := 14 + 20 + 8
					if i%2 == 0 {
						s.l4 = layers.IPProtocolTCP
						hdr = 14 + 20 + 20
					}
					if s.v6 {
						hdr += 20
					}
					s.payload = max(n.size-4-hdr, 0)
					pkts = append(pkts, genPacket(b, s))
				}
			}
		}
		r.Shuffle(len(pkts), func(i, j int) { pkts[i], pkts[j] = pkts[j], pkts[i] })
		benchDecode(b, pkts)
	})
}

func benchDecode(b *testing.B, pkts [][]byte) {
	var dec Decoder
	var d Decoded
	total := 0
	for _, p := range pkts {
		total += len(p)
	}
	b.SetBytes(int64(total / len(pkts)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		dec.Decode(pkts[i], dataplane.LinkTypeEthernet, &d)
		k, _, ok := FlowKeyOf(&d)
		if !ok {
			b.Fatal("no flow key")
		}
		sinkKey = k
		i++
		if i == len(pkts) {
			i = 0
		}
	}
}

// BenchmarkCommunityID measures one Community-ID, computed per flow (not per
// packet) when a flow record is written.
func BenchmarkCommunityID(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		name := "ip=4"
		s := genSpec{link: dataplane.LinkTypeEthernet, l4: layers.IPProtocolTCP, v6: v6}
		if v6 {
			name = "ip=6"
		}
		b.Run(name, func(b *testing.B) {
			var dec Decoder
			var d Decoded
			dec.Decode(genPacket(b, s), dataplane.LinkTypeEthernet, &d)
			k, _, _ := FlowKeyOf(&d)
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendCommunityID(buf[:0], &k, 0)
			}
		})
	}
}
