package query

import (
	"errors"
	"math/rand/v2"
	"tapvault/packet"
	"testing"
)

// FuzzParseFilter checks that ParseFilter never panics, that every error is
// a *FilterError pointing inside the expression, that a filter's String
// parses back to the same String, and that Match and the plan agree (plan
// true wherever Match is) on a fixed set of packets.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"", "host 1.2.3.4", "src or dst host 2001:db8::1 and not port 22",
		"tcp port 80 or 443", "net 10 and vlan 5", "portrange 1-1024",
		"udp src portrange 53-54 || icmp6 && !arp", "ip proto \\tcp",
		"flow [::1]:80 <> [::2]:81", "tcp flow 10.0.0.1:1 <> 10.0.0.2:2",
		"1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "(host 1.1.1.1 or (2.2.2.2 and port 53))",
		"host (1.1.1.1 or not 2.2.2.2)", "net 10.0.0.0 mask 255.0.0.0",
		"ether proto 0x88cc", "mpls and vlan", "tcp[13] & 2 != 0",
		"1:00A00A0A0A0A000A0A0000A00000", // unpadded: decodes to 21 bytes
	} {
		f.Add(s)
	}
	r := rand.New(rand.NewPCG(3, 4))
	pkts := make([]*packet.Decoded, 64)
	for i := range pkts {
		pkts[i] = randPacket(r)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := ParseFilter(expr)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseFilter(%q): got %T, want *FilterError", expr, err)
			}
			if fe.Pos < 0 || fe.Pos > len(expr) || fe.Len < 1 || fe.Expr != expr {
				t.Fatalf("ParseFilter(%q): bad error position %d+%d", expr, fe.Pos, fe.Len)
			}
			_ = fe.Error()
			return
		}
		s := flt.String()
		again, err := ParseFilter(s)
		if err != nil {
			t.Fatalf("ParseFilter(%q).String() = %q does not parse: %v", expr, s, err)
		}
		if again.String() != s {
			t.Fatalf("ParseFilter(%q): String %q re-parses to %q", expr, s, again.String())
		}
		pl := flt.Plan()
		_ = pl.String()
		for _, d := range pkts {
			m := flt.Match(d)
			if m != again.Match(d) {
				t.Fatalf("%q and its String %q disagree on %+v", expr, s, *d)
			}
			if m && !pl.MatchTerms(d) {
				t.Fatalf("%q: Match is true but plan %s is false on %+v", expr, pl, *d)
			}
		}
	})
}
