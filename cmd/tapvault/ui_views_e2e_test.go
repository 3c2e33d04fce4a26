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
