package analytics

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// htStep is one step of a scripted connection: data of a side, or a gap
// of n bytes (data nil).
type htStep struct {
	side Side
	data string
	gap  int
}

func htCli(s string) htStep      { return htStep{side: Client, data: s} }
func htSrv(s string) htStep      { return htStep{side: Server, data: s} }
func htGap(s Side, n int) htStep { return htStep{side: s, gap: n} }

// htRun feeds steps to a new parser, each data step cut by cut (nil:
// whole), then closes it.
func htRun(t testing.TB, dec func(*Config) Parser, steps []htStep, cfg func(*Config), cut func(n int) []int) (*testStream, *htAudit) {
	st := newTestStream(t)
	if cfg != nil {
		cfg(&st.cfg)
	}
	a := &htAudit{t: t}
	p := &htAuditParser{p: dec(&st.cfg), a: a}
	for _, s := range steps {
		if s.data == "" {
			if s.gap > 0 {
				st.FeedGap(p, s.side, s.gap)
			}
			continue
		}
		b := []byte(s.data)
		if cut == nil {
			st.Feed(p, s.side, b)
			continue
		}
		for _, n := range cut(len(b)) {
			st.Feed(p, s.side, b[:n])
			b = b[n:]
		}
	}
	p.Close(st)
	a.check()
	if len(st.open[0])+len(st.open[1]) != 0 {
		t.Errorf("messages left open after Close: %d client, %d server", len(st.open[0]), len(st.open[1]))
	}
	return st, a
}

func newHTTP(cfg *Config) Parser { return newHTTPParser(cfg) }

// htSummary renders the exchanges: fields and byte counts.
func htSummary(st *testStream) []string {
	var out []string
	for _, x := range st.Exchanges {
		out = append(out, htMsg(x[0])+" -> "+htMsg(x[1]))
	}
	return out
}

func htMsg(m *Message) string {
	if m == nil {
		return "nil"
	}
	var sb strings.Builder
	sb.WriteString("{")
	for _, f := range m.Fields {
		fmt.Fprintf(&sb, "%s=%s ", f.Key, f.Value())
	}
	fmt.Fprintf(&sb, "bytes=%d", m.Bytes)
	if m.Gap {
		sb.WriteString(" gap")
	}
	sb.WriteString("}")
	return sb.String()
}

// Cutters: how a step of n bytes is cut into chunks.
func htCutEvery(k int) func(int) []int {
	return func(n int) []int {
		var c []int
		for n > 0 {
			c = append(c, min(k, n))
			n -= k
		}
		return c
	}
}

func htCutAt(k int) func(int) []int {
	return func(n int) []int {
		if k <= 0 || k >= n {
			return []int{n}
		}
		return []int{k, n - k}
	}
}

func htCutRandom(seed int64) func(int) []int {
	r := rand.New(rand.NewSource(seed))
	return func(n int) []int {
		var c []int
		for n > 0 {
			k := min(1+r.Intn(40), n)
			c = append(c, k)
			n -= k
		}
		return c
	}
}

// htAudit wraps the test Stream and checks the message lifecycle: every
// message begun is either ended and exchanged once, or discarded once.
type htAudit struct {
	t         testing.TB
	begun     []*Message
	exchanged map[*Message]int
	discarded map[*Message]int
}

type htAuditStream struct {
	Stream
	a *htAudit
}

func (s htAuditStream) Begin(side Side, off int) *Message {
	m := s.Stream.Begin(side, off)
	s.a.begun = append(s.a.begun, m)
	return m
}

func (s htAuditStream) End(m *Message, off int) {
	if s.a.exchanged[m] > 0 || s.a.discarded[m] > 0 {
		s.a.t.Fatalf("End of a message already handed over")
	}
	s.Stream.End(m, off)
}

func (s htAuditStream) Exchange(req, resp *Message) {
	if s.a.exchanged == nil {
		s.a.exchanged = map[*Message]int{}
	}
	for _, m := range [2]*Message{req, resp} {
		if m == nil {
			continue
		}
		if s.a.discarded[m] > 0 {
			s.a.t.Fatalf("Exchange of a discarded message")
		}
		s.a.exchanged[m]++
	}
	if req != nil && req.Side != Client || resp != nil && resp.Side != Server {
		s.a.t.Fatalf("Exchange with messages of the wrong sides")
	}
	s.Stream.Exchange(req, resp)
}

func (s htAuditStream) Discard(m *Message) {
	if s.a.discarded == nil {
		s.a.discarded = map[*Message]int{}
	}
	if s.a.exchanged[m] > 0 {
		s.a.t.Fatalf("Discard of an exchanged message")
	}
	s.a.discarded[m]++
	s.Stream.Discard(m)
}

func (a *htAudit) check() {
	a.t.Helper()
	for i, m := range a.begun {
		e, d := a.exchanged[m], a.discarded[m]
		switch {
		case e+d != 1:
			a.t.Errorf("message %d (%v): exchanged %d times, discarded %d times", i, m.Side, e, d)
		case e == 1 && !m.Ended:
			a.t.Errorf("message %d exchanged but not ended", i)
		case m.Ended && m.Bytes < 0:
			a.t.Errorf("message %d: Bytes %d", i, m.Bytes)
		}
	}
}

// htAuditParser hands the parser an htAuditStream around the harness.
type htAuditParser struct {
	p Parser
	a *htAudit
}

func (p *htAuditParser) Data(s Side, b []byte, st Stream) { p.p.Data(s, b, htAuditStream{st, p.a}) }
func (p *htAuditParser) Gap(s Side, n int, st Stream)     { p.p.Gap(s, n, htAuditStream{st, p.a}) }
func (p *htAuditParser) Close(st Stream)                  { p.p.Close(htAuditStream{st, p.a}) }

func htSum(fields string, n int) string { return "{" + fields + "bytes=" + fmt.Sprint(n) + "}" }

const (
	getA  = "GET /a?x=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nUser-Agent: t\r\n\r\n"
	resp5 = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
	getB  = "GET /b HTTP/1.1\r\nhost: b.example\r\n\r\n"
	resp0 = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
)

var (
	sumGetA  = htSum("method=GET path=/a?x=1 version=1.1 host=example.com:8080 ", len(getA))
	sumResp5 = htSum("status=200 content_type=text/plain ", len(resp5))
	sumGetB  = htSum("method=GET path=/b version=1.1 host=b.example ", len(getB))
	sumResp0 = htSum("status=404 ", len(resp0))
)

type htCase struct {
	name  string
	steps []htStep
	cfg   func(*Config)
	want  []string
	// discarded is the number of messages discarded (-1: not checked).
	discarded int
}

func httpCases() []htCase {
	chunkedResp := "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Type: application/json\r\n\r\n" +
		"5;name=val;x=\"y\"\r\nhello\r\n" + "1A\r\n" + strings.Repeat("z", 26) + "\r\n" +
		"0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n"
	chunkedReq := "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
	post := "POST /form HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n"
	cont := "HTTP/1.1 100 Continue\r\n\r\n"
	ok2 := "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
	head := "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n"
	headResp := "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
	closeResp := "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>till the end</html>"
	upgrade := "GET /chat HTTP/1.1\r\nHost: ws\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
	switched := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
	connect := "CONNECT db.example:443 HTTP/1.1\r\nHost: db.example:443\r\n\r\n"
	connOK := "HTTP/1.1 200 Connection established\r\n\r\n"
	connNo := "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 3\r\n\r\nno!"
	bareLF := "GET /lf HTTP/1.0\nHOST: LF\nX: y\n\n"
	bareLFResp := "HTTP/1.0 204 No Content\nX-A: b\n\n"
	folded := "GET /f HTTP/1.1\r\nHost: fold\r\nX-Long: a\r\n  b\r\n\tc\r\n\r\n"
	foldedResp := "HTTP/1.1 200 OK\r\nContent-Type: text/html;\r\n charset=utf-8\r\nCONTENT-LENGTH: 3\r\n\r\nabc"
	notMod := "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
	weird := "CCM_POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
	early := "HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	bigPost := "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n"
	huge := "GET /huge HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("x", 2000) + "\r\n\r\n"
	bodyGap := "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"

	return []htCase{
		{name: "get", steps: []htStep{htCli(getA), htSrv(resp5)},
			want: []string{sumGetA + " -> " + sumResp5}},
		{name: "keep-alive", steps: []htStep{htCli(getA), htSrv(resp5), htCli(getB), htSrv(resp0)},
			want: []string{sumGetA + " -> " + sumResp5, sumGetB + " -> " + sumResp0}},
		{name: "pipelined", steps: []htStep{htCli(getA + getB + getA), htSrv(resp5 + resp0 + resp5)},
			want: []string{sumGetA + " -> " + sumResp5, sumGetB + " -> " + sumResp0, sumGetA + " -> " + sumResp5}},
		{name: "head-no-body", steps: []htStep{htCli(head), htSrv(headResp), htCli(getB), htSrv(resp0)},
			want: []string{
				htSum("method=HEAD path=/h version=1.1 host=h ", len(head)) + " -> " + htSum("status=200 ", len(headResp)),
				sumGetB + " -> " + sumResp0}},
		{name: "304-204-no-body", steps: []htStep{htCli(getB + getB), htSrv(notMod + "HTTP/1.1 204 No Content\r\n\r\n")},
			want: []string{sumGetB + " -> " + htSum("status=304 ", len(notMod)), sumGetB + " -> " + htSum("status=204 ", 27)}},
		{name: "chunked-response", steps: []htStep{htCli(getB), htSrv(chunkedResp), htCli(getB), htSrv(resp0)},
			want: []string{sumGetB + " -> " + htSum("status=200 content_type=application/json chunked=1 ", len(chunkedResp)),
				sumGetB + " -> " + sumResp0}},
		{name: "chunked-request", steps: []htStep{htCli(chunkedReq + getB), htSrv(resp0 + resp0)},
			want: []string{htSum("method=POST path=/up version=1.1 host=h ", len(chunkedReq)) + " -> " + sumResp0,
				sumGetB + " -> " + sumResp0}},
		{name: "100-continue", steps: []htStep{htCli(post), htSrv(cont), htCli("hello world"), htSrv(ok2)},
			want:      []string{htSum("method=POST path=/form version=1.1 host=h ", len(post)+11) + " -> " + htSum("status=201 ", len(ok2))},
			discarded: 1},
		{name: "close-delimited", steps: []htStep{htCli(getB), htSrv(closeResp)},
			want: []string{sumGetB + " -> " + htSum("status=200 content_type=text/html ", len(closeResp))}},
		{name: "101-stops", steps: []htStep{htCli(upgrade), htSrv(switched), htCli("\x81\x85GET / HTTP/1.1\r\n\r\n"), htSrv("HTTP/1.1 200 OK\r\n\r\n")},
			want: []string{htSum("method=GET path=/chat version=1.1 host=ws ", len(upgrade)) + " -> " + htSum("status=101 ", len(switched))}},
		{name: "connect-tunnel", steps: []htStep{htCli(connect), htSrv(connOK), htCli("\x16\x03\x01\x00\x05GET / HTTP/1.1\r\n\r\n"), htSrv("HTTP/1.1 200 OK\r\n\r\n")},
			want: []string{htSum("method=CONNECT path=db.example:443 version=1.1 host=db.example:443 ", len(connect)) + " -> " + htSum("status=200 ", len(connOK))}},
		{name: "connect-refused-then-ok", steps: []htStep{htCli(connect), htSrv(connNo), htCli(connect), htSrv(connOK), htCli("\x16\x03\x01")},
			want: []string{
				htSum("method=CONNECT path=db.example:443 version=1.1 host=db.example:443 ", len(connect)) + " -> " + htSum("status=407 ", len(connNo)),
				htSum("method=CONNECT path=db.example:443 version=1.1 host=db.example:443 ", len(connect)) + " -> " + htSum("status=200 ", len(connOK))}},
		{name: "bare-lf", steps: []htStep{htCli(bareLF), htSrv(bareLFResp)},
			want: []string{htSum("method=GET path=/lf version=1.0 host=lf ", len(bareLF)) + " -> " + htSum("status=204 ", len(bareLFResp))}},
		{name: "obs-fold", steps: []htStep{htCli(folded), htSrv(foldedResp)},
			want: []string{htSum("method=GET path=/f version=1.1 host=fold ", len(folded)) + " -> " +
				htSum("status=200 content_type=text/html; charset=utf-8 ", len(foldedResp))}},
		{name: "any-method-in-sync", steps: []htStep{htCli(weird), htSrv(resp0)},
			want: []string{htSum("method=CCM_POST path=/x version=1.1 ", len(weird)) + " -> " + sumResp0}},
		{name: "malformed-request-lines", steps: []htStep{
			htCli("OPTIONS\r\nHost: h\r\n\r\n"), htSrv(resp0),
			htCli("GET / HTTP/1.\r\n\r\n"), htSrv(resp0),
			htCli("PUT HTTP/1.1\r\n\r\n"), htSrv(resp0)},
			want: []string{htSum("method=OPTIONS host=h ", 20) + " -> " + sumResp0,
				htSum("method=GET path=/ HTTP/1. ", 17) + " -> " + sumResp0,
				htSum("method=PUT version=1.1 ", 16) + " -> " + sumResp0}},
		{name: "path-cut", cfg: func(c *Config) { c.MaxStatement = 16 },
			steps: []htStep{htCli("GET /" + strings.Repeat("p", 40) + " HTTP/1.1\r\n\r\n"), htSrv(resp0)},
			want:  []string{htSum("method=GET path=/"+strings.Repeat("p", 15)+" version=1.1 ", 58) + " -> " + sumResp0}},
		{name: "leading-crlf-skipped", steps: []htStep{htCli("\r\n" + getB + "\r\n"), htSrv(resp0)},
			want: []string{sumGetB + " -> " + sumResp0}},
		{name: "header-too-big-resync", cfg: func(c *Config) { c.MaxHeader = 1024 },
			steps: []htStep{htCli(huge), htCli(getB), htSrv("HTTP/1.1 431 Too Large\r\nContent-Length: 0\r\n\r\n"), htSrv(resp0)},
			// the big request is lost; the first response has no request
			// the parser knows of, so the pairing is off by one, as a
			// server would have it too if it skipped the request.
			want: []string{sumGetB + " -> " + htSum("status=431 ", 45), "nil -> " + sumResp0}, discarded: -1},
		{name: "garbage-then-request", steps: []htStep{htCli("\x00\x01binary junk\nmore junk\n" + getB), htSrv(resp0)},
			want: []string{sumGetB + " -> " + sumResp0}, discarded: -1},
		{name: "unanswered-at-close", steps: []htStep{htCli(getA + getB), htSrv(resp5)},
			want: []string{sumGetA + " -> " + sumResp5, sumGetB + " -> nil"}},
		{name: "truncated-response-at-close", steps: []htStep{htCli(getB), htSrv(bodyGap + "short")},
			want: []string{sumGetB + " -> nil"}, discarded: 1},
		{name: "max-pending", cfg: func(c *Config) { c.MaxPending = 2 }, steps: []htStep{htCli(getA + getB + getB), htSrv(resp0)},
			want: []string{sumGetA + " -> nil", sumGetB + " -> " + sumResp0, sumGetB + " -> nil"}},
		{name: "early-response-held", steps: []htStep{htCli(bigPost), htSrv(early), htCli("0123456789")},
			want: []string{htSum("method=POST path=/big version=1.1 host=h ", len(bigPost)+10) + " -> " + htSum("status=413 ", len(early))}},
		{name: "unsolicited-response", steps: []htStep{htSrv(resp0), htCli(getB), htSrv(resp0)},
			want: []string{"nil -> " + sumResp0, sumGetB + " -> " + sumResp0}},
		{name: "midstream-body-then-response", steps: []htStep{htSrv("tail of a body\r\n" + resp0), htCli(getB), htSrv(resp5)},
			want: []string{"nil -> " + sumResp0, sumGetB + " -> " + htSum("status=200 content_type=text/plain ", len(resp5))}, discarded: -1},
	}
}

func TestHTTPCases(t *testing.T) {
	for _, tc := range httpCases() {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := htRun(t, newHTTP, tc.steps, tc.cfg, nil)
			got := htSummary(st)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if tc.discarded >= 0 && len(st.Discarded) != tc.discarded {
				t.Errorf("got %d discarded, want %d", len(st.Discarded), tc.discarded)
			}
		})
	}
}

// TestHTTPSplits feeds every case cut in every way: at each byte boundary
// of each step, in chunks of 1, 2 and 3 bytes, and in random sizes; the
// exchanges must not change.
func TestHTTPSplits(t *testing.T) {
	for _, tc := range httpCases() {
		t.Run(tc.name, func(t *testing.T) {
			longest := 0
			for _, s := range tc.steps {
				longest = max(longest, len(s.data))
			}
			cuts := map[string]func(int) []int{"1": htCutEvery(1), "2": htCutEvery(2), "3": htCutEvery(3)}
			for i := range 8 {
				cuts[fmt.Sprint("random", i)] = htCutRandom(int64(i))
			}
			for k := 1; k < longest; k++ {
				cuts[fmt.Sprint("at", k)] = htCutAt(k)
			}
			for name, cut := range cuts {
				st, _ := htRun(t, newHTTP, tc.steps, tc.cfg, cut)
				if got := htSummary(st); !slices.Equal(got, tc.want) {
					t.Fatalf("cut %s: got\n  %s\nwant\n  %s", name, strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
				}
			}
		})
	}
}

func htOrds(m *Message) []uint32 {
	var o []uint32
	for _, r := range m.Pkts {
		o = append(o, r.Ord)
	}
	return o
}

// TestHTTPPktsAndTimes checks which chunks carried each message, and the
// first and last timestamps.
func TestHTTPPktsAndTimes(t *testing.T) {
	req := "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n"
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
	steps := []htStep{
		htCli(req[:10]),            // pkt 1
		htCli(req[10:] + "abc"),    // pkt 2
		htCli("def" + getB[:5]),    // pkt 3: end of the POST, start of the GET
		htSrv(resp + "01234"),      // pkt 4
		htCli(getB[5:]),            // pkt 5
		htSrv("56789" + resp0[:3]), // pkt 6
		htSrv(resp0[3:]),           // pkt 7
	}
	st, _ := htRun(t, newHTTP, steps, nil, nil)
	if len(st.Exchanges) != 2 {
		t.Fatalf("got %d exchanges, want 2", len(st.Exchanges))
	}
	want := [][2][]uint32{{{1, 2, 3}, {4, 6}}, {{3, 5}, {6, 7}}}
	wantBytes := [][2]int64{{int64(len(req) + 6), int64(len(resp) + 10)}, {int64(len(getB)), int64(len(resp0))}}
	wantTS := [][2][2]int64{{{1000, 3000}, {4000, 6000}}, {{3000, 5000}, {6000, 7000}}}
	for i, x := range st.Exchanges {
		for j, m := range x {
			if got := htOrds(m); !slices.Equal(got, want[i][j]) {
				t.Errorf("exchange %d msg %d: got pkts %v, want %v", i, j, got, want[i][j])
			}
			if m.Bytes != wantBytes[i][j] {
				t.Errorf("exchange %d msg %d: got %d bytes, want %d", i, j, m.Bytes, wantBytes[i][j])
			}
			if m.FirstTS != wantTS[i][j][0] || m.LastTS != wantTS[i][j][1] {
				t.Errorf("exchange %d msg %d: got ts %d..%d, want %v", i, j, m.FirstTS, m.LastTS, wantTS[i][j])
			}
		}
	}
}

func TestHTTPGaps(t *testing.T) {
	resp100 := "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
	chunked := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n"
	cases := []struct {
		name  string
		steps []htStep
		want  []string
	}{
		{"in-body-counted", []htStep{htCli(getB), htSrv(resp100 + strings.Repeat("a", 30)), htGap(Server, 50), htSrv(strings.Repeat("b", 20)), htCli(getB), htSrv(resp0)},
			[]string{sumGetB + " -> " + htSum("status=200 ", len(resp100)+100), sumGetB + " -> " + sumResp0}},
		{"body-ends-in-gap", []htStep{htCli(getB), htSrv(resp100 + strings.Repeat("a", 30)), htGap(Server, 70), htCli(getB), htSrv(resp0)},
			[]string{sumGetB + " -> " + htSum("status=200 ", len(resp100)+30), sumGetB + " -> " + sumResp0}},
		{"gap-past-body-resync", []htStep{htCli(getB), htSrv(resp100 + strings.Repeat("a", 30)), htGap(Server, 90), htCli(getB), htSrv("junk\r\n" + resp0)},
			[]string{sumGetB + " -> " + htSum("status=200 ", len(resp100)+30), sumGetB + " -> " + sumResp0}},
		{"in-request-header-resync", []htStep{htCli(getA[:10]), htGap(Client, 20), htCli(getA[30:] + getB), htSrv(resp0)},
			[]string{sumGetB + " -> " + sumResp0}},
		{"in-response-header", []htStep{htCli(getA + getB), htSrv(resp5[:10]), htGap(Server, 5), htSrv(resp5[15:]), htSrv(resp0)},
			// the first response is lost in the gap: the next response
			// answers the newest request, the first goes unanswered
			[]string{sumGetA + " -> nil", sumGetB + " -> " + sumResp0}},
		{"chunk-data-counted", []htStep{htCli(getB), htSrv(chunked + strings.Repeat("c", 10)), htGap(Server, 40), htSrv(strings.Repeat("c", 14) + "\r\n0\r\n\r\n")},
			[]string{sumGetB + " -> " + htSum("status=200 chunked=1 ", len(chunked)+10+40+14+7)}},
		{"chunk-framing-lost", []htStep{htCli(getB), htSrv(chunked + strings.Repeat("c", 10)), htGap(Server, 100), htCli(getB), htSrv("\r\n0\r\n\r\n" + resp0)},
			[]string{sumGetB + " -> " + htSum("status=200 chunked=1 ", len(chunked)+10), sumGetB + " -> " + sumResp0}},
		{"idle-gap-resync", []htStep{htCli(getB), htGap(Client, 10), htCli("tail\r\n" + getB), htSrv(resp0 + resp0)},
			[]string{sumGetB + " -> " + sumResp0, sumGetB + " -> " + sumResp0}},
		{"close-body-gap", []htStep{htCli(getB), htSrv("HTTP/1.0 200 OK\r\n\r\nabc"), htGap(Server, 10), htSrv("def")},
			[]string{sumGetB + " -> " + htSum("status=200 ", 19+3+10+3)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := htRun(t, newHTTP, tc.steps, nil, nil)
			got := htSummary(st)
			// strip the gap marks for the comparison; check them apart
			for i := range got {
				got[i] = strings.ReplaceAll(got[i], " gap", "")
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestHTTPDetect(t *testing.T) {
	for in, want := range map[string]bool{
		"GET / HTTP/1.1\r\n":   true,
		"PROPFIND /x HTTP/1.1": true,
		"HTTP/1.1 200 OK":      true,
		"HTTP/2":               false,
		"GETX / HTTP/1.1":      false,
		"get / HTTP/1.1":       false,
		"\x16\x03\x01":         false,
		"":                     false,
		"GET":                  false,
	} {
		if got := httpDetect(Client, []byte(in)); got != want {
			t.Errorf("httpDetect(%q) = %v, want %v", in, got, want)
		}
	}
	d, err := Lookup("http")
	if err != nil || d.New == nil || !d.TCP || !slices.Contains(d.Ports, 8080) {
		t.Fatalf("http not registered as specified: %v %+v", err, d)
	}
}

// htFuzzFeed feeds data to p through the harness: each control byte picks a
// side, a chunk length or a gap, the bytes after it are the chunk.
func htFuzzFeed(t *testing.T, dec func(*Config) Parser, data []byte, cfg func(*Config)) {
	st := newTestStream(t)
	st.cfg.MaxHeader = 1024
	st.cfg.MaxPending = 4
	st.cfg.MaxStatement = 16
	if cfg != nil {
		cfg(&st.cfg)
	}
	a := &htAudit{t: t}
	p := &htAuditParser{p: dec(&st.cfg), a: a}
	for len(data) > 0 {
		c := data[0]
		data = data[1:]
		s := Side(c & 1)
		if c&0xC0 == 0xC0 {
			st.FeedGap(p, s, 1+int(c>>1&0x1f)*7)
			continue
		}
		n := min(len(data), 1+int(c>>1&0x7f))
		st.Feed(p, s, data[:n])
		data = data[n:]
	}
	p.Close(st)
	a.check()
	for _, x := range st.Exchanges {
		for _, m := range x {
			if m != nil && (!m.Ended || m.Bytes < 0) {
				t.Fatalf("exchanged message ended=%v bytes=%d", m.Ended, m.Bytes)
			}
		}
	}
	if len(st.open[0])+len(st.open[1]) != 0 {
		t.Fatalf("messages left open after Close")
	}
}

// httpFuzzSeed builds a fuzz input feeding steps whole (chunks <= 128).
func htFuzzSeed(steps []htStep) []byte {
	var out []byte
	for _, s := range steps {
		if s.data == "" {
			out = append(out, 0xC0|byte(s.side))
			continue
		}
		b := []byte(s.data)
		for len(b) > 0 {
			n := min(len(b), 128)
			out = append(out, byte(n-1)<<1|byte(s.side))
			out = append(out, b[:n]...)
			b = b[n:]
		}
	}
	return out
}

func FuzzHTTP(f *testing.F) {
	for _, tc := range httpCases() {
		f.Add(htFuzzSeed(tc.steps))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		htFuzzFeed(t, newHTTP, data, nil)
	})
}

// htBenchStream is a Stream that records nothing and reuses its messages, so
// a benchmark measures the parser alone.
type htBenchStream struct {
	cfg  Config
	msgs [8]Message
	next int
	ts   int64
}

func (s *htBenchStream) Begin(side Side, off int) *Message {
	m := &s.msgs[s.next%len(s.msgs)]
	s.next++
	*m = Message{Side: side, FirstTS: s.ts, Fields: m.Fields[:0]}
	return m
}
func (s *htBenchStream) End(m *Message, off int)     { m.Ended = true }
func (s *htBenchStream) Exchange(req, resp *Message) {}
func (s *htBenchStream) Discard(m *Message)          {}
func (s *htBenchStream) TS() int64                   { return s.ts }
func (s *htBenchStream) Config() *Config             { return &s.cfg }

func BenchmarkHTTPParser(b *testing.B) {
	req := []byte("GET /api/v1/items?page=2 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench/1.0\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip\r\nCookie: session=0123456789abcdef\r\n\r\n")
	body := strings.Repeat("x", 1500)
	resp := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 22 Nov 2026 01:35:51 GMT\r\n" +
		"Content-Type: application/json\r\nContent-Length: 1500\r\nConnection: keep-alive\r\n\r\n" + body)
	seg := len(resp) - 700 // two segments
	chunks := []struct {
		s Side
		b []byte
	}{{Client, req}, {Server, resp[:seg]}, {Server, resp[seg:]}}
	st := &htBenchStream{cfg: DefaultConfig()}
	p := newHTTPParser(&st.cfg)
	b.ReportAllocs()
	b.SetBytes(int64(len(req) + len(resp)))
	b.ResetTimer()
	for range b.N {
		for _, c := range chunks {
			st.ts++
			p.Data(c.s, c.b, st)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(chunks)), "ns/chunk")
}
