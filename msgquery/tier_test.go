package msgquery

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	"tapvault/analytics"
)

func ex(id uint64, proto, client, server string, reqFirst, reqLast, respFirst, respLast int64) *analytics.Record {
	return &analytics.Record{
		ID: id, Proto: proto, Transport: 6,
		Client: netip.MustParseAddrPort(client), Server: netip.MustParseAddrPort(server),
		ReqFirst: reqFirst, ReqLast: reqLast, RespFirst: respFirst, RespLast: respLast,
		Network: 10, ServerTime: respFirst - reqLast, Transfer: respLast - respFirst, ClientNet: -1, RTT: -1,
		Class: "fast",
	}
}

const ms = int64(1_000_000)

// tierScenario: a front end 10.0.0.5:80 serves request F (ReqLast t0+1ms,
// RespFirst t0+20ms); during it, its host calls postgres twice and redis
// once from another port; another host's backend call and a call outside
// the wait must not be linked.
func tierScenario() []*analytics.Record {
	return []*analytics.Record{
		ex(0xb1, "pgsql", "10.0.0.5:50000", "10.0.0.9:5432", t0+3*ms, t0+3*ms, t0+7*ms, t0+8*ms),
		ex(0xb9, "redis", "10.0.0.6:50001", "10.0.0.7:6379", t0+9*ms, t0+9*ms, t0+10*ms, t0+10*ms), // other host
		ex(0xb2, "redis", "10.0.0.5:50002", "10.0.0.7:6379", t0+10*ms, t0+10*ms, t0+12*ms, t0+12*ms),
		ex(0xb3, "postgres", "10.0.0.5:50000", "10.0.0.9:5432", t0+13*ms, t0+13*ms, t0+15*ms, t0+16*ms),
		ex(0xf1, "http", "10.1.2.3:40000", "10.0.0.5:80", t0, t0+1*ms, t0+20*ms, t0+21*ms),
		ex(0xb4, "redis", "10.0.0.5:50002", "10.0.0.7:6379", t0+20*ms, t0+20*ms, t0+22*ms, t0+22*ms), // after the wait
		ex(0xf2, "http", "10.1.2.4:40000", "10.0.0.5:80", t0+30*ms, t0+31*ms, t0+35*ms, t0+35*ms),    // no backends
		{ID: 0xc1, Proto: "tcp", Class: analytics.ClassFlow, ReqFirst: t0, Client: netip.MustParseAddrPort("10.1.2.3:40000"), Server: netip.MustParseAddrPort("10.0.0.5:80")},
	}
}

func runLinker(t *testing.T, l *TierLinker, recs []*analytics.Record) map[uint64]Linked {
	t.Helper()
	got := map[uint64]Linked{}
	add := func(ls []Linked) {
		for _, x := range ls {
			if _, dup := got[x.Rec.ID]; dup {
				t.Fatalf("record %x released twice", x.Rec.ID)
			}
			got[x.Rec.ID] = x
		}
	}
	for _, r := range recs {
		add(l.Push(r))
	}
	add(l.Flush())
	if len(got) != len(recs) {
		t.Fatalf("got %d records back, want %d", len(got), len(recs))
	}
	return got
}

func checkScenario(t *testing.T, got map[uint64]Linked) {
	t.Helper()
	f := got[0xf1].Tier
	if f == nil || !f.IsFront {
		t.Fatalf("front: got tier %+v, want a front tier", f)
	}
	want := &Tier{IsFront: true, Backends: []uint64{0xb1, 0xb2, 0xb3},
		Before:  2 * ms,             // 3ms - 1ms
		Backend: 5*ms + 2*ms + 3*ms, // (8-3) + (12-10) + (16-13)
		After:   4 * ms,             // 20ms - 16ms
		Self:    19*ms - (5+2+3)*ms} // (20-1) - 10
	if !equalTier(f, want) {
		t.Errorf("front tier: got %+v, want %+v", f, want)
	}
	for _, id := range []uint64{0xb1, 0xb2, 0xb3} {
		if tr := got[id].Tier; tr == nil || tr.IsFront || tr.Frontend != 0xf1 {
			t.Errorf("backend %x: got tier %+v, want frontend f1", id, tr)
		}
	}
	for _, id := range []uint64{0xb4, 0xb9, 0xc1} {
		if tr := got[id].Tier; tr != nil {
			t.Errorf("record %x: got tier %+v, want none", id, tr)
		}
	}
	f2 := got[0xf2].Tier
	want2 := &Tier{IsFront: true, Before: -1, Backend: 0, After: -1, Self: 4 * ms}
	if f2 == nil || !equalTier(f2, want2) {
		t.Errorf("front without backends: got %+v, want %+v", f2, want2)
	}
}

func equalTier(a, b *Tier) bool {
	return a.IsFront == b.IsFront && slices.Equal(a.Backends, b.Backends) && a.Before == b.Before &&
		a.Backend == b.Backend && a.After == b.After && a.Self == b.Self && a.Frontend == b.Frontend
}

func TestTierLink(t *testing.T) {
	l, err := NewTierLinker(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkScenario(t, runLinker(t, l, tierScenario()))
}

// TestTierOutOfOrder: the same records in random orders, with a window
// larger than the disorder plus the front's duration, link the same way,
// and records come out only when final (never earlier than window after).
func TestTierOutOfOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		recs := tierScenario()
		rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		l, err := NewTierLinker(100*ms, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkScenario(t, runLinker(t, l, recs))
	}
}

// TestTierStreaming: many front exchanges in sequence; records are
// released while pushing (bounded memory), never before window past their
// completion, and every front gets its backend.
func TestTierStreaming(t *testing.T) {
	l, err := NewTierLinker(50*ms, []string{"postgresql"})
	if err != nil {
		t.Fatal(err)
	}
	var newest int64
	released, maxHeld := 0, 0
	got := map[uint64]Linked{}
	for i := range int64(1000) {
		base := t0 + i*10*ms
		recs := []*analytics.Record{
			ex(uint64(2*i+1), "pgsql", "10.0.0.5:50000", "10.0.0.9:5432", base+2*ms, base+2*ms, base+4*ms, base+4*ms),
			ex(uint64(2*i+2), "http", "10.1.2.3:40000", "10.0.0.5:80", base, base+1*ms, base+5*ms, base+6*ms),
		}
		for _, r := range recs {
			newest = max(newest, r.RespLast)
			for _, x := range l.Push(r) {
				if newest-x.Rec.RespLast <= 50*ms {
					t.Fatalf("record %d released %d ns after its completion, before the window", x.Rec.ID, newest-x.Rec.RespLast)
				}
				got[x.Rec.ID] = x
				released++
			}
			maxHeld = max(maxHeld, int(2*i+2)-released)
		}
	}
	for _, x := range l.Flush() {
		got[x.Rec.ID] = x
	}
	if maxHeld > 20 {
		t.Errorf("held up to %d records, want about a window's worth (12)", maxHeld)
	}
	for i := range uint64(1000) {
		f := got[2*i+2].Tier
		if f == nil || !slices.Equal(f.Backends, []uint64{2*i + 1}) || f.Before != ms || f.Backend != 2*ms || f.After != ms || f.Self != 2*ms {
			t.Fatalf("front %d: got %+v", 2*i+2, f)
		}
	}
}

// TestTierConcurrentFronts: a backend inside two fronts of the same host
// goes to the one with the latest ReqLast; a front longer than the window
// is not linked.
func TestTierConcurrentFronts(t *testing.T) {
	recs := []*analytics.Record{
		ex(0xb1, "mysql", "10.0.0.5:50000", "10.0.0.9:3306", t0+5*ms, t0+5*ms, t0+6*ms, t0+6*ms),
		ex(0xf1, "http", "10.1.2.3:40000", "10.0.0.5:80", t0, t0+1*ms, t0+10*ms, t0+10*ms),
		ex(0xf2, "http", "10.1.2.4:40000", "10.0.0.5:80", t0, t0+2*ms, t0+9*ms, t0+9*ms),
		ex(0xb2, "redis", "10.0.0.6:50000", "10.0.0.7:6379", t0+5*ms, t0+5*ms, t0+6*ms, t0+6*ms),
		ex(0xf3, "http", "10.1.2.4:40000", "10.0.0.6:80", t0, t0+1*ms, t0+40*ms, t0+40*ms), // longer than the window
	}
	l, _ := NewTierLinker(20*ms, nil)
	got := runLinker(t, l, recs)
	if tr := got[0xb1].Tier; tr == nil || tr.Frontend != 0xf2 {
		t.Errorf("b1: got %+v, want frontend f2", tr)
	}
	if tr := got[0xf2].Tier; tr == nil || !slices.Equal(tr.Backends, []uint64{0xb1}) {
		t.Errorf("f2: got %+v, want backend b1", tr)
	}
	if tr := got[0xf1].Tier; tr == nil || len(tr.Backends) != 0 {
		t.Errorf("f1: got %+v, want no backends", tr)
	}
	if got[0xf3].Tier != nil || got[0xb2].Tier != nil {
		t.Errorf("long front: got %+v / %+v, want no tiers", got[0xf3].Tier, got[0xb2].Tier)
	}
	if _, err := NewTierLinker(-1, nil); err == nil {
		t.Errorf("negative window: got no error")
	}
}

// bruteNearestRank is the textbook nearest-rank percentile.
func bruteNearestRank(v []int64, p float64) int64 {
	if len(v) == 0 {
		return -1
	}
	s := slices.Clone(v)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(math.Ceil(p / 100 * float64(len(s))))
	if k < 1 {
		k = 1
	}
	return s[k-1]
}

func TestAggregatorPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a, err := NewAggregator([]string{"proto", "status"})
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ proto, status string }
	lat := map[key][]int64{}
	net := map[key][]int64{}
	noResp := map[key]int64{}
	count := map[key]int64{}
	slowest := map[key]uint64{}
	maxLat := map[key]int64{}
	for i := range 20000 {
		r := httpRec()
		r.ID = uint64(i + 1)
		st := []int64{200, 404, 500}[rng.IntN(3)]
		r.Fields = []analytics.Field{{Key: "status", Int: st, IsInt: true}}
		if rng.IntN(4) == 0 {
			r.Proto = "dns"
		}
		k := key{r.Proto, itoa(st)}
		count[k]++
		if rng.IntN(10) == 0 {
			r.RespFirst, r.RespLast = 0, 0
			noResp[k]++
		} else {
			r.RespLast = r.ReqLast + rng.Int64N(1e9)
			lat[k] = append(lat[k], r.RespLast-r.ReqLast)
			if l := r.RespLast - r.ReqLast; slowest[k] == 0 || l > maxLat[k] {
				slowest[k], maxLat[k] = r.ID, l
			}
			r.Network = rng.Int64N(1e6) - 100_000
			if r.Network >= 0 {
				net[k] = append(net[k], r.Network)
			} else {
				r.Network = -1
			}
		}
		a.Add(r)
	}
	a.Add(&analytics.Record{Proto: "tcp", Class: analytics.ClassFlow}) // skipped
	groups := a.Groups()
	if len(groups) != len(count) {
		t.Fatalf("got %d groups, want %d", len(groups), len(count))
	}
	for i, g := range groups {
		if i > 0 && groups[i-1].Count < g.Count {
			t.Errorf("groups not sorted by count")
		}
		k := key{g.Key[0], g.Key[1]}
		if g.Count != count[k] || g.NoResponse != noResp[k] {
			t.Errorf("%v: got count %d/%d, want %d/%d", k, g.Count, g.NoResponse, count[k], noResp[k])
		}
		v := lat[k]
		for _, c := range []struct {
			got int64
			p   float64
		}{{g.Latency.P50, 50}, {g.Latency.P90, 90}, {g.Latency.P99, 99}, {g.Latency.Max, 100}, {g.Network.P50, -50}, {g.Network.P99, -99}} {
			vals, p := v, c.p
			if p < 0 {
				vals, p = net[k], -p
			}
			if want := bruteNearestRank(vals, p); c.got != want {
				t.Errorf("%v p%v: got %d, want %d", k, p, c.got, want)
			}
		}
		var sum float64
		for _, x := range v {
			sum += float64(x)
		}
		if want := sum / float64(len(v)); math.Abs(float64(g.Latency.Mean)-want) > 1 {
			t.Errorf("%v mean: got %d, want %.1f", k, g.Latency.Mean, want)
		}
		if g.Slowest != slowest[k] {
			t.Errorf("%v slowest: got id %d, want %d (latency %d)", k, g.Slowest, slowest[k], maxLat[k])
		}
		if g.Classes["slow_app"] != count[k] {
			t.Errorf("%v classes: got %v, want slow_app=%d", k, g.Classes, count[k])
		}
	}
}

func TestAggregatorCapAndOutput(t *testing.T) {
	a, err := NewAggregator([]string{"host", "server"})
	if err != nil {
		t.Fatal(err)
	}
	a.MaxGroups = 2
	for i, h := range []string{"A.example", "a.EXAMPLE", "b", "c", "d", "c"} {
		r := httpRec()
		r.Fields = []analytics.Field{{Key: "host", Str: h}}
		r.RespLast = r.ReqLast + int64(i+1)*ms
		a.Add(r)
		a.AddTier(r, &Tier{IsFront: true, Backends: []uint64{1}, Before: ms, Backend: 2 * ms, After: 3 * ms, Self: 4 * ms})
	}
	g := a.Groups()
	if len(g) != 3 || g[0].Count != 3 || g[0].Key[0] != OtherGroup || g[1].Key[0] != "a.example" || g[1].Count != 2 || g[2].Key[0] != "b" {
		t.Fatalf("got groups %+v", g)
	}
	if g[1].Tiers != 2 || g[1].TierBackend.P50 != 2*ms || g[1].TierBefore.P99 != ms {
		t.Errorf("tiers: got %+v", g[1])
	}
	out := AppendGroupsJSON(nil, a.By(), g)
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3", len(lines))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatalf("%s: %v", lines[1], err)
	}
	wantKey := map[string]any{"host": "a.example", "server": "10.0.0.5:80"}
	if !equalJSON(m["key"], wantKey) || m["count"] != 2.0 || m["no_response"] != 0.0 {
		t.Errorf("group JSON: got %s", lines[1])
	}
	for _, k := range []string{"latency_ns", "network_ns", "server_ns", "transfer_ns", "classes", "tier_before_ns", "tier_backend_ns", "tier_after_ns", "tier_self_ns"} {
		if _, ok := m[k]; !ok {
			t.Errorf("group JSON: no %s in %s", k, lines[1])
		}
	}
	if l := m["latency_ns"].(map[string]any); l["p50"] != 1e6 || l["max"] != 2e6 || l["mean"] != 1.5e6 {
		t.Errorf("latency_ns: got %v", l)
	}
	var tb bytes.Buffer
	if err := WriteTable(&tb, a.By(), g); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tb.String(), "a.example") || !strings.Contains(tb.String(), "1.5ms") || strings.Count(tb.String(), "\n") != 4 {
		t.Errorf("table:\n%s", tb.String())
	}
	t.Logf("table:\n%s", tb.String())
	for _, by := range [][]string{nil, {"proto", "proto"}, {"Bad Key"}, {""}} {
		if _, err := NewAggregator(by); err == nil {
			t.Errorf("NewAggregator(%q): got no error", by)
		}
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestAggregatorApprox: past MaxExact values the percentiles come from 1 %
// buckets: never below the exact figure, at most 1 % above it, Max exact,
// and the output says so.
func TestAggregatorApprox(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a, err := NewAggregator([]string{"proto"})
	if err != nil {
		t.Fatal(err)
	}
	a.MaxExact = 1000
	var lat []int64
	for i := range 50000 {
		r := httpRec()
		r.ID = uint64(i + 1)
		r.RespLast = r.ReqLast + 1 + rng.Int64N(int64(1e9))
		lat = append(lat, r.RespLast-r.ReqLast)
		a.Add(r)
	}
	g := a.Groups()[0]
	if !g.Latency.Approx || g.Latency.N != 50000 {
		t.Fatalf("got %+v, want approximate over 50000 values", g.Latency)
	}
	for _, c := range []struct {
		got int64
		p   float64
	}{{g.Latency.P50, 50}, {g.Latency.P90, 90}, {g.Latency.P99, 99}} {
		want := bruteNearestRank(lat, c.p)
		if c.got < want || float64(c.got) > float64(want)*1.01+1 {
			t.Errorf("p%v: got %d, want %d to 1%% above", c.p, c.got, want)
		}
	}
	if want := bruteNearestRank(lat, 100); g.Latency.Max != want {
		t.Errorf("max: got %d, want exactly %d", g.Latency.Max, want)
	}
	if a.exact > a.MaxExact {
		t.Errorf("kept %d values exactly, budget %d", a.exact, a.MaxExact)
	}
	if b := AppendGroupsJSON(nil, a.By(), a.Groups()); !strings.Contains(string(b), `"approx":true`) {
		t.Errorf("JSON does not say approx: %s", b)
	}
}

// TestTierSkipConnections: skipping the connection records instead of
// pushing them releases the other records in the same order with the same
// links, even when a connection record is what moves the clock past a
// record's window; and the caller may reuse a record once it is released
// (the linker keeps a released front's times, not its record).
func TestTierSkipConnections(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var recs []*analytics.Record
	for i := range int64(300) {
		base := t0 + i*7*ms
		recs = append(recs,
			ex(uint64(3*i+1), "redis", "10.0.0.5:50000", "10.0.0.9:6379", base+2*ms, base+2*ms, base+3*ms, base+4*ms),
			ex(uint64(3*i+2), "http", "10.1.2.3:40000", "10.0.0.5:80", base, base+1*ms, base+5*ms, base+6*ms))
		// A connection record completing well after the exchanges: it
		// alone advances the clock.
		recs = append(recs, &analytics.Record{ID: uint64(3*i + 3), Proto: "tcp", Class: analytics.ClassFlow,
			ReqFirst: base, RespLast: base + int64(rng.IntN(16))*ms, Client: netip.MustParseAddrPort("10.1.2.3:40000"), Server: netip.MustParseAddrPort("10.0.0.5:80")})
	}
	type out struct {
		id   uint64
		at   int // the input record whose Push or Skip released it
		tier Tier
	}
	run := func(skip bool) []out {
		l, err := NewTierLinker(20*ms, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []out
		at := 0
		take := func(ls []Linked) {
			for _, x := range ls {
				o := out{id: x.Rec.ID, at: at}
				if x.Tier != nil {
					o.tier = *x.Tier
				}
				got = append(got, o)
				*x.Rec = analytics.Record{} // reused by the caller
			}
		}
		for i, r := range recs {
			at = i
			c := *r
			if skip && IsConnection(&c) {
				take(l.Skip(&c))
				continue
			}
			take(l.Push(&c))
		}
		at = len(recs)
		take(l.Flush())
		return got
	}
	pushed, skipped := run(false), run(true)
	var want []out
	for _, o := range pushed {
		if o.id%3 != 0 {
			want = append(want, o)
		}
	}
	if len(skipped) != len(want) || len(want) != 600 {
		t.Fatalf("got %d records back skipping, want %d (600)", len(skipped), len(want))
	}
	linked := 0
	for i := range want {
		a, b := want[i], skipped[i]
		if a.id != b.id || a.at != b.at || !equalTier(&a.tier, &b.tier) {
			t.Fatalf("record %d: got %d %+v, want %d %+v", i, b.id, b.tier, a.id, a.tier)
		}
		if len(a.tier.Backends) > 0 {
			linked++
		}
	}
	if linked != 300 {
		t.Errorf("got %d fronts with their backend, want 300", linked)
	}
}

func TestConnTest(t *testing.T) {
	var c ConnTest
	for _, tc := range []struct {
		proto, class string
		want         bool
	}{
		{"tcp", analytics.ClassFlow, true}, {"http", "healthy", false}, {"TCP", "", true}, {"http", analytics.ClassFlow, true},
		{"http", "slow_app", false}, {"redis", "", false}, {"tcp", "", true}, {"tcp", "", true}, {"pgsql", analytics.ClassFast, false},
	} {
		r := &analytics.Record{Proto: tc.proto, Class: tc.class}
		if got, want := c.Is(r), IsConnection(r); got != tc.want || want != tc.want {
			t.Errorf("%s/%s: ConnTest %v, IsConnection %v, want %v", tc.proto, tc.class, got, want, tc.want)
		}
	}
}
