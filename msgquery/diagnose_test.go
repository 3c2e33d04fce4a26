package msgquery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"tapvault/analytics"
)

const (
	dt0 = int64(1_700_000_000_000_000_000)
	web = "198.51.100.10:80"
)

// dx builds a TCP exchange record with the additive split: network net,
// server srv, transfer 1 ms, client leg cli; evidence src.
func dx(id uint64, client, server string, net, srv, cli int64, src analytics.NetSource) *analytics.Record {
	r := &analytics.Record{
		ID: id, Proto: "http", Transport: 6,
		Client: netip.MustParseAddrPort(client), Server: netip.MustParseAddrPort(server),
	}
	start := dt0 + int64(id)*100*ms
	r.ReqFirst, r.ReqLast = start, start+10_000
	r.RespFirst = r.ReqLast + net + srv
	r.RespLast = r.RespFirst + ms
	r.Network, r.ServerTime, r.Transfer, r.ClientNet, r.RTT = net, srv, ms, cli, net+cli
	r.SetEvidence(src, analytics.ConfHigh, analytics.NearClient, analytics.WhyNone)
	r.Class = analytics.ClassHealthy
	return r
}

func kinds(d *Diagnosis) []string {
	var k []string
	for _, f := range d.Findings {
		k = append(k, f.Kind+" "+f.Server)
	}
	return k
}

func find(t *testing.T, d *Diagnosis, kind string) Finding {
	t.Helper()
	for _, f := range d.Findings {
		if f.Kind == kind {
			return f
		}
	}
	t.Fatalf("no %s finding; got %v", kind, kinds(d))
	return Finding{}
}

func noFind(t *testing.T, d *Diagnosis, kind string) {
	t.Helper()
	for _, f := range d.Findings {
		if f.Kind == kind {
			t.Fatalf("unexpected %s finding: %s %v", kind, f.Headline, f.Detail)
		}
	}
}

func TestDiagnoseSlowServer(t *testing.T) {
	dg := NewDiagnoser(DiagnoseOptions{})
	for i := range 40 {
		client := fmt.Sprintf("10.1.%d.%d:4000", i%4, i)
		switch {
		case i%4 == 1: // slow: a bare ACK a round trip after the request, the answer 40-49 ms later
			dg.Add(dx(uint64(i+1), client, web, 2*ms, 40*ms+int64(i)*ms/4, 100_000, analytics.NetBareAck), nil)
		default:
			dg.Add(dx(uint64(i+1), client, web, 2*ms, ms, 100_000, analytics.NetHandshake), nil)
		}
	}
	d := dg.Diagnosis()
	f := find(t, d, FindSlowServer)
	noFind(t, d, FindServerNetwork)
	noFind(t, d, FindClientNetwork)
	if f.Count != 10 || f.Of != 40 {
		t.Errorf("count %d of %d, want 10 of 40", f.Count, f.Of)
	}
	if f.Numbers["bare_ack"] != 10 || f.Numbers["network_p50_ns"] != 2*ms {
		t.Errorf("numbers %v, want bare_ack 10, network_p50_ns 2ms", f.Numbers)
	}
	if !strings.Contains(f.Headline, "ACKs are prompt") || !strings.Contains(f.Headline, web) {
		t.Errorf("headline %q", f.Headline)
	}
	// The slowest is the last slow one (i = 37, ID 38); the median of ten
	// is the fifth (i = 17, ID 18).
	if len(f.Examples) != 2 || f.Examples[0].ID != 38 || f.Examples[1].ID != 18 {
		t.Errorf("examples %+v, want IDs 38 (slowest) and 18 (median)", f.Examples)
	}
	if f.TierView {
		t.Error("tier view without backend calls")
	}
}

func TestDiagnoseSlowServerLowConfidence(t *testing.T) {
	// Behind a middlebox the split is weak: the headline says so rather
	// than blaming the application.
	dg := NewDiagnoser(DiagnoseOptions{})
	for i := range 30 {
		r := dx(uint64(i+1), "10.1.0.1:4000", web, 2*ms, 30*ms, 0, analytics.NetHandshake)
		r.SetEvidence(analytics.NetHandshake, analytics.ConfLow, analytics.NearClient, analytics.WhyMiddlebox)
		dg.Add(r, nil)
	}
	f := find(t, dg.Diagnosis(), FindSlowServer)
	if !strings.Contains(f.Headline, "low confidence") || strings.Contains(f.Headline, "ACKs are prompt") {
		t.Errorf("headline %q, want the low confidence said and no verdict on the application", f.Headline)
	}
	if f.Numbers["ack_on_response"] != 30 {
		t.Errorf("numbers %v, want 30 ACKs on the response", f.Numbers)
	}
}

func TestDiagnoseServerNetwork(t *testing.T) {
	// Four client networks, each with 3 slow round trips in 10: the
	// server's side.
	dg := NewDiagnoser(DiagnoseOptions{})
	id := uint64(0)
	for g := range 4 {
		for i := range 10 {
			id++
			net := 5 * ms
			if i < 3 {
				net = 35 * ms
			}
			dg.Add(dx(id, fmt.Sprintf("10.1.%d.%d:4000", g, i+1), web, net, ms, 50_000, analytics.NetHandshake), nil)
		}
	}
	d := dg.Diagnosis()
	f := find(t, d, FindServerNetwork)
	noFind(t, d, FindClientNetwork)
	noFind(t, d, FindSlowServer)
	if f.Count != 12 || f.Numbers["client_networks"] != 4 || f.Numbers["client_networks_slow"] != 4 {
		t.Errorf("count %d, numbers %v; want 12 slow over 4 of 4 networks", f.Count, f.Numbers)
	}
	if got := f.Numbers["extra_p50_ns"]; got != 30*ms {
		t.Errorf("extra p50 %d, want 30ms", got)
	}
	if !strings.Contains(strings.Join(f.Detail, " "), "(network_ns)") {
		t.Errorf("detail %q does not name the server's leg", f.Detail)
	}
}

func TestDiagnoseClientNetwork(t *testing.T) {
	// 10.1.3.0/24 and one IPv6 /48 are slow, the other networks not.
	dg := NewDiagnoser(DiagnoseOptions{})
	id := uint64(0)
	add := func(client string, cli int64) {
		id++
		dg.Add(dx(id, client, web, 3*ms, ms, cli, analytics.NetHandshake), nil)
	}
	for i := range 10 {
		for g := range 4 {
			cli := int64(200_000)
			if g == 3 {
				cli = 40 * ms
			}
			add(fmt.Sprintf("10.1.%d.%d:4000", g, i+1), cli)
		}
		add(fmt.Sprintf("[2001:db8:1:%x::1]:4000", i), 45*ms)   // one /48
		add(fmt.Sprintf("[2001:db8:2:%x::1]:4000", i), 300_000) // another
		add(fmt.Sprintf("10.2.0.%d:4000", i+1), 300_000)
	}
	d := dg.Diagnosis()
	f := find(t, d, FindClientNetwork)
	noFind(t, d, FindServerNetwork)
	var named []string
	for _, c := range f.Clients {
		if c.Affected {
			named = append(named, c.Net.String())
		}
	}
	slices.Sort(named)
	if want := []string{"10.1.3.0/24", "2001:db8:1::/48"}; !slices.Equal(named, want) {
		t.Errorf("named %v, want %v", named, want)
	}
	text := f.Headline + strings.Join(f.Detail, " ")
	for _, s := range []string{"10.1.3.0/24", "2001:db8:1::/48", "(client_net_ns)"} {
		if !strings.Contains(text, s) {
			t.Errorf("finding %q does not mention %s", text, s)
		}
	}
}

func TestDiagnoseOneClientNetwork(t *testing.T) {
	dg := NewDiagnoser(DiagnoseOptions{})
	for i := range 30 {
		dg.Add(dx(uint64(i+1), fmt.Sprintf("10.1.0.%d:4000", i+1), web, 30*ms, ms, 50_000, analytics.NetHandshake), nil)
	}
	f := find(t, dg.Diagnosis(), FindNetworkUnclear)
	if !strings.Contains(strings.Join(f.Detail, " "), "Only one client network (10.1.0.0/24)") {
		t.Errorf("detail %q", f.Detail)
	}
}

// tierRecs adds n front exchanges of 203.0.113.80:8080, each with a
// backend call to 10.10.1.20:5432 of its wait split as given, through
// the tier linker.
func tierRecs(t *testing.T, dg *Diagnoser, n int, before, backend, after int64) {
	t.Helper()
	tl, err := NewTierLinker(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	push := func(ls []Linked) {
		for _, l := range ls {
			dg.Add(l.Rec, l.Tier)
		}
	}
	for i := range n {
		f := dx(uint64(1000+i), fmt.Sprintf("10.1.%d.%d:4000", i%4, i+1), "203.0.113.80:8080", 30_000, before+backend+after, 2*ms, analytics.NetHandshake)
		b := &analytics.Record{ID: uint64(5000 + i), Proto: "postgres", Transport: 6,
			Client: netip.MustParseAddrPort(fmt.Sprintf("203.0.113.80:%d", 10000+i)), Server: netip.MustParseAddrPort("10.10.1.20:5432")}
		b.ReqFirst = f.ReqLast + before
		b.ReqLast = b.ReqFirst
		b.RespFirst = b.ReqFirst + backend - 1000
		b.RespLast = b.ReqFirst + backend
		b.Network, b.ServerTime, b.Transfer, b.ClientNet = 200_000, backend-201_000, 1000, 10_000
		b.SetEvidence(analytics.NetHandshake, analytics.ConfMedium, analytics.NearClient, analytics.WhyNone)
		push(tl.Push(b))
		push(tl.Push(f))
	}
	push(tl.Flush())
}

func TestDiagnoseTier(t *testing.T) {
	for _, c := range []struct {
		name                   string
		before, backend, after int64
		kind                   string
	}{
		{"database slow", ms, 40 * ms, ms, FindTierBackend},
		{"front end waits first", 30 * ms, 2 * ms, ms, FindTierBefore},
		{"front end works after", ms, 2 * ms, 30 * ms, FindTierAfter},
		{"spread", 12 * ms, 12 * ms, 12 * ms, FindTierSpread},
	} {
		t.Run(c.name, func(t *testing.T) {
			dg := NewDiagnoser(DiagnoseOptions{})
			tierRecs(t, dg, 30, c.before, c.backend, c.after)
			d := dg.Diagnosis()
			f := find(t, d, c.kind)
			if f.Server != "203.0.113.80:8080" || f.Of != 30 || !f.TierView {
				t.Errorf("finding on %s, of %d, tier view %v; want the front end, 30, true", f.Server, f.Of, f.TierView)
			}
			if len(f.Backends) != 1 || f.Backends[0].Server != "10.10.1.20:5432" || f.Backends[0].Calls != 30 || f.Backends[0].Proto != "postgres" {
				t.Errorf("backends %+v, want postgres 10.10.1.20:5432, 30 calls", f.Backends)
			}
			wait := c.before + c.backend + c.after
			if got, want := f.Numbers["backend_pct"], (200*c.backend+wait)/(2*wait); got != want {
				t.Errorf("backend share %d%%, want %d%%", got, want)
			}
			// The slow front end says where to look.
			if c.kind == FindTierBackend {
				s := find(t, d, FindSlowServer)
				if !s.TierView || !strings.Contains(strings.Join(s.Detail, " "), "10.10.1.20:5432") {
					t.Errorf("slow front end %q: want the tier view and its backend named", s.Detail)
				}
				find(t, d, FindSlowServer) // the database's own, too
				n := 0
				for _, f := range d.Findings {
					if f.Kind == FindSlowServer && f.Server == "10.10.1.20:5432" {
						n++
					}
				}
				if n != 1 {
					t.Errorf("want the database's own slow_server finding; got %v", kinds(d))
				}
			}
		})
	}
}

func TestDiagnoseNotEnoughData(t *testing.T) {
	dg := NewDiagnoser(DiagnoseOptions{})
	for i := range 19 { // one short of MinCount
		dg.Add(dx(uint64(i+1), "10.1.0.1:4000", web, 2*ms, 50*ms, 0, analytics.NetBareAck), nil)
	}
	d := dg.Diagnosis()
	if len(d.Findings) != 1 || d.Findings[0].Kind != FindNotEnoughData {
		t.Fatalf("findings %v, want only not_enough_data", kinds(d))
	}
	if d.NotEnoughServers != 1 || d.NotEnoughExchanges != 19 {
		t.Errorf("not enough: %d servers, %d exchanges; want 1, 19", d.NotEnoughServers, d.NotEnoughExchanges)
	}
	var b bytes.Buffer
	if err := WriteDiagnosis(&b, d, "store"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Not enough data") || !strings.Contains(b.String(), "needs 20") {
		t.Errorf("text:\n%s", b.String())
	}
	// Too few affected exchanges is no claim either.
	dg = NewDiagnoser(DiagnoseOptions{})
	for i := range 100 {
		srv := ms
		if i < 4 {
			srv = 50 * ms
		}
		dg.Add(dx(uint64(i+1), "10.1.0.1:4000", web, 2*ms, srv, 0, analytics.NetBareAck), nil)
	}
	d = dg.Diagnosis()
	f := find(t, d, FindHealthy)
	noFind(t, d, FindSlowServer)
	if f.Numbers["slow_server"] != 4 {
		t.Errorf("healthy numbers %v, want slow_server 4", f.Numbers)
	}
}

// TestDiagnoseOldRecords: records stored before the additive split carry
// no evidence, and their ServerTime is the whole wait: they have no split.
func TestDiagnoseOldRecords(t *testing.T) {
	dg := NewDiagnoser(DiagnoseOptions{})
	for i := range 30 {
		r := dx(uint64(i+1), "10.1.0.1:4000", web, 30*ms, 50*ms, 0, analytics.NetNone)
		r.Flags = 0
		dg.Add(r, nil)
	}
	d := dg.Diagnosis()
	f := find(t, d, FindCantSplit)
	if d.Split != 0 || f.Count != 0 || !strings.Contains(f.Detail[0], "cant_tell") {
		t.Errorf("split %d, finding %d %q; want no split", d.Split, f.Count, f.Detail)
	}
}

func TestDiagnoseUDPCantSplit(t *testing.T) {
	dg := NewDiagnoser(DiagnoseOptions{})
	for i := range 25 {
		r := dx(uint64(i+1), "10.1.0.1:4000", "198.51.100.53:53", -1, -1, -1, analytics.NetNone)
		r.Proto, r.Transport = "dns", 17
		r.RespFirst = r.ReqLast + 3*ms
		r.RespLast = r.RespFirst
		dg.Add(r, nil)
	}
	f := find(t, dg.Diagnosis(), FindCantSplit)
	if f.Numbers["latency_p50_ns"] != 3*ms || !strings.Contains(f.Detail[0], "UDP") {
		t.Errorf("cant_split %v %q", f.Numbers, f.Detail)
	}
}

func TestDiagnoseServerSelAndJSON(t *testing.T) {
	sel, err := ParseServerSel("203.0.113.80:8080")
	if err != nil {
		t.Fatal(err)
	}
	dg := NewDiagnoser(DiagnoseOptions{Server: sel})
	for i := range 30 {
		dg.Add(dx(uint64(i+1), "10.1.0.1:4000", web, 2*ms, 50*ms, 0, analytics.NetBareAck), nil) // not selected
	}
	tierRecs(t, dg, 30, ms, 40*ms, ms)
	d := dg.Diagnosis()
	var servers []string
	for _, s := range d.Servers {
		servers = append(servers, s.Server)
	}
	if want := []string{"10.10.1.20:5432", "203.0.113.80:8080"}; !slices.Equal(slices.Sorted(slices.Values(servers)), want) {
		t.Errorf("servers %v, want the front end and its backend %v", servers, want)
	}
	var j struct {
		Server   string `json:"server"`
		Findings []struct {
			Kind     string `json:"kind"`
			Text     string `json:"text"`
			Examples []struct {
				ID, Packets string
			} `json:"examples"`
		} `json:"findings"`
	}
	b := AppendDiagnosisJSON(nil, d)
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("JSON %s: %v", b, err)
	}
	if j.Server != "203.0.113.80:8080" || len(j.Findings) == 0 || len(j.Findings[0].Examples) == 0 {
		t.Fatalf("JSON %s", b)
	}
	e := j.Findings[0].Examples[0]
	if len(e.ID) != 16 || e.Packets != "/api/v1/messages/"+e.ID+"/packets" {
		t.Errorf("example %+v", e)
	}

	for _, c := range []struct{ in, want string }{
		{"10.0.0.5", "10.0.0.5"}, {"10.0.0.5:80", "10.0.0.5:80"}, {"[2001:db8::1]:443", "[2001:db8::1]:443"},
		{"2001:db8::1", "2001:db8::1"}, {"10.0.0.9/24", "10.0.0.0/24"}, {"", ""},
	} {
		s, err := ParseServerSel(c.in)
		if err != nil || s.String() != c.want {
			t.Errorf("ParseServerSel(%q) = %q, %v; want %q", c.in, s, err, c.want)
		}
	}
	for _, bad := range []string{"host", "10.0.0.5:", "10.0.0.5:0", "300.1.1.1"} {
		if _, err := ParseServerSel(bad); err == nil {
			t.Errorf("ParseServerSel(%q): no error", bad)
		}
	}
}

func TestDiagnoseSampled(t *testing.T) {
	dg := NewDiagnoser(DiagnoseOptions{MaxSamples: 50})
	for i := range 400 {
		srv := ms
		if i%4 == 0 {
			srv = 40 * ms
		}
		dg.Add(dx(uint64(i+1), fmt.Sprintf("10.1.%d.1:4000", i%8), web, 2*ms, srv, 0, analytics.NetBareAck), nil)
	}
	d := dg.Diagnosis()
	if !d.Sampled || d.Exchanges != 400 || d.Split != 400 || d.Servers[0].Exchanges != 400 {
		t.Fatalf("sampled %v, exchanges %d, split %d; want true, 400, 400", d.Sampled, d.Exchanges, d.Split)
	}
	f := find(t, d, FindSlowServer)
	if f.Of != 50 || f.Count < 5 || f.Count > 25 {
		t.Errorf("slow %d of %d in the sample, want about 12 of 50", f.Count, f.Of)
	}
}

func TestClientNet(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"10.1.2.3", "10.1.2.0/24"}, {"::ffff:10.1.2.3", "10.1.2.0/24"}, {"2001:db8:aa:bb::1", "2001:db8:aa::/48"},
	} {
		if got := ClientNet(netip.MustParseAddr(c.in)).String(); got != c.want {
			t.Errorf("ClientNet(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}
