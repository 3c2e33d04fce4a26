package pcap

// Link types, as pcap LINKTYPE_* numbers. They travel with every packet so
// that imported files of any link type are stored and exported faithfully.
const (
	LinkTypeNull      uint16 = 0   // BSD loopback, host-order 4-byte family
	LinkTypeEthernet  uint16 = 1   // Ethernet II / 802.3
	LinkTypeRaw       uint16 = 101 // raw IPv4 or IPv6, version from the first nibble
	LinkTypeLoop      uint16 = 108 // OpenBSD loopback, network-order family
	LinkTypeLinuxSLL  uint16 = 113 // Linux cooked v1
	LinkTypeIPv4      uint16 = 228 // raw IPv4
	LinkTypeIPv6      uint16 = 229 // raw IPv6
	LinkTypeLinuxSLL2 uint16 = 276 // Linux cooked v2
)
