package analytics

import "bytes"

// HTTP/1.x decoder: an incremental state machine per side, fed the
// reassembled bytes of each direction chunk by chunk.
//
// A message is a start line, header fields, an empty line and a body:
//
//	GET /x HTTP/1.1\r\n            request line   (client)
//	HTTP/1.1 200 OK\r\n            status line    (server)
//	Name: value\r\n                header fields (obs-fold continuation
//	 continued value\r\n             lines start with SP or HT)
//	\r\n                           end of the header block
//	body                           Content-Length bytes, or chunked:
//	                                 1a;ext\r\n <0x1a bytes>\r\n ... 0\r\n
//	                                 trailer fields \r\n
//	                               or, for a response with neither, until
//	                                 the connection closes
//
// Bare LF is accepted wherever CRLF is. Requests wait in a FIFO (pipelining,
// bounded by Config.MaxPending); each final response answers the oldest.
// The header block is buffered (bounded by Config.MaxHeader) only when it
// spans chunks; a block that arrives whole is parsed in place. Bodies are
// counted, never buffered. After a 101 Switching Protocols or a 2xx answer
// to CONNECT the connection carries another protocol and the parser stops.
//
// Why not net/http: it allocates per message and needs whole messages; this
// parser keeps a few small buffers per connection and allocates only the
// field strings.

func init() {
	Register(&Decoder{
		Name:  "http",
		TCP:   true,
		Ports: []uint16{80, 8080, 8000, 8008, 8888, 3128},
		// HTTP over UDP is SSDP (M-SEARCH, NOTIFY): one message per
		// datagram. Requests to a multicast group are answered from
		// another address (another flow), so they show as unanswered.
		UDP:      true,
		UDPPorts: []uint16{1900},
		Detect:   httpDetect,
		Fields:   []string{"chunked", "content_type", "host", "method", "path", "status", "version"},
		Intern:   httpInterned(),
		Summary:  httpSummary,
		New:      func(cfg *Config) Parser { return newHTTPParser(cfg) },
	})
}

// httpInterned are the method and version values a store reader shares.
func httpInterned() []string {
	s := []string{"HTTP/1.0", "HTTP/1.1"}
	for _, m := range httpMethods {
		s = append(s, m[:len(m)-1])
	}
	return s
}

// httpSummary: "GET www.example.com/path -> 200".
func httpSummary(dst []byte, r *Record) []byte {
	dst = appendField(dst, r, "method", 16)
	dst = append(dst, ' ')
	dst = appendField(dst, r, "host", 80)
	dst = appendField(dst, r, "path", 120)
	dst = appendArrow(dst)
	return appendFieldOr(dst, r, "status", 8)
}

// httpMethods are the methods that mark a message start after a resync and
// in Detect, each with its trailing space. In sync, any token is a method.
var httpMethods = [...]string{
	"GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH ",
	"CONNECT ", "TRACE ",
	// WebDAV (RFC 4918, 3253, 3744, 5323, 5842, 4791)
	"PROPFIND ", "PROPPATCH ", "MKCOL ", "COPY ", "MOVE ", "LOCK ",
	"UNLOCK ", "SEARCH ", "REPORT ", "MKACTIVITY ", "CHECKOUT ",
	"CHECKIN ", "UNCHECKOUT ", "MERGE ", "MKCALENDAR ", "ACL ", "BIND ",
	"UNBIND ", "REBIND ", "UPDATE ", "LABEL ", "VERSION-CONTROL ",
	"MKWORKSPACE ", "BASELINE-CONTROL ", "ORDERPATCH ",
}

// httpDetect says whether b, the first payload of a connection, starts an
// HTTP/1.x request or response.
func httpDetect(_ Side, b []byte) bool {
	if len(b) > 24 {
		b = b[:24]
	}
	return httpCheckStart(Client, b, true) == 1 || httpCheckStart(Server, b, true) == 1
}

// httpCheckStart says whether p, the first bytes of a message of side s,
// can start a message: 1 yes, -1 no, 0 p is too short to tell. strict
// accepts only the known methods; otherwise any token followed by a space.
func httpCheckStart(s Side, p []byte, strict bool) int {
	if s == Server {
		return httpPrefix(p, "HTTP/1.")
	}
	if len(p) == 0 {
		return 0
	}
	if strict {
		if p[0] < 'A' || p[0] > 'Z' {
			return -1
		}
		r := -1
		for _, m := range httpMethods {
			if m[0] != p[0] {
				continue // -1: the common case, without the call
			}
			switch httpPrefix(p, m) {
			case 1:
				return 1
			case 0:
				r = 0
			}
		}
		return r
	}
	for i, c := range p {
		if c == ' ' {
			if i == 0 {
				return -1
			}
			return 1
		}
		if (c == '\r' || c == '\n') && httpKnownMethod(p[:i]) {
			return 1 // a bare method line: malformed, but a request
		}
		// Methods are upper case by convention (RFC 9110 9.1): an
		// extension method like CCM_POST is, lower-case text is not one.
		// Without this, any text on port 80 would be buffered as a
		// header block up to MaxHeader before it failed.
		if i >= 23 || !httpTchar(c) || c >= 'a' && c <= 'z' {
			return -1
		}
	}
	return 0 // all token characters, fewer than 24
}

// httpLineCheck bounds how far httpFirstLine looks for a version.
const httpLineCheck = 512

// httpFirstLine checks the start of a message's first line: 1 fine, -1 not
// a message, 0 undecided (the line is not complete yet). Responses and
// requests with a known method pass; another method token needs "HTTP/1."
// on the first line. full says p is all that will be looked at.
func httpFirstLine(s Side, p []byte, full bool) int {
	if s == Server {
		return 1
	}
	sp := bytes.IndexAny(p, " \r\n")
	if sp > 0 && httpKnownMethod(p[:sp]) {
		return 1
	}
	nl := bytes.IndexByte(p, '\n')
	if nl >= 0 {
		if bytes.Contains(p[:nl], []byte("HTTP/1.")) {
			return 1
		}
		return -1
	}
	if full {
		return -1
	}
	return 0
}

// httpPrefix compares p with tok: 1 p starts with tok, 0 p is a proper
// prefix of tok, -1 they differ.
func httpPrefix(p []byte, tok string) int {
	n := min(len(p), len(tok))
	if string(p[:n]) != tok[:n] {
		return -1
	}
	if n == len(tok) {
		return 1
	}
	return 0
}

// httpTchar reports whether c is a token character (RFC 9110 5.6.2).
func httpTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// States of one side.
const (
	hIdle      uint8 = iota // between messages, in sync
	hResync                 // lost: looking for a start line at a chunk start or after LF
	hHeader                 // in the start line and header fields
	hBody                   // in a Content-Length body (remain bytes left)
	hChunkSize              // in a chunk-size line
	hChunkData              // in chunk data (remain bytes left)
	hChunkCRLF              // expecting the CRLF after chunk data
	hTrailer                // in the trailer fields after the last chunk
	hCloseBody              // in a response body delimited by the close
	hWait                   // client after CONNECT: ignored until the answer
)

// httpHalf is the state of one side.
type httpHalf struct {
	state uint8
	m     *Message // message in progress (header or body), or nil

	// hdr holds the header block bytes that arrived in earlier chunks of
	// this side, less the header lines compact dropped; owned by the
	// parser, reused, never longer than Config.MaxHeader. hdrN counts all
	// of those bytes (MaxHeader's measure), cpos is where compact stopped.
	hdr      []byte
	hdrN     int
	cpos     int
	segStart int // index in the current chunk where its header bytes start
	beginOff int // index in the current chunk of m's first byte, or -1
	preOK    bool
	lineOK   bool // the first line passed httpFirstLine (or need not)
	strict   bool // check the start against httpMethods (after a resync)
	lineLen  int  // bytes of the current line so far (without the LF)
	onlyCR   bool // the current line so far is exactly "\r"
	total    int  // bytes of a chunk-size line or of the trailer so far

	remain  int64 // body or chunk bytes left
	digits  int   // hex digits of the chunk size seen
	ext     bool  // in a chunk extension
	sp      bool  // whitespace after the chunk size
	sawCR   bool  // CR of the CRLF after chunk data seen
	connect bool  // client: the request in progress is a CONNECT
	interim bool  // server: the response in progress is a 1xx other than 101

	// server: the response in progress answers pending[0]
	paired    bool
	stopAfter bool // server: stop decoding after this response (101, CONNECT 2xx)

	atLine bool // resync: the next byte starts a line
	lost   int  // resync: bytes scanned without finding a start line
}

// httpResyncMax is how many bytes one side may go without a start line,
// once lost, before the parser gives up on the connection.
const httpResyncMax = 64 << 10

// httpReq is a request waiting for its response.
type httpReq struct {
	m       *Message
	head    bool // a HEAD request: the response has no body
	connect bool
	lost    bool // its response was lost while it was still in progress
}

type httpParser struct {
	cfg  *Config
	half [2]httpHalf

	// pending are the requests whose header block is complete and that
	// wait for a response, oldest first (at most Config.MaxPending, plus
	// one being answered).
	pending []httpReq
	// srvGap: server bytes were lost since the last response began (see
	// the pairing in the status line handler).
	srvGap bool
	// assigned: pending[0] is claimed by the response in progress (the
	// server half's paired) or by held.
	assigned bool
	// held is a complete response to pending[0], whose request is still
	// in progress (a server that answers before the body is sent).
	held *Message

	fold    []byte // scratch for obs-fold header values; reused
	stopped bool
	closed  bool

	// The connection's last path, host and content type (lastString), and
	// the analyzer's texts.
	lastPath, lastHost, lastType lastString
	txt                          *textCache
}

var (
	_ Parser   = (*httpParser)(nil)
	_ usesText = (*httpParser)(nil)
)

func newHTTPParser(cfg *Config) *httpParser {
	return &httpParser{cfg: cfg}
}

// reset keeps, emptied, what a connection grew (the header buffers up to
// spareBufMax, the pending queue, the fold scratch) and the last field
// texts, which the next connection to the same service tends to repeat.
func (p *httpParser) reset() {
	*p = httpParser{cfg: p.cfg,
		half:    [2]httpHalf{{hdr: keepBytes(p.half[0].hdr, spareBufMax)}, {hdr: keepBytes(p.half[1].hdr, spareBufMax)}},
		pending: reuseQueue(p.pending), fold: keepBytes(p.fold, spareBufMax),
		lastPath: p.lastPath, lastHost: p.lastHost, lastType: p.lastType, txt: p.txt}
}

func (p *httpParser) useText(t *textCache) { p.txt = t }

func (p *httpParser) maxHeader() int {
	if p.cfg.MaxHeader > 0 {
		return p.cfg.MaxHeader
	}
	return 16 << 10
}

// Data parses the next bytes of side s. b is valid only during the call.
func (p *httpParser) Data(s Side, b []byte, st Stream) {
	if p.stopped || s > Server {
		return
	}
	h := &p.half[s]
	h.segStart, h.beginOff = 0, -1
	h.atLine = true // a chunk start is a resync candidate
	i := 0
	for i < len(b) && !p.stopped && h.state != hWait {
		switch h.state {
		case hIdle:
			if c := b[i]; c == '\r' || c == '\n' {
				i++
				continue
			}
			p.begin(h, s, i, false, st)
		case hResync:
			j := httpScan(s, b, i, h.atLine)
			if j < 0 {
				// A connection on an HTTP port that is not HTTP: give up
				// after httpResyncMax bytes without a start line, rather
				// than scan all of it.
				if h.lost += len(b) - i; h.lost > httpResyncMax {
					p.stopped = true
				}
				return
			}
			h.lost = 0
			p.begin(h, s, j, true, st)
			i = j
		case hHeader:
			i = p.header(h, s, b, i, st)
		case hBody, hChunkData:
			n := min(int64(len(b)-i), h.remain)
			i += int(n)
			h.remain -= n
			if h.remain == 0 {
				if h.state == hBody {
					p.finish(s, i, st)
				} else {
					h.state, h.sawCR = hChunkCRLF, false
				}
			}
		case hChunkSize:
			i = p.chunkSize(h, s, b, i, st)
		case hChunkCRLF:
			c := b[i]
			i++
			switch {
			case c == '\r' && !h.sawCR:
				h.sawCR = true
			case c == '\n':
				p.chunkStart(h)
			default:
				p.fail(s, b, i, st)
			}
		case hTrailer:
			end, ok := h.scanBlock(b, i)
			h.total += end - i
			i = end
			if ok {
				p.finish(s, i, st)
			} else if h.total > p.maxHeader() {
				p.fail(s, b, i, st)
			}
		case hCloseBody:
			return
		}
	}
}

// httpScan returns the index of the first resync candidate in b[i:]: a
// position at a line start (after an LF, or i itself when atLine) where a
// start line of side s begins or may begin; -1 if none.
func httpScan(s Side, b []byte, i int, atLine bool) int {
	for i < len(b) {
		if atLine && httpCheckStart(s, b[i:min(len(b), i+24)], true) >= 0 {
			return i
		}
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		atLine = true
	}
	return -1
}

func (p *httpParser) begin(h *httpHalf, s Side, off int, strict bool, st Stream) {
	h.m = st.Begin(s, off)
	h.state = hHeader
	h.hdr, h.hdrN, h.cpos = h.hdr[:0], 0, 0
	h.segStart, h.beginOff = off, off
	h.preOK, h.lineOK, h.strict = false, false, strict
	h.lineLen, h.onlyCR = 0, false
}

// header consumes header block bytes from b[i:] and returns where it
// stopped.
func (p *httpParser) header(h *httpHalf, s Side, b []byte, i int, st Stream) int {
	max := p.maxHeader()
	if !h.preOK {
		var pre [24]byte
		n := copy(pre[:], h.hdr)
		n += copy(pre[n:], b[h.segStart:])
		switch httpCheckStart(s, pre[:n], h.strict) {
		case -1:
			// Not a message start: resync after its first byte if that
			// byte is in this chunk, else here.
			if h.beginOff >= 0 {
				i = h.beginOff + 1
			}
			p.fail(s, b, i, st)
			return i
		case 0:
			// n < len(pre) here: httpCheckStart decides within 24 bytes.
			h.hdr = append(h.hdr, b[h.segStart:]...)
			h.hdrN = len(h.hdr)
			h.lineLen, h.onlyCR = len(h.hdr), false
			return len(b)
		}
		h.preOK = true
	}
	if !h.lineOK {
		// A request whose method is not a known one must show its
		// version on the first line, within httpLineCheck bytes, before
		// anything is buffered: text that merely starts with an upper-case
		// word is not a request.
		var line [httpLineCheck]byte
		n := copy(line[:], h.hdr)
		n += copy(line[n:], b[h.segStart:])
		switch httpFirstLine(s, line[:n], n == len(line)) {
		case -1:
			p.fail(s, b, i, st)
			return i
		case 1:
			h.lineOK = true
		}
	}
	end, ok := h.scanBlock(b, i)
	size := h.hdrN + end - h.segStart
	if size > max {
		p.fail(s, b, end, st)
		return end
	}
	if !ok {
		h.hdr = append(h.hdr, b[h.segStart:]...)
		h.hdrN += len(b) - h.segStart
		if len(h.hdr)-h.cpos >= httpCompactAt {
			h.compact()
		}
		return end
	}
	blk := b[h.segStart:end]
	if h.hdrN > 0 {
		h.hdr = append(h.hdr, blk...)
		blk = h.hdr
	}
	if !p.parseHead(s, blk, st) {
		h.hdr, h.hdrN, h.cpos = h.hdr[:0], 0, 0
		p.fail(s, b, end, st)
		return end
	}
	h.hdr, h.hdrN, h.cpos = h.hdr[:0], 0, 0
	p.afterHead(s, end, st)
	return end
}

// httpCompactAt is how many unsettled bytes hdr gathers before compact
// runs: a header block split over two or three segments is not touched.
const httpCompactAt = 1024

// httpHeadNames are the header fields parseHeaders reads (either side):
// the lines compact keeps.
var httpHeadNames = [...]string{"content-length", "transfer-encoding", "host", "content-type"}

// compact drops from hdr the complete header lines parseHeaders would pass
// over, so that a block that goes on and on (text on an HTTP port that
// started with "GET ", up to MaxHeader) is not all kept and copied: on
// IMIX the HTTP parser's buffering was 5-11 % of the samples. What stays
// parses the same: the start line, and each field line whose name (up to
// its first colon) is one of httpHeadNames, with its obs-fold continuation
// lines (a field line and the lines after it that start with SP or HT,
// which parseHeaders joins). A line without a colon joins with a space
// before any colon of its continuations, so its name never matches. A
// group is settled only when the first byte of the line after it is in;
// the lines from cpos on wait for more. Called only once the start line
// was checked (preOK, lineOK), which looks at hdr's first bytes.
func (h *httpHalf) compact() {
	b := h.hdr
	i := h.cpos
	if i == 0 { // after the start line, which stays whole
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 || !h.preOK || !h.lineOK {
			return
		}
		i = nl + 1
	}
	w := i // the settled bytes kept end here
	for {
		nl := bytes.IndexByte(b[i:], '\n')
		if nl < 0 {
			break
		}
		end := i + nl + 1 // the group's end: its field line, then any continuations
		for end < len(b) && (b[end] == ' ' || b[end] == '\t') {
			nl := bytes.IndexByte(b[end:], '\n')
			if nl < 0 {
				end = -1
				break
			}
			end += nl + 1
		}
		if end < 0 || end >= len(b) {
			break // the line after it has not begun: a continuation may follow
		}
		if httpKeepLine(b[i : i+nl]) {
			w += copy(b[w:], b[i:end])
		}
		i = end
	}
	// The unsettled rest moves down after the kept lines.
	n := copy(b[w:], b[i:])
	h.hdr, h.cpos = b[:w+n], w
}

// httpKeepLine says whether the field line l (without its LF) may matter
// to parseHeaders: its name up to its first colon is one it reads.
func httpKeepLine(l []byte) bool {
	// The longest name is 17 bytes: a colon farther on ends a name that is
	// none of them.
	colon := bytes.IndexByte(l[:min(len(l), httpHeadNameMax+1)], ':')
	if colon <= 0 {
		return false
	}
	for _, n := range httpHeadNames {
		if len(n) == colon && httpEqualFold(l[:colon], n) {
			return true
		}
	}
	return false
}

// httpHeadNameMax is the length of the longest of httpHeadNames.
const httpHeadNameMax = len("transfer-encoding")

// scanBlock advances over the lines of b[i:] until the end of an empty
// line. It returns the index after that line and true, or len(b) and false.
func (h *httpHalf) scanBlock(b []byte, i int) (int, bool) {
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '\n')
		seg := b[i:]
		if j >= 0 {
			seg = b[i : i+j]
		}
		if len(seg) > 0 {
			h.onlyCR = h.lineLen == 0 && len(seg) == 1 && seg[0] == '\r'
			h.lineLen += len(seg)
		}
		if j < 0 {
			return len(b), false
		}
		i += j + 1
		empty := h.lineLen == 0 || h.lineLen == 1 && h.onlyCR
		h.lineLen, h.onlyCR = 0, false
		if empty {
			return i, true
		}
	}
	return i, false
}

// parseHead parses a complete header block of side s (blk ends with the
// empty line) onto the message in progress. It returns false for a block
// that is not a valid HTTP/1.x message head.
func (p *httpParser) parseHead(s Side, blk []byte, st Stream) bool {
	h := &p.half[s]
	m := h.m
	nl := bytes.IndexByte(blk, '\n')
	if nl < 0 {
		return false
	}
	line := httpTrimCR(blk[:nl])
	rest := blk[nl+1:]

	var method []byte
	var status int
	var ok bool
	if s == Client {
		method, ok = p.parseRequestLine(m, line)
	} else {
		status, ok = parseStatusLine(m, line)
	}
	if !ok {
		return false
	}
	f, ok := p.parseHeaders(s, m, rest)
	if !ok {
		return false
	}

	// Body framing (RFC 9112 6.3).
	h.remain = 0
	h.stopAfter = false
	if s == Client {
		p.requestFraming(h, method, f, st)
		return true
	}
	h.interim = status < 200 && status != 101
	if h.interim {
		h.state = hIdle // not the answer; no body
		return true
	}
	req := p.pairResponse(h, st)
	p.responseFraming(h, m, status, req, f)
	return true
}

// parseRequestLine parses "method SP request-target SP HTTP-version" onto
// m and returns the method. A malformed target or version is kept as far as
// it goes (the server answers such requests, typically with a 400); the
// method must be a token.
func (p *httpParser) parseRequestLine(m *Message, line []byte) (method []byte, ok bool) {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 && httpKnownMethod(line) {
		sp = len(line)
	}
	if sp <= 0 {
		return nil, false
	}
	method = line[:sp]
	for _, c := range method {
		if !httpTchar(c) {
			return nil, false
		}
	}
	target, ver := line[sp:], ""
	if last := bytes.LastIndexByte(target, ' '); last >= 0 {
		if v, ok := httpVersion(target[last+1:]); ok {
			target, ver = target[:last], v
		}
	}
	target = bytes.Trim(target, " ")
	m.Str("method", httpMethodName(method))
	if n := p.cfg.MaxStatement; n > 0 && len(target) > n {
		target = target[:n]
	}
	if len(target) > 0 {
		m.Str("path", p.lastPath.of(target, p.txt))
	}
	if ver != "" {
		m.Str("version", ver)
	}
	return method, true
}

// parseStatusLine parses "HTTP-version SP status-code [SP reason]" onto m
// and returns the status code.
func parseStatusLine(m *Message, line []byte) (status int, ok bool) {
	if len(line) < 12 || line[8] != ' ' {
		return 0, false
	}
	if _, ok := httpVersion(line[:8]); !ok {
		return 0, false
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, false
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 || len(line) > 12 && line[12] != ' ' {
		return 0, false
	}
	m.Int("status", int64(status))
	return status, true
}

// httpFraming is what the header fields say about a message's body.
type httpFraming struct {
	cl      int64 // Content-Length, -1 without one
	chunked bool  // the last transfer coding is chunked
	te      bool  // a Transfer-Encoding field was present
}

// parseHeaders parses the header fields in rest (after the start line, up
// to the empty line) of side s onto m: the host of a request, the content
// type of a response, and the body framing. It returns false for
// conflicting or malformed Content-Length values.
func (p *httpParser) parseHeaders(s Side, m *Message, rest []byte) (f httpFraming, ok bool) {
	f.cl = -1
	host := false
	for len(rest) > 0 {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			break
		}
		line := httpTrimCR(rest[:nl])
		rest = rest[nl+1:]
		if len(line) == 0 {
			break
		}
		if len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			// obs-fold: join the continuation lines with one space.
			p.fold = append(p.fold[:0], line...)
			for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
				nl := bytes.IndexByte(rest, '\n')
				if nl < 0 {
					break
				}
				p.fold = append(p.fold, ' ')
				p.fold = append(p.fold, httpTrimOWS(httpTrimCR(rest[:nl]))...)
				rest = rest[nl+1:]
			}
			line = p.fold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue // not a field: tolerated
		}
		name, val := line[:colon], httpTrimOWS(line[colon+1:])
		switch {
		case httpEqualFold(name, "content-length"):
			v, ok := httpDecimal(val)
			if !ok || f.cl >= 0 && v != f.cl {
				return f, false
			}
			f.cl = v
		case httpEqualFold(name, "transfer-encoding"):
			f.te = true
			last := val
			if k := bytes.LastIndexByte(val, ','); k >= 0 {
				last = httpTrimOWS(val[k+1:])
			}
			f.chunked = httpEqualFold(last, "chunked")
		case s == Client && !host && httpEqualFold(name, "host"):
			host = true
			m.Str("host", httpLowerReuse(&p.lastHost, p.txt, val))
		case s == Server && httpEqualFold(name, "content-type"):
			if n := p.cfg.MaxStatement; n > 0 && len(val) > n {
				val = val[:n]
			}
			m.Str("content_type", p.lastType.of(val, p.txt))
		}
	}
	return f, true
}

// requestFraming sets how a request's body ends and queues the request
// for pairing.
func (p *httpParser) requestFraming(h *httpHalf, method []byte, f httpFraming, st Stream) {
	h.connect = string(method) == "CONNECT"
	switch {
	case f.chunked:
		h.state = hChunkSize
	case f.cl > 0 && !f.te:
		h.state, h.remain = hBody, f.cl
	default:
		h.state = hIdle // no body
	}
	p.push(httpReq{m: h.m, head: string(method) == "HEAD", connect: h.connect}, st)
}

// pairResponse finds the request a final response answers: the oldest
// waiting one, or, after lost server bytes, the newest (the older ones go
// out unanswered). It returns the zero httpReq when none is waiting.
func (p *httpParser) pairResponse(h *httpHalf, st Stream) httpReq {
	var req httpReq
	h.paired = false
	if p.srvGap && !p.assigned {
		// Server bytes were lost between responses: the responses to the
		// older waiting requests were in them (a keep-alive client waits
		// for each answer), so this one answers the newest request. The
		// older ones go out unanswered, flagged gap.
		p.srvGap = false
		for len(p.pending) > 1 && p.pending[0].m.Ended && !p.pending[0].lost {
			old := p.pending[0].m
			old.Gap = true
			p.pop()
			st.Exchange(old, nil)
		}
	}
	if !p.assigned && len(p.pending) > 0 && !p.pending[0].lost {
		p.assigned, h.paired = true, true
		req = p.pending[0]
	}
	return req
}

// responseFraming sets how a final response's body ends, given the request
// it answers, and whether the connection carries another protocol after it.
func (p *httpParser) responseFraming(h *httpHalf, m *Message, status int, req httpReq, f httpFraming) {
	tunnel := req.connect && status/100 == 2
	if req.connect && !tunnel && p.half[Client].state == hWait {
		p.half[Client].state = hResync
	}
	switch {
	case status == 101 || tunnel:
		h.state, h.stopAfter = hIdle, true
	case req.head || status == 204 || status == 304:
		h.state = hIdle
	case f.chunked:
		h.state = hChunkSize
		m.Int("chunked", 1)
	case f.cl >= 0 && !f.te:
		h.state, h.remain = hBody, f.cl
		if f.cl == 0 {
			h.state = hIdle
		}
	default:
		h.state = hCloseBody
	}
}

// afterHead is called when the header block ended at b[end-1].
func (p *httpParser) afterHead(s Side, end int, st Stream) {
	h := &p.half[s]
	switch {
	case s == Server && h.interim:
		// 100 Continue and the like: the final response is still to come.
		st.Discard(h.m)
		h.m, h.state = nil, hIdle
	case h.state == hIdle:
		p.finish(s, end, st)
	case h.state == hChunkSize:
		p.chunkStart(h)
	}
}

func (p *httpParser) chunkStart(h *httpHalf) {
	h.state = hChunkSize
	h.remain, h.digits, h.ext, h.sp, h.total = 0, 0, false, false, 0
}

// chunkSize consumes a chunk-size line ("1a;ext\r\n") from b[i:].
func (p *httpParser) chunkSize(h *httpHalf, s Side, b []byte, i int, st Stream) int {
	for i < len(b) {
		c := b[i]
		i++
		if c == '\n' {
			switch {
			case h.digits == 0:
				p.fail(s, b, i, st)
			case h.remain == 0:
				h.state, h.total = hTrailer, 0
				h.lineLen, h.onlyCR = 0, false
			default:
				h.state = hChunkData
			}
			return i
		}
		h.total++
		if h.total > p.maxHeader() {
			p.fail(s, b, i, st)
			return i
		}
		if h.ext {
			continue
		}
		if d := httpHex(c); d >= 0 {
			if h.sp || h.remain > 1<<55 {
				p.fail(s, b, i, st)
				return i
			}
			h.remain = h.remain<<4 | int64(d)
			h.digits++
			continue
		}
		switch c {
		case ';':
			h.ext = true
		case ' ', '\t', '\r':
			h.sp = true
		default:
			p.fail(s, b, i, st)
			return i
		}
	}
	return i
}

// finish ends side s's message at off (-1: at the last byte delivered) and
// reports it.
func (p *httpParser) finish(s Side, off int, st Stream) {
	h := &p.half[s]
	m := h.m
	h.m, h.state = nil, hIdle
	st.End(m, off)
	if s == Client {
		if h.connect {
			h.state = hWait
		}
		p.reqDone(m, st)
		return
	}
	p.respDone(m, st)
	if h.stopAfter {
		p.stop(st)
	}
}

// cut ends side s's message, whose framing a gap destroyed, at the last
// byte delivered and resynchronises.
func (p *httpParser) cut(s Side, st Stream) {
	p.finish(s, -1, st)
	if !p.stopped {
		p.half[s].state = hResync
	}
}

// fail drops side s's message in progress (b[:i] consumed) and resyncs.
func (p *httpParser) fail(s Side, b []byte, i int, st Stream) {
	h := &p.half[s]
	if h.m != nil {
		if s == Client {
			p.dropReq(st)
		} else {
			p.dropResp(st)
		}
	}
	h.state = hResync
	h.atLine = i == 0 || i <= len(b) && b[i-1] == '\n'
}

func (p *httpParser) push(r httpReq, st Stream) {
	max := max(p.cfg.MaxPending, 1)
	for len(p.pending) >= max {
		k := 0
		if p.assigned {
			k = 1
		}
		if k >= len(p.pending) {
			break
		}
		old := p.pending[k].m
		copy(p.pending[k:], p.pending[k+1:])
		p.pending[len(p.pending)-1] = httpReq{}
		p.pending = p.pending[:len(p.pending)-1]
		if old.Ended {
			st.Exchange(old, nil)
		} else {
			st.Discard(old)
		}
	}
	p.pending = append(p.pending, r)
}

func (p *httpParser) pop() {
	copy(p.pending, p.pending[1:])
	p.pending[len(p.pending)-1] = httpReq{}
	p.pending = p.pending[:len(p.pending)-1]
}

// reqDone pairs a request that just ended with a response that came first.
func (p *httpParser) reqDone(m *Message, st Stream) {
	if len(p.pending) == 0 || p.pending[0].m != m {
		return
	}
	switch {
	case p.held != nil:
		resp := p.held
		p.held, p.assigned = nil, false
		p.pop()
		st.Exchange(m, resp)
	case p.pending[0].lost:
		p.pop()
		st.Exchange(m, nil)
	}
}

// respDone pairs a response that just ended.
func (p *httpParser) respDone(m *Message, st Stream) {
	h := &p.half[Server]
	if !h.paired {
		st.Exchange(nil, m) // no request seen for it
		return
	}
	h.paired = false
	if req := p.pending[0].m; req.Ended {
		p.assigned = false
		p.pop()
		st.Exchange(req, m)
		return
	}
	p.held = m
}

// dropReq discards the client's message in progress.
func (p *httpParser) dropReq(st Stream) {
	h := &p.half[Client]
	m := h.m
	h.m = nil
	if n := len(p.pending); n > 0 && p.pending[n-1].m == m {
		if n == 1 && p.assigned {
			p.assigned = false
			p.half[Server].paired = false
			if p.held != nil {
				st.Exchange(nil, p.held)
				p.held = nil
			}
		}
		p.pending[n-1] = httpReq{}
		p.pending = p.pending[:n-1]
	}
	st.Discard(m)
}

// dropResp discards the server's message in progress; the request it
// answered is reported unanswered.
func (p *httpParser) dropResp(st Stream) {
	h := &p.half[Server]
	m := h.m
	h.m = nil
	if h.paired {
		h.paired, p.assigned = false, false
		if req := p.pending[0].m; req.Ended {
			p.pop()
			st.Exchange(req, nil)
		} else {
			p.pending[0].lost = true
		}
	}
	st.Discard(m)
}

// stop ends decoding: the connection now carries another protocol.
func (p *httpParser) stop(st Stream) {
	p.stopped = true
	if p.half[Server].m != nil {
		p.dropResp(st)
	}
	if p.half[Client].m != nil {
		p.dropReq(st)
	}
}

// Gap resynchronises side s after n lost bytes.
func (p *httpParser) Gap(s Side, n int, st Stream) {
	if p.stopped || s > Server || n <= 0 {
		return
	}
	h := &p.half[s]
	if s == Server {
		p.srvGap = true
	}
	switch h.state {
	case hIdle:
		h.state = hResync
	case hHeader:
		p.fail(s, nil, 0, st)
	case hBody:
		if int64(n) < h.remain {
			h.remain -= int64(n)
			return
		}
		over := int64(n) > h.remain
		h.remain = 0
		if over {
			p.cut(s, st)
		} else {
			p.finish(s, -1, st)
		}
	case hChunkData:
		if int64(n) <= h.remain {
			h.remain -= int64(n)
			if h.remain == 0 {
				h.state, h.sawCR = hChunkCRLF, false
			}
			return
		}
		p.cut(s, st)
	case hChunkSize, hChunkCRLF, hTrailer:
		p.cut(s, st)
	}
	// hResync, hCloseBody (the lost bytes are body), hWait: nothing to do.
}

// Close reports what is left when the connection ends.
func (p *httpParser) Close(st Stream) {
	if p.closed {
		return
	}
	p.closed = true
	if sv := &p.half[Server]; sv.m != nil {
		if sv.state == hCloseBody {
			m := sv.m
			sv.m = nil
			st.End(m, -1)
			p.respDone(m, st)
		} else {
			p.dropResp(st)
		}
	}
	if p.half[Client].m != nil {
		p.dropReq(st)
	}
	if p.held != nil { // not reachable: dropReq reports it
		st.Exchange(nil, p.held)
		p.held = nil
	}
	for _, r := range p.pending {
		if r.m.Ended {
			st.Exchange(r.m, nil)
		} else {
			st.Discard(r.m)
		}
	}
	clear(p.pending)
	p.pending = p.pending[:0] // its array is reused (reset)
	p.stopped = true
}

// httpVersion parses "HTTP/1.x".
func httpVersion(b []byte) (string, bool) {
	if len(b) != 8 || string(b[:7]) != "HTTP/1." || b[7] < '0' || b[7] > '9' {
		return "", false
	}
	switch b[7] {
	case '0':
		return "1.0", true
	case '1':
		return "1.1", true
	}
	return "1." + string(b[7:]), true
}

// httpKnownMethod reports whether b is one of httpMethods.
func httpKnownMethod(b []byte) bool {
	for _, m := range httpMethods {
		if len(b) == len(m)-1 && string(b) == m[:len(m)-1] {
			return true
		}
	}
	return false
}

// httpMethodName returns method as a string, without allocating for the
// common ones.
func httpMethodName(b []byte) string {
	for _, m := range httpMethods {
		if len(b) == len(m)-1 && string(b) == m[:len(m)-1] {
			return m[:len(m)-1]
		}
	}
	return string(b)
}

func httpTrimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

func httpTrimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// httpEqualFold compares b with the lower-case ASCII string lower,
// ignoring case.
func httpEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// httpLower returns b in lower case (one allocation).
// httpLowerReuse is httpLower through last (lastString) and t.
func httpLowerReuse(last *lastString, t *textCache, b []byte) string {
	if len(b) > 128 {
		return httpLower(b)
	}
	var tmp [128]byte
	buf := tmp[:0]
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return last.of(buf, t)
}

func httpLower(b []byte) string {
	var tmp [128]byte
	buf := tmp[:0]
	if len(b) > len(tmp) {
		buf = make([]byte, 0, len(b))
	}
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return string(buf)
}

// httpDecimal parses a Content-Length value.
func httpDecimal(b []byte) (int64, bool) {
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

func httpHex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Stopped reports that the parser decodes nothing more (after a protocol
// switch): the analyzer then stops feeding it.
func (p *httpParser) Stopped() bool { return p.stopped }
