package analytics

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// Helpers shared by the PostgreSQL and FIX tests are prefixed pfx to keep
// clear of the other decoders' tests in this package.

// pfxSeg is one step of a conversation: a chunk of side s, or a gap of
// gap bytes.
type pfxSeg struct {
	s   Side
	b   []byte
	gap int
}

func pfxC(b ...[]byte) pfxSeg { return pfxSeg{s: Client, b: pfxCat(b...)} }
func pfxS(b ...[]byte) pfxSeg { return pfxSeg{s: Server, b: pfxCat(b...)} }

func pfxCat(b ...[]byte) []byte {
	var o []byte
	for _, x := range b {
		o = append(o, x...)
	}
	return o
}

// pfxRun feeds the conversation to a new parser of dec, each chunk cut by
// cut (nil: whole), closes it and checks the invariants.
func pfxRun(t testing.TB, dec string, cfg func(*Config), segs []pfxSeg, cut func([]byte) [][]byte) *testStream {
	t.Helper()
	d, err := Lookup(dec)
	if err != nil {
		t.Fatal(err)
	}
	st := newTestStream(t)
	if cfg != nil {
		cfg(&st.cfg)
	}
	p := d.New(&st.cfg)
	for _, sg := range segs {
		if sg.gap > 0 {
			st.FeedGap(p, sg.s, sg.gap)
			continue
		}
		if cut == nil {
			st.Feed(p, sg.s, sg.b)
			continue
		}
		for _, c := range cut(sg.b) {
			st.Feed(p, sg.s, c)
		}
	}
	p.Close(st)
	pfxInvariants(t, st)
	return st
}

// pfxInvariants checks what every parser must do, whatever the input:
// every message begun is ended or discarded by Close, messages given to
// Exchange are ended and given once, never also discarded.
func pfxInvariants(t testing.TB, st *testStream) {
	t.Helper()
	if n := len(st.open[0]) + len(st.open[1]); n != 0 {
		t.Fatalf("%d messages left open after Close", n)
	}
	seen := map[*Message]string{}
	note := func(m *Message, how string) {
		if m == nil {
			return
		}
		if prev, ok := seen[m]; ok {
			t.Fatalf("message reported twice: %s and %s", prev, how)
		}
		seen[m] = how
	}
	for i, x := range st.Exchanges {
		if x[0] == nil && x[1] == nil {
			t.Fatalf("exchange %d: nil, nil", i)
		}
		for _, m := range x {
			if m != nil && (!m.Ended || m.Bytes < 0) {
				t.Fatalf("exchange %d: message not ended or negative bytes %d", i, m.Bytes)
			}
		}
		if x[0] != nil && x[1] != nil && x[0].Side == x[1].Side {
			t.Fatalf("exchange %d: request and response on the same side", i)
		}
		note(x[0], fmt.Sprintf("exchange %d req", i))
		note(x[1], fmt.Sprintf("exchange %d resp", i))
	}
	for i, m := range st.Discarded {
		note(m, fmt.Sprintf("discard %d", i))
	}
}

// pfxSummary describes the exchanges: fields, byte counts and gap flags,
// everything that must not depend on how the bytes were cut into chunks.
func pfxSummary(st *testStream) string {
	var sb strings.Builder
	msg := func(m *Message) {
		if m == nil {
			sb.WriteString("nil")
			return
		}
		fmt.Fprintf(&sb, "%v %dB gap=%v {", m.Side, m.Bytes, m.Gap)
		for _, f := range m.Fields {
			fmt.Fprintf(&sb, "%s=%q ", f.Key, f.Value())
		}
		sb.WriteString("}")
	}
	for _, x := range st.Exchanges {
		msg(x[0])
		sb.WriteString(" -> ")
		msg(x[1])
		sb.WriteString("\n")
	}
	return sb.String()
}

// pfxCutters cut a chunk into 1-byte pieces, or random pieces.
func pfxOneByte(b []byte) [][]byte {
	o := make([][]byte, len(b))
	for i := range b {
		o[i] = b[i : i+1]
	}
	return o
}

func pfxRandomCut(seed uint64) func([]byte) [][]byte {
	r := rand.New(rand.NewPCG(seed, 42))
	return func(b []byte) [][]byte {
		var o [][]byte
		for len(b) > 0 {
			n := 1 + r.IntN(min(len(b), 40))
			o = append(o, b[:n])
			b = b[n:]
		}
		return o
	}
}

// pfxSplitSame checks that cutting every chunk at every byte, and at
// random places, gives the same exchanges as whole chunks.
func pfxSplitSame(t *testing.T, dec string, cfg func(*Config), segs []pfxSeg) string {
	t.Helper()
	want := pfxSummary(pfxRun(t, dec, cfg, segs, nil))
	if got := pfxSummary(pfxRun(t, dec, cfg, segs, pfxOneByte)); got != want {
		t.Fatalf("1-byte chunks:\n%s\nwhole chunks:\n%s", got, want)
	}
	for seed := range uint64(20) {
		if got := pfxSummary(pfxRun(t, dec, cfg, segs, pfxRandomCut(seed))); got != want {
			t.Fatalf("random chunks (seed %d):\n%s\nwhole chunks:\n%s", seed, got, want)
		}
	}
	return want
}

// pfxFuzzFeed feeds data as a fuzzer-chosen conversation: each step is a
// control byte (bit 0: side; bits 1-2 = 3: a gap of the next byte's value
// + 1 bytes; otherwise a chunk of the next byte's value + 1 bytes).
func pfxFuzzFeed(t *testing.T, dec string, data []byte) {
	d, err := Lookup(dec)
	if err != nil {
		t.Fatal(err)
	}
	st := newTestStream(t)
	st.cfg.MaxHeader = 1024
	st.cfg.MaxStatement = 16
	st.cfg.MaxPending = 4
	p := d.New(&st.cfg)
	for len(data) >= 2 {
		ctl, n := data[0], int(data[1])+1
		data = data[2:]
		s := Side(ctl & 1)
		if ctl>>1&3 == 3 {
			st.FeedGap(p, s, n)
			continue
		}
		n = min(n, len(data))
		st.Feed(p, s, data[:n])
		data = data[n:]
	}
	p.Close(st)
	pfxInvariants(t, st)
}

// pfxFuzzEncode turns a conversation into pfxFuzzFeed's input.
func pfxFuzzEncode(segs []pfxSeg) []byte {
	var o []byte
	for _, sg := range segs {
		if sg.gap > 0 {
			o = append(o, byte(sg.s)|6, byte(sg.gap-1))
			continue
		}
		for b := sg.b; len(b) > 0; {
			n := min(len(b), 256)
			o = append(o, byte(sg.s), byte(n-1))
			o = append(o, b[:n]...)
			b = b[n:]
		}
	}
	return o
}

// pfxStream is a Stream that does nothing, for benchmarks: it hands out
// messages from a ring so that the parser's own allocations show.
type pfxStream struct {
	cfg  Config
	ring [64]Message
	i    int
	n    int // exchanges
}

func (s *pfxStream) Begin(side Side, off int) *Message {
	m := &s.ring[s.i%len(s.ring)]
	s.i++
	*m = Message{Side: side, Fields: m.Fields[:0], Pkts: m.Pkts[:0]}
	return m
}
func (s *pfxStream) End(m *Message, off int)     { m.Ended = true }
func (s *pfxStream) Exchange(req, resp *Message) { s.n++ }
func (s *pfxStream) Discard(m *Message)          {}
func (s *pfxStream) TS() int64                   { return 0 }
func (s *pfxStream) Config() *Config             { return &s.cfg }

// PostgreSQL message builders.

func pgM(typ byte, body ...[]byte) []byte {
	b := pfxCat(body...)
	o := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(o[1:], uint32(4+len(b)))
	return append(o, b...)
}

func pgZ() []byte            { return pgM('Z', []byte("I")) }
func pgStr(s string) []byte  { return append([]byte(s), 0) }
func pgQ(sql string) []byte  { return pgM('Q', pgStr(sql)) }
func pgCC(tag string) []byte { return pgM('C', pgStr(tag)) }

func pgStartupM(params ...string) []byte {
	b := []byte{0, 0, 0, 0, 0, 3, 0, 0}
	for _, p := range params {
		b = append(b, pgStr(p)...)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func pgCode(code uint32) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, 8)
	binary.BigEndian.PutUint32(b[4:], code)
	return b
}

func pgRowDesc() []byte {
	return pgM('T', []byte{0, 1}, pgStr("a"), make([]byte, 18))
}

func pgRow(v string) []byte {
	b := []byte{0, 1, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[2:], uint32(len(v)))
	return pgM('D', b, []byte(v))
}

func pgErr(sev, code, msg string) []byte {
	return pgM('E', []byte{'S'}, pgStr(sev), []byte{'V'}, pgStr(sev), []byte{'C'}, pgStr(code), []byte{'M'}, pgStr(msg), []byte{0})
}

func pgParse(sql string) []byte {
	return pgM('P', pgStr(""), pgStr(sql), []byte{0, 0})
}

func pgBind() []byte     { return pgM('B', pgStr(""), pgStr(""), make([]byte, 6)) }
func pgDescribe() []byte { return pgM('D', []byte{'P'}, pgStr("")) }
func pgExecute() []byte  { return pgM('E', pgStr(""), make([]byte, 4)) }

var (
	pgSync   = pgM('S')
	pgFlush  = pgM('H')
	pgTerm   = pgM('X')
	pgAuthOK = pgM('R', []byte{0, 0, 0, 0})
	pgParam  = pgM('S', pgStr("server_version"), pgStr("16.1"))
	pgKey    = pgM('K', make([]byte, 8))
	pgParseC = pgM('1')
	pgBindC  = pgM('2')
)

func pgStartupSegs() []pfxSeg {
	return []pfxSeg{
		pfxC(pgStartupM("user", "alice", "database", "shop", "application_name", "psql")),
		pfxS(pgAuthOK, pgParam, pgKey, pgZ()),
	}
}

func pgLen(b ...[]byte) string { return fmt.Sprint(len(pfxCat(b...))) }

func TestPostgresDetect(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want bool
	}{
		{pgStartupM("user", "u"), true},
		{pgCode(pgSSLCode), true},
		{pgCode(pgGSSCode), true},
		{pgCode(pgCancelCode), false},
		{pgQ("select 1"), false},
		{[]byte("GET / HTTP/1.1\r\n"), false},
		{[]byte{0, 0, 0, 8, 0, 3}, false},
		{nil, false},
	} {
		if got := pgDetect(Client, c.b); got != c.want {
			t.Errorf("detect %q: got %v, want %v", c.b, got, c.want)
		}
	}
}

func TestPostgres(t *testing.T) {
	long := strings.Repeat("x", 300) // beyond MaxStatement 256
	// 255 ASCII bytes, then a 2-byte rune across the cut at 256.
	runeCut := "select '" + strings.Repeat("a", 247) + "é'"
	big := strings.Repeat("r", 5000) // a DataRow over many chunks
	cases := []struct {
		name string
		cfg  func(*Config)
		segs []pfxSeg
		want string // pfxSummary
		disc int    // messages discarded, -1: don't check
	}{
		{
			name: "startup, query, error, terminate",
			segs: append(pgStartupSegs(),
				pfxC(pgQ("select a from t")),
				pfxS(pgRowDesc(), pgRow("1"), pgRow("2"), pgRow("3"), pgCC("SELECT 3"), pgZ()),
				pfxC(pgQ("select * from nope")),
				pfxS(pgErr("ERROR", "42P01", `relation "nope" does not exist`), pgZ()),
				pfxC(pgTerm),
			),
			want: `client 56B gap=false {command="startup" user="alice" database="shop" } -> server ` + pgLen(pgAuthOK, pgParam, pgKey, pgZ()) + `B gap=false {}
client ` + pgLen(pgQ("select a from t")) + `B gap=false {command="query" statement="select a from t" } -> server ` + pgLen(pgRowDesc(), pgRow("1"), pgRow("2"), pgRow("3"), pgCC("SELECT 3"), pgZ()) + `B gap=false {tag="SELECT 3" rows="3" }
client 24B gap=false {command="query" statement="select * from nope" } -> server ` + pgLen(pgErr("ERROR", "42P01", `relation "nope" does not exist`), pgZ()) + `B gap=false {rows="0" error_code="42P01" error="ERROR" }
`,
			disc: 0,
		},
		{
			name: "SSLRequest refused, then startup",
			segs: append([]pfxSeg{pfxC(pgCode(pgSSLCode)), pfxS([]byte("N"))},
				append(pgStartupSegs(), pfxC(pgQ("begin")), pfxS(pgCC("BEGIN"), pgM('Z', []byte("T"))))...),
			want: `client 56B gap=false {command="startup" user="alice" database="shop" } -> server 53B gap=false {}
client 11B gap=false {command="query" statement="begin" } -> server 17B gap=false {tag="BEGIN" rows="0" }
`,
			disc: 1,
		},
		{
			name: "SSLRequest accepted: TLS follows, nothing decoded",
			segs: []pfxSeg{
				pfxC(pgCode(pgSSLCode)), pfxS([]byte("S")),
				pfxC([]byte{0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5}), pfxS([]byte{0x16, 3, 3, 0, 1, 9}),
			},
			disc: 1,
		},
		{
			name: "startup refused",
			segs: []pfxSeg{
				pfxC(pgStartupM("user", "bob")),
				pfxS(pgM('R', []byte{0, 0, 0, 5, 1, 2, 3, 4})),
				pfxC(pgM('p', pgStr("md5abc"))),
				pfxS(pgErr("FATAL", "28P01", "password authentication failed")),
			},
			want: `client 18B gap=false {command="startup" user="bob" } -> server ` + pgLen(pgM('R', []byte{0, 0, 0, 5, 1, 2, 3, 4}), pgErr("FATAL", "28P01", "password authentication failed")) + `B gap=false {error_code="28P01" error="FATAL" }
`,
		},
		{
			name: "extended query",
			segs: []pfxSeg{
				pfxC(pgParse("select $1::int"), pgBind(), pgDescribe(), pgExecute(), pgSync),
				pfxS(pgParseC, pgBindC, pgRowDesc(), pgRow("7"), pgCC("SELECT 1"), pgZ()),
			},
			want: `client ` + pgLen(pgParse("select $1::int"), pgBind(), pgDescribe(), pgExecute(), pgSync) + `B gap=false {command="extended" statement="select $1::int" } -> server ` + pgLen(pgParseC, pgBindC, pgRowDesc(), pgRow("7"), pgCC("SELECT 1"), pgZ()) + `B gap=false {tag="SELECT 1" rows="1" }
`,
		},
		{
			name: "pipelined simple and extended",
			segs: []pfxSeg{
				pfxC(pgQ("select 1"), pgQ("insert into t values (1)"), pgParse("update t set a=2"), pgBind(), pgExecute(), pgSync),
				pfxS(pgRowDesc(), pgRow("1"), pgCC("SELECT 1"), pgZ(), pgCC("INSERT 0 1"), pgZ()),
				pfxS(pgParseC, pgBindC, pgCC("UPDATE 4"), pgZ()),
			},
			want: `client 14B gap=false {command="query" statement="select 1" } -> server ` + pgLen(pgRowDesc(), pgRow("1"), pgCC("SELECT 1"), pgZ()) + `B gap=false {tag="SELECT 1" rows="1" }
client 30B gap=false {command="query" statement="insert into t values (1)" } -> server 22B gap=false {tag="INSERT 0 1" rows="0" }
client ` + pgLen(pgParse("update t set a=2"), pgBind(), pgExecute(), pgSync) + `B gap=false {command="extended" statement="update t set a=2" } -> server 30B gap=false {tag="UPDATE 4" rows="0" }
`,
		},
		{
			name: "flush answered, then execute and sync",
			segs: []pfxSeg{
				pfxC(pgParse("select 1"), pgBind(), pgDescribe(), pgFlush),
				pfxS(pgParseC, pgBindC, pgRowDesc()),
				pfxC(pgExecute(), pgSync),
				pfxS(pgRow("1"), pgCC("SELECT 1"), pgZ()),
			},
			want: `client ` + pgLen(pgParse("select 1"), pgBind(), pgDescribe(), pgFlush) + `B gap=false {command="extended" statement="select 1" } -> server ` + pgLen(pgParseC, pgBindC, pgRowDesc()) + `B gap=false {rows="0" }
client ` + pgLen(pgExecute(), pgSync) + `B gap=false {command="extended" } -> server ` + pgLen(pgRow("1"), pgCC("SELECT 1"), pgZ()) + `B gap=false {tag="SELECT 1" rows="1" }
`,
		},
		{
			name: "flush answered mid-message when the client goes on",
			segs: []pfxSeg{
				pfxC(pgParse("select 1"), pgFlush),
				pfxS(pgParseC, pgRowDesc()[:3]),
				pfxC(pgBind(), pgExecute(), pgSync),
				pfxS(pgRowDesc()[3:], pgBindC, pgRow("1"), pgCC("SELECT 1"), pgZ()),
			},
			want: `client 22B gap=false {command="extended" statement="select 1" } -> server ` + pgLen(pgParseC, pgRowDesc()) + `B gap=false {rows="0" }
client ` + pgLen(pgBind(), pgExecute(), pgSync) + `B gap=false {command="extended" } -> server ` + pgLen(pgBindC, pgRow("1"), pgCC("SELECT 1"), pgZ()) + `B gap=false {tag="SELECT 1" rows="1" }
`,
		},
		{
			name: "flush not yet answered: one batch",
			segs: []pfxSeg{
				pfxC(pgParse("select 1"), pgFlush),
				pfxC(pgBind(), pgExecute(), pgSync),
				pfxS(pgParseC, pgBindC, pgRow("1"), pgCC("SELECT 1"), pgZ()),
			},
			want: `client ` + pgLen(pgParse("select 1"), pgFlush, pgBind(), pgExecute(), pgSync) + `B gap=false {command="extended" statement="select 1" } -> server ` + pgLen(pgParseC, pgBindC, pgRow("1"), pgCC("SELECT 1"), pgZ()) + `B gap=false {tag="SELECT 1" rows="1" }
`,
		},
		{
			name: "flush answered, connection closes",
			segs: []pfxSeg{
				pfxC(pgParse("select 1"), pgFlush),
				pfxS(pgParseC),
			},
			want: `client 22B gap=false {command="extended" statement="select 1" } -> server 5B gap=false {rows="0" }
`,
		},
		{
			name: "copy in and copy out",
			segs: []pfxSeg{
				pfxC(pgQ("copy t from stdin")),
				pfxS(pgM('G', []byte{0, 0, 1, 0, 0})),
				pfxC(pgM('d', []byte("1\n")), pgM('d', []byte("Q\n")), pgM('c')),
				pfxS(pgCC("COPY 2"), pgZ()),
				pfxC(pgQ("copy t to stdout")),
				pfxS(pgM('H', []byte{0, 0, 1, 0, 0}), pgM('d', []byte("1\n")), pgM('d', []byte("Z\n")), pgM('c'), pgCC("COPY 2"), pgZ()),
			},
			want: `client 23B gap=false {command="query" statement="copy t from stdin" } -> server ` + pgLen(pgM('G', []byte{0, 0, 1, 0, 0}), pgCC("COPY 2"), pgZ()) + `B gap=false {tag="COPY 2" rows="0" }
client 22B gap=false {command="query" statement="copy t to stdout" } -> server ` + pgLen(pgM('H', []byte{0, 0, 1, 0, 0}), pgM('d', []byte("1\n")), pgM('d', []byte("Z\n")), pgM('c'), pgCC("COPY 2"), pgZ()) + `B gap=false {tag="COPY 2" rows="0" }
`,
		},
		{
			name: "copy fail",
			segs: []pfxSeg{
				pfxC(pgQ("copy t from stdin")),
				pfxS(pgM('G', []byte{0, 0, 0})),
				pfxC(pgM('d', []byte("Q\n")), pgM('f', pgStr("bye"))),
				pfxS(pgErr("ERROR", "57014", "COPY from stdin failed: bye"), pgZ()),
			},
			want: `client 23B gap=false {command="query" statement="copy t from stdin" } -> server ` + pgLen(pgM('G', []byte{0, 0, 0}), pgErr("ERROR", "57014", "COPY from stdin failed: bye"), pgZ()) + `B gap=false {rows="0" error_code="57014" error="ERROR" }
`,
		},
		{
			name: "notification and parameter status outside an exchange",
			segs: []pfxSeg{
				pfxS(pgM('A', []byte{0, 0, 0, 1}, pgStr("chan"), pgStr("x")), pgParam, pgM('N', []byte{'S'}, pgStr("NOTICE"), []byte{0})),
				pfxC(pgQ("listen chan")),
				pfxS(pgCC("LISTEN"), pgZ()),
				pfxS(pgM('A', []byte{0, 0, 0, 1}, pgStr("chan"), pgStr("y"))),
			},
			want: `client 17B gap=false {command="query" statement="listen chan" } -> server 18B gap=false {tag="LISTEN" rows="0" }
`,
		},
		{
			name: "statement cut to MaxStatement",
			segs: []pfxSeg{pfxC(pgQ(long)), pfxS(pgCC("SELECT 0"), pgZ())},
			want: `client 306B gap=false {command="query" statement="` + long[:256] + `" } -> server 20B gap=false {tag="SELECT 0" rows="0" }
`,
		},
		{
			name: "statement cut at a rune boundary",
			segs: []pfxSeg{pfxC(pgQ(runeCut)), pfxS(pgCC("SELECT 0"), pgZ())},
			want: `client 264B gap=false {command="query" statement="` + runeCut[:255] + `" } -> server 20B gap=false {tag="SELECT 0" rows="0" }
`,
		},
		{
			name: "large row over many chunks",
			segs: []pfxSeg{pfxC(pgQ("select big")), pfxS(pgRowDesc(), pgRow(big), pgRow(big), pgCC("SELECT 2"), pgZ())},
			want: `client 16B gap=false {command="query" statement="select big" } -> server ` + pgLen(pgRowDesc(), pgRow(big), pgRow(big), pgCC("SELECT 2"), pgZ()) + `B gap=false {tag="SELECT 2" rows="2" }
`,
		},
		{
			name: "unanswered at close",
			segs: []pfxSeg{pfxC(pgQ("select 1"), pgQ("select 2"))},
			want: `client 14B gap=false {command="query" statement="select 1" } -> nil
client 14B gap=false {command="query" statement="select 2" } -> nil
`,
		},
		{
			name: "answer cut by close",
			segs: []pfxSeg{pfxC(pgQ("select 1")), pfxS(pgRowDesc(), pgRow("1"))},
			want: `client 14B gap=false {command="query" statement="select 1" } -> nil
`,
			disc: 1,
		},
		{
			name: "terminate mid-batch: no record for X",
			segs: []pfxSeg{pfxC(pgParse("select 1"), pgTerm)},
			want: `client 17B gap=false {command="extended" statement="select 1" } -> nil
`,
		},
		{
			name: "bad length stops decoding",
			segs: []pfxSeg{pfxC(pgQ("select 1")), pfxS([]byte{'Z', 0, 0, 0, 2}), pfxS(pgZ()), pfxC(pgQ("select 2"))},
			disc: 2,
		},
		{
			name: "unknown type stops decoding",
			segs: []pfxSeg{pfxC([]byte("GET / HTTP/1.1\r\n\r\n")), pfxS(pgZ())},
			disc: 0,
		},
		{
			name: "midstream: answers without requests are skipped",
			segs: []pfxSeg{pfxS(pgRow("1"), pgCC("SELECT 1"), pgZ()), pfxC(pgQ("select 2")), pfxS(pgCC("SELECT 0"), pgZ())},
			want: `client 14B gap=false {command="query" statement="select 2" } -> server 20B gap=false {tag="SELECT 0" rows="0" }
`,
		},
		{
			name: "max pending evicts the oldest",
			cfg:  func(c *Config) { c.MaxPending = 2 },
			segs: []pfxSeg{pfxC(pgQ("q1"), pgQ("q2"), pgQ("q3")), pfxS(pgCC("A"), pgZ(), pgCC("B"), pgZ())},
			want: `client 8B gap=false {command="query" statement="q1" } -> nil
client 8B gap=false {command="query" statement="q2" } -> server 13B gap=false {tag="A" rows="0" }
client 8B gap=false {command="query" statement="q3" } -> server 13B gap=false {tag="B" rows="0" }
`,
		},
		{
			name: "gap inside a row is counted down",
			segs: []pfxSeg{
				pfxC(pgQ("select big")),
				pfxS(pgRowDesc(), pgRow(big)[:100]),
				{s: Server, gap: 4000},
				pfxS(pgRow(big)[4100:], pgCC("SELECT 1"), pgZ()),
				pfxC(pgQ("select 2")),
				pfxS(pgCC("SELECT 0"), pgZ()),
			},
			want: `client 16B gap=false {command="query" statement="select big" } -> server ` + pgLen(pgRowDesc(), pgRow(big), pgCC("SELECT 1"), pgZ()) + `B gap=true {tag="SELECT 1" rows="1" }
client 14B gap=false {command="query" statement="select 2" } -> server 20B gap=false {tag="SELECT 0" rows="0" }
`,
		},
		{
			name: "gap ending exactly at a message end",
			segs: []pfxSeg{
				pfxC(pgQ("select big")),
				pfxS(pgRowDesc(), pgRow(big)[:100]),
				{s: Server, gap: len(pgRow(big)) - 100},
				pfxS(pgCC("SELECT 1"), pgZ()),
			},
			want: `client 16B gap=false {command="query" statement="select big" } -> server ` + pgLen(pgRowDesc(), pgRow(big), pgCC("SELECT 1"), pgZ()) + `B gap=true {tag="SELECT 1" rows="1" }
`,
		},
		{
			name: "gap across a boundary stops decoding",
			segs: []pfxSeg{
				pfxC(pgQ("select 1")),
				pfxS(pgRowDesc()),
				{s: Server, gap: 30},
				pfxS(pgCC("SELECT 1"), pgZ()),
				pfxC(pgQ("select 2")),
				pfxS(pgCC("SELECT 0"), pgZ()),
			},
			disc: 2,
		},
		{
			name: "gap inside the query text keeps a prefix",
			segs: []pfxSeg{
				pfxC(pgQ("select 1234567890")[:12]),
				{s: Client, gap: 5},
				pfxC(pgQ("select 1234567890")[17:]),
				pfxS(pgCC("SELECT 1"), pgZ()),
			},
			want: `client 23B gap=true {command="query" statement="select " } -> server 20B gap=false {tag="SELECT 1" rows="0" }
`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := pfxRun(t, "postgres", c.cfg, c.segs, nil)
			if got := pfxSummary(st); got != c.want {
				t.Fatalf("got\n%s\nwant\n%s", got, c.want)
			}
			if c.disc >= 0 && len(st.Discarded) != c.disc {
				t.Errorf("got %d discarded, want %d", len(st.Discarded), c.disc)
			}
			pfxSplitSame(t, "postgres", c.cfg, c.segs)
		})
	}
}

// TestPostgresPkts checks the timing and packet refs of an exchange fed in
// several packets.
func TestPostgresPkts(t *testing.T) {
	q := pgQ("select a from t")
	r := pfxCat(pgRowDesc(), pgRow("1"), pgCC("SELECT 1"), pgZ())
	st := pfxRun(t, "postgres", nil, []pfxSeg{
		pfxC(q[:3]), pfxC(q[3:]), // packets 1, 2
		pfxS(r[:10]), pfxS(r[10:20]), pfxS(r[20:]), // packets 3, 4, 5
	}, nil)
	if len(st.Exchanges) != 1 {
		t.Fatalf("got %d exchanges, want 1", len(st.Exchanges))
	}
	req, resp := st.Exchanges[0][0], st.Exchanges[0][1]
	for _, c := range []struct {
		m           *Message
		first, last int64
		bytes       int
		pkts        string
	}{
		{req, 1000, 2000, len(q), "[1 2]"},
		{resp, 3000, 5000, len(r), "[3 4 5]"},
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

func pgFuzzSeeds() [][]pfxSeg {
	return [][]pfxSeg{
		append(pgStartupSegs(),
			pfxC(pgQ("select a from t")),
			pfxS(pgRowDesc(), pgRow("1"), pgCC("SELECT 1"), pgZ()),
			pfxC(pgParse("select 1"), pgBind(), pgFlush),
			pfxS(pgParseC, pgBindC),
			pfxC(pgExecute(), pgSync),
			pfxS(pgRow("1"), pgCC("SELECT 1"), pgZ()),
			pfxC(pgTerm)),
		{pfxC(pgCode(pgSSLCode)), pfxS([]byte("N")), pfxC(pgStartupM("user", "u")), pfxS(pgErr("FATAL", "28P01", "no"))},
		{pfxC(pgQ("copy t from stdin")), pfxS(pgM('G', []byte{0, 0, 0})), pfxC(pgM('d', []byte("1\n")), pgM('c')),
			{s: Server, gap: 3}, pfxS(pgCC("COPY 1"), pgZ())},
		{pfxC(pgQ("q1"), pgQ("q2"), pgQ("q3"), pgQ("q4"), pgQ("q5")), pfxS(pgErr("ERROR", "42P01", "x"), pgZ(), pgCC("A"), pgZ())},
	}
}

func FuzzPostgres(f *testing.F) {
	for _, s := range pgFuzzSeeds() {
		f.Add(pfxFuzzEncode(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pfxFuzzFeed(t, "postgres", data)
	})
}

// BenchmarkPostgresParser feeds a session of simple and extended queries
// with 20-row answers, cut into 1448-byte chunks (full-size TCP segments)
// per side, through a Stream that does nothing.
func BenchmarkPostgresParser(b *testing.B) {
	var req, resp []byte
	for i := range 10 {
		req = append(req, pgQ(fmt.Sprintf("select id, name, price from products where category = %d order by id limit 20", i))...)
		req = append(req, pfxCat(pgParse("select * from orders where customer_id = $1"), pgBind(), pgDescribe(), pgExecute(), pgSync)...)
		resp = append(resp, pgRowDesc()...)
		for range 20 {
			resp = append(resp, pgRow("00012345|Widget, large, blue|19.99")...)
		}
		resp = append(resp, pgCC("SELECT 20")...)
		resp = append(resp, pgZ()...)
		resp = append(resp, pgParseC...)
		resp = append(resp, pgBindC...)
		resp = append(resp, pgRowDesc()...)
		for range 20 {
			resp = append(resp, pgRow("2024-05-01|shipped|3")...)
		}
		resp = append(resp, pgCC("SELECT 20")...)
		resp = append(resp, pgZ()...)
	}
	var chunks []pfxSeg
	for _, sg := range []pfxSeg{{s: Client, b: req}, {s: Server, b: resp}} {
		for x := sg.b; len(x) > 0; {
			n := min(len(x), 1448)
			chunks = append(chunks, pfxSeg{s: sg.s, b: x[:n]})
			x = x[n:]
		}
	}
	st := &pfxStream{cfg: DefaultConfig()}
	b.SetBytes(int64(len(req) + len(resp)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p := newPGParser(&st.cfg)
		for _, c := range chunks {
			p.Data(c.s, c.b, st)
		}
		p.Close(st)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(chunks)), "ns/chunk")
	if st.n != 20*b.N {
		b.Fatalf("got %d exchanges, want %d", st.n, 20*b.N)
	}
}
