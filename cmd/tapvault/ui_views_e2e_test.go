package main

import (
	"encoding/json"
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

	for _, e := range bl.take() {
		t.Errorf("browser: %s", e)
	}
}
