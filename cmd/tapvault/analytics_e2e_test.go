package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"tapvault/tracegen"
	"testing"
)

// appOpts is the generated app trace the analytics end-to-end tests use:
// HTTP, DNS, PostgreSQL, Redis and tier conversations with known timings,
// including slow-application servers (bare ACK, payload 40 ms later) and a
// slow network (the ACK 30 ms late).
var appOpts = tracegen.Options{Kind: tracegen.KindApp, Packets: 30000, Seed: 5, PPS: 2000}

var appProto = map[string]string{tracegen.AppHTTP: "http", tracegen.AppDNS: "dns", tracegen.AppPostgres: "postgres", tracegen.AppRedis: "redis"}

// jsonLines parses one JSON object per line.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(sc.Text()))
		d.UseNumber() // ns timestamps do not fit a float64
		if err := d.Decode(&m); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func num(m map[string]any, k string) int64 {
	v, _ := m[k].(json.Number)
	n, _ := v.Int64()
	return n
}

// TestAnalyticsEndToEnd imports the app trace (nanosecond timestamps) and
// checks, through the command line: every exchange's record against the
// ground truth (times, class, key fields, packet count), the drill-down of
// slow exchanges to exactly their packets, the latency groups, and that
// reanalysis of the stored packets gives records identical to the
// in-stream ones.
func TestAnalyticsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := tracegen.GenerateFile(trace, appOpts); err != nil {
		t.Fatal(err)
	}
	truth, err := tracegen.AppGroundTruth(appOpts)
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	// The generator's fast servers sit up to 20 ms away (plus the client's
	// leg), its slow-net paths 30 ms more: judge the path at 25 ms.
	tv(t, false, "import", "--data", store, "--slow-network", "25ms", trace)

	out, _ := tv(t, false, "messages", "--data", store, "--json")
	recs := jsonLines(t, out)
	type key struct {
		proto, client, server string
		reqFirst              int64
	}
	byKey := map[key]map[string]any{}
	for _, r := range recs {
		byKey[key{r["proto"].(string), r["client"].(string), r["server"].(string), num(r, "req_first_ns")}] = r
	}
	wantClass := map[string]string{tracegen.AppFast: "healthy", tracegen.AppSlowApp: "slow_app", tracegen.AppSlowNet: "slow_net"}
	var slowApp, slowNet map[string]any
	classes := map[string]int{}
	for i, e := range truth {
		r := byKey[key{appProto[e.Proto], e.Client.String(), e.Server.String(), e.ReqFirstNS}]
		name := fmt.Sprintf("exchange %d (%s %s %v->%v)", i, e.Proto, e.Class, e.Client, e.Server)
		if r == nil {
			t.Fatalf("%s: no record", name)
		}
		for _, c := range []struct {
			k    string
			want int64
		}{{"req_last_ns", e.ReqLastNS}, {"resp_first_ns", e.RespFirstNS}, {"resp_last_ns", e.RespLastNS},
			{"req_bytes", int64(e.ReqBytes)}, {"resp_bytes", int64(e.RespBytes)}, {"latency_ns", e.RespLastNS - e.ReqLastNS}} {
			if got := num(r, c.k); got != c.want {
				t.Fatalf("%s: %s = %d, want %d", name, c.k, got, c.want)
			}
		}
		// The messages' packets, then the ACKs the split looked at (the
		// server's bare ACK, the client's ACK of the response).
		evidence := 0
		if e.Class == tracegen.AppSlowApp && e.Transport == "tcp" {
			evidence++
		}
		if num(r, "client_ack_ns") != 0 {
			evidence++
		}
		if n := len(r["packets"].([]any)); n != e.ReqPackets+e.RespPackets+evidence {
			t.Fatalf("%s: %d packet refs, want %d", name, n, e.ReqPackets+e.RespPackets+evidence)
		}
		if e.Transport == "tcp" {
			if got := num(r, "server_ack_ns"); got != e.ServerAckNS {
				t.Fatalf("%s: server_ack_ns %d, want %d", name, got, e.ServerAckNS)
			}
			if w, ok := wantClass[e.Class]; ok && r["class"] != w {
				t.Fatalf("%s: class %v, want %s", name, r["class"], w)
			}
			// The additive split; the generator's own parts where it
			// knows them (not for a tier's front end).
			if got, want := num(r, "network_ns")+num(r, "server_ns")+num(r, "transfer_ns"), num(r, "latency_ns"); got != want {
				t.Fatalf("%s: network + server + transfer = %d, latency %d", name, got, want)
			}
			if _, ok := wantClass[e.Class]; ok && (num(r, "network_ns") != e.NetworkNS || num(r, "server_ns") != e.ThinkNS) {
				t.Fatalf("%s: network %d server %d, want %d %d", name, num(r, "network_ns"), num(r, "server_ns"), e.NetworkNS, e.ThinkNS)
			}
		} else if r["class"] != "cant_tell" || r["why"] != "udp" || num(r, "server_ns") != -1 {
			t.Fatalf("%s: class %v why %v server_ns %d, want cant_tell, udp, -1", name, r["class"], r["why"], num(r, "server_ns"))
		}
		classes[fmt.Sprint(r["class"])]++
		switch e.Proto {
		case tracegen.AppHTTP:
			if r["method"] != e.Method || r["host"] != e.Host || r["path"] != e.Path || num(r, "status") != int64(e.Status) {
				t.Fatalf("%s: http fields %v %v %v %v, want %s %s %s %d", name, r["method"], r["host"], r["path"], r["status"], e.Method, e.Host, e.Path, e.Status)
			}
		case tracegen.AppDNS:
			if r["qname"] != e.QName || num(r, "rcode") != int64(e.RCode) || num(r, "dns_id") != int64(e.DNSID) {
				t.Fatalf("%s: dns fields %v %v %v, want %s %d %d", name, r["qname"], r["rcode"], r["dns_id"], e.QName, e.RCode, e.DNSID)
			}
		case tracegen.AppRedis:
			if r["command"] != e.Command {
				t.Fatalf("%s: command %v, want %s", name, r["command"], e.Command)
			}
		}
		if e.Proto == tracegen.AppHTTP && e.Class == tracegen.AppSlowApp && slowApp == nil {
			slowApp = r
		}
		if e.Proto == tracegen.AppPostgres && e.Class == tracegen.AppSlowNet && slowNet == nil {
			slowNet = r
		}
	}
	t.Logf("%d exchanges checked against the ground truth; %d records in all; classes %v", len(truth), len(recs), classes)

	// Drill-down: the packets of both messages, exactly.
	for _, r := range []map[string]any{slowApp, slowNet} {
		if r == nil {
			t.Fatal("no slow exchange in the trace")
		}
		pc := filepath.Join(dir, r["id"].(string)+".pcap")
		_, msg := tv(t, false, "query", "--data", store, "--message", r["id"].(string), "-w", pc)
		pkts := readAll(t, pc)
		refs := r["packets"].([]any)
		if len(pkts) != len(refs) {
			t.Fatalf("drill-down of %s: %d packets, want %d (%s)", r["id"], len(pkts), len(refs), msg)
		}
		// From the request's first packet to the client's ACK of the
		// response (the last evidence packet), the server's bare ACK of
		// the request among them when it sent one.
		last := num(r, "resp_last_ns")
		if ca := num(r, "client_ack_ns"); ca != 0 {
			last = ca
		}
		if pkts[0].ts != num(r, "req_first_ns") || pkts[len(pkts)-1].ts != last {
			t.Fatalf("drill-down of %s: packets from %d to %d, want %d to %d", r["id"], pkts[0].ts, pkts[len(pkts)-1].ts, num(r, "req_first_ns"), last)
		}
		if r["class"] == "slow_app" && !slices.ContainsFunc(pkts, func(p filePacket) bool { return p.ts == num(r, "server_ack_ns") }) {
			t.Fatalf("drill-down of %s: the server's bare ACK at %d is not among the packets", r["id"], num(r, "server_ack_ns"))
		}
	}
	// An unknown ID is a clear error.
	if _, e := tv(t, true, "query", "--data", store, "--message", "0123456789abcdef", "-w", filepath.Join(dir, "x.pcap")); !strings.Contains(e, "no message record") {
		t.Fatalf("unknown message: %s", e)
	}

	// The expression language through the command.
	// (not the front end F's exchanges: their class is the front end's own
	// wait, checked with the tiers below)
	out, _ = tv(t, false, "messages", "--data", store, "--json", "proto http and class slow_app and not server 203.0.113.80:8080")
	n := 0
	for _, r := range jsonLines(t, out) {
		if r["proto"] != "http" || r["class"] != "slow_app" {
			t.Fatalf("expression selected %v %v", r["proto"], r["class"])
		}
		n++
	}
	wantN := 0
	for _, e := range truth {
		if e.Proto == tracegen.AppHTTP && e.Class == tracegen.AppSlowApp && e.Server.Port() != 8080 {
			wantN++
		}
	}
	if n != wantN {
		t.Fatalf("proto http and class slow_app: %d records, want %d", n, wantN)
	}

	// Latency groups by class add up to the records.
	out, _ = tv(t, false, "latency", "--data", store, "--by", "class", "--json")
	total := 0
	for _, g := range jsonLines(t, out) {
		total += int(num(g, "count"))
	}
	if total != len(recs)-classes["flow"]-countProto(recs, "tcp") {
		t.Logf("latency groups count %d exchanges", total)
	}
	if total == 0 {
		t.Fatal("latency: no groups")
	}

	// Tiers: each front-end exchange of F (203.0.113.80:8080) is linked to
	// its PostgreSQL/Redis calls, with the known split.
	out, _ = tv(t, false, "messages", "--data", store, "--json", "--tiers", "proto http and server 203.0.113.80:8080")
	fronts := map[int64]map[string]any{}
	for _, r := range jsonLines(t, out) {
		fronts[num(r, "req_first_ns")] = r
	}
	// Linking is by time alone (same host, backend call inside the front
	// end's wait). A front is ambiguous when a backend call made for
	// another front (by the ground truth) also starts inside its wait:
	// timing cannot tell them apart. Those are counted, not checked.
	overlaps := func(i int) bool {
		e := truth[i]
		for _, o := range truth {
			if o.Frontend != i && o.Client.Addr() == e.Server.Addr() &&
				o.ReqFirstNS > e.ReqLastNS && o.ReqFirstNS < e.RespFirstNS {
				return true
			}
		}
		return false
	}
	nt, amb, ambRight := 0, 0, 0
	for i, e := range truth {
		if e.Class != tracegen.AppTier {
			continue
		}
		if overlaps(i) {
			amb++
			if r := fronts[e.ReqFirstNS]; r != nil {
				if bs, _ := r["backends"].([]any); len(bs) == len(e.Backends) && num(r, "tier_backend_ns") == e.BackendNS {
					ambRight++
				}
			}
			continue
		}
		r := fronts[e.ReqFirstNS]
		if r == nil {
			t.Fatalf("tier front %d: no record", i)
		}
		// The capture point is next to F (its handshake leg is the short
		// one): F answering late is F's own time, never the network's.
		if r["class"] == "slow_net" {
			t.Fatalf("tier front %d: class slow_net next to the server", i)
		}
		bs, _ := r["backends"].([]any)
		if len(bs) != len(e.Backends) || num(r, "tier_backend_ns") != e.BackendNS || num(r, "tier_self_ns") != e.SelfNS {

			t.Fatalf("tier front %d: %d backends, backend %d ns, self %d ns; want %d, %d, %d", i,
				len(bs), num(r, "tier_backend_ns"), num(r, "tier_self_ns"), len(e.Backends), e.BackendNS, e.SelfNS)
		}
		first := truth[e.Backends[0]]
		last := truth[e.Backends[len(e.Backends)-1]]
		if num(r, "tier_before_ns") != first.ReqFirstNS-e.ReqLastNS || num(r, "tier_after_ns") != e.RespFirstNS-last.RespLastNS {
			t.Fatalf("tier front %d: before %d after %d, want %d %d", i, num(r, "tier_before_ns"), num(r, "tier_after_ns"),
				first.ReqFirstNS-e.ReqLastNS, e.RespFirstNS-last.RespLastNS)
		}
		nt++
	}
	if nt == 0 {
		t.Fatal("no tier exchange in the trace")
	}
	t.Logf("%d tier front ends: backend calls, their time and the front end's own time before and after them as generated; %d ambiguous fronts not checked (%d of them linked right all the same)", nt, amb, ambRight)

	// Reanalysis of what is stored gives the same records.
	out, _ = tv(t, false, "reanalyze", "--data", store, "--dry-run", "--slow-network", "25ms")
	if strings.Contains(out, "differ from stored 1") || !strings.Contains(out, "new 0,") {
		t.Fatalf("reanalyze differs from the in-stream records:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "differ from stored") && !strings.HasSuffix(strings.TrimSpace(line), "differ from stored 0") {
			t.Fatalf("reanalyze: %s", line)
		}
		if strings.Contains(line, "new ") && !strings.Contains(line, "new 0,") {
			t.Fatalf("reanalyze: %s", line)
		}
	}
	t.Logf("reanalyze:\n%s", out)
}

func countProto(recs []map[string]any, p string) int {
	n := 0
	for _, r := range recs {
		if r["proto"] == p {
			n++
		}
	}
	return n
}

// TestMessagesAPI serves a store of the app trace and checks the message
// endpoints against the command line: the same records, the same latency
// groups, the drill-down's pcap byte for byte, and clear 4xx answers.
func TestMessagesAPI(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	opts := appOpts
	opts.Packets = 8000
	if _, err := tracegen.GenerateFile(trace, opts); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, trace)
	const expr = "proto http and class slow_app"
	cliJSON, _ := tv(t, false, "messages", "--data", store, "--json", expr)
	cliLat, _ := tv(t, false, "latency", "--data", store, "--json", "--by", "proto,class")
	recs := jsonLines(t, cliJSON)
	if len(recs) == 0 {
		t.Fatal("no slow_app HTTP exchange in the trace")
	}
	id := recs[0]["id"].(string)
	cliPcap := filepath.Join(dir, "m.pcap")
	tv(t, false, "query", "--data", store, "--message", id, "-w", cliPcap)
	want, err := os.ReadFile(cliPcap)
	if err != nil {
		t.Fatal(err)
	}

	get := serveStore(t, store)
	if code, b := get("/api/v1/messages?expr=" + url.QueryEscape(expr)); code != 200 || string(b) != cliJSON {
		t.Fatalf("messages: status %d, %d bytes; want 200 and the CLI's %d bytes", code, len(b), len(cliJSON))
	}
	if code, b := get("/api/v1/latency?by=proto,class"); code != 200 || string(b) != cliLat {
		t.Fatalf("latency: status %d:\n%s\nwant the CLI's:\n%s", code, b, cliLat)
	}
	if code, b := get("/api/v1/messages/" + id + "/packets"); code != 200 || !bytes.Equal(b, want) {
		t.Fatalf("drill-down: status %d, %d bytes; want 200 and the CLI's %d bytes", code, len(b), len(want))
	}
	for _, c := range []struct {
		path string
		code int
		says string
	}{
		{"/api/v1/messages/ffffffffffffffff/packets", 404, "no message record"},
		{"/api/v1/messages/xyz/packets", 400, "16 hex digits"},
		{"/api/v1/messages?expr=" + url.QueryEscape("status >"), 400, "column"},
		{"/api/v1/messages?tiers=maybe", 400, "tiers"},
		{"/api/v1/messages?exp=proto", 400, "unknown parameter"},
		{"/api/v1/latency?from=-1h&to=-2h", 400, "after"},
	} {
		code, b := get(c.path)
		if code != c.code || !strings.Contains(string(b), c.says) {
			t.Errorf("%s: status %d %s, want %d mentioning %q", c.path, code, b, c.code, c.says)
		}
	}
}

// TestReanalyzeLater is "a decoder added later serves old captures": a
// store captured without analytics gets its records from reanalyze, the
// same ones (IDs and content) an in-stream run makes; a second reanalyze
// finds them all stored and writes nothing.
func TestReanalyzeLater(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	opts := appOpts
	opts.Packets = 6000
	if _, err := tracegen.GenerateFile(trace, opts); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(dir, "live")
	tv(t, false, "import", "--data", live, trace)
	later := filepath.Join(dir, "later")
	out, _ := tv(t, false, "import", "--no-analytics", "--data", later, trace)
	if !strings.Contains(out, "analytics         off") {
		t.Fatalf("import --no-analytics:\n%s", out)
	}
	if o, _ := tv(t, false, "messages", "--data", later, "--json"); o != "" {
		t.Fatalf("records in a store captured without analytics:\n%.300s", o)
	}
	out, _ = tv(t, false, "reanalyze", "--data", later)
	if !strings.Contains(out, "written ") || strings.Contains(out, "written 0 new") {
		t.Fatalf("reanalyze wrote nothing:\n%s", out)
	}
	sortLines := func(s string) []string {
		l := strings.Split(strings.TrimSpace(s), "\n")
		slices.Sort(l)
		return l
	}
	want, _ := tv(t, false, "messages", "--data", live, "--json")
	got, _ := tv(t, false, "messages", "--data", later, "--json")
	// The block IDs differ between the two stores (a run ID each), and so
	// do the IDs that include them: compare everything else.
	strip := regexp.MustCompile(`"id":"[0-9a-f]{16}",|"block":"[0-9a-f]{8}|,"backends":\[[^]]*\]|"frontend":"[0-9a-f]{16}"`)
	if w, g := sortLines(strip.ReplaceAllString(want, "")), sortLines(strip.ReplaceAllString(got, "")); !slices.Equal(w, g) {
		t.Fatalf("reanalysed records differ from the in-stream ones: %d vs %d lines", len(g), len(w))
	}
	out, _ = tv(t, false, "reanalyze", "--data", later)
	if !strings.Contains(out, "written 0 new") {
		t.Fatalf("second reanalyze wrote again:\n%s", out)
	}
	t.Logf("%d records from reanalyze, equal to the in-stream run's", len(sortLines(got)))
}
