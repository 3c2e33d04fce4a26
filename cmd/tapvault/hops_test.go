package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"tapvault/clocklog"
	"tapvault/internal/testframe"
	"tapvault/pcap"
)

// writeHopPoint writes what one capture point saw of n HTTP connections:
// client and server as given (a NAT between the points rewrites them),
// each packet at its time at this point.
func writeHopPoint(t *testing.T, path string, client, server netip.Addr, sport func(i int) uint16, dport uint16, seqBase uint32, at func(i, k int, fromClient bool) int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcap.NewWriter(f, pcap.LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	req, resp := "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	for i := range 20 {
		cs, ss := seqBase+uint32(1000*i+1), seqBase+uint32(900000+1000*i)
		segs := []struct {
			fromClient bool
			seq, ack   uint32
			flags      testframe.TCPFlags
			payload    string
		}{
			{true, cs - 1, 0, testframe.SYN, ""},
			{false, ss - 1, cs, testframe.SYN | testframe.ACK, ""},
			{true, cs, ss, testframe.ACK, ""},
			{true, cs, ss, testframe.PSH | testframe.ACK, req},
			{false, ss, cs + uint32(len(req)), testframe.PSH | testframe.ACK, resp},
			{true, cs + uint32(len(req)), ss + uint32(len(resp)), testframe.ACK, ""},
		}
		for k, g := range segs {
			src, dst, sp, dp := client, server, sport(i), dport
			if !g.fromClient {
				src, dst, sp, dp = dst, src, dp, sp
			}
			fr := testframe.Frame{
				IPv4:    &testframe.IPv4{Src: src, Dst: dst, ID: uint16(100*i + k)},
				TCP:     &testframe.TCP{SrcPort: sp, DstPort: dp, Seq: g.seq, Ack: g.ack, Flags: g.flags, Window: 512},
				Payload: []byte(g.payload),
			}
			b := fr.Bytes()
			if err := w.WritePacket(at(i, k, g.fromClient), uint32(len(b)), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHops: two points' captures of the same 20 HTTP connections, 3 ms
// apart towards the server and 4 ms towards the client, with a NAT between
// them; tapvault hops finds the delays and each exchange's split.
func TestHops(t *testing.T) {
	dir := t.TempDir()
	const (
		base     = int64(1_750_000_000) * 1e9
		toServer = int64(3e6)
		toClient = int64(4e6)
	)
	// Times at A; B is toServer later for the client's packets and
	// toClient earlier for the server's.
	atA := func(i, k int, _ bool) int64 { return base + int64(i)*1e9 + int64(k)*20e6 }
	atB := func(i, k int, fromClient bool) int64 {
		if fromClient {
			return atA(i, k, true) + toServer
		}
		return atA(i, k, false) - toClient
	}
	pa, pb := filepath.Join(dir, "a.pcap"), filepath.Join(dir, "b.pcap")
	writeHopPoint(t, pa, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), func(i int) uint16 { return uint16(40000 + i) }, 8008, 0, atA)
	writeHopPoint(t, pb, netip.MustParseAddr("192.168.7.1"), netip.MustParseAddr("192.168.7.2"), func(i int) uint16 { return uint16(61000 + i) }, 8080, 0, atB)
	sa, sb := filepath.Join(dir, "sa"), filepath.Join(dir, "sb")
	tv(t, false, "import", "--data", sa, pa)
	tv(t, false, "import", "--data", sb, pb)

	out, _ := tv(t, false, "hops", "--json", "--a", sa, "--b", sb, "tcp", "port", "8008")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var sum struct {
		Matched  int   `json:"matched"`
		MedianAB int64 `json:"median_ab_ns"`
		MedianBA int64 `json:"median_ba_ns"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Matched != 120 || sum.MedianAB != toServer || sum.MedianBA != toClient {
		t.Fatalf("summary %+v, want 120 matched, %d and %d:\n%s", sum, toServer, toClient, out)
	}
	if len(lines) != 41 { // a line per flow direction, and the summary
		t.Fatalf("%d lines, want 41:\n%s", len(lines), out)
	}

	out, _ = tv(t, false, "hops", "--exchanges", "--json", "--a", sa, "--b", sb)
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var x struct {
			ID  string `json:"id"`
			IDB string `json:"id_b"`
			AB  int64  `json:"a_b_ns"`
		}
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatalf("%v in %q", err, l)
		}
		if x.AB != toServer+toClient || x.IDB == fmt.Sprintf("%016x", 0) {
			t.Errorf("exchange %+v: want A<>B %d and B's record", x, toServer+toClient)
		}
		n++
	}
	if n != 20 {
		t.Fatalf("%d exchanges, want 20:\n%s", n, out)
	}

	// The API's exchange across the points: A's first exchange, found in
	// B's store through the NAT, with every packet timed at both.
	first, _ := tv(t, false, "messages", "--data", sa, "--json", "proto http")
	var rec struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(first, "\n", 2)[0]), &rec); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t, "127.0.0.1")
	stop := startServe(t, sa, addr, "--peer", "far="+sb, "--name", "near")
	defer stop()
	resp, err := http.Get("http://" + addr + "/api/v1/messages/" + rec.ID + "/across")
	if err != nil {
		t.Fatal(err)
	}
	var across struct {
		A, B     string
		RecordA  struct{ ID string }     `json:"record_a"`
		RecordB  struct{ Client string } `json:"record_b"`
		AB       int64                   `json:"a_b_ns"`
		Matched  int
		Reversed bool
		Steps    []struct {
			ToServer bool  `json:"to_server"`
			AtA      int64 `json:"at_a_ns"`
			AtB      int64 `json:"at_b_ns"`
		}
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(body, &across); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v: %s", resp.StatusCode, err, body)
	}
	if across.A != "near" || across.B != "far" || across.RecordA.ID != rec.ID || !strings.HasPrefix(across.RecordB.Client, "192.168.7.1:") ||
		across.AB != toServer+toClient || across.Reversed || across.Matched != 3 || len(across.Steps) != 3 {
		t.Fatalf("across: %s", body)
	}
	for _, st := range across.Steps {
		if d := st.AtB - st.AtA; st.ToServer && d != toServer || !st.ToServer && d != -toClient {
			t.Errorf("step %+v", st)
		}
	}
	resp, err = http.Get("http://" + addr + "/api/v1/messages/" + rec.ID + "/across?peer=nowhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("unknown peer: %d", resp.StatusCode)
	}

	// Stores of different traffic (other sequence numbers): nothing
	// matches, and it says so.
	other := filepath.Join(dir, "other.pcap")
	writeHopPoint(t, other, netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2"), func(i int) uint16 { return 1000 }, 80, 1<<30,
		func(i, k int, _ bool) int64 { return base + int64(i)*1e9 + int64(k)*20e6 + 7 })
	so := filepath.Join(dir, "so")
	tv(t, false, "import", "--data", so, other)
	_, stderr := tv(t, true, "hops", "--a", sa, "--b", so)
	if !strings.Contains(stderr, "no packet was seen at both points") {
		t.Errorf("stderr %q", stderr)
	}
	_, stderr = tv(t, true, "hops", "--a", sa)
	if !strings.Contains(stderr, "--b DIR are required") {
		t.Errorf("stderr %q", stderr)
	}
}

// TestUIBrowserAcross: the exchange view of a server with a peer store
// shows the exchange across both capture points: the hop figures as the
// API has them, and a ladder with four lanes whose packets cross both
// point lanes.
func TestUIBrowserAcross(t *testing.T) {
	exe := findChromium(t)
	dir := t.TempDir()
	const base = int64(1_750_000_000) * 1e9
	atA := func(i, k int, _ bool) int64 { return base + int64(i)*1e9 + int64(k)*20e6 }
	atB := func(i, k int, fromClient bool) int64 {
		if fromClient {
			return atA(i, k, true) + 3e6
		}
		return atA(i, k, false) - 4e6
	}
	pa, pb := filepath.Join(dir, "a.pcap"), filepath.Join(dir, "b.pcap")
	writeHopPoint(t, pa, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), func(i int) uint16 { return uint16(40000 + i) }, 8008, 0, atA)
	writeHopPoint(t, pb, netip.MustParseAddr("192.168.7.1"), netip.MustParseAddr("192.168.7.2"), func(i int) uint16 { return uint16(61000 + i) }, 8080, 0, atB)
	sa, sb := filepath.Join(dir, "sa"), filepath.Join(dir, "sb")
	tv(t, false, "import", "--data", sa, pa)
	tv(t, false, "import", "--data", sb, pb)
	recs := jsonLines(t, mustTV(t, "messages", "--data", sa, "--json", "--limit", "1", "proto http"))
	if len(recs) != 1 {
		t.Fatal("no http exchange")
	}
	id := recs[0]["id"].(string)

	addr := freeAddr(t, "127.0.0.1")
	defer startServe(t, sa, addr, "--peer", "<b>far</b>="+sb, "--name", "near")()
	ctx, _, done := newBrowser(t, exe)
	defer done()
	run(t, ctx, "exchange across", chromedp.Navigate("http://"+addr+"/#/exchange?id="+id), waitView("exchange"), waitFor(".across-ladder"))
	hopsShown := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('.across tr[data-hop]')].map(tr => [tr.dataset.hop, tr.querySelector('td').textContent]))`)
	// The peer's name is shown as text: a name with markup stays text.
	if got := hopsShown["near ↔ <b>far</b>"]; got != "7.000000 ms" {
		t.Errorf("hops shown %v, want near ↔ <b>far</b> 7 ms (3 ms + 4 ms)", hopsShown)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('.across-ladder .lane').length`); n != 4 {
		t.Errorf("%d lanes, want 4", n)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('.across-ladder polyline.pkt:not(.one-point)').length`); n != 3 {
		t.Errorf("%d packets across both points, want 3", n)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('.across b').length`); n != 0 {
		t.Errorf("the peer's name became markup")
	}

	// Three points (threePoints): one ladder with a lane per point, in
	// order from the client's side (labels cut at 20 characters), and each hop's figure with its clocks'
	// uncertainty, the one within it refused.
	edge, mid, far := threePoints(t, t.TempDir())
	recs = jsonLines(t, mustTV(t, "messages", "--data", mid, "--json", "--limit", "1", "proto http"))
	if len(recs) != 1 {
		t.Fatal("no http exchange at mid")
	}
	addr3 := freeAddr(t, "127.0.0.1")
	defer startServe(t, mid, addr3, "--peer", "<b>far</b>="+far, "--peer", "edge="+edge, "--name", "mid")()
	run(t, ctx, "exchange across three points", chromedp.Navigate("http://"+addr3+"/#/exchange?id="+recs[0]["id"].(string)), waitView("exchange"), waitFor("#across-points .across-ladder"))
	screenshot(t, ctx, "across-points")
	if n := eval[int](t, ctx, `document.querySelectorAll('.across-ladder').length`); n != 1 {
		t.Errorf("%d ladders across the points, want 1", n)
	}
	lanes := eval[[]string](t, ctx, `[...document.querySelectorAll('.across-ladder .lane-label')].map(e => e.textContent)`)
	if want := []string{"client 10.0.0.1:400…", "edge", "mid", "<b>far</b>", "server 192.168.7.2:…"}; !slices.Equal(lanes, want) {
		t.Errorf("lanes %q, want %q", lanes, want)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('.across-ladder .lane').length`); n != 5 {
		t.Errorf("%d lanes, want 5", n)
	}
	hopsShown = eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#across-points tr[data-hop]')].map(tr => [tr.dataset.hop, [...tr.querySelectorAll('td')].map(td => td.textContent).join(' | ')]))`)
	for hop, want := range map[string]string{
		"edge ↔ mid":       "3.000000 ms | uncertainty 200.000 µs",
		"mid ↔ <b>far</b>": "below the clocks\u2019 uncertainty | uncertainty 8.000000 ms",
	} {
		if hopsShown[hop] != want {
			t.Errorf("hop %s shown %q, want %q (all: %q)", hop, hopsShown[hop], want, hopsShown)
		}
	}
	if len(hopsShown) != 4 {
		t.Errorf("%d hop rows, want 4 (client, two between the points, server): %q", len(hopsShown), hopsShown)
	}
	labels := eval[[]string](t, ctx, `[...document.querySelectorAll('.across-ladder [data-hop-label]')].map(e => e.textContent)`)
	if len(labels) != 2 || !strings.HasPrefix(labels[0], "edge ↔ mid: 3.000000 ms") || !strings.HasPrefix(labels[1], "mid ↔ <b>far</b>: below") {
		t.Errorf("hop labels on the ladder %q", labels)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('.across-ladder polyline.pkt[data-points="3"]').length`); n != 3 {
		t.Errorf("%d packets across all three points, want 3", n)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('.across b, .across i').length`); n != 0 {
		t.Errorf("a name became markup")
	}
}

// Three capture points of the same 20 HTTP connections (threePoints): mid,
// whose store the server serves; edge on the client's side of it, which
// sees a packet towards the server 2 ms before mid and one towards the
// client 1 ms after; far behind a NAT, 3 ms after mid towards the server
// and 4 ms before it towards the client. The clock logs make edge and mid
// two clocks 0.2 ms apart at most, mid and far two 8 ms apart (far's clock
// unsynchronised, its host name markup): the 3 ms hop is a figure, the 7
// ms one is within the uncertainty and refused.
const (
	edgeToMid, midToEdge = int64(2e6), int64(1e6)
	midToFar, farToMid   = int64(3e6), int64(4e6)
)

func threePoints(t *testing.T, dir string) (edge, mid, far string) {
	t.Helper()
	const base = int64(1_750_000_000) * 1e9
	atMid := func(i, k int, _ bool) int64 { return base + int64(i)*1e9 + int64(k)*20e6 }
	shift := func(toServer, toClient int64) func(i, k int, fromClient bool) int64 {
		return func(i, k int, fromClient bool) int64 {
			if fromClient {
				return atMid(i, k, true) + toServer
			}
			return atMid(i, k, false) + toClient
		}
	}
	client, server := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	sport := func(i int) uint16 { return uint16(40000 + i) }
	pe, pm, pf := filepath.Join(dir, "edge.pcap"), filepath.Join(dir, "mid.pcap"), filepath.Join(dir, "far.pcap")
	writeHopPoint(t, pe, client, server, sport, 8008, 0, shift(-edgeToMid, midToEdge))
	writeHopPoint(t, pm, client, server, sport, 8008, 0, atMid)
	writeHopPoint(t, pf, netip.MustParseAddr("192.168.7.1"), netip.MustParseAddr("192.168.7.2"), func(i int) uint16 { return uint16(61000 + i) }, 8080, 0, shift(midToFar, -farToMid))
	edge, mid, far = filepath.Join(dir, "s-edge"), filepath.Join(dir, "s-mid"), filepath.Join(dir, "s-far")
	for _, s := range [][2]string{{edge, pe}, {mid, pm}, {far, pf}} {
		tv(t, false, "import", "--data", s[0], s[1])
	}
	for _, c := range []struct {
		dir string
		e   clocklog.Entry
	}{
		{edge, clocklog.Entry{Host: "edge-host", BootID: "b1", Source: "ptp", Synced: true, ErrorNs: 100_000}},
		{mid, clocklog.Entry{Host: "mid-host", BootID: "b2", Source: "ptp", Synced: true, ErrorNs: 100_000}},
		{far, clocklog.Entry{Host: "<i>far-host</i>", BootID: "b3", Source: "unsynchronised", MaxErrorNs: 7_900_000}},
	} {
		c.e.TS = base
		if err := clocklog.Append(c.dir, c.e); err != nil {
			t.Fatal(err)
		}
	}
	return edge, mid, far
}

// acrossLadderJSON is the across answer's ladder.
type acrossLadderJSON struct {
	Points []struct {
		Name   string
		Record struct {
			ID        string `json:"id"`
			ClientNet int64  `json:"client_net_ns"`
			Network   int64  `json:"network_ns"`
		}
	}
	ClientNs int64 `json:"client_ns"`
	ServerNs int64 `json:"server_ns"`
	Hops     []struct {
		From, To         string
		RTT              int64 `json:"rtt_ns"`
		ClockKnown       bool  `json:"clock_known"`
		Uncertainty      int64 `json:"uncertainty_ns"`
		Uncertain        bool
		BelowUncertainty bool `json:"below_uncertainty"`
	}
	Steps []struct {
		ToServer bool    `json:"to_server"`
		At       []int64 `json:"at_ns"`
	}
	NotFound []string `json:"not_found"`
	Missing  []string
}

// TestAcrossLadder: tapvault serve with two peers that saw the same
// exchange (and one that did not) answers, asked for either peer, the
// pair as before and one ladder of the three points ordered from the
// client's side (edge, mid, far, whatever the peers' names), every
// packet's time at each, the hops with their clocks' uncertainty (the one
// within it refused) and the outer legs from the end points' records.
func TestAcrossLadder(t *testing.T) {
	dir := t.TempDir()
	edge, mid, far := threePoints(t, dir)
	other := filepath.Join(dir, "other.pcap")
	writeHopPoint(t, other, netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2"), func(i int) uint16 { return 1000 }, 80, 1<<30,
		func(i, k int, _ bool) int64 { return int64(1_750_000_000)*1e9 + int64(i)*1e9 + int64(k)*20e6 + 7 })
	so := filepath.Join(dir, "so")
	tv(t, false, "import", "--data", so, other)
	recs := jsonLines(t, mustTV(t, "messages", "--data", mid, "--json", "--limit", "1", "proto http"))
	if len(recs) != 1 {
		t.Fatal("no http exchange")
	}
	id := recs[0]["id"].(string)

	addr := freeAddr(t, "127.0.0.1")
	// The peers' names sort far before edge: the order is the packets'.
	defer startServe(t, mid, addr, "--peer", "a-far="+far, "--peer", "z-edge="+edge, "--peer", "other="+so, "--name", "mid")()
	for _, peer := range []string{"a-far", "z-edge"} {
		resp, err := http.Get("http://" + addr + "/api/v1/messages/" + id + "/across?peer=" + peer)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var x struct {
			A, B    string
			Matched int
			Steps   []json.RawMessage
			Ladder  acrossLadderJSON
		}
		if err := json.Unmarshal(body, &x); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v: %s", peer, resp.StatusCode, err, body)
		}
		if x.A != "mid" || x.B != peer || x.Matched != 3 || len(x.Steps) != 3 {
			t.Errorf("%s: the pair's fields: %s", peer, body)
		}
		l := x.Ladder
		var names []string
		for _, p := range l.Points {
			names = append(names, p.Name)
		}
		if strings.Join(names, ",") != "z-edge,mid,a-far" || l.Points[1].Record.ID != id {
			t.Fatalf("%s: points %v, want z-edge, mid, a-far: %s", peer, names, body)
		}
		if l.ClientNs != l.Points[0].Record.ClientNet || l.ServerNs != l.Points[2].Record.Network || l.ClientNs <= 0 || l.ServerNs <= 0 {
			t.Errorf("%s: outer legs %d, %d; want edge's client leg and far's server leg: %s", peer, l.ClientNs, l.ServerNs, body)
		}
		if len(l.Hops) != 2 {
			t.Fatalf("%s: %d hops, want 2: %s", peer, len(l.Hops), body)
		}
		if h := l.Hops[0]; h.From != "z-edge" || h.To != "mid" || h.RTT != edgeToMid+midToEdge || !h.ClockKnown || h.Uncertainty != 200_000 || h.Uncertain || h.BelowUncertainty {
			t.Errorf("%s: edge-mid hop %+v, want 3 ms with a 0.2 ms uncertainty", peer, h)
		}
		if h := l.Hops[1]; h.From != "mid" || h.To != "a-far" || h.RTT != -1 || !h.BelowUncertainty || h.Uncertainty != 8_000_000 || !h.Uncertain {
			t.Errorf("%s: mid-far hop %+v, want 7 ms refused within 8 ms", peer, h)
		}
		if len(l.Steps) != 3 {
			t.Fatalf("%s: %d steps, want 3", peer, len(l.Steps))
		}
		for _, st := range l.Steps {
			e, m, f := st.At[0], st.At[1], st.At[2]
			if st.ToServer && (m-e != edgeToMid || f-m != midToFar) || !st.ToServer && (e-m != midToEdge || m-f != farToMid) {
				t.Errorf("%s: step %+v: want edge, mid, far %d/%d ms apart towards the server, %d/%d towards the client", peer, st, edgeToMid/1e6, midToFar/1e6, farToMid/1e6, midToEdge/1e6)
			}
		}
		if !slices.Equal(l.NotFound, []string{"other"}) || len(l.Missing) != 0 {
			t.Errorf("%s: not found %v, missing %v; want other, none", peer, l.NotFound, l.Missing)
		}
	}
}
