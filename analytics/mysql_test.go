package analytics

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// mysqlPkt frames payload as one packet (or several when it reaches
// 0xFFFFFF bytes), sequence ids from seq.
func mysqlPkt(seq byte, payload []byte) []byte {
	var b []byte
	for {
		n := min(len(payload), mysqlMaxPacket)
		b = append(b, byte(n), byte(n>>8), byte(n>>16), seq)
		b = append(b, payload[:n]...)
		payload = payload[n:]
		seq++
		if n < mysqlMaxPacket {
			return b
		}
	}
}

func mysqlGreeting(caps uint32) []byte {
	b := []byte{0x0a}
	b = append(b, "8.0.36\x00"...)
	b = append(b, 1, 0, 0, 0)    // connection id
	b = append(b, "abcdefgh"...) // auth data 1
	b = append(b, 0)             // filler
	b = binary.LittleEndian.AppendUint16(b, uint16(caps))
	b = append(b, 0xff, 2, 0) // charset, status
	b = binary.LittleEndian.AppendUint16(b, uint16(caps>>16))
	b = append(b, 21)
	b = append(b, make([]byte, 10)...)
	b = append(b, "ijklmnopqrst\x00"...)
	b = append(b, "caching_sha2_password\x00"...)
	return mysqlPkt(0, b)
}

func mysqlLogin(caps uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, caps)
	b = append(b, 0, 0, 0, 1, 0xff)
	b = append(b, make([]byte, 23)...)
	b = append(b, "root\x00"...)
	b = append(b, 20)
	b = append(b, "01234567890123456789"...)
	b = append(b, "caching_sha2_password\x00"...)
	return mysqlPkt(1, b)
}

func mysqlOK(seq byte, status uint16) []byte {
	return mysqlPkt(seq, []byte{0, 0, 0, byte(status), byte(status >> 8), 0, 0})
}

func mysqlEOF(seq byte, status uint16) []byte {
	return mysqlPkt(seq, []byte{0xfe, 0, 0, byte(status), byte(status >> 8)})
}

func mysqlErr(seq byte, code uint16, msg string) []byte {
	b := []byte{0xff, byte(code), byte(code >> 8)}
	b = append(b, "#42S02"...)
	return mysqlPkt(seq, append(b, msg...))
}

func mysqlCmd(c byte, arg string) []byte { return mysqlPkt(0, append([]byte{c}, arg...)) }

// mysqlResultSet builds a text result set with one column per name and
// the rows given (each row's values), EOF-terminated or, with deprecate,
// OK-terminated; last is the final status.
func mysqlResultSet(cols []string, rows [][]string, deprecate bool, last uint16) []byte {
	seq := byte(1)
	b := mysqlPkt(seq, []byte{byte(len(cols))})
	for _, c := range cols {
		seq++
		def := []byte{3, 'd', 'e', 'f', 0, 0, 0, byte(len(c))}
		def = append(def, c...)
		def = append(def, 0, 0x0c, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
		b = append(b, mysqlPkt(seq, def)...)
	}
	if !deprecate {
		seq++
		b = append(b, mysqlEOF(seq, 2)...)
	}
	for _, r := range rows {
		seq++
		var row []byte
		for _, v := range r {
			row = append(row, byte(len(v)))
			row = append(row, v...)
		}
		b = append(b, mysqlPkt(seq, row)...)
	}
	seq++
	if deprecate {
		return append(b, mysqlPkt(seq, []byte{0xfe, 0, 0, byte(last), byte(last >> 8), 0, 0})...)
	}
	return append(b, mysqlEOF(seq, last)...)
}

const mysqlTestCaps = mysqlClientProtocol41 | 0x8000 | 0x80000 // + secure connection, plugin auth

func newMySQLTest() Parser { return newMySQLParser(&Config{MaxPending: 8, MaxStatement: 20}) }

func mysqlCheck(t *testing.T, st *testStream, want string) {
	t.Helper()
	if got := xchgSummary(st); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMySQLDetect(t *testing.T) {
	g := mysqlGreeting(mysqlTestCaps)
	if !mysqlDetect(Server, g) {
		t.Errorf("greeting not detected")
	}
	if mysqlDetect(Client, g) {
		t.Errorf("greeting from the client detected")
	}
	bad := bytes.Clone(g)
	bad[7] = 1 // a control character in the version
	if mysqlDetect(Server, bad) {
		t.Errorf("version with a control character detected")
	}
	if mysqlDetect(Server, g[:8]) {
		t.Errorf("version without its NUL detected")
	}
	if mysqlDetect(Server, []byte("HTTP/1.1 200 OK\r\n")) {
		t.Errorf("HTTP detected")
	}
}

func TestMySQLSession(t *testing.T) {
	steps := []xchgStep{
		{Server, mysqlGreeting(mysqlTestCaps)},
		{Client, mysqlLogin(mysqlTestCaps)},
		{Server, mysqlPkt(2, append([]byte{0xfe}, "mysql_native_password\x00abcdefghijklmnopqrst\x00"...))}, // auth switch
		{Client, mysqlPkt(3, []byte("01234567890123456789"))},
		{Server, mysqlOK(4, 2)},
		{Client, mysqlCmd(0x03, "select @@version_comment limit 1")},
		{Server, mysqlResultSet([]string{"@@version_comment"}, [][]string{{"MySQL Community Server - GPL"}}, false, 2)},
		{Client, mysqlCmd(0x03, "SELECT id, name FROM t")},
		{Server, mysqlResultSet([]string{"id", "name"}, [][]string{{"1", "a"}, {"2", "b"}, {"3", "c"}}, false, 2)},
		{Client, mysqlCmd(0x02, "test")},
		{Server, mysqlOK(1, 2)},
		{Client, mysqlCmd(0x03, "select * from nope")},
		{Server, mysqlErr(1, 1146, "Table 'test.nope' doesn't exist")},
		{Client, mysqlCmd(0x03, "CALL p()")}, // two result sets and an OK
		{Server, mysqlResultSet([]string{"a"}, [][]string{{"1"}}, false, 2|mysqlStatusMoreResults)},
		{Server, mysqlResultSet([]string{"b"}, [][]string{{"2"}, {"3"}}, false, 2|mysqlStatusMoreResults)},
		{Server, mysqlOK(5, 2)},
		{Client, mysqlCmd(0x16, "SELECT ? + ?")},
		{Server, append(append(append(append(mysqlPkt(1, []byte{0, 1, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0}),
			mysqlPkt(2, []byte{3, 'd', 'e', 'f'})...), mysqlPkt(3, []byte{3, 'd', 'e', 'f'})...), mysqlEOF(4, 2)...),
			append(mysqlPkt(5, []byte{3, 'd', 'e', 'f'}), mysqlEOF(6, 2)...)...)},
		{Client, mysqlCmd(0x17, "\x01\x00\x00\x00\x00\x01\x00\x00\x00")},
		{Server, mysqlResultSet([]string{"?"}, [][]string{{"3"}}, false, 2)},
		{Client, mysqlCmd(0x19, "\x01\x00\x00\x00")}, // no response
		{Client, mysqlCmd(0x0e, "")},
		{Server, mysqlOK(1, 2)},
		{Client, mysqlCmd(0x04, "t\x00")},
		{Server, append(mysqlPkt(1, []byte{3, 'd', 'e', 'f'}), mysqlEOF(2, 2)...)},
		{Client, mysqlCmd(0x09, "")},
		{Server, mysqlPkt(1, []byte("Uptime: 5  Threads: 1"))},
		{Client, mysqlCmd(0x01, "")}, // QUIT: no response
	}
	st := xchgSplitSame(t, newMySQLTest, steps)
	mysqlCheck(t, st, ""+
		"[client/84 command=login] -> [server/11 result=ok]\n"+
		"[client/37 command=COM_QUERY statement=select @@version_com] -> [server/98 result=resultset rows=1]\n"+
		"[client/27 command=COM_QUERY statement=SELECT id, name FROM] -> [server/103 result=resultset rows=3]\n"+
		"[client/9 command=COM_INIT_DB] -> [server/11 result=ok]\n"+
		"[client/23 command=COM_QUERY statement=select * from nope] -> [server/44 result=err error_code=1146]\n"+
		"[client/13 command=COM_QUERY statement=CALL p()] -> [server/127 result=resultset rows=3]\n"+
		"[client/17 command=COM_STMT_PREPARE statement=SELECT ? + ?] -> [server/58 result=ok]\n"+
		"[client/14 command=COM_STMT_EXECUTE] -> [server/55 result=resultset rows=1]\n"+
		"[client/9 command=COM_STMT_CLOSE] -> [-]\n"+
		"[client/5 command=COM_PING] -> [server/11 result=ok]\n"+
		"[client/7 command=COM_FIELD_LIST] -> [server/17 result=eof]\n"+
		"[client/5 command=COM_STATISTICS] -> [server/25 result=ok]\n"+
		"[client/5 command=COM_QUIT] -> [-]\n"+
		"discarded 3\n")
	if m := st.Exchanges[0][1]; len(m.Pkts) != 1 || m.Pkts[0].Ord != 5 {
		t.Errorf("login OK packets: got %v, want chunk 5 (after the auth switch)", m.Pkts)
	}
}

func TestMySQLDeprecateEOF(t *testing.T) {
	caps := uint32(mysqlTestCaps | mysqlClientDeprecateEOF)
	steps := []xchgStep{
		{Server, mysqlGreeting(caps)},
		{Client, mysqlLogin(caps)},
		{Server, mysqlOK(2, 2)},
		{Client, mysqlCmd(0x03, "select 1 where 0")},
		{Server, mysqlResultSet([]string{"1"}, nil, true, 2)},
		{Client, mysqlCmd(0x03, "select x from t")},
		{Server, mysqlResultSet([]string{"x"}, [][]string{{"1"}, {"2"}}, true, 2)},
	}
	st := xchgSplitSame(t, newMySQLTest, steps)
	mysqlCheck(t, st, ""+
		"[client/84 command=login] -> [server/11 result=ok]\n"+
		"[client/21 command=COM_QUERY statement=select 1 where 0] -> [server/42 result=resultset rows=0]\n"+
		"[client/20 command=COM_QUERY statement=select x from t] -> [server/54 result=resultset rows=2]\n"+
		"discarded 1\n")
}

func TestMySQLBigPacket(t *testing.T) {
	// A statement of 16 MiB + 10 bytes: two packets, one logical packet.
	stmt := "INSERT INTO t VALUES ('" + strings.Repeat("x", mysqlMaxPacket) + "')"
	q := mysqlCmd(0x03, stmt)
	if len(q) != 4+mysqlMaxPacket+4+len(stmt)+1-mysqlMaxPacket {
		t.Fatalf("framing: %d bytes", len(q))
	}
	st := newTestStream(t)
	p := newMySQLTest()
	st.Feed(p, Client, q[:1<<20]) // no greeting seen: picked up mid connection
	for i := 1 << 20; i < len(q); i += 1 << 20 {
		st.Feed(p, Client, q[i:min(i+1<<20, len(q))])
	}
	st.Feed(p, Server, mysqlPkt(3, []byte{0, 1, 0, 2, 0, 0, 0}))
	p.Close(st)
	xchgCheck(t, st)
	mysqlCheck(t, st, "[client/16777249 command=COM_QUERY statement=INSERT INTO t VALUES] -> [server/11 result=ok]\ndiscarded 0\n")
}

func TestMySQLStops(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []xchgStep
		want  string
	}{
		{"tls", []xchgStep{
			{Server, mysqlGreeting(mysqlTestCaps | mysqlClientSSL)},
			{Client, mysqlPkt(1, append(binary.LittleEndian.AppendUint32(nil, mysqlTestCaps|mysqlClientSSL), make([]byte, 28)...))},
			{Server, []byte("\x16\x03\x03\x00\x10garbagegarbage")},
			{Client, mysqlCmd(0x03, "select 1")},
		}, "discarded 2\n"},
		{"compression", []xchgStep{
			{Server, mysqlGreeting(mysqlTestCaps | mysqlClientCompress)},
			{Client, mysqlLogin(mysqlTestCaps | mysqlClientCompress)},
			{Server, mysqlOK(2, 2)},
			{Client, mysqlCmd(0x03, "select 1")},
		}, "[client/84 command=login] -> [server/11 result=ok]\ndiscarded 1\n"},
		{"login refused", []xchgStep{
			{Server, mysqlGreeting(mysqlTestCaps)},
			{Client, mysqlLogin(mysqlTestCaps)},
			{Server, mysqlErr(2, 1045, "Access denied")},
			{Client, mysqlCmd(0x03, "select 1")},
		}, "[client/84 command=login] -> [server/26 result=err error_code=1045]\ndiscarded 1\n"},
		{"host refused", []xchgStep{
			{Server, mysqlErr(0, 1130, "Host is not allowed")},
		}, "[-] -> [server/32 command=login result=err error_code=1130]\ndiscarded 0\n"},
		{"local infile", []xchgStep{
			{Server, mysqlGreeting(mysqlTestCaps)},
			{Client, mysqlLogin(mysqlTestCaps)},
			{Server, mysqlOK(2, 2)},
			{Client, mysqlCmd(0x03, "LOAD DATA LOCAL INFILE 'f' INTO TABLE t")},
			{Server, mysqlPkt(1, []byte("\xfbf"))},
			{Client, mysqlPkt(2, []byte("1,2\n"))},
			{Server, mysqlOK(3, 2)},
		}, "[client/84 command=login] -> [server/11 result=ok]\n" +
			"[client/44 command=COM_QUERY statement=LOAD DATA LOCAL INFI] -> [server/6 result=local_infile]\n" +
			"discarded 1\n"},
		{"not mysql", []xchgStep{
			{Client, []byte("GET / HTTP/1.1\r\n\r\n")},
			{Server, []byte("HTTP/1.1 200 OK\r\n\r\n")},
		}, "discarded 2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := xchgSplitSame(t, newMySQLTest, tc.steps)
			mysqlCheck(t, st, tc.want)
		})
	}
}

func TestMySQLGap(t *testing.T) {
	p := newMySQLTest()
	st := newTestStream(t)
	st.Feed(p, Server, mysqlGreeting(mysqlTestCaps))
	st.Feed(p, Client, mysqlLogin(mysqlTestCaps))
	st.Feed(p, Server, mysqlOK(2, 2))
	st.Feed(p, Client, mysqlCmd(0x03, "select 1"))
	rs := mysqlResultSet([]string{"1"}, [][]string{{"1"}}, false, 2)
	st.Feed(p, Server, rs[:20])
	st.FeedGap(p, Server, 10)
	st.Feed(p, Server, rs[30:])
	st.Feed(p, Client, mysqlCmd(0x0e, ""))
	st.Feed(p, Server, mysqlOK(1, 2))
	p.Close(st)
	xchgCheck(t, st)
	mysqlCheck(t, st, "[client/84 command=login] -> [server/11 result=ok]\ndiscarded 3\n")
}

func TestMySQLUnsolicitedAndClose(t *testing.T) {
	p := newMySQLTest()
	st := newTestStream(t)
	st.Feed(p, Server, mysqlGreeting(mysqlTestCaps))
	st.Feed(p, Client, mysqlLogin(mysqlTestCaps))
	st.Feed(p, Server, mysqlOK(2, 2))
	st.Feed(p, Server, mysqlErr(0, 4031, "The client was disconnected by the server because of inactivity"))
	st.Feed(p, Client, mysqlCmd(0x03, "select sleep(100)"))
	st.Feed(p, Server, mysqlPkt(1, []byte{1})) // a column count, then the close
	p.Close(st)
	xchgCheck(t, st)
	mysqlCheck(t, st, ""+
		"[client/84 command=login] -> [server/11 result=ok]\n"+
		"[-] -> [server/76 result=err error_code=4031]\n"+
		"[client/22 command=COM_QUERY statement=select sleep(100)] -> [-]\n"+
		"discarded 2\n")
}

func FuzzMySQL(f *testing.F) {
	var seed []byte
	add := func(s Side, b []byte) {
		for len(b) > 0 {
			n := min(len(b), 256)
			seed = append(seed, byte(s), byte(n-1))
			seed = append(seed, b[:n]...)
			b = b[n:]
		}
	}
	add(Server, mysqlGreeting(mysqlTestCaps))
	add(Client, mysqlLogin(mysqlTestCaps))
	add(Server, mysqlOK(2, 2))
	add(Client, mysqlCmd(0x03, "select 1"))
	add(Server, mysqlResultSet([]string{"a", "b"}, [][]string{{"1", "2"}}, false, 2|mysqlStatusMoreResults))
	add(Server, mysqlOK(5, 2))
	add(Client, mysqlCmd(0x16, "select ?"))
	add(Server, mysqlPkt(1, []byte{0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0}))
	f.Add(seed)
	// Query attributes negotiated.
	seed = nil
	caps := uint32(mysqlTestCaps | mysqlClientQueryAttrs)
	add(Server, mysqlGreeting(caps))
	add(Client, mysqlLogin(caps))
	add(Server, mysqlOK(2, 2))
	add(Client, mysqlPkt(0, mysqlAttrQuery("select 1", mysqlTestAttrs...)))
	add(Server, mysqlOK(1, 2))
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		xchgFuzzFeed(t, newMySQLParser(&Config{MaxPending: 4, MaxStatement: 16}), data)
	})
}

func BenchmarkMySQLParser(b *testing.B) {
	// A query and a 10-row result set of 3 columns, one chunk per side.
	req := mysqlCmd(0x03, "SELECT id, name, email FROM users WHERE id > 100 LIMIT 10")
	var rows [][]string
	for i := 0; i < 10; i++ {
		rows = append(rows, []string{"123", "somebody", "somebody@example.com"})
	}
	resp := mysqlResultSet([]string{"id", "name", "email"}, rows, false, 2)
	st := &xchgNopStream{cfg: DefaultConfig()}
	p := newMySQLParser(&st.cfg)
	p.phase, p.caps = myCommand, mysqlClientProtocol41
	b.ReportAllocs()
	b.SetBytes(int64(len(req) + len(resp)))
	for i := 0; i < b.N; i++ {
		p.Data(Client, req, st)
		p.Data(Server, resp, st)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/chunk")
}

// mysqlAttr is one query attribute: its type, name, and value in the
// binary protocol's encoding (nil: NULL).
type mysqlAttr struct {
	typ   byte
	name  string
	value []byte
}

// mysqlTestAttrs cover each kind of value width: a string, an integer, a
// NULL, a temporal value, and a one-byte integer.
var mysqlTestAttrs = []mysqlAttr{
	{0xfe, "traceparent", append([]byte{55}, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"...)},
	{0x08, "n", []byte{5, 0, 0, 0, 0, 0, 0, 0}},
	{0x06, "gone", nil},
	{0x0c, "at", []byte{7, 0xea, 0x07, 12, 7, 6, 30, 0}},
	{0x01, "t", []byte{1}},
}

// mysqlAttrQuery builds a COM_QUERY payload with query attributes, as
// MySQL's protocol documentation gives it (COM_QUERY, with
// CLIENT_QUERY_ATTRIBUTES): parameter_count, parameter_set_count, null
// bitmap, new_params_bind_flag, then each type and name, then the values.
func mysqlAttrQuery(stmt string, attrs ...mysqlAttr) []byte {
	b := []byte{0x03, byte(len(attrs)), 1}
	if len(attrs) > 0 {
		bm := make([]byte, (len(attrs)+7)/8)
		for i, a := range attrs {
			if a.value == nil {
				bm[i/8] |= 1 << (i % 8)
			}
		}
		b = append(b, bm...)
		b = append(b, 1)
		for _, a := range attrs {
			b = append(b, a.typ, 0, byte(len(a.name)))
			b = append(b, a.name...)
		}
		for _, a := range attrs {
			b = append(b, a.value...)
		}
	}
	return append(b, stmt...)
}

// TestMySQLQueryAttrs checks that a COM_QUERY's statement is read after
// its query attributes. There is no MySQL 8.0.23+ in this environment
// (Debian has MariaDB, which does not send query attributes), so the
// packets are built from the documented format.
func TestMySQLQueryAttrs(t *testing.T) {
	caps := uint32(mysqlTestCaps | mysqlClientQueryAttrs)
	noBind := []byte{0x03, 1, 1, 0, 0, 0xfe, 0, 1, 'x', 1, 'v', 'S', 'E', 'L'} // new_params_bind_flag 0: types unknown
	steps := []xchgStep{
		{Server, mysqlGreeting(caps)},
		{Client, mysqlLogin(caps)},
		{Server, mysqlOK(2, 2)},
		{Client, mysqlPkt(0, mysqlAttrQuery("SELECT 1"))},
		{Server, mysqlOK(1, 2)},
		{Client, mysqlPkt(0, mysqlAttrQuery("SELECT name FROM t", mysqlTestAttrs...))},
		{Server, mysqlOK(1, 2)},
		{Client, mysqlPkt(0, mysqlAttrQuery("SELECT 2", mysqlTestAttrs[2]))}, // only a NULL
		{Server, mysqlOK(1, 2)},
		{Client, mysqlPkt(0, noBind)},
		{Server, mysqlOK(1, 2)},
		{Client, mysqlCmd(0x16, "SELECT ?")}, // prepare: no attributes
		{Server, mysqlErr(1, 1064, "syntax")},
	}
	st := xchgSplitSame(t, newMySQLTest, steps)
	mysqlCheck(t, st, ""+
		"[client/84 command=login] -> [server/11 result=ok]\n"+
		"[client/15 command=COM_QUERY query_attrs=0 statement=SELECT 1] -> [server/11 result=ok]\n"+
		"[client/134 command=COM_QUERY query_attrs=5 statement=SELECT name FROM t] -> [server/11 result=ok]\n"+
		"[client/24 command=COM_QUERY query_attrs=1 statement=SELECT 2] -> [server/11 result=ok]\n"+
		"[client/18 command=COM_QUERY] -> [server/11 result=ok]\n"+
		"[client/13 command=COM_STMT_PREPARE statement=SELECT ?] -> [server/19 result=err error_code=1064]\n"+
		"discarded 1\n") // the greeting

	// Without the login (a capture that starts mid connection), a
	// COM_QUERY that opens with attributes is still read.
	st = xchgSplitSame(t, newMySQLTest, []xchgStep{
		{Client, mysqlPkt(0, mysqlAttrQuery("SELECT 3", mysqlTestAttrs[1]))},
		{Server, mysqlOK(1, 2)},
		{Client, mysqlCmd(0x03, "\tSELECT 4")},
		{Server, mysqlOK(1, 2)},
	})
	mysqlCheck(t, st, ""+
		"[client/29 command=COM_QUERY query_attrs=1 statement=SELECT 3] -> [server/11 result=ok]\n"+
		"[client/14 command=COM_QUERY statement=\tSELECT 4] -> [server/11 result=ok]\n"+
		"discarded 0\n")
}

// TestMySQLQueryAttrsCut checks mysqlQueryAttrs on every prefix of a
// packet and on corrupted bytes: it never reads past the packet and finds
// the statement only when the attributes are whole.
func TestMySQLQueryAttrsCut(t *testing.T) {
	pkt := mysqlAttrQuery("SELECT 1", mysqlTestAttrs...)
	want := len(pkt) - len("SELECT 1")
	if i, n := mysqlQueryAttrs(pkt); i != want || n != uint64(len(mysqlTestAttrs)) {
		t.Fatalf("got statement at %d, %d attributes; want %d, %d", i, n, want, len(mysqlTestAttrs))
	}
	for k := range want {
		if i, _ := mysqlQueryAttrs(pkt[:k]); i >= 0 {
			t.Errorf("cut at %d: got statement at %d, want -1", k, i)
		}
	}
	for k := 1; k < want; k++ {
		for _, c := range []byte{0, 1, 0x7f, 0xfb, 0xfc, 0xfe, 0xff} {
			b := bytes.Clone(pkt)
			b[k] = c
			if i, _ := mysqlQueryAttrs(b); i > len(b) {
				t.Errorf("byte %d = %#x: statement at %d, past the packet (%d)", k, c, i, len(b))
			}
		}
	}
}
