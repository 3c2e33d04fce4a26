package query

import (
	"errors"
	"net/netip"
	"strings"
	"tapvault/packet"
	"testing"
)

// pkt builds a Decoded by hand, as the decoder would fill it.
type pkt struct {
	proto      uint8 // 6, 17, 132, 1, 58, ... ; 0 with arp
	src, dst   string
	sport      uint16
	dport      uint16
	vlans      []uint16
	mpls       int
	arp        bool
	nextFrag   bool // non-first fragment: no ports
	firstFrag  bool
	etherType  uint16 // overrides the default
	noIPHeader bool   // EtherType says IP but the header did not decode
}

func (p pkt) decoded() *packet.Decoded {
	d := &packet.Decoded{L3Off: -1, L4Off: -1, PayloadOff: -1}
	for _, v := range p.vlans {
		if d.NVLAN < packet.MaxVLAN {
			d.VLANs[d.NVLAN] = v
		}
		d.NVLAN++
		d.Flags |= packet.FlagVLAN
	}
	if p.mpls > 0 {
		d.NMPLS = uint8(p.mpls)
		d.Flags |= packet.FlagMPLS
	}
	if p.arp {
		d.Flags |= packet.FlagARP
		d.EtherType = 0x0806
		return d
	}
	if p.src == "" {
		d.EtherType = p.etherType
		return d
	}
	s, t := netip.MustParseAddr(p.src), netip.MustParseAddr(p.dst)
	if s.Is4() {
		d.EtherType = 0x0800
		if !p.noIPHeader {
			d.Flags |= packet.FlagIPv4
			d.IPVer = 4
		}
	} else {
		d.EtherType = 0x86dd
		d.Flags |= packet.FlagIPv6
		d.IPVer = 6
	}
	if p.etherType != 0 {
		d.EtherType = p.etherType
	}
	if p.noIPHeader {
		return d
	}
	d.Src, d.Dst = s.As16(), t.As16()
	d.Proto = p.proto
	if p.nextFrag {
		d.Flags |= packet.FlagFragment
		d.FragOff = 1480
		return d
	}
	if p.firstFrag {
		d.Flags |= packet.FlagFragment | packet.FlagFirstFrag
	}
	switch p.proto {
	case 6, 17, 132:
		d.SrcPort, d.DstPort = p.sport, p.dport
		d.Flags |= packet.FlagPorts
		d.Flags |= map[uint8]uint32{6: packet.FlagTCP, 17: packet.FlagUDP, 132: packet.FlagSCTP}[p.proto]
	case 1:
		d.Flags |= packet.FlagICMP
		d.ICMPType, d.ICMPCode = uint8(p.sport), uint8(p.dport)
	case 58:
		d.Flags |= packet.FlagICMPv6
		d.ICMPType, d.ICMPCode = uint8(p.sport), uint8(p.dport)
	}
	return d
}

func TestFilterString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"   \t ", ""},
		{"host 1.2.3.4", "host 1.2.3.4"},
		{"HOST 1.2.3.4", "host 1.2.3.4"},
		{"src host 1.2.3.4", "src host 1.2.3.4"},
		{"dst host 2001:db8::1", "dst host 2001:db8::1"},
		{"src or dst host 1.2.3.4", "host 1.2.3.4"},
		{"dst or src host 1.2.3.4", "host 1.2.3.4"},
		{"src and dst host 1.2.3.4", "src and dst host 1.2.3.4"},
		{"ip host 1.2.3.4", "host 1.2.3.4"},
		{"ip6 src host ::1", "src host ::1"},
		{"src 1.2.3.4", "src host 1.2.3.4"},
		{"net 10.0.0.0/8", "net 10.0.0.0/8"},
		{"net 10", "net 10.0.0.0/8"},
		{"net 10.1", "net 10.1.0.0/16"},
		{"net 192.168.1", "net 192.168.1.0/24"},
		{"net 10.1.2.3", "net 10.1.2.3/32"},
		{"net 172.16.0.0 mask 255.240.0.0", "net 172.16.0.0/12"},
		{"dst net 2001:db8::/32", "dst net 2001:db8::/32"},
		{"port 80", "port 80"},
		{"port http", "tcp port 80"},
		{"tcp port http", "tcp port 80"},
		{"port domain", "port 53"},
		{"udp port domain", "udp port 53"},
		{"port 80 or https", "port 80 or port 443"},
		{"port 0x50", "port 80"},
		{"tcp port 80", "tcp port 80"},
		{"udp src port 53", "udp src port 53"},
		{"sctp dst port 9", "sctp dst port 9"},
		{"portrange 1-1024", "portrange 1-1024"},
		{"portrange 1024-1", "portrange 1-1024"},
		{"portrange 80-80", "port 80"},
		{"tcp dst portrange 8000-8080", "tcp dst portrange 8000-8080"},
		{"tcp", "tcp"},
		{"udp", "udp"},
		{"icmp", "icmp"},
		{"icmp6", "icmp6"},
		{"sctp", "sctp"},
		{"ip", "ip"},
		{"ip6", "ip6"},
		{"arp", "arp"},
		{"rarp", "rarp"},
		{"proto 6", "tcp"},
		{"proto \\tcp", "tcp"},
		{"proto tcp", "tcp"},
		{"ip proto 6", "ip proto 6"},
		{"ip proto 1", "icmp"},
		{"ip6 proto 58", "icmp6"},
		{"ip6 proto 17", "ip6 proto 17"},
		{"proto 47", "proto 47"},
		{"ip proto \\gre", "ip proto 47"},
		{"ether proto 0x0800", "ip"},
		{"ether proto \\arp", "arp"},
		{"ether proto 0x88cc", "ether proto 0x88cc"},
		{"vlan", "vlan"},
		{"vlan 100", "vlan 100"},
		{"vlan 100 or 200", "vlan 100 or vlan 200"},
		{"mpls", "mpls"},
		// Qualifier inheritance.
		{"host 1.1.1.1 or 2.2.2.2", "host 1.1.1.1 or host 2.2.2.2"},
		{"port 80 or 443", "port 80 or port 443"},
		{"tcp dst port 80 or 443 or 8080", "tcp dst port 80 or tcp dst port 443 or tcp dst port 8080"},
		{"host 1.1.1.1 and not 2.2.2.2", "host 1.1.1.1 and not host 2.2.2.2"},
		{"host (1.1.1.1 or 2.2.2.2)", "host 1.1.1.1 or host 2.2.2.2"},
		{"src host 1.1.1.1 or 2.2.2.2", "src host 1.1.1.1 or src host 2.2.2.2"},
		{"host 1.1.1.1 or (2.2.2.2 and port 80)", "host 1.1.1.1 or (host 2.2.2.2 and port 80)"},
		{"port 80 or (host 1.1.1.1) or 443", "port 80 or host 1.1.1.1 or port 443"},
		{"proto 6 or 17", "tcp or udp"},
		// Operators: and/or have equal precedence, left to right.
		{"tcp and port 80", "tcp and port 80"},
		{"tcp && port 80", "tcp and port 80"},
		{"tcp || udp", "tcp or udp"},
		{"! tcp", "not tcp"},
		{"!tcp", "not tcp"},
		{"not not tcp", "not not tcp"},
		{"tcp or udp and port 53", "(tcp or udp) and port 53"},
		{"tcp and udp or icmp", "(tcp and udp) or icmp"},
		{"tcp or (udp and port 53)", "tcp or (udp and port 53)"},
		{"(tcp or udp) and (port 53 or port 80)", "(tcp or udp) and (port 53 or port 80)"},
		{"tcp and (udp and icmp)", "tcp and udp and icmp"},
		{"not (tcp or udp)", "not (tcp or udp)"},
		{"not host 1.1.1.1 and port 80", "not host 1.1.1.1 and port 80"},
		{"((tcp))", "tcp"},
		// Flows and Community-IDs.
		{"flow 10.0.0.1:1234 <> 10.0.0.2:80", "flow 10.0.0.1:1234 <> 10.0.0.2:80"},
		{"tcp flow 10.0.0.1:1234<>10.0.0.2:80", "tcp flow 10.0.0.1:1234 <> 10.0.0.2:80"},
		{"flow [2001:db8::1]:5353 <> [::1]:53", "flow [2001:db8::1]:5353 <> [::1]:53"},
		{"flow 10.0.0.1 <> 10.0.0.2", "flow 10.0.0.1 <> 10.0.0.2"},
		{"flow [::1] <> ::2", "flow ::1 <> ::2"},
		{"community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
		{"1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
		{"host 1.1.1.1 and 1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "host 1.1.1.1 and community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
	} {
		f, err := ParseFilter(tc.in)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", tc.in, err)
			continue
		}
		if got := f.String(); got != tc.want {
			t.Errorf("ParseFilter(%q).String() = %q, want %q", tc.in, got, tc.want)
			continue
		}
		g, err := ParseFilter(f.String())
		if err != nil {
			t.Errorf("re-parse %q: %v", f.String(), err)
			continue
		}
		if g.String() != f.String() {
			t.Errorf("re-parse of %q gives %q", f.String(), g.String())
		}
		if got, want := f.MatchAll(), strings.TrimSpace(tc.in) == ""; got != want {
			t.Errorf("ParseFilter(%q).MatchAll() = %v, want %v", tc.in, got, want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	for _, tc := range []struct {
		in       string
		pos, len int
		msg      string // substring of Msg
	}{
		{"hots 1.2.3.4", 0, 4, `unknown primitive "hots"`},
		{"host", 4, 1, "unexpected end of filter, expected an IP address"},
		{"host 1.2.3", 5, 5, "invalid address"},
		{"host example.com", 5, 11, "invalid address"},
		{"host foo", 5, 3, "host names are not resolved"},
		{"host 1.1.1.1 or hots 2.2.2.2", 16, 4, "neither an IP address"},
		{"host 10.0.0.0/8", 5, 10, "is a network: write net before it"},
		{"src 10.0.0.0/8", 4, 10, "is a network: write net before it"},
		{"src 10.0.0.0 mask 255.0.0.0", 13, 4, "mask applies to net only"},
		{"net 10.1.2.3/8", 4, 10, "non-network bits set in 10.1.2.3/8 (did you mean 10.0.0.0/8?)"},
		{"net 10.0.0.0 mask 255.0.255.0", 18, 11, "not contiguous"},
		{"port 70000", 5, 5, "out of range"},
		{"port 080", 5, 3, "leading zero"},
		{"port foo", 5, 3, `invalid port "foo"`},
		{"udp port http", 9, 4, "port http is tcp only"},
		{"portrange http-https", 10, 10, "invalid port"},
		{"portrange 1-", 10, 2, "invalid port range"},
		{"tcp host 1.2.3.4", 0, 3, "tcp cannot qualify host"},
		{"ip port 80", 0, 2, "ip cannot qualify port"},
		{"ip6 host 1.2.3.4", 9, 7, "ip6 cannot qualify an IPv4 address"},
		{"arp host 1.2.3.4", 0, 3, "arp addresses are not decoded"},
		{"ether host 00:11:22:33:44:55", 0, 5, "MAC addresses are not decoded"},
		{"ether", 0, 5, "ether must be followed by proto"},
		{"tcp and", 7, 1, "unexpected end of filter, expected a primitive"},
		{"(tcp", 0, 1, "unbalanced (: missing )"},
		{"tcp)", 3, 1, "unbalanced )"},
		{"tcp udp", 4, 3, `expected and, or or the end of the filter, got "udp"`},
		{"tcp & udp", 4, 1, `unexpected '&' (did you mean "&&"?)`},
		{"tcp[13] & 2 != 0", 0, 7, "packet data accessors (tcp[13]) are not supported"},
		{"1.2.3.4", 0, 7, `"1.2.3.4" needs a qualifier`},
		{"port 80 or 1.2.3.4", 11, 7, `invalid port "1.2.3.4"`},
		{"tcp or 80", 7, 2, `"80" needs a qualifier`},
		{"greater 100", 0, 7, "greater is not supported"},
		{"gateway 1.2.3.4", 0, 7, "gateway needs MAC addresses"},
		{"mpls 100", 5, 3, "mpls labels are not decoded"},
		{"vlan 5000", 5, 4, "out of range"},
		{"proto 300", 6, 3, "invalid protocol"},
		{"src proto 6", 10, 1, "src/dst cannot qualify proto"},
		{"flow 10.0.0.1:1 10.0.0.2:2", 16, 10, "expected <> between the flow's endpoints"},
		{"flow 10.0.0.1:1 <> [::1]:2", 19, 7, "different IP versions"},
		{"flow 10.0.0.1:99999 <> 10.0.0.2:2", 5, 14, "invalid flow endpoint"},
		{"community-id 1:abc", 13, 5, "Community-ID v1 string"},
		{"host fe80::1%eth0", 5, 12, "zone"},
		{"host 1.1.1.1 or port", 20, 1, "expected a port number"},
		{"host tcp", 5, 3, `expected an IP address, got "tcp"`},
		{strings.Repeat("(", 201) + "tcp" + strings.Repeat(")", 201), 200, 1, "nested more than 200 deep"},
		{strings.Repeat("not ", 201) + "tcp", 800, 3, "nested more than 200 deep"},
		{"host " + strings.Repeat("not ", 201) + "1.1.1.1", 805, 3, "nested more than 200 deep"},
	} {
		_, err := ParseFilter(tc.in)
		var fe *FilterError
		if !errors.As(err, &fe) {
			t.Errorf("ParseFilter(%q): got error %v, want a *FilterError", tc.in, err)
			continue
		}
		if fe.Pos != tc.pos || fe.Len != tc.len || !strings.Contains(fe.Msg, tc.msg) || fe.Expr != tc.in {
			t.Errorf("ParseFilter(%q): got Pos %d Len %d Msg %q, want Pos %d Len %d Msg containing %q",
				tc.in, fe.Pos, fe.Len, fe.Msg, tc.pos, tc.len, tc.msg)
		}
	}
}

func TestFilterErrorRender(t *testing.T) {
	_, err := ParseFilter("tcp and hots 1.2.3.4")
	want := "filter: unknown primitive \"hots\" at column 9\n" +
		"  tcp and hots 1.2.3.4\n" +
		"          ^^^^"
	if err == nil || err.Error() != want {
		t.Fatalf("got error\n%v\nwant\n%s", err, want)
	}
	// Tabs are kept in the caret line so that it lines up; columns count
	// runes, not bytes.
	_, err = ParseFilter("\tπ")
	want = "filter: unknown primitive \"π\" at column 2\n  \tπ\n  \t^"
	if err == nil || err.Error() != want {
		t.Fatalf("got error\n%q\nwant\n%q", err, want)
	}
	// At the end of the expression the caret sits just past it.
	_, err = ParseFilter("port")
	want = "filter: unexpected end of filter, expected a port number at column 5\n  port\n      ^"
	if err == nil || err.Error() != want {
		t.Fatalf("got error\n%q\nwant\n%q", err, want)
	}
}

func TestFilterMatch(t *testing.T) {
	web := pkt{proto: 6, src: "10.0.0.1", sport: 40000, dst: "192.168.1.10", dport: 80}
	webBack := pkt{proto: 6, src: "192.168.1.10", sport: 80, dst: "10.0.0.1", dport: 40000}
	dns := pkt{proto: 17, src: "10.0.0.2", sport: 5353, dst: "8.8.8.8", dport: 53}
	dns6 := pkt{proto: 17, src: "2001:db8::1", sport: 5353, dst: "2001:db8::53", dport: 53}
	ping := pkt{proto: 1, src: "10.0.0.1", sport: 8, dst: "8.8.8.8"}
	ping6 := pkt{proto: 58, src: "2001:db8::1", sport: 128, dst: "2001:db8::2"}
	sctp := pkt{proto: 132, src: "10.0.0.3", sport: 2905, dst: "10.0.0.4", dport: 2905}
	arp := pkt{arp: true}
	frag1 := pkt{proto: 17, src: "10.0.0.2", sport: 5353, dst: "8.8.8.8", dport: 53, firstFrag: true}
	frag2 := pkt{proto: 17, src: "10.0.0.2", dst: "8.8.8.8", nextFrag: true}
	tagged := web
	tagged.vlans = []uint16{100, 200}
	mpls := dns
	mpls.mpls = 2
	mpls.etherType = 0x8847
	deepTag := web
	deepTag.vlans = []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9} // 9 tags: the 9th is not kept
	badIP := pkt{src: "10.0.0.9", dst: "10.0.0.8", noIPHeader: true}
	mapped6 := pkt{proto: 6, src: "::ffff:10.0.0.1", sport: 1, dst: "2001:db8::1", dport: 80}
	lldp := pkt{etherType: 0x88cc}

	for _, tc := range []struct {
		filter string
		yes    []pkt
		no     []pkt
	}{
		{"host 10.0.0.1", []pkt{web, webBack, ping, tagged}, []pkt{dns, arp, dns6, mapped6, badIP}},
		{"src host 10.0.0.1", []pkt{web, ping}, []pkt{webBack}},
		{"dst host 10.0.0.1", []pkt{webBack}, []pkt{web}},
		{"src and dst host 10.0.0.3", nil, []pkt{sctp}},
		{"host 2001:db8::1", []pkt{dns6, ping6, mapped6}, []pkt{dns}},
		{"host ::ffff:10.0.0.1", []pkt{mapped6}, []pkt{web}},
		{"net 10.0.0.0/8", []pkt{web, webBack, dns, sctp, frag2, tagged}, []pkt{dns6, arp}},
		{"src net 10.0.0.0/31", []pkt{web, ping}, []pkt{webBack, dns, sctp}},
		{"src and dst net 10.0.0.0/24", []pkt{sctp}, []pkt{web, dns}},
		{"net 2001:db8::/126", []pkt{dns6, ping6}, []pkt{web}},
		{"net 0.0.0.0/0", []pkt{web, dns}, []pkt{dns6, arp}},
		{"net ::/0", []pkt{dns6, mapped6}, []pkt{web}},
		{"port 53", []pkt{dns, dns6, frag1, mpls}, []pkt{web, frag2, ping}},
		{"udp port 53", []pkt{dns, dns6}, []pkt{sctp}},
		{"tcp port 53", nil, []pkt{dns}},
		{"src port 80", []pkt{webBack}, []pkt{web}},
		{"dst port 80", []pkt{web}, []pkt{webBack}},
		{"src and dst port 2905", []pkt{sctp}, []pkt{web}},
		{"portrange 50-60", []pkt{dns, dns6}, []pkt{web, sctp}},
		{"portrange 0-65535", []pkt{web, dns, sctp}, []pkt{ping, frag2, arp}},
		{"tcp dst portrange 1-1023", []pkt{web}, []pkt{webBack, dns}},
		{"tcp", []pkt{web, tagged, mapped6}, []pkt{dns, ping, arp}},
		{"udp", []pkt{dns, dns6, frag1, frag2, mpls}, []pkt{web}},
		{"icmp", []pkt{ping}, []pkt{ping6, web}},
		{"icmp6", []pkt{ping6}, []pkt{ping}},
		{"sctp", []pkt{sctp}, []pkt{web}},
		{"ip", []pkt{web, dns, badIP, mpls, tagged}, []pkt{dns6, arp, lldp}},
		{"ip6", []pkt{dns6, ping6}, []pkt{web, arp}},
		{"arp", []pkt{arp}, []pkt{web}},
		{"ether proto 0x88cc", []pkt{lldp}, []pkt{web, arp}},
		{"ip proto 17", []pkt{dns, frag2}, []pkt{dns6, web}},
		{"ip6 proto 17", []pkt{dns6}, []pkt{dns}},
		{"proto 17", []pkt{dns, dns6}, []pkt{web}},
		{"vlan", []pkt{tagged, deepTag}, []pkt{web}},
		{"vlan 200", []pkt{tagged}, []pkt{web, deepTag}},
		{"vlan 100 and vlan 200", []pkt{tagged}, nil},
		{"vlan 8", []pkt{deepTag}, nil},
		{"vlan 9", nil, []pkt{deepTag}},
		{"mpls", []pkt{mpls}, []pkt{dns}},
		{"mpls and udp port 53 and host 8.8.8.8", []pkt{mpls}, nil},
		{"vlan 100 and host 192.168.1.10 and tcp port 80", []pkt{tagged}, []pkt{web}},
		{"not tcp", []pkt{dns, arp}, []pkt{web}},
		{"tcp or udp and port 53", []pkt{dns}, []pkt{web, sctp}},
		{"tcp or (udp and port 53)", []pkt{web, dns}, []pkt{sctp}},
		{"host 10.0.0.1 or 8.8.8.8", []pkt{web, dns, ping}, []pkt{sctp}},
		{"host 10.0.0.1 and not 8.8.8.8", []pkt{web}, []pkt{ping}},
		{"port 80 or 53", []pkt{web, dns}, []pkt{sctp}},
		{"flow 10.0.0.1:40000 <> 192.168.1.10:80", []pkt{web, webBack, tagged}, []pkt{dns, ping}},
		{"udp flow 10.0.0.1:40000 <> 192.168.1.10:80", nil, []pkt{web}},
		{"flow 192.168.1.10:80 <> 10.0.0.1:40000", []pkt{web, webBack}, nil},
		{"flow 10.0.0.1:40001 <> 192.168.1.10:80", nil, []pkt{web}},
		{"flow 10.0.0.1 <> 8.8.8.8", []pkt{ping}, []pkt{web, dns}},
		{"flow 8.8.8.8:53 <> 10.0.0.2", []pkt{dns, frag1}, []pkt{frag2, ping}},
		{"flow [2001:db8::53]:53 <> [2001:db8::1]:5353", []pkt{dns6}, []pkt{dns}},
		{"community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg=", []pkt{
			{proto: 6, src: "128.232.110.120", sport: 34855, dst: "66.35.250.204", dport: 80},
			{proto: 6, src: "66.35.250.204", sport: 80, dst: "128.232.110.120", dport: 34855},
			{proto: 6, src: "66.35.250.204", sport: 80, dst: "128.232.110.120", dport: 34855, vlans: []uint16{7}},
		}, []pkt{web, arp, {proto: 17, src: "128.232.110.120", sport: 34855, dst: "66.35.250.204", dport: 80}}},
		{"1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", []pkt{
			{proto: 6, src: "2001:470:e5bf:dead:4957:2174:e82c:4887", sport: 63943, dst: "2607:f8b0:400c:c03::1a", dport: 25},
		}, []pkt{dns6}},
	} {
		f, err := ParseFilter(tc.filter)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", tc.filter, err)
			continue
		}
		for i, p := range tc.yes {
			if !f.Match(p.decoded()) {
				t.Errorf("%q: yes[%d] %+v: got no match, want a match", tc.filter, i, p)
			}
		}
		for i, p := range tc.no {
			if f.Match(p.decoded()) {
				t.Errorf("%q: no[%d] %+v: got a match, want none", tc.filter, i, p)
			}
		}
	}
}

func TestFilterMatchAllEmpty(t *testing.T) {
	f := MustParseFilter("")
	for _, p := range []pkt{{arp: true}, {}, {proto: 6, src: "1.1.1.1", dst: "2.2.2.2"}} {
		if !f.Match(p.decoded()) {
			t.Errorf("empty filter: got no match for %+v, want a match", p)
		}
	}
	if got := f.Plan().Op; got != PlanAll {
		t.Errorf("empty filter plan: got %v, want all", got)
	}
}

func TestFilterMatchAllocs(t *testing.T) {
	d := pkt{proto: 6, src: "10.0.0.1", sport: 40000, dst: "192.168.1.10", dport: 80, vlans: []uint16{5}}.decoded()
	for _, expr := range []string{
		"host 10.0.0.1 and tcp port 80",
		"net 192.168.0.0/16 and not port 22 or vlan 5",
		"flow 10.0.0.1:40000 <> 192.168.1.10:80",
		"community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
	} {
		f := MustParseFilter(expr)
		if n := testing.AllocsPerRun(100, func() { f.Match(d) }); n != 0 {
			t.Errorf("%q: got %v allocs per Match, want 0", expr, n)
		}
	}
}

func TestFilterClone(t *testing.T) {
	f := MustParseFilter("community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg= or tcp")
	g := f.Clone()
	if g.String() != f.String() {
		t.Fatalf("clone: got %q, want %q", g.String(), f.String())
	}
	if f.root.kids[0].comm == g.root.kids[0].comm {
		t.Fatalf("clone shares the community-id cache")
	}
	d := pkt{proto: 6, src: "66.35.250.204", sport: 80, dst: "128.232.110.120", dport: 34855}.decoded()
	if !g.Match(d) || !f.Match(d) {
		t.Fatalf("got no match, want a match")
	}
	// The cache must not answer for a different flow.
	d.Proto = 17
	d.Flags = packet.FlagIPv4 | packet.FlagPorts | packet.FlagUDP
	if f.root.kids[0].match(d) {
		t.Fatalf("community-id: got a match for the UDP flow, want none")
	}
}
