package testframe

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestFrameDecodesBack checks the built frames with gopacket's decoder.
func TestFrameDecodesBack(t *testing.T) {
	a4, b4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")

	f := Frame{VLANs: []uint16{100, 200}, TPID: 0x88a8, MPLS: []uint32{16, 17},
		IPv4: &IPv4{Src: a4, Dst: b4, ID: 7, Options: []byte{1, 1, 1, 0}},
		TCP:  &TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Ack: 2000, Flags: PSH | ACK, Window: 512}, Payload: []byte("GET /")}
	p := gopacket.NewPacket(f.Bytes(), layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth.EthernetType != layers.EthernetTypeQinQ {
		t.Errorf("got outer TPID %v, want 0x88a8", eth.EthernetType)
	}
	var vids []uint16
	for _, l := range p.Layers() {
		if q, ok := l.(*layers.Dot1Q); ok {
			vids = append(vids, q.VLANIdentifier)
		}
	}
	if len(vids) != 2 || vids[0] != 100 || vids[1] != 200 {
		t.Errorf("got VLANs %v, want [100 200]", vids)
	}
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip.IHL != 6 || ip.Id != 7 || ip.TTL != 64 || !ip.SrcIP.Equal(a4.AsSlice()) || ip.Protocol != layers.IPProtocolTCP {
		t.Errorf("got IPv4 %+v", ip)
	}
	tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp.Seq != 1000 || tcp.Ack != 2000 || !tcp.PSH || !tcp.ACK || tcp.SYN || tcp.Window != 512 || string(tcp.Payload) != "GET /" {
		t.Errorf("got TCP %+v", tcp)
	}

	f = Frame{IPv6: &IPv6{Src: a6, Dst: b6}, ICMP: &ICMP{Type: 128, ID: 3, Seq: 4}, Payload: []byte("ping")}
	p = gopacket.NewPacket(f.Bytes(), layers.LayerTypeEthernet, gopacket.Default)
	echo, ok := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
	if !ok || echo.Identifier != 3 || echo.SeqNumber != 4 || !bytes.Equal(echo.Payload, []byte("ping")) {
		t.Errorf("got ICMPv6 echo %+v (layers %v)", echo, p.Layers())
	}

	f = Frame{IPv4: &IPv4{Src: a4, Dst: b4, FragOff: 1480, MoreFragments: true}, UDP: &UDP{SrcPort: 1, DstPort: 2}}
	b := f.Bytes()
	if len(b) != 60 {
		t.Errorf("got %d bytes, want 60 (padded)", len(b))
	}
	p = gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	ip = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip.FragOffset != 185 || ip.Flags != layers.IPv4MoreFragments || ip.Length != 28 {
		t.Errorf("got fragment %+v", ip)
	}

	f = Frame{ARP: &ARP{SenderIP: a4, TargetIP: b4}}
	p = gopacket.NewPacket(f.Bytes(), layers.LayerTypeEthernet, gopacket.Default)
	arp, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !ok || arp.Operation != 1 || !bytes.Equal(arp.SourceProtAddress, a4.AsSlice()) || !bytes.Equal(arp.SourceHwAddress, defaultSrcMAC[:]) {
		t.Errorf("got ARP %+v", arp)
	}
}

func TestFrameRejectsNonsense(t *testing.T) {
	a4 := netip.MustParseAddr("10.0.0.1")
	for _, f := range []Frame{
		{TCP: &TCP{}},
		{IPv4: &IPv4{Src: a4, Dst: a4}, TCP: &TCP{}, UDP: &UDP{}},
		{IPv4: &IPv4{Src: a4, Dst: netip.MustParseAddr("::1")}},
		{IPv4: &IPv4{Src: a4, Dst: a4, Options: []byte{0x94, 9}}},
	} {
		if _, err := f.serialize(); err == nil {
			t.Errorf("%+v: got no error, want one", f)
		}
	}
}
