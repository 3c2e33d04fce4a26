package analytics

import (
	"fmt"
	"strings"
	"testing"
)

// fixMsg builds a FIX message with a correct BodyLength and checksum from
// its BeginString and body fields ("35=D", "11=X", ...).
func fixMsg(begin string, fields ...string) []byte {
	var body []byte
	for _, f := range fields {
		body = append(body, f...)
		body = append(body, fixSOH)
	}
	m := fmt.Appendf(nil, "8=%s\x019=%d\x01", begin, len(body))
	m = append(m, body...)
	var sum byte
	for _, c := range m {
		sum += c
	}
	return fmt.Appendf(m, "10=%03d\x01", sum)
}

func fix44(fields ...string) []byte { return fixMsg("FIX.4.4", fields...) }

func fixOrderMsg(seq int, typ, id, sym string) []byte {
	return fix44("35="+typ, fmt.Sprintf("34=%d", seq), "49=BUYSIDE", "56=SELLSIDE", "52=20240501-09:30:00.123",
		"11="+id, "55="+sym, "54=1", "38=100", "40=2", "44=187.25", "60=20240501-09:30:00.120")
}

func fixER(seq int, id, execType, ordStatus string, extra ...string) []byte {
	f := []string{"35=8", fmt.Sprintf("34=%d", seq), "49=SELLSIDE", "56=BUYSIDE", "52=20240501-09:30:00.125",
		"37=OID" + id, "11=" + id, "17=EX" + id, "150=" + execType, "39=" + ordStatus, "55=AAPL", "54=1", "38=100", "14=0", "151=100", "6=0"}
	return fix44(append(f, extra...)...)
}

var (
	fixLogonC = fix44("35=A", "34=1", "49=BUYSIDE", "56=SELLSIDE", "52=20240501-09:29:59.000", "98=0", "108=30")
	fixLogonS = fix44("35=A", "34=1", "49=SELLSIDE", "56=BUYSIDE", "52=20240501-09:29:59.001", "98=0", "108=30")
	fixHB     = fix44("35=0", "34=9", "49=SELLSIDE", "56=BUYSIDE", "52=20240501-09:30:30.000")
)

func fixLen(b ...[]byte) string { return fmt.Sprint(len(pfxCat(b...))) }

func TestFIXDetect(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want bool
	}{
		{fixLogonC, true},
		{fixMsg("FIXT.1.1", "35=A"), true},
		{[]byte("8=FI"), false},
		{[]byte("GET / HTTP/1.1\r\n"), false},
		{nil, false},
	} {
		if got := fixDetect(Client, c.b); got != c.want {
			t.Errorf("detect %q: got %v, want %v", c.b, got, c.want)
		}
	}
}

func TestFIX(t *testing.T) {
	ord1 := fixOrderMsg(2, "D", "ORD1", "AAPL")
	ack1 := fixER(2, "ORD1", "0", "0")
	fill1 := fixER(3, "ORD1", "F", "2")
	reqF := fix44("35=F", "34=3", "49=BUYSIDE", "56=SELLSIDE", "11=CXL1", "41=ORD1", "55=AAPL", "54=1")
	rejF := fix44("35=9", "34=4", "49=SELLSIDE", "56=BUYSIDE", "11=CXL1", "41=ORD1", "39=2", "434=1", "102=0", "58=Too late to cancel")
	reqG := fix44("35=G", "34=4", "49=BUYSIDE", "56=SELLSIDE", "11=REP1", "41=ORD1", "55=AAPL", "54=1", "38=200")
	ackG := fixER(5, "REP1", "5", "0")
	ord2 := fixOrderMsg(5, "D", "ORD2", "MSFT")
	bmr := fix44("35=j", "34=6", "49=SELLSIDE", "56=BUYSIDE", "45=5", "372=D", "379=ORD2", "380=5", "58=Unknown security")
	ord3 := fixOrderMsg(6, "D", "ORD3", "IBM")
	rej3 := fix44("35=3", "34=7", "49=SELLSIDE", "56=BUYSIDE", "45=6", "371=44", "372=D", "373=5", "58=Value is incorrect for this tag")
	ordS := fix44("35=D", "34=8", "49=SELLSIDE", "56=BUYSIDE", "11=S1", "55=EURUSD", "54=2", "38=1000000")
	ackS := fix44("35=8", "34=9", "49=BUYSIDE", "56=SELLSIDE", "11=S1", "150=0", "39=0")
	bigText := strings.Repeat("t", 2000)
	longText := strings.Repeat("é", 200) // 400 bytes: cut to 256 at a rune boundary
	ordLong := fix44("35=D", "34=2", "11=LONG", "55=AAPL", "54=1", "38=1", "58="+bigText)
	badLen := []byte("8=FIX.4.4\x019=20\x0135=D\x0134=2\x0111=BAD\x0155=X\x0154=1\x0138=1\x0110=000\x01")
	badSum := append([]byte(nil), ord1...)
	copy(badSum[len(badSum)-4:], "999")
	fixt := fixMsg("FIXT.1.1", "35=D", "34=2", "11=T1", "55=BUND", "54=2", "38=5")
	fixtAck := fixMsg("FIXT.1.1", "35=8", "34=2", "11=T1", "150=0", "39=0")

	ord1Req := `client ` + fixLen(ord1) + `B gap=false {msgtype="D" clordid="ORD1" symbol="AAPL" side="1" qty="100" msgseqnum="2" }`
	ack1Resp := `server ` + fixLen(ack1) + `B gap=false {resp_msgtype="8" exec_type="0" ord_status="0" }`
	// One-sided records: a message that is neither a request nor an answer.
	hbAlone := `nil -> server ` + fixLen(fixHB) + `B gap=false {msgtype="0" from="server" msgseqnum="9" }`
	erAlone := func(side string, m []byte, id, sym, et, os string, seq int) string {
		return fmt.Sprintf(`nil -> %s %dB gap=false {msgtype="8" from="%s" clordid="%s" symbol="%s" side="1" qty="100" exec_type="%s" ord_status="%s" msgseqnum="%d" }`,
			side, len(m), side, id, sym, et, os, seq)
	}

	cases := []struct {
		name string
		cfg  func(*Config)
		segs []pfxSeg
		want string
		bad  [2]int // badSums, badFrames
	}{
		{
			name: "logon, order, ack, fill, heartbeat",
			segs: []pfxSeg{
				pfxC(fixLogonC), pfxS(fixLogonS),
				pfxC(ord1), pfxS(ack1, fill1), pfxS(fixHB),
			},
			want: `client ` + fixLen(fixLogonC) + `B gap=false {msgtype="A" msgseqnum="1" } -> server ` + fixLen(fixLogonS) + `B gap=false {resp_msgtype="A" }
` + ord1Req + ` -> ` + ack1Resp + `
` + erAlone("server", fill1, "ORD1", "AAPL", "F", "2", 3) + `
` + hbAlone + "\n",
		},
		{
			name: "cancel rejected, replace acknowledged",
			segs: []pfxSeg{pfxC(ord1), pfxS(ack1), pfxC(reqF), pfxS(rejF), pfxC(reqG), pfxS(ackG)},
			want: ord1Req + ` -> ` + ack1Resp + `
client ` + fixLen(reqF) + `B gap=false {msgtype="F" clordid="CXL1" symbol="AAPL" side="1" msgseqnum="3" } -> server ` + fixLen(rejF) + `B gap=false {resp_msgtype="9" ord_status="2" text="Too late to cancel" }
client ` + fixLen(reqG) + `B gap=false {msgtype="G" clordid="REP1" symbol="AAPL" side="1" qty="200" msgseqnum="4" } -> server ` + fixLen(ackG) + `B gap=false {resp_msgtype="8" exec_type="5" ord_status="0" }
`,
		},
		{
			name: "business reject and session reject",
			segs: []pfxSeg{pfxC(ord2, ord3), pfxS(rej3, bmr)},
			want: `client ` + fixLen(ord3) + `B gap=false {msgtype="D" clordid="ORD3" symbol="IBM" side="1" qty="100" msgseqnum="6" } -> server ` + fixLen(rej3) + `B gap=false {resp_msgtype="3" text="Value is incorrect for this tag" }
client ` + fixLen(ord2) + `B gap=false {msgtype="D" clordid="ORD2" symbol="MSFT" side="1" qty="100" msgseqnum="5" } -> server ` + fixLen(bmr) + `B gap=false {resp_msgtype="j" text="Unknown security" }
`,
		},
		{
			name: "orders from both sides, answers in any order",
			segs: []pfxSeg{pfxC(ord1, ord2), pfxS(ordS), pfxS(fixER(3, "ORD2", "0", "0")), pfxC(ackS), pfxS(ack1)},
			want: `client ` + fixLen(ord2) + `B gap=false {msgtype="D" clordid="ORD2" symbol="MSFT" side="1" qty="100" msgseqnum="5" } -> server ` + fixLen(fixER(3, "ORD2", "0", "0")) + `B gap=false {resp_msgtype="8" exec_type="0" ord_status="0" }
server ` + fixLen(ordS) + `B gap=false {msgtype="D" clordid="S1" symbol="EURUSD" side="2" qty="1000000" msgseqnum="8" } -> client ` + fixLen(ackS) + `B gap=false {resp_msgtype="8" exec_type="0" ord_status="0" }
` + ord1Req + ` -> ` + ack1Resp + "\n",
		},
		{
			name: "an answer from the same side does not count",
			segs: []pfxSeg{pfxC(ord1), pfxC(ack1)},
			want: erAlone("client", ack1, "ORD1", "AAPL", "0", "0", 2) + "\n" + ord1Req + " -> nil\n",
		},
		{
			name: "unanswered at close, duplicate ClOrdID keeps the first",
			segs: []pfxSeg{pfxC(ord1, fixOrderMsg(3, "D", "ORD1", "AAPL"), ord2)},
			want: `nil -> client ` + fixLen(ord1) + `B gap=false {msgtype="D" from="client" clordid="ORD1" symbol="AAPL" side="1" qty="100" msgseqnum="3" }
` + ord1Req + ` -> nil
client ` + fixLen(ord2) + `B gap=false {msgtype="D" clordid="ORD2" symbol="MSFT" side="1" qty="100" msgseqnum="5" } -> nil
`,
		},
		{
			name: "max pending evicts the oldest",
			cfg:  func(c *Config) { c.MaxPending = 1 },
			segs: []pfxSeg{pfxC(ord1, ord2), pfxS(ack1)},
			want: ord1Req + ` -> nil
` + erAlone("server", ack1, "ORD1", "AAPL", "0", "0", 2) + `
client ` + fixLen(ord2) + `B gap=false {msgtype="D" clordid="ORD2" symbol="MSFT" side="1" qty="100" msgseqnum="5" } -> nil
`,
		},
		{
			name: "message longer than MaxHeader is skipped",
			cfg:  func(c *Config) { c.MaxHeader = 1024 },
			segs: []pfxSeg{pfxC(ordLong, ord1), pfxS(fixER(2, "LONG", "0", "0"), ack1)},
			want: `nil -> client ` + fixLen(ordLong) + `B gap=false {msgtype="D" from="client" }
` + erAlone("server", ack1, "LONG", "AAPL", "0", "0", 2) + `
` + ord1Req + ` -> ` + ack1Resp + "\n",
		},
		{
			name: "text cut to MaxStatement",
			segs: []pfxSeg{pfxC(ord1), pfxS(fixER(2, "ORD1", "8", "8", "58="+longText))},
			want: ord1Req + ` -> server ` + fixLen(fixER(2, "ORD1", "8", "8", "58="+longText)) + `B gap=false {resp_msgtype="8" exec_type="8" ord_status="8" text="` + longText[:256] + `" }
`,
		},
		{
			name: "garbage between messages",
			segs: []pfxSeg{
				pfxC([]byte("\r\n"), ord1, []byte("garbage 58=FIX.4.4\x019=5\x01 8=FI 8=FIX"), []byte("\x01\x01\r\n")),
				pfxS([]byte("xx"), ack1, []byte("\n")),
			},
			want: ord1Req + ` -> ` + ack1Resp + "\n",
		},
		{
			name: "checksum mismatch is still used",
			segs: []pfxSeg{pfxC(badSum), pfxS(ack1)},
			want: ord1Req + ` -> ` + ack1Resp + "\n",
			bad:  [2]int{1, 0},
		},
		{
			name: "wrong BodyLength: dropped, the next one is found",
			segs: []pfxSeg{pfxC(badLen, ord1), pfxS(fixER(2, "BAD", "0", "0"), ack1)},
			want: erAlone("server", fixER(2, "BAD", "0", "0"), "BAD", "AAPL", "0", "0", 2) + "\n" + ord1Req + ` -> ` + ack1Resp + "\n",
			bad:  [2]int{0, 1},
		},
		{
			name: "no trailer where BodyLength says (FIXCOMP), an order right after",
			segs: []pfxSeg{pfxC([]byte("8=FIXCOMP\x019=5\x01x\x9c\x05\xc1\xb1"), ord1), pfxS(ack1)},
			want: ord1Req + ` -> ` + ack1Resp + "\n",
			bad:  [2]int{0, 1},
		},
		{
			name: "FIXT.1.1",
			segs: []pfxSeg{pfxC(fixt), pfxS(fixtAck)},
			want: `client ` + fixLen(fixt) + `B gap=false {msgtype="D" clordid="T1" symbol="BUND" side="2" qty="5" msgseqnum="2" } -> server ` + fixLen(fixtAck) + `B gap=false {resp_msgtype="8" exec_type="0" ord_status="0" }
`,
		},
		{
			name: "gap inside a message drops it, the next is read",
			segs: []pfxSeg{
				pfxC(ord2[:40]), {s: Client, gap: 20}, pfxC(ord2[60:], ord1),
				pfxS(fixER(3, "ORD2", "0", "0"), ack1),
			},
			want: erAlone("server", fixER(3, "ORD2", "0", "0"), "ORD2", "AAPL", "0", "0", 3) + "\n" + ord1Req + ` -> ` + ack1Resp + "\n",
		},
		{
			name: "gap across messages: resynchronise",
			segs: []pfxSeg{
				pfxC(ord2[:40]), {s: Client, gap: len(ord2)}, pfxC(ord1[40:], ord1),
				pfxS(ack1[:30]), {s: Server, gap: 5}, pfxS(ack1[35:], fixHB, ack1),
			},
			want: hbAlone + "\n" + ord1Req + ` -> ` + ack1Resp + "\n",
		},
		{
			name: "gap ending at a message start",
			segs: []pfxSeg{
				pfxC(ord2[:40]), {s: Client, gap: len(ord2) - 40}, pfxC(ord1),
				pfxS(ack1),
			},
			want: ord1Req + ` -> ` + ack1Resp + "\n",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := pfxRun(t, "fix", c.cfg, c.segs, nil)
			if got := pfxSummary(st); got != c.want {
				t.Fatalf("got\n%s\nwant\n%s", got, c.want)
			}
			pfxSplitSame(t, "fix", c.cfg, c.segs)
			// The counters, from a parser fed whole chunks.
			st = newTestStream(t)
			if c.cfg != nil {
				c.cfg(&st.cfg)
			}
			p := newFIXParser(&st.cfg).(*fixParser)
			for _, sg := range c.segs {
				if sg.gap > 0 {
					st.FeedGap(p, sg.s, sg.gap)
				} else {
					st.Feed(p, sg.s, sg.b)
				}
			}
			p.Close(st)
			if got := [2]int{p.badSums, p.badFrames}; got != c.bad {
				t.Errorf("got bad sums, frames %v, want %v", got, c.bad)
			}
		})
	}
}

// TestFIXPkts checks timing and packet refs of an order split over
// packets and an answer sharing a packet with the next message.
func TestFIXPkts(t *testing.T) {
	ord := fixOrderMsg(2, "D", "ORD1", "AAPL")
	ack := fixER(2, "ORD1", "0", "0")
	st := pfxRun(t, "fix", nil, []pfxSeg{
		pfxC(ord[:3]), pfxC(ord[3:50]), pfxC(ord[50:]), // packets 1-3
		pfxS(fixHB, ack[:10]), pfxS(ack[10:], fixHB), // packets 4, 5
	}, nil)
	// The heartbeats are one-sided records around the exchange.
	if len(st.Exchanges) != 3 || st.Exchanges[0][0] != nil || st.Exchanges[2][0] != nil {
		t.Fatalf("got %d exchanges, want heartbeat, order, heartbeat", len(st.Exchanges))
	}
	st.Exchanges = st.Exchanges[1:2]
	for _, c := range []struct {
		m           *Message
		first, last int64
		bytes       int
		pkts        string
	}{
		{st.Exchanges[0][0], 1000, 3000, len(ord), "[1 2 3]"},
		{st.Exchanges[0][1], 4000, 5000, len(ack), "[4 5]"},
	} {
		var ords []uint32
		for _, p := range c.m.Pkts {
			ords = append(ords, p.Ord)
		}
		if c.m.FirstTS != c.first || c.m.LastTS != c.last || c.m.Bytes != int64(c.bytes) || fmt.Sprint(ords) != c.pkts {
			t.Errorf("%v: got ts %d-%d, %d bytes, pkts %v; want ts %d-%d, %d bytes, pkts %s",
				c.m.Side, c.m.FirstTS, c.m.LastTS, c.m.Bytes, ords, c.first, c.last, c.bytes, c.pkts)
		}
	}
}

// TestFIXBounded checks that a side's buffer never outgrows MaxHeader,
// whatever the message sizes and chunking.
func TestFIXBounded(t *testing.T) {
	st := newTestStream(t)
	st.cfg.MaxHeader = 1024
	p := newFIXParser(&st.cfg).(*fixParser)
	long := fix44("35=D", "34=2", "11=L", "58="+strings.Repeat("x", 100000))
	for _, c := range pfxRandomCut(7)(pfxCat(long, fixOrderMsg(3, "D", "A", "B"), long)) {
		st.Feed(p, Client, c)
		if n := cap(p.side[Client].buf); n > 1024 {
			t.Fatalf("buffer capacity %d > MaxHeader 1024", n)
		}
	}
	p.Close(st)
	// The long orders are one-sided records (their type only), the short
	// one waits for its answer.
	if len(st.Exchanges) != 3 || st.Exchanges[2][0] == nil || field(st.Exchanges[2][0], "clordid") != "A" || st.Exchanges[2][1] != nil {
		t.Fatalf("got %d exchanges, want 2 one-sided and the order A unanswered", len(st.Exchanges))
	}
	for _, x := range st.Exchanges[:2] {
		if x[0] != nil || field(x[1], "msgtype") != "D" || x[1].Bytes != int64(len(long)) {
			t.Fatalf("got %v, want a one-sided D of %d bytes", x, len(long))
		}
	}
}

func FuzzFIX(f *testing.F) {
	ord := fixOrderMsg(2, "D", "ORD1", "AAPL")
	for _, s := range [][]pfxSeg{
		{pfxC(fixLogonC), pfxS(fixLogonS), pfxC(ord), pfxS(fixER(2, "ORD1", "0", "0"), fixHB)},
		{pfxC(ord[:20]), {s: Client, gap: 9}, pfxC(ord[29:], ord), pfxS(fix44("35=3", "34=3", "45=2"))},
		{pfxC(fixOrderMsg(2, "F", "C1", "X"), fixOrderMsg(3, "G", "C2", "Y")),
			pfxS(fix44("35=9", "11=C1", "39=8"), fix44("35=j", "379=C2", "58=no"))},
		{pfxC([]byte("8=FIXT.1.1\x019=99999\x0135=D\x01")), pfxS(ord)},
	} {
		f.Add(pfxFuzzEncode(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pfxFuzzFeed(t, "fix", data)
	})
}

// BenchmarkFIXParser feeds an order flow (orders, acks, fills, heartbeats)
// in 1448-byte chunks per side, through a Stream that does nothing.
func BenchmarkFIXParser(b *testing.B) {
	var c, s []byte
	for i := range 100 {
		id := fmt.Sprintf("ORD%06d", i)
		c = append(c, fixOrderMsg(2+i, "D", id, "AAPL")...)
		s = append(s, fixER(2+2*i, id, "0", "0")...)
		s = append(s, fixER(3+2*i, id, "F", "2", "31=187.25", "32=100")...)
		if i%10 == 0 {
			c = append(c, fixHB...)
		}
	}
	var chunks []pfxSeg
	// Interleave: a client chunk, then server chunks until the server has
	// answered the client's orders so far (roughly).
	cc, sc := c, s
	for len(cc) > 0 || len(sc) > 0 {
		if len(cc) > 0 {
			n := min(len(cc), 1448)
			chunks = append(chunks, pfxSeg{s: Client, b: cc[:n]})
			cc = cc[n:]
		}
		for range 2 {
			if len(sc) > 0 {
				n := min(len(sc), 1448)
				chunks = append(chunks, pfxSeg{s: Server, b: sc[:n]})
				sc = sc[n:]
			}
		}
	}
	st := &pfxStream{cfg: DefaultConfig()}
	b.SetBytes(int64(len(c) + len(s)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p := newFIXParser(&st.cfg)
		for _, x := range chunks {
			p.Data(x.s, x.b, st)
		}
		p.Close(st)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(chunks)), "ns/chunk")
	// 100 orders with their acks, 100 fills and 10 heartbeats one-sided.
	if st.n != 210*b.N {
		b.Fatalf("got %d exchanges, want %d", st.n, 210*b.N)
	}
}

func TestFIXSum(t *testing.T) {
	b := make([]byte, 5000)
	for i := range b {
		b[i] = byte(i*7 + i>>3)
	}
	for n := range len(b) {
		var want byte
		for _, c := range b[:n] {
			want += c
		}
		if got := fixSum(b[:n]); got != want {
			t.Fatalf("len %d: got %d, want %d", n, got, want)
		}
	}
	for i := range b {
		b[i] = 0xff
	}
	if got, want := fixSum(b), byte(5000*255%256); got != want {
		t.Fatalf("all 0xff: got %d, want %d", got, want)
	}
}

// TestFIXPairs checks the request/response pairs of fixRequests beyond
// orders, over FIXT.1.1 (FIX 5.0's session layer).
func TestFIXPairs(t *testing.T) {
	m := func(fields ...string) []byte { return fixMsg("FIXT.1.1", fields...) }
	logonC := m("35=A", "34=1", "98=0", "108=30", "1137=9")
	logonS := m("35=A", "34=1", "98=0", "108=30", "1137=9")
	tr := m("35=1", "34=2", "112=TR-7")
	hbPlain := m("35=0", "34=2")
	hbTR := m("35=0", "34=3", "112=TR-7")
	qr := m("35=R", "34=3", "131=QR1", "55=EURUSD")
	quote := m("35=S", "34=4", "131=QR1", "117=Q1", "55=EURUSD")
	md := m("35=V", "34=4", "262=MD1", "263=1", "264=1")
	mdBad := m("35=V", "34=5", "262=MD2", "263=1")
	snap := m("35=W", "34=5", "262=MD1", "55=EURUSD")
	bmr := m("35=j", "34=6", "372=V", "379=MD2", "380=2", "58=Unsupported")
	sdr := m("35=c", "34=6", "320=SD1", "321=0")
	sd := m("35=d", "34=7", "320=SD1", "322=R1", "323=1")
	rfp := m("35=AN", "34=7", "710=P1", "724=0")
	rfpAck := m("35=AO", "34=8", "710=P1", "721=M1", "728=0")
	omc := m("35=q", "34=8", "11=MC1", "530=7")
	omcR := m("35=r", "34=9", "11=MC1", "37=X", "530=7", "531=7")
	tr2 := m("35=1", "34=9", "112=TR-8")
	rej := m("35=3", "34=10", "45=9", "58=bad")
	rr := m("35=2", "34=10", "7=3", "16=0")
	sr := m("35=4", "34=11", "43=Y", "36=12", "123=Y")
	rr2 := m("35=2", "34=11", "7=5", "16=5")
	resent := m("35=8", "34=5", "43=Y", "11=OLD", "150=0", "39=0")
	logoutC := m("35=5", "34=12")
	logoutS := m("35=5", "34=12")
	line := func(side string, b []byte, fields string) string {
		return fmt.Sprintf("%s %dB gap=false {%s}", side, len(b), fields)
	}
	want := strings.Join([]string{
		line("client", logonC, `msgtype="A" msgseqnum="1" `) + " -> " + line("server", logonS, `resp_msgtype="A" `),
		"nil -> " + line("server", hbPlain, `msgtype="0" from="server" msgseqnum="2" `),
		line("client", tr, `msgtype="1" reqid="TR-7" msgseqnum="2" `) + " -> " + line("server", hbTR, `resp_msgtype="0" `),
		line("client", qr, `msgtype="R" reqid="QR1" symbol="EURUSD" msgseqnum="3" `) + " -> " + line("server", quote, `resp_msgtype="S" `),
		line("client", md, `msgtype="V" reqid="MD1" msgseqnum="4" `) + " -> " + line("server", snap, `resp_msgtype="W" `),
		line("client", mdBad, `msgtype="V" reqid="MD2" msgseqnum="5" `) + " -> " + line("server", bmr, `resp_msgtype="j" text="Unsupported" `),
		line("client", sdr, `msgtype="c" reqid="SD1" msgseqnum="6" `) + " -> " + line("server", sd, `resp_msgtype="d" `),
		line("client", rfp, `msgtype="AN" reqid="P1" msgseqnum="7" `) + " -> " + line("server", rfpAck, `resp_msgtype="AO" `),
		line("client", omc, `msgtype="q" clordid="MC1" msgseqnum="8" `) + " -> " + line("server", omcR, `resp_msgtype="r" `),
		line("client", tr2, `msgtype="1" reqid="TR-8" msgseqnum="9" `) + " -> " + line("server", rej, `resp_msgtype="3" text="bad" `),
		line("client", rr, `msgtype="2" msgseqnum="10" `) + " -> " + line("server", sr, `resp_msgtype="4" `),
		line("client", rr2, `msgtype="2" msgseqnum="11" `) + " -> " + line("server", resent, `resp_msgtype="8" exec_type="0" ord_status="0" `),
		line("client", logoutC, `msgtype="5" msgseqnum="12" `) + " -> " + line("server", logoutS, `resp_msgtype="5" `),
	}, "\n") + "\n"
	segs := []pfxSeg{
		pfxC(logonC), pfxS(logonS), pfxS(hbPlain), pfxC(tr), pfxS(hbTR),
		pfxC(qr, md, mdBad), pfxS(quote, snap, bmr),
		pfxC(sdr, rfp, omc, tr2), pfxS(sd, rfpAck, omcR, rej),
		pfxC(rr), pfxS(sr), pfxC(rr2), pfxS(resent),
		pfxC(logoutC), pfxS(logoutS),
	}
	st := pfxRun(t, "fix", nil, segs, nil)
	if got := pfxSummary(st); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	pfxSplitSame(t, "fix", nil, segs)
}

// TestFIXDetectFraming checks content detection of other FIX framings and
// of a capture that starts mid session.
func TestFIXDetectFraming(t *testing.T) {
	for _, c := range []struct {
		b    string
		want bool
	}{
		{"8=O\x019=0075\x0135=G\x01\x00\x01", true}, // nDPI's capture: a vendor BeginString
		{"8=FIXCOMP\x019=70\x01x\x9c", true},
		{"8=FIX.4.2\x019=", false}, // no length yet
		{"8=\x019=12\x01", false},
		{"=0.1\x0110=123\x018=FIX.4.4\x019=5\x01", true}, // mid session: a message boundary
		{"\x0110=123\x018=FIX", true},
		{"\x0110=12\x018=FIX", false},
		{"\x0110=123\x018=FI", false},
		{"x\x0110=1234\x0110=123\x018=FIXT", true},
	} {
		if got := fixDetect(Server, []byte(c.b)); got != c.want {
			t.Errorf("detect %q: got %v, want %v", c.b, got, c.want)
		}
	}
}
