package packet

import (
	"encoding/binary"
	"math/rand/v2"
	"tapvault/pcap"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// sink keeps the compiler from discarding the benchmarked work.
var sink uint64

// BenchmarkDecode measures Decode plus FlowKeyOf per packet, the per-packet
// part of the worker's budget (67 ns at 15 Mpps on one core). The key is
// consumed the way the flow table's hash reads it, field by field.
func BenchmarkDecode(b *testing.B) {
	udp64 := genSpec{link: pcap.LinkTypeEthernet, l4: layers.IPProtocolUDP, payload: 18} // 14+20+8+18 = 60, +FCS on the wire = 64
	b.Run("size=64", func(b *testing.B) {
		benchDecode(b, [][]byte{genPacket(b, udp64)}, false)
	})
	b.Run("mix=imix", func(b *testing.B) {
		benchDecode(b, imix(b), false)
	})
	b.Run("into/size=64", func(b *testing.B) {
		benchDecode(b, [][]byte{genPacket(b, udp64)}, true)
	})
	b.Run("into/mix=imix", func(b *testing.B) {
		benchDecode(b, imix(b), true)
	})
}

// imix returns 7:4:1 of 64, 594 and 1518-byte frames (wire sizes, FCS
// included), TCP and UDP alternating, a quarter of them IPv6, shuffled so
// the branch predictor cannot learn the order.
func imix(b *testing.B) [][]byte {
	var pkts [][]byte
	r := rand.New(rand.NewPCG(7, 8))
	for rep := 0; rep < 8; rep++ {
		for _, n := range []struct{ size, count int }{{64, 7}, {594, 4}, {1518, 1}} {
			for i := 0; i < n.count; i++ {
				s := genSpec{link: pcap.LinkTypeEthernet, l4: layers.IPProtocolUDP, v6: (i+rep)%4 == 3}
				hdr := 14 + 20 + 8
				if (i+rep)%2 == 0 {
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
	return pkts
}

func benchDecode(b *testing.B, pkts [][]byte, into bool) {
	var dec Decoder
	var d Decoded
	var k FlowKey
	total := 0
	for _, p := range pkts {
		total += len(p)
	}
	b.SetBytes(int64(total / len(pkts)))
	b.ReportAllocs()
	var acc uint64
	i := 0
	for b.Loop() {
		dec.Decode(pkts[i], pcap.LinkTypeEthernet, &d)
		var dir uint8
		var ok bool
		if into {
			dir, ok = FlowKeyInto(&k, &d)
		} else {
			k, dir, ok = FlowKeyOf(&d)
		}
		if !ok {
			b.Fatal("no flow key")
		}
		acc += binary.LittleEndian.Uint64(k.A[8:]) ^ binary.LittleEndian.Uint64(k.B[8:]) ^
			uint64(k.PortA)<<16 ^ uint64(k.PortB) ^ uint64(k.Proto) ^ uint64(dir)
		i++
		if i == len(pkts) {
			i = 0
		}
	}
	sink = acc
}

// BenchmarkCommunityID measures one Community-ID, computed per flow (not per
// packet) when a flow record is written.
func BenchmarkCommunityID(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		name := "ip=4"
		s := genSpec{link: pcap.LinkTypeEthernet, l4: layers.IPProtocolTCP, v6: v6}
		if v6 {
			name = "ip=6"
		}
		b.Run(name, func(b *testing.B) {
			var dec Decoder
			var d Decoded
			dec.Decode(genPacket(b, s), pcap.LinkTypeEthernet, &d)
			k, _, _ := FlowKeyOf(&d)
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendCommunityID(buf[:0], &k, 0)
			}
		})
	}
}
