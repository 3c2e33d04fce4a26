package msgquery

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tapvault/analytics"
)

const t0 = int64(1715000000000000000) // 2024-05-06T12:53:20Z

func httpRec() *analytics.Record {
	return &analytics.Record{
		ID: 0x0123456789abcdef, Proto: "http", Transport: 6, VLAN: 100,
		Client:   netip.MustParseAddrPort("10.1.2.3:40000"),
		Server:   netip.MustParseAddrPort("10.0.0.5:80"),
		ReqFirst: t0, ReqLast: t0 + 1000,
		RespFirst: t0 + 60_000_000, RespLast: t0 + 61_000_000,
		ServerAck: t0 + 200_000,
		Network:   199_000, ServerTime: 59_999_000, Transfer: 1_000_000, ClientNet: 300_000, RTT: 150_000,
		Class:    analytics.ClassSlowApp,
		ReqBytes: 120, RespBytes: 5000, ReqPkts: 1, RespPkts: 4,
		Fields: []analytics.Field{
			{Key: "method", Str: "POST"},
			{Key: "host", Str: "WWW.Example.com"},
			{Key: "path", Str: "/api/v1/users"},
			{Key: "status", Int: 503, IsInt: true},
			{Key: "content_type", Str: "application/json"},
			{Key: "qty", Str: "250"},
			{Key: "clordid", Str: "007"},
		},
		Packets: []analytics.PktRef{{Block: 7, Queue: 1, Ord: 3}},
	}
}

func dnsRec() *analytics.Record {
	return &analytics.Record{
		ID: 42, Proto: "dns", Transport: 17,
		Client:   netip.MustParseAddrPort("[2001:db8::1]:5353"),
		Server:   netip.MustParseAddrPort("[2001:db8::53]:53"),
		ReqFirst: t0, ReqLast: t0, RespFirst: t0 + 2_000_000, RespLast: t0 + 2_000_000,
		Network: -1, ServerTime: 2_000_000, Transfer: 0, ClientNet: -1, RTT: -1,
		Class: analytics.ClassUDP,
		Fields: []analytics.Field{
			{Key: "dns_id", Int: 4660, IsInt: true},
			{Key: "qname", Str: "Mail.Example.COM"},
			{Key: "qtype", Str: "A"},
			{Key: "rcode", Int: 0, IsInt: true},
			{Key: "rcode_name", Str: "NOERROR"},
			{Key: "answers", Int: 2, IsInt: true},
		},
	}
}

func pgRec() *analytics.Record {
	return &analytics.Record{
		ID: 7, Proto: "pgsql", Transport: 6,
		Client:   netip.MustParseAddrPort("10.0.0.5:51000"),
		Server:   netip.MustParseAddrPort("10.0.0.9:5432"),
		ReqFirst: t0, ReqLast: t0 + 10, RespFirst: 0, RespLast: 0,
		Network: -1, ServerTime: -1, Transfer: -1, ClientNet: -1, RTT: 80_000,
		Class: analytics.ClassNoResponse,
		Fields: []analytics.Field{
			{Key: "command", Str: "Query"},
			{Key: "statement", Str: "SELECT 1"},
		},
	}
}

func TestParseMatch(t *testing.T) {
	h, d, pg := httpRec(), dnsRec(), pgRec()
	cases := []struct {
		expr          string
		http, dns, pg bool
	}{
		{"proto http", true, false, false},
		{"PROTO HTTP", true, false, false},
		{"proto = http", true, false, false},
		{"proto == http", true, false, false},
		{"proto != http", false, true, true},
		{"not proto tcp", true, true, true},
		{"! proto http", false, true, true},
		{"proto postgres", false, false, true},
		{"proto pgsql", false, false, true},
		{"proto postgresql", false, false, true},
		{"proto ~ ^post", false, false, true},
		{"proto http and status >= 500", true, false, false},
		{"proto http && status >= 500", true, false, false},
		{"status > 503", false, false, false},
		{"status = 503", true, false, false},
		{"status != 503", false, false, false}, // missing fields never match
		{"status != 200", true, false, false},
		{"status ~ ^5", true, false, false},
		{"proto dns and qname ~ example.com", false, true, false},
		{"qname = mail.example.com", false, true, false},
		{"qname = \"MAIL.example.com\"", false, true, false},
		{"qtype = a", false, false, false}, // exact for fields other than host/qname/sni
		{"qtype = A", false, true, false},
		{"host = www.example.com", true, false, false},
		{"latency > 50ms", true, false, false},
		{"latency > 61ms", false, false, false},
		{"latency < 61ms", true, true, false},
		{"latency != 1s", true, true, false}, // unknown latency never matches
		{"latency >= 60.999ms", true, false, false},
		{"latency <= 2000us", false, true, false},
		{"latency <= 2000µs", false, true, false},
		{"class slow_app or class slow_net", true, false, false},
		{"class no_response || class udp", false, true, true},
		{"server 10.0.0.5:80", true, false, false},
		{"server 10.0.0.5", true, false, false},
		{"server [2001:db8::53]:53", false, true, false},
		{"server != 10.0.0.5", false, true, true},
		{"client 10.1.0.0/16", true, false, false},
		{"client 10.0.0.0/8", true, false, true},
		{"ip 10.0.0.5", true, false, true},
		{"ip 2001:db8::1", false, true, false},
		{"port 53", false, true, false},
		{"port 5353", false, true, false},
		{"port != 53", true, false, true},
		{"port < 1024", true, true, false},
		{"method = POST and path ~ \"^/api/\"", true, false, false},
		{"method = post", false, false, false},
		{"method ~ post", true, false, false},
		{"method !~ get", true, false, false},
		{"network > 100us and server_time < 1ms", false, false, false},
		{"network > 100us and server_time > 1ms", true, false, false},
		{"transfer = 0", false, true, false},
		{"client_net > 0 or rtt > 0", true, false, true},
		{"rtt = 80us", false, false, true},
		{"id 0123456789abcdef", true, false, false},
		{"id = 0x2a", false, true, false},
		{"id 2a", false, true, false},
		{"transport udp", false, true, false},
		{"transport = 6", true, false, true},
		{"vlan 100", true, false, false},
		{"vlan = 0", false, true, true},
		{"req_bytes > 100 and resp_bytes >= 5000", true, false, false},
		{"req_packets = 1 and resp_packets = 4", true, false, false},
		{"(proto http or proto dns) and not latency > 10ms", false, true, false},
		{"proto http or proto dns and latency > 10ms", true, false, false},
		{"(proto http or proto dns) and latency > 10ms", true, false, false},
		{"not (proto http or proto dns)", false, false, true},
		{"not not proto dns", false, true, false},
		{"qty > 100", true, false, false}, // a string field that parses as a number
		{"qty < 1000", true, false, false},
		{"qty = 250", true, false, false},
		{"clordid = 7", false, false, false}, // "007" is not the text "7"
		{"clordid = 007", true, false, false},
		{"clordid > 6", true, false, false},
		{"answers >= 2 and rcode = 0", false, true, false},
		{"rcode_name = NOERROR", false, true, false},
		{"statement ~ \"select\"", false, false, true},
		{"req_first >= 2024-05-06T12:53:20Z", true, true, true},
		{"req_first > 2024-05-06T12:53:20Z", false, false, false},
		{"resp_last > " + strconv.FormatInt(t0, 10), true, true, false},
		{"resp_first < 2030-01-01T00:00:00Z", true, true, false}, // pg: no response: unknown
		{"path =~ users$", true, false, false},
		{"content_type ~ \"json\"", true, false, false},
		{"status>=500&&proto==http", true, false, false},
		{"!(proto=dns)", true, false, true},
	}
	for _, c := range cases {
		e, err := Parse(c.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.expr, err)
			continue
		}
		for i, r := range []*analytics.Record{h, d, pg} {
			want := [...]bool{c.http, c.dns, c.pg}[i]
			if got := e.Match(r); got != want {
				t.Errorf("%q on %s: got %v, want %v (canonical %q)", c.expr, r.Proto, got, want, e.String())
			}
		}
		// The canonical form parses to the same thing.
		e2, err := Parse(e.String())
		if err != nil {
			t.Errorf("Parse(String() of %q = %q): %v", c.expr, e.String(), err)
			continue
		}
		if e2.String() != e.String() {
			t.Errorf("round trip of %q: got %q, want %q", c.expr, e2.String(), e.String())
		}
		for _, r := range []*analytics.Record{h, d, pg} {
			if e2.Match(r) != e.Match(r) {
				t.Errorf("round trip of %q changes Match on %s", c.expr, r.Proto)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ expr, want string }{
		{"proto http and status >", `parse "proto http and status >": expected a value after ">" at column 24`},
		{"", `parse "": empty expression at column 1`},
		{"   ", `parse "   ": empty expression at column 4`},
		{"proto", `parse "proto": expected an operator or a value after "proto" at column 6`},
		{"(proto http", `parse "(proto http": expected ")" to close the "(" at column 1 at column 12`},
		{"proto http)", `parse "proto http)": unbalanced ")" at column 11`},
		{"()", `parse "()": empty parentheses at column 2`},
		{"proto http and", `parse "proto http and": expected an expression after "and" at column 15`},
		{"proto http or", `parse "proto http or": expected an expression after "or" at column 14`},
		{"not", `parse "not": expected an expression after "not" at column 4`},
		{"proto http status 500", `parse "proto http status 500": expected "and", "or" or the end before "status" at column 12`},
		{"status => 5", `parse "status => 5": unknown operator "=>" at column 8`},
		{"status <> 5", `parse "status <> 5": unknown operator "<>" at column 8`},
		{"status =! 5", `parse "status =! 5": unknown operator "=!" at column 8`},
		{"proto http & status 5", `parse "proto http & status 5": unknown operator "&" (use "and"/"&&" or "or"/"||") at column 12`},
		{"path ~ \"(\"", "parse \"path ~ \\\"(\\\"\": bad regular expression \"(\": missing closing ): `(` at column 8"},
		{"latency > 50", `parse "latency > 50": duration "50" needs a unit (ns, us, ms, s, m) at column 11`},
		{"latency > 5xs", `parse "latency > 5xs": bad duration "5xs" (want e.g. 250us, 1.5ms, 2s) at column 11`},
		{"latency ~ 5ms", `parse "latency ~ 5ms": operator "~" does not apply to latency at column 11`},
		{"server 10.0.0.300", `parse "server 10.0.0.300": bad address "10.0.0.300" (want an IP, IP:port, [IPv6]:port or a CIDR prefix) at column 8`},
		{"server > 10.0.0.1", `parse "server > 10.0.0.1": operator ">" does not apply to server at column 10`},
		{"port 70000", `parse "port 70000": bad port "70000" (0 to 65535) at column 6`},
		{"port http", `parse "port http": bad number "http" for port at column 6`},
		{"id xyz", `parse "id xyz": bad id "xyz" (up to 16 hex digits) at column 4`},
		{"id 0123456789abcdef0", `parse "id 0123456789abcdef0": bad id "0123456789abcdef0" (up to 16 hex digits) at column 4`},
		{"transport sctp", `parse "transport sctp": bad transport "sctp" (tcp or udp) at column 11`},
		{"req_first > yesterday", `parse "req_first > yesterday": bad time "yesterday" (ns since the epoch or RFC 3339) at column 13`},
		{"proto < http", `parse "proto < http": operator "<" does not apply to proto at column 9`},
		{"method = \"POST", `parse "method = \"POST": unterminated quoted string at column 10`},
		{"\"method\" = POST", `parse "\"method\" = POST": expected a key, got a quoted string at column 1`},
		{"5xx = 1", `parse "5xx = 1": bad key "5xx" (a letter, then letters, digits, _ . or -) at column 1`},
		{"= 1", `parse "= 1": expected a key, got "=" at column 1`},
		{"method = and", `parse "method = and": expected a value after "=" at column 10`},
		{"method not GET", `parse "method not GET": expected an operator or a value after "method" (use != or !~) at column 8`},
		{"proto http and and", `parse "proto http and and": expected a key, got "and" at column 16`},
		{"π = 1", `parse "π = 1": bad key "π" (a letter, then letters, digits, _ . or -) at column 1`},
		{"host = x and π ~ (", `parse "host = x and π ~ (": bad key "π" (a letter, then letters, digits, _ . or -) at column 14`},
		{"vlan ~ 1", `parse "vlan ~ 1": operator "~" does not apply to vlan at column 8`},
		{"proto htp", `parse "proto htp": unknown protocol "htp" (want ` + protoList() + `; ~ takes a pattern) at column 7`},
		{"proto != \"\"", `parse "proto != \"\"": unknown protocol "" (want ` + protoList() + `; ~ takes a pattern) at column 10`},
		{"class slow", `parse "class slow": unknown class "slow" (want healthy, slow_app, slow_net, cant_tell, no_response, no_request, flow; ~ takes a pattern) at column 7`},

		{strings.Repeat("(", 300) + "proto http" + strings.Repeat(")", 300), ""},
	}
	for _, c := range cases {
		_, err := Parse(c.expr)
		if err == nil {
			t.Errorf("Parse(%q): got no error, want %q", c.expr, c.want)
			continue
		}
		if c.want == "" {
			if !strings.Contains(err.Error(), "nested deeper") {
				t.Errorf("Parse(%.20q...): got %v, want a nesting error", c.expr, err)
			}
			continue
		}
		if err.Error() != c.want {
			t.Errorf("Parse(%q):\n got %s\nwant %s", c.expr, err, c.want)
		}
		if _, ok := err.(*ParseError); !ok {
			t.Errorf("Parse(%q): got a %T, want *ParseError", c.expr, err)
		}
	}
}

func TestTermsAndProtos(t *testing.T) {
	cases := []struct {
		expr   string
		terms  []string
		protos []string
	}{
		{"proto http and status = 404", []string{"proto=http", "status=404"}, []string{"http"}},
		{"proto HTTP and status 404", []string{"proto=http", "status=404"}, []string{"http"}},
		{"proto http or status = 404", nil, nil},
		{"not proto http", nil, nil},
		{"proto http and not status = 404", []string{"proto=http"}, []string{"http"}},
		{"(proto http and status = 500) or (proto http and status = 502)", []string{"proto=http"}, []string{"http"}},
		{"proto http or proto dns", nil, []string{"dns", "http"}},
		{"(proto http or proto dns) and class slow_app", []string{"class=slow_app"}, []string{"dns", "http"}},
		{"proto http and proto dns", []string{"proto=dns", "proto=http"}, []string{}},
		{"proto pgsql", nil, []string{"pgsql", "postgres"}},
		{"qname = Example.COM", []string{"qname=example.com"}, nil},
		{"qname ~ example", nil, nil},
		{"status != 404", nil, nil},
		{"status > 404", nil, nil},
		{"status = 0404", nil, nil},
		{"status = +5", nil, nil},
		{"status = -5", []string{"status=-5"}, nil},
		{"handshake_ns = 5ms", nil, nil},
		{"host = ÉTÉ.fr", nil, nil},
		{"id 2a", []string{"id=000000000000002a"}, nil},
		{"server 10.0.0.5:5432", []string{"server=10.0.0.5", "server=10.0.0.5:5432"}, nil},
		{"server [::1]:80", []string{"server=::1", "server=[::1]:80"}, nil},
		{"server 10.0.0.5", []string{"server=10.0.0.5"}, nil},
		{"server 10.0.0.0/8", nil, nil},
		{"client 10.1.2.3", []string{"client=10.1.2.3"}, nil},
		{"client 10.1.2.3:4000", []string{"client=10.1.2.3"}, nil},
		{"ip 198.51.100.10", []string{"ip=198.51.100.10"}, nil},
		{"port 53", []string{"port=53"}, nil},
		{"port 0", nil, nil},
		{"port != 53", nil, nil},
		{"vlan 100", []string{"vlan=100"}, nil},
		{"vlan 0", nil, nil},
		{"error = \"\"", []string{"error="}, nil},
		{"server [fe80::1%ETH0]:80", []string{"server=[fe80::1%eth0]:80", "server=fe80::1%eth0"}, nil},
		{"latency > 1ms", nil, nil},
		{"class slow_net", []string{"class=slow_net"}, nil},
		{"method = POST", []string{"method=post"}, nil},
	}
	for _, c := range cases {
		e, err := Parse(c.expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.expr, err)
		}
		if got := e.Terms(); !slices.Equal(got, c.terms) {
			t.Errorf("Terms(%q): got %q, want %q", c.expr, got, c.terms)
		}
		got := e.Protos()
		if !slices.Equal(got, c.protos) || (got == nil) != (c.protos == nil) {
			t.Errorf("Protos(%q): got %#v, want %#v", c.expr, got, c.protos)
		}
	}
}

// recordTerms returns the skip-index terms msgstore writes for r: the
// codec both sides share (analytics.Terms).
func recordTerms(r *analytics.Record) map[string]bool {
	m := map[string]bool{}
	for _, t := range analytics.Terms(r, nil) {
		m[t] = true
	}
	return m
}

// Random records and expressions drawn from small value pools, so that
// matches are common.
var (
	poolProtos  = []string{"http", "dns", "pgsql", "postgres", "redis", "tcp", "HTTP"}
	poolClasses = []string{"fast", "slow_app", "slow_net", "udp", "no_response", "flow", ""}
	poolAddrs   = []string{"10.0.0.1", "10.0.0.2", "10.1.0.5", "::1", "2001:db8::1"}
	poolPorts   = []uint16{53, 80, 5432, 40000, 0}
	poolKeys    = []string{"status", "method", "host", "qname", "clordid", "sni"}
	poolStrs    = []string{"404", "0404", "GET", "get", "Example.COM", "example.com", "K", "\u212a", "ſ", "s", "É", "é", "-5", "+5", "5", "1ms", ""}
	poolOps     = []string{"=", "==", "!=", "<", ">=", "~", "!~", ""}
)

func randRecord(rng *rand.Rand) *analytics.Record {
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	r := &analytics.Record{
		ID:     uint64(rng.IntN(4)),
		VLAN:   uint16(rng.IntN(3)),
		Proto:  pick(poolProtos),
		Class:  pick(poolClasses),
		Client: netip.AddrPortFrom(netip.MustParseAddr(pick(poolAddrs)), poolPorts[rng.IntN(len(poolPorts))]),
		Server: netip.AddrPortFrom(netip.MustParseAddr(pick(poolAddrs)), poolPorts[rng.IntN(len(poolPorts))]),
	}
	for _, k := range poolKeys {
		switch rng.IntN(3) {
		case 0:
		case 1:
			r.Fields = append(r.Fields, analytics.Field{Key: k, Str: pick(poolStrs)})
		case 2:
			r.Fields = append(r.Fields, analytics.Field{Key: k, Int: int64(rng.IntN(3)*202 - 2), IsInt: true})
		}
	}
	return r
}

func randExpr(rng *rand.Rand, depth int) string {
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	if depth < 3 {
		switch rng.IntN(6) {
		case 0:
			return "(" + randExpr(rng, depth+1) + " and " + randExpr(rng, depth+1) + ")"
		case 1:
			return "(" + randExpr(rng, depth+1) + " or " + randExpr(rng, depth+1) + ")"
		case 2:
			return "not " + randExpr(rng, depth+1)
		}
	}
	q := func(s string) string { return strconv.Quote(s) }
	switch rng.IntN(8) {
	case 0:
		if rng.IntN(4) == 0 {
			return "proto postgresql"
		}
		return "proto " + q(pick(poolProtos))
	case 1:
		return "class " + strconv.Quote(pick(poolClasses))
	case 2:
		return "id " + strconv.Itoa(rng.IntN(4))
	case 3:
		a := pick(poolAddrs)
		if strings.Contains(a, ":") {
			a = "[" + a + "]"
		}
		return pick([]string{"server", "client", "ip"}) + " " + a + ":" + strconv.Itoa(int(poolPorts[rng.IntN(len(poolPorts))]))
	case 4:
		return pick([]string{"server", "client", "ip"}) + " " + pick(poolAddrs)
	case 5:
		if rng.IntN(2) == 0 {
			return "vlan " + strconv.Itoa(rng.IntN(3))
		}
		return "port " + strconv.Itoa(int(poolPorts[rng.IntN(len(poolPorts))]))
	}
	op := pick(poolOps)
	v := pick(poolStrs)
	if rng.IntN(2) == 0 {
		v = strconv.Itoa(rng.IntN(3)*202 - 2)
	}
	if op == "~" || op == "!~" {
		v = "^" + regexpQuote(v) + "$"
	}
	return pick(poolKeys) + " " + op + " " + q(v)
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// TestTermsConservative: every term of an expression is a term of every
// record it matches (a wrong term would prune away results).
func TestTermsConservative(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]*analytics.Record, 400)
	for i := range recs {
		recs[i] = randRecord(rng)
	}
	matched, withTerms, withAlts := 0, 0, 0
	for range 3000 {
		s := randExpr(rng, 0)
		e, err := Parse(s)
		if err != nil {
			if strings.Contains(s, `""`) {
				continue // some empty values are not valid for built-ins
			}
			t.Fatalf("Parse(%q): %v", s, err)
		}
		terms, protos := e.Terms(), e.Protos()
		if len(terms) > 0 {
			withTerms++
		}
		alts := e.AnyTerms()
		if len(alts) > 1 {
			withAlts++
		}
		for _, r := range recs {
			if !e.Match(r) {
				continue
			}
			matched++
			rt := recordTerms(r)
			for _, term := range terms {
				if !rt[term] {
					t.Fatalf("%q matches %+v but the record lacks term %q (terms %q)", s, r, term, terms)
				}
			}
			if protos != nil && !slices.Contains(protos, strings.ToLower(r.Proto)) {
				t.Fatalf("%q matches proto %q, not in Protos %q", s, r.Proto, protos)
			}
			// AnyTerms: the record has every term of one alternative.
			if alts != nil && !slices.ContainsFunc(alts, func(alt []string) bool {
				for _, term := range alt {
					if !rt[term] {
						return false
					}
				}
				return true
			}) {
				t.Fatalf("%q matches %+v but the record has no alternative of %q", s, r, alts)
			}
		}
	}
	if matched < 1000 || withTerms < 300 || withAlts < 50 {
		t.Errorf("weak test: %d matches, %d expressions with terms, %d with alternatives", matched, withTerms, withAlts)
	}
	t.Logf("%d matches, %d expressions with terms, %d with alternatives", matched, withTerms, withAlts)
}

func TestMatchAllocs(t *testing.T) {
	r := httpRec()
	for _, s := range []string{
		"proto http and status >= 500",
		"host = www.example.com and path ~ ^/api/ and latency > 10ms",
		"client 10.1.0.0/16 and not server 10.0.0.9:5432 or port 53",
		"qty > 100 and status ~ 5",
	} {
		e, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { e.Match(r) }); n != 0 {
			t.Errorf("Match(%q): got %v allocs, want 0", s, n)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"proto http and status >= 500", "proto dns and qname ~ example.com", "latency > 50ms",
		"class slow_app or class slow_net", "not proto tcp", "server 10.0.0.5:5432",
		"client 10.1.0.0/16", "ip 198.51.100.10", "port 53", `method = POST and path ~ "^/api/"`,
		"network > 10ms and server_time < 1ms", "id 0123456789abcdef", `(method = "x\"y\\z" || !status != 1) && host !~ q`,
		"req_first > 2024-05-06T12:53:20Z", "path =~ x",
	} {
		f.Add(s)
	}
	recs := []*analytics.Record{httpRec(), dnsRec(), pgRec()}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("Parse(%q): got a %T error", s, err)
			}
			_ = err.Error()
			return
		}
		e2, err := Parse(e.String())
		if err != nil {
			t.Fatalf("Parse(%q) ok but Parse(String() = %q): %v", s, e.String(), err)
		}
		if e2.String() != e.String() {
			t.Fatalf("round trip of %q: got %q, want %q", s, e2.String(), e.String())
		}
		for _, r := range recs {
			if e.Match(r) != e2.Match(r) {
				t.Fatalf("round trip of %q changes Match", s)
			}
		}
		if !slices.Equal(e.Terms(), e2.Terms()) || !slices.Equal(e.Protos(), e2.Protos()) {
			t.Fatalf("round trip of %q changes Terms or Protos", s)
		}
	})
}

// TestFaultUnknownNames: a key, protocol or class no record can have is an
// error naming the valid ones (from the decoder registry), not an
// expression that silently matches nothing.
func TestFaultUnknownNames(t *testing.T) {
	for _, c := range []struct{ expr, want string }{
		{"statsu = 200", `unknown key "statsu" (did you mean "status"? built-in keys: class client`},
		{"proto http and mehtod = GET", `unknown key "mehtod" (did you mean "method"?`},
		{"nosuch !~ get", `unknown key "nosuch" (built-in keys:`},
		{"xyzzy = 1", "record fields: alpn answers app"},
		{"proto htp", `unknown protocol "htp" (want ` + protoList() + `;`},
		{"class slow", `unknown class "slow" (want healthy, slow_app`},
	} {
		_, err := Parse(c.expr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q): got %v, want an error containing %q", c.expr, err, c.want)
		}
	}
	// Every registered decoder is a valid proto, every declared field a
	// valid key, every class a valid class: the lists are the registry's.
	for _, d := range analytics.Decoders() {
		if _, err := Parse("proto " + d.Name); err != nil {
			t.Errorf("decoder %s: %v", d.Name, err)
		}
		for _, f := range d.Fields {
			if _, err := Parse(f + ` != ""`); err != nil {
				t.Errorf("decoder %s field %s: %v", d.Name, f, err)
			}
		}
	}
	for _, f := range analytics.FlowFields {
		if _, err := Parse("proto tcp and " + f + ` != ""`); err != nil {
			t.Errorf("flow field %s: %v", f, err)
		}
	}
	for _, c := range analytics.Classes {
		if _, err := Parse("class " + c); err != nil {
			t.Errorf("class %s: %v", c, err)
		}
	}
	// Patterns are not checked.
	for _, s := range []string{"proto ~ htp", "class !~ slow"} {
		if _, err := Parse(s); err != nil {
			t.Errorf("Parse(%q): %v", s, err)
		}
	}
	if _, err := NewAggregator([]string{"proto", "bogus"}); err == nil || !strings.Contains(err.Error(), `unknown grouping key "bogus"`) || !strings.Contains(err.Error(), "want proto server server_ip client_ip class or a record field: alpn") {
		t.Errorf("NewAggregator(bogus): got %v", err)
	}
	if _, err := NewAggregator([]string{"stauts"}); err == nil || !strings.Contains(err.Error(), `did you mean "status"?`) {
		t.Errorf("NewAggregator(stauts): got %v", err)
	}
	for _, by := range [][]string{{"proto", "server"}, {"server_ip", "client_ip", "class"}, {"qtype"}, {"host", "status"}} {
		if _, err := NewAggregator(by); err != nil {
			t.Errorf("NewAggregator(%q): %v", by, err)
		}
	}
}

// TestDocExamples: every example of docs/messages.md parses, and the
// database-errors example selects the error records and only them (it
// once read `not error_code = ""`, which selects every record without
// the field too: all the successes).
func TestDocExamples(t *testing.T) {
	b, err := os.ReadFile("../docs/messages.md")
	if err != nil {
		t.Fatal(err)
	}
	var errExpr string
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "tapvault messages '")
		if !ok {
			continue
		}
		expr, comment, ok := strings.Cut(rest, "'")
		if !ok {
			t.Fatalf("unterminated example %q", line)
		}
		n++
		if _, err := Parse(expr); err != nil {
			t.Errorf("doc example %q: %v", expr, err)
		}
		if strings.Contains(comment, "errors") {
			errExpr = expr
		}
	}
	if n < 5 || errExpr == "" {
		t.Fatalf("found %d examples, errors example %q: the doc changed, update this test", n, errExpr)
	}
	e, err := Parse(errExpr)
	if err != nil {
		t.Fatal(err)
	}
	db := netip.MustParseAddrPort("10.0.0.5:5432")
	rec := func(proto string, fields ...analytics.Field) *analytics.Record {
		r := pgRec()
		r.Proto, r.Server, r.Fields = proto, db, fields
		return r
	}
	cases := []struct {
		name string
		r    *analytics.Record
		want bool
	}{
		{"postgres error", rec("postgres", analytics.Field{Key: "command", Str: "Query"}, analytics.Field{Key: "error_code", Str: "42P01"}, analytics.Field{Key: "error", Str: "ERROR"}), true},
		{"postgres success", rec("postgres", analytics.Field{Key: "command", Str: "Query"}, analytics.Field{Key: "tag", Str: "SELECT 1"}, analytics.Field{Key: "rows", Int: 1, IsInt: true}), false},
		{"mysql error", rec("mysql", analytics.Field{Key: "result", Str: "err"}, analytics.Field{Key: "error_code", Int: 1146, IsInt: true}), true},
		{"mysql success", rec("mysql", analytics.Field{Key: "result", Str: "ok"}), false},
		{"connection record", rec("tcp", analytics.Field{Key: "retrans", Int: 0, IsInt: true}), false},
	}
	for _, c := range cases {
		if got := e.Match(c.r); got != c.want {
			t.Errorf("doc example %q on a %s: got %v, want %v", errExpr, c.name, got, c.want)
		}
	}
}

// TestOldClassNames: the class names of records written before issue 11
// still select, for one release, under either name; their terms do not
// prune (older files' skip indexes hold the old names).
func TestOldClassNames(t *testing.T) {
	rec := func(class string, flags uint32) *analytics.Record {
		return &analytics.Record{Proto: "http", Class: class, Flags: flags}
	}
	cases := []struct {
		expr string
		r    *analytics.Record
		want bool
	}{
		{"class fast", rec(analytics.ClassHealthy, 0), true},
		{"class fast", rec(analytics.ClassFast, 0), true},
		{"class healthy", rec(analytics.ClassFast, 0), true},
		{"class healthy", rec(analytics.ClassSlowApp, 0), false},
		{"class unknown", rec(analytics.ClassCantTell, 0), true},
		{"class unknown", rec(analytics.ClassNoRequest, 0), true},
		{"class unknown", rec(analytics.ClassHealthy, 0), false},
		{"class no_request", rec(analytics.ClassUnknown, analytics.FlagNoRequest), true},
		{"class cant_tell", rec(analytics.ClassUnknown, analytics.FlagNoRequest), false},
		{"class cant_tell", rec(analytics.ClassUDP, 0), true},
		{"class != fast", rec(analytics.ClassFast, 0), false},
	}
	for _, tc := range cases {
		e, err := Parse(tc.expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.expr, err)
		}
		if got := e.Match(tc.r); got != tc.want {
			t.Errorf("%q on class %s: %v, want %v", tc.expr, tc.r.Class, got, tc.want)
		}
		if tc.want && len(e.Terms()) != 0 {
			t.Errorf("%q: terms %q, want none", tc.expr, e.Terms())
		}
	}
}

// protoList is the protocol list an unknown-protocol error gives: the
// registered decoders and the connection records' proto, sorted.
func protoList() string {
	names := []string{analytics.FlowProto}
	for _, d := range analytics.Decoders() {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func TestExprUsesFields(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{"proto != tcp and class != flow", false},
		{"server 10.0.0.5:80 and latency > 5ms", false},
		{`proto http and method = "GET"`, true},
		{`not (status >= 500 or proto dns)`, true},
		{`client 10.0.0.0/8 or host ~ "x"`, true},
	} {
		e, err := Parse(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if got := e.UsesFields(); got != tc.want {
			t.Errorf("%s: UsesFields got %v, want %v", tc.expr, got, tc.want)
		}
	}
	for _, tc := range []struct {
		by   []string
		want bool
	}{{[]string{"proto"}, false}, {[]string{"proto", "server", "class"}, false}, {[]string{"proto", "method"}, true}} {
		a, err := NewAggregator(tc.by)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.UsesFields(); got != tc.want {
			t.Errorf("by %v: UsesFields got %v, want %v", tc.by, got, tc.want)
		}
	}
}
