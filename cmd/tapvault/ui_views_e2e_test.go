package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tapvault/tracegen"

	"github.com/chromedp/chromedp"
)

// TestUIBrowserViews checks the analysis views against the command line on
// the generated app trace: the diagnosis shows what tapvault diagnose
// --json says and its examples open their exchanges.
func TestUIBrowserViews(t *testing.T) {
	exe := findChromium(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	opts := appOpts
	opts.Packets = 8000
	if _, err := tracegen.GenerateFile(trace, opts); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, "--slow-network", "25ms", trace)

	addr := freeAddr(t, "127.0.0.1")
	defer startServe(t, store, addr)()
	ctx, bl, done := newBrowser(t, exe)
	defer done()

	// Diagnosis: the same findings, in the same order, with the same
	// headline and first sentence, as the CLI's; an example opens its
	// exchange.
	var diag struct {
		Exchanges int64
		Servers   []struct{ Server string }
		Findings  []struct {
			Kind, Server, Text string
			Detail             []string
			Count, Of          int64
			Numbers            map[string]json.Number
			Examples           []struct{ ID string }
		}
	}
	if err := json.Unmarshal([]byte(mustTV(t, "diagnose", "--data", store, "--json")), &diag); err != nil {
		t.Fatal(err)
	}
	if len(diag.Findings) < 2 {
		t.Fatalf("tapvault diagnose found %d findings on the app trace: the check needs several", len(diag.Findings))
	}
	run(t, ctx, "diagnose", chromedp.Navigate("http://"+addr+"/#/diagnose"), waitView("diagnose"), waitFor("#findings"))
	screenshot(t, ctx, "diagnose")
	type shownFinding struct {
		Kind, Server, Text, First, Count, Of string
		Numbers                              map[string]string
		Examples                             []string
	}
	shown := eval[[]shownFinding](t, ctx, `[...document.querySelectorAll('#findings section.finding')].map(s => ({
		Kind: s.dataset.kind, Server: s.dataset.server,
		Text: s.querySelector('.finding-text').textContent.replace(/^\d+\. /, ''),
		First: (s.querySelector('.finding-detail') || {}).textContent || '',
		Count: s.querySelector('a.count').dataset.count, Of: s.querySelector('a.count').dataset.of,
		Numbers: Object.fromEntries([...s.querySelectorAll('table.numbers tr')].map(tr => [tr.dataset.key, tr.querySelector('td').dataset.value])),
		Examples: [...s.querySelectorAll('a.example')].map(a => a.dataset.id),
	}))`)
	if len(shown) != len(diag.Findings) {
		t.Fatalf("diagnose: %d findings shown, tapvault diagnose --json has %d", len(shown), len(diag.Findings))
	}
	if got := eval[string](t, ctx, `document.querySelector('#diagnose-summary').dataset.exchanges`); got != strconv.FormatInt(diag.Exchanges, 10) {
		t.Errorf("diagnose exchanges: got %s, want %d", got, diag.Exchanges)
	}
	for i, f := range diag.Findings {
		s := shown[i]
		first := ""
		if len(f.Detail) > 0 {
			first = f.Detail[0]
		}
		if s.Kind != f.Kind || s.Server != f.Server || s.Text != f.Text || s.First != first {
			t.Errorf("finding %d: shown %s %s %q / %q, want %s %s %q / %q", i+1, s.Kind, s.Server, s.Text, s.First, f.Kind, f.Server, f.Text, first)
		}
		if s.Count != strconv.FormatInt(f.Count, 10) || s.Of != strconv.FormatInt(f.Of, 10) {
			t.Errorf("finding %d: %s of %s shown, want %d of %d", i+1, s.Count, s.Of, f.Count, f.Of)
		}
		for k, v := range f.Numbers {
			if s.Numbers[k] != v.String() {
				t.Errorf("finding %d number %s: shown %q, want %s", i+1, k, s.Numbers[k], v)
			}
		}
		if len(s.Numbers) != len(f.Numbers) {
			t.Errorf("finding %d: %d numbers shown, want %d", i+1, len(s.Numbers), len(f.Numbers))
		}
		var ids []string
		for _, e := range f.Examples {
			ids = append(ids, e.ID)
		}
		if !slices.Equal(s.Examples, ids) {
			t.Errorf("finding %d examples: shown %q, want %q", i+1, s.Examples, ids)
		}
	}
	var servers []string
	for _, s := range diag.Servers {
		servers = append(servers, s.Server)
	}
	if got := eval[[]string](t, ctx, `[...document.querySelectorAll('#diagnose-servers tbody tr')].map(tr => tr.dataset.server)`); !slices.Equal(got, servers) {
		t.Errorf("diagnose servers: shown %q, want %q", got, servers)
	}
	if txt := eval[string](t, ctx, `document.querySelector('main').textContent`); strings.Contains(txt, "[object ") {
		t.Errorf("diagnose shows an object where text belongs")
	}
	// The first finding's slowest example, clicked, is that exchange.
	ex := diag.Findings[0].Examples[0].ID
	run(t, ctx, "click a diagnosis example", click(`#findings section.finding a.example[data-id="`+ex+`"]`), waitView("exchange"), waitFor("#exchange-id"))
	if got := eval[string](t, ctx, `document.querySelector('#exchange-id').textContent`); got != ex {
		t.Errorf("the example link opened %s, want %s", got, ex)
	}
	if got := eval[string](t, ctx, `new URLSearchParams(location.hash.split('?')[1]).get('id')`); got != ex {
		t.Errorf("the example link's fragment names %s, want %s", got, ex)
	}

	// Latency explorer: per grouping, every group's numbers equal the
	// CLI's, and a click on a group's count lists exactly its exchanges,
	// slowest first.
	for _, c := range []struct {
		by   string
		pick func(groups []map[string]any) int
	}{
		{"proto,class", func(g []map[string]any) int { return len(g) / 2 }},
		{"server", func(g []map[string]any) int { return 0 }},
		{"client_ip", func(g []map[string]any) int { return len(g) - 1 }},
		// The group of records without a method (every non-HTTP one).
		{"method,status", func(g []map[string]any) int {
			for i, x := range g {
				if x["key"].(map[string]any)["method"] == "" {
					return i
				}
			}
			t.Fatal("no group without a method")
			return 0
		}},
	} {
		groups := jsonLines(t, mustTV(t, "latency", "--data", store, "--json", "--by", c.by))
		run(t, ctx, "latency by "+c.by, hash("#/latency?by="+url.QueryEscape(c.by)), waitView("latency"), waitFor("#explorer-table"))
		if c.by == "proto,class" {
			screenshot(t, ctx, "latency")
		}
		shown := eval[[]map[string]string](t, ctx, `[...document.querySelectorAll('#explorer-table tbody tr')].map(tr =>
			Object.fromEntries([['group', tr.dataset.group], ...[...tr.querySelectorAll('td[data-key]')].map(td => [td.dataset.key, td.textContent])]))`)
		if len(shown) != len(groups) {
			t.Errorf("latency by %s: %d groups shown, the CLI has %d", c.by, len(shown), len(groups))
			continue
		}
		for i, g := range groups {
			row := shown[i]
			var key map[string]any
			if err := json.Unmarshal([]byte(row["group"]), &key); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(key) != fmt.Sprint(g["key"]) {
				t.Errorf("latency by %s row %d: group %v, want %v", c.by, i, key, g["key"])
				continue
			}
			want := map[string]string{"count": jsCount(num(g, "count")), "no_response": jsCount(num(g, "no_response"))}
			for _, q := range []string{"p50", "p90", "p99", "max"} {
				want[q] = partDur(g, "latency_ns", q)
			}
			for _, p := range []string{"network", "server"} {
				want[p+"_p50"], want[p+"_p99"] = partDur(g, p+"_ns", "p50"), partDur(g, p+"_ns", "p99")
			}
			want["transfer_p50"] = partDur(g, "transfer_ns", "p50")
			for k, w := range want {
				if row[k] != w {
					t.Errorf("latency by %s %v %s: shown %q, want %q", c.by, key, k, row[k], w)
				}
			}
		}
		i := c.pick(groups)
		g := groups[i]
		run(t, ctx, "click a group", click(fmt.Sprintf(`#explorer-table tbody tr:nth-child(%d) a.group`, i+1)), waitView("exchanges"), waitFor("#exchanges-table"))
		expr := eval[string](t, ctx, `new URLSearchParams(location.hash.split('?')[1]).get('expr')`)
		recs := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", expr))
		got := eval[string](t, ctx, `document.querySelector('#count').dataset.count`)
		if got != strconv.Itoa(len(recs)) || int64(len(recs)) != num(g, "count") {
			t.Errorf("latency by %s, group %v (%q): the page lists %s exchanges, tapvault messages %d, the group has %d", c.by, g["key"], expr, got, len(recs), num(g, "count"))
		}
		first := eval[string](t, ctx, `(document.querySelector('#exchanges-table tbody tr') || {dataset: {}}).dataset.id || ''`)
		found := false
		for _, r := range recs {
			if r["id"] == first {
				found = true
				if l := num(r, "latency_ns"); l != num(g["latency_ns"].(map[string]any), "max") {
					t.Errorf("latency by %s, group %v: the first exchange listed has latency %d, the group's max is %d", c.by, g["key"], l, num(g["latency_ns"].(map[string]any), "max"))
				}
			}
		}
		if !found {
			t.Errorf("latency by %s, group %v: the first exchange listed, %s, is not one of the group's", c.by, g["key"], first)
		}
	}

	// Connections: the tcp connection records, their figures as the CLI
	// has them; a connection's packets are all its packets and its
	// exchanges those of its two ends within its life.
	conns := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", "proto tcp"))
	if len(conns) < 150 {
		t.Fatalf("only %d connection records: the check needs more than a page", len(conns))
	}
	run(t, ctx, "connections, by handshake server leg", hash("#/connections?sort=-hs_server_ns"), waitView("connections"), waitFor("#connections-table"))
	screenshot(t, ctx, "connections")
	if got := eval[string](t, ctx, `document.querySelector('#ccount').dataset.count`); got != strconv.Itoa(len(conns)) {
		t.Errorf("connections: %s shown, tapvault messages 'proto tcp' has %d", got, len(conns))
	}
	byID := map[string]map[string]any{}
	for _, r := range conns {
		byID[r["id"].(string)] = r
	}
	crows := eval[[]map[string]string](t, ctx, `[...document.querySelectorAll('#connections-table tbody tr')].map(tr =>
		Object.fromEntries([['id', tr.dataset.id], ...[...tr.querySelectorAll('td[data-key]')].map(td => [td.dataset.key, td.dataset.v])]))`)
	if len(crows) != 100 {
		t.Errorf("connections page 1: %d rows, want 100", len(crows))
	}
	prev := int64(1 << 62)
	for _, row := range crows {
		r := byID[row["id"]]
		if r == nil {
			t.Errorf("connections: row %s is not a connection record", row["id"])
			continue
		}
		for _, k := range []string{"req_first_ns", "hs_server_ns", "hs_client_ns", "req_bytes", "resp_bytes", "req_packets", "resp_packets", "retrans", "ooo", "dupack", "zerowin", "rst", "gap_bytes"} {
			if want := strconv.FormatInt(num(r, k), 10); row[k] != want {
				t.Errorf("connection %s %s: shown %s, want %s", row["id"], k, row[k], want)
			}
		}
		for _, k := range []string{"client", "server", "app", "close"} {
			if row[k] != r[k] {
				t.Errorf("connection %s %s: shown %q, want %q", row["id"], k, row[k], r[k])
			}
		}
		if hs := num(r, "hs_server_ns"); hs > prev {
			t.Errorf("connections sorted by -hs_server_ns: %d after %d", hs, prev)
		} else {
			prev = hs
		}
	}
	// The connection with the slowest server leg: its packets, then its
	// exchanges.
	c0 := byID[crows[0]["id"]]
	npk, _ := tv(t, false, "query", "--data", store, "--count", "--from", strconv.FormatInt(num(c0, "req_first_ns"), 10), "--to", strconv.FormatInt(max(num(c0, "resp_last_ns"), num(c0, "req_first_ns")), 10),
		eval[string](t, ctx, `new URLSearchParams(document.querySelector('#connections-table tbody tr a.packets').getAttribute('href').split('?')[1]).get('filter')`))
	run(t, ctx, "a connection's packets", click(`#connections-table tbody tr:first-child a.packets`), waitView("packets"), waitFor("#packets-table"))
	gotPk := eval[int](t, ctx, `document.querySelectorAll('#packets-table tbody tr').length`)
	if want := num(c0, "req_packets") + num(c0, "resp_packets"); int64(gotPk) != want || strings.TrimSpace(npk) != strconv.FormatInt(want, 10) {
		t.Errorf("connection %s: %d packets listed, tapvault query --count %s, the record counts %d", c0["id"], gotPk, strings.TrimSpace(npk), want)
	}
	run(t, ctx, "back to the connections", hash("#/connections?sort=-hs_server_ns"), waitView("connections"), waitFor("#connections-table"))
	run(t, ctx, "a connection's exchanges", click(`#connections-table tbody tr:first-child a.exchanges`), waitView("exchanges"), waitFor("#exchanges-table"))
	cexpr := eval[string](t, ctx, `new URLSearchParams(location.hash.split('?')[1]).get('expr')`)
	crecs := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", cexpr))
	if got := eval[string](t, ctx, `document.querySelector('#count').dataset.count`); got != strconv.Itoa(len(crecs)) || len(crecs) == 0 {
		t.Errorf("connection %s's exchanges (%q): %s listed, tapvault messages %d (want at least one)", c0["id"], cexpr, got, len(crecs))
	}
	for _, r := range crecs {
		if r["client"] != c0["client"] || r["server"] != c0["server"] || r["proto"] != c0["app"] {
			t.Errorf("connection %s (%s → %s, %s): exchange %s is %s → %s, %s", c0["id"], c0["client"], c0["server"], c0["app"], r["id"], r["client"], r["server"], r["proto"])
		}
	}
	// And its own record.
	run(t, ctx, "back to the connections", hash("#/connections?sort=-hs_server_ns"), waitView("connections"), waitFor("#connections-table"))
	run(t, ctx, "a connection's record", click(`#connections-table tbody tr:first-child a.record`), waitView("exchange"), waitFor("#exchange-id"))
	if got := eval[string](t, ctx, `document.querySelector('#exchange-id').textContent`); got != c0["id"] {
		t.Errorf("the connection's record link opened %s, want %s", got, c0["id"])
	}

	for _, e := range bl.take() {
		t.Errorf("browser: %s", e)
	}
}

// partDur is the page's text for a percentile q of part k of a latency
// group: "-" when the group has none.
func partDur(g map[string]any, k, q string) string {
	m, ok := g[k].(map[string]any)
	if !ok {
		return "-"
	}
	if _, ok := m[q]; !ok {
		return "-"
	}
	return jsDur(num(m, q))
}
