package analytics

import (
	"bytes"
	"unicode/utf8"
)

// Redis: RESP2 and RESP3 (https://redis.io/docs/latest/develop/reference/protocol-spec/).
//
// The client sends arrays of bulk strings (or inline commands, one line of
// words); the server answers each command in order, so requests and
// replies pair first in, first out (pipelining). Both sides are read by
// one incremental tokenizer that keeps no value bytes beyond two small
// captures (the first two elements of a top-level array, or a top-level
// string) and counts bulk payloads down, however large and however many
// chunks they span. Nesting is bounded by redisMaxDepth.
//
// Pub/sub: SUBSCRIBE-family commands get one confirmation per channel
// argument; they are one response spanning those confirmations. After a
// subscribe, an array (RESP2) or push (RESP3, '>') whose first element is
// message/pmessage/smessage, or a confirmation no request waits for, is
// an unsolicited push: Exchange(nil, resp) with reply=push and command set
// to that first element. RESP3 pushes are never replies, except
// subscribe-family confirmations answering the oldest waiting command.
//
// An attribute ('|') before a value belongs to the value's message; the
// reply type is that of the value. Streamed RESP3 strings and aggregates
// ('$?', '*?') are not decoded: the connection stops being decoded.
//
// Gaps: inside a bulk payload the loss is counted down. Elsewhere on the
// client side the request in progress is discarded and decoding resumes at
// the next line starting with '*' (replies may then pair with the wrong
// request if whole requests were lost); on the server side decoding stops.

const (
	redisMaxDepth = 64
	redisLineKeep = 64 // bytes of a line kept for numbers and short captures
	redisNameCap  = 64 // bytes kept of a command name, error code or push kind
)

func init() {
	Register(&Decoder{
		Name:    "redis",
		TCP:     true,
		Ports:   []uint16{6379},
		Backend: true,
		Detect:  redisDetect,
		Fields:  []string{"command", "error", "key", "reply"},
		Summary: redisSummary,
		New:     func(cfg *Config) Parser { return newRedisParser(cfg) },
	})
}

// redisSummary: "GET user:1 -> bulk" (command and key, then reply or error).
func redisSummary(dst []byte, r *Record) []byte {
	dst = appendField(dst, r, "command", 32)
	if r.Has("key") {
		dst = append(dst, ' ')
		dst = appendField(dst, r, "key", 60)
	}
	dst = appendArrow(dst)
	switch {
	case r.Has("error"):
		dst = append(dst, "error "...)
		dst = appendField(dst, r, "error", 60)
	case r.Has("reply"):
		dst = appendField(dst, r, "reply", 60)
	default:
		dst = append(dst, '-')
	}
	return dst
}

// redisDetect says whether a client's first payload starts a RESP array of
// bulk strings: *<digits>\r\n$.
func redisDetect(s Side, b []byte) bool {
	if s != Client || len(b) < 5 || b[0] != '*' {
		return false
	}
	i := 1
	for i < len(b) && i < 12 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i > 1 && i+2 < len(b) && b[i] == '\r' && b[i+1] == '\n' && b[i+2] == '$'
}

type redisParser struct {
	cfg  *Config
	dead bool // lost sync on the server side: decode nothing more

	rd [2]redisReader

	// pending are the requests waiting for replies, oldest first, at most
	// cfg.MaxPending; the parser owns their messages until Exchange.
	pending []redisReq
	// skip counts replies owed to requests dropped from pending when it
	// was full; they are reported alone.
	skip int

	// cont is a response spanning several replies (subscribe
	// confirmations), begun and not ended, to be paired with contReq after
	// contLeft more replies.
	cont     *Message
	contReq  *Message
	contLeft int

	subscribed bool // a SUBSCRIBE-family command was sent
	resp3      bool // the server sent a push ('>')
	lost       int  // bytes skipped while resyncing
	resync     bool // client side lost sync: skip to a line starting with '*'
	resyncNL   bool // the last byte seen while resyncing was '\n'

	lastKey lastString // the connection's last key
	txt     *textCache // the analyzer's texts
}

var (
	_ Parser   = (*redisParser)(nil)
	_ usesText = (*redisParser)(nil)
)

type redisReq struct {
	m      *Message
	expect int    // replies expected
	sub    string // confirmation kind for subscribe-family commands ("subscribe", ...), else ""
}

// Tokenizer states.
const (
	rsType   = iota // at the type byte of the next value
	rsLine          // in the rest of a line, after the type byte
	rsInline        // in a client inline command line
	rsBulk          // in a bulk payload and its CRLF
)

type redisFrame struct {
	n, left int64 // elements in the aggregate, elements still to come
	attr    bool  // an attribute: not a value itself
}

// redisReader tokenizes one side.
type redisReader struct {
	m     *Message // the top-level value being read (begun, not ended), or nil
	state int
	typ   byte // type byte of the current value

	line    [redisLineKeep]byte // start of the current line
	nline   int                 // bytes kept in line
	lineLen int                 // bytes of the line so far

	bulkLen, bulkLeft int64 // payload length, payload+CRLF bytes still to come

	depth int
	stack [redisMaxDepth]redisFrame

	// The current top-level value: its type (the first that is not an
	// attribute), whether it is a null, its element count, and captures
	// of its first two elements (or of itself when it is a string).
	top     byte
	topNull bool
	argc    int64
	slot    int // capture slot of the current leaf value, -1 for none
	c0      [redisNameCap]byte
	n0      int
	c1      []byte // len = bytes captured; cap = the limit; allocated on first use
	c1Limit int
}

func newRedisParser(cfg *Config) *redisParser {
	p := new(redisParser)
	p.init(cfg)
	return p
}

func (p *redisParser) init(cfg *Config) {
	*p = redisParser{cfg: cfg}
	lim := max(cfg.MaxStatement, 16)
	p.rd[Client].c1Limit = lim + redisNameCap // an inline line holds the command too
	p.rd[Server].c1Limit = lim
}

// reset is init, keeping (emptied) the pending queue, the captures' buffers
// when their limit is unchanged, the last key and the texts.
func (p *redisParser) useText(t *textCache) { p.txt = t }

func (p *redisParser) reset() {
	pending, last, txt := reuseQueue(p.pending), p.lastKey, p.txt
	c1 := [2][]byte{p.rd[0].c1[:0], p.rd[1].c1[:0]}
	p.init(p.cfg)
	p.pending, p.lastKey, p.txt = pending, last, txt
	for s := range p.rd {
		if cap(c1[s]) == p.rd[s].c1Limit {
			p.rd[s].c1 = c1[s]
		}
	}
}

func (p *redisParser) Data(s Side, b []byte, st Stream) {
	if p.dead {
		return
	}
	r := &p.rd[s]
	i := 0
	if s == Client && p.resync {
		i = p.findResync(b)
		if p.resync {
			// Not Redis after all, or hopelessly lost: give up after
			// 64 KiB without a command start.
			if p.lost += len(b); p.lost > 64<<10 {
				p.dead = true
			}
			return
		}
		p.lost = 0
	}
	for i < len(b) && !p.dead {
		switch r.state {
		case rsType:
			c := b[i]
			if r.depth == 0 && r.m == nil {
				p.beginValue(s, r, i, st)
				if s == Client && c != '*' {
					r.state, r.nline, r.lineLen = rsInline, 0, 0
					r.slot = 1
					continue
				}
			}
			i++
			r.typ, r.state, r.nline, r.lineLen = c, rsLine, 0, 0
			if r.depth == 0 && c != '|' && r.top == 0 {
				r.top = c
			}
			r.slot = r.slotFor()
		case rsLine, rsInline:
			j := bytes.IndexByte(b[i:], '\n')
			end := len(b)
			if j >= 0 {
				end = i + j
			}
			r.addLine(b[i:end])
			if j < 0 {
				i = len(b)
				continue
			}
			i = end + 1
			if r.state == rsInline {
				p.inlineDone(r, i, st)
			} else {
				p.lineDone(s, r, i, st)
			}
		case rsBulk:
			k := min(int64(len(b)-i), r.bulkLeft)
			if r.slot >= 0 {
				pos := r.bulkLen + 2 - r.bulkLeft // payload bytes already seen
				if c := min(k, r.bulkLen-pos); c > 0 {
					r.capture(b[i : i+int(c)])
				}
			}
			i += int(k)
			r.bulkLeft -= k
			if r.bulkLeft == 0 {
				p.leafDone(s, r, i, st)
			}
		}
	}
}

// findResync returns where the first line starting with '*' begins in b,
// ending the client's resync; it returns len(b) while still resyncing.
func (p *redisParser) findResync(b []byte) int {
	for i := 0; i < len(b); {
		if p.resyncNL && b[i] == '*' {
			p.resync, p.resyncNL = false, false
			return i
		}
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			p.resyncNL = false
			return len(b)
		}
		i += j + 1
		p.resyncNL = true
	}
	return len(b)
}

// beginValue starts a top-level value at b[off]: a new message, or the
// next reply of a response spanning several.
func (p *redisParser) beginValue(s Side, r *redisReader, off int, st Stream) {
	if s == Server && p.cont != nil {
		r.m = p.cont
	} else {
		r.m = st.Begin(s, off)
	}
	r.top, r.topNull, r.argc, r.n0 = 0, false, 0, 0
	r.c1 = r.c1[:0]
}

// slotFor returns the capture slot of the value whose type byte was just
// read: 0 for a top-level value or the first element of a top-level
// aggregate, 1 for its second element, -1 otherwise.
func (r *redisReader) slotFor() int {
	if r.depth == 0 {
		return 0
	}
	if r.depth == 1 && !r.stack[0].attr {
		if idx := r.stack[0].n - r.stack[0].left; idx < 2 {
			return int(idx)
		}
	}
	return -1
}

// addLine appends seg (part of the current line) to the kept line start
// and, for strings and inline commands, to the capture.
func (r *redisReader) addLine(seg []byte) {
	r.nline += copy(r.line[r.nline:], seg)
	r.lineLen += len(seg)
	if r.slot >= 0 && (r.state == rsInline || r.typ == '+' || r.typ == '-') {
		r.capture(seg)
	}
}

// capture appends b to the current slot, up to its limit.
func (r *redisReader) capture(b []byte) {
	if r.slot == 0 {
		r.n0 += copy(r.c0[r.n0:], b)
		return
	}
	if r.c1 == nil {
		r.c1 = make([]byte, 0, r.c1Limit)
	}
	if room := cap(r.c1) - len(r.c1); room > 0 {
		r.c1 = append(r.c1, b[:min(room, len(b))]...)
	}
}

// lineEnd trims a captured line's CR when the capture holds the line's
// end.
func (r *redisReader) lineEnd() {
	if r.slot == 0 && r.n0 == r.lineLen && r.n0 > 0 && r.c0[r.n0-1] == '\r' {
		r.n0--
	}
	if r.slot == 1 && len(r.c1) == r.lineLen && len(r.c1) > 0 && r.c1[len(r.c1)-1] == '\r' {
		r.c1 = r.c1[:len(r.c1)-1]
	}
}

// redisInt parses a RESP length (digits with an optional '-' and the
// line's CR).
func redisInt(b []byte) (int64, bool) {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// lineDone handles the end of a value's line; off is just after its '\n'.
func (p *redisParser) lineDone(s Side, r *redisReader, off int, st Stream) {
	r.state = rsType
	switch r.typ {
	case '*', '~', '>', '%', '|':
		if r.lineLen > redisLineKeep {
			p.protoErr(s, st)
			return
		}
		n, ok := redisInt(r.line[:r.nline])
		if !ok || n > 1<<40 {
			p.protoErr(s, st)
			return
		}
		if r.typ == '>' {
			p.resp3 = true
		}
		if n < 0 {
			if r.depth == 0 {
				r.topNull = true
			}
			p.leafDone(s, r, off, st)
			return
		}
		if r.typ == '%' || r.typ == '|' {
			n *= 2
		}
		if n == 0 {
			if r.typ != '|' { // an empty attribute annotates the next value
				p.leafDone(s, r, off, st)
			}
			return
		}
		if r.depth == redisMaxDepth {
			p.protoErr(s, st)
			return
		}
		if r.depth == 0 && r.typ != '|' {
			r.argc = n
		}
		r.stack[r.depth] = redisFrame{n: n, left: n, attr: r.typ == '|'}
		r.depth++
	case '$', '=', '!':
		if r.lineLen > redisLineKeep {
			p.protoErr(s, st)
			return
		}
		n, ok := redisInt(r.line[:r.nline])
		if !ok || n > 1<<40 {
			p.protoErr(s, st)
			return
		}
		if n < 0 {
			if r.depth == 0 {
				r.topNull = true
			}
			p.leafDone(s, r, off, st)
			return
		}
		r.bulkLen, r.bulkLeft, r.state = n, n+2, rsBulk
	case '+', '-', ':', ',', '#', '(', '_':
		r.lineEnd()
		p.leafDone(s, r, off, st)
	default:
		p.protoErr(s, st)
	}
}

// leafDone counts a finished value into the aggregates it closes; when
// the top-level value is complete the message is done. off is where it
// ended in the current chunk, or -1 (at the last byte delivered).
func (p *redisParser) leafDone(s Side, r *redisReader, off int, st Stream) {
	r.state = rsType
	for r.depth > 0 {
		f := &r.stack[r.depth-1]
		f.left--
		if f.left > 0 {
			return
		}
		r.depth--
		if f.attr {
			return // an attribute is not a value: the one it annotates follows
		}
	}
	if s == Client {
		p.requestDone(r, off, st)
	} else {
		p.replyDone(r, off, st)
	}
}

// protoErr handles bytes that are not RESP: the client side resyncs, the
// server side stops.
func (p *redisParser) protoErr(s Side, st Stream) {
	if s == Server {
		p.stop(st)
		return
	}
	r := &p.rd[Client]
	if r.m != nil {
		st.Discard(r.m)
	}
	*r = redisReader{c1: r.c1, c1Limit: r.c1Limit}
	p.resync, p.resyncNL = true, false
}

// redisSubKind returns the confirmation kind of a subscribe-family
// command, or "".
func redisSubKind(cmd string) string {
	switch cmd {
	case "SUBSCRIBE":
		return "subscribe"
	case "PSUBSCRIBE":
		return "psubscribe"
	case "SSUBSCRIBE":
		return "ssubscribe"
	case "UNSUBSCRIBE":
		return "unsubscribe"
	case "PUNSUBSCRIBE":
		return "punsubscribe"
	case "SUNSUBSCRIBE":
		return "sunsubscribe"
	}
	return ""
}

// redisPubsubWord says whether w starts a pub/sub message or confirmation.
func redisPubsubWord(w []byte) bool {
	switch string(w) {
	case "message", "pmessage", "smessage", "subscribe", "psubscribe", "ssubscribe",
		"unsubscribe", "punsubscribe", "sunsubscribe":
		return true
	}
	return false
}

// redisWords returns the first two of the words of an inline command line
// and how many there are, as bytes.Fields splits them, without its
// allocation for ASCII lines (text sent to a Redis port is parsed as inline
// commands: on IMIX a thousand lines a run).
func redisWords(b []byte) (words [2][]byte, n int64) {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			for _, w := range bytes.Fields(b) {
				if n < 2 {
					words[n] = w
				}
				n++
			}
			return words, n
		}
	}
	for i := 0; i < len(b); {
		for i < len(b) && redisSpace(b[i]) {
			i++
		}
		j := i
		for j < len(b) && !redisSpace(b[j]) {
			j++
		}
		if j > i {
			if n < 2 {
				words[n] = b[i:j:j]
			}
			n++
		}
		i = j
	}
	return words, n
}

// redisSpace is bytes.Fields's ASCII space.
func redisSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// redisUpper returns b upper-cased as a string, without a copy for the
// common commands.
func redisUpper(b []byte) string {
	var u [redisNameCap]byte
	n := copy(u[:], b)
	for i, c := range u[:n] {
		if c >= 'a' && c <= 'z' {
			u[i] = c - ('a' - 'A')
		}
	}
	switch string(u[:n]) {
	case "GET":
		return "GET"
	case "SET":
		return "SET"
	case "HGET":
		return "HGET"
	case "HSET":
		return "HSET"
	case "DEL":
		return "DEL"
	case "INCR":
		return "INCR"
	case "EXPIRE":
		return "EXPIRE"
	case "MGET":
		return "MGET"
	case "LPUSH":
		return "LPUSH"
	case "RPUSH":
		return "RPUSH"
	case "LPOP":
		return "LPOP"
	case "RPOP":
		return "RPOP"
	case "SADD":
		return "SADD"
	case "PING":
		return "PING"
	case "EXISTS":
		return "EXISTS"
	case "HGETALL":
		return "HGETALL"
	case "ZADD":
		return "ZADD"
	case "PUBLISH":
		return "PUBLISH"
	}
	return string(u[:n])
}

// inlineDone ends a client inline command (its line is in c1).
func (p *redisParser) inlineDone(r *redisReader, off int, st Stream) {
	r.state = rsType
	r.lineEnd()
	words, nw := redisWords(r.c1)
	m := r.m
	r.m = nil
	st.End(m, off)
	if nw == 0 {
		st.Discard(m) // an empty line: the server ignores it
		return
	}
	p.request(m, redisUpper(words[0]), words[1], nw, st)
}

// requestDone ends the client's top-level value.
func (p *redisParser) requestDone(r *redisReader, off int, st Stream) {
	m := r.m
	r.m = nil
	st.End(m, off)
	if r.top != '*' || r.argc == 0 || r.topNull {
		st.Discard(m) // an empty or null array is no command
		return
	}
	p.request(m, redisUpper(r.c0[:r.n0]), r.c1, r.argc, st)
}

// request records a command with argc words and queues it.
func (p *redisParser) request(m *Message, cmd string, key []byte, argc int64, st Stream) {
	m.Str("command", cmd)
	if argc >= 2 {
		key = key[:min(len(key), max(p.cfg.MaxStatement, 16))]
		m.Str("key", p.lastKey.of(key, p.txt))
	}
	q := redisReq{m: m, expect: 1, sub: redisSubKind(cmd)}
	if q.sub != "" {
		p.subscribed = true
		q.expect = int(max(1, min(argc-1, 1<<20)))
	}
	if len(p.pending) >= max(p.cfg.MaxPending, 1) {
		old := p.pending[0]
		n := copy(p.pending, p.pending[1:])
		p.pending[n] = redisReq{}
		p.pending = p.pending[:n]
		st.Exchange(old.m, nil) // dropped: counted as unanswered
		p.skip += old.expect
	}
	p.pending = append(p.pending, q)
}

// redisReplyName names a RESP type.
func redisReplyName(t byte, null bool) string {
	if null {
		return "null"
	}
	switch t {
	case '+':
		return "simple"
	case '-', '!':
		return "error"
	case ':':
		return "integer"
	case '$':
		return "bulk"
	case '*':
		return "array"
	case '_':
		return "null"
	case '%':
		return "map"
	case '~':
		return "set"
	case ',':
		return "double"
	case '#':
		return "boolean"
	case '(':
		return "bignum"
	case '=':
		return "verbatim"
	case '>':
		return "push"
	case '|':
		return "attribute"
	}
	return "unknown"
}

// replyDone ends the server's top-level value: a reply to the oldest
// request, part of a multi-reply response, or a push.
func (p *redisParser) replyDone(r *redisReader, off int, st Stream) {
	m := r.m
	r.m = nil
	if p.cont != nil && m == p.cont {
		p.contLeft--
		if p.contLeft > 0 {
			return // more confirmations to come in this response
		}
		req := p.contReq
		p.cont, p.contReq = nil, nil
		st.End(m, off)
		st.Exchange(req, m)
		return
	}
	first := r.c0[:r.n0]
	isAgg := r.top == '*' || r.top == '>'
	if isAgg && !r.topNull && (r.top == '>' || p.subscribed && !p.resp3) {
		confirms := len(p.pending) > 0 && p.skip == 0 && p.pending[0].sub != "" && string(first) == p.pending[0].sub
		if !confirms && (r.top == '>' || redisPubsubWord(first)) {
			st.End(m, off)
			m.Str("reply", "push")
			m.Str("command", string(first))
			st.Exchange(nil, m)
			return
		}
	}
	m.Str("reply", redisReplyName(r.top, r.topNull))
	isErr := r.top == '-' || r.top == '!'
	if isErr {
		w := first
		if i := bytes.IndexAny(w, " \r\n"); i >= 0 {
			w = w[:i]
		}
		m.Str("error", string(w))
	}
	if p.skip > 0 || len(p.pending) == 0 {
		// A reply owed to a dropped request, or one nobody asked for.
		p.skip = max(p.skip-1, 0)
		st.End(m, off)
		st.Exchange(nil, m)
		return
	}
	q := p.pending[0]
	n := copy(p.pending, p.pending[1:])
	p.pending[n] = redisReq{}
	p.pending = p.pending[:n]
	if q.expect > 1 && !isErr {
		// Keep the response open over the other confirmations; it ends
		// with the last one.
		p.cont, p.contReq, p.contLeft = m, q.m, q.expect-1
		return
	}
	st.End(m, off)
	st.Exchange(q.m, m)
}

func (p *redisParser) Gap(s Side, n int, st Stream) {
	if p.dead || n <= 0 {
		return
	}
	r := &p.rd[s]
	if s == Client && p.resync {
		p.resyncNL = false
		return
	}
	if r.state == rsBulk && int64(n) <= r.bulkLeft {
		// Inside a payload: count the loss down.
		r.slot = -1 // the capture would have a hole: stop it
		r.bulkLeft -= int64(n)
		if r.bulkLeft == 0 {
			p.leafDone(s, r, -1, st)
		}
		return
	}
	p.protoErr(s, st)
	if s == Client {
		p.resyncNL = false
	}
}

// stop gives up on the connection: everything in progress, including the
// requests waiting for replies (whether they were answered is unknown), is
// discarded.
func (p *redisParser) stop(st Stream) {
	p.dead = true
	for s := range p.rd {
		if m := p.rd[s].m; m != nil && m != p.cont {
			st.Discard(m)
		}
		p.rd[s].m = nil
	}
	if p.cont != nil {
		st.Discard(p.cont)
		st.Discard(p.contReq)
		p.cont, p.contReq = nil, nil
	}
	for i := range p.pending {
		st.Discard(p.pending[i].m)
		p.pending[i] = redisReq{}
	}
	p.pending = p.pending[:0]
}

func (p *redisParser) Close(st Stream) {
	if p.cont != nil {
		// A multi-reply response cut by the close: report what came.
		st.End(p.cont, -1)
		st.Exchange(p.contReq, p.cont)
		if p.rd[Server].m == p.cont {
			p.rd[Server].m = nil
		}
		p.cont, p.contReq = nil, nil
	}
	for s := range p.rd {
		if m := p.rd[s].m; m != nil {
			p.rd[s].m = nil
			st.Discard(m)
		}
	}
	for i := range p.pending {
		st.Exchange(p.pending[i].m, nil)
		p.pending[i] = redisReq{}
	}
	p.pending = p.pending[:0]
}

// Stopped reports that the parser decodes nothing more (sync lost).
func (p *redisParser) Stopped() bool { return p.dead }
