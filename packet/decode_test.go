package packet

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"tapvault/internal/testframe"
	"tapvault/pcap"
)

// ---- gopacket as the oracle ----------------------------------------------

// sliceOff returns where b starts inside data, or -1 if it does not (or is
// empty). gopacket decodes with NoCopy, so its layers are sub-slices of data.
func sliceOff(data, b []byte) int32 {
	if len(b) == 0 || len(data) == 0 {
		return -1
	}
	d := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < d || p >= d+uintptr(len(data)) {
		return -1
	}
	return int32(p - d)
}

// oracle is what gopacket makes of a packet, in Decoded's terms. Only the
// parts gopacket decoded without error are marked as known.
type oracle struct {
	d         Decoded
	ip        bool // addresses, TTL, proto (v4), fragment fields known
	l4        bool // the L4 layer decoded without error
	truncated bool // gopacket's truncation verdict
}

// gopacketOracle decodes data with gopacket. It stops at the first IP
// header's L4 layer: tunnels are not followed, like Decode. A first
// fragment's L4 header, which gopacket leaves in a Fragment layer, is decoded
// from that layer's bytes.
func gopacketOracle(data []byte, lt uint16) oracle {
	var o oracle
	o.d = Decoded{L3Off: -1, L4Off: -1, PayloadOff: -1}
	var first gopacket.Decoder = layers.LinkType(lt)
	switch lt {
	case pcap.LinkTypeIPv4: // gopacket has no decoder for these two
		first = layers.LayerTypeIPv4
	case pcap.LinkTypeIPv6:
		first = layers.LayerTypeIPv6
	}
	pkt := gopacket.NewPacket(data, first, gopacket.DecodeOptions{NoCopy: true})
	o.truncated = pkt.Metadata().Truncated
	ls := pkt.Layers()
	// Some gopacket decoders add their layer before failing, others do
	// not: a layer failed if the failure that follows it starts where the
	// layer does, or holds no bytes at all (TCP's truncated options). A
	// failure further on (say, of the DNS decoder after UDP) is not the
	// layer's.
	failed := func(i int) bool {
		if i+1 >= len(ls) || ls[i+1].LayerType() != gopacket.LayerTypeDecodeFailure {
			return false
		}
		f := sliceOff(data, ls[i+1].LayerContents())
		return f < 0 || f == sliceOff(data, ls[i].LayerContents())
	}
	seenIP := false
	l4 := func(l gopacket.Layer, base int32) {
		o.d.L4Off = base + sliceOff(data[base:], l.LayerContents())
		switch l := l.(type) {
		case *layers.TCP:
			o.d.Flags |= FlagTCP | FlagPorts
			o.d.SrcPort, o.d.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
			o.d.Seq, o.d.Ack, o.d.Window = l.Seq, l.Ack, l.Window
			o.d.TCPFlags = l.Contents[13]
		case *layers.UDP:
			o.d.Flags |= FlagUDP | FlagPorts
			o.d.SrcPort, o.d.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
		case *layers.SCTP:
			o.d.Flags |= FlagSCTP | FlagPorts
			o.d.SrcPort, o.d.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
		case *layers.ICMPv4:
			o.d.Flags |= FlagICMP
			o.d.ICMPType, o.d.ICMPCode = l.TypeCode.Type(), l.TypeCode.Code()
		case *layers.ICMPv6:
			o.d.Flags |= FlagICMPv6
			o.d.ICMPType, o.d.ICMPCode = l.TypeCode.Type(), l.TypeCode.Code()
		}
		o.d.PayloadOff = o.d.L4Off + int32(len(l.LayerContents()))
		o.d.PayloadLen = int32(len(l.LayerPayload()))
		o.l4 = true
	}
loop:
	for i, l := range ls {
		bad := failed(i)
		switch l := l.(type) {
		case *layers.Dot1Q:
			if seenIP || bad {
				break loop
			}
			if o.d.NVLAN < MaxVLAN {
				o.d.VLANs[o.d.NVLAN] = l.VLANIdentifier
			}
			o.d.NVLAN++
			o.d.Flags |= FlagVLAN
		case *layers.MPLS:
			if seenIP {
				break loop
			}
			o.d.NMPLS++
			o.d.Flags |= FlagMPLS
		case *layers.ARP:
			if seenIP {
				break loop
			}
			o.d.Flags |= FlagARP
			o.d.L3Off = sliceOff(data, l.Contents)
			break loop
		case *layers.IPv4:
			if seenIP {
				break loop
			}
			seenIP = true
			if l.SrcIP == nil {
				break loop
			}
			o.ip = true
			o.d.Flags |= FlagIPv4
			o.d.IPVer = 4
			o.d.Src = netip.AddrFrom4([4]byte(l.SrcIP.To4())).As16()
			o.d.Dst = netip.AddrFrom4([4]byte(l.DstIP.To4())).As16()
			o.d.TTL, o.d.Proto = l.TTL, uint8(l.Protocol)
			o.d.FragID = uint32(l.Id)
			o.d.FragOff = uint32(l.FragOffset) * 8
			if l.Flags&layers.IPv4MoreFragments != 0 || l.FragOffset != 0 {
				o.d.Flags |= FlagFragment
				if l.FragOffset == 0 {
					o.d.Flags |= FlagFirstFrag
				}
			}
			o.d.L3Off = sliceOff(data, l.Contents)
			if bad {
				break loop
			}
		case *layers.IPv6:
			if seenIP {
				break loop
			}
			seenIP = true
			if len(l.Contents) < 40 {
				break loop
			}
			o.ip = true
			o.d.Flags |= FlagIPv6
			o.d.IPVer = 6
			o.d.Src, o.d.Dst = [16]byte(l.SrcIP.To16()), [16]byte(l.DstIP.To16())
			o.d.TTL, o.d.Proto = l.HopLimit, uint8(l.NextHeader)
			if l.HopByHop != nil {
				o.d.Proto = uint8(l.HopByHop.NextHeader)
			}
			o.d.L3Off = sliceOff(data, l.Contents)
			if bad {
				break loop
			}
		case *layers.IPv6Routing:
			o.d.Proto = uint8(l.NextHeader)
		case *layers.IPv6Destination:
			o.d.Proto = uint8(l.NextHeader)
		case *layers.IPv6HopByHop:
			o.d.Proto = uint8(l.NextHeader)
		case *layers.IPSecAH:
			o.d.Proto = uint8(l.NextHeader)
		case *layers.IPv6Fragment:
			o.d.Proto = uint8(l.NextHeader)
			o.d.FragID = l.Identification
			o.d.FragOff = uint32(l.FragmentOffset) * 8
			if l.MoreFragments || l.FragmentOffset != 0 {
				o.d.Flags |= FlagFragment
				if l.FragmentOffset == 0 {
					o.d.Flags |= FlagFirstFrag
				}
			}
		case *gopacket.Fragment:
			if !seenIP {
				break loop
			}
			if o.d.FragOff != 0 {
				o.d.PayloadOff = sliceOff(data, *l)
				o.d.PayloadLen = int32(len(*l))
				break loop
			}
			// A first fragment: decode its L4 header the way gopacket
			// would if the datagram were whole.
			var lt gopacket.LayerType
			switch o.d.Proto {
			case protoTCP:
				lt = layers.LayerTypeTCP
			case protoUDP:
				lt = layers.LayerTypeUDP
			case protoSCTP:
				lt = layers.LayerTypeSCTP
			case protoICMP:
				lt = layers.LayerTypeICMPv4
			case protoICMPv6:
				lt = layers.LayerTypeICMPv6
			default:
				break loop
			}
			base := sliceOff(data, *l)
			if base < 0 {
				break loop
			}
			inner := gopacket.NewPacket(*l, lt, gopacket.DecodeOptions{NoCopy: true})
			if inner.ErrorLayer() == nil && len(inner.Layers()) > 0 {
				l4(inner.Layers()[0], base)
			}
			break loop
		case *layers.TCP, *layers.UDP, *layers.SCTP, *layers.ICMPv4, *layers.ICMPv6:
			if !seenIP || bad {
				break loop
			}
			l4(l, 0)
			break loop
		case *layers.Ethernet, *layers.LinuxSLL, *layers.LinuxSLL2, *layers.Loopback,
			*layers.PPPoE, *layers.PPP, *layers.LLC, *layers.SNAP, *layers.FDDI:
			if seenIP || bad {
				break loop
			}
		default:
			break loop
		}
	}
	return o
}

// diffOracle lists where d disagrees with what gopacket knows.
func diffOracle(d *Decoded, o *oracle) []string {
	var diffs []string
	check := func(name string, got, want any) {
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s: got %v, want %v", name, got, want))
		}
	}
	e := &o.d
	check("NVLAN", d.NVLAN, e.NVLAN)
	check("VLANs", d.VLANs, e.VLANs)
	check("NMPLS", d.NMPLS, e.NMPLS)
	check("ARP", d.Flags&FlagARP, e.Flags&FlagARP)
	if e.Flags&FlagARP != 0 {
		check("L3Off", d.L3Off, e.L3Off)
	}
	if !o.ip {
		if d.Flags&(FlagIPv4|FlagIPv6) != 0 && !o.truncated && e.Flags&FlagARP == 0 {
			// gopacket found no IP header where we did: acceptable only
			// where gopacket gave up on a header we decode further.
			diffs = append(diffs, "IP decoded, gopacket has none")
		}
		return diffs
	}
	check("IP flags", d.Flags&(FlagIPv4|FlagIPv6), e.Flags&(FlagIPv4|FlagIPv6))
	check("IPVer", d.IPVer, e.IPVer)
	check("Src", netip.AddrFrom16(d.Src), netip.AddrFrom16(e.Src))
	check("Dst", netip.AddrFrom16(d.Dst), netip.AddrFrom16(e.Dst))
	check("TTL", d.TTL, e.TTL)
	check("L3Off", d.L3Off, e.L3Off)
	check("frag flags", d.Flags&(FlagFragment|FlagFirstFrag), e.Flags&(FlagFragment|FlagFirstFrag))
	if e.Flags&FlagFragment != 0 || e.IPVer == 4 {
		check("FragID", d.FragID, e.FragID)
		check("FragOff", d.FragOff, e.FragOff)
	}
	if e.IPVer == 4 || o.l4 {
		check("Proto", d.Proto, e.Proto)
	}
	if e.FragOff != 0 && e.PayloadOff >= 0 {
		check("fragment PayloadOff", d.PayloadOff, e.PayloadOff)
		check("fragment PayloadLen", d.PayloadLen, e.PayloadLen)
	}
	if !o.l4 {
		return diffs
	}
	const l4Flags = FlagTCP | FlagUDP | FlagSCTP | FlagICMP | FlagICMPv6 | FlagPorts
	check("L4 flags", d.Flags&l4Flags, e.Flags&l4Flags)
	check("L4Off", d.L4Off, e.L4Off)
	check("PayloadOff", d.PayloadOff, e.PayloadOff)
	check("PayloadLen", d.PayloadLen, e.PayloadLen)
	check("SrcPort", d.SrcPort, e.SrcPort)
	check("DstPort", d.DstPort, e.DstPort)
	check("ICMPType", d.ICMPType, e.ICMPType)
	check("ICMPCode", d.ICMPCode, e.ICMPCode)
	if e.Flags&FlagTCP != 0 {
		check("Seq", d.Seq, e.Seq)
		check("Ack", d.Ack, e.Ack)
		check("Window", d.Window, e.Window)
		check("TCPFlags", d.TCPFlags, e.TCPFlags)
	}
	return diffs
}

// ---- packet generation with gopacket's serializer -------------------------

// genSpec describes one generated packet.
type genSpec struct {
	link    uint16
	tags    []layers.EthernetType // TPID of each VLAN tag, outermost first
	mpls    int
	pppoe   bool
	v6      bool
	v4opts  bool
	frag    int                 // 0 whole, 1 first fragment, 2 later fragment
	v6ext   []layers.IPProtocol // hop-by-hop, routing, destination options
	l4      layers.IPProtocol
	tcpOpts bool
	icmp    uint8 // ICMP type
	payload int
	pad     int // bytes after the datagram (Ethernet only)
}

func (s genSpec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "link=%d", s.link)
	for _, t := range s.tags {
		fmt.Fprintf(&b, "/vlan%#x", uint16(t))
	}
	if s.mpls > 0 {
		fmt.Fprintf(&b, "/mpls*%d", s.mpls)
	}
	if s.pppoe {
		b.WriteString("/pppoe")
	}
	if s.v6 {
		b.WriteString("/ip6")
		for _, e := range s.v6ext {
			fmt.Fprintf(&b, "+%d", e)
		}
	} else {
		b.WriteString("/ip4")
		if s.v4opts {
			b.WriteString("+opts")
		}
	}
	if s.frag > 0 {
		fmt.Fprintf(&b, "/frag%d", s.frag)
	}
	fmt.Fprintf(&b, "/proto%d/payload%d/pad%d", s.l4, s.payload, s.pad)
	return b.String()
}

var (
	genSrc4 = net.IPv4(192, 0, 2, 10).To4()
	genDst4 = net.IPv4(198, 51, 100, 7).To4()
	genSrc6 = net.ParseIP("2001:db8::1:10")
	genDst6 = net.ParseIP("2001:db8:ffff::7")
)

// genPacket serialises s. It returns the frame bytes.
func genPacket(t testing.TB, s genSpec) []byte {
	t.Helper()
	var ls []gopacket.SerializableLayer
	// What the link layer must announce.
	var first layers.EthernetType
	switch {
	case len(s.tags) > 0:
		first = s.tags[0]
	case s.mpls > 0:
		first = layers.EthernetTypeMPLSUnicast
	case s.pppoe:
		first = layers.EthernetTypePPPoESession
	case s.v6:
		first = layers.EthernetTypeIPv6
	default:
		first = layers.EthernetTypeIPv4
	}
	inner := layers.EthernetTypeIPv4
	if s.v6 {
		inner = layers.EthernetTypeIPv6
	}
	switch s.link {
	case pcap.LinkTypeEthernet:
		ls = append(ls, &layers.Ethernet{
			SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
			DstMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 2},
			EthernetType: first,
		})
	case pcap.LinkTypeLinuxSLL:
		h := make([]byte, 16)
		binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
		binary.BigEndian.PutUint16(h[4:], 6)
		copy(h[6:], []byte{0x02, 0, 0, 0, 0, 1})
		binary.BigEndian.PutUint16(h[14:], uint16(first))
		ls = append(ls, gopacket.Payload(h))
	case pcap.LinkTypeLinuxSLL2:
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], uint16(first))
		binary.BigEndian.PutUint32(h[4:], 3) // ifindex
		binary.BigEndian.PutUint16(h[8:], 1) // ARPHRD_ETHER
		h[11] = 6
		copy(h[12:], []byte{0x02, 0, 0, 0, 0, 1})
		ls = append(ls, gopacket.Payload(h))
	case pcap.LinkTypeNull:
		fam := layers.ProtocolFamilyIPv4
		if s.v6 {
			fam = layers.ProtocolFamilyIPv6FreeBSD
		}
		ls = append(ls, &layers.Loopback{Family: fam})
	case pcap.LinkTypeLoop:
		h := []byte{0, 0, 0, 2}
		if s.v6 {
			h[3] = 24
		}
		ls = append(ls, gopacket.Payload(h))
	}
	for i := range s.tags {
		next := inner
		switch {
		case i+1 < len(s.tags):
			next = s.tags[i+1]
		case s.mpls > 0:
			next = layers.EthernetTypeMPLSUnicast
		case s.pppoe:
			next = layers.EthernetTypePPPoESession
		}
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(100 + 10*i), Priority: uint8(i & 7), Type: next})
	}
	for i := 0; i < s.mpls; i++ {
		ls = append(ls, &layers.MPLS{Label: uint32(16 + i), StackBottom: i == s.mpls-1, TTL: 64})
	}
	if s.pppoe {
		ppp := layers.PPPTypeIPv4
		if s.v6 {
			ppp = layers.PPPTypeIPv6
		}
		ls = append(ls, &layers.PPPoE{Version: 1, Type: 1, Code: layers.PPPoECodeSession, SessionId: 0x1234}, &layers.PPP{PPPType: ppp})
	}
	var netLayer gopacket.NetworkLayer
	if s.v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 63, SrcIP: genSrc6, DstIP: genDst6, FlowLabel: 0x12345}
		chain := append([]layers.IPProtocol(nil), s.v6ext...)
		if s.frag > 0 {
			chain = append(chain, layers.IPProtocolIPv6Fragment)
		}
		chain = append(chain, s.l4)
		ip.NextHeader = chain[0]
		ls = append(ls, ip)
		for i, e := range s.v6ext {
			nh := chain[i+1]
			switch e {
			case layers.IPProtocolIPv6HopByHop:
				h := &layers.IPv6HopByHop{}
				h.NextHeader = nh
				// Router alert and a PadN, 8 bytes in all.
				h.Options = []*layers.IPv6HopByHopOption{{OptionType: 5, OptionData: []byte{0, 0}}, {OptionType: 1, OptionData: []byte{}}}
				ls = append(ls, h)
			case layers.IPProtocolIPv6Routing:
				// Type 0 routing header with one address, built by hand.
				h := make([]byte, 24)
				h[0], h[1], h[2], h[3] = uint8(nh), 2, 0, 1
				copy(h[8:], genDst6)
				ls = append(ls, gopacket.Payload(h))
			case layers.IPProtocolIPv6Destination:
				h := &layers.IPv6Destination{}
				h.NextHeader = nh
				h.Options = []*layers.IPv6DestinationOption{{OptionType: 0x1e, OptionData: []byte{1, 2, 3, 4}}}
				ls = append(ls, h)
			}
		}
		if s.frag > 0 {
			f := &layers.IPv6Fragment{NextHeader: s.l4, Identification: 0xdeadbeef, MoreFragments: true}
			if s.frag == 2 {
				f.FragmentOffset = 185
				f.MoreFragments = false
			}
			ls = append(ls, f)
		}
		netLayer = ip
	} else {
		ip := &layers.IPv4{Version: 4, TTL: 61, Protocol: s.l4, SrcIP: genSrc4, DstIP: genDst4, Id: 0x4242, TOS: 0x10}
		if s.v4opts {
			ip.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}} // router alert
		}
		switch s.frag {
		case 1:
			ip.Flags = layers.IPv4MoreFragments
		case 2:
			ip.FragOffset = 185
		}
		ls = append(ls, ip)
		netLayer = ip
	}
	payload := make([]byte, s.payload)
	for i := range payload {
		payload[i] = byte(i*7 + 1)
	}
	if s.frag == 2 {
		ls = append(ls, gopacket.Payload(payload))
	} else {
		switch s.l4 {
		case layers.IPProtocolTCP:
			tcp := &layers.TCP{SrcPort: 40001, DstPort: 443, Seq: 0x01020304, Ack: 0x0a0b0c0d, ACK: true, PSH: true, Window: 512}
			if s.tcpOpts {
				tcp.Options = []layers.TCPOption{
					{OptionType: layers.TCPOptionKindNop},
					{OptionType: layers.TCPOptionKindNop},
					{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 2}},
				}
			}
			if err := tcp.SetNetworkLayerForChecksum(netLayer); err != nil {
				t.Fatal(err)
			}
			ls = append(ls, tcp, gopacket.Payload(payload))
		case layers.IPProtocolUDP:
			udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
			if err := udp.SetNetworkLayerForChecksum(netLayer); err != nil {
				t.Fatal(err)
			}
			ls = append(ls, udp, gopacket.Payload(payload))
		case layers.IPProtocolSCTP:
			ls = append(ls, &layers.SCTP{SrcPort: 2905, DstPort: 2906, VerificationTag: 0x11223344}, gopacket.Payload(payload))
		case layers.IPProtocolICMPv4:
			ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(s.icmp, 0), Id: 7, Seq: 9}, gopacket.Payload(payload))
		case layers.IPProtocolICMPv6:
			icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(s.icmp, 0)}
			if err := icmp.SetNetworkLayerForChecksum(netLayer); err != nil {
				t.Fatal(err)
			}
			ls = append(ls, icmp, gopacket.Payload(append([]byte{0, 7, 0, 9}, payload...)))
		default:
			ls = append(ls, gopacket.Payload(payload))
		}
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("%v: serialize: %v", s, err)
	}
	out := append([]byte(nil), buf.Bytes()...)
	for i := 0; i < s.pad; i++ {
		out = append(out, 0xee)
	}
	return out
}

// randomSpec draws a packet shape. Only shapes gopacket also decodes are
// drawn (no 0x9100 tags, no AH): hand-written tests cover the rest.
func randomSpec(r *rand.Rand) genSpec {
	links := []uint16{pcap.LinkTypeEthernet, pcap.LinkTypeEthernet, pcap.LinkTypeEthernet,
		pcap.LinkTypeLinuxSLL, pcap.LinkTypeLinuxSLL2, pcap.LinkTypeRaw,
		pcap.LinkTypeIPv4, pcap.LinkTypeNull, pcap.LinkTypeLoop}
	s := genSpec{link: links[r.IntN(len(links))], v6: r.IntN(2) == 0}
	switch s.link {
	case pcap.LinkTypeIPv4:
		s.v6 = false
	case pcap.LinkTypeEthernet, pcap.LinkTypeLinuxSLL, pcap.LinkTypeLinuxSLL2:
		if r.IntN(2) == 0 {
			for n := 1 + r.IntN(3); n > 0; n-- {
				t := layers.EthernetTypeDot1Q
				if r.IntN(3) == 0 {
					t = layers.EthernetTypeQinQ
				}
				s.tags = append(s.tags, t)
			}
			if r.IntN(8) == 0 {
				for n := 9 + r.IntN(3); n > 0; n-- {
					s.tags = append(s.tags, layers.EthernetTypeDot1Q)
				}
			}
		}
		switch r.IntN(6) {
		case 0:
			s.mpls = 1 + r.IntN(3)
		case 1:
			s.pppoe = true
		}
		if s.link == pcap.LinkTypeEthernet && r.IntN(3) == 0 {
			s.pad = 1 + r.IntN(30)
		}
	}
	if s.v6 {
		for _, e := range []layers.IPProtocol{layers.IPProtocolIPv6HopByHop, layers.IPProtocolIPv6Routing, layers.IPProtocolIPv6Destination} {
			if r.IntN(4) == 0 {
				s.v6ext = append(s.v6ext, e)
			}
		}
	} else {
		s.v4opts = r.IntN(4) == 0
	}
	if r.IntN(5) == 0 {
		s.frag = 1 + r.IntN(2)
	}
	l4s := []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolTCP, layers.IPProtocolUDP, layers.IPProtocolUDP,
		layers.IPProtocolSCTP, layers.IPProtocolGRE}
	if s.v6 {
		l4s = append(l4s, layers.IPProtocolICMPv6)
	} else {
		l4s = append(l4s, layers.IPProtocolICMPv4)
	}
	s.l4 = l4s[r.IntN(len(l4s))]
	s.tcpOpts = r.IntN(2) == 0
	switch s.l4 {
	case layers.IPProtocolICMPv4:
		s.icmp = []uint8{0, 3, 8, 11}[r.IntN(4)]
	case layers.IPProtocolICMPv6:
		s.icmp = []uint8{1, 128, 129, 135, 136}[r.IntN(5)]
	}
	switch r.IntN(4) {
	case 0:
		s.payload = 0
	case 1:
		s.payload = 1 + r.IntN(16)
	default:
		s.payload = r.IntN(1400)
	}
	return s
}

// ---- the cross-check ------------------------------------------------------

func TestDecodeMatchesGopacket(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var dec Decoder
	var d Decoded
	n := 3000
	if testing.Short() {
		n = 500
	}
	l4Checked := 0
	for i := 0; i < n; i++ {
		s := randomSpec(r)
		data := genPacket(t, s)
		dec.Decode(data, s.link, &d)
		o := gopacketOracle(data, s.link)
		if !o.ip {
			t.Fatalf("%v: gopacket found no IP header in a generated packet", s)
		}
		if diffs := diffOracle(&d, &o); len(diffs) > 0 {
			t.Fatalf("%v: %d disagreements with gopacket:\n%s", s, len(diffs), strings.Join(diffs, "\n"))
		}
		if o.l4 {
			l4Checked++
		}
		if d.Flags&(FlagTruncated|FlagMalformed) != 0 {
			t.Fatalf("%v: got flags %#x, want neither truncated nor malformed", s, d.Flags)
		}
		// The generator's own view: the whole payload, never the padding.
		if s.frag != 2 && s.l4 != layers.IPProtocolGRE {
			want := int32(s.payload)
			if s.l4 == layers.IPProtocolICMPv6 {
				want += 4
			}
			if d.PayloadLen != want {
				t.Fatalf("%v: got PayloadLen %d, want %d", s, d.PayloadLen, want)
			}
		}
		wantVLANs := min(len(s.tags), 255)
		if int(d.NVLAN) != wantVLANs {
			t.Fatalf("%v: got NVLAN %d, want %d", s, d.NVLAN, wantVLANs)
		}
	}
	// The oracle skips what gopacket failed on; make sure that is rare.
	if l4Checked < n*2/3 {
		t.Errorf("got L4 compared with gopacket in %d of %d packets, want at least 2/3", l4Checked, n)
	}
}

// TestDecodeTruncated cuts generated packets at every length and checks that
// each cut decodes to a consistent prefix of the whole packet's decode: what
// is known agrees with the whole, FlagTruncated is set once a header is cut,
// and gopacket agrees wherever it decoded without error.
func TestDecodeTruncated(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var dec Decoder
	var whole, cut Decoded
	n := 150
	if testing.Short() {
		n = 30
	}
	for i := 0; i < n; i++ {
		s := randomSpec(r)
		s.payload = min(s.payload, 40)
		s.pad = 0
		data := genPacket(t, s)
		dec.Decode(data, s.link, &whole)
		// Where the headers end: a cut before is truncation, a cut after
		// (in the payload or in gopacket's padding to 60 bytes) is not.
		hdrEnd := int(whole.PayloadOff)
		if hdrEnd < 0 {
			hdrEnd = int(whole.L4Off) // a protocol the decoder does not know
		}
		if hdrEnd < 0 {
			// Nothing after the IP headers: they end with the datagram.
			hdrEnd = int(whole.L3Off)
			if whole.IPVer == 4 {
				hdrEnd += int(binary.BigEndian.Uint16(data[hdrEnd+2:]))
			} else {
				hdrEnd += 40 + int(binary.BigEndian.Uint16(data[hdrEnd+4:]))
			}
		}
		for c := 0; c < len(data); c++ {
			p := data[:c:c]
			dec.Decode(p, s.link, &cut)
			if diffs := prefixDiffs(&whole, &cut, c); len(diffs) > 0 {
				t.Fatalf("%v cut at %d of %d:\n%s", s, c, len(data), strings.Join(diffs, "\n"))
			}
			if c >= hdrEnd {
				cut.PayloadLen = whole.PayloadLen
				if c == hdrEnd && whole.PayloadOff < 0 {
					cut.L4Off = whole.L4Off // no byte of the unknown L4 header
				}
				if cut != whole {
					t.Fatalf("%v cut at %d of %d, after the headers: got %+v, want %+v", s, c, len(data), cut, whole)
				}
				continue
			}
			if cut.Flags&FlagTruncated == 0 {
				t.Fatalf("%v cut at %d of %d: got flags %#x, want FlagTruncated", s, c, len(data), cut.Flags)
			}
			o := gopacketOracle(p, s.link)
			if diffs := diffOracle(&cut, &o); len(diffs) > 0 {
				t.Fatalf("%v cut at %d of %d: disagreements with gopacket:\n%s", s, c, len(data), strings.Join(diffs, "\n"))
			}
		}
	}
}

// prefixDiffs checks a decode of the first c bytes against the decode of the
// whole packet.
func prefixDiffs(whole, cut *Decoded, c int) []string {
	var diffs []string
	check := func(name string, got, want any) {
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s: got %v, want %v", name, got, want))
		}
	}
	if extra := cut.Flags &^ (whole.Flags | FlagTruncated); extra != 0 {
		diffs = append(diffs, fmt.Sprintf("flags %#x not in the whole packet's %#x", extra, whole.Flags))
	}
	if cut.Flags&FlagMalformed != 0 {
		diffs = append(diffs, "a cut packet is truncated, not malformed")
	}
	if cut.Flags&(FlagIPv4|FlagIPv6) != 0 {
		check("Src", cut.Src, whole.Src)
		check("Dst", cut.Dst, whole.Dst)
		check("TTL", cut.TTL, whole.TTL)
		check("L3Off", cut.L3Off, whole.L3Off)
		if cut.IPVer == 4 || cut.Flags&FlagFragment != 0 {
			check("FragOff", cut.FragOff, whole.FragOff)
			check("FragID", cut.FragID, whole.FragID)
		}
	}
	if cut.Flags&FlagPorts != 0 {
		check("SrcPort", cut.SrcPort, whole.SrcPort)
		check("DstPort", cut.DstPort, whole.DstPort)
	}
	if cut.Flags&FlagTCP != 0 {
		check("Seq", cut.Seq, whole.Seq)
		check("TCPFlags", cut.TCPFlags, whole.TCPFlags)
	}
	if cut.L4Off >= 0 {
		check("L4Off", cut.L4Off, whole.L4Off)
	}
	if cut.PayloadOff >= 0 {
		check("PayloadOff", cut.PayloadOff, whole.PayloadOff)
		if cut.PayloadLen > whole.PayloadLen {
			diffs = append(diffs, fmt.Sprintf("PayloadLen %d > whole %d", cut.PayloadLen, whole.PayloadLen))
		}
	}
	check("NVLAN<=", cut.NVLAN <= whole.NVLAN, true)
	diffs = append(diffs, boundsDiffs(cut, c)...)
	return diffs
}

// boundsDiffs checks that every offset of d lies within n bytes of data.
func boundsDiffs(d *Decoded, n int) []string {
	var diffs []string
	in := func(name string, off int32) {
		if off < -1 || int(off) > n || (off >= 0 && int(off) == n && name != "PayloadOff") {
			diffs = append(diffs, fmt.Sprintf("%s %d outside %d bytes", name, off, n))
		}
	}
	in("L3Off", d.L3Off)
	in("L4Off", d.L4Off)
	in("PayloadOff", d.PayloadOff)
	if d.PayloadLen < 0 || (d.PayloadOff < 0 && d.PayloadLen != 0) || int(d.PayloadOff)+int(d.PayloadLen) > n {
		diffs = append(diffs, fmt.Sprintf("payload [%d,+%d) outside %d bytes", d.PayloadOff, d.PayloadLen, n))
	}
	if d.L3Off >= 0 && d.L4Off >= 0 && d.L4Off < d.L3Off {
		diffs = append(diffs, fmt.Sprintf("L4Off %d before L3Off %d", d.L4Off, d.L3Off))
	}
	if d.L4Off >= 0 && d.PayloadOff >= 0 && d.PayloadOff < d.L4Off {
		diffs = append(diffs, fmt.Sprintf("PayloadOff %d before L4Off %d", d.PayloadOff, d.L4Off))
	}
	return diffs
}

// ---- hand-built cases: what gopacket does not decode, and exact values -----

// The cases below are about exact offsets and about odd, malformed or cut
// headers, so their bytes are spelled out here rather than built with
// internal/testframe, which builds only well-formed frames. The few
// well-formed frames (udp4, and some in the address and flow key tests) use
// testframe. genPacket above stays on gopacket's serializer directly: it
// draws link types, PPPoE and IPv6 extension headers testframe does not
// build, and gopacket's decoder, not the builder, is its oracle.

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// ethHdr is an Ethernet header announcing et.
func ethHdr(et uint16) []byte {
	return cat([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1}, be16(et))
}

// ip4Hdr is a 20-byte IPv4 header (checksum left 0: the decoder ignores it)
// for a datagram of totalLen bytes.
func ip4Hdr(proto uint8, totalLen int, frag uint16) []byte {
	h := []byte{0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	binary.BigEndian.PutUint16(h[2:], uint16(totalLen))
	binary.BigEndian.PutUint16(h[6:], frag)
	return h
}

// ip6Hdr is an IPv6 header from 2001:db8::1 to 2001:db8::2.
func ip6Hdr(nh uint8, payloadLen int) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(payloadLen))
	h[6], h[7] = nh, 64
	copy(h[8:], netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(h[24:], netip.MustParseAddr("2001:db8::2").AsSlice())
	return h
}

// udpHdr is a UDP header 1000 -> 53 with the given length field.
func udpHdr(length int) []byte {
	return cat(be16(1000), be16(53), be16(uint16(length)), be16(0))
}

// tcpHdr is a TCP header 40000 -> 80 with a data offset of doff words.
func tcpHdr(doff uint8) []byte {
	h := make([]byte, 20)
	copy(h, cat(be16(40000), be16(80)))
	binary.BigEndian.PutUint32(h[4:], 1000)
	binary.BigEndian.PutUint32(h[8:], 2000)
	h[12] = doff << 4
	h[13] = 0x12 // SYN|ACK
	binary.BigEndian.PutUint16(h[14:], 8192)
	return h
}

func zeros(n int) []byte { return make([]byte, n) }

// udp4 is an untagged Ethernet IPv4/UDP frame 10.0.0.1:1000 -> 10.0.0.2:53
// (IP id 0x1234, TTL 64) with n payload bytes, padded to 60 bytes.
func udp4(n int) []byte {
	f := testframe.Frame{
		IPv4:    &testframe.IPv4{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), ID: 0x1234},
		UDP:     &testframe.UDP{SrcPort: 1000, DstPort: 53},
		Payload: zeros(n),
	}
	return f.Bytes()
}

// want lists the fields a case checks; zero-valued fields are checked too.
type want struct {
	flags                        uint32
	etherType                    uint16
	nvlan, nmpls                 uint8
	vlans                        [MaxVLAN]uint16
	ipver, proto                 uint8
	l3, l4, pay, payLen          int32
	sport, dport                 uint16
	fragID, fragOff              uint32
	icmpType, icmpCode, tcpFlags uint8
}

func TestDecodeCases(t *testing.T) {
	const (
		eth  = pcap.LinkTypeEthernet
		v4   = FlagIPv4
		v6   = FlagIPv6
		udp  = FlagUDP | FlagPorts
		tcp  = FlagTCP | FlagPorts
		none = int32(-1)
	)
	deep := ethHdr(0x8100)
	for i := 0; i < 300; i++ {
		next := uint16(0x8100)
		if i == 299 {
			next = 0x0800
		}
		deep = cat(deep, be16(uint16(i+1)), be16(next))
	}
	deep = cat(deep, ip4Hdr(17, 28, 0), udpHdr(8))
	deepVLANs := [MaxVLAN]uint16{1, 2, 3, 4, 5, 6, 7, 8}
	ah := cat(ethHdr(0x86dd), ip6Hdr(51, 24+20), []byte{6, 4, 0, 0}, zeros(20), tcpHdr(5))
	atomic := cat(ethHdr(0x86dd), ip6Hdr(44, 8+8), []byte{17, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe}, udpHdr(8))
	cases := []struct {
		name string
		lt   uint16
		data []byte
		w    want
	}{
		{"udp, Ethernet padding excluded", eth, cat(udp4(4), zeros(14)),
			want{flags: v4 | udp, etherType: 0x0800, ipver: 4, proto: 17, l3: 14, l4: 34, pay: 42, payLen: 4, sport: 1000, dport: 53, fragID: 0x1234}},
		{"0x9100 and 0x88a8 tags", eth, cat(ethHdr(0x9100), be16(0x2005), be16(0x88a8), be16(7), be16(0x8100), be16(9), be16(0x0800), ip4Hdr(17, 28, 0), udpHdr(8)),
			want{flags: FlagVLAN | v4 | udp, etherType: 0x0800, nvlan: 3, vlans: [MaxVLAN]uint16{5, 7, 9}, ipver: 4, proto: 17, l3: 26, l4: 46, pay: 54, sport: 1000, dport: 53, fragID: 0x1234}},
		{"300 tags: count saturates, IP still decoded", eth, deep,
			want{flags: FlagVLAN | v4 | udp, etherType: 0x0800, nvlan: 255, vlans: deepVLANs, ipver: 4, proto: 17, l3: 14 + 1200, l4: 14 + 1220, pay: 14 + 1228, sport: 1000, dport: 53, fragID: 0x1234}},
		{"802.3 LLC (STP)", eth, cat(ethHdr(38), []byte{0x42, 0x42, 0x03}, zeros(35)),
			want{l3: none, l4: none, pay: none}},
		{"802.3 SNAP carrying IPv4", eth, cat(ethHdr(8+28), []byte{0xaa, 0xaa, 0x03, 0, 0, 0}, be16(0x0800), ip4Hdr(17, 28, 0), udpHdr(8)),
			want{flags: v4 | udp, etherType: 0x0800, ipver: 4, proto: 17, l3: 22, l4: 42, pay: 50, sport: 1000, dport: 53, fragID: 0x1234}},
		{"FDDI with SNAP", 10, cat([]byte{0x50}, zeros(12), []byte{0xaa, 0xaa, 0x03, 0, 0, 0}, be16(0x0800), ip4Hdr(17, 28, 0), udpHdr(8)),
			want{flags: v4 | udp, etherType: 0x0800, ipver: 4, proto: 17, l3: 21, l4: 41, pay: 49, sport: 1000, dport: 53, fragID: 0x1234}},
		{"ARP", eth, cat(ethHdr(0x0806), []byte{0, 1, 8, 0, 6, 4, 0, 1}, zeros(20)),
			want{flags: FlagARP, etherType: 0x0806, l3: 14, l4: none, pay: none}},
		{"ARP cut", eth, cat(ethHdr(0x0806), []byte{0, 1, 8, 0, 6, 4, 0, 1}, zeros(10)),
			want{flags: FlagARP | FlagTruncated, etherType: 0x0806, l3: 14, l4: none, pay: none}},
		{"MPLS pseudowire (not IP)", eth, cat(ethHdr(0x8847), []byte{0, 0x10, 0x01, 64}, zeros(4), udp4(0)),
			want{flags: FlagMPLS, etherType: 0x8847, nmpls: 1, l3: none, l4: none, pay: none}},
		{"MPLS two labels, IPv6", eth, cat(ethHdr(0x8847), []byte{0, 0x10, 0x00, 64, 0, 0x20, 0x01, 64}, ip6Hdr(17, 8), udpHdr(8)),
			want{flags: FlagMPLS | v6 | udp, etherType: 0x8847, nmpls: 2, ipver: 6, proto: 17, l3: 22, l4: 62, pay: 70, sport: 1000, dport: 53}},
		{"PPPoE over QinQ", eth, cat(ethHdr(0x88a8), be16(10), be16(0x8100), be16(20), be16(0x8864), []byte{0x11, 0, 0x12, 0x34}, be16(30), be16(0x0021), ip4Hdr(17, 28, 0), udpHdr(8)),
			want{flags: FlagVLAN | v4 | udp, etherType: 0x8864, nvlan: 2, vlans: [MaxVLAN]uint16{10, 20}, ipver: 4, proto: 17, l3: 30, l4: 50, pay: 58, sport: 1000, dport: 53, fragID: 0x1234}},
		{"PPPoE length bounds the datagram", eth, cat(ethHdr(0x8864), []byte{0x11, 0, 0x12, 0x34}, be16(2+28), be16(0x0021), ip4Hdr(17, 34, 0), udpHdr(14), zeros(6)),
			want{flags: v4 | udp, etherType: 0x8864, ipver: 4, proto: 17, l3: 22, l4: 42, pay: 50, sport: 1000, dport: 53, fragID: 0x1234}},
		{"NULL, little-endian family", pcap.LinkTypeNull, cat([]byte{2, 0, 0, 0}, ip4Hdr(17, 28, 0), udpHdr(8)),
			want{flags: v4 | udp, ipver: 4, proto: 17, l3: 4, l4: 24, pay: 32, sport: 1000, dport: 53, fragID: 0x1234}},
		{"NULL, big-endian family", pcap.LinkTypeNull, cat([]byte{0, 0, 0, 2}, ip4Hdr(17, 28, 0), udpHdr(8)),
			want{flags: v4 | udp, ipver: 4, proto: 17, l3: 4, l4: 24, pay: 32, sport: 1000, dport: 53, fragID: 0x1234}},
		{"NULL, Darwin IPv6", pcap.LinkTypeNull, cat([]byte{30, 0, 0, 0}, ip6Hdr(17, 8), udpHdr(8)),
			want{flags: v6 | udp, ipver: 6, proto: 17, l3: 4, l4: 44, pay: 52, sport: 1000, dport: 53}},
		{"LOOP IPv6", pcap.LinkTypeLoop, cat([]byte{0, 0, 0, 24}, ip6Hdr(17, 8), udpHdr(8)),
			want{flags: v6 | udp, ipver: 6, proto: 17, l3: 4, l4: 44, pay: 52, sport: 1000, dport: 53}},
		{"unknown link type", 9999, udp4(4),
			want{l3: none, l4: none, pay: none}},
		{"IPv6 AH then TCP", eth, ah,
			want{flags: v6 | tcp, etherType: 0x86dd, ipver: 6, proto: 6, l3: 14, l4: 78, pay: 98, sport: 40000, dport: 80, tcpFlags: 0x12}},
		{"IPv6 ESP", eth, cat(ethHdr(0x86dd), ip6Hdr(50, 16), zeros(16)),
			want{flags: v6, etherType: 0x86dd, ipver: 6, proto: 50, l3: 14, l4: 54, pay: none}},
		{"IPv6 no next header", eth, cat(ethHdr(0x86dd), ip6Hdr(59, 0)),
			want{flags: v6, etherType: 0x86dd, ipver: 6, proto: 59, l3: 14, l4: none, pay: none}},
		{"IPv6 atomic fragment is whole", eth, atomic,
			want{flags: v6 | udp, etherType: 0x86dd, ipver: 6, proto: 17, l3: 14, l4: 62, pay: 70, sport: 1000, dport: 53, fragID: 0xcafebabe}},
		{"IPv4 later fragment", eth, cat(ethHdr(0x0800), ip4Hdr(17, 20+16, 100), zeros(16)),
			want{flags: v4 | FlagFragment, etherType: 0x0800, ipver: 4, proto: 17, l3: 14, l4: none, pay: 34, payLen: 16, fragID: 0x1234, fragOff: 800}},
		{"IPv4 first fragment", eth, cat(ethHdr(0x0800), ip4Hdr(17, 20+16, 0x2000), udpHdr(100), zeros(8)),
			want{flags: v4 | FlagFragment | FlagFirstFrag | udp, etherType: 0x0800, ipver: 4, proto: 17, l3: 14, l4: 34, pay: 42, payLen: 8, sport: 1000, dport: 53, fragID: 0x1234}},
		{"IPv4 tiny first fragment: TCP header continues", eth, cat(ethHdr(0x0800), ip4Hdr(6, 20+8, 0x2000), tcpHdr(5)[:8]),
			want{flags: v4 | FlagFragment | FlagFirstFrag | FlagPorts, etherType: 0x0800, ipver: 4, proto: 6, l3: 14, l4: 34, pay: none, sport: 40000, dport: 80, fragID: 0x1234}},
		{"IPv4 with options", eth, cat(ethHdr(0x0800), []byte{0x46}, ip4Hdr(6, 24+20, 0)[1:20], []byte{0x94, 4, 0, 0}, tcpHdr(5)),
			want{flags: v4 | tcp, etherType: 0x0800, ipver: 4, proto: 6, l3: 14, l4: 38, pay: 58, sport: 40000, dport: 80, fragID: 0x1234, tcpFlags: 0x12}},
		{"IPv4 TSO length 0", eth, cat(ethHdr(0x0800), ip4Hdr(17, 0, 0), udpHdr(0), zeros(1000)),
			want{flags: v4 | udp, etherType: 0x0800, ipver: 4, proto: 17, l3: 14, l4: 34, pay: 42, payLen: 1000, sport: 1000, dport: 53, fragID: 0x1234}},
		{"IPv4 datagram cut by snaplen in the payload", eth, cat(ethHdr(0x0800), ip4Hdr(6, 1500, 0), tcpHdr(5), zeros(10)),
			want{flags: v4 | tcp, etherType: 0x0800, ipver: 4, proto: 6, l3: 14, l4: 34, pay: 54, payLen: 10, sport: 40000, dport: 80, fragID: 0x1234, tcpFlags: 0x12}},
		{"TCP options cut", eth, cat(ethHdr(0x0800), ip4Hdr(6, 1500, 0), tcpHdr(8), zeros(4)),
			want{flags: v4 | tcp | FlagTruncated, etherType: 0x0800, ipver: 4, proto: 6, l3: 14, l4: 34, pay: none, sport: 40000, dport: 80, fragID: 0x1234, tcpFlags: 0x12}},
		{"TCP ports only", eth, cat(ethHdr(0x0800), ip4Hdr(6, 1500, 0), tcpHdr(5)[:6]),
			want{flags: v4 | FlagPorts | FlagTruncated, etherType: 0x0800, ipver: 4, proto: 6, l3: 14, l4: 34, pay: none, sport: 40000, dport: 80, fragID: 0x1234}},
		{"UDP shorter than its datagram", eth, cat(ethHdr(0x0800), ip4Hdr(17, 28+10, 0), udpHdr(8+4), zeros(10)),
			want{flags: v4 | udp, etherType: 0x0800, ipver: 4, proto: 17, l3: 14, l4: 34, pay: 42, payLen: 4, sport: 1000, dport: 53, fragID: 0x1234}},
		{"ICMP echo", eth, cat(ethHdr(0x0800), ip4Hdr(1, 28+4, 0), []byte{8, 0, 0, 0, 0, 1, 0, 2}, zeros(4)),
			want{flags: v4 | FlagICMP, etherType: 0x0800, ipver: 4, proto: 1, l3: 14, l4: 34, pay: 42, payLen: 4, fragID: 0x1234, icmpType: 8}},
		{"ICMPv6 neighbour solicitation", eth, cat(ethHdr(0x86dd), ip6Hdr(58, 24), []byte{135, 0, 0, 0}, zeros(20)),
			want{flags: v6 | FlagICMPv6, etherType: 0x86dd, ipver: 6, proto: 58, l3: 14, l4: 54, pay: 58, payLen: 20, icmpType: 135}},
		{"IPv6 jumbogram", eth, cat(ethHdr(0x86dd), ip6Hdr(0, 0), []byte{17, 0, 0xc2, 4, 0, 0, 0, 0}, udpHdr(0), zeros(100)),
			want{flags: v6 | udp, etherType: 0x86dd, ipver: 6, proto: 17, l3: 14, l4: 62, pay: 70, payLen: 100, sport: 1000, dport: 53}},
		{"raw IPv6", pcap.LinkTypeRaw, cat(ip6Hdr(17, 8), udpHdr(8)),
			want{flags: v6 | udp, ipver: 6, proto: 17, l3: 0, l4: 40, pay: 48, sport: 1000, dport: 53}},

		// Malformed headers.
		{"IPv4 IHL 4", eth, cat(ethHdr(0x0800), []byte{0x44}, ip4Hdr(17, 28, 0)[1:], udpHdr(8)),
			want{flags: FlagMalformed, etherType: 0x0800, l3: none, l4: none, pay: none}},
		{"IPv6 behind the IPv4 EtherType", eth, cat(ethHdr(0x0800), ip6Hdr(17, 8), udpHdr(8)),
			want{flags: FlagMalformed, etherType: 0x0800, l3: none, l4: none, pay: none}},
		{"IPv4 total length below IHL", eth, cat(ethHdr(0x0800), ip4Hdr(17, 12, 0), udpHdr(8)),
			want{flags: FlagMalformed, etherType: 0x0800, l3: none, l4: none, pay: none}},
		{"TCP data offset 3", eth, cat(ethHdr(0x0800), ip4Hdr(6, 40, 0), tcpHdr(3)),
			want{flags: v4 | FlagPorts | FlagMalformed, etherType: 0x0800, ipver: 4, proto: 6, l3: 14, l4: 34, pay: none, sport: 40000, dport: 80, fragID: 0x1234, tcpFlags: 0x12}},
		{"UDP length 5", eth, cat(ethHdr(0x0800), ip4Hdr(17, 28, 0), udpHdr(5)),
			want{flags: v4 | udp | FlagMalformed, etherType: 0x0800, ipver: 4, proto: 17, l3: 14, l4: 34, pay: 42, sport: 1000, dport: 53, fragID: 0x1234}},
		{"UDP longer than its datagram", eth, cat(ethHdr(0x0800), ip4Hdr(17, 28, 0), udpHdr(200)),
			want{flags: v4 | udp | FlagMalformed, etherType: 0x0800, ipver: 4, proto: 17, l3: 14, l4: 34, pay: 42, sport: 1000, dport: 53, fragID: 0x1234}},
		{"IPv4 datagram too short for TCP", eth, cat(ethHdr(0x0800), ip4Hdr(6, 20, 0), zeros(26)),
			want{flags: v4 | FlagMalformed, etherType: 0x0800, ipver: 4, proto: 6, l3: 14, l4: none, pay: none, fragID: 0x1234}},
		{"IPv6 extension header beyond its datagram", eth, cat(ethHdr(0x86dd), ip6Hdr(60, 8), []byte{17, 4}, zeros(6), zeros(32)),
			want{flags: v6 | FlagMalformed, etherType: 0x86dd, ipver: 6, proto: 60, l3: 14, l4: none, pay: none}},
	}
	var dec Decoder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d Decoded
			dec.Decode(c.data, c.lt, &d)
			got := want{d.Flags, d.EtherType, d.NVLAN, d.NMPLS, d.VLANs, d.IPVer, d.Proto, d.L3Off, d.L4Off, d.PayloadOff, d.PayloadLen,
				d.SrcPort, d.DstPort, d.FragID, d.FragOff, d.ICMPType, d.ICMPCode, d.TCPFlags}
			if got != c.w {
				t.Errorf("got  %+v\nwant %+v", got, c.w)
			}
			if diffs := boundsDiffs(&d, len(c.data)); len(diffs) > 0 {
				t.Errorf("%s", strings.Join(diffs, "; "))
			}
			if d.LinkType != c.lt {
				t.Errorf("got LinkType %d, want %d", d.LinkType, c.lt)
			}
		})
	}
}

func TestDecodeAddresses(t *testing.T) {
	var dec Decoder
	var d Decoded
	dec.Decode(udp4(0), pcap.LinkTypeEthernet, &d)
	if got, want := netip.AddrFrom16(d.Src), netip.MustParseAddr("::ffff:10.0.0.1"); got != want {
		t.Errorf("got Src %v, want %v (IPv4-mapped)", got, want)
	}
	if got, want := netip.AddrFrom16(d.Dst).Unmap(), netip.MustParseAddr("10.0.0.2"); got != want {
		t.Errorf("got Dst %v, want %v", got, want)
	}
	if d.TTL != 64 {
		t.Errorf("got TTL %d, want 64", d.TTL)
	}
	v6 := testframe.Frame{
		IPv6: &testframe.IPv6{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2")},
		UDP:  &testframe.UDP{SrcPort: 1000, DstPort: 53},
	}
	dec.Decode(v6.Bytes(), pcap.LinkTypeEthernet, &d)
	if got, want := netip.AddrFrom16(d.Dst), netip.MustParseAddr("2001:db8::2"); got != want {
		t.Errorf("got Dst %v, want %v", got, want)
	}
}

// TestDecodeReuse checks that nothing leaks from one packet into the next
// through the reused Decoded.
func TestDecodeReuse(t *testing.T) {
	var dec Decoder
	var fresh, reused Decoded
	r := rand.New(rand.NewPCG(9, 10))
	prev := genPacket(t, genSpec{link: pcap.LinkTypeEthernet, tags: []layers.EthernetType{layers.EthernetTypeDot1Q, layers.EthernetTypeDot1Q},
		mpls: 2, l4: layers.IPProtocolTCP, payload: 100})
	for i := 0; i < 200; i++ {
		s := randomSpec(r)
		data := genPacket(t, s)
		dec.Decode(prev, pcap.LinkTypeEthernet, &reused)
		dec.Decode(data, s.link, &reused)
		fresh = Decoded{}
		dec.Decode(data, s.link, &fresh)
		if fresh != reused {
			t.Fatalf("%v: decode into a used Decoded gives %+v, want %+v", s, reused, fresh)
		}
	}
}

// TestFlowKeyOfDecoded checks keys of decoded packets: both directions of a
// TCP connection and an ICMP echo share a key; VLANs come from the tags;
// non-first fragments have no ports.
func TestFlowKeyOfDecoded(t *testing.T) {
	var dec Decoder
	var d Decoded
	key := func(data []byte) (FlowKey, uint8) {
		t.Helper()
		dec.Decode(data, pcap.LinkTypeEthernet, &d)
		k, dir, ok := FlowKeyOf(&d)
		if !ok {
			t.Fatalf("got ok false for flags %#x", d.Flags)
		}
		return k, dir
	}
	fwd := genPacket(t, genSpec{link: pcap.LinkTypeEthernet, tags: []layers.EthernetType{layers.EthernetTypeQinQ, layers.EthernetTypeDot1Q}, l4: layers.IPProtocolTCP})
	kf, df := key(fwd)
	// The reply: swap MACs are irrelevant, swap addresses and ports.
	rev := append([]byte(nil), fwd...)
	ipOff := 14 + 8
	copy(rev[ipOff+12:ipOff+16], fwd[ipOff+16:ipOff+20])
	copy(rev[ipOff+16:ipOff+20], fwd[ipOff+12:ipOff+16])
	copy(rev[ipOff+20:ipOff+22], fwd[ipOff+22:ipOff+24])
	copy(rev[ipOff+22:ipOff+24], fwd[ipOff+20:ipOff+22])
	kr, dr := key(rev)
	if kf != kr || df == dr {
		t.Errorf("TCP: got keys %+v/%+v dirs %d/%d, want equal keys, opposite dirs", kf, kr, df, dr)
	}
	if kf.VLAN != 100 || kf.VLAN2 != 110 || kf.IPVer != 4 || kf.Proto != 6 {
		t.Errorf("got key %+v, want VLAN 100, VLAN2 110, IPv4, TCP", kf)
	}
	if kf.A != netip.AddrFrom4([4]byte(genSrc4)).As16() || kf.PortA != 40001 || df != DirAB {
		t.Errorf("got A %v:%d dir %d, want 192.0.2.10:40001 DirAB", netip.AddrFrom16(kf.A).Unmap(), kf.PortA, df)
	}
	if got, want := string(AppendCommunityID(nil, &kf, 0)), string(AppendCommunityID(nil, &kr, 0)); got != want {
		t.Errorf("Community-ID: got %s for the reply, want %s", want, got)
	}

	frag := testframe.Frame{
		IPv4:    &testframe.IPv4{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Protocol: 17, FragOff: 800},
		Payload: zeros(16),
	}
	kfr, _ := key(frag.Bytes())
	if kfr.PortA != 0 || kfr.PortB != 0 || kfr.Proto != 17 {
		t.Errorf("later fragment: got key %+v, want UDP without ports", kfr)
	}
}
