package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

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
}
