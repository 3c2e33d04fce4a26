package analytics

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// The helpers named xchg* are shared by the DNS, Redis and MySQL tests.

// xchgStep is one side's bytes in a scripted conversation.
type xchgStep struct {
	side Side
	b    []byte
}

// xchgFeed feeds each step as chunks of the sizes cut returns (cut(n)
// gives the next chunk length for n bytes left) and closes the parser.
func xchgFeed(t testing.TB, p Parser, steps []xchgStep, cut func(n int) int) *testStream {
	st := newTestStream(t)
	xchgFeedInto(st, p, steps, cut)
	p.Close(st)
	return st
}

func xchgFeedInto(st *testStream, p Parser, steps []xchgStep, cut func(n int) int) {
	for _, s := range steps {
		b := s.b
		for len(b) > 0 {
			k := len(b)
			if cut != nil {
				k = max(1, min(cut(len(b)), len(b)))
			}
			st.Feed(p, s.side, b[:k])
			b = b[k:]
		}
	}
}

// xchgMsg describes a message without its timing: side, bytes, gap and
// fields.
func xchgMsg(m *Message) string {
	if m == nil {
		return "-"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%v/%d", m.Side, m.Bytes)
	if m.Gap {
		sb.WriteString("/gap")
	}
	for _, f := range m.Fields {
		fmt.Fprintf(&sb, " %s=%s", f.Key, f.Value())
	}
	return sb.String()
}

// xchgSummary describes what st recorded, independent of how the bytes
// were cut into chunks.
func xchgSummary(st *testStream) string {
	var sb strings.Builder
	for _, x := range st.Exchanges {
		fmt.Fprintf(&sb, "[%s] -> [%s]\n", xchgMsg(x[0]), xchgMsg(x[1]))
	}
	fmt.Fprintf(&sb, "discarded %d\n", len(st.Discarded))
	return sb.String()
}

// xchgCheck checks the invariants every parser must keep: exchanged
// messages are ended, none is given twice or both exchanged and
// discarded, Bytes is not negative, and nothing is left open after Close.
func xchgCheck(t testing.TB, st *testStream) {
	t.Helper()
	seen := map[*Message]bool{}
	for _, x := range st.Exchanges {
		if x[0] == nil && x[1] == nil {
			t.Fatalf("Exchange(nil, nil)")
		}
		for _, m := range x {
			if m == nil {
				continue
			}
			if !m.Ended || m.Bytes < 0 {
				t.Fatalf("exchanged message ended=%v bytes=%d", m.Ended, m.Bytes)
			}
			if seen[m] {
				t.Fatalf("message given twice")
			}
			seen[m] = true
		}
	}
	for _, m := range st.Discarded {
		if seen[m] {
			t.Fatalf("message discarded and exchanged, or discarded twice")
		}
		seen[m] = true
	}
	for s := range st.open {
		if len(st.open[s]) != 0 {
			t.Fatalf("%d messages of side %d left open after Close", len(st.open[s]), s)
		}
	}
}

// xchgSplitSame feeds steps whole, byte by byte and in random chunks and
// checks that all three give the same records. It returns the stream of
// the whole-step run.
func xchgSplitSame(t *testing.T, newP func() Parser, steps []xchgStep) *testStream {
	t.Helper()
	whole := xchgFeed(t, newP(), steps, nil)
	xchgCheck(t, whole)
	want := xchgSummary(whole)
	one := xchgFeed(t, newP(), steps, func(int) int { return 1 })
	xchgCheck(t, one)
	if got := xchgSummary(one); got != want {
		t.Fatalf("byte by byte:\n%s\nwant (whole steps):\n%s", got, want)
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		st := xchgFeed(t, newP(), steps, func(n int) int { return 1 + rng.Intn(n) })
		xchgCheck(t, st)
		if got := xchgSummary(st); got != want {
			t.Fatalf("random chunks (round %d):\n%s\nwant (whole steps):\n%s", i, got, want)
		}
	}
	return whole
}

// xchgFuzzFeed drives p with data: each control byte picks a side (bit 0)
// and either a gap (bits 1-3 all set; the next byte is its length) or a
// chunk whose length is the next byte + 1, taken from the rest of data.
func xchgFuzzFeed(t testing.TB, p Parser, data []byte) *testStream {
	st := newTestStream(t)
	for len(data) >= 2 {
		c, n := data[0], int(data[1])
		data = data[2:]
		s := Side(c & 1)
		if c&0x0E == 0x0E {
			st.FeedGap(p, s, n+1)
			continue
		}
		n = min(n+1, len(data))
		if n == 0 {
			break
		}
		st.Feed(p, s, data[:n])
		data = data[n:]
	}
	p.Close(st)
	xchgCheck(t, st)
	return st
}

// dnsMsg builds a DNS message: header with id, flags, one question
// (unless qname is "") and an answers (an A record each, name compressed).
func dnsMsg(id, flags uint16, qname string, qtype uint16, an int) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b, id)
	binary.BigEndian.PutUint16(b[2:], flags)
	if qname != "" {
		binary.BigEndian.PutUint16(b[4:], 1)
		if qname != "." {
			for _, l := range strings.Split(qname, ".") {
				b = append(b, byte(len(l)))
				b = append(b, l...)
			}
		}
		b = append(b, 0)
		b = binary.BigEndian.AppendUint16(b, qtype)
		b = binary.BigEndian.AppendUint16(b, 1)
	}
	binary.BigEndian.PutUint16(b[6:], uint16(an))
	for i := 0; i < an; i++ {
		b = append(b, 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, byte(i))
	}
	return b
}

// dnsTCP puts a 2-byte length prefix before each message.
func dnsTCP(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		b = append(b, m...)
	}
	return b
}

func newDNSUDP() Parser {
	p := newDNSParser(&Config{MaxPending: 256, MaxStatement: 256})
	p.SetUDP()
	return p
}

func TestDNSUDP(t *testing.T) {
	qA := dnsMsg(0x1234, 0x0100, "WWW.Example.COM", 1, 0)
	qAAAA := dnsMsg(0x1235, 0x0100, "www.example.com", 28, 0)
	rAAAA := dnsMsg(0x1235, 0x8180, "www.example.com", 28, 0)
	rA := dnsMsg(0x1234, 0x8180, "www.example.com", 1, 2)
	nx := dnsMsg(7, 0x8183, "nope.example", 65, 0)

	p := newDNSUDP()
	st := newTestStream(t)
	st.cfg.MaxPending = 256
	st.Feed(p, Client, qA)
	st.Feed(p, Client, qAAAA)
	st.Feed(p, Server, rAAAA) // answered out of order
	st.Feed(p, Server, rA)
	st.Feed(p, Server, nx)                           // no query for it
	st.Feed(p, Client, []byte{1, 2, 3})              // not DNS: ignored
	st.Feed(p, Client, dnsMsg(9, 0x0100, ".", 2, 0)) // root NS, never answered
	p.Close(st)
	xchgCheck(t, st)

	want := []struct{ req, resp string }{
		{"client/33 dns_id=4661 qname=www.example.com qtype=AAAA", "server/33 dns_id=4661 rcode=0 rcode_name=NOERROR answers=0"},
		{"client/33 dns_id=4660 qname=www.example.com qtype=A", "server/65 dns_id=4660 rcode=0 rcode_name=NOERROR answers=2"},
		{"-", "server/30 dns_id=7 rcode=3 rcode_name=NXDOMAIN answers=0 qname=nope.example qtype=HTTPS"},
		{"client/17 dns_id=9 qname=. qtype=NS", "-"},
	}
	if len(st.Exchanges) != len(want) {
		t.Fatalf("got %d exchanges, want %d:\n%s", len(st.Exchanges), len(want), xchgSummary(st))
	}
	for i, w := range want {
		x := st.Exchanges[i]
		if got := xchgMsg(x[0]); got != w.req {
			t.Errorf("exchange %d request: got %q, want %q", i, got, w.req)
		}
		if got := xchgMsg(x[1]); got != w.resp {
			t.Errorf("exchange %d response: got %q, want %q", i, got, w.resp)
		}
	}
	if r := st.Exchanges[1][1]; r.FirstTS != 4000 || r.LastTS != 4000 || len(r.Pkts) != 1 || r.Pkts[0].Ord != 4 {
		t.Errorf("A response timing: got first %d last %d pkts %v, want 4000 4000 [ord 4]", r.FirstTS, r.LastTS, r.Pkts)
	}
}

func TestDNSQRBitNotSide(t *testing.T) {
	// mDNS: the "server" side (port 5353) asks, the other side answers.
	p := newDNSUDP()
	st := newTestStream(t)
	st.Feed(p, Server, dnsMsg(0, 0, "printer.local", 1, 0))
	st.Feed(p, Client, dnsMsg(0, 0x8400, "printer.local", 1, 1))
	p.Close(st)
	xchgCheck(t, st)
	if len(st.Exchanges) != 1 || st.Exchanges[0][0] == nil || st.Exchanges[0][1] == nil {
		t.Fatalf("got %s, want one paired exchange", xchgSummary(st))
	}
	if st.Exchanges[0][0].Side != Server {
		t.Errorf("query side: got %v, want server", st.Exchanges[0][0].Side)
	}
}

func TestDNSMalformed(t *testing.T) {
	loop := dnsMsg(5, 0x0100, "", 0, 0)
	loop[5] = 1                                 // one question
	loop = append(loop, 1, 'a', 0xC0, 12, 0, 1) // label a, then a pointer back to itself
	fwd := dnsMsg(6, 0x0100, "", 0, 0)
	fwd[5] = 1
	fwd = append(fwd, 0xC0, 40, 0, 1, 0, 1) // pointer forward
	short := dnsMsg(8, 0x0100, "cut.example", 1, 0)
	short = short[:len(short)-3] // question cut in its type
	ext := dnsMsg(10, 0x0100, "", 0, 0)
	ext[5] = 1
	ext = append(ext, 0x41, 0, 0, 1)
	// A compression pointer into the question name: legal and followed.
	ptr := dnsMsg(11, 0x0100, "", 0, 0)
	ptr[5] = 1
	ptr = append(ptr, 3, 'F', 'o', 'o', 0, 0, 1, 0, 1) // foo. A at 12
	ptr[5] = 2
	ptr = append(ptr, 0xC0, 12, 0, 28, 0, 1) // second question: pointer
	esc := dnsMsg(12, 0x0100, "", 0, 0)
	esc[5] = 1
	esc = append(esc, 4, 'a', '.', 0x01, '\\', 0, 0, 16, 0, 1)

	for _, tc := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"pointer loop", loop, "client/18 dns_id=5"},
		{"forward pointer", fwd, "client/18 dns_id=6"},
		{"truncated question", short, "client/26 dns_id=8"},
		{"extended label", ext, "client/16 dns_id=10"},
		{"compressed", ptr, "client/27 dns_id=11 qname=foo qtype=A"},
		{"escapes", esc, `client/22 dns_id=12 qname=a\.\001\\ qtype=TXT`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, udp := range []bool{true, false} {
				var p Parser
				b := tc.msg
				if udp {
					p = newDNSUDP()
				} else {
					p = newDNSParser(&Config{MaxPending: 4})
					b = dnsTCP(b)
				}
				st := xchgFeed(t, p, []xchgStep{{Client, b}}, nil)
				xchgCheck(t, st)
				if len(st.Exchanges) != 1 {
					t.Fatalf("udp=%v: got %s, want one exchange", udp, xchgSummary(st))
				}
				want := tc.want
				if !udp {
					want = strings.Replace(want, fmt.Sprintf("/%d", len(tc.msg)), fmt.Sprintf("/%d", len(tc.msg)+2), 1)
				}
				if got := xchgMsg(st.Exchanges[0][0]); got != want {
					t.Errorf("udp=%v: got %q, want %q", udp, got, want)
				}
			}
		})
	}
}

func TestDNSResponseWithoutQuestion(t *testing.T) {
	p := newDNSUDP()
	st := newTestStream(t)
	st.Feed(p, Client, dnsMsg(3, 0x0100, "x.example", 1, 0))
	st.Feed(p, Server, dnsMsg(3, 0x8101, "", 0, 0)) // FORMERR, no question
	p.Close(st)
	if len(st.Exchanges) != 1 || st.Exchanges[0][0] == nil || field(st.Exchanges[0][1], "rcode_name") != "FORMERR" {
		t.Fatalf("got %s, want the FORMERR paired on the ID", xchgSummary(st))
	}
}

func TestDNSMaxPending(t *testing.T) {
	p := newDNSParser(&Config{MaxPending: 2})
	p.SetUDP()
	st := newTestStream(t)
	for i := 0; i < 4; i++ {
		st.Feed(p, Client, dnsMsg(uint16(i), 0x0100, "a.example", 1, 0))
	}
	// Queries 0 and 1 were dropped as unanswered; the answer to 0 has no query.
	st.Feed(p, Server, dnsMsg(0, 0x8180, "a.example", 1, 1))
	st.Feed(p, Server, dnsMsg(3, 0x8180, "a.example", 1, 1))
	p.Close(st)
	xchgCheck(t, st)
	got := []string{}
	for _, x := range st.Exchanges {
		got = append(got, field(x[0], "dns_id")+">"+field(x[1], "dns_id"))
	}
	want := "0> 1> >0 3>3 2>"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, " "), want)
	}
}

func TestDNSTCP(t *testing.T) {
	q1 := dnsMsg(1, 0x0100, "a.example", 1, 0)
	q2 := dnsMsg(2, 0x0100, "a.example", 28, 0)
	r2 := dnsMsg(2, 0x8180, "a.example", 28, 1)
	r1 := dnsMsg(1, 0x8180, "a.example", 1, 3)
	newP := func() Parser { return newDNSParser(&Config{MaxPending: 8}) }
	steps := []xchgStep{
		{Client, dnsTCP(q1, q2)}, // two messages in one chunk
		{Server, dnsTCP(r2)},
		{Server, dnsTCP(r1)},
		{Client, dnsTCP(dnsMsg(3, 0x0100, "b.example", 15, 0))}, // never answered
		{Client, dnsTCP([]byte{})},                              // empty message: not DNS
	}
	st := xchgSplitSame(t, newP, steps)
	want := "[client/29 dns_id=2 qname=a.example qtype=AAAA] -> [server/45 dns_id=2 rcode=0 rcode_name=NOERROR answers=1]\n" +
		"[client/29 dns_id=1 qname=a.example qtype=A] -> [server/77 dns_id=1 rcode=0 rcode_name=NOERROR answers=3]\n" +
		"[client/29 dns_id=3 qname=b.example qtype=MX] -> [-]\n" +
		"discarded 1\n"
	if got := xchgSummary(st); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}

	// The length prefix split across chunks: the message begins in the
	// chunk holding its first prefix byte.
	p := newP()
	st = newTestStream(t)
	b := dnsTCP(q1)
	st.Feed(p, Client, b[:1])
	st.Feed(p, Client, b[1:2])
	st.Feed(p, Client, b[2:])
	r := dnsTCP(r1)
	st.Feed(p, Server, r[:20])
	st.Feed(p, Server, r[20:])
	p.Close(st)
	xchgCheck(t, st)
	if len(st.Exchanges) != 1 {
		t.Fatalf("got %s", xchgSummary(st))
	}
	req, resp := st.Exchanges[0][0], st.Exchanges[0][1]
	if req.FirstTS != 1000 || req.LastTS != 3000 || len(req.Pkts) != 3 || req.Bytes != int64(len(b)) {
		t.Errorf("request: got first %d last %d pkts %d bytes %d, want 1000 3000 3 %d", req.FirstTS, req.LastTS, len(req.Pkts), req.Bytes, len(b))
	}
	if resp.FirstTS != 4000 || resp.LastTS != 5000 || len(resp.Pkts) != 2 || resp.Pkts[1].Ord != 5 {
		t.Errorf("response: got first %d last %d pkts %v, want 4000 5000 [4 5]", resp.FirstTS, resp.LastTS, resp.Pkts)
	}
}

func TestDNSTCPGap(t *testing.T) {
	q := dnsMsg(1, 0x0100, "a.example", 1, 0)
	r := dnsTCP(dnsMsg(1, 0x8180, "a.example", 1, 20)) // 2+29+320 bytes
	p := newDNSParser(&Config{MaxPending: 8})
	st := newTestStream(t)
	st.Feed(p, Client, dnsTCP(q))
	st.Feed(p, Server, r[:100])
	st.FeedGap(p, Server, 50) // inside the answers: counted down
	st.Feed(p, Server, r[150:])
	if len(st.Exchanges) != 1 || !st.Exchanges[0][1].Gap || field(st.Exchanges[0][1], "answers") != "20" {
		t.Fatalf("gap inside a body: got %s", xchgSummary(st))
	}
	if got, want := st.Exchanges[0][1].Bytes, int64(len(r)); got != want {
		t.Errorf("bytes of a response with a gap: got %d, want %d", got, want)
	}
	// A gap ending exactly at the end of a body.
	st.Feed(p, Client, dnsTCP(q))
	st.Feed(p, Server, r[:200])
	st.FeedGap(p, Server, len(r)-200)
	if len(st.Exchanges) != 2 || st.Exchanges[1][1] == nil {
		t.Fatalf("gap to the end of a body: got %s", xchgSummary(st))
	}
	// A gap over a length prefix: stop quietly.
	st.Feed(p, Client, dnsTCP(q))
	st.Feed(p, Client, dnsTCP(q)[:5])
	st.FeedGap(p, Client, 100)
	st.Feed(p, Client, dnsTCP(q))
	st.Feed(p, Server, r)
	p.Close(st)
	xchgCheck(t, st)
	if len(st.Exchanges) != 2 || len(st.Discarded) != 2 {
		t.Fatalf("after a lost prefix: got %s, want nothing more decoded and 2 discarded", xchgSummary(st))
	}
}

func FuzzDNS(f *testing.F) {
	q := dnsMsg(1, 0x0100, "a.example", 1, 0)
	r := dnsMsg(1, 0x8180, "a.example", 1, 2)
	seed := []byte{0}
	seed = append(seed, 0, byte(len(q)+1))
	seed = append(seed, dnsTCP(q)...)
	seed = append(seed, 1, byte(len(r)+1))
	seed = append(seed, dnsTCP(r)...)
	f.Add(seed)
	seed[0] = 1
	f.Add(seed)
	f.Add([]byte{1, 0, 11, 0, 1, 0xC0, 12, 0xC0, 12, 0, 1, 0, 0, 0, 0, 0xC0, 14, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		p := newDNSParser(&Config{MaxPending: 3})
		if data[0]&1 != 0 {
			p.SetUDP()
		}
		xchgFuzzFeed(t, p, data[1:])
	})
}

// xchgNopStream is a Stream that records nothing, for benchmarks where
// the harness's own work would dominate. Begin allocates the Message, as
// the core does (one allocation per message counted in the benchmarks).
type xchgNopStream struct{ cfg Config }

func (s *xchgNopStream) Begin(Side, int) *Message { return &Message{Fields: make([]Field, 0, 4)} }
func (s *xchgNopStream) End(*Message, int)        {}
func (s *xchgNopStream) Exchange(_, _ *Message)   {}
func (s *xchgNopStream) Discard(*Message)         {}
func (s *xchgNopStream) TS() int64                { return 0 }
func (s *xchgNopStream) Config() *Config          { return &s.cfg }

func BenchmarkDNSParser(b *testing.B) {
	q := dnsMsg(0x4242, 0x0100, "www.example.com", 1, 0)
	r := dnsMsg(0x4242, 0x8180, "www.example.com", 1, 2)
	b.Run("udp", func(b *testing.B) {
		st := &xchgNopStream{cfg: DefaultConfig()}
		p := newDNSParser(&st.cfg)
		p.SetUDP()
		b.ReportAllocs()
		b.SetBytes(int64(len(q) + len(r)))
		for i := 0; i < b.N; i++ {
			p.Data(Client, q, st)
			p.Data(Server, r, st)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/chunk")
	})
	b.Run("tcp", func(b *testing.B) {
		st := &xchgNopStream{cfg: DefaultConfig()}
		p := newDNSParser(&st.cfg)
		tq, tr := dnsTCP(q), dnsTCP(r)
		b.ReportAllocs()
		b.SetBytes(int64(len(tq) + len(tr)))
		for i := 0; i < b.N; i++ {
			p.Data(Client, tq, st)
			p.Data(Server, tr, st)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/chunk")
	})
}
