package query

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"tapvault/packet"
	"testing"
)

func TestPlan(t *testing.T) {
	for _, tc := range []struct{ filter, want string }{
		{"", "all"},
		{"host 1.1.1.1", "host 1.1.1.1"},
		{"src host 2001:db8::1", "host 2001:db8::1"},
		{"dst net 10.0.0.0/8", "net 10.0.0.0/8"},
		{"port 80", "port */80"},
		{"tcp port 80", "port tcp/80"},
		{"udp src port 53", "port udp/53"},
		{"sctp portrange 1-100", "portrange sctp/1-100"},
		{"portrange 1000-2000", "portrange */1000-2000"},
		{"vlan 10", "vlan 10"},
		{"vlan", "all"},
		{"arp", "all"},
		{"icmp", "all"},
		{"tcp", "all"},
		{"mpls", "all"},
		{"not host 1.1.1.1", "all"},
		{"not not host 1.1.1.1", "all"},
		{"community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "all"},
		{"tcp and host 1.1.1.1", "host 1.1.1.1"},
		{"host 1.1.1.1 and port 80", "and(host 1.1.1.1, port */80)"},
		{"host 1.1.1.1 and (host 2.2.2.2 and port 80)", "and(host 1.1.1.1, host 2.2.2.2, port */80)"},
		{"host 1.1.1.1 and (tcp and port 80)", "and(host 1.1.1.1, port */80)"},
		{"host 1.1.1.1 or 2.2.2.2", "or(host 1.1.1.1, host 2.2.2.2)"},
		{"host 1.1.1.1 or (port 1 or port 2)", "or(host 1.1.1.1, port */1, port */2)"},
		{"host 1.1.1.1 or arp", "all"},
		{"host 1.1.1.1 or not port 80", "all"},
		{"(host 1.1.1.1 or arp) and port 80", "port */80"},
		{"vlan 10 and (port 80 or portrange 1-5)", "and(vlan 10, or(port */80, portrange */1-5))"},
		{"host 1.1.1.1 or 2.2.2.2 and port 80", "and(or(host 1.1.1.1, host 2.2.2.2), port */80)"},
		{"tcp flow 10.0.0.2:80 <> 10.0.0.1:40000", "flow tcp/10.0.0.1:40000 <> 10.0.0.2:80"},
		{"udp flow 10.0.0.1:53 <> 10.0.0.1:40", "flow udp/10.0.0.1:40 <> 10.0.0.1:53"},
		{"flow [2001:db8::2]:1 <> [2001:db8::1]:2", "or(flow tcp/[2001:db8::1]:2 <> [2001:db8::2]:1, " +
			"flow udp/[2001:db8::1]:2 <> [2001:db8::2]:1, flow sctp/[2001:db8::1]:2 <> [2001:db8::2]:1)"},
		{"flow 10.0.0.1 <> 10.0.0.2", "and(host 10.0.0.1, host 10.0.0.2)"},
		{"tcp flow 10.0.0.1:80 <> 10.0.0.2", "and(host 10.0.0.1, host 10.0.0.2, port tcp/80)"},
	} {
		f, err := ParseFilter(tc.filter)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", tc.filter, err)
			continue
		}
		if got := f.Plan().String(); got != tc.want {
			t.Errorf("%q: got plan %s, want %s", tc.filter, got, tc.want)
		}
	}
}

// TestPlanFlowKey checks that a flow selector plans to the key the decoder's
// FlowKeyOf gives the flow's packets, whichever way round it is written and
// whichever way the packet goes.
func TestPlanFlowKey(t *testing.T) {
	for _, p := range []pkt{
		{proto: 6, src: "10.0.0.1", sport: 40000, dst: "192.168.1.10", dport: 80},
		{proto: 6, src: "192.168.1.10", sport: 80, dst: "10.0.0.1", dport: 40000, vlans: []uint16{5, 6}},
		{proto: 17, src: "10.0.0.1", sport: 53, dst: "10.0.0.1", dport: 40},
		{proto: 132, src: "2001:db8::2", sport: 1, dst: "2001:db8::1", dport: 2},
	} {
		d := p.decoded()
		want, _, ok := packet.FlowKeyOf(d)
		if !ok {
			t.Fatalf("FlowKeyOf(%+v): not ok", p)
		}
		want.VLAN, want.VLAN2 = 0, 0
		name := map[uint8]string{6: "tcp", 17: "udp", 132: "sctp"}[p.proto]
		for _, expr := range []string{
			fmt.Sprintf("%s flow %s <> %s", name, endpoint(p.src, p.sport), endpoint(p.dst, p.dport)),
			fmt.Sprintf("%s flow %s <> %s", name, endpoint(p.dst, p.dport), endpoint(p.src, p.sport)),
		} {
			pl := MustParseFilter(expr).Plan()
			if pl.Op != PlanFlow || pl.Flow != want {
				t.Errorf("%q: got plan %s (%+v), want flow key %+v", expr, pl, pl.Flow, want)
			}
			if !pl.MatchTerms(d) {
				t.Errorf("%q: MatchTerms of its own packet: got false, want true", expr)
			}
		}
	}
}

func endpoint(addr string, port uint16) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

// Pools the random filters and packets draw from, small so that they often
// meet.
var (
	poolAddr4 = []string{"10.0.0.1", "10.0.0.2", "10.1.0.1", "192.168.1.1"}
	poolAddr6 = []string{"2001:db8::1", "2001:db8::2", "fe80::1"}
	poolNets  = []string{"10.0.0.0/8", "10.0.0.0/31", "192.168.0.0/16", "2001:db8::/32", "0.0.0.0/0", "::/0", "10.1"}
	poolPorts = []uint16{53, 80, 443, 1000}
	poolVLANs = []uint16{1, 2, 3}
	poolProto = []uint8{6, 17, 132, 1, 58, 47}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func randAddr(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return pick(r, poolAddr6)
	}
	return pick(r, poolAddr4)
}

// randPacket returns a random packet over the pools.
func randPacket(r *rand.Rand) *packet.Decoded {
	var p pkt
	switch r.IntN(10) {
	case 0:
		p.arp = true
	case 1:
		p.etherType = 0x88cc
	default:
		v6 := r.IntN(3) == 0
		pool := poolAddr4
		if v6 {
			pool = poolAddr6
		}
		p.src, p.dst = pick(r, pool), pick(r, pool)
		p.proto = pick(r, poolProto)
		if v6 && p.proto == 1 {
			p.proto = 58
		}
		if !v6 && p.proto == 58 {
			p.proto = 1
		}
		p.sport, p.dport = pick(r, poolPorts), pick(r, poolPorts)
		switch r.IntN(8) {
		case 0:
			p.nextFrag = true
		case 1:
			p.firstFrag = true
		}
	}
	for i := r.IntN(4); i > 0; i-- {
		p.vlans = append(p.vlans, pick(r, poolVLANs))
	}
	if r.IntN(6) == 0 {
		p.mpls = 1 + r.IntN(2)
	}
	return p.decoded()
}

// randFilter returns a random filter expression of the given depth over the
// pools.
func randFilter(r *rand.Rand, depth int) string {
	if depth > 0 {
		switch r.IntN(6) {
		case 0:
			return "not " + randFilter(r, depth-1)
		case 1:
			return "(" + randFilter(r, depth-1) + ")"
		case 2, 3:
			op := pick(r, []string{" and ", " or ", " && ", " || "})
			return randFilter(r, depth-1) + op + randFilter(r, depth-1)
		}
	}
	dir := pick(r, []string{"", "src ", "dst ", "src or dst ", "src and dst "})
	l4 := pick(r, []string{"", "tcp ", "udp ", "sctp "})
	switch r.IntN(14) {
	case 0:
		return dir + "host " + randAddr(r)
	case 1:
		return "host " + randAddr(r) + " or " + randAddr(r)
	case 2:
		return dir + "net " + pick(r, poolNets)
	case 3:
		return l4 + dir + fmt.Sprintf("port %d", pick(r, poolPorts))
	case 4:
		return l4 + fmt.Sprintf("port %d or %d", pick(r, poolPorts), pick(r, poolPorts))
	case 5:
		lo := pick(r, poolPorts)
		return l4 + dir + fmt.Sprintf("portrange %d-%d", lo, lo+uint16(r.IntN(500)))
	case 6:
		return pick(r, []string{"tcp", "udp", "icmp", "icmp6", "sctp", "ip", "ip6", "arp", "proto 47", "ip proto 17", "ip6 proto 6"})
	case 7:
		return "vlan"
	case 8:
		return fmt.Sprintf("vlan %d", pick(r, poolVLANs))
	case 9:
		return "mpls"
	case 10, 11:
		a, b := randAddr(r), randAddr(r)
		if strings.Contains(a, ":") != strings.Contains(b, ":") {
			b = a
		}
		if r.IntN(4) == 0 {
			return fmt.Sprintf("flow %s <> %s", a, b)
		}
		return fmt.Sprintf("%sflow %s <> %s", l4, endpoint(a, pick(r, poolPorts)), endpoint(b, pick(r, poolPorts)))
	case 12:
		// The Community-ID of a random packet's flow.
		for {
			d := randPacket(r)
			if k, _, ok := packet.FlowKeyOf(d); ok {
				return "community-id " + string(packet.AppendCommunityID(nil, &k, 0))
			}
		}
	}
	return dir + "host " + randAddr(r) + " and not " + randAddr(r)
}

// TestPlanSound checks that the plan is a superset of the filter: for random
// filters over random packets, whenever Match accepts a packet, the plan is
// true on that packet's own index terms.
func TestPlanSound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pkts := make([]*packet.Decoded, 400)
	for i := range pkts {
		pkts[i] = randPacket(r)
	}
	matches, pruned := 0, 0
	for i := 0; i < 3000; i++ {
		expr := randFilter(r, r.IntN(4))
		f, err := ParseFilter(expr)
		if err != nil {
			t.Fatalf("ParseFilter(%q): %v", expr, err)
		}
		pl := f.Plan()
		for _, d := range pkts {
			m, pm := f.Match(d), pl.MatchTerms(d)
			if m && !pm {
				t.Fatalf("%q (plan %s): Match is true but the plan is false on %+v", expr, pl, *d)
			}
			if m {
				matches++
			}
			if !pm {
				pruned++
			}
		}
	}
	// The test would prove nothing if filters never matched or plans never
	// pruned.
	if total := 3000 * len(pkts); matches < total/20 || pruned < total/5 {
		t.Fatalf("got %d matches and %d pruned of %d, want at least %d and %d", matches, pruned, total, total/20, total/5)
	}
}
