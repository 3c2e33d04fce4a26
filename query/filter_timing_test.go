package query

import (
	"tapvault/packet"
	"testing"
)

// BenchmarkFilterMatch measures Match on typical filters over a mix of
// packets (some match, some do not), one packet per op.
func BenchmarkFilterMatch(b *testing.B) {
	pkts := []*packet.Decoded{
		pkt{proto: 6, src: "10.0.0.1", sport: 40000, dst: "192.168.1.10", dport: 80}.decoded(),
		pkt{proto: 6, src: "192.168.1.10", sport: 80, dst: "10.0.0.1", dport: 40000, vlans: []uint16{100}}.decoded(),
		pkt{proto: 17, src: "10.0.0.2", sport: 5353, dst: "8.8.8.8", dport: 53}.decoded(),
		pkt{proto: 17, src: "2001:db8::1", sport: 5353, dst: "2001:db8::53", dport: 53}.decoded(),
		pkt{arp: true}.decoded(),
		pkt{proto: 1, src: "10.0.0.1", sport: 8, dst: "8.8.8.8"}.decoded(),
		pkt{proto: 6, src: "128.232.110.120", sport: 34855, dst: "66.35.250.204", dport: 80}.decoded(),
		pkt{proto: 6, src: "66.35.250.204", sport: 80, dst: "128.232.110.120", dport: 34855}.decoded(),
	}
	for _, bc := range []struct{ name, expr string }{
		{"host", "host 10.0.0.1"},
		{"tcp_port", "tcp port 80"},
		{"host_and_port", "host 192.168.1.10 and tcp dst port 80"},
		{"net_or_not", "net 10.0.0.0/8 and not port 22 or vlan 100"},
		{"inherit4", "host 10.0.0.1 or 10.0.0.2 or 8.8.8.8 or 2001:db8::1"},
		{"flow", "flow 10.0.0.1:40000 <> 192.168.1.10:80"},
		{"community_id", "community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
	} {
		f := MustParseFilter(bc.expr)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for i := 0; b.Loop(); i++ {
				if f.Match(pkts[i%len(pkts)]) {
					n++
				}
			}
			if n == 0 {
				b.Fatalf("%q matched nothing", bc.expr)
			}
		})
	}
}

// BenchmarkParseFilter measures parsing, which happens once per query.
func BenchmarkParseFilter(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFilter("tcp and (host 10.0.0.1 or 10.0.0.2) and not dst port 22 and vlan 100"); err != nil {
			b.Fatal(err)
		}
	}
}
