package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"tapvault/tracegen"
)

// The browser tests drive Debian's chromium (scripts/setup.sh installs it)
// through the DevTools protocol with chromedp, against tapvault serve on a
// store imported from a generated app trace plus a hand-made hostile one.
// They skip, saying why, only when no chromium is installed.

// findChromium returns the browser's path, or skips the test.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH: the browser tests need Debian's chromium package (make setup installs it)")
	return ""
}

// hostileXSS is what the hostile trace carries; the page must show it as
// text and never run it (the scripts would set window.__pwned).
const (
	hostilePath = `/<script>window.__pwned=1</script><img/src=x/onerror=window.__pwned=2>`
	hostileHost = `<b onmouseover="window.__pwned=3">evil</b>`
	hostileName = `<img/src=x/onerror=window.__pwned=4>.evil.example`
)

// writeHostileTrace writes an HTTP exchange whose path and host are markup
// and a DNS exchange whose name is, at start.
func writeHostileTrace(t *testing.T, path string, start time.Time) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	cli, srv := net.IPv4(10, 66, 0, 1).To4(), net.IPv4(10, 66, 0, 2).To4()
	cmac, smac := net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}
	at := start
	emit := func(fromClient bool, l4 gopacket.SerializableLayer, payload []byte, dt time.Duration) {
		at = at.Add(dt)
		eth := &layers.Ethernet{SrcMAC: cmac, DstMAC: smac, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: cli, DstIP: srv}
		if !fromClient {
			eth.SrcMAC, eth.DstMAC = smac, cmac
			ip.SrcIP, ip.DstIP = srv, cli
		}
		switch l := l4.(type) {
		case *layers.TCP:
			ip.Protocol = layers.IPProtocolTCP
			l.SetNetworkLayerForChecksum(ip)
		case *layers.UDP:
			ip.Protocol = layers.IPProtocolUDP
			l.SetNetworkLayerForChecksum(ip)
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, l4, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: at, CaptureLength: len(b), Length: len(b)}, b); err != nil {
			t.Fatal(err)
		}
	}
	req := []byte("GET " + hostilePath + " HTTP/1.1\r\nHost: " + hostileHost + "\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	cs, ss := uint32(1000), uint32(5000)
	tcp := func(fromClient bool, syn, ack, psh bool) *layers.TCP {
		l := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: syn, ACK: ack, PSH: psh, Window: 65535, Seq: cs, Ack: ss}
		if !fromClient {
			l.SrcPort, l.DstPort, l.Seq, l.Ack = 80, 40000, ss, cs
		}
		return l
	}
	emit(true, tcp(true, true, false, false), nil, 0)
	cs++
	emit(false, tcp(false, true, true, false), nil, 2*time.Millisecond)
	ss++
	emit(true, tcp(true, false, true, false), nil, 2*time.Millisecond)
	emit(true, tcp(true, false, true, true), req, time.Millisecond)
	cs += uint32(len(req))
	emit(false, tcp(false, false, true, false), nil, 2*time.Millisecond)
	emit(false, tcp(false, false, true, true), resp, 30*time.Millisecond)
	ss += uint32(len(resp))
	emit(true, tcp(true, false, true, false), nil, 2*time.Millisecond)

	q := &layers.DNS{ID: 0x4242, RD: true, Questions: []layers.DNSQuestion{{Name: []byte(hostileName), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}}
	a := *q
	a.QR, a.RA = true, true
	a.Answers = []layers.DNSResourceRecord{{Name: []byte(hostileName), Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 60, IP: net.IPv4(192, 0, 2, 1).To4()}}
	serialize := func(d *layers.DNS) []byte {
		buf := gopacket.NewSerializeBuffer()
		if err := d.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(buf.Bytes())
	}
	emit(true, &layers.UDP{SrcPort: 40001, DstPort: 53}, serialize(q), 10*time.Millisecond)
	emit(false, &layers.UDP{SrcPort: 53, DstPort: 40001}, serialize(&a), 3*time.Millisecond)
}

// jsDur is the page's fmtDur: exact to the nanosecond.
func jsDur(ns int64) string {
	switch {
	case ns < 0:
		return "-"
	case ns < 1e3:
		return fmt.Sprintf("%d ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%d.%03d µs", ns/1e3, ns%1e3)
	case ns < 1e9:
		return fmt.Sprintf("%d.%06d ms", ns/1e6, ns%1e6)
	}
	return fmt.Sprintf("%d.%09d s", ns/1e9, ns%1e9)
}

// jsCount is the page's fmtCount: thin spaces between thousands.
func jsCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteRune('\u2009')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// browserLog collects what the page must not do: console errors, uncaught
// exceptions, failed or refused requests.
type browserLog struct {
	mu   sync.Mutex
	errs []string
}

func (l *browserLog) add(s string) {
	l.mu.Lock()
	l.errs = append(l.errs, s)
	l.mu.Unlock()
}

func (l *browserLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.errs
	l.errs = nil
	return e
}

func (l *browserLog) listen(ctx context.Context) {
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeWarning {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				l.add("console " + string(ev.Type) + ": " + strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			l.add("exception: " + msg)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.LevelError || ev.Entry.Level == cdplog.LevelWarning {
				l.add("log " + string(ev.Entry.Level) + ": " + ev.Entry.Text + " " + ev.Entry.URL)
			}
		case *network.EventResponseReceived:
			if ev.Response.Status >= 400 {
				l.add(fmt.Sprintf("HTTP %d %s", ev.Response.Status, ev.Response.URL))
			}
		case *network.EventLoadingFailed:
			if !ev.Canceled {
				l.add("request failed: " + ev.ErrorText)
			}
		}
	})
}

// startServe runs tapvault serve in this process and waits for it.
func startServe(t *testing.T, store, addr string, extra ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newServeCmd()
	cmd.SetArgs(append([]string{"--data", store, "--listen", addr}, extra...))
	cmd.SetOut(io.Discard)
	errc := make(chan error, 1)
	go func() { errc <- cmd.ExecuteContext(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/ui/session")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("serve stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not answer within 10s")
		}
	}
	return func() { cancel(); <-errc }
}

func freeAddr(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// chromeOut passes the browser's own output to the test log.
type chromeOut struct{ t *testing.T }

func (c *chromeOut) Write(b []byte) (int, error) {
	if s := strings.TrimSpace(string(b)); s != "" && !strings.Contains(s, "dbus") {
		c.t.Logf("chromium: %s", s)
	}
	return len(b), nil
}

func newBrowser(t *testing.T, exe string) (context.Context, *browserLog, func()) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000), chromedp.Flag("headless", "new"),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.CombinedOutput(&chromeOut{t}),
		// chromedp asks for SIGKILL when the thread that started the
		// browser exits. The server under test runs in this process and
		// runs each query on a locked OS thread that exits when the query
		// is done (query/priority.go), so that thread may be the one: the
		// browser would be killed mid-test. Cancelling the allocator still
		// ends the browser.
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			if cmd.SysProcAttr != nil {
				cmd.SysProcAttr.Pdeathsig = 0
			}
		}))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	var dbgMu sync.Mutex
	var dbg []string
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf), chromedp.WithDebugf(func(f string, a ...any) {
		dbgMu.Lock()
		dbg = append(dbg, fmt.Sprintf(f, a...))
		if len(dbg) > 40 {
			dbg = dbg[1:]
		}
		dbgMu.Unlock()
	}))
	t.Cleanup(func() {
		if t.Failed() {
			dbgMu.Lock()
			for _, l := range dbg {
				if len(l) > 300 {
					l = l[:300]
				}
				t.Log("cdp: " + l)
			}
			dbgMu.Unlock()
		}
	})
	ctx, tcancel := context.WithTimeout(ctx, 3*time.Minute)
	bl := &browserLog{}
	bl.listen(ctx)
	if err := chromedp.Run(ctx, network.Enable(), cdplog.Enable(), runtime.Enable()); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, bl, func() { tcancel(); cancel(); acancel() }
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	var v T
	await := func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }
	if err := chromedp.Run(ctx, chromedp.Evaluate(js, &v, await)); err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// TestUIBrowser: the numbers on screen equal the CLI's, the click path from
// an exchange to its packets and their pcap lands on the same bytes as
// tapvault query --message ID -w, hostile text renders as text, and no
// view logs an error or fails a request.
func TestUIBrowser(t *testing.T) {
	exe := findChromium(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	opts := appOpts
	opts.Packets = 8000
	if _, err := tracegen.GenerateFile(trace, opts); err != nil {
		t.Fatal(err)
	}
	hostile := filepath.Join(dir, "hostile.pcap")
	writeHostileTrace(t, hostile, time.Date(2024, 1, 1, 0, 1, 0, 0, time.UTC))
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, "--slow-network", "25ms", trace, hostile)

	addr := freeAddr(t, "127.0.0.1")
	defer startServe(t, store, addr)()
	base := "http://" + addr + "/"
	ctx, bl, done := newBrowser(t, exe)
	defer done()

	// Overview: the store's packets and the latency groups, as the CLI says.
	var stats struct{ Packets int64 }
	out, _ := tv(t, false, "stats", "--data", store, "--json")
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "overview", chromedp.Navigate(base+"#/overview"), waitView("overview"), waitFor("#stat-packets"), waitFor("#latency-table"))
	screenshot(t, ctx, "overview")
	if got := eval[string](t, ctx, `document.querySelector('#stat-packets').textContent`); got != jsCount(stats.Packets) {
		t.Errorf("overview packets: got %q, want %q (tapvault stats)", got, jsCount(stats.Packets))
	}
	latOut, _ := tv(t, false, "latency", "--data", store, "--json", "--by", "proto")
	groups := jsonLines(t, latOut)
	shown := eval[map[string]map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#latency-table tbody tr')].map(tr =>
		[tr.dataset.proto, Object.fromEntries([...tr.querySelectorAll('td[data-key]')].map(td => [td.dataset.key, td.textContent]))]))`)
	if len(shown) != len(groups) {
		t.Errorf("overview latency: %d protocols shown, the CLI has %d", len(shown), len(groups))
	}
	for _, g := range groups {
		p := g["key"].(map[string]any)["proto"].(string)
		row := shown[p]
		if row == nil {
			t.Errorf("overview latency: no row for %s", p)
			continue
		}
		if want := jsCount(num(g, "count")); row["count"] != want {
			t.Errorf("overview %s count: got %q, want %q", p, row["count"], want)
		}
		lat := g["latency_ns"].(map[string]any)
		for _, q := range []string{"p50", "p90", "p99", "max"} {
			if want := jsDur(num(lat, q)); row[q] != want {
				t.Errorf("overview %s latency %s: got %q, want %q", p, q, row[q], want)
			}
		}
		for part, key := range map[string]string{"network_p50": "network_ns", "server_p50": "server_ns", "transfer_p50": "transfer_ns"} {
			if want := jsDur(num(g[key].(map[string]any), "p50")); row[part] != want {
				t.Errorf("overview %s %s: got %q, want %q", p, part, row[part], want)
			}
		}
	}
	// Live: the page keeps receiving stats (the counter stays right).
	run(t, ctx, "live", waitFor("#pps"))

	// Sort by another column and page: page 2 of redis by server time is
	// rows 101-200 of the CLI's records in that order (stable, unknown
	// times last).
	redis := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", "proto redis"))
	slices.SortStableFunc(redis, func(a, b map[string]any) int {
		x, y := num(a, "server_ns"), num(b, "server_ns")
		switch {
		case (x < 0) != (y < 0):
			if x < 0 {
				return 1
			}
			return -1
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	if len(redis) < 150 {
		t.Fatalf("only %d redis exchanges: the paging check needs more than one page", len(redis))
	}
	run(t, ctx, "redis by server time, page 2", hash("#/exchanges?expr=proto+redis&sort=server_ns&page=1"), waitView("exchanges"), waitFor("#exchanges-table"))
	var want2 []string
	for _, r := range redis[100:min(200, len(redis))] {
		want2 = append(want2, r["id"].(string))
	}
	if got := eval[[]string](t, ctx, `[...document.querySelectorAll('#exchanges-table tbody tr')].map(tr => tr.dataset.id)`); !slices.Equal(got, want2) {
		t.Errorf("redis page 2 by server_ns: got %d rows starting %q, want %d rows starting %q", len(got), got[:min(3, len(got))], len(want2), want2[:3])
	}

	// Exchanges: the slow-app HTTP exchanges, slowest first.
	const expr = "proto http and class slow_app"
	cli := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", expr))
	slices.SortStableFunc(cli, func(a, b map[string]any) int { return int(num(b, "latency_ns") - num(a, "latency_ns")) })
	run(t, ctx, "exchanges", hash("#/exchanges?expr="+url.QueryEscape(expr)+"&sort=-latency_ns"), waitView("exchanges"), waitFor("#exchanges-table"))
	screenshot(t, ctx, "exchanges")
	if got := eval[string](t, ctx, `document.querySelector('#count').dataset.count`); got != strconv.Itoa(len(cli)) {
		t.Errorf("exchanges count: got %s, want %d (tapvault messages)", got, len(cli))
	}
	if got := eval[string](t, ctx, `document.querySelector('#exchanges-table tbody tr').dataset.id`); got != cli[0]["id"] {
		t.Errorf("slowest exchange: got %s, want %s", got, cli[0]["id"])
	}
	// The click path: the first (slowest) row -> the exchange -> its pcap.
	slow := cli[0]
	id := slow["id"].(string)
	run(t, ctx, "click the slowest exchange", click(`#exchanges-table tbody tr:first-child td:last-child a`))
	run(t, ctx, "open the slowest exchange", waitView("exchange"), waitFor("#ladder"))
	screenshot(t, ctx, "exchange")
	checkExchange(t, ctx, slow)

	want := filepath.Join(dir, "m.pcap")
	tv(t, false, "query", "--data", store, "--message", id, "-w", want)
	wantB, _ := os.ReadFile(want)
	got := download(t, ctx, filepath.Join(dir, "dl"), "#download")
	if !bytes.Equal(got, wantB) {
		t.Errorf("downloaded pcap of %s: %d bytes, not identical to tapvault query --message -w (%d bytes)", id, len(got), len(wantB))
	}
	// Its packets are all in the list, each time shown.
	nPkts := eval[int](t, ctx, `document.querySelectorAll('#packets-table tbody tr').length`)
	if nPkts != len(slow["packets"].([]any)) {
		t.Errorf("exchange %s lists %d packets, its record has %d", id, nPkts, len(slow["packets"].([]any)))
	}
	drill := eval[[]string](t, ctx, `[...document.querySelectorAll('#packets-table tbody tr')].map(tr => tr.dataset.ts)`)
	run(t, ctx, "the connection's packets", click("#connection"), waitView("packets"), waitFor("#packets-table"))
	conn := eval[[]string](t, ctx, `[...document.querySelectorAll('#packets-table tbody tr')].map(tr => tr.dataset.ts)`)
	for _, ts := range drill {
		if !slices.Contains(conn, ts) {
			t.Errorf("the connection's packets lack the exchange's packet at %s", ts)
		}
	}
	// The page's pcap is what tapvault query writes for the same filter,
	// window and count.
	sel := eval[map[string]string](t, ctx, `Object.fromEntries(new URL(document.querySelector('#download-page').href).searchParams)`)
	pagePcap := filepath.Join(dir, "page.pcap")
	tv(t, false, "query", "--data", store, "--from", sel["from"], "--to", sel["to"], "--limit", sel["limit"], "-w", pagePcap, sel["filter"])
	wantPage, _ := os.ReadFile(pagePcap)
	if got := download(t, ctx, filepath.Join(dir, "dl-page"), "#download-page"); !bytes.Equal(got, wantPage) {
		t.Errorf("the packets page's pcap (%v): %d bytes, not identical to tapvault query's %d", sel, len(got), len(wantPage))
	}
	run(t, ctx, "packet detail", click(`#packets-table tbody tr:first-child`), waitFor("#hex"))
	screenshot(t, ctx, "packets")
	if layers := eval[[]string](t, ctx, `[...document.querySelectorAll('#packet-detail details summary')].map(e => e.textContent)`); !slices.Equal(layers, []string{"Ethernet II", "Internet Protocol Version 4", "Transmission Control Protocol"}) {
		t.Errorf("packet detail layers: %q", layers)
	}

	// A slow-network exchange: its parts as the CLI has them.
	sn := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", "--limit", "1", "proto http and class slow_net"))
	if len(sn) != 1 {
		t.Fatal("no slow_net HTTP exchange in the trace")
	}
	run(t, ctx, "slow_net exchange", hash("#/exchange?id="+sn[0]["id"].(string)), waitView("exchange"), waitFor("#ladder"))
	checkExchange(t, ctx, sn[0])

	// A front exchange: its tier split and the waterfall of its backend
	// calls; a call links back to it.
	var front map[string]any
	for _, r := range jsonLines(t, mustTV(t, "messages", "--data", store, "--json", "--tiers", "proto http")) {
		if b, ok := r["backends"].([]any); ok && len(b) >= 2 {
			front = r
			break
		}
	}
	if front == nil {
		t.Fatal("no front exchange with two backend calls in the trace")
	}
	fid := front["id"].(string)
	calls := front["backends"].([]any)
	run(t, ctx, "front exchange", hash("#/exchange?id="+fid), waitView("exchange"), waitFor("#waterfall"))
	run(t, ctx, "scroll to the waterfall", chromedp.Evaluate(`document.querySelector('#tiers').scrollIntoView()`, nil))
	screenshot(t, ctx, "tiers")
	rows := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('tr[data-key^="tier_"]')].map(tr => [tr.dataset.key, tr.querySelector('td').textContent]))`)
	for _, k := range []string{"tier_before_ns", "tier_backend_ns", "tier_after_ns", "tier_self_ns"} {
		if want := jsDur(num(front, k)); rows[k] != want {
			t.Errorf("front %s %s: got %q, want %q", fid, k, rows[k], want)
		}
	}
	drawn := eval[[]string](t, ctx, `[...document.querySelectorAll('#waterfall a[data-id]')].map(a => a.dataset.id)`)
	for _, c := range calls {
		if !slices.Contains(drawn, c.(string)) {
			t.Errorf("front %s: backend call %s not in the waterfall %q", fid, c, drawn)
		}
	}
	if len(drawn) != len(calls) {
		t.Errorf("front %s: %d calls drawn, the record has %d", fid, len(drawn), len(calls))
	}
	run(t, ctx, "a backend call", chromedp.Evaluate(`location.hash = document.querySelector('#waterfall a[data-id]').getAttribute('href')`, nil),
		waitView("exchange"), waitFor("#frontend"))
	if got := eval[string](t, ctx, `document.querySelector('#frontend').textContent`); got != fid {
		t.Errorf("backend call's front end: got %s, want %s", got, fid)
	}

	// Hostile text renders as text.
	for _, c := range []struct{ expr, field, want string }{
		{"proto http and server 10.66.0.2:80", "path", hostilePath},
		{"proto dns and client 10.66.0.1", "qname", hostileName},
	} {
		recs := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", c.expr))
		if len(recs) != 1 {
			t.Fatalf("%s: %d records, want the one hostile exchange", c.expr, len(recs))
		}
		if recs[0][c.field] != c.want {
			t.Fatalf("%s: %s is %q, want the hostile %q", c.expr, c.field, recs[0][c.field], c.want)
		}
		run(t, ctx, "hostile list", hash("#/exchanges?expr="+url.QueryEscape(c.expr)), waitView("exchanges"), waitFor("#exchanges-table"))
		if txt := eval[string](t, ctx, `document.querySelector('#exchanges-table tbody').textContent`); !strings.Contains(txt, c.want) {
			t.Errorf("%s: the list does not show %q as text: %q", c.expr, c.want, txt)
		}
		run(t, ctx, "hostile exchange", hash("#/exchange?id="+recs[0]["id"].(string)), waitView("exchange"), waitFor("#ladder"),
			click(`#packets-table tbody tr:last-child`), waitFor("#hex"))
		if txt := eval[string](t, ctx, `document.querySelector('#summary').textContent + document.querySelector('main').textContent`); !strings.Contains(txt, c.want) {
			t.Errorf("%s: the exchange does not show %q as text", c.expr, c.want)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('main script, main img, main b, main iframe').length`); n != 0 {
			t.Errorf("%s: %d elements made from packet text", c.expr, n)
		}
		if p := eval[bool](t, ctx, `window.__pwned !== undefined`); p {
			t.Errorf("%s: a hostile payload ran", c.expr)
		}
	}
	for _, e := range bl.take() {
		t.Errorf("browser: %s", e)
	}
}

// screenshot saves the page as DIR/ui-NAME.png when TAPVAULT_UI_SCREENSHOTS
// names a directory (docs/ui.md shows them).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("TAPVAULT_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	var png []byte
	run(t, ctx, "screenshot "+name, chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join(dir, "ui-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hash moves the page to another view as a link does: a fragment change in
// the same document (chromedp.Navigate waits for a load that never comes).
func hash(frag string) chromedp.Action {
	return chromedp.Evaluate("location.hash = "+strconv.Quote(frag), nil)
}

// waitFor waits until the selector matches an element: polled in the
// page, so a view that re-renders never leaves the test holding a node it
// removed. An element with data-ready must also be ready for the current
// fragment.
func waitFor(sel string) chromedp.Action {
	return waitJS("(e => e !== null && (!e.dataset.ready || e.dataset.ready === location.hash))(document.querySelector(" + strconv.Quote(sel) + "))")
}

// waitJS waits until the expression is true in the page, 30 s at most.
func waitJS(js string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		deadline := time.Now().Add(30 * time.Second)
		for {
			var ok bool
			if err := chromedp.Evaluate(js, &ok).Do(ctx); err != nil {
				return err
			}
			if ok {
				return nil
			}
			if time.Now().After(deadline) {
				var main string
				chromedp.Evaluate(`(document.querySelector('main') || {}).textContent`, &main).Do(ctx)
				if len(main) > 2000 {
					main = main[:2000]
				}
				return fmt.Errorf("waited 30s for %s; the page shows: %s", js, main)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w", js, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// waitView waits until the page has rendered the view named by its
// current fragment.
func waitView(view string) chromedp.Action {
	return waitFor(`main[data-view="` + view + `"][data-ready^="#"]`)
}

// click clicks the element as a user's click does: the page's own
// listeners and links act on it.
func click(sel string) chromedp.Action {
	return chromedp.Evaluate("document.querySelector("+strconv.Quote(sel)+").click()", nil)
}

// login types the token into the login form and submits it.
func login(tok string) chromedp.Action {
	return chromedp.Evaluate("document.querySelector('#token').value = "+strconv.Quote(tok)+"; document.querySelector('#login').requestSubmit()", nil)
}

func mustTV(t *testing.T, args ...string) string {
	t.Helper()
	out, _ := tv(t, false, args...)
	return out
}

// checkExchange compares the exchange view with the record the CLI gives.
func checkExchange(t *testing.T, ctx context.Context, rec map[string]any) {
	t.Helper()
	id := rec["id"].(string)
	if got := eval[string](t, ctx, `document.querySelector('#exchange-id').textContent`); got != id {
		t.Fatalf("exchange view shows %s, want %s", got, id)
	}
	if got := eval[string](t, ctx, `document.querySelector('#class').textContent`); got != rec["class"] {
		t.Errorf("%s class: got %q, want %q", id, got, rec["class"])
	}
	rows := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('tr[data-key]')].map(tr => [tr.dataset.key, tr.querySelector('td').textContent]))`)
	for _, k := range []string{"latency_ns", "network_ns", "server_ns", "transfer_ns", "client_net_ns", "rtt_ns"} {
		if want := jsDur(num(rec, k)); rows[k] != want {
			t.Errorf("%s %s: got %q, want %q", id, k, rows[k], want)
		}
	}
	for _, k := range []string{"net_from", "confidence", "near", "why"} {
		want, _ := rec[k].(string)
		if want == "" {
			want = "-"
		}
		if rows[k] != want {
			t.Errorf("%s %s: got %q, want %q", id, k, rows[k], want)
		}
	}
	// The ladder draws the parts with their values and labels them.
	parts := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#ladder [data-part-label]')].map(e => [e.dataset.partLabel, e.textContent]))`)
	for part, k := range map[string]string{"network": "network_ns", "server": "server_ns", "transfer": "transfer_ns", "latency": "latency_ns"} {
		if want := part + " " + jsDur(num(rec, k)); parts[part] != want {
			t.Errorf("%s ladder label %s: got %q, want %q", id, part, parts[part], want)
		}
	}
	rects := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#ladder rect[data-part]')].map(e => [e.dataset.part, e.dataset.ns]))`)
	for part, k := range map[string]string{"network": "network_ns", "server": "server_ns", "transfer": "transfer_ns"} {
		if want := strconv.FormatInt(num(rec, k), 10); rects[part] != want {
			t.Errorf("%s ladder %s bar: %q ns, want %s", id, part, rects[part], want)
		}
	}
	// Every packet of the record crosses the ladder.
	if n, want := eval[int](t, ctx, `document.querySelectorAll('#ladder polyline.pkt').length`), len(rec["packets"].([]any)); n != want {
		t.Errorf("%s ladder: %d packets drawn, the record has %d", id, n, want)
	}
}

// download clicks a link and returns the file the browser saved (named by
// its download GUID: the page's own file name does not matter here).
func download(t *testing.T, ctx context.Context, dir, sel string) []byte {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	guids := make(chan string, 4)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chromedp.ListenTarget(lctx, func(ev any) {
		if e, ok := ev.(*browser.EventDownloadProgress); ok && e.State == browser.DownloadProgressStateCompleted {
			guids <- e.GUID
		}
	})
	run(t, ctx, "download "+sel,
		browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllowAndName).WithDownloadPath(dir).WithEventsEnabled(true),
		click(sel))
	deadline := time.After(30 * time.Second)
	for {
		select {
		case g := <-guids:
			b, err := os.ReadFile(filepath.Join(dir, g))
			if err != nil {
				t.Fatal(err)
			}
			return b
		case <-deadline:
			ents, _ := os.ReadDir(dir)
			t.Fatalf("download %s did not complete in 30s (%d files in %s)", sel, len(ents), dir)
		}
	}
}

// TestUIBrowserAuth: a server with a token (off loopback when this machine
// has another address) shows the login page and no data without the token,
// refuses a bad one, and turns a good one into an HttpOnly, SameSite=Strict
// cookie the scripts cannot read.
func TestUIBrowserAuth(t *testing.T) {
	exe := findChromium(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	opts := appOpts
	opts.Packets = 2000
	if _, err := tracegen.GenerateFile(trace, opts); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, trace)
	const token = "ui-test-token-0123456789abcdef"
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte(token+"\n"), 0o600)

	host := "127.0.0.1"
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				host = ipn.IP.String()
				break
			}
		}
	}
	if host == "127.0.0.1" {
		t.Logf("no non-loopback address here: testing the token rule on loopback (a token set there is required too)")
	}
	addr := freeAddr(t, host)
	defer startServe(t, store, addr, "--token-file", tokFile)()
	base := "http://" + addr + "/"
	ctx, bl, done := newBrowser(t, exe)
	defer done()

	run(t, ctx, "login page", chromedp.Navigate(base+"#/overview"), waitView("login"), waitFor("#login"))
	if n := eval[int](t, ctx, `document.querySelectorAll('#stats, #latency-table').length`); n != 0 {
		t.Errorf("data shown before login")
	}
	if errs := bl.take(); len(errs) != 0 {
		t.Errorf("the login page logged errors: %q", errs)
	}
	// No token, no data: the API answers 401 to the page.
	if code := eval[int](t, ctx, `(async () => (await fetch('/api/v1/stats')).status)()`); code != 401 {
		t.Errorf("API without a token: got %d, want 401", code)
	}
	// A bad token is refused, and no cookie is set.
	run(t, ctx, "bad token", login("not-the-token-0123456789"),
		waitJS(`document.querySelector('#login-error').textContent !== ''`))
	time.Sleep(300 * time.Millisecond)
	if msg := eval[string](t, ctx, `document.querySelector('#login-error').textContent`); !strings.Contains(msg, "invalid token") {
		t.Errorf("bad token: the page says %q, want invalid token", msg)
	}
	var cookies []*network.Cookie
	run(t, ctx, "cookies", chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().WithURLs([]string{base}).Do(ctx)
		return err
	}))
	if len(cookies) != 0 {
		t.Errorf("a bad token set cookies: %v", cookies)
	}
	for _, e := range bl.take() {
		if !strings.Contains(e, "401") { // the refused login and the probe above
			t.Errorf("browser: %s", e)
		}
	}
	// The good token: the overview loads; the cookie is HttpOnly, Strict.
	run(t, ctx, "good token", login(token),
		waitView("overview"), waitFor("#stat-packets"), waitFor("#latency-table"))
	run(t, ctx, "cookies", chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().WithURLs([]string{base}).Do(ctx)
		return err
	}))
	if len(cookies) != 1 || cookies[0].Name != "tapvault_session" || !cookies[0].HTTPOnly || cookies[0].SameSite != network.CookieSameSiteStrict || cookies[0].Path != "/" {
		t.Errorf("session cookie: %+v; want one tapvault_session, HttpOnly, SameSite=Strict, Path=/", cookies)
	}
	if c := eval[string](t, ctx, `document.cookie`); c != "" {
		t.Errorf("scripts can read cookies: %q", c)
	}
	if code := eval[int](t, ctx, `(async () => (await fetch('/api/v1/stats')).status)()`); code != 200 {
		t.Errorf("API with the session: got %d, want 200", code)
	}
	// Downloads carry the cookie too: an exchange's pcap, off loopback.
	one := jsonLines(t, mustTV(t, "messages", "--data", store, "--json", "--limit", "1", "proto http"))
	if len(one) != 1 {
		t.Fatal("no HTTP exchange in the trace")
	}
	oid := one[0]["id"].(string)
	wantPcap := filepath.Join(dir, "one.pcap")
	tv(t, false, "query", "--data", store, "--message", oid, "-w", wantPcap)
	wantB, _ := os.ReadFile(wantPcap)
	run(t, ctx, "an exchange", hash("#/exchange?id="+oid), waitView("exchange"), waitFor("#download"))
	if got := download(t, ctx, filepath.Join(dir, "dl"), "#download"); !bytes.Equal(got, wantB) {
		t.Errorf("pcap downloaded with the session: %d bytes, want tapvault query's %d", len(got), len(wantB))
	}
	// Logging out ends the session.
	run(t, ctx, "logout", click("#logout"), waitView("login"), waitFor("#login"))
	if code := eval[int](t, ctx, `(async () => (await fetch('/api/v1/stats')).status)()`); code != 401 {
		t.Errorf("API after logout: got %d, want 401", code)
	}
	for _, e := range bl.take() {
		if !strings.Contains(e, "401") { // the probe after logout
			t.Errorf("browser: %s", e)
		}
	}
}

// TestUIBrowserLiveCapture: while tapvault capture runs (DPDK's net_pcap
// replaying a trace in a loop), the overview it serves counts up without a
// reload, and shows the drops per stage from its /metrics.
func TestUIBrowserLiveCapture(t *testing.T) {
	needDPDK(t)
	exe := findChromium(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 20000)
	store := filepath.Join(dir, "store")
	addr := freeAddr(t, "127.0.0.1")
	cmd := exec.Command(os.Args[0], "capture", "--eal", ealFor("net_pcap0,rx_pcap="+trace+",infinite_rx=1"), "--data", store,
		"--block-size", "256KiB", "--retain-bytes", "64MiB", "--retention-every", "1s", "--listen", addr)
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/ui/session")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture's API did not answer in 30s:\n%s", logs.String())
		}
	}
	ctx, bl, done := newBrowser(t, exe)
	defer done()
	run(t, ctx, "overview", chromedp.Navigate("http://"+addr+"/#/overview"), waitView("overview"), waitFor("#stat-packets"))
	first := eval[string](t, ctx, `document.querySelector('#stats').dataset.packets`)
	n1, _ := strconv.ParseInt(first, 10, 64)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	run(t, wctx, "the counter moves (20s)", waitJS(fmt.Sprintf(`BigInt(document.querySelector('#stats').dataset.packets) > %dn`, n1)),
		waitJS(`document.querySelector('#pps') !== null && document.querySelector('#pps').textContent !== '0 pkt/s'`),
		waitFor("#drops-table, #no-drops"))
	// Store health while capturing: the index lag and the time to
	// queryable come from the capture's /metrics; the p50 and p99 shown are
	// bucket bounds of its histogram. Reloaded once the capture has
	// committed blocks.
	run(t, wctx, "health while capturing", chromedp.Reload(), waitView("overview"), waitFor("#health-series"))
	h := eval[map[string]string](t, ctx, `(() => { const d = (s) => document.querySelector(s).dataset; return {lag: d('#health-lag').v, p50: d('#health-ttq').p50, p99: d('#health-ttq').p99,
		samples: d('#health-samples').count, note: String(document.querySelectorAll('#health-no-capture').length)}; })()`)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	bounds := map[string]bool{}
	for _, line := range strings.Split(string(metrics), "\n") {
		if rest, ok := strings.CutPrefix(line, `tapvault_time_to_queryable_seconds_bucket{le="`); ok {
			le, _, _ := strings.Cut(rest, `"`)
			f, _ := strconv.ParseFloat(le, 64)
			bounds[strconv.FormatFloat(f, 'g', -1, 64)] = true
		}
	}
	t.Logf("health while capturing: index lag %s blocks, time to queryable p50 %s s, p99 %s s, %s samples", h["lag"], h["p50"], h["p99"], h["samples"])
	if lag, err := strconv.ParseFloat(h["lag"], 64); err != nil || lag < 0 {
		t.Errorf("index lag while capturing: %q, want a count from /metrics", h["lag"])
	}
	p50, _ := strconv.ParseFloat(h["p50"], 64)
	p99, _ := strconv.ParseFloat(h["p99"], 64)
	if !bounds[h["p50"]] || !bounds[h["p99"]] || p50 <= 0 || p50 > p99 {
		t.Errorf("time to queryable p50 %s, p99 %s: want bounds of the histogram's buckets %v, 0 < p50 <= p99", h["p50"], h["p99"], bounds)
	}
	if h["note"] != "0" || h["samples"] == "0" {
		t.Errorf("health while capturing: the not-capturing note shown (%s) or no sample (%s)", h["note"], h["samples"])
	}
	for _, e := range bl.take() {
		t.Errorf("browser: %s", e)
	}
}
