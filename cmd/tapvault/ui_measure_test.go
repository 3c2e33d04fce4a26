package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// TestUIMeasureViews measures the web UI's views in headless Chromium
// against a running server (issue 13's "every view's first meaningful
// render ≤ 1 s"; docs/PERFORMANCE.md has the figures). It is a measurement
// tool, not a check of speed: it skips unless TAPVAULT_UI_MEASURE names the
// server's base URL, and prints a table. It fails only where a view does not
// render or the page logs an error or a failed request.
//
//	tapvault serve --data STORE --listen 127.0.0.1:18083 &
//	TAPVAULT_UI_MEASURE=http://127.0.0.1:18083 go test -run TestUIMeasureViews -v ./cmd/tapvault
//
// One sample is the time in the page from setting the view's URL fragment
// (the app renders on hashchange) until the view has finished: its main
// element's data-ready names the fragment, which app.js sets only after
// the view's function, which awaits every part it draws, has returned;
// then one more frame (requestAnimationFrame, then a task), so the
// drawing is in it. "API" is when the last answer of the view's /api/
// requests had arrived (Resource Timing), the rest is the page's parsing
// and drawing. TAPVAULT_UI_MEASURE_ROUNDS (default 3) rounds go over every
// view in turn, each round in a new browser; "first" is round 1, which is
// the server's first answer to these requests when it was just started
// (the server keeps the last answers of its whole-window reads while the
// store does not change: docs/api.md).
//
// Then the click path a user takes from the overview to the packets of a
// slow exchange: the overview's "slowest" link of its slowest protocol
// opens the exchange (its packets are listed there, and its pcap is one
// link), and its "the connection's packets around it" opens the packets
// view; the clicks are counted.
func TestUIMeasureViews(t *testing.T) {
	base := strings.TrimSuffix(os.Getenv("TAPVAULT_UI_MEASURE"), "/")
	if base == "" {
		t.Skip("a measurement tool: set TAPVAULT_UI_MEASURE to a running tapvault serve's base URL (http://127.0.0.1:PORT)")
	}
	rounds := 3
	if s := os.Getenv("TAPVAULT_UI_MEASURE_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("TAPVAULT_UI_MEASURE_ROUNDS=%q: want a count ≥ 1", s)
		}
		rounds = n
	}
	exe := findChromium(t)

	type view struct {
		name, view, frag string
		done             []string // the view's last elements, as selectors
	}
	views := []view{
		{"overview", "overview", "#/overview", []string{"#latency-table", "#xps-card", "#health-series"}},
		{"latency explorer by proto, with heatmap", "latency", "#/latency?by=proto", []string{"#explorer-table", "#heatmap"}},
		{"exchanges, slowest first, with strip", "exchanges", "#/exchanges?sort=-latency_ns", []string{"#exchanges-table", "#brush"}},
		{"one exchange (ladder)", "exchange", "", []string{"#ladder"}}, // the slowest of the exchanges view
		{"packets", "packets", "#/packets", []string{"#packets-table"}},
		{"connections", "connections", "#/connections", []string{"#connections-table"}},
		{"tiers", "tiers", "#/tiers", []string{"#tiers-table"}},
		{"diagnosis", "diagnose", "#/diagnose", []string{"#findings"}},
	}
	type sample struct{ ms, api float64 }
	got := make([][]sample, len(views))
	var calls [][]string // round 1's API requests of each view
	var slowID string

	for r := 0; r < rounds; r++ {
		ctx, bl, cancel := newBrowser(t, exe)
		// A fragment that names no view: the page loads, asks for its
		// session and shows an error box, and reads nothing else.
		run(t, ctx, "load the page", chromedp.Navigate(base+"/#/measure"), waitJS(`document.querySelector('main pre.error') !== null`))
		for i, v := range views {
			frag := v.frag
			if v.view == "exchange" {
				frag = "#/exchange?id=" + url.QueryEscape(slowID)
			}
			m := measureView(t, ctx, frag, v.view)
			for _, sel := range v.done {
				if !eval[bool](t, ctx, `document.querySelector(`+strconv.Quote(sel)+`) !== null`) {
					t.Errorf("%s: %s not drawn", v.name, sel)
				}
			}
			if errs := bl.take(); len(errs) > 0 {
				t.Errorf("%s: the page logged %s", v.name, strings.Join(errs, "; "))
			}
			got[i] = append(got[i], sample{m.MS, m.API})
			if r == 0 {
				calls = append(calls, m.Calls)
			}
			if v.view == "exchanges" && slowID == "" {
				slowID = eval[string](t, ctx, `document.querySelector('#exchanges-table tbody tr').dataset.id`)
			}
		}
		cancel()
	}

	med := func(s []sample, f func(sample) float64) float64 {
		v := make([]float64, len(s))
		for i, x := range s {
			v[i] = f(x)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n| view | first: ready (API) | median of %d: ready (API) | every round, ms |\n|---|---|---|---|\n", rounds)
	var firsts, meds []float64
	for i, v := range views {
		s := got[i]
		all := make([]string, len(s))
		for j, x := range s {
			all[j] = strconv.Itoa(int(x.ms + 0.5))
		}
		m := med(s, func(x sample) float64 { return x.ms })
		fmt.Fprintf(&tbl, "| %s | %s (%s) | %s (%s) | %s |\n", v.name, fmtMS(s[0].ms), fmtMS(s[0].api),
			fmtMS(m), fmtMS(med(s, func(x sample) float64 { return x.api })), strings.Join(all, ", "))
		firsts = append(firsts, s[0].ms)
		meds = append(meds, m)
	}
	fmt.Fprintf(&tbl, "\np95 over the %d views (nearest rank, ceil(0.95 n): of 8, the slowest): first %s, median %s; views over 1 s: first %d, median %d\n",
		len(views), fmtMS(p95(firsts)), fmtMS(p95(meds)), over(firsts, 1000), over(meds, 1000))
	fmt.Fprintf(&tbl, "the exchange: %s\nround 1's API requests:\n", slowID)
	for i, v := range views {
		fmt.Fprintf(&tbl, "  %s: %s\n", v.name, strings.Join(calls[i], " "))
	}

	// The click path.
	ctx, bl, cancel := newBrowser(t, exe)
	defer cancel()
	run(t, ctx, "load the page", chromedp.Navigate(base+"/#/measure"), waitJS(`document.querySelector('main pre.error') !== null`))
	m := measureView(t, ctx, "#/overview", "overview")
	fmt.Fprintf(&tbl, "click path: overview %s", fmtMS(m.MS))
	// The protocol whose slowest exchange is the slowest.
	sel := `(() => { let best = null, max = -1n;
	  for (const tr of document.querySelectorAll('#latency-table tbody tr')) {
	    const v = BigInt(tr.querySelector('td[data-key=max]').dataset.ns);
	    if (tr.querySelector('a.slowest') && v > max) { max = v; best = tr; }
	  }
	  return best ? best.dataset.proto : ''; })()`
	proto := eval[string](t, ctx, sel)
	if proto == "" {
		t.Fatal("the overview's latency table has no slowest link")
	}
	clicks := 0
	m = measureClick(t, ctx, `#latency-table tr[data-proto="`+proto+`"] a.slowest`, "exchange")
	clicks++
	npk := eval[int](t, ctx, `document.querySelectorAll('#packets-table tbody tr').length`)
	fmt.Fprintf(&tbl, " → click %d, the slowest %s exchange %s with its %d packets listed and its pcap a link: %s",
		clicks, proto, eval[string](t, ctx, `document.querySelector('#exchange-id').textContent`), npk, fmtMS(m.MS))
	m = measureClick(t, ctx, `#connection`, "packets")
	clicks++
	fmt.Fprintf(&tbl, " → click %d, its connection's packets (%s listed): %s\n", clicks,
		eval[string](t, ctx, `document.querySelector('#count').dataset.count`), fmtMS(m.MS))
	if npk == 0 {
		t.Errorf("the exchange view lists no packets")
	}
	if errs := bl.take(); len(errs) > 0 {
		t.Errorf("click path: the page logged %s", strings.Join(errs, "; "))
	}
	t.Log(tbl.String())
}

// uiMeasure is one sample, in ms from the fragment change or the click.
type uiMeasure struct {
	MS    float64  `json:"ms"`
	API   float64  `json:"api"`   // the last /api/ answer's end
	Calls []string `json:"calls"` // the /api/ requests: path?query=ms
}

// measureJS starts the navigation (act), then waits in the page, without
// polling from here, until main shows the view ready for the new
// fragment, and one frame more.
const measureJS = `(async () => {
  performance.clearResourceTimings();
  const main = document.getElementById('main');
  const t0 = performance.now();
  ACT;
  const ready = () => main.dataset.view === VIEW && main.dataset.ready && main.dataset.ready === location.hash;
  await new Promise((res, rej) => {
    if (ready()) { res(); return; }
    const obs = new MutationObserver(() => { if (ready()) { obs.disconnect(); clearTimeout(to); res(); } });
    obs.observe(main, { attributes: true, attributeFilter: ['data-ready', 'data-view'] });
    const to = setTimeout(() => { obs.disconnect(); rej(new Error('not ready after 60 s: ' + main.textContent.slice(0, 500))); }, 60000);
  });
  await new Promise((res) => requestAnimationFrame(() => setTimeout(res, 0)));
  const ms = performance.now() - t0;
  const api = performance.getEntriesByType('resource').filter((e) => new URL(e.name).pathname.startsWith('/api/'));
  return JSON.stringify({ ms, api: api.length ? Math.max(...api.map((e) => e.responseEnd)) - t0 : 0,
    calls: api.map((e) => { const u = new URL(e.name); return decodeURIComponent(u.pathname + u.search) + '=' + Math.round(e.duration); }) });
})()`

func measureView(t *testing.T, ctx context.Context, frag, view string) uiMeasure {
	t.Helper()
	return measureAct(t, ctx, "location.hash = "+strconv.Quote(frag), view)
}

func measureClick(t *testing.T, ctx context.Context, sel, view string) uiMeasure {
	t.Helper()
	return measureAct(t, ctx, "document.querySelector("+strconv.Quote(sel)+").click()", view)
}

func measureAct(t *testing.T, ctx context.Context, act, view string) uiMeasure {
	t.Helper()
	js := strings.NewReplacer("ACT", act, "VIEW", strconv.Quote(view)).Replace(measureJS)
	var s string
	await := func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }
	if err := chromedp.Run(ctx, chromedp.Evaluate(js, &s, await)); err != nil {
		t.Fatalf("%s: %v", act, err)
	}
	var m uiMeasure
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s: %v", act, err)
	}
	return m
}

func fmtMS(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.2f s", ms/1000)
	}
	return fmt.Sprintf("%d ms", int(ms+0.5))
}

// p95 is the nearest-rank 95th percentile.
func p95(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	i := (95*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

func over(v []float64, lim float64) int {
	n := 0
	for _, x := range v {
		if x > lim {
			n++
		}
	}
	return n
}
