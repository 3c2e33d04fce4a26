package analytics

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// PostgreSQL frontend/backend protocol 3.x (TCP, port 5432).
//
// Every message after the start-up is a type byte and a big-endian int32
// length that counts itself but not the type byte:
//
//	+------+---------------+---------------------------+
//	| type | length (int32)| body (length-4 bytes)     |
//	+------+---------------+---------------------------+
//
// The client's first messages (StartupMessage, SSLRequest, GSSENCRequest,
// CancelRequest) have no type byte: int32 length, int32 code, body.
//
// Exchanges: the StartupMessage with everything the backend sends up to
// the first ReadyForQuery ('Z') or a start-up ErrorResponse; a simple
// Query ('Q') with the backend's messages up to 'Z'; and a batch of
// extended-protocol messages (Parse/Bind/Describe/Execute/Close/Flush)
// up to Sync with the messages up to 'Z'. ReadyForQuery carries no
// reference to the request, so requests are answered first in, first out.
//
// The parser buffers at most an 8-byte header per side and a bounded
// prefix of the few message bodies it reads (query text, Parse, the
// start-up parameters, CommandComplete, ErrorResponse); everything else,
// DataRows and COPY data included, is counted down by its length.

const (
	pgPort       = 5432
	pgMaxLen     = 1 << 30 // longest message we accept; beyond is a protocol error
	pgMaxStartup = 10000   // longest StartupMessage (libpq: 10000)
	pgProtoMajor = 3
	pgSSLCode    = 80877103
	pgGSSCode    = 80877104
	pgCancelCode = 80877102
	pgTagMax     = 64  // CommandComplete tag bytes kept
	pgErrMax     = 256 // ErrorResponse bytes read (S, V and C come first)
	pgNameSlack  = 64  // Parse: room for the statement name before the query
)

func init() {
	Register(&Decoder{
		Name:    "postgres",
		TCP:     true,
		Ports:   []uint16{pgPort},
		Backend: true,
		Detect:  pgDetect,
		Fields:  []string{"command", "database", "error", "error_code", "rows", "statement", "tag", "user"},
		Aliases: []string{"pgsql", "postgresql"},
		Summary: pgSummary,
		New:     newPGParser,
	})
}

// pgSummary: "SELECT 1 -> SELECT 1" (statement, then tag or error code).
func pgSummary(dst []byte, r *Record) []byte {
	dst = appendStatement(dst, r)
	dst = appendArrow(dst)
	switch {
	case r.Has("error_code"):
		dst = append(dst, "error "...)
		dst = appendField(dst, r, "error_code", 16)
	case r.Has("tag"):
		dst = appendField(dst, r, "tag", 40)
	default:
		dst = append(dst, '-')
	}
	return dst
}

// pgDetect says whether b, a connection's first payload, is a PostgreSQL
// StartupMessage (protocol 3.x), SSLRequest or GSSENCRequest.
func pgDetect(_ Side, b []byte) bool {
	if len(b) < 8 {
		return false
	}
	n := binary.BigEndian.Uint32(b)
	code := binary.BigEndian.Uint32(b[4:])
	switch {
	case n == 8 && (code == pgSSLCode || code == pgGSSCode):
		return true
	case n >= 8 && n <= pgMaxStartup && code>>16 == pgProtoMajor && code&0xffff <= 2:
		return true
	}
	return false
}

// pgKind is what a request is.
type pgKind uint8

const (
	pgStartup pgKind = iota + 1
	pgQuery
	pgExtended
	pgFunction
)

// pgReq is a request that has ended and waits for its response.
type pgReq struct {
	m    *Message
	kind pgKind
	// flush: the batch ended with Flush and the backend answered before
	// the client sent more; its answer has no ReadyForQuery and ends at
	// the first backend message boundary after the client's next message.
	flush bool
	moved bool // flush: the client has sent a message since the answer began
}

// pgFrame is the framing state of one side.
type pgFrame struct {
	hdr    [8]byte // the header being read (5 bytes typed, 8 untyped)
	nhdr   int     // header bytes read so far; 0 between messages
	hdrLen int     // 5 or 8, set at the message's first byte
	typ    byte    // message type (0 for an untyped start-up message)
	inBody bool
	remain int64 // body bytes still to come
	want   int   // body bytes to keep in body (0: count down only)
	body   []byte
	lost   bool // bytes of the body were lost in a gap: body is a prefix
}

func (f *pgFrame) atBoundary() bool { return f.nhdr == 0 && !f.inBody }

type pgParser struct {
	cfg     *Config
	stopped bool
	seen    bool // the first payload of the connection has been seen

	fr [2]pgFrame
	// untyped: the client's next message has no type byte (start-up phase).
	untyped bool
	// sslWait: the server's next byte answers SSLRequest/GSSENCRequest.
	sslWait bool

	// The client request being read: begun, not ended. curFlush: the batch
	// so far ends with Flush and its End is deferred until we know whether
	// the client goes on (same batch) or the backend answers (batch ends).
	cur      *Message
	curKind  pgKind
	curFlush bool
	curStmt  bool // the statement field is set
	curClose bool // the current message (Q, F) ends the request

	pend []pgReq // ended requests waiting for a response, oldest first

	// The response being read for pend[0] (begun, not ended), and what it
	// has said so far.
	resp    *Message
	ntag    int
	tag     [pgTagMax]byte
	rows    int64
	errCode string
	errSev  string

	// The connection's last statement and tag (lastString), and the
	// analyzer's texts.
	lastStmt, lastTag lastString
	txt               *textCache
}

var (
	_ Parser   = (*pgParser)(nil)
	_ usesText = (*pgParser)(nil)
)

func newPGParser(cfg *Config) Parser {
	return &pgParser{cfg: cfg}
}

// reset keeps, emptied, the body buffers and the pending queue, and the
// last statement and tag, which the next connection tends to repeat.
func (p *pgParser) useText(t *textCache) { p.txt = t }

func (p *pgParser) reset() {
	b0, b1 := keepBytes(p.fr[0].body, spareBufMax), keepBytes(p.fr[1].body, spareBufMax)
	*p = pgParser{cfg: p.cfg, pend: reuseQueue(p.pend), lastStmt: p.lastStmt, lastTag: p.lastTag, txt: p.txt}
	p.fr[0].body, p.fr[1].body = b0, b1
}

// Data decodes the next in-order bytes of side s. b is borrowed for the
// call only: what the parser keeps is copied into its bounded buffers.
func (p *pgParser) Data(s Side, b []byte, st Stream) {
	if p.stopped || len(b) == 0 {
		return
	}
	if !p.seen {
		p.seen = true
		// A start-up message begins with the high byte of a length of at
		// most 10000, a zero; typed messages begin with a letter. A
		// connection whose server speaks first was joined midway.
		p.untyped = s == Client && b[0] == 0
	}
	f := &p.fr[s]
	i := 0
	for i < len(b) && !p.stopped {
		if s == Server && p.sslWait {
			p.sslAnswer(b[i], st)
			i++
			continue
		}
		if f.inBody {
			n := len(b) - i
			if int64(n) > f.remain {
				n = int(f.remain)
			}
			if k := min(n, f.want-len(f.body)); k > 0 && !f.lost {
				f.body = append(f.body, b[i:i+k]...)
			}
			f.remain -= int64(n)
			i += n
			if f.remain == 0 {
				f.inBody = false
				p.msgEnd(s, i, st)
			}
			continue
		}
		if f.nhdr == 0 {
			p.msgStart(s, b[i], i, st)
			if p.stopped {
				return
			}
		}
		k := copy(f.hdr[f.nhdr:f.hdrLen], b[i:])
		f.nhdr += k
		i += k
		if f.nhdr < f.hdrLen {
			return
		}
		p.headerDone(s, i, st)
	}
}

// sslAnswer handles the server's one-byte answer to SSLRequest or
// GSSENCRequest: 'N' means the start-up follows in clear; anything else
// ('S', 'G': encryption follows; an error) ends decoding.
func (p *pgParser) sslAnswer(c byte, st Stream) {
	p.sslWait = false
	if c != 'N' {
		p.stop(st)
	}
}

// msgStart is called at the first byte c of a message of side s, at b[off].
func (p *pgParser) msgStart(s Side, c byte, off int, st Stream) {
	f := &p.fr[s]
	f.hdrLen, f.typ = 5, c
	if s == Client && p.untyped {
		f.hdrLen, f.typ = 8, 0
		// StartupMessage or an encryption request: which one is known
		// only from the code, so begin a message now (its first byte is
		// here) and discard it if it is not a start-up.
		p.endCurAt(off, st)
		p.cur = st.Begin(Client, off)
		p.curKind, p.curStmt, p.curFlush, p.curClose = pgStartup, false, false, false
		return
	}
	if s == Client {
		p.clientStart(c, off, st)
	} else {
		p.serverStart(c, off, st)
	}
}

// clientStart opens or extends the request that a client message of type c
// starting at b[off] belongs to.
func (p *pgParser) clientStart(c byte, off int, st Stream) {
	switch c {
	case 'd', 'c', 'f': // CopyData, CopyDone, CopyFail: part of the exchange in progress
		return
	case 'p': // password, SASL, GSS responses: part of the start-up exchange
		return
	case 'Q', 'F', 'P', 'B', 'D', 'E', 'C', 'H', 'S', 'X':
	default:
		p.stop(st)
		return
	}
	if p.clientMoved() && p.fr[Server].atBoundary() && !p.sslWait {
		p.finish(-1, st)
	}
	if p.cur != nil && p.curFlush {
		// The batch ended with Flush and the backend has not answered
		// yet: the client goes on, so this message extends the batch.
		p.curFlush = false
	}
	switch c {
	case 'X': // Terminate: no answer, no record
		p.endCurAt(off, st)
		return
	case 'Q', 'F':
		if p.cur == nil {
			k := pgQuery
			if c == 'F' {
				k = pgFunction
			}
			p.begin(off, st, k)
		}
		// A query after an unanswered batch joins it: the backend
		// answers both with one ReadyForQuery.
		p.curClose = true
	default:
		if p.cur == nil {
			p.begin(off, st, pgExtended)
		}
	}
}

func (p *pgParser) begin(off int, st Stream, k pgKind) {
	p.cur = st.Begin(Client, off)
	p.curKind, p.curStmt, p.curFlush, p.curClose = k, false, false, false
	switch k {
	case pgQuery:
		p.cur.Str("command", "query")
	case pgExtended:
		p.cur.Str("command", "extended")
	case pgFunction:
		p.cur.Str("command", "function")
	}
}

// endCurAt ends the request in progress (a batch the client left without
// Sync) just before b[off] of the client's current chunk and queues it.
func (p *pgParser) endCurAt(off int, st Stream) {
	if p.cur == nil {
		return
	}
	if p.curKind == pgStartup {
		st.Discard(p.cur)
		p.cur = nil
		return
	}
	st.End(p.cur, off)
	p.push(pgReq{m: p.cur, kind: p.curKind}, st)
	p.cur = nil
}

// clientMoved notes that the client sent a new message: a response to a
// Flush-ended batch ends at the backend's next message boundary (now, if
// the backend is between messages). It says whether such a response is
// in progress.
func (p *pgParser) clientMoved() bool {
	if len(p.pend) > 0 && p.pend[0].flush && p.resp != nil {
		p.pend[0].moved = true
		return true
	}
	return false
}

// serverStart is called at the first byte c of a backend message at b[off].
func (p *pgParser) serverStart(c byte, off int, st Stream) {
	if !pgBackendType(c) {
		p.stop(st)
		return
	}
	if p.resp != nil && p.pend[0].flush && p.pend[0].moved {
		p.finish(off, st)
	}
	if p.cur != nil && p.curFlush && len(p.pend) == 0 {
		// The backend answers a batch that ended with Flush. No client
		// byte came after the Flush (it would have cleared curFlush), so
		// the batch ends at the last client byte delivered.
		st.End(p.cur, -1)
		p.push(pgReq{m: p.cur, kind: p.curKind, flush: true}, st)
		p.cur = nil
	}
	if p.resp == nil && len(p.pend) > 0 {
		p.resp = st.Begin(Server, off)
		p.ntag, p.rows, p.errCode, p.errSev = 0, 0, "", ""
	}
}

func pgBackendType(c byte) bool {
	switch c {
	case 'R', 'K', '1', '2', '3', 'C', 'd', 'c', 'G', 'H', 'W', 'D', 'I', 'E',
		'V', 'n', 'N', 'A', 't', 'S', 's', 'T', 'Z', 'v':
		return true
	}
	return false
}

// headerDone checks a complete header of side s (read up to b[off-1]) and
// sets up its body.
func (p *pgParser) headerDone(s Side, off int, st Stream) {
	f := &p.fr[s]
	f.nhdr = 0
	var n int64
	if f.hdrLen == 8 {
		n = int64(binary.BigEndian.Uint32(f.hdr[:4])) - 8
		code := binary.BigEndian.Uint32(f.hdr[4:8])
		switch {
		case n == 0 && (code == pgSSLCode || code == pgGSSCode):
			st.Discard(p.cur)
			p.cur = nil
			p.sslWait = true
			return
		case n >= 0 && n+8 <= pgMaxStartup && code>>16 == pgProtoMajor:
			p.cur.Str("command", "startup")
			f.want = min(int(n), p.cfg.MaxHeader)
		default: // CancelRequest (nothing follows) or not PostgreSQL
			p.stop(st)
			return
		}
	} else {
		n = int64(binary.BigEndian.Uint32(f.hdr[1:5]))
		if n < 4 || n > pgMaxLen {
			p.stop(st)
			return
		}
		n -= 4
		f.want = 0
		if s == Client {
			switch {
			case f.typ == 'Q' && p.curKind == pgQuery:
				f.want = p.cfg.MaxStatement + 1
			case f.typ == 'P' && p.curKind == pgExtended && !p.curStmt:
				f.want = p.cfg.MaxStatement + 1 + pgNameSlack
			}
		} else if p.resp != nil {
			switch f.typ {
			case 'C':
				f.want = pgTagMax
			case 'E':
				if p.errCode == "" && p.errSev == "" {
					f.want = pgErrMax
				}
			}
		}
		f.want = min(int64ToInt(n), f.want)
	}
	f.body = f.body[:0]
	f.lost = false
	f.remain = n
	f.inBody = true
	if n == 0 {
		f.inBody = false
		p.msgEnd(s, off, st)
	}
}

func int64ToInt(n int64) int {
	if n > 1<<30 {
		return 1 << 30
	}
	return int(n)
}

// msgEnd is called after the last byte of a message of side s, at b[off-1]
// (off 0: the message ended with the previous chunk or a gap).
func (p *pgParser) msgEnd(s Side, off int, st Stream) {
	f := &p.fr[s]
	if s == Client {
		p.clientEnd(f, off, st)
	} else {
		p.serverEnd(f, off, st)
	}
}

func (p *pgParser) clientEnd(f *pgFrame, off int, st Stream) {
	if p.cur == nil {
		return
	}
	if f.typ == 0 { // StartupMessage
		user, db := pgStartupParams(f.body, p.txt)
		if user != "" {
			p.cur.Str("user", user)
		}
		if db != "" {
			p.cur.Str("database", db)
		}
		p.untyped = false
		st.End(p.cur, off)
		p.push(pgReq{m: p.cur, kind: pgStartup}, st)
		p.cur = nil
		return
	}
	switch f.typ {
	case 'Q':
		if p.curKind == pgQuery && !p.curStmt {
			p.curStmt = true
			p.cur.Str("statement", p.cut(pgCStringBytes(f.body)))
		}
	case 'P':
		if p.curKind == pgExtended && !p.curStmt {
			if q, ok := pgParseQuery(f.body); ok {
				p.curStmt = true
				p.cur.Str("statement", p.cut(q))
			}
		}
	case 'H':
		p.curFlush = true
		return
	}
	if f.typ == 'S' || p.curClose {
		st.End(p.cur, off)
		p.push(pgReq{m: p.cur, kind: p.curKind}, st)
		p.cur = nil
	}
}

func (p *pgParser) serverEnd(f *pgFrame, off int, st Stream) {
	if p.resp == nil {
		return
	}
	switch f.typ {
	case 'C':
		body := pgCStringBytes(f.body)
		p.ntag = copy(p.tag[:], body)
	case 'D':
		p.rows++
	case 'E':
		if p.errCode == "" && p.errSev == "" {
			p.errCode, p.errSev = pgErrorFields(f.body)
		}
		if p.pend[0].kind == pgStartup {
			p.finish(off, st) // a start-up error ends the connection
		}
	case 'Z':
		p.finish(off, st)
	}
}

// finish ends the response in progress before b[off] of the server's
// current chunk (-1: at the last server byte delivered) and reports it
// with its request.
func (p *pgParser) finish(off int, st Stream) {
	r := p.resp
	q := p.pend[0]
	p.resp = nil
	p.pop()
	if q.kind != pgStartup {
		if p.ntag > 0 {
			r.Str("tag", p.lastTag.of(p.tag[:p.ntag], p.txt))
		}
		r.Int("rows", p.rows)
	}
	if p.errCode != "" {
		r.Str("error_code", p.errCode)
	}
	if p.errSev != "" {
		r.Str("error", p.errSev)
	}
	st.End(r, off)
	st.Exchange(q.m, r)
}

// push queues an ended request. Beyond MaxPending the oldest request not
// being answered is reported unanswered.
func (p *pgParser) push(q pgReq, st Stream) {
	if len(p.pend) >= max(p.cfg.MaxPending, 1) {
		i := 0
		if p.resp != nil && len(p.pend) > 1 {
			i = 1
		}
		if i == 0 && p.resp != nil {
			st.Discard(p.resp)
			p.resp = nil
		}
		st.Exchange(p.pend[i].m, nil)
		copy(p.pend[i:], p.pend[i+1:])
		p.pend[len(p.pend)-1] = pgReq{}
		p.pend = p.pend[:len(p.pend)-1]
	}
	p.pend = append(p.pend, q)
}

func (p *pgParser) pop() {
	copy(p.pend, p.pend[1:])
	p.pend[len(p.pend)-1] = pgReq{}
	p.pend = p.pend[:len(p.pend)-1]
}

// cut returns b as a string of at most MaxStatement bytes, cut at a rune
// boundary.
func (p *pgParser) cut(b []byte) string {
	if n := p.cfg.MaxStatement; len(b) > n {
		for n > 0 && !utf8.RuneStart(b[n]) {
			n--
		}
		b = b[:n]
	}
	return p.lastStmt.of(b, p.txt)
}

// Gap: n bytes of side s were lost. Inside a message body the length is
// counted down (the kept body prefix stays as it was); anywhere else the
// framing is lost and decoding stops.
func (p *pgParser) Gap(s Side, n int, st Stream) {
	if p.stopped || n <= 0 {
		return
	}
	f := &p.fr[s]
	if f.inBody && int64(n) <= f.remain && !(s == Server && p.sslWait) {
		f.remain -= int64(n)
		f.lost = true
		// remain 0: the message ends at the start of the next chunk.
		return
	}
	p.stop(st)
}

// Close reports the requests still waiting with no response.
func (p *pgParser) Close(st Stream) {
	if p.stopped {
		return
	}
	if p.cur != nil {
		if p.curFlush {
			st.End(p.cur, -1)
			p.push(pgReq{m: p.cur, kind: p.curKind, flush: true}, st)
		} else {
			st.Discard(p.cur)
		}
		p.cur = nil
	}
	if p.resp != nil {
		if p.pend[0].flush && p.fr[Server].atBoundary() {
			p.finish(-1, st)
		} else {
			st.Discard(p.resp)
			p.resp = nil
		}
	}
	for _, q := range p.pend {
		st.Exchange(q.m, nil)
	}
	clear(p.pend)
	p.pend = p.pend[:0]
	p.stopped = true
}

// stop ends decoding of the connection: everything begun or waiting is
// discarded without a record.
func (p *pgParser) stop(st Stream) {
	if p.stopped {
		return
	}
	p.stopped = true
	if p.cur != nil {
		st.Discard(p.cur)
		p.cur = nil
	}
	if p.resp != nil {
		st.Discard(p.resp)
		p.resp = nil
	}
	for _, q := range p.pend {
		st.Discard(q.m)
	}
	clear(p.pend)
	p.pend = p.pend[:0]
	p.fr[0].body, p.fr[1].body = nil, nil
}

// pgCStringBytes returns b up to its first NUL (all of b without one).
func pgCStringBytes(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 { // vectorised: statements run to hundreds of bytes
		return b[:i]
	}
	return b
}

// pgParseQuery returns the query text of a Parse body (name\0 query\0 ...),
// possibly a prefix when the body was cut.
func pgParseQuery(b []byte) ([]byte, bool) {
	name := pgCStringBytes(b)
	if len(name) == len(b) {
		return nil, false
	}
	return pgCStringBytes(b[len(name)+1:]), true
}

// pgStartupParams returns the user and database of StartupMessage
// parameters (name\0 value\0 ... \0).
func pgStartupParams(b []byte, t *textCache) (user, db string) {
	for len(b) > 0 {
		k := pgCStringBytes(b)
		if len(k) == 0 || len(k) == len(b) {
			return
		}
		b = b[len(k)+1:]
		v := pgCStringBytes(b)
		switch string(k) {
		case "user":
			user = t.of(v)
		case "database":
			db = t.of(v)
		}
		if len(v) == len(b) {
			return
		}
		b = b[len(v)+1:]
	}
	return
}

// pgErrorFields returns the SQLSTATE ('C') and severity ('V', else 'S') of
// an ErrorResponse body (code byte, cstring, ..., 0). Fields cut off at
// the end of b are ignored.
func pgErrorFields(b []byte) (code, sev string) {
	var s, v []byte
	for len(b) > 0 && b[0] != 0 {
		t := b[0]
		val := pgCStringBytes(b[1:])
		if 1+len(val) == len(b) {
			break // cut
		}
		switch t {
		case 'C':
			code = string(val)
		case 'S':
			s = val
		case 'V':
			v = val
		}
		b = b[2+len(val):]
	}
	if v == nil {
		v = s
	}
	return code, pgSeverity(v)
}

func pgSeverity(b []byte) string {
	switch string(b) {
	case "ERROR":
		return "ERROR"
	case "FATAL":
		return "FATAL"
	case "PANIC":
		return "PANIC"
	}
	return string(b)
}

// Stopped reports that the parser decodes nothing more (TLS, a protocol
// error, a gap).
func (p *pgParser) Stopped() bool { return p.stopped }
