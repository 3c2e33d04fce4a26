package analytics

import "strconv"

// MySQL client/server protocol
// (https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html).
//
// Every message is a sequence of packets:
//
//	+---------------+-----+----------------------+
//	| length (3, LE)| seq | payload (length)     |
//	+---------------+-----+----------------------+
//
// A payload of 0xFFFFFF bytes continues in the next packet (one logical
// packet). The parser keeps the first bytes of each logical packet (the
// command byte and statement, a greeting's capabilities, a response's
// first bytes) and counts the rest down, so rows and blobs of any size
// cost nothing.
//
// Phases: the server's greeting (v10) gives its capabilities; the
// client's handshake response is the "login" request and the server's
// OK or ERR after it (auth switch round trips skipped) its response. Then
// each client packet with sequence id 0 is a command and the server's
// packets up to the end of its response (OK, ERR, EOF, or a result set:
// column count, column definitions, EOF unless CLIENT_DEPRECATE_EOF,
// rows, EOF or OK; several result sets while SERVER_MORE_RESULTS_EXISTS)
// are its response. COM_STMT_CLOSE, COM_QUIT and COM_STMT_SEND_LONG_DATA
// get no response and are reported at once.
//
// Decoding stops (quietly: what is in progress is discarded) on TLS
// (CLIENT_SSL in the login request), on compression (CLIENT_COMPRESS or
// zstd negotiated, after the login's OK), on a LOCAL INFILE request (after
// reporting it with result=local_infile), on a binlog dump, on a gap, and
// on bytes that are not MySQL before the login. A capture that starts mid
// connection is picked up at the first client command packet (sequence
// id 0); the capabilities are then unknown and EOF packets are assumed.

const (
	mysqlClientCompress       = 0x20
	mysqlClientProtocol41     = 0x200
	mysqlClientSSL            = 0x800
	mysqlClientDeprecateEOF   = 1 << 24
	mysqlClientZstd           = 1 << 26
	mysqlClientQueryAttrs     = 1 << 27
	mysqlStatusMoreResults    = 0x0008
	mysqlStatusCursorExists   = 0x0040
	mysqlMaxPacket            = 0xFFFFFF
	mysqlKeepMin              = 512
	mysqlComQuery             = 0x03
	mysqlComStmtPrepare       = 0x16
	mysqlGreetingMaxPayload   = 1 << 12
	mysqlGreetingMinPayload   = 20
	mysqlVersionMaxPrintable  = 0x7e
	mysqlVersionMinPrintable  = 0x20
	mysqlDetectMaxVersionScan = 64
)

func init() {
	Register(&Decoder{
		Name:    "mysql",
		TCP:     true,
		Ports:   []uint16{3306},
		Backend: true,
		Detect:  mysqlDetect,
		Fields:  []string{"command", "error_code", "query_attrs", "result", "rows", "statement"},
		Summary: mysqlSummary,
		New:     func(cfg *Config) Parser { return newMySQLParser(cfg) },
	})
}

// mysqlSummary: "SELECT 1 -> ok rows=1" (statement, then result or error
// code, and rows).
func mysqlSummary(dst []byte, r *Record) []byte {
	dst = appendStatement(dst, r)
	dst = appendArrow(dst)
	switch {
	case r.Has("error_code"):
		dst = append(dst, "error "...)
		dst = appendField(dst, r, "error_code", 16)
	case r.Has("result"):
		dst = appendField(dst, r, "result", 40)
	default:
		dst = append(dst, '-')
	}
	if r.Has("rows") {
		dst = append(dst, " rows="...)
		dst = appendField(dst, r, "rows", 20)
	}
	return dst
}

// mysqlDetect says whether the server's first payload is a protocol v10
// greeting: 3-byte length, sequence 0, 0x0a, a NUL-terminated version of
// printable characters.
func mysqlDetect(s Side, b []byte) bool {
	if s != Server || len(b) < 7 {
		return false
	}
	n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
	if b[3] != 0 || b[4] != 0x0a || n < mysqlGreetingMinPayload || n > mysqlGreetingMaxPayload {
		return false
	}
	end := min(len(b), 4+n, 5+mysqlDetectMaxVersionScan)
	for i := 5; i < end; i++ {
		c := b[i]
		if c == 0 {
			return i > 5
		}
		if c < mysqlVersionMinPrintable || c > mysqlVersionMaxPrintable {
			return false
		}
	}
	return false
}

// Phases of a connection.
const (
	myGreeting = iota // waiting for the server's greeting
	myLogin           // greeting seen, waiting for the client's handshake response
	myAuth            // login sent, waiting for the server's OK or ERR
	myCommand         // command phase
)

// Kinds of response a command expects.
const (
	mrSimple    = iota // one packet: OK, ERR or EOF
	mrResult           // OK, ERR, LOCAL INFILE or result sets
	mrPrepare          // COM_STMT_PREPARE's OK with parameter and column definitions
	mrFieldList        // column definitions up to EOF
	mrStats            // one text packet
	mrAuth             // COM_CHANGE_USER: auth round trips up to OK or ERR
	mrFetch            // rows up to EOF
	mrNone             // no response
	mrStop             // a stream follows (binlog dump): stop decoding
)

// States of the response being read.
const (
	msFirst     = iota // the response's first packet (or the next result's)
	msCols             // column definitions
	msColEOF           // the EOF after the column definitions
	msRows             // rows, up to EOF/OK/ERR
	msSkip             // packets to skip (prepare's definitions)
	msFieldList        // column definitions up to EOF
)

type mysqlParser struct {
	cfg   *Config
	dead  bool
	phase int
	caps  uint32 // server capabilities & client capabilities (after the login)
	srv   uint32 // server capabilities (from the greeting)
	mid   bool   // the login was not seen: caps are a guess

	sd [2]mysqlSide

	loginReq *Message // the login request waiting for the server's OK/ERR

	// pending are the commands waiting for responses, oldest first, at
	// most cfg.MaxPending; the parser owns their messages until Exchange.
	pending []mysqlReq
	rs      int // state of the response to pending[0]
	left    int // packets still to come in msCols/msSkip
}

var _ Parser = (*mysqlParser)(nil)

type mysqlReq struct {
	m      *Message
	kind   int
	result string
	code   int64
	rows   int64
}

// mysqlSide is the packet reader of one side.
type mysqlSide struct {
	m     *Message // the message begun at a packet header and not ended, or nil
	hdr   [4]byte
	nh    int    // header bytes read
	plen  int    // payload length of the current packet
	left  int    // payload bytes still to come
	seq   byte   // sequence id of the logical packet's first packet
	total int    // payload bytes of the logical packet
	cont  bool   // the previous packet was 0xFFFFFF bytes: this one continues it
	buf   []byte // the logical packet's first payload bytes (cap: the keep limit)
}

func newMySQLParser(cfg *Config) *mysqlParser {
	p := &mysqlParser{cfg: cfg}
	keep := max(cfg.MaxStatement+64, mysqlKeepMin)
	p.sd[Client].buf = make([]byte, 0, keep)
	p.sd[Server].buf = make([]byte, 0, mysqlKeepMin)
	return p
}

func (p *mysqlParser) Data(s Side, b []byte, st Stream) {
	d := &p.sd[s]
	for i := 0; i < len(b) && !p.dead; {
		if d.nh < 4 {
			if d.nh == 0 && d.m == nil {
				// Every packet may start a message; one that does not
				// is discarded once read.
				d.m = st.Begin(s, i)
			}
			d.hdr[d.nh] = b[i]
			d.nh++
			i++
			if d.nh == 4 {
				d.plen = int(d.hdr[0]) | int(d.hdr[1])<<8 | int(d.hdr[2])<<16
				d.left = d.plen
				if !d.cont {
					d.buf, d.seq, d.total = d.buf[:0], d.hdr[3], 0
				}
				d.total += d.plen
				if d.left == 0 {
					p.packetEnd(s, i, st)
				}
			}
			continue
		}
		k := min(d.left, len(b)-i)
		if room := cap(d.buf) - len(d.buf); room > 0 {
			d.buf = append(d.buf, b[i:i+min(k, room)]...)
		}
		i += k
		d.left -= k
		if d.left == 0 {
			p.packetEnd(s, i, st)
		}
	}
}

// packetEnd handles the end of a packet at off in the current chunk.
func (p *mysqlParser) packetEnd(s Side, off int, st Stream) {
	d := &p.sd[s]
	d.nh = 0
	if d.plen == mysqlMaxPacket {
		d.cont = true // the logical packet goes on in the next one
		return
	}
	d.cont = false
	if s == Client {
		p.clientPacket(off, st)
	} else {
		p.serverPacket(off, st)
	}
}

// take returns side s's open message and forgets it.
func (p *mysqlParser) take(s Side) *Message {
	m := p.sd[s].m
	p.sd[s].m = nil
	return m
}

// skip discards side s's open message: its packet started no message.
func (p *mysqlParser) skip(s Side, st Stream) {
	if m := p.take(s); m != nil {
		st.Discard(m)
	}
}

func mysqlLE16(b []byte, i int) uint32 {
	if i+2 > len(b) {
		return 0
	}
	return uint32(b[i]) | uint32(b[i+1])<<8
}

// mysqlLenenc reads a length-encoded integer at b[i:]; next is -1 when it
// does not fit.
func mysqlLenenc(b []byte, i int) (v uint64, next int) {
	if i >= len(b) {
		return 0, -1
	}
	n := 0
	switch c := b[i]; {
	case c < 0xfb:
		return uint64(c), i + 1
	case c == 0xfc:
		n = 2
	case c == 0xfd:
		n = 3
	case c == 0xfe:
		n = 8
	default:
		return 0, -1 // NULL (0xfb) or undefined (0xff)
	}
	if i+1+n > len(b) {
		return 0, -1
	}
	for k := n; k > 0; k-- {
		v = v<<8 | uint64(b[i+k])
	}
	return v, i + 1 + n
}

// mysqlOKStatus returns the status flags of an OK packet (header 0x00 or
// 0xfe).
func mysqlOKStatus(b []byte) uint32 {
	_, i := mysqlLenenc(b, 1)
	if i < 0 {
		return 0
	}
	if _, i = mysqlLenenc(b, i); i < 0 {
		return 0
	}
	return mysqlLE16(b, i)
}

// mysqlEOFStatus returns the status flags of an EOF packet.
func mysqlEOFStatus(b []byte) uint32 { return mysqlLE16(b, 3) }

func (p *mysqlParser) serverPacket(off int, st Stream) {
	d := &p.sd[Server]
	pkt := d.buf
	var first byte
	if len(pkt) > 0 {
		first = pkt[0]
	}
	switch p.phase {
	case myGreeting:
		if first == 0x0a && d.seq == 0 {
			p.greeting(pkt)
			p.phase = myLogin
			p.skip(Server, st)
			return
		}
		if first == 0xff && d.seq == 0 {
			// Refused before the handshake ("Host is not allowed").
			m := p.take(Server)
			st.End(m, off)
			m.Str("command", "login")
			p.setErr(m, pkt)
			st.Exchange(nil, m)
			p.stop(st)
			return
		}
		p.skip(Server, st) // mid connection: wait for a client command
	case myLogin:
		p.skip(Server, st)
	case myAuth:
		if first != 0x00 && first != 0xff {
			p.skip(Server, st) // auth switch or more data: not the answer yet
			return
		}
		m := p.take(Server)
		st.End(m, off)
		if first == 0x00 {
			m.Str("result", "ok")
		} else {
			p.setErr(m, pkt)
		}
		req := p.loginReq
		p.loginReq = nil
		st.Exchange(req, m)
		if first == 0xff || p.caps&(mysqlClientCompress|mysqlClientZstd) != 0 {
			p.stop(st) // refused, or compressed packets from here on
			return
		}
		p.phase = myCommand
	case myCommand:
		p.response(off, pkt, first, st)
	}
}

func (p *mysqlParser) setErr(m *Message, pkt []byte) {
	m.Str("result", "err")
	m.Int("error_code", int64(mysqlLE16(pkt, 1)))
}

// greeting reads the server's capabilities from a v10 greeting.
func (p *mysqlParser) greeting(pkt []byte) {
	i := 1
	for i < len(pkt) && pkt[i] != 0 {
		i++
	}
	i++        // NUL
	i += 4 + 9 // connection id, auth data part 1, filler
	p.srv = mysqlLE16(pkt, i)
	if i+7 <= len(pkt) {
		p.srv |= mysqlLE16(pkt, i+5) << 16
	}
}

func (p *mysqlParser) clientPacket(off int, st Stream) {
	d := &p.sd[Client]
	pkt := d.buf
	switch p.phase {
	case myGreeting:
		if d.seq != 0 || len(pkt) == 0 || pkt[0] == 0 || pkt[0] > 0x1f {
			p.stop(st) // a client speaking first, not with a command: not MySQL
			return
		}
		// Mid connection: the greeting and login were not seen.
		p.phase = myCommand
		p.caps = mysqlClientProtocol41
		p.mid = true
		p.command(off, pkt, st)
	case myLogin:
		caps := mysqlLE16(pkt, 0)
		if caps&mysqlClientProtocol41 != 0 && len(pkt) >= 4 {
			caps |= mysqlLE16(pkt, 2) << 16
		}
		if caps&mysqlClientSSL != 0 {
			p.skip(Client, st)
			p.stop(st) // TLS follows
			return
		}
		m := p.take(Client)
		st.End(m, off)
		m.Str("command", "login")
		p.loginReq = m
		p.caps = caps & p.srv
		p.phase = myAuth
	case myAuth:
		p.skip(Client, st) // auth switch responses
	case myCommand:
		if d.seq != 0 || len(pkt) == 0 {
			p.skip(Client, st) // LOCAL INFILE data, auth data: not a command
			return
		}
		p.command(off, pkt, st)
	}
}

var mysqlCommands = [...]string{
	"COM_SLEEP", "COM_QUIT", "COM_INIT_DB", "COM_QUERY", "COM_FIELD_LIST",
	"COM_CREATE_DB", "COM_DROP_DB", "COM_REFRESH", "COM_SHUTDOWN", "COM_STATISTICS",
	"COM_PROCESS_INFO", "COM_CONNECT", "COM_PROCESS_KILL", "COM_DEBUG", "COM_PING",
	"COM_TIME", "COM_DELAYED_INSERT", "COM_CHANGE_USER", "COM_BINLOG_DUMP", "COM_TABLE_DUMP",
	"COM_CONNECT_OUT", "COM_REGISTER_SLAVE", "COM_STMT_PREPARE", "COM_STMT_EXECUTE", "COM_STMT_SEND_LONG_DATA",
	"COM_STMT_CLOSE", "COM_STMT_RESET", "COM_SET_OPTION", "COM_STMT_FETCH", "COM_DAEMON",
	"COM_BINLOG_DUMP_GTID", "COM_RESET_CONNECTION", "COM_CLONE", "COM_SUBSCRIBE_GROUP_REPLICATION_STREAM",
}

func mysqlCommandName(c byte) string {
	if int(c) < len(mysqlCommands) {
		return mysqlCommands[c]
	}
	return "COM_" + strconv.Itoa(int(c))
}

func mysqlResponseKind(c byte) int {
	switch c {
	case 0x03, 0x17, 0x0a: // QUERY, STMT_EXECUTE, PROCESS_INFO
		return mrResult
	case 0x16:
		return mrPrepare
	case 0x04:
		return mrFieldList
	case 0x09:
		return mrStats
	case 0x11:
		return mrAuth
	case 0x1c:
		return mrFetch
	case 0x01, 0x18, 0x19: // QUIT, STMT_SEND_LONG_DATA, STMT_CLOSE
		return mrNone
	case 0x12, 0x1e, 0x20, 0x21: // binlog dumps, clone, replication stream
		return mrStop
	}
	return mrSimple
}

// command handles a client command packet ending at off.
func (p *mysqlParser) command(off int, pkt []byte, st Stream) {
	m := p.take(Client)
	st.End(m, off)
	c := pkt[0]
	m.Str("command", mysqlCommandName(c))
	if c == mysqlComQuery || c == mysqlComStmtPrepare {
		stmt := pkt[1:]
		ok := true
		if c == mysqlComQuery && (p.caps&mysqlClientQueryAttrs != 0 || p.mid && mysqlLooksAttrs(pkt)) {
			i, n := mysqlQueryAttrs(pkt)
			ok = i >= 0
			if ok {
				stmt = pkt[i:]
				m.Int("query_attrs", int64(n))
			}
		}
		if ok {
			m.Str("statement", string(stmt[:min(len(stmt), max(p.cfg.MaxStatement, 16))]))
		}
	}
	kind := mysqlResponseKind(c)
	switch kind {
	case mrNone:
		st.Exchange(m, nil)
		return
	case mrStop:
		st.Exchange(m, nil)
		p.stop(st)
		return
	}
	if len(p.pending) >= max(p.cfg.MaxPending, 1) {
		// The oldest is given up as unanswered, with what its response
		// had so far.
		st.Exchange(p.pending[0].m, nil)
		p.pop()
		p.skip(Server, st)
	}
	p.pending = append(p.pending, mysqlReq{m: m, kind: kind})
}

// mysqlQueryAttrs reads the query attributes that open a COM_QUERY
// packet's payload (pkt[0] the command) when CLIENT_QUERY_ATTRIBUTES is
// negotiated (MySQL 8.0.23+), and returns where the statement starts and
// the number of attributes; -1 when pkt is not that or is cut before the
// statement (pkt keeps only a packet's first bytes):
//
//	lenenc   parameter_count (n)
//	lenenc   parameter_set_count (always 1)
//	if n > 0:
//	  [(n+7)/8] null_bitmap      (bit i set: parameter i is NULL, no value)
//	  [1]       new_params_bind_flag (1: types and names follow)
//	  n times:  [2] type and flags, lenenc string name
//	  values:   the non-NULL ones, in the binary protocol's encoding of the type
//	string<EOF> query
func mysqlQueryAttrs(pkt []byte) (stmt int, n uint64) {
	n, i := mysqlLenenc(pkt, 1)
	if i < 0 {
		return -1, 0
	}
	sets, i := mysqlLenenc(pkt, i)
	if i < 0 || sets != 1 && n > 0 {
		return -1, 0
	}
	if n == 0 {
		return i, 0
	}
	if n > uint64(len(pkt)) {
		return -1, 0 // each parameter takes at least 3 bytes
	}
	bitmap := i
	i += int(n+7) / 8
	if i >= len(pkt) || pkt[i] != 1 {
		return -1, 0 // without the types the values cannot be skipped
	}
	i++
	types := i
	for range n {
		if i+2 > len(pkt) {
			return -1, 0
		}
		l, j := mysqlLenenc(pkt, i+2)
		if j < 0 || l > uint64(len(pkt)) {
			return -1, 0
		}
		i = j + int(l)
	}
	for k, t := 0, types; k < int(n); k++ {
		typ := pkt[t]
		l, j := mysqlLenenc(pkt, t+2) // checked above
		t = j + int(l)
		if pkt[bitmap+k/8]&(1<<(k%8)) != 0 {
			continue // NULL
		}
		w := mysqlBinaryWidth(typ)
		switch {
		case w == -1: // length-encoded string
			l, j := mysqlLenenc(pkt, i)
			if j < 0 || l > uint64(len(pkt)) {
				return -1, 0
			}
			i = j + int(l)
		case w == -2: // temporal: a length byte, then that many bytes
			if i >= len(pkt) {
				return -1, 0
			}
			i += 1 + int(pkt[i])
		case w < 0:
			return -1, 0
		default:
			i += w
		}
		if i > len(pkt) {
			return -1, 0
		}
	}
	return i, n
}

// mysqlBinaryWidth is the width of a value of field type t in the binary
// protocol: bytes, -1 for a length-encoded string, -2 for a temporal
// value (a length byte first), -3 for a type it does not know.
func mysqlBinaryWidth(t byte) int {
	switch t {
	case 0x06: // NULL
		return 0
	case 0x01: // TINY
		return 1
	case 0x02, 0x0d: // SHORT, YEAR
		return 2
	case 0x03, 0x09, 0x04: // LONG, INT24, FLOAT
		return 4
	case 0x05, 0x08: // DOUBLE, LONGLONG
		return 8
	case 0x07, 0x0a, 0x0b, 0x0c, 0x0e, 0x11, 0x12, 0x13: // TIMESTAMP, DATE, TIME, DATETIME, NEWDATE and the 2 forms
		return -2
	case 0x00, 0x0f, 0x10, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff:
		// DECIMAL, VARCHAR, BIT, VECTOR/INVALID/BOOL (reserved), JSON,
		// NEWDECIMAL, ENUM, SET, the BLOBs, VAR_STRING, STRING, GEOMETRY
		return -1
	}
	return -3
}

// mysqlLooksAttrs says whether a COM_QUERY seen without its login opens
// with query attributes: a statement's first byte is text (or white
// space), while the attributes open with a small count and then
// parameter_set_count 1.
func mysqlLooksAttrs(pkt []byte) bool {
	return len(pkt) >= 3 && pkt[1] < 0x09 && pkt[2] == 1
}

// pop removes pending[0] and readies the state for the next response.
func (p *mysqlParser) pop() {
	n := copy(p.pending, p.pending[1:])
	p.pending[n] = mysqlReq{}
	p.pending = p.pending[:n]
	p.rs, p.left = msFirst, 0
}

// response reads a server packet of the command phase.
func (p *mysqlParser) response(off int, pkt []byte, first byte, st Stream) {
	n := p.sd[Server].total
	if len(p.pending) == 0 {
		if first == 0xff && n > 0 {
			// An error nobody asked for (the server closing an idle
			// connection, say).
			m := p.take(Server)
			st.End(m, off)
			p.setErr(m, pkt)
			st.Exchange(nil, m)
			return
		}
		p.skip(Server, st)
		return
	}
	q := &p.pending[0]
	deprecate := p.caps&mysqlClientDeprecateEOF != 0
	done, stop := false, false
	switch p.rs {
	case msFirst:
		switch {
		case n == 0:
			// An empty packet: ignore it.
		case q.kind == mrAuth && first != 0x00 && first != 0xff:
			// Auth switch or more data: the response goes on.
		case first == 0x00 && q.kind != mrStats && q.kind != mrFetch:
			if q.result == "" {
				q.result = "ok"
			}
			if q.kind == mrPrepare {
				cols, params := int(mysqlLE16(pkt, 5)), int(mysqlLE16(pkt, 7))
				p.left = cols + params
				if !deprecate {
					p.left += min(cols, 1) + min(params, 1)
				}
				if p.left > 0 {
					p.rs = msSkip
				} else {
					done = true
				}
				break
			}
			done = q.kind != mrResult || mysqlOKStatus(pkt)&mysqlStatusMoreResults == 0
		case first == 0xff:
			q.result, q.code = "err", int64(mysqlLE16(pkt, 1))
			done = true
		case first == 0xfb && q.kind == mrResult:
			q.result = "local_infile"
			done, stop = true, true
		case first == 0xfe && n < 9:
			if q.result == "" {
				q.result = "eof"
			}
			done = true
		case q.kind == mrResult:
			cols, i := mysqlLenenc(pkt, 0)
			if i < 0 || cols == 0 {
				done, stop = true, true // not a column count: lost
				break
			}
			q.result = "resultset"
			p.left = int(min(cols, 1<<20))
			p.rs = msCols
		case q.kind == mrFieldList:
			p.rs = msFieldList
		case q.kind == mrFetch:
			q.result = "resultset"
			q.rows++
			p.rs = msRows
		default:
			if q.result == "" {
				q.result = "ok" // COM_STATISTICS' text
			}
			done = true
		}
	case msCols:
		p.left--
		if p.left <= 0 {
			p.rs = msColEOF
			if deprecate {
				p.rs = msRows
			}
		}
	case msColEOF:
		switch {
		case first == 0xff:
			q.result, q.code = "err", int64(mysqlLE16(pkt, 1))
			done = true
		case mysqlEOFStatus(pkt)&mysqlStatusCursorExists != 0:
			done = true // rows come with COM_STMT_FETCH
		default:
			p.rs = msRows
		}
	case msRows:
		switch {
		case first == 0xff:
			q.result, q.code = "err", int64(mysqlLE16(pkt, 1))
			done = true
		case first == 0xfe && (n < 9 || deprecate && n < mysqlMaxPacket):
			status := mysqlEOFStatus(pkt)
			if deprecate {
				status = mysqlOKStatus(pkt)
			}
			if q.kind == mrResult && status&mysqlStatusMoreResults != 0 {
				p.rs = msFirst
			} else {
				done = true
			}
		default:
			q.rows++
		}
	case msSkip:
		p.left--
		done = p.left <= 0
	case msFieldList:
		if first == 0xff || first == 0xfe && (n < 9 || deprecate && n < mysqlMaxPacket) {
			if first == 0xff {
				q.result, q.code = "err", int64(mysqlLE16(pkt, 1))
			} else {
				q.result = "eof"
			}
			done = true
		}
	}
	if !done {
		return
	}
	m := p.take(Server)
	st.End(m, off)
	if q.result != "" {
		m.Str("result", q.result)
	}
	if q.result == "err" {
		m.Int("error_code", q.code)
	}
	if q.result == "resultset" {
		m.Int("rows", q.rows)
	}
	req := q.m
	p.pop()
	st.Exchange(req, m)
	if stop {
		p.stop(st)
	}
}

func (p *mysqlParser) Gap(s Side, n int, st Stream) {
	if !p.dead && n > 0 {
		p.stop(st)
	}
}

// stop gives up on the connection: open messages, the login and the
// commands waiting (whether they were answered is unknown) are discarded.
func (p *mysqlParser) stop(st Stream) {
	p.dead = true
	p.skip(Client, st)
	p.skip(Server, st)
	if p.loginReq != nil {
		st.Discard(p.loginReq)
		p.loginReq = nil
	}
	for i := range p.pending {
		st.Discard(p.pending[i].m)
		p.pending[i] = mysqlReq{}
	}
	p.pending = p.pending[:0]
}

func (p *mysqlParser) Close(st Stream) {
	p.skip(Client, st)
	p.skip(Server, st)
	if p.loginReq != nil {
		st.Exchange(p.loginReq, nil)
		p.loginReq = nil
	}
	for i := range p.pending {
		st.Exchange(p.pending[i].m, nil)
		p.pending[i] = mysqlReq{}
	}
	p.pending = p.pending[:0]
}

// Stopped reports that the parser decodes nothing more (TLS, compression,
// a gap, or not MySQL).
func (p *mysqlParser) Stopped() bool { return p.dead }
