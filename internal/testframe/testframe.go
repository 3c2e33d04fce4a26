package testframe

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TCPFlags is the TCP flags byte (FIN is bit 0).
type TCPFlags uint8

// TCP flags.
const (
	FIN TCPFlags = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
)

// Frame describes one Ethernet frame, from the outside in. Zero values take
// the defaults given on each field. Set at most one of IPv4 and IPv6 (or
// neither, for a non-IP frame: EtherType, ARP), and at most one of TCP,
// UDP, SCTP and ICMP.
type Frame struct {
	// SrcMAC and DstMAC default to 02:00:00:00:00:01 and 02:00:00:00:00:02.
	SrcMAC, DstMAC [6]byte

	// VLANs are 802.1Q tag ids, outermost first. The outermost tag is
	// announced with TPID (0 means 0x8100; 0x88a8 or 0x9100 for QinQ), the
	// inner ones with 0x8100.
	VLANs []uint16
	TPID  uint16

	// MPLS labels, outermost first, between the tags and the IP packet.
	// The last has the bottom-of-stack bit; every TTL is 64.
	MPLS []uint32

	// EtherType announces Payload in a non-IP frame (neither IPv4, IPv6 nor
	// ARP set), e.g. 0x88cc for LLDP.
	EtherType uint16

	ARP  *ARP
	IPv4 *IPv4
	IPv6 *IPv6

	TCP  *TCP
	UDP  *UDP
	SCTP *SCTP
	ICMP *ICMP // ICMPv4 under IPv4, ICMPv6 under IPv6

	// Payload follows the innermost header.
	Payload []byte
}

// ARP is an Ethernet/IPv4 ARP message. The sender's hardware address is
// the frame's SrcMAC, the target's is zero.
type ARP struct {
	Op                 uint16 // 0 means 1 (request)
	SenderIP, TargetIP netip.Addr
}

// IPv4 is an IPv4 header. Length, IHL and checksum are computed.
type IPv4 struct {
	Src, Dst netip.Addr
	ID       uint16
	TTL      uint8 // 0 means 64
	// Protocol 0 means the one of the L4 header given (TCP, UDP, SCTP,
	// ICMP). Set it for a later fragment or a raw payload (GRE, ...).
	Protocol      uint8
	FragOff       uint16 // in bytes, a multiple of 8
	MoreFragments bool
	// Options are raw option bytes (type 0 and 1 one byte each, the others
	// type, length, data), zero-padded to a multiple of 4.
	Options []byte
}

// IPv6 is an IPv6 header, with extension headers given raw. The payload
// length is computed.
type IPv6 struct {
	Src, Dst netip.Addr
	HopLimit uint8 // 0 means 64
	// NextHeader 0 without Ext means the one of the L4 header given; set it
	// for a raw payload. With Ext it is taken as given (0 is hop-by-hop).
	NextHeader uint8
	FlowLabel  uint32
	// Ext is a chain of extension headers already encoded, between the
	// IPv6 header and the L4 header: NextHeader names the first, and the
	// last names the L4 protocol.
	Ext []byte
}

// TCP is a 20-byte TCP header; the checksum is computed.
type TCP struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            TCPFlags
	Window           uint16
	SACK             [][2]uint32 // SACK blocks [left, right) (an option, padded with NOPs)
}

// UDP is a UDP header; length and checksum are computed.
type UDP struct {
	SrcPort, DstPort uint16
}

// SCTP is SCTP's 12-byte common header (CRC32c computed); chunks, if any,
// go in Payload.
type SCTP struct {
	SrcPort, DstPort uint16
	VerificationTag  uint32
}

// ICMP is an 8-byte ICMP header: type, code, checksum (computed), then ID
// and Seq as in an echo message. Under IPv6 it is ICMPv6, laid out the same.
type ICMP struct {
	Type, Code uint8
	ID, Seq    uint16
}

var (
	defaultSrcMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	defaultDstMAC = [6]byte{0x02, 0, 0, 0, 0, 0x02}
)

// Bytes serialises f. Frames shorter than 60 bytes are zero-padded to 60,
// as gopacket's Ethernet layer does. It panics on a Frame that cannot be
// serialised (two network layers, an IPv6 address in IPv4, ...): that is a
// bug in the test that built it.
func (f *Frame) Bytes() []byte {
	b, err := f.serialize()
	if err != nil {
		panic(fmt.Sprintf("BUG: testframe: %v", err))
	}
	return b
}

func (f *Frame) serialize() ([]byte, error) {
	l4s := 0
	for _, set := range []bool{f.TCP != nil, f.UDP != nil, f.SCTP != nil, f.ICMP != nil} {
		if set {
			l4s++
		}
	}
	nets := 0
	for _, set := range []bool{f.ARP != nil, f.IPv4 != nil, f.IPv6 != nil} {
		if set {
			nets++
		}
	}
	if l4s > 1 || nets > 1 || (l4s == 1 && f.IPv4 == nil && f.IPv6 == nil) {
		return nil, fmt.Errorf("%d network and %d transport layers given", nets, l4s)
	}

	// The EtherType under the tags and labels.
	inner := layers.EthernetType(f.EtherType)
	switch {
	case f.ARP != nil:
		inner = layers.EthernetTypeARP
	case f.IPv4 != nil:
		inner = layers.EthernetTypeIPv4
	case f.IPv6 != nil:
		inner = layers.EthernetTypeIPv6
	}
	if len(f.MPLS) > 0 {
		inner = layers.EthernetTypeMPLSUnicast
	}
	first := inner
	if len(f.VLANs) > 0 {
		first = layers.EthernetType(f.TPID)
		if first == 0 {
			first = layers.EthernetTypeDot1Q
		}
	}

	src, dst := f.SrcMAC, f.DstMAC
	if src == ([6]byte{}) {
		src = defaultSrcMAC
	}
	if dst == ([6]byte{}) {
		dst = defaultDstMAC
	}
	ls := []gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: net.HardwareAddr(src[:]), DstMAC: net.HardwareAddr(dst[:]), EthernetType: first}}
	for i, v := range f.VLANs {
		next := layers.EthernetTypeDot1Q
		if i == len(f.VLANs)-1 {
			next = inner
		}
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: v, Type: next})
	}
	for i, l := range f.MPLS {
		ls = append(ls, &layers.MPLS{Label: l, StackBottom: i == len(f.MPLS)-1, TTL: 64})
	}

	var netLayer gopacket.NetworkLayer
	var l4 layers.IPProtocol
	switch {
	case f.TCP != nil:
		l4 = layers.IPProtocolTCP
	case f.UDP != nil:
		l4 = layers.IPProtocolUDP
	case f.SCTP != nil:
		l4 = layers.IPProtocolSCTP
	case f.ICMP != nil && f.IPv6 != nil:
		l4 = layers.IPProtocolICMPv6
	case f.ICMP != nil:
		l4 = layers.IPProtocolICMPv4
	}
	switch {
	case f.ARP != nil:
		op := f.ARP.Op
		if op == 0 {
			op = layers.ARPRequest
		}
		if !f.ARP.SenderIP.Is4() || !f.ARP.TargetIP.Is4() {
			return nil, fmt.Errorf("ARP addresses %v, %v: want IPv4", f.ARP.SenderIP, f.ARP.TargetIP)
		}
		spa, tpa := f.ARP.SenderIP.As4(), f.ARP.TargetIP.As4()
		ls = append(ls, &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
			SourceHwAddress: src[:], SourceProtAddress: spa[:],
			DstHwAddress: make([]byte, 6), DstProtAddress: tpa[:],
		})
	case f.IPv4 != nil:
		h := f.IPv4
		if !h.Src.Is4() || !h.Dst.Is4() {
			return nil, fmt.Errorf("IPv4 addresses %v, %v: want IPv4", h.Src, h.Dst)
		}
		ip := &layers.IPv4{Version: 4, TTL: h.TTL, Id: h.ID, Protocol: layers.IPProtocol(h.Protocol),
			SrcIP: h.Src.AsSlice(), DstIP: h.Dst.AsSlice(), FragOffset: h.FragOff / 8}
		if ip.TTL == 0 {
			ip.TTL = 64
		}
		if h.Protocol == 0 {
			ip.Protocol = l4
		}
		if h.MoreFragments {
			ip.Flags = layers.IPv4MoreFragments
		}
		opts, err := ipv4Options(h.Options)
		if err != nil {
			return nil, err
		}
		ip.Options = opts
		ls = append(ls, ip)
		netLayer = ip
	case f.IPv6 != nil:
		h := f.IPv6
		if !h.Src.Is6() || !h.Dst.Is6() {
			return nil, fmt.Errorf("IPv6 addresses %v, %v: want IPv6", h.Src, h.Dst)
		}
		ip := &layers.IPv6{Version: 6, HopLimit: h.HopLimit, NextHeader: layers.IPProtocol(h.NextHeader),
			FlowLabel: h.FlowLabel, SrcIP: h.Src.AsSlice(), DstIP: h.Dst.AsSlice()}
		if ip.HopLimit == 0 {
			ip.HopLimit = 64
		}
		if h.NextHeader == 0 && len(h.Ext) == 0 {
			ip.NextHeader = l4
		}
		ls = append(ls, ip)
		if len(h.Ext) > 0 {
			ls = append(ls, gopacket.Payload(h.Ext))
		}
		netLayer = ip
	}

	switch {
	case f.TCP != nil:
		h := f.TCP
		tcp := &layers.TCP{SrcPort: layers.TCPPort(h.SrcPort), DstPort: layers.TCPPort(h.DstPort), Seq: h.Seq, Ack: h.Ack, Window: h.Window,
			FIN: h.Flags&FIN != 0, SYN: h.Flags&SYN != 0, RST: h.Flags&RST != 0, PSH: h.Flags&PSH != 0, ACK: h.Flags&ACK != 0, URG: h.Flags&URG != 0}
		if len(h.SACK) > 0 {
			data := make([]byte, 0, 8*len(h.SACK))
			for _, b := range h.SACK {
				data = binary.BigEndian.AppendUint32(data, b[0])
				data = binary.BigEndian.AppendUint32(data, b[1])
			}
			tcp.Options = append(tcp.Options,
				layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
				layers.TCPOption{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
				layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionLength: uint8(2 + len(data)), OptionData: data})
		}
		if err := tcp.SetNetworkLayerForChecksum(netLayer); err != nil {
			return nil, err
		}
		ls = append(ls, tcp)
	case f.UDP != nil:
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.UDP.SrcPort), DstPort: layers.UDPPort(f.UDP.DstPort)}
		if err := udp.SetNetworkLayerForChecksum(netLayer); err != nil {
			return nil, err
		}
		ls = append(ls, udp)
	case f.SCTP != nil:
		ls = append(ls, &layers.SCTP{SrcPort: layers.SCTPPort(f.SCTP.SrcPort), DstPort: layers.SCTPPort(f.SCTP.DstPort), VerificationTag: f.SCTP.VerificationTag})
	case f.ICMP != nil && f.IPv6 != nil:
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(f.ICMP.Type, f.ICMP.Code)}
		if err := icmp.SetNetworkLayerForChecksum(netLayer); err != nil {
			return nil, err
		}
		// gopacket's ICMPv6 layer is the first 4 bytes; ID and Seq follow.
		rest := []byte{byte(f.ICMP.ID >> 8), byte(f.ICMP.ID), byte(f.ICMP.Seq >> 8), byte(f.ICMP.Seq)}
		ls = append(ls, icmp, gopacket.Payload(rest))
	case f.ICMP != nil:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(f.ICMP.Type, f.ICMP.Code), Id: f.ICMP.ID, Seq: f.ICMP.Seq})
	}
	if len(f.Payload) > 0 {
		ls = append(ls, gopacket.Payload(f.Payload))
	}

	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		return nil, err
	}
	return append([]byte(nil), buf.Bytes()...), nil
}

// ipv4Options parses raw option bytes into gopacket's form.
func ipv4Options(b []byte) ([]layers.IPv4Option, error) {
	var opts []layers.IPv4Option
	for len(b) > 0 {
		if b[0] <= 1 {
			opts = append(opts, layers.IPv4Option{OptionType: b[0], OptionLength: 1})
			b = b[1:]
			continue
		}
		if len(b) < 2 || b[1] < 2 || int(b[1]) > len(b) {
			return nil, fmt.Errorf("IPv4 option %#x: bad length", b[0])
		}
		n := int(b[1])
		opts = append(opts, layers.IPv4Option{OptionType: b[0], OptionLength: b[1], OptionData: b[2:n]})
		b = b[n:]
	}
	return opts, nil
}
