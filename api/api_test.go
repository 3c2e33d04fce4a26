package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"tapvault/block"
	"tapvault/packet"
	"tapvault/query"
	"tapvault/writer"
)

// The API test store: apiEthPackets Ethernet packets, 1 ms apart from
// apiBaseTS, in blocks of apiPerBlock, then apiRawPackets LINKTYPE_RAW
// packets in one last block. Packet i is from 10.0.0.(1+i%4) port
// 40000+i%4 to 10.0.1.1, UDP port 53 when i%3 == 0, else TCP port 443; every
// 7th is cut to 96 bytes (wire length kept).
const (
	apiBaseTS     = int64(1_700_000_000_000_000_000)
	apiEthPackets = 3000
	apiPerBlock   = 500
	apiRawPackets = 10
	linkEthernet  = 1
	linkRaw       = 101
)

type apiPkt struct {
	ts   int64
	data []byte
	wire uint32
	lt   uint16
}

func apiTS(i int) int64 { return apiBaseTS + int64(i)*1_000_000 }

// apiPacket is packet i; raw ones are LINKTYPE_RAW.
func apiPacket(i int, raw bool) apiPkt {
	udp := i%3 == 0
	payload := 60 + (i*37)%1100
	var l4 []byte
	if udp {
		l4 = binary.BigEndian.AppendUint16(l4, uint16(40000+i%4))
		l4 = binary.BigEndian.AppendUint16(l4, 53)
		l4 = binary.BigEndian.AppendUint16(l4, uint16(8+payload))
		l4 = append(l4, 0, 0)
	} else {
		l4 = binary.BigEndian.AppendUint16(l4, uint16(40000+i%4))
		l4 = binary.BigEndian.AppendUint16(l4, 443)
		l4 = binary.BigEndian.AppendUint32(l4, uint32(i)*1000)
		l4 = binary.BigEndian.AppendUint32(l4, 0)
		l4 = append(l4, 5<<4, 0x18, 0xff, 0xff, 0, 0, 0, 0)
	}
	for j := 0; j < payload; j++ {
		l4 = append(l4, byte('a'+(i*7+j*13)%26))
	}
	proto := byte(6)
	if udp {
		proto = 17
	}
	ip := []byte{0x45, 0, 0, 0, byte(i >> 8), byte(i), 0x40, 0, 64, proto, 0, 0,
		10, 0, 0, byte(1 + i%4), 10, 0, 1, 1}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	ip = append(ip, l4...)
	p := apiPkt{ts: apiTS(i), lt: linkEthernet}
	if raw {
		p.lt, p.data = linkRaw, ip
	} else {
		p.data = append([]byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00}, ip...)
	}
	p.wire = uint32(len(p.data))
	if i%7 == 0 {
		p.data = p.data[:96]
	}
	return p
}

// apiStore writes the test store with the real writer and returns its
// directory and every packet in time order.
func apiStore(t testing.TB) (string, []apiPkt) {
	t.Helper()
	return apiStoreN(t, apiEthPackets, apiRawPackets)
}

// apiStoreN writes eth Ethernet packets, then raw LINKTYPE_RAW ones.
func apiStoreN(t testing.TB, eth, raw int) (string, []apiPkt) {
	t.Helper()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := writer.Open(writer.Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	pool := block.NewPool(4, 1<<20, 64)
	var (
		all []apiPkt
		dec packet.Decoder
		d   packet.Decoded
	)
	var b *block.Block
	seal := func() {
		if b != nil && b.Count > 0 && !w.SubmitWait(b) {
			t.Fatal("writer refused a block")
		}
		b = nil
	}
	for i := 0; i < eth+raw; i++ {
		if i%apiPerBlock == 0 || i == eth {
			seal()
		}
		if b == nil {
			b = pool.GetWait()
		}
		p := apiPacket(i, i >= eth)
		all = append(all, p)
		b.Data = binary.LittleEndian.AppendUint64(b.Data, uint64(p.ts))
		b.Data = binary.LittleEndian.AppendUint32(b.Data, uint32(len(p.data)))
		b.Data = binary.LittleEndian.AppendUint32(b.Data, p.wire)
		b.Data = binary.LittleEndian.AppendUint16(b.Data, p.lt)
		b.Data = binary.LittleEndian.AppendUint16(b.Data, 0)
		b.Data = append(b.Data, p.data...)
		if b.Count == 0 {
			b.MinTS = p.ts
		}
		b.MaxTS = p.ts
		b.Count++
		b.Bytes += uint64(p.wire)
		dec.Decode(p.data, p.lt, &d)
		k, dir, ok := packet.FlowKeyOf(&d)
		if !ok {
			b.Summary.NonFlow++
			continue
		}
		found := false
		for j := range b.Summary.Flows {
			f := &b.Summary.Flows[j]
			if f.Key == k {
				f.Pkts[dir]++
				f.Bytes[dir] += uint64(p.wire)
				f.LastTS = p.ts
				found = true
				break
			}
		}
		if !found {
			fs := block.FlowStat{Key: k, FirstTS: p.ts, LastTS: p.ts, FirstDir: dir}
			fs.Pkts[dir], fs.Bytes[dir] = 1, uint64(p.wire)
			b.Summary.Flows = append(b.Summary.Flows, fs)
		}
	}
	seal()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, all
}

// syncBuf is a log destination safe for the server's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type apiEnv struct {
	srv  *Server
	hs   *httptest.Server
	log  *syncBuf
	pkts []apiPkt
}

// newAPIEnv serves the test store with opts (Addr and Logger are set here).
// smallBuffers shrinks the server's socket send buffers so a client that
// does not read blocks the stream after a few KiB.
func newAPIEnv(t *testing.T, opts ServerOptions, smallBuffers bool) *apiEnv {
	t.Helper()
	dir, pkts := apiStore(t)
	logBuf := &syncBuf{}
	log := slog.New(slog.NewTextHandler(logBuf, nil))
	st, err := query.OpenStore(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opts.Logger = log
	srv, err := NewServer(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	if smallBuffers {
		hs.Listener = smallBufListener{hs.Listener}
	}
	hs.Start()
	t.Cleanup(hs.Close)
	return &apiEnv{srv: srv, hs: hs, log: logBuf, pkts: pkts}
}

type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

func (e *apiEnv) get(t *testing.T, path string, q url.Values) (*http.Response, []byte) {
	t.Helper()
	u := e.hs.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp, body
}

type gotPkt struct {
	ts   int64
	data []byte
	wire uint32
	lt   uint16
}

func readCapture(t *testing.T, body []byte, ng bool) []gotPkt {
	t.Helper()
	var out []gotPkt
	if ng {
		r, err := pcapgo.NewNgReader(bytes.NewReader(body), pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			t.Fatalf("pcapng reader: %v", err)
		}
		for {
			data, ci, err := r.ReadPacketData()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatalf("read pcapng packet %d: %v", len(out), err)
			}
			ifc, err := r.Interface(ci.InterfaceIndex)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, gotPkt{ts: ci.Timestamp.UnixNano(), data: data, wire: uint32(ci.Length), lt: uint16(ifc.LinkType)})
		}
	}
	r, err := pcapgo.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("pcap reader: %v", err)
	}
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read pcap packet %d: %v", len(out), err)
		}
		out = append(out, gotPkt{ts: ci.Timestamp.UnixNano(), data: data, wire: uint32(ci.Length), lt: uint16(r.LinkType())})
	}
}

func checkPackets(t *testing.T, got []gotPkt, want []apiPkt) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ts != w.ts || g.wire != w.wire || g.lt != w.lt || !bytes.Equal(g.data, w.data) {
			t.Fatalf("packet %d: got ts %d wire %d lt %d len %d, want ts %d wire %d lt %d len %d (or bytes differ)",
				i, g.ts, g.wire, g.lt, len(g.data), w.ts, w.wire, w.lt, len(w.data))
		}
	}
}

func selectPkts(all []apiPkt, keep func(i int) bool, limit int) []apiPkt {
	var out []apiPkt
	for i, p := range all {
		if keep(i) {
			out = append(out, p)
			if limit > 0 && len(out) == limit {
				break
			}
		}
	}
	return out
}

func ns(v int64) string { return strconv.FormatInt(v, 10) }

func TestAPIPackets(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{}, false)
	lastEth := ns(apiTS(apiEthPackets - 1))
	cases := []struct {
		name  string
		q     url.Values
		keep  func(i int) bool
		limit int
	}{
		{"all ethernet", url.Values{"to": {lastEth}},
			func(i int) bool { return i < apiEthPackets }, 0},
		{"filter", url.Values{"filter": {"udp and src host 10.0.0.2"}, "to": {lastEth}},
			func(i int) bool { return i < apiEthPackets && i%3 == 0 && i%4 == 1 }, 0},
		{"time range", url.Values{"from": {ns(apiTS(490))}, "to": {ns(apiTS(1510))}},
			func(i int) bool { return i >= 490 && i <= 1510 }, 0},
		{"rfc3339 and filter", url.Values{"from": {time.Unix(0, apiTS(1000)).UTC().Format(time.RFC3339Nano)},
			"to": {lastEth}, "filter": {"tcp port 443 and host 10.0.0.4"}},
			func(i int) bool { return i >= 1000 && i < apiEthPackets && i%3 != 0 && i%4 == 3 }, 0},
		{"limit", url.Values{"filter": {"tcp"}, "limit": {"7"}},
			func(i int) bool { return i%3 != 0 }, 7},
		{"nothing", url.Values{"filter": {"host 192.0.2.1"}},
			func(i int) bool { return false }, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.get(t, "/api/v1/packets", c.q)
			if resp.StatusCode != 200 {
				t.Fatalf("got status %d (%s), want 200", resp.StatusCode, body)
			}
			if got, want := resp.Header.Get("Content-Type"), "application/vnd.tcpdump.pcap"; got != want {
				t.Errorf("got Content-Type %q, want %q", got, want)
			}
			if got := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(got, "attachment; filename=\"tapvault-") || !strings.HasSuffix(got, ".pcap\"") {
				t.Errorf("got Content-Disposition %q, want an attachment named tapvault-*.pcap", got)
			}
			got := readCapture(t, body, false)
			checkPackets(t, got, selectPkts(e.pkts, c.keep, c.limit))
		})
	}
	// Empty answers are still a pcap file, of Ethernet.
	_, body := e.get(t, "/api/v1/packets", url.Values{"filter": {"host 192.0.2.1"}})
	r, err := pcapgo.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.LinkType(); got != linkEthernet {
		t.Errorf("empty pcap: got link type %d, want %d", got, linkEthernet)
	}
	if !strings.Contains(e.log.String(), `msg="api request" method=GET path=/api/v1/packets`) ||
		!strings.Contains(e.log.String(), `filter="udp and src host 10.0.0.2"`) ||
		!strings.Contains(e.log.String(), "packets=7 ") {
		t.Errorf("request log lacks the expected lines:\n%s", e.log.String())
	}
}

func TestAPIPacketsPcapng(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{}, false)
	resp, body := e.get(t, "/api/v1/packets", url.Values{"format": {"pcapng"}, "from": {ns(apiTS(2990))}})
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d (%s), want 200", resp.StatusCode, body)
	}
	if got, want := resp.Header.Get("Content-Type"), "application/x-pcapng"; got != want {
		t.Errorf("got Content-Type %q, want %q", got, want)
	}
	if got := resp.Header.Get("Content-Disposition"); !strings.HasSuffix(got, ".pcapng\"") {
		t.Errorf("got Content-Disposition %q, want a .pcapng file", got)
	}
	// Both link types in one file.
	checkPackets(t, readCapture(t, body, true), selectPkts(e.pkts, func(i int) bool { return i >= 2990 }, 0))
}

// A pcap holds one link type. A second one met before anything was sent is
// a 422 with a JSON message; met after the stream started, it cuts the
// stream short: never a file that merely looks complete.
func TestAPIPacketsMixedLinkTypesPcap(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{}, false)
	resp, body := e.get(t, "/api/v1/packets", url.Values{"from": {ns(apiTS(2990))}})
	if resp.StatusCode != 422 || !strings.Contains(string(body), "use format=pcapng") {
		t.Fatalf("got status %d (%s), want 422 saying to use pcapng", resp.StatusCode, body)
	}

	resp2, err := http.Get(e.hs.URL + "/api/v1/packets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if resp2.StatusCode != 200 {
		t.Fatalf("got status %d, want 200 (over 1 MiB is sent before the second link type)", resp2.StatusCode)
	}
	if _, err := io.ReadAll(resp2.Body); err == nil {
		t.Fatal("got a complete body, want a cut-short transfer")
	}
	if !strings.Contains(e.log.String(), "packet stream failed after it started") {
		t.Errorf("log does not say why the stream ended:\n%s", e.log.String())
	}
}

func TestAPIFlows(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{}, false)
	get := func(q url.Values) FlowsAnswer {
		t.Helper()
		resp, body := e.get(t, "/api/v1/flows", q)
		if resp.StatusCode != 200 {
			t.Fatalf("got status %d (%s), want 200", resp.StatusCode, body)
		}
		if got, want := resp.Header.Get("Content-Type"), "application/json; charset=utf-8"; got != want {
			t.Errorf("got Content-Type %q, want %q", got, want)
		}
		var a FlowsAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if a.Count != len(a.Flows) {
			t.Errorf("got count %d for %d flows", a.Count, len(a.Flows))
		}
		return a
	}
	// 4 sources x {tcp, udp} over Ethernet and raw IP alike.
	a := get(nil)
	if a.Count != 8 || a.Truncated {
		t.Fatalf("got %d flows (truncated %v), want 8 (false)", a.Count, a.Truncated)
	}
	total := uint64(apiEthPackets + apiRawPackets)
	if a.Packets != total {
		t.Errorf("got %d packets over all flows, want %d", a.Packets, total)
	}
	for _, f := range a.Flows {
		if !strings.HasPrefix(f.A, "10.0.0.") || f.PktsBA != 0 || f.CommunityID == "" {
			t.Errorf("got flow %+v, want initiator 10.0.0.x, no reverse packets, a Community-ID", f)
		}
	}
	if a := get(url.Values{"filter": {"udp"}}); a.Count != 4 || a.Packets != uint64((apiEthPackets+apiRawPackets+2)/3) {
		t.Errorf("udp: got %d flows, %d packets, want 4, %d", a.Count, a.Packets, (apiEthPackets+apiRawPackets+2)/3)
	}
	if a := get(url.Values{"limit": {"3"}}); a.Count != 3 || !a.Truncated {
		t.Errorf("limit 3: got %d flows, truncated %v, want 3, true", a.Count, a.Truncated)
	}
	if a := get(url.Values{"limit": {"8"}}); a.Count != 8 || a.Truncated {
		t.Errorf("limit 8: got %d flows, truncated %v, want 8, false", a.Count, a.Truncated)
	}
	if a := get(url.Values{"filter": {"host 192.0.2.1"}}); a.Count != 0 || a.Flows == nil {
		t.Errorf("no match: got %d flows (nil %v), want an empty array", a.Count, a.Flows == nil)
	}
}

func TestAPIStats(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{}, false)
	resp, body := e.get(t, "/api/v1/stats", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d (%s), want 200", resp.StatusCode, body)
	}
	var st query.StoreStats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	wantBlocks := (apiEthPackets+apiPerBlock-1)/apiPerBlock + 1
	if st.Packets != apiEthPackets+apiRawPackets || st.Blocks != wantBlocks ||
		st.FirstNS != apiTS(0) || st.LastNS != apiTS(apiEthPackets+apiRawPackets-1) {
		t.Errorf("got packets %d blocks %d first %d last %d, want %d %d %d %d", st.Packets, st.Blocks, st.FirstNS, st.LastNS,
			apiEthPackets+apiRawPackets, wantBlocks, apiTS(0), apiTS(apiEthPackets+apiRawPackets-1))
	}
}

func TestAPIBadRequests(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{}, false)
	cases := []struct {
		method, target string
		status         int
		msg            string
	}{
		{"GET", "/api/v1/packets?filter=" + url.QueryEscape("tcp port"), 400, "^"},
		{"GET", "/api/v1/packets?filter=" + url.QueryEscape("host 10.0.0.300"), 400, "filter:"},
		{"GET", "/api/v1/flows?filter=" + url.QueryEscape("(udp"), 400, "^"},
		{"GET", "/api/v1/packets?from=yesterday", 400, "from: parse time"},
		{"GET", "/api/v1/packets?to=12:00", 400, "to: parse time"},
		{"GET", "/api/v1/packets?from=2024-01-02&to=2024-01-01", 400, "after to"},
		{"GET", "/api/v1/packets?format=json", 400, "want pcap or pcapng"},
		{"GET", "/api/v1/packets?limit=-1", 400, "limit"},
		{"GET", "/api/v1/packets?limit=ten", 400, "limit"},
		{"GET", "/api/v1/flows?format=pcap", 400, `unknown parameter "format"`},
		{"GET", "/api/v1/packets?filtre=udp", 400, `unknown parameter "filtre"`},
		{"GET", "/api/v1/packets?limit=1&limit=2", 400, "2 times"},
		{"GET", "/api/v1/packets?filter=%zz", 400, "malformed query"},
		{"GET", "/api/v1/stats?x=1", 400, "unknown parameter"},
		{"GET", "/api/v1/nothing", 404, "no such endpoint"},
		{"GET", "/", 404, "no such endpoint"},
		{"GET", "/api/v1/packets/", 404, "no such endpoint"},
		{"POST", "/api/v1/packets", 405, "use GET"},
		{"DELETE", "/api/v1/stats", 405, "use GET"},
		{"HEAD", "/api/v1/flows", 405, ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			req, err := http.NewRequest(c.method, e.hs.URL+c.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("got status %d (%s), want %d", resp.StatusCode, body, c.status)
			}
			if c.status == 405 && resp.Header.Get("Allow") != "GET" {
				t.Errorf("got Allow %q, want GET", resp.Header.Get("Allow"))
			}
			if got, want := resp.Header.Get("Content-Type"), "application/json; charset=utf-8"; got != want {
				t.Errorf("got Content-Type %q, want %q", got, want)
			}
			if c.method == "HEAD" {
				return
			}
			var m map[string]string
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("body %q is not JSON: %v", body, err)
			}
			if !strings.Contains(m["error"], c.msg) || m["error"] == "" {
				t.Errorf("got error %q, want it to contain %q", m["error"], c.msg)
			}
		})
	}
}

const testToken = "s3cr3t-t0ken-0123456789"

func TestAPITokenRequiredOffLoopback(t *testing.T) {
	dir, _ := apiStore(t)
	st, err := query.OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cases := []struct {
		addr, token string
		ok          bool
	}{
		{"", "", true}, // 127.0.0.1:8080
		{"127.0.0.1:0", "", true},
		{"127.0.0.5:0", "", true},
		{"[::1]:0", "", true},
		{"localhost:0", "", true},
		{"0.0.0.0:8080", "", false},
		{":8080", "", false},
		{"[::]:8080", "", false},
		{"192.0.2.1:8080", "", false},
		{"example.com:8080", "", false},
		{"0.0.0.0:8080", testToken, true},
		{"127.0.0.1:0", "short", false},
		{"127.0.0.1:0", "has space in the token", false},
		{"127.0.0.1", "", false}, // no port
	}
	for _, c := range cases {
		_, err := NewServer(st, ServerOptions{Addr: c.addr, Token: c.token})
		if (err == nil) != c.ok {
			t.Errorf("NewServer(Addr %q, token %q): got err %v, want ok %v", c.addr, c.token, err, c.ok)
		}
	}
}

func TestAPITokenEnforced(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{Token: testToken}, false)
	cases := []struct {
		auth   string
		path   string
		status int
	}{
		{"", "/api/v1/stats", 401},
		{"Bearer wrong-token-0123456789", "/api/v1/stats", 401},
		{"Bearer " + testToken + "x", "/api/v1/stats", 401},
		{"Basic " + testToken, "/api/v1/stats", 401},
		{testToken, "/api/v1/stats", 401},
		{"", "/api/v1/nothing", 401}, // no path probing without a token
		{"Bearer " + testToken, "/api/v1/stats", 200},
		{"bearer " + testToken, "/api/v1/flows", 200},
		{"Bearer " + testToken, "/api/v1/nothing", 404},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("GET", e.hs.URL+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%q %s: got status %d (%s), want %d", c.auth, c.path, resp.StatusCode, body, c.status)
			continue
		}
		if c.status == 401 {
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("%q: got WWW-Authenticate %q, want Bearer ...", c.auth, got)
			}
			if !strings.Contains(string(body), `"error"`) {
				t.Errorf("%q: got body %q, want a JSON error", c.auth, body)
			}
		}
	}
	if strings.Contains(e.log.String(), testToken) {
		t.Error("the token appears in the log")
	}
}

// stalledClient asks for every packet and never reads the answer, so the
// server's stream blocks once the socket buffers are full.
func stalledClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := fmt.Fprintf(c, "GET /api/v1/packets?format=pcapng HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAPIConcurrencyLimit(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{MaxConcurrent: 2, QueueWait: 100 * time.Millisecond, StreamWriteTimeout: time.Minute}, true)
	addr := e.hs.Listener.Addr().String()
	c1, c2 := stalledClient(t, addr), stalledClient(t, addr)
	defer c1.Close()
	defer c2.Close()
	waitFor(t, "two slots held", 5*time.Second, func() bool { return len(e.srv.sem) == 2 })

	start := time.Now()
	resp, body := e.get(t, "/api/v1/stats", nil)
	if resp.StatusCode != 503 {
		t.Fatalf("got status %d (%s), want 503", resp.StatusCode, body)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("answered 503 after %s, want after the queue wait of 100ms", waited)
	}
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("got Retry-After %q, want 1", got)
	}
	if !strings.Contains(string(body), "busy") {
		t.Errorf("got body %q, want a JSON busy error", body)
	}

	// A client that goes away frees its slot.
	c1.Close()
	waitFor(t, "a slot freed", 5*time.Second, func() bool { return len(e.srv.sem) == 1 })
	if resp, body := e.get(t, "/api/v1/stats", nil); resp.StatusCode != 200 {
		t.Fatalf("got status %d (%s), want 200 once a slot is free", resp.StatusCode, body)
	}
}

// A reader that stops reading loses its slot after StreamWriteTimeout, even
// with its connection still open.
func TestAPIStalledReaderReleasesSlot(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{MaxConcurrent: 1, QueueWait: 10 * time.Millisecond, StreamWriteTimeout: 200 * time.Millisecond}, true)
	c := stalledClient(t, e.hs.Listener.Addr().String())
	defer c.Close()
	waitFor(t, "the slot taken", 5*time.Second, func() bool { return len(e.srv.sem) == 1 })
	start := time.Now()
	waitFor(t, "the slot released", 5*time.Second, func() bool { return len(e.srv.sem) == 0 })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("slot released after %s, want about the 200ms write timeout", d)
	}
	if resp, body := e.get(t, "/api/v1/stats", nil); resp.StatusCode != 200 {
		t.Fatalf("got status %d (%s), want 200", resp.StatusCode, body)
	}
}

func TestAPIClientDisconnect(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{MaxConcurrent: 1}, true)

	// The context is checked on every visited packet, matching or not: a
	// filter that matches nothing still stops at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("GET", "/api/v1/packets?filter=host+192.0.2.1", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	if rec.Body.Len() != 0 {
		t.Errorf("got %d body bytes for a gone client, want 0", rec.Body.Len())
	}
	if !strings.Contains(e.log.String(), `err="context canceled"`) {
		t.Errorf("log does not show the cancelled query:\n%s", e.log.String())
	}

	// Over the network: read the headers and a little, then hang up.
	done := make(chan struct{})
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done) // also when the handler aborts the response
		e.srv.Handler().ServeHTTP(w, r)
	}))
	hs.Listener = smallBufListener{hs.Listener}
	hs.Start()
	defer hs.Close()
	c := stalledClient(t, hs.Listener.Addr().String())
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Fatalf("got status line %q, %v, want 200", line, err)
	}
	c.Close()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("the handler still runs 3s after the client left")
	}
	if n := len(e.srv.sem); n != 0 {
		t.Errorf("got %d slots held after the handler returned, want 0", n)
	}
}

func TestAPIListenAndServe(t *testing.T) {
	dir, _ := apiStore(t)
	st, err := query.OpenStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := NewServer(st, ServerOptions{Addr: "127.0.0.1:0", Token: testToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe(ctx) }()
	select {
	case <-srv.ready:
	case err := <-errc:
		t.Fatal(err)
	}
	addr := srv.Addr()
	if strings.HasSuffix(addr, ":0") || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("got Addr %q, want the bound 127.0.0.1 port", addr)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/stats", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("got %v after shutdown, want nil", err)
		}
	case <-time.After(apiShutdownWait + 2*time.Second):
		t.Fatal("ListenAndServe did not return after its context ended")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still accepting connections after shutdown")
	}
	// A taken port is an error, not a hang.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv2, _ := NewServer(st, ServerOptions{Addr: ln.Addr().String(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv2.ListenAndServe(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("got %v listening on a taken port, want a listen error", err)
	}
}

func TestAPIExtraHandlers(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics here\n") })
	e := newAPIEnv(t, ServerOptions{Token: testToken, Handlers: map[string]http.Handler{"/metrics": metrics}}, false)
	cases := []struct {
		method, auth, path string
		status             int
	}{
		{"GET", "", "/metrics", 401},
		{"GET", "Bearer " + testToken, "/metrics", 200},
		{"POST", "Bearer " + testToken, "/metrics", 405},
		{"GET", "Bearer " + testToken, "/metrics/x", 404},
		{"GET", "Bearer " + testToken, "/api/v1/stats", 200},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, e.hs.URL+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s (auth %v): got status %d (%s), want %d", c.method, c.path, c.auth != "", resp.StatusCode, body, c.status)
		}
		if c.status == 200 && c.path == "/metrics" && string(body) != "metrics here\n" {
			t.Errorf("GET /metrics: got body %q, want the handler's", body)
		}
	}
	if !strings.Contains(e.log.String(), "path=/metrics") {
		t.Error("got no request log line for /metrics, want one")
	}

	dir, _ := apiStore(t)
	st, err := query.OpenStore(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, path := range []string{"metrics", "/api/v1/stats"} {
		if _, err := NewServer(st, ServerOptions{Handlers: map[string]http.Handler{path: metrics}}); err == nil {
			t.Errorf("NewServer with a handler at %q: got no error, want one", path)
		}
	}
}
