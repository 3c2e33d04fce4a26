package centre

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"tapvault/web"
)

// The fleet view in a real browser (Debian's chromium through chromedp, as
// cmd/tapvault's UI tests): the sensors and their state, exchanges across
// sensors, a drill-down link that lands on the sensor's own bytes, a
// hostile record shown as text, and a stopped sensor named on the page.

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH: the browser test needs Debian's chromium package (make setup installs it)")
	return ""
}

const hostileProto = `<img/src=x/onerror=window.__pwned=1>`

func TestFleetViewBrowser(t *testing.T) {
	exe := chromium(t)
	e := newFleetEnvWith(t, Options{UI: web.FS()}, 3000)
	// A record whose text is markup, as a hostile sensor (or wire) could
	// ship: the page must show it as text and never run it.
	row := map[string]any{"sensor": "sensor-a", "id": 99, "kind": "exchange", "proto": hostileProto, "client_ip": "10.9.9.9", "client_port": 1,
		"server_ip": "10.9.9.10", "server_port": 2, "req_first": traceStart, "req_last": traceStart, "resp_first": traceStart + 1,
		"resp_last": traceStart + int64(time.Hour), "latency": int64(time.Hour), "class": `<script>window.__pwned=2</script>`, "fields": "{}", "ver": 1}
	if err := e.client.Insert(context.Background(), "records", []any{row}); err != nil {
		t.Fatal(err)
	}
	// Probe exchanges from three locations (docs/probes.md), lagos's network
	// slow: the locations section names lagos alone and drills down to the
	// sensor that holds each slowest exchange. Their own connections (no
	// transit pairs) and an hour before the trace.
	var probeRows []any
	for i := range 10 {
		for j, l := range []struct {
			sensor, loc string
			net         time.Duration
		}{{"sensor-a", "paris", 2 * time.Millisecond}, {"sensor-b", "lagos", 30 * time.Millisecond}, {"sensor-c", "osaka", 3 * time.Millisecond}} {
			ts := traceStart - int64(time.Hour) + int64(i*3+j)*int64(time.Second)
			probeRows = append(probeRows, map[string]any{"sensor": l.sensor, "id": 1000 + i*3 + j, "kind": "exchange", "proto": "http",
				"client_ip": "10.77.0.1", "client_port": 40000 + i*3 + j, "server_ip": "10.77.0.2", "server_port": 80,
				"req_first": ts, "req_last": ts, "resp_first": ts + int64(l.net+time.Millisecond), "resp_last": ts + int64(l.net+time.Millisecond),
				"latency": int64(l.net + time.Millisecond), "network": int64(l.net), "server_time": int64(time.Millisecond), "class": "healthy",
				"fields": `{"probe":"web","location":"` + l.loc + `"}`, "ver": 1})
		}
	}
	if err := e.client.Insert(context.Background(), "records", probeRows); err != nil {
		t.Fatal(err)
	}
	// sensor-b reports drops, as a capture's shipper does.
	now := time.Now().UnixNano()
	drops := []any{
		map[string]any{"sensor": "sensor-b", "ts": now, "name": "packets_dropped_total{stage=writer}", "value": 5},
		map[string]any{"sensor": "sensor-b", "ts": now, "name": "analytics_records_dropped_total{stage=queue}", "value": 2},
	}
	if err := e.client.Insert(context.Background(), "sensor_health", drops); err != nil {
		t.Fatal(err)
	}
	e.centre.ProbeNow(context.Background())
	if _, b := e.get(t, pathMetrics, nil); !strings.Contains(string(b), `tapvault_fleet_sensor_drops{sensor="sensor-b"} 7`) || strings.Contains(string(b), `tapvault_fleet_sensor_drops{sensor="sensor-a"}`) {
		t.Errorf("metrics: want sensor-b's drops, 7, and none for sensor-a (which reports no drop counter)")
	}

	pg := newPage(t, exe)
	run, eval, waitJS := pg.run, pg.eval, pg.waitJS
	ready := func(what, hashPart string) {
		t.Helper()
		waitJS(what, `(m => m.dataset.view === 'fleet' && m.dataset.ready === location.hash && location.hash.includes(`+strconv.Quote(hashPart)+`) && document.querySelector('#fleet-exchanges') !== null)(document.querySelector('main'))`)
	}

	// The brand link goes to #/overview: a centre shows the fleet view.
	run("open", chromedp.Navigate(e.web.URL+"/#/overview"))
	ready("open", "#/overview")
	if dir := os.Getenv("TAPVAULT_UI_SCREENSHOTS"); dir != "" {
		var png []byte
		run("screenshot", chromedp.FullScreenshot(&png, 90))
		if err := os.WriteFile(filepath.Join(dir, "ui-fleet.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var states []string
	eval(`[...document.querySelectorAll('#fleet-sensors tbody tr')].map(r => r.dataset.sensor + ' ' + r.cells[2].textContent)`, &states)
	if strings.Join(states, ",") != "sensor-a up,sensor-b up,sensor-c up" {
		t.Errorf("sensors: got %q", states)
	}
	var dropCells []string
	eval(`[...document.querySelectorAll('#fleet-sensors tbody tr')].map(r => r.cells[7].textContent)`, &dropCells)
	if strings.Join(dropCells, ",") != "-,7,-" {
		t.Errorf("drops column: got %q, want -,7,- (sensor-b's two counters added)", dropCells)
	}
	var nav []string
	eval(`[...document.querySelectorAll('nav a')].filter(a => !a.hidden).map(a => a.dataset.view)`, &nav)
	if strings.Join(nav, ",") != "fleet" {
		t.Errorf("visible views on a centre: got %v, want [fleet]", nav)
	}
	// Slowest first: the hostile hour-long record leads, as text.
	var first []string
	eval(`[...document.querySelector('#fleet-exchanges tbody tr').cells].map(c => c.textContent)`, &first)
	if len(first) < 9 || first[0] != "sensor-a" || first[2] != hostileProto || first[8] != `<script>window.__pwned=2</script>` {
		t.Errorf("first row: got %q, want the hostile record's text as text", first)
	}
	var pwned bool
	eval(`window.__pwned !== undefined || document.querySelector('#fleet-exchanges img, #fleet-exchanges script') !== null`, &pwned)
	if pwned {
		t.Error("hostile record text became markup")
	}
	var rows []string
	eval(`[...document.querySelectorAll('#fleet-exchanges tbody tr')].map(r => r.dataset.sensor)`, &rows)
	if len(rows) != fleetPage {
		t.Errorf("exchange rows: got %d, want a page of %d", len(rows), fleetPage)
	}
	// A drill-down link from the second row (a real record): fetched by the
	// page, it is the sensor's own drill-down, byte for byte.
	var link []string
	eval(`(r => [r.dataset.sensor, r.dataset.id, r.querySelector('a.pcap').getAttribute('href')])(document.querySelectorAll('#fleet-exchanges tbody tr')[1])`, &link)
	wantHref := fmt.Sprintf("/api/v1/messages/%s/packets?sensor=%s", link[1], link[0])
	if link[2] != wantHref {
		t.Errorf("drill-down href: got %q, want %q", link[2], wantHref)
	}
	var b64 string
	eval(`fetch(`+strconv.Quote(link[2])+`).then(r => r.arrayBuffer()).then(b => { let s = ''; for (const x of new Uint8Array(b)) s += String.fromCharCode(x); return btoa(s); })`, &b64)
	got, _ := base64.StdEncoding.DecodeString(b64)
	own := e.sensorGet(t, link[0], fmt.Sprintf("/api/v1/messages/%s/packets", link[1]))
	if string(got) != string(own) || len(own) < 24 {
		t.Errorf("page's drill-down: %d bytes, the sensor's own %d: want the same bytes", len(got), len(own))
	}
	// Latency per sensor, and the exchanges sensor-b saw 37 µs after
	// sensor-a, with the clocks' statement.
	var verdict []string
	eval(`[document.querySelector('#fleet-verdict').dataset.blame, document.querySelector('#fleet-verdict').textContent]`, &verdict)
	if len(verdict) != 2 || verdict[0] != "networks" || !strings.HasPrefix(verdict[1], "slow from lagos only (") {
		t.Errorf("locations verdict: got %q, want lagos's network named alone", verdict)
	}
	var locs []string
	eval(`[...document.querySelectorAll('#fleet-locations tbody tr')].map(r => r.dataset.location + ' ' + r.dataset.slow + ' ' + r.cells[1].textContent + ' ' + [...new Set([...r.querySelectorAll('a.pcap')].map(a => a.dataset.sensor + (a.getAttribute('href').includes('sensor=' + a.dataset.sensor) ? '' : '!')))].join('/'))`, &locs)
	slices.Sort(locs)
	if want := "lagos true 10 sensor-b,osaka false 10 sensor-c,paris false 10 sensor-a"; strings.Join(locs, ",") != want {
		t.Errorf("locations rows: got %q, want %q", locs, want)
	}
	var latRows []string
	eval(`[...document.querySelectorAll('#fleet-latency tbody tr')].map(r => r.dataset.sensor)`, &latRows)
	if !strings.Contains(strings.Join(latRows, ","), "sensor-c") || len(latRows) < 3 {
		t.Errorf("latency rows: got %v, want groups of every sensor", latRows)
	}
	var transit [][]string
	eval(`[...document.querySelectorAll('#fleet-transit tbody tr')].map(r => [...r.cells].map(c => c.textContent).concat([r.dataset.uncertain]))`, &transit)
	ab := 0
	for _, r := range transit {
		if r[0] == "sensor-a" && r[1] == "sensor-b" {
			ab++
			if r[5] != "37.000 µs" || (r[7] == "uncertain") != (r[8] == "true") {
				t.Errorf("transit row %q: want 37.000 µs later and the flag as the answer says", r)
			}
		}
	}
	if ab == 0 {
		t.Errorf("transit rows: got %q, want sensor-a then sensor-b", transit)
	}
	// "all sensors" on a sensor-a row: its connection from sensor-a and
	// sensor-b (the same traffic 37 µs later), merged.
	var merged []string
	eval(`(async () => { const r = [...document.querySelectorAll('#fleet-exchanges tbody tr')].find(r => r.dataset.sensor === 'sensor-a' && r.cells[2].textContent === 'http');
		const resp = await fetch(r.querySelector('a.merged').getAttribute('href'));
		const b = new Uint8Array(await resp.arrayBuffer());
		return [String(resp.status), resp.headers.get('X-Tapvault-Sensors') || '', String(b.length)]; })()`, &merged)
	if len(merged) != 3 || merged[0] != "200" || !strings.Contains(merged[1], "sensor-a") || !strings.Contains(merged[1], "sensor-b") {
		t.Errorf("merged link of a sensor-a http row: got %q, want 200 from sensor-a and sensor-b", merged)
	}
	// The filter form: one sensor.
	run("filter", chromedp.Evaluate(`document.querySelector('#fleet-sensor').value = 'sensor-b'; document.querySelector('#fleet-filter').requestSubmit()`, nil))
	ready("filtered", "sensor=sensor-b")
	eval(`[...new Set([...document.querySelectorAll('#fleet-exchanges tbody tr')].map(r => r.dataset.sensor))]`, &rows)
	if strings.Join(rows, ",") != "sensor-b" {
		t.Errorf("filtered to sensor-b: rows from %v", rows)
	}

	// A sensor down: named on the page, the rest still shown.
	e.sensors["sensor-c"].halt()
	e.centre.ProbeNow(context.Background())
	// A fragment change, as a link makes (Navigate would wait for a load
	// a same-document navigation never fires).
	run("reload", chromedp.Evaluate(`location.hash = '#/fleet?reload=1'`, nil))
	ready("reload", "reload=1")
	var missing string
	eval(`(document.querySelector('#fleet-missing') || {}).textContent || ''`, &missing)
	if !strings.Contains(missing, "sensor-c") {
		t.Errorf("missing note: got %q, want it to name sensor-c", missing)
	}
	var cState string
	eval(`document.querySelector('#fleet-sensors tr[data-sensor="sensor-c"]').cells[2].textContent`, &cState)
	if cState != "down" {
		t.Errorf("sensor-c state: got %q, want down", cState)
	}
	var n int
	eval(`document.querySelectorAll('#fleet-exchanges tbody tr').length`, &n)
	if n != fleetPage {
		t.Errorf("exchange rows with sensor-c down: got %d, want a full page of %d", n, fleetPage)
	}
}

// page is a headless chromium on one tab, for a test's lifetime.
type page struct {
	t   *testing.T
	ctx context.Context
}

func newPage(t *testing.T, exe string) *page {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000), chromedp.Flag("headless", "new"), chromedp.Flag("disable-dev-shm-usage", true),
		// The servers under test run in this process, on threads that may
		// exit (query threads): do not tie the browser's life to one.
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			if cmd.SysProcAttr != nil {
				cmd.SysProcAttr.Pdeathsig = 0
			}
		}))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel)
	ctx, tcancel := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(tcancel)
	p := &page{t: t, ctx: ctx}
	return p
}

func (p *page) run(what string, actions ...chromedp.Action) {
	p.t.Helper()
	if err := chromedp.Run(p.ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

func (p *page) eval(js string, v any) {
	p.t.Helper()
	await := func(e *runtime.EvaluateParams) *runtime.EvaluateParams { return e.WithAwaitPromise(true) }
	if err := chromedp.Run(p.ctx, chromedp.Evaluate(js, v, await)); err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
}

// waitJS polls a condition for 60 s (the machine is shared); on failure it
// says where the page was, so a hang is not just "deadline exceeded".
func (p *page) waitJS(what, js string) {
	p.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var ok bool
		if err := chromedp.Run(p.ctx, chromedp.Evaluate(js, &ok)); err != nil {
			p.t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var state string
			chromedp.Run(p.ctx, chromedp.Evaluate(`location.hash + ' view=' + document.querySelector('main').dataset.view + ' ready=' + document.querySelector('main').dataset.ready + ' text=' + document.querySelector('main').textContent.slice(0, 300)`, &state))
			p.t.Fatalf("%s: not true in 60 s: %s; page: %s", what, js, state)
		}
	}
}

// fleetPage is fleet.js's page size.
const fleetPage = 100

// TestFleetAcrossBrowser: an exchange's "across" link on the fleet view
// opens it across the sensors: a ladder for far, which saw it, with a lane
// per sensor between the client's and the server's (across.js, as for a
// server's peer stores), the hop figures as the API has them, other named
// as not having seen it; a figure the clocks do not allow is shown as
// refused; the packets' bytes (a request that is markup) never become
// markup.
func TestFleetAcrossBrowser(t *testing.T) {
	exe := chromium(t)
	e := newHopFleet(t, Options{UI: web.FS()})
	near := e.hopIDs(t, "near")
	pg := newPage(t, exe)
	pg.run("open", chromedp.Navigate(e.web.URL+"/#/fleet?sensor=near&proto=http"))
	pg.waitJS("fleet", `(m => m.dataset.ready === location.hash && document.querySelector('#fleet-exchanges') !== null)(document.querySelector('main'))`)
	// Nothing stray at the top of the page (the notes absent here were
	// once written as "null").
	strayText := func(what string) {
		t.Helper()
		var stray string
		pg.eval(`[...document.querySelector('main').childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('|')`, &stray)
		if stray != "" {
			t.Errorf("%s: text outside the page's elements: %q", what, stray)
		}
	}
	strayText("fleet view")
	var href string
	pg.eval(`document.querySelector('#fleet-exchanges tr[data-id="`+near[0]+`"] a.across').getAttribute('href')`, &href)
	if want := "#/fleet?across=" + near[0] + "&at=near"; href != want {
		t.Fatalf("across link: got %q, want %q", href, want)
	}
	open := func(hash string) {
		t.Helper()
		pg.run("open "+hash, chromedp.Evaluate(`location.hash = `+strconv.Quote(hash), nil))
		pg.waitJS("across "+hash, `(m => m.dataset.ready === location.hash && location.hash === `+strconv.Quote(hash)+` && document.querySelector('.across-ladder') !== null)(document.querySelector('main'))`)
	}
	hopsShown := func() map[string]string {
		var m map[string]string
		pg.eval(`Object.fromEntries([...document.querySelectorAll('.across tr[data-hop]')].map(tr => [tr.dataset.hop, tr.querySelector('td').textContent]))`, &m)
		return m
	}
	open(href)
	want := map[string]string{"client ↔ near": "20.000000 ms", "near ↔ far": "7.000000 ms", "far ↔ server": "13.000000 ms"}
	if got := hopsShown(); !maps.Equal(got, want) {
		t.Errorf("hops shown: got %v, want %v", got, want)
	}
	strayText("across view")
	if dir := os.Getenv("TAPVAULT_UI_SCREENSHOTS"); dir != "" {
		var png []byte
		pg.run("screenshot", chromedp.FullScreenshot(&png, 100)) // 100: PNG
		if err := os.WriteFile(filepath.Join(dir, "ui-fleet-across.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var lanes []string
	pg.eval(`[...document.querySelectorAll('.across-ladder .lane-label')].map(t => t.textContent)`, &lanes)
	if len(lanes) != 4 || lanes[1] != "near" || lanes[2] != "far" || !strings.HasPrefix(lanes[0], "client 10.0.0.1") || !strings.HasPrefix(lanes[3], "server 10.0.0.2") {
		t.Errorf("lanes: got %q, want the client, near, far, the server", lanes)
	}
	var crossing int
	pg.eval(`document.querySelectorAll('.across-ladder polyline.pkt:not(.one-point)').length`, &crossing)
	if crossing != 3 {
		t.Errorf("%d packets drawn across both sensors, want 3", crossing)
	}
	var notes []string
	pg.eval(`[document.querySelector('#across-clock-far').textContent, (document.querySelector('#fleet-not-found') || {}).textContent || '', String(document.querySelectorAll('.across').length)]`, &notes)
	if !strings.Contains(notes[0], "uncertainty 200.000 µs") || !strings.Contains(notes[1], "other") || notes[2] != "1" {
		t.Errorf("clock note %q, not-found note %q, %s sections: want the 0.2 ms uncertainty, other named, one section", notes[0], notes[1], notes[2])
	}
	// Connection 1: the clocks allow 8 ms, more than the 7 ms measured.
	open("#/fleet?across=" + near[1] + "&at=near")
	if got := hopsShown()["near ↔ far"]; got != "below the clocks’ uncertainty" {
		t.Errorf("connection 1, near ↔ far: got %q, want it refused", got)
	}
	var pwned bool
	pg.eval(`window.__pwned !== undefined || document.querySelector('main img, main script') !== null`, &pwned)
	if pwned {
		t.Error("packet bytes became markup")
	}
}
