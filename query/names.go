package query

import "tapvault/packet"

// The names the filter language knows: protocol primitives, EtherTypes,
// IP protocols, services, and the pcap-filter keywords it rejects.

// pnames are the protocol primitives that stand alone ("tcp"). ver 0 means
// IPv4 or IPv6, as in pcap-filter.
var pnames = []struct {
	name  string
	ver   uint8
	proto uint8
}{
	{"tcp", 0, 6},
	{"udp", 0, 17},
	{"sctp", 0, 132},
	{"icmp", 4, 1},
	{"icmp6", 6, 58},
	{"igmp", 4, 2},
	{"pim", 0, 103},
	{"vrrp", 4, 112},
	{"ah", 0, 51},
	{"esp", 0, 50},
}

// etherNames are the link-layer protocol primitives; flag is the Decoded bit
// that also counts, so that raw-IP links (EtherType 0) match "ip".
var etherNames = []struct {
	name      string
	etherType uint16
	flag      uint32
}{
	{"ip", 0x0800, packet.FlagIPv4},
	{"ip6", 0x86dd, packet.FlagIPv6},
	{"arp", 0x0806, packet.FlagARP},
	{"rarp", 0x8035, 0},
}

// ipProtos are the names "proto" accepts (with or without a backslash).
var ipProtos = map[string]uint8{
	"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
	"icmp6": 58, "ospf": 89, "pim": 103, "vrrp": 112, "sctp": 132,
}

func ipProtoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	}
	panic("BUG: port protocol is not tcp, udp or sctp")
}

// services are the port names accepted, for the few services people type by
// name, with the protocol /etc/services gives them (0: tcp and udp, which
// pcap-filter then applies to tcp, udp and sctp). tcpdump reads
// /etc/services; a fixed table keeps a filter's meaning independent of the
// host it runs on. The entries follow IANA and Debian's netbase.
var services = map[string]struct {
	port  uint16
	proto uint8
}{
	"ftp-data": {20, 6}, "ftp": {21, 6}, "ssh": {22, 6}, "telnet": {23, 6},
	"smtp": {25, 6}, "domain": {53, 0}, "bootps": {67, 17}, "bootpc": {68, 17},
	"tftp": {69, 17}, "http": {80, 6}, "www": {80, 6}, "kerberos": {88, 0},
	"pop3": {110, 6}, "ntp": {123, 17}, "netbios-ns": {137, 17}, "imap": {143, 6},
	"snmp": {161, 0}, "snmp-trap": {162, 0}, "bgp": {179, 6}, "ldap": {389, 0},
	"https": {443, 0}, "syslog": {514, 17}, "ldaps": {636, 0}, "imaps": {993, 6},
	"pop3s": {995, 6}, "mysql": {3306, 6}, "postgresql": {5432, 6},
}

// unsupported are pcap-filter keywords this language does not implement,
// with the reason given to the user.
var unsupported = map[string]string{
	"gateway":    "gateway needs MAC addresses, which are not decoded",
	"broadcast":  "broadcast is not supported",
	"multicast":  "multicast is not supported",
	"less":       "less is not supported (packet lengths are not filtered)",
	"greater":    "greater is not supported (packet lengths are not filtered)",
	"len":        "len is not supported (packet lengths are not filtered)",
	"inbound":    "inbound is not supported (no capture direction is recorded)",
	"outbound":   "outbound is not supported (no capture direction is recorded)",
	"ifname":     "ifname is not supported",
	"on":         "on is not supported",
	"protochain": "protochain is not supported (extension headers are always walked; use proto)",
	"fddi":       "fddi is not supported",
	"tr":         "tr is not supported",
	"wlan":       "wlan is not supported",
	"ppp":        "ppp is not supported",
	"slip":       "slip is not supported",
	"link":       "link is not supported",
	"decnet":     "decnet is not supported",
	"iso":        "iso is not supported",
	"stp":        "stp is not supported",
	"ipx":        "ipx is not supported",
	"netbeui":    "netbeui is not supported",
	"atalk":      "atalk is not supported",
	"aarp":       "aarp is not supported",
	"lat":        "lat is not supported",
	"mopdl":      "mopdl is not supported",
	"moprc":      "moprc is not supported",
	"sca":        "sca is not supported",
	"pppoed":     "pppoed is not supported",
	"pppoes":     "pppoes is not supported (PPPoE is decoded through: filter on what it carries)",
	"geneve":     "geneve is not supported (tunnels are not entered)",
	"vxlan":      "vxlan is not supported (tunnels are not entered)",
	"llc":        "llc is not supported",
	"type":       "type is not supported",
	"subtype":    "subtype is not supported",
	"dir":        "dir is not supported",
	"addr1":      "addr1 is not supported",
	"addr2":      "addr2 is not supported",
	"addr3":      "addr3 is not supported",
	"addr4":      "addr4 is not supported",
	"ra":         "ra is not supported",
	"ta":         "ta is not supported",
	"iso8473":    "iso8473 is not supported",
	"clnp":       "clnp is not supported",
	"esis":       "esis is not supported",
	"isis":       "isis is not supported",
	"mask":       "mask must follow an IPv4 network address (net 10.0.0.0 mask 255.0.0.0)",
}
