package analytics

import "bytes"

// Memcached: the text protocol over TCP
// (https://github.com/memcached/memcached/blob/master/doc/protocol.txt),
// classic commands and the meta commands (mg, ms, md, ma, mn, me).
//
// Both sides are lines ending in "\r\n". A storage request (set, add,
// replace, append, prepend, cas; ms) is its command line and a data block
// of the length the line gives, plus "\r\n"; a retrieval response is
// "VALUE <key> <flags> <bytes> [<cas>]" lines, each followed by its data
// block, ended by "END" (a miss is "END" alone); a meta hit is
// "VA <size> <flags>*" and its data block. Data blocks are counted down,
// never kept, however large and however many chunks they span; of a line
// only its first mcLineKeep bytes are kept.
//
// The server answers in order, so requests and responses pair first in,
// first out (pipelining). A response ends at its first line, except for
// get, gets, gat, gats and stats, whose response runs to "END" (or an
// error line). A request with "noreply" gets no response: it is reported
// alone, with noreply=1. "quit" gets none either and is not reported.
// Memcached reads a data block by its announced length as this parser
// does, so a block of the wrong length ("CLIENT_ERROR bad data chunk")
// leaves both in step: its rest is read as the next command line (and
// answered "ERROR").
//
// Not decoded: the binary protocol (first byte 0x80 or 0x81; the
// connection stops being decoded) and meta commands in quiet mode (flag
// q: the server answers only some of them, so responses cannot be paired;
// decoding stops at the first one). Over UDP memcached frames each
// datagram with a header this decoder does not read.
//
// Gaps: inside a data block the loss is counted down. Elsewhere on the
// client side the request in progress is discarded and decoding resumes
// after the next line end (responses may then pair with the wrong request
// if whole requests were lost); on the server side decoding stops.

const (
	mcPort      = 11211
	mcLineKeep  = 320     // bytes of a line kept: a command, a 250-byte key and numbers
	mcLineMax   = 1 << 16 // a longer line is not memcached: stop
	mcTokenMax  = 24      // bytes kept of a command name or status word
	mcErrorKeep = 120     // bytes kept of an error message
)

func init() {
	Register(&Decoder{
		Name:    "memcached",
		TCP:     true,
		Ports:   []uint16{mcPort},
		Backend: true,
		Detect:  mcDetect,
		Fields:  []string{"command", "error", "hits", "key", "keys", "noreply", "status", "value_len"},
		Intern:  mcInterned(),
		Summary: mcSummary,
		New:     func(cfg *Config) Parser { return &mcParser{cfg: cfg} },
	})
}

// mcCommands are the commands Detect accepts and the parser names; the
// others are recorded as sent (cut to mcTokenMax bytes).
var mcCommands = [...]string{
	"get", "gets", "gat", "gats", "set", "add", "replace", "append", "prepend", "cas",
	"delete", "incr", "decr", "touch", "stats", "flush_all", "version", "verbosity", "quit",
	"mg", "ms", "md", "ma", "mn", "me",
}

// mcStatuses are the response words memcached sends on a line of their own
// or first on a line.
var mcStatuses = [...]string{
	"VALUE", "END", "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED", "TOUCHED",
	"OK", "ERROR", "CLIENT_ERROR", "SERVER_ERROR", "VERSION", "STAT", "RESET", "NUMBER",
	"VA", "HD", "EN", "NF", "NS", "EX", "MN", "ME",
}

// mcInterned are the command and status values a store reader shares.
func mcInterned() []string {
	s := append([]string(nil), mcCommands[:]...)
	return append(s, mcStatuses[:]...)
}

// mcSummary: "get user:1 +2 keys -> VALUE hits=2", "set k -> STORED",
// "incr n -> CLIENT_ERROR cannot increment ...".
func mcSummary(dst []byte, r *Record) []byte {
	dst = appendField(dst, r, "command", mcTokenMax)
	if r.Has("key") {
		dst = append(dst, ' ')
		dst = appendField(dst, r, "key", 60)
	}
	if f, ok := r.Get("keys"); ok && f.IsInt && f.Int > 1 {
		dst = append(dst, " +"...)
		dst = appendField(dst, r, "keys", 8)
		dst = append(dst, " keys"...)
	}
	if r.Has("noreply") {
		return append(dst, " noreply"...)
	}
	dst = appendArrow(dst)
	dst = appendFieldOr(dst, r, "status", mcTokenMax)
	if r.Has("hits") {
		dst = append(dst, " hits="...)
		dst = appendField(dst, r, "hits", 8)
	}
	if r.Has("error") {
		dst = append(dst, ' ')
		dst = appendField(dst, r, "error", 60)
	}
	return dst
}

// mcDetect says whether a client's first payload starts with a memcached
// command line: a known command followed by a space or the line end, and
// a "\r\n" in the payload.
func mcDetect(s Side, b []byte) bool {
	if s != Client {
		return false
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 1 || b[nl-1] != '\r' {
		return false
	}
	line := b[:nl-1]
	for _, c := range mcCommands {
		if len(line) >= len(c) && string(line[:len(c)]) == c && (len(line) == len(c) || line[len(c)] == ' ') {
			return true
		}
	}
	return false
}

type mcParser struct {
	cfg  *Config
	dead bool // sync lost on the server side, or a protocol this parser does not read

	rd [2]mcReader

	// pending are the requests waiting for a response, oldest first, at
	// most cfg.MaxPending; the parser owns their messages until Exchange.
	pending []mcReq
	// skip counts responses owed to requests dropped from pending when it
	// was full; they are reported alone.
	skip int

	resync bool // client side lost sync: skip to after the next '\n'
	lost   int  // bytes skipped while resyncing
}

var _ Parser = (*mcParser)(nil)

type mcReq struct {
	m        *Message
	untilEnd bool // the response runs to "END" (retrievals, stats)
	get      bool // a retrieval: its response counts hits
}

// Reader states.
const (
	mcLine = iota // in a line
	mcData        // in a data block and its "\r\n"
)

// mcReader reads one side.
type mcReader struct {
	m     *Message // the message being read (begun, not ended), or nil
	state int

	line    [mcLineKeep]byte // start of the current line
	nline   int              // bytes kept in line
	lineLen int              // bytes of the line so far

	dataLeft int64 // data block bytes (with its "\r\n") still to come
	dataEnds bool  // the message ends with the data block (storage request, VA)
	noreply  bool  // the storage request in progress said noreply

	// The server's response in progress: lines read, VALUE blocks and
	// their bytes, and whether it runs to "END".
	lines    int
	hits     int64
	valueLen int64
	untilEnd bool
	get      bool
}

func (r *mcReader) addLine(b []byte) {
	if n := copy(r.line[r.nline:], b); n > 0 {
		r.nline += n
	}
	r.lineLen += len(b)
}

// text returns the kept part of the line, without its '\r'.
func (r *mcReader) text() []byte {
	l := r.line[:r.nline]
	if r.nline == r.lineLen && len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	return l
}

func (p *mcParser) Data(s Side, b []byte, st Stream) {
	if p.dead {
		return
	}
	r := &p.rd[s]
	i := 0
	if s == Client && p.resync {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			if p.lost += len(b); p.lost > mcLineMax {
				p.stop(st)
			}
			return
		}
		i, p.resync, p.lost = nl+1, false, 0
	}
	for i < len(b) && !p.dead {
		switch r.state {
		case mcLine:
			if r.m == nil {
				if r.lineLen == 0 && (b[i] == 0x80 || b[i] == 0x81) {
					p.stop(st) // the binary protocol
					return
				}
				r.m = st.Begin(s, i)
				r.lines, r.hits, r.valueLen, r.untilEnd = 0, 0, 0, false
			}
			j := bytes.IndexByte(b[i:], '\n')
			end := len(b)
			if j >= 0 {
				end = i + j
			}
			r.addLine(b[i:end])
			if j < 0 {
				if r.lineLen > mcLineMax {
					p.stop(st)
				}
				return
			}
			i = end + 1
			if s == Client {
				p.requestLine(r, i, st)
			} else {
				p.responseLine(r, i, st)
			}
			r.nline, r.lineLen = 0, 0
		case mcData:
			k := min(int64(len(b)-i), r.dataLeft)
			i += int(k)
			r.dataLeft -= k
			if r.dataLeft == 0 {
				p.dataDone(s, r, i, st)
			}
		}
	}
}

// mcToken splits the first space-separated token off b.
func mcToken(b []byte) (tok, rest []byte) {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	if k := bytes.IndexByte(b, ' '); k >= 0 {
		return b[:k], b[k+1:]
	}
	return b, nil
}

// mcTokens splits b into at most len(dst) space-separated tokens and
// returns how many; further tokens are counted in the second result.
func mcTokens(b []byte, dst [][]byte) (n, more int) {
	for {
		var t []byte
		t, b = mcToken(b)
		if len(t) == 0 {
			return n, more
		}
		if n < len(dst) {
			dst[n] = t
			n++
		} else {
			more++
		}
	}
}

// mcNumber parses an unsigned decimal of at most 18 digits.
func mcNumber(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// mcName returns the interned name of a command or status word, or a copy
// of b cut to mcTokenMax bytes.
func mcName(b []byte, names []string) string {
	for _, n := range names {
		if string(b) == n {
			return n
		}
	}
	return string(b[:min(len(b), mcTokenMax)])
}

func (p *mcParser) key(m *Message, k []byte) {
	if len(k) > 0 {
		m.Str("key", string(k[:min(len(k), max(p.cfg.MaxStatement, 16))]))
	}
}

// requestLine handles a complete client line ending at b[off-1].
func (p *mcParser) requestLine(r *mcReader, off int, st Stream) {
	m := r.m
	var tok [8][]byte
	n, more := mcTokens(r.text(), tok[:])
	if n == 0 {
		// An empty line: memcached answers it "ERROR", so it is a request.
		p.request(r, off, mcReq{}, st)
		return
	}
	cmd := tok[0]
	m.Str("command", mcName(cmd, mcCommands[:]))
	noreply := n > 1 && more == 0 && string(tok[n-1]) == "noreply"
	switch string(cmd) {
	case "get", "gets", "gat", "gats":
		k := 1
		if string(cmd) == "gat" || string(cmd) == "gats" { // exptime first
			k = 2
		}
		if n > k {
			p.key(m, tok[k])
			m.Int("keys", int64(n-k+more))
		}
		p.request(r, off, mcReq{untilEnd: true, get: true}, st)
		return
	case "stats":
		// "stats reset" and "stats detail on|off" answer one line.
		one := n > 1 && (string(tok[1]) == "reset" || string(tok[1]) == "detail" && n > 2 && string(tok[2]) != "dump")
		p.request(r, off, mcReq{untilEnd: !one}, st)
		return
	case "set", "add", "replace", "append", "prepend", "cas":
		if n > 1 {
			p.key(m, tok[1])
		}
		// <cmd> <key> <flags> <exptime> <bytes> [<cas unique>] [noreply]:
		// memcached reads the data block only from a well-formed line.
		want := 5
		if string(cmd) == "cas" {
			want = 6
		}
		if noreply {
			want++
		}
		if n == want && more == 0 && len(tok[1]) <= 250 {
			_, ok1 := mcNumber(tok[2])
			_, ok2 := mcNumber(bytes.TrimPrefix(tok[3], []byte("-")))
			size, ok3 := mcNumber(tok[4])
			if ok1 && ok2 && ok3 {
				m.Int("value_len", size)
				r.state, r.dataLeft, r.dataEnds, r.noreply = mcData, size+2, true, noreply
				return
			}
		}
		p.request(r, off, mcReq{}, st)
		return
	case "mg", "ms", "md", "ma", "mn", "me":
		if n > 1 && string(cmd) != "mn" {
			p.key(m, tok[1])
		}
		for _, f := range tok[min(2, n):n] {
			if len(f) == 1 && f[0] == 'q' {
				p.stop(st) // quiet mode: responses cannot be paired
				return
			}
		}
		if string(cmd) == "ms" && n > 2 {
			if size, ok := mcNumber(tok[2]); ok {
				m.Int("value_len", size)
				r.state, r.dataLeft, r.dataEnds, r.noreply = mcData, size+2, true, false
				return
			}
		}
		p.request(r, off, mcReq{get: string(cmd) == "mg"}, st)
		return
	}
	switch string(cmd) {
	case "delete", "incr", "decr", "touch":
		if n > 1 {
			p.key(m, tok[1])
		}
	case "quit":
		st.End(m, off)
		st.Discard(m)
		r.m = nil
		return
	}
	if noreply {
		r.noreply = true
	}
	p.request(r, off, mcReq{}, st)
}

// request ends the client's message at off and queues it (q, given its m)
// for its response, or reports it alone when it said noreply.
func (p *mcParser) request(r *mcReader, off int, q mcReq, st Stream) {
	m := r.m
	r.m = nil
	st.End(m, off)
	if r.noreply {
		r.noreply = false
		m.Int("noreply", 1)
		st.Exchange(m, nil)
		return
	}
	if len(p.pending) >= max(p.cfg.MaxPending, 1) {
		old := p.pending[0]
		n := copy(p.pending, p.pending[1:])
		p.pending[n] = mcReq{}
		p.pending = p.pending[:n]
		st.Exchange(old.m, nil) // dropped: counted as unanswered
		p.skip++
	}
	q.m = m
	p.pending = append(p.pending, q)
}

// responseLine handles a complete server line ending at b[off-1].
func (p *mcParser) responseLine(r *mcReader, off int, st Stream) {
	m := r.m
	var tok [5][]byte
	n, _ := mcTokens(r.text(), tok[:])
	var word []byte
	if n > 0 {
		word = tok[0]
	}
	r.lines++
	if r.lines == 1 {
		switch {
		case p.skip == 0 && len(p.pending) > 0:
			r.untilEnd, r.get = p.pending[0].untilEnd, p.pending[0].get
		default: // no request known: guess from the line
			r.untilEnd = string(word) == "VALUE" || string(word) == "STAT"
			r.get = string(word) == "VALUE" || string(word) == "VA"
		}
		status := "NUMBER" // incr, decr
		if _, ok := mcNumber(word); !ok {
			status = mcName(word, mcStatuses[:])
		}
		m.Str("status", status)
	}
	switch string(word) {
	case "VALUE": // VALUE <key> <flags> <bytes> [<cas unique>]
		size, ok := int64(0), n >= 4
		if ok {
			size, ok = mcNumber(tok[3])
		}
		if !ok {
			p.stop(st)
			return
		}
		r.hits++
		r.valueLen += size
		r.untilEnd = true
		r.state, r.dataLeft, r.dataEnds = mcData, size+2, false
		return
	case "VA": // VA <size> <flags>*
		size, ok := int64(0), n >= 2
		if ok {
			size, ok = mcNumber(tok[1])
		}
		if !ok {
			p.stop(st)
			return
		}
		r.hits++
		r.valueLen += size
		r.state, r.dataLeft, r.dataEnds = mcData, size+2, true
		return
	case "CLIENT_ERROR", "SERVER_ERROR":
		_, msg := mcToken(r.text())
		if len(msg) > 0 {
			m.Str("error", string(msg[:min(len(msg), mcErrorKeep)]))
		}
	case "ERROR", "END":
	default:
		if r.untilEnd {
			return // STAT lines and the like
		}
	}
	p.response(r, off, st)
}

// dataDone is called when a data block ended at b[off-1] (off -1: the
// block ended in a gap).
func (p *mcParser) dataDone(s Side, r *mcReader, off int, st Stream) {
	r.state = mcLine
	r.nline, r.lineLen = 0, 0
	if !r.dataEnds {
		return // a VALUE block: more lines follow
	}
	if s == Client {
		p.request(r, off, mcReq{}, st)
		return
	}
	p.response(r, off, st)
}

// response ends the server's message at off and pairs it with the oldest
// waiting request.
func (p *mcParser) response(r *mcReader, off int, st Stream) {
	m := r.m
	r.m = nil
	if r.get {
		m.Int("hits", r.hits)
	}
	if r.hits > 0 {
		m.Int("value_len", r.valueLen)
	}
	st.End(m, off)
	switch {
	case p.skip > 0:
		p.skip--
		st.Exchange(nil, m)
	case len(p.pending) > 0:
		q := p.pending[0]
		n := copy(p.pending, p.pending[1:])
		p.pending[n] = mcReq{}
		p.pending = p.pending[:n]
		st.Exchange(q.m, m)
	default:
		st.Exchange(nil, m)
	}
}

func (p *mcParser) Gap(s Side, n int, st Stream) {
	if p.dead || n <= 0 {
		return
	}
	r := &p.rd[s]
	if s == Client && p.resync {
		return
	}
	if r.state == mcData && int64(n) <= r.dataLeft {
		// Inside a data block: count the loss down.
		r.dataLeft -= int64(n)
		if r.dataLeft == 0 {
			p.dataDone(s, r, -1, st)
		}
		return
	}
	if s == Server {
		p.stop(st)
		return
	}
	if r.m != nil {
		st.Discard(r.m)
		r.m = nil
	}
	r.state, r.nline, r.lineLen = mcLine, 0, 0
	p.resync, p.lost = true, 0
}

// stop gives up on the connection: everything in progress, including the
// requests waiting for responses (whether they were answered is unknown),
// is discarded.
func (p *mcParser) stop(st Stream) {
	p.dead = true
	for s := range p.rd {
		if m := p.rd[s].m; m != nil {
			st.Discard(m)
		}
		p.rd[s] = mcReader{}
	}
	for i := range p.pending {
		st.Discard(p.pending[i].m)
		p.pending[i] = mcReq{}
	}
	p.pending = p.pending[:0]
}

func (p *mcParser) Close(st Stream) {
	for s := range p.rd {
		if m := p.rd[s].m; m != nil {
			p.rd[s].m = nil
			st.Discard(m)
		}
	}
	for i := range p.pending {
		st.Exchange(p.pending[i].m, nil)
		p.pending[i] = mcReq{}
	}
	p.pending = p.pending[:0]
}

// Stopped reports that the parser decodes nothing more (sync lost, the
// binary protocol, or quiet meta commands).
func (p *mcParser) Stopped() bool { return p.dead }
