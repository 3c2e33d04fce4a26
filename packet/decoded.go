package packet

// MaxVLAN is how many VLAN tags Decoded keeps. Deeper stacks are still
// walked (the decoder never gives up on a deep stack) and counted in NVLAN,
// but only the outermost MaxVLAN ids are kept.
const MaxVLAN = 8

// Flag bits of Decoded.Flags.
const (
	FlagVLAN      uint32 = 1 << iota // at least one 802.1Q/802.1ad tag
	FlagMPLS                         // at least one MPLS label
	FlagARP                          // ARP (or RARP) payload
	FlagIPv4                         // an IPv4 header was decoded
	FlagIPv6                         // an IPv6 header was decoded
	FlagFragment                     // IP fragment (any fragment, first or not)
	FlagFirstFrag                    // first fragment (offset 0, more fragments set)
	FlagTCP                          // L4 is TCP and its header decoded
	FlagUDP                          // L4 is UDP and its header decoded
	FlagICMP                         // ICMPv4
	FlagICMPv6                       // ICMPv6
	FlagSCTP                         // SCTP common header decoded
	FlagTruncated                    // captured bytes end inside a header
	FlagMalformed                    // a header is inconsistent (bad length, version, ...)
	FlagPorts                        // SrcPort/DstPort are meaningful (TCP, UDP, SCTP first fragment or whole)
)

// Decoded is what the decoder learnt about one packet. It holds no pointers
// into the packet: offsets index into the packet data the decoder was given.
// A Decoded is reused for every packet, so decoding allocates nothing.
type Decoded struct {
	Flags     uint32
	LinkType  uint16
	EtherType uint16 // innermost EtherType seen (0 for raw IP / loopback links)

	NVLAN uint8           // number of VLAN tags walked (may exceed MaxVLAN)
	NMPLS uint8           // number of MPLS labels walked
	VLANs [MaxVLAN]uint16 // VLAN ids, outermost first

	IPVer uint8    // 4, 6 or 0
	Src   [16]byte // IPv4 addresses are IPv4-mapped (::ffff:a.b.c.d), so netip.AddrFrom16(x).Unmap() gives them back
	Dst   [16]byte
	Proto uint8 // IP protocol of the L4 header (after IPv6 extension headers)
	TTL   uint8 // IPv4 TTL or IPv6 hop limit

	SrcPort, DstPort uint16 // TCP/UDP/SCTP ports when FlagPorts is set
	ICMPType         uint8
	ICMPCode         uint8

	TCPFlags uint8 // FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40 CWR=0x80
	Seq, Ack uint32
	Window   uint16

	FragID  uint32 // IPv4 id (16 bits) or IPv6 fragment identification
	FragOff uint32 // fragment offset in bytes

	L3Off      int32 // offset of the IP (or ARP) header, -1 if none
	L4Off      int32 // offset of the L4 header, -1 if none
	PayloadOff int32 // offset of the L4 payload, -1 if none
	PayloadLen int32 // L4 payload bytes actually captured
}

// Has reports whether all bits of f are set.
func (d *Decoded) Has(f uint32) bool { return d.Flags&f == f }

// HasVLAN reports whether id appears anywhere in the kept VLAN stack.
func (d *Decoded) HasVLAN(id uint16) bool {
	n := int(d.NVLAN)
	if n > MaxVLAN {
		n = MaxVLAN
	}
	for i := 0; i < n; i++ {
		if d.VLANs[i] == id {
			return true
		}
	}
	return false
}
