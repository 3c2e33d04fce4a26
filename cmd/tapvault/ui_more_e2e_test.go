package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"tapvault/tracegen"
)

// uiStore imports the generated app trace and the hostile one into a
// store, serves it, and opens a browser on it.
func uiStore(t *testing.T, packets int) (store, addr string, ctx context.Context, bl *browserLog) {
	t.Helper()
	exe := findChromium(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	opts := appOpts
	opts.Packets = packets
	if _, err := tracegen.GenerateFile(trace, opts); err != nil {
		t.Fatal(err)
	}
	hostile := filepath.Join(dir, "hostile.pcap")
	writeHostileTrace(t, hostile, time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC))
	store = filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, "--slow-network", "25ms", trace, hostile)
	addr = freeAddr(t, "127.0.0.1")
	t.Cleanup(startServe(t, store, addr))
	ctx, bl, done := newBrowser(t, exe)
	t.Cleanup(done)
	return store, addr, ctx, bl
}

// heatmapRowOf is the heatmap's latency row, computed here from the
// documented bounds (docs/api.md): 0, then 1-2-5 from 1 µs to 100 s.
func heatmapRowOf(lat int64) int {
	bounds := []int64{0}
	for d := int64(1000); d < 100e9; d *= 10 {
		bounds = append(bounds, d, 2*d, 5*d)
	}
	bounds = append(bounds, 100e9)
	r := 0
	for i, b := range bounds {
		if lat >= b {
			r = i
		}
	}
	return r
}

// TestUIBrowserHeatmap: the latency explorer's heatmap of one group counts,
// cell by cell, what the group's records from tapvault messages give when
// bucketed by their request time and latency; a cell, clicked, lists
// exactly its exchanges.
func TestUIBrowserHeatmap(t *testing.T) {
	store, addr, ctx, bl := uiStore(t, 8000)
	run(t, ctx, "latency by proto", chromedp.Navigate("http://"+addr+"/#/latency?by=proto"), waitView("latency"), waitFor("#explorer-table"), waitFor("#heatmap"))
	// Without a group: every exchange the explorer groups.
	all := eval[string](t, ctx, `document.querySelector('#heatmap-count').dataset.count`)
	var total int64
	for _, g := range jsonLines(t, mustTV(t, "latency", "--data", store, "--json", "--by", "proto")) {
		total += num(g, "count")
	}
	if all != strconv.FormatInt(total, 10) {
		t.Errorf("heatmap of all exchanges: %s, tapvault latency's groups add up to %d", all, total)
	}
	run(t, ctx, "the http group's heatmap", click(`#explorer-table tbody tr[data-group='{"proto":"http"}'] a.hm`), waitView("latency"), waitFor("#heatmap"))
	screenshot(t, ctx, "heatmap")
	type info struct{ Count, From, To, Step, Expr string }
	hi := eval[info](t, ctx, `(d => ({Count: d.count, From: d.from, To: d.to, Step: d.step, Expr: d.expr}))(document.querySelector('#heatmap-count').dataset)`)
	if want := `proto != tcp and class != flow and proto "http"`; hi.Expr != want {
		t.Fatalf("heatmap expression %q, want %q", hi.Expr, want)
	}
	from, _ := strconv.ParseInt(hi.From, 10, 64)
	to, _ := strconv.ParseInt(hi.To, 10, 64)
	step, _ := strconv.ParseInt(hi.Step, 10, 64)
	cols := int64(60)
	if step != (to-from)/cols+1 {
		t.Errorf("heatmap step %d over [%d, %d]: want %d for 60 columns", step, from, to, (to-from)/cols+1)
	}
	recs := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", hi.Expr))
	if hi.Count != strconv.Itoa(len(recs)) {
		t.Errorf("heatmap of http: %s exchanges, tapvault messages %d", hi.Count, len(recs))
	}
	want := map[string]int{}
	for _, r := range recs {
		rf := num(r, "req_first_ns")
		if rf < from || rf > to {
			t.Fatalf("record %s began at %d, outside the heatmap's [%d, %d] (the store's span)", r["id"], rf, from, to)
		}
		c := (rf - from) / step
		row := "none"
		if l := num(r, "latency_ns"); l >= 0 {
			row = strconv.Itoa(heatmapRowOf(l))
		}
		want[fmt.Sprintf("%d/%s", c, row)]++
	}
	got := eval[map[string]int](t, ctx, `Object.fromEntries([...document.querySelectorAll('#heatmap a.cell')].map(a => [a.dataset.col + '/' + a.dataset.row, +a.dataset.count]))`)
	if len(got) != len(want) {
		t.Errorf("heatmap: %d cells drawn, the records fill %d", len(got), len(want))
	}
	best, bestN := "", 0
	for k, n := range want {
		if got[k] != n {
			t.Errorf("heatmap cell %s: %d drawn, %d records", k, got[k], n)
		}
		if n > bestN || n == bestN && k < best {
			best, bestN = k, n
		}
	}
	t.Logf("heatmap of http: %d records in %d cells; the fullest, %s, holds %d", len(recs), len(want), best, bestN)
	// The fullest cell, clicked: its exchanges, as many as it counts and as
	// tapvault messages gives for the link's expression and window.
	col, row, _ := strings.Cut(best, "/")
	run(t, ctx, "click a cell", chromedp.Evaluate(fmt.Sprintf(`document.querySelector('#heatmap a.cell[data-col="%s"][data-row="%s"]').dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}))`, col, row), nil),
		waitView("exchanges"), waitFor("#exchanges-table"))
	p := eval[map[string]string](t, ctx, `Object.fromEntries(new URLSearchParams(location.hash.split('?')[1]))`)
	cli := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", "--from", p["from"], "--to", p["to"], p["expr"]))
	shown := eval[string](t, ctx, `document.querySelector('#count').dataset.count`)
	if shown != strconv.Itoa(bestN) || len(cli) != bestN {
		t.Errorf("cell %s (%d exchanges): the page lists %s, tapvault messages %d for %q in [%s, %s]", best, bestN, shown, len(cli), p["expr"], p["from"], p["to"])
	}
	c, _ := strconv.ParseInt(col, 10, 64)
	if p["from"] != strconv.FormatInt(from+c*step, 10) || p["to"] != strconv.FormatInt(from+(c+1)*step-1, 10) {
		t.Errorf("cell %s: the exchanges' window is [%s, %s], want the column's [%d, %d]", best, p["from"], p["to"], from+c*step, from+(c+1)*step-1)
	}
	for _, r := range cli {
		rf := num(r, "req_first_ns")
		l := num(r, "latency_ns")
		rw := "none"
		if l >= 0 {
			rw = strconv.Itoa(heatmapRowOf(l))
		}
		if (rf-from)/step != c || rw != row || r["proto"] != "http" {
			t.Errorf("cell %s lists %s (%s, began %d, latency %d): not the cell's", best, r["id"], r["proto"], rf, l)
		}
	}
	if got := eval[string](t, ctx, `new URLSearchParams(location.hash.split('?')[1]).get('sort')`); got != "-latency_ns" {
		t.Errorf("a cell's exchanges are sorted by %q, want -latency_ns", got)
	}
	for _, e := range bl.take() {
		t.Errorf("browser: %s", e)
	}
}

// TestUIBrowserTiers: the tiers view's sums per front end and per backend
// server equal what the records of tapvault messages --tiers add up to,
// its examples are the longest waits, and an example opens as the
// waterfall of exactly its backend calls.
func TestUIBrowserTiers(t *testing.T) {
	store, addr, ctx, bl := uiStore(t, 8000)
	recs := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", "--tiers"))
	byID := map[string]map[string]any{}
	for _, r := range recs {
		byID[r["id"].(string)] = r
	}
	type frontSum struct {
		fronts, withB, wait, before, backend, between, after, noB int64
		backends                                                  map[string][2]int64 // proto server -> calls, ns
		waits                                                     []int64
	}
	want := map[string]*frontSum{}
	for _, r := range recs {
		bs, ok := r["backends"].([]any)
		if !ok {
			continue
		}
		fk := r["proto"].(string) + " " + r["server"].(string)
		f := want[fk]
		if f == nil {
			f = &frontSum{backends: map[string][2]int64{}}
			want[fk] = f
		}
		f.fronts++
		wait := num(r, "resp_first_ns") - num(r, "req_last_ns")
		if len(bs) == 0 {
			f.noB += wait
			continue
		}
		f.withB++
		f.wait += wait
		f.waits = append(f.waits, wait)
		f.before += num(r, "tier_before_ns")
		f.after += num(r, "tier_after_ns")
		f.backend += num(r, "tier_backend_ns")
		f.between += num(r, "tier_self_ns") - num(r, "tier_before_ns") - num(r, "tier_after_ns")
		for _, id := range bs {
			b := byID[id.(string)]
			if b == nil {
				t.Fatalf("front %s names backend %s, not among tapvault messages --tiers' records", r["id"], id)
			}
			if b["frontend"] != r["id"] {
				t.Errorf("backend %s: frontend %v, but front %s names it", id, b["frontend"], r["id"])
			}
			k := b["proto"].(string) + " " + b["server"].(string)
			c := f.backends[k]
			f.backends[k] = [2]int64{c[0] + 1, c[1] + num(b, "resp_last_ns") - num(b, "req_first_ns")}
		}
	}
	if len(want) == 0 {
		t.Fatal("no front exchange in the app trace")
	}
	type shownRow struct {
		Front, Backend string
		V              map[string]string
		Examples       []string
	}
	var withCalls string
	// By default the front ends with backend calls; with all=1 every
	// server of a front exchange.
	for _, all := range []bool{false, true} {
		if all {
			run(t, ctx, "tiers, all", click("#tiers-all"), waitView("tiers"), waitFor("#tiers-table"))
		} else {
			run(t, ctx, "tiers", chromedp.Navigate("http://"+addr+"/#/tiers"), waitView("tiers"), waitFor("#tiers-table"))
			screenshot(t, ctx, "tiers-view")
		}
		rows := eval[[]shownRow](t, ctx, `[...document.querySelectorAll('#tiers-table tbody tr')].map(tr => ({Front: tr.dataset.proto + ' ' + tr.dataset.front, Backend: tr.dataset.backend || '',
			V: Object.fromEntries([...tr.querySelectorAll('td[data-key]')].map(td => [td.dataset.key, td.dataset.ns || td.dataset.v || td.textContent])),
			Examples: [...tr.querySelectorAll('a.example')].map(a => a.dataset.id)}))`)
		fronts, wantFronts := 0, 0
		left := map[string]bool{} // backend rows not yet seen
		for front, f := range want {
			if all || f.withB > 0 {
				wantFronts++
			}
			for k := range f.backends {
				left[front+" "+k] = true
			}
		}
		for _, row := range rows {
			f := want[row.Front]
			if f == nil {
				t.Errorf("tiers: front end %s shown, no front exchange of tapvault messages --tiers has that server", row.Front)
				continue
			}
			if row.Backend != "" {
				c := f.backends[row.Backend]
				if row.V["calls"] != strconv.FormatInt(c[0], 10) || row.V["ns"] != strconv.FormatInt(c[1], 10) {
					t.Errorf("tiers %s -> %s: %s calls, %s ns shown; the records have %d calls, %d ns", row.Front, row.Backend, row.V["calls"], row.V["ns"], c[0], c[1])
				}
				delete(left, row.Front+" "+row.Backend)
				continue
			}
			fronts++
			if !all && f.withB == 0 {
				t.Errorf("tiers: %s shown by default, but none of its exchanges made a backend call", row.Front)
			}
			for k, v := range map[string]int64{"fronts": f.fronts, "with_backends": f.withB, "wait_ns": f.wait, "before_ns": f.before, "backend_ns": f.backend,
				"between_ns": f.between, "after_ns": f.after, "no_backend_wait_ns": f.noB} {
				if row.V[k] != strconv.FormatInt(v, 10) {
					t.Errorf("tiers %s %s: shown %s, the records add up to %d", row.Front, k, row.V[k], v)
				}
			}
			// The examples are the longest waits, longest first.
			waits := slices.Clone(f.waits)
			slices.Sort(waits)
			slices.Reverse(waits)
			if len(row.Examples) != min(3, len(waits)) {
				t.Errorf("tiers %s: %d examples, want %d", row.Front, len(row.Examples), min(3, len(waits)))
			}
			for i, id := range row.Examples {
				r := byID[id]
				if w := num(r, "resp_first_ns") - num(r, "req_last_ns"); i < len(waits) && w != waits[i] {
					t.Errorf("tiers %s example %d (%s): wait %d, the %d. longest is %d", row.Front, i+1, id, w, i+1, waits[i])
				}
			}
			if len(row.Examples) > 0 && withCalls == "" {
				withCalls = row.Examples[0]
			}
		}
		t.Logf("tiers (all %v): %d rows shown (%d front ends)", all, len(rows), fronts)
		if fronts != wantFronts {
			t.Errorf("tiers (all %v): %d front ends shown, the records have %d", all, fronts, wantFronts)
		}
		for k := range left {
			t.Errorf("tiers: backend %s not shown", k)
		}
	}
	if withCalls == "" {
		t.Fatal("tiers: no example shown")
	}
	// An example opens as its waterfall: exactly its calls.
	run(t, ctx, "a tiers example", click(`#tiers-table a.example[data-id="`+withCalls+`"]`), waitView("exchange"), waitFor("#waterfall"))
	drawn := eval[[]string](t, ctx, `[...document.querySelectorAll('#waterfall a[data-id]')].map(a => a.dataset.id)`)
	var calls []string
	for _, c := range byID[withCalls]["backends"].([]any) {
		calls = append(calls, c.(string))
	}
	slices.Sort(drawn)
	slices.Sort(calls)
	if !slices.Equal(drawn, calls) {
		t.Errorf("example %s's waterfall draws %q, its record has the calls %q", withCalls, drawn, calls)
	}
	for _, e := range bl.take() {
		t.Errorf("browser: %s", e)
	}
}

// sortRecs sorts records as the exchanges view asks the server to: by key,
// unknown values (negative durations, absent fields) last either way, ties
// in store order.
func sortRecs(recs []map[string]any, key string, desc bool, val func(r map[string]any) (v int64, s string, ok bool)) {
	slices.SortStableFunc(recs, func(a, b map[string]any) int {
		va, sa, oka := val(a)
		vb, sb, okb := val(b)
		if oka != okb {
			if oka {
				return -1
			}
			return 1
		}
		if !oka {
			return 0
		}
		c := cmp.Compare(va, vb)
		if c == 0 {
			c = strings.Compare(sa, sb)
		}
		if desc {
			c = -c
		}
		return c
	})
}

func ids(recs []map[string]any) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r["id"].(string)
	}
	return out
}

// TestUIBrowserExchanges: the exchanges view sorts and pages on the server:
// any page of any column's order is the same rows of tapvault messages'
// records sorted stably; the time strip counts them by request time, and a
// drag on it sets from and to to the columns dragged over, listing what
// tapvault messages lists for that window.
func TestUIBrowserExchanges(t *testing.T) {
	store, addr, ctx, bl := uiStore(t, 8000)
	const expr = "proto != tcp"
	all := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", expr))
	if len(all) < 450 {
		t.Fatalf("only %d exchanges: the paging check needs more than four pages", len(all))
	}
	pageOf := func(sort string, page int) []string {
		t.Helper()
		frag := "#/exchanges?expr=" + url.QueryEscape(expr) + "&sort=" + url.QueryEscape(sort) + "&page=" + strconv.Itoa(page)
		run(t, ctx, "exchanges "+sort, hash(frag), waitView("exchanges"), waitFor("#exchanges-table"))
		if got := eval[string](t, ctx, `document.querySelector('#count').dataset.count`); got != strconv.Itoa(len(all)) {
			t.Errorf("exchanges %q: %s in all, tapvault messages %d", expr, got, len(all))
		}
		return eval[[]string](t, ctx, `[...document.querySelectorAll('#exchanges-table tbody tr')].map(tr => tr.dataset.id)`)
	}
	run(t, ctx, "exchanges", chromedp.Navigate("http://"+addr+"/#/exchanges"), waitView("exchanges"), waitFor("#exchanges-table"))
	for _, c := range []struct {
		sort string
		page int
		val  func(r map[string]any) (int64, string, bool)
	}{
		{"-latency_ns", 2, func(r map[string]any) (int64, string, bool) { v := num(r, "latency_ns"); return v, "", v >= 0 }},
		{"transfer_ns", 1, func(r map[string]any) (int64, string, bool) { v := num(r, "transfer_ns"); return v, "", v >= 0 }},
		{"-client", 0, func(r map[string]any) (int64, string, bool) {
			ap := netip.MustParseAddrPort(r["client"].(string))
			a := ap.Addr().As16()
			return 0, string(a[:]) + string([]byte{byte(ap.Port() >> 8), byte(ap.Port())}), true
		}},
		{"-status", 0, func(r map[string]any) (int64, string, bool) { _, ok := r["status"]; return num(r, "status"), "", ok }},
		{"proto", 3, func(r map[string]any) (int64, string, bool) { return 0, r["proto"].(string), true }},
	} {
		want := slices.Clone(all)
		sortRecs(want, c.sort, strings.HasPrefix(c.sort, "-"), c.val)
		w := ids(want[min(len(want), c.page*100):min(len(want), (c.page+1)*100)])
		if got := pageOf(c.sort, c.page); !slices.Equal(got, w) {
			t.Errorf("exchanges sorted by %s, page %d: %d rows starting %q, want %d starting %q", c.sort, c.page+1, len(got), got[:min(3, len(got))], len(w), w[:min(3, len(w))])
		}
	}
	// The last page holds the rest.
	last := (len(all) - 1) / 100
	run(t, ctx, "the last page", click("#last"), waitView("exchanges"), waitFor("#exchanges-table"))
	if got := eval[int](t, ctx, `document.querySelectorAll('#exchanges-table tbody tr').length`); got != len(all)-last*100 {
		t.Errorf("the last page (%d) lists %d rows, want %d", last+1, got, len(all)-last*100)
	}
	// A column heading sorts by it, slowest first for a duration.
	run(t, ctx, "sort by server time", click(`#exchanges-table th a[data-sort="server_ns"]`), waitView("exchanges"), waitFor("#exchanges-table"))
	if got := eval[string](t, ctx, `new URLSearchParams(location.hash.split('?')[1]).get('sort')`); got != "-server_ns" {
		t.Errorf("the server time heading sorts by %q, want -server_ns", got)
	}

	// Connections page the same way: page 2 by the handshake's server leg
	// (no handshake seen: -1, last), page 1 by duration.
	conns := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", "proto tcp"))
	if len(conns) < 150 {
		t.Fatalf("only %d connections: the check needs two pages", len(conns))
	}
	for _, c := range []struct {
		sort string
		page int
		val  func(r map[string]any) (int64, string, bool)
	}{
		{"-hs_server_ns", 1, func(r map[string]any) (int64, string, bool) { v := num(r, "hs_server_ns"); return v, "", v >= 0 }},
		{"-duration_ns", 0, func(r map[string]any) (int64, string, bool) {
			return max(num(r, "resp_last_ns"), num(r, "req_first_ns")) - num(r, "req_first_ns"), "", true
		}},
	} {
		want := slices.Clone(conns)
		sortRecs(want, c.sort, true, c.val)
		w := ids(want[c.page*100 : min(len(want), (c.page+1)*100)])
		run(t, ctx, "connections "+c.sort, hash("#/connections?sort="+c.sort+"&page="+strconv.Itoa(c.page)), waitView("connections"), waitFor("#connections-table"))
		if got := eval[string](t, ctx, `document.querySelector('#ccount').dataset.count`); got != strconv.Itoa(len(conns)) {
			t.Errorf("connections: %s in all, tapvault messages 'proto tcp' %d", got, len(conns))
		}
		if got := eval[[]string](t, ctx, `[...document.querySelectorAll('#connections-table tbody tr')].map(tr => tr.dataset.id)`); !slices.Equal(got, w) {
			t.Errorf("connections by %s, page %d: %d rows starting %q, want %d starting %q", c.sort, c.page+1, len(got), got[:min(3, len(got))], len(w), w[:min(3, len(w))])
		}
	}

	// The strip: its columns count the records by request time.
	stripCheck := func(what string, recs []map[string]any) (from, step int64, cols int) {
		t.Helper()
		d := eval[map[string]string](t, ctx, `({...document.querySelector('#brush').dataset})`)
		from, _ = strconv.ParseInt(d["from"], 10, 64)
		step, _ = strconv.ParseInt(d["step"], 10, 64)
		cols, _ = strconv.Atoi(d["cols"])
		want := map[int]int{}
		for _, r := range recs {
			// By request time: a record that began before the window but
			// overlaps it is listed (the window selects by overlap), not
			// counted in the strip.
			rf := num(r, "req_first_ns")
			if c := (rf - from) / step; rf >= from && c < int64(cols) {
				want[int(c)]++
			}
		}
		got := eval[map[int]int](t, ctx, `Object.fromEntries([...document.querySelectorAll('#brush rect.strip-bar')].map(r => [r.dataset.col, +r.dataset.count]))`)
		if !maps.Equal(got, want) {
			t.Errorf("%s: the strip's columns %v, the records by request time %v", what, got, want)
		}
		return from, step, cols
	}
	drag := func(c0, c1, cols int) {
		t.Helper()
		run(t, ctx, "drag", chromedp.Evaluate(fmt.Sprintf(`(() => {
			const s = document.querySelector('#brush'); const r = s.getBoundingClientRect();
			const x = (c) => r.left + r.width * (2 + (c + 0.5) * (996 / %d)) / 1000;
			const ev = (type, c) => s.dispatchEvent(new PointerEvent(type, {bubbles: true, cancelable: true, clientX: x(c), clientY: r.top + r.height / 2, pointerId: 1}));
			ev('pointerdown', %d); ev('pointermove', %d); ev('pointerup', %d);
		})()`, cols, c0, c1, c1), nil), waitView("exchanges"), waitFor("#exchanges-table"), waitFor("#brush"))
	}
	const rexpr = "proto redis"
	redis := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", rexpr))
	run(t, ctx, "redis", hash("#/exchanges?expr="+url.QueryEscape(rexpr)), waitView("exchanges"), waitFor("#exchanges-table"), waitFor("#brush"))
	from, step, cols := stripCheck("the whole time", redis)
	// Zoom into the columns that hold records, then into the middle of
	// that window.
	lo, hi := cols, -1
	for _, r := range redis {
		c := int((num(r, "req_first_ns") - from) / step)
		lo, hi = min(lo, c), max(hi, c)
	}
	for _, z := range []struct{ c0, c1 int }{{lo, hi}, {cols / 4, cols * 3 / 4}} {
		drag(z.c0, z.c1, cols)
		p := eval[map[string]string](t, ctx, `Object.fromEntries(new URLSearchParams(location.hash.split('?')[1]))`)
		if wf, wt := strconv.FormatInt(from+int64(z.c0)*step, 10), strconv.FormatInt(from+int64(z.c1+1)*step-1, 10); p["from"] != wf || p["to"] != wt {
			t.Errorf("drag over columns %d-%d: the window is [%s, %s], want [%s, %s]", z.c0, z.c1, p["from"], p["to"], wf, wt)
		}
		in := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", "--from", p["from"], "--to", p["to"], rexpr))
		if got := eval[string](t, ctx, `document.querySelector('#count').dataset.count`); got != strconv.Itoa(len(in)) || len(in) == 0 {
			t.Errorf("window [%s, %s]: %s listed, tapvault messages %d (want some)", p["from"], p["to"], got, len(in))
		}
		t.Logf("drag over columns %d-%d: [%s, %s], %d exchanges", z.c0, z.c1, p["from"], p["to"], len(in))
		from, step, cols = stripCheck("the window", in)
	}
	screenshot(t, ctx, "exchanges-brush")
	for _, e := range bl.take() {
		t.Errorf("browser: %s", e)
	}
}

// TestUIBrowserHealth: the overview's store health equals tapvault stats:
// the disk use of segments, index and records, the retention horizon, the
// packets, wire and stored bytes over packet time; the server's own samples
// show; a column of the series opens its packets.
func TestUIBrowserHealth(t *testing.T) {
	store, addr, ctx, bl := uiStore(t, 4000)
	var stats struct {
		FirstNS      int64  `json:"first_ns"`
		LastNS       int64  `json:"last_ns"`
		Packets      int64  `json:"packets"`
		WireBytes    int64  `json:"wire_bytes"`
		StoredBytes  int64  `json:"stored_bytes"`
		SegmentBytes int64  `json:"segment_bytes"`
		IndexBytes   int64  `json:"index_bytes"`
		IndexState   string `json:"index_state"`
		Messages     struct {
			Bytes int64 `json:"bytes"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(mustTV(t, "stats", "--data", store, "--json")), &stats); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "overview", chromedp.Navigate("http://"+addr+"/#/overview"), waitView("overview"), waitFor("#health-series"))
	screenshot(t, ctx, "overview-health")
	v := eval[map[string]string](t, ctx, `(() => { const d = (s) => document.querySelector(s).dataset; return {
		segments: d('#health-segments').v, index: d('#health-index').v, state: d('#health-index').state, messages: d('#health-messages').v,
		disk: d('#health-disk').v, horizon: d('#health-horizon').ns, held: d('#health-held').ns, lag: d('#health-lag').v,
		packets: d('#health-series').packets, wire: d('#health-series').wire, stored: d('#health-series').stored,
		samples: d('#health-samples').count}; })()`)
	for k, w := range map[string]int64{"segments": stats.SegmentBytes, "index": stats.IndexBytes, "messages": stats.Messages.Bytes,
		"disk": stats.SegmentBytes + stats.IndexBytes + stats.Messages.Bytes, "horizon": stats.FirstNS, "held": stats.LastNS - stats.FirstNS,
		"packets": stats.Packets, "wire": stats.WireBytes, "stored": stats.StoredBytes} {
		if v[k] != strconv.FormatInt(w, 10) {
			t.Errorf("overview health %s: shown %s, tapvault stats %d", k, v[k], w)
		}
	}
	if v["state"] != stats.IndexState {
		t.Errorf("overview index state %q, tapvault stats %q", v["state"], stats.IndexState)
	}
	if v["lag"] != "-1" || eval[int](t, ctx, `document.querySelectorAll('#health-no-capture').length`) != 1 {
		t.Errorf("serve has no index lag to show: shown %q, and the note saying so is missing or not", v["lag"])
	}
	if n, _ := strconv.Atoi(v["samples"]); n < 1 {
		t.Errorf("overview: %s samples, want the one taken at start", v["samples"])
	}
	// Exchanges per second: the exchanges the latency groups count, by
	// request time; the fullest column lists its own.
	run(t, ctx, "exchanges per second", waitFor("#xps-card"))
	var nx int64
	for _, g := range jsonLines(t, mustTV(t, "latency", "--data", store, "--json", "--by", "proto")) {
		nx += num(g, "count")
	}
	if got := eval[string](t, ctx, `document.querySelector('#xps-card').dataset.count`); got != strconv.FormatInt(nx, 10) {
		t.Errorf("exchanges per second: %s in all, tapvault latency's groups %d", got, nx)
	}
	xc := eval[map[string]string](t, ctx, `(() => { const a = [...document.querySelectorAll('#series-xps a.col')].sort((x, y) => y.dataset.v - x.dataset.v)[0];
		a.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true})); return {...a.dataset}; })()`)
	run(t, ctx, "a column's exchanges", waitView("exchanges"), waitFor("#exchanges-table"))
	xp := eval[map[string]string](t, ctx, `Object.fromEntries(new URLSearchParams(location.hash.split('?')[1]))`)
	xrecs := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", "--from", xp["from"], "--to", xp["to"], xp["expr"]))
	if got := eval[string](t, ctx, `document.querySelector('#count').dataset.count`); got != xc["v"] || got != strconv.Itoa(len(xrecs)) {
		t.Errorf("exchanges column %s (%s): %s listed, tapvault messages %d for %q", xc["col"], xc["v"], got, len(xrecs), xp["expr"])
	}
	t.Logf("exchanges per second: %d in all; the fullest column, %s, lists %s", nx, xc["col"], xc["v"])

	// Latency over time by protocol: per column, each protocol's count,
	// p50, p99 and parts' p50 equal tapvault latency's for the records
	// whose request began in the column.
	// (Over the app trace's first 3 s: the hostile exchanges a minute
	// later would leave it two columns.)
	run(t, ctx, "latency over time", hash(fmt.Sprintf("#/overview?from=%d&to=%d", stats.FirstNS, stats.FirstNS+3e9)), waitView("overview"), waitFor("#lseries"))
	li := eval[map[string]string](t, ctx, `({...document.querySelector('#lseries-info').dataset})`)
	lfrom, _ := strconv.ParseInt(li["from"], 10, 64)
	lstep, _ := strconv.ParseInt(li["step"], 10, 64)
	type lcol struct{ Group, Col, Count, P50, P99, Network, Server, Transfer string }
	lcols := eval[[]lcol](t, ctx, `[...document.querySelectorAll('#lseries .series-card a.col')].map(a => ({Group: a.closest('.series-card').dataset.group, Col: a.dataset.col,
		Count: a.dataset.count, P50: a.dataset.p50, P99: a.dataset.p99, Network: a.dataset.network, Server: a.dataset.server, Transfer: a.dataset.transfer}))`)
	cliCol := map[string]map[string]map[string]any{} // column -> proto -> group
	checked := 0
	for _, c := range lcols {
		if cliCol[c.Col] == nil {
			ci, _ := strconv.ParseInt(c.Col, 10, 64)
			a := lfrom + ci*lstep
			cliCol[c.Col] = map[string]map[string]any{}
			for _, g := range jsonLines(t, mustTV(t, "latency", "--data", store, "--json", "--by", "proto", fmt.Sprintf("req_first >= %d and req_first < %d", a, a+lstep))) {
				cliCol[c.Col][g["key"].(map[string]any)["proto"].(string)] = g
			}
		}
		g := cliCol[c.Col][c.Group]
		if g == nil {
			t.Errorf("latency over time, %s column %s: shown, tapvault latency has no such group there", c.Group, c.Col)
			continue
		}
		lat := g["latency_ns"].(map[string]any)
		part := func(k string) string {
			m, ok := g[k].(map[string]any)
			if !ok {
				return ""
			}
			return strconv.FormatInt(num(m, "p50"), 10)
		}
		want := lcol{c.Group, c.Col, strconv.FormatInt(num(g, "count"), 10), strconv.FormatInt(num(lat, "p50"), 10), strconv.FormatInt(num(lat, "p99"), 10),
			part("network_ns"), part("server_ns"), part("transfer_ns")}
		if c != want {
			t.Errorf("latency over time: shown %+v, tapvault latency %+v", c, want)
		}
		checked++
	}
	t.Logf("latency over time: %d columns of protocols checked", checked)
	if checked == 0 {
		t.Error("latency over time: nothing drawn")
	}

	// A window: the series covers it; a column opens its packets.
	mid := stats.FirstNS + (stats.LastNS-stats.FirstNS)/2
	run(t, ctx, "overview of a window", hash(fmt.Sprintf("#/overview?from=%d&to=%d", stats.FirstNS, mid)), waitView("overview"), waitFor("#health-series"))
	d := eval[map[string]string](t, ctx, `({...document.querySelector('#health-series').dataset})`)
	if d["from"] != strconv.FormatInt(stats.FirstNS, 10) || d["to"] != strconv.FormatInt(mid, 10) {
		t.Errorf("the series of [%d, %d] covers [%s, %s]", stats.FirstNS, mid, d["from"], d["to"])
	}
	if p, _ := strconv.ParseInt(d["packets"], 10, 64); p <= 0 || p > stats.Packets {
		t.Errorf("the series of the window's first half counts %d packets of %d", p, stats.Packets)
	}
	col := eval[string](t, ctx, `document.querySelector('#series-pps a.col').dataset.col`)
	run(t, ctx, "a column's packets", chromedp.Evaluate(`document.querySelector('#series-pps a.col').dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}))`, nil),
		waitView("packets"), waitFor("#packets-table"))
	p := eval[map[string]string](t, ctx, `Object.fromEntries(new URLSearchParams(location.hash.split('?')[1]))`)
	step, _ := strconv.ParseInt(d["step"], 10, 64)
	c, _ := strconv.ParseInt(col, 10, 64)
	if p["from"] != strconv.FormatInt(stats.FirstNS+c*step, 10) || p["to"] != strconv.FormatInt(stats.FirstNS+(c+1)*step-1, 10) {
		t.Errorf("column %s opens packets of [%s, %s], want [%d, %d]", col, p["from"], p["to"], stats.FirstNS+c*step, stats.FirstNS+(c+1)*step-1)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#packets-table tbody tr').length`); n == 0 {
		t.Errorf("column %s's packets: none listed", col)
	}
	for _, e := range bl.take() {
		t.Errorf("browser: %s", e)
	}
}

// TestUIBrowserHostileViews: markup in records (an HTTP Host and path, a
// DNS name) shows as text in the views added after the first cut: the
// latency explorer grouped by it and the heatmap of its group, the
// exchanges sorted server-side by summary, and the tiers list; nothing runs
// and no element is made from it.
func TestUIBrowserHostileViews(t *testing.T) {
	_, addr, ctx, bl := uiStore(t, 2000)
	base := "http://" + addr + "/"
	check := func(what, sel, want string) {
		t.Helper()
		if txt := eval[string](t, ctx, `document.querySelector(`+strconv.Quote(sel)+`).textContent`); !strings.Contains(txt, want) {
			t.Errorf("%s: %q is not shown as text", what, want)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('main script, main img, main b, main iframe').length`); n != 0 {
			t.Errorf("%s: %d elements made from record text", what, n)
		}
		if eval[bool](t, ctx, `window.__pwned !== undefined`) {
			t.Errorf("%s: a hostile payload ran", what)
		}
	}
	run(t, ctx, "latency by host", chromedp.Navigate(base+"#/latency?by=host"), waitView("latency"), waitFor("#explorer-table"), waitFor("#heatmap"))
	check("latency by host", "#explorer-table", hostileHost)
	key, _ := json.Marshal(map[string]string{"host": hostileHost})
	run(t, ctx, "the hostile host's heatmap", hash("#/latency?by=host&hm="+url.QueryEscape(string(key))), waitView("latency"), waitFor("#heatmap"))
	check("heatmap of the hostile host", "#heatmap-group", hostileHost)
	if got := eval[string](t, ctx, `document.querySelector('#heatmap-count').dataset.count`); got != "1" {
		t.Errorf("heatmap of the hostile host: %s exchanges, want its 1", got)
	}
	run(t, ctx, "its cell", chromedp.Evaluate(`document.querySelector('#heatmap a.cell').dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}))`, nil),
		waitView("exchanges"), waitFor("#exchanges-table"))
	check("the hostile cell's exchanges", "#exchanges-table tbody", hostilePath)
	run(t, ctx, "latency by qname", hash("#/latency?by=qname"), waitView("latency"), waitFor("#explorer-table"))
	check("latency by qname", "#explorer-table", hostileName)
	run(t, ctx, "exchanges by summary", hash("#/exchanges?expr="+url.QueryEscape("client 10.66.0.1")+"&sort=-summary"), waitView("exchanges"), waitFor("#exchanges-table"), waitFor("#brush"))
	check("exchanges by summary", "#exchanges-table tbody", hostileName)
	check("exchanges by summary", "#exchanges-table tbody", hostilePath)
	run(t, ctx, "tiers, all", hash("#/tiers?all=1"), waitView("tiers"), waitFor("#tiers-table"))
	check("tiers", "#tiers-table", "10.66.0.2:80")
	for _, e := range bl.take() {
		t.Errorf("browser: %s", e)
	}
}
