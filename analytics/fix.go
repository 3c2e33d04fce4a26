package analytics

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
)

// FIX 4.x / FIXT.1.1 tag=value sessions (TCP, no standard port: found by
// Detect). A message is a run of tag=value fields, each ended by SOH
// (0x01):
//
//	8=FIX.4.4|9=<BodyLength>|35=<MsgType>|...body...|10=<checksum>|
//	          ^ header     ^<----- BodyLength bytes ---->^ 7 bytes
//
// BodyLength counts from the byte after the 9= field's SOH up to and
// including the SOH before "10="; the trailer is always "10=ddd|".
//
// Exchanges follow the request/response pairs of the FIX specification
// (fixRequests; either side may send requests): a request waits for the
// first message from the other side that answers it, found by the id the
// answer echoes (TestRequest 1 -> Heartbeat 0 by TestReqID 112, orders ->
// ExecutionReport 8 or OrderCancelReject 9 by ClOrdID 11, QuoteRequest R ->
// Quote S by QuoteReqID 131, MarketDataRequest V -> W/X/Y by MDReqID 262,
// ...), or, for the session messages with no id (Logon A, Logout 5,
// ResendRequest 2), by being the first of its answer types. Any request is
// also answered by a session Reject (3) whose RefSeqNum (45) is its
// MsgSeqNum (34), and a request with an id by a BusinessMessageReject (j)
// whose BusinessRejectRefID (379) is that id; a ResendRequest by the first
// message with PossDupFlag (43) Y. Every other message (a heartbeat, a
// second execution report, a request whose id is already waiting, a
// message longer than MaxHeader) is a one-sided record (Exchange(nil, m):
// class no_request) with its msgtype and the side that sent it (from), so
// that each FIX message shows in exactly one record.
//
// Memory: per side at most one message of up to MaxHeader bytes is
// buffered, and only when it is split across chunks (a message inside one
// chunk is parsed in place); longer messages are counted down by their
// BodyLength and dropped. Waiting orders are bounded by MaxPending per side.

const (
	fixSOH     = 0x01
	fixHdrMax  = 64      // enough for 8=FIXT.1.1|9=nnnnnnnn|35=xxxx|
	fixMaxBody = 1 << 24 // a larger BodyLength is garbage, not a message
	fixTrailer = 7       // "10=ddd|"
)

var fixBegin = []byte("8=FIX")

func init() {
	Register(&Decoder{
		Name:    "fix",
		TCP:     true,
		Detect:  fixDetect,
		Fields:  []string{"clordid", "exec_type", "from", "msgseqnum", "msgtype", "ord_status", "qty", "reqid", "resp_msgtype", "side", "symbol", "text"},
		Summary: fixSummary,
		New:     newFIXParser,
	})
}

// fixSummary: "D ORD-1 -> 8" (message type and ClOrdID or request id,
// then the response type); a one-sided message: "0 from server".
func fixSummary(dst []byte, r *Record) []byte {
	dst = appendField(dst, r, "msgtype", 8)
	for _, k := range [...]string{"clordid", "reqid"} {
		if r.Has(k) {
			dst = append(dst, ' ')
			dst = appendField(dst, r, k, 40)
			break
		}
	}
	if r.Has("from") {
		dst = append(dst, " from "...)
		return appendField(dst, r, "from", 8)
	}
	dst = appendArrow(dst)
	return appendFieldOr(dst, r, "resp_msgtype", 8)
}

// fixDetect says whether a connection's first payload is FIX: it starts
// with a FIX header (8=<BeginString>|9=<digits>|, BeginString FIX.x.y,
// FIXT.1.1, or a vendor's: the nDPI capture's sessions open with "8=O" and
// "8=FIXCOMP" framed messages), or, for a capture that starts mid session,
// it holds a message boundary "|10=ddd|8=FIX".
func fixDetect(_ Side, b []byte) bool {
	if len(b) > 2 && b[0] == '8' && b[1] == '=' {
		i := 2
		for i < len(b) && i < 2+16 && b[i] > ' ' && b[i] <= '~' {
			i++
		}
		if i > 2 && i+3 < len(b) && b[i] == fixSOH && b[i+1] == '9' && b[i+2] == '=' && fixDigit(b[i+3]) {
			return true
		}
	}
	const boundary = "\x0110="
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte(boundary))
		if k < 0 {
			return false
		}
		k += i
		e := k + len(boundary) + 4
		if e+len(fixBegin) <= len(b) && fixDigit(b[e-4]) && fixDigit(b[e-3]) && fixDigit(b[e-2]) &&
			b[e-1] == fixSOH && bytes.HasPrefix(b[e:], fixBegin) {
			return true
		}
		i = k + 1
	}
}

type fixState uint8

const (
	fxSync fixState = iota // between messages: looking for "8=FIX"
	fxHead                 // a header split across chunks, being buffered
	fxBody                 // framed: counting the message to its end
)

// fixWait is a request waiting for its answer.
type fixWait struct {
	m   *Message
	req *fixReq
	id  string // the value of req.key ("" if none)
	seq int64  // MsgSeqNum, -1 if none
}

// fixSide is the state of one direction.
type fixSide struct {
	state fixState
	prev  byte // the byte before the current chunk (SOH at start and after a gap)
	// buf holds the message being read when it is split across chunks
	// (the header in fxHead, the whole message in fxBody unless skip). It
	// is owned by the parser and never longer than MaxHeader.
	buf   []byte
	m     *Message // the message being read, begun; nil if not reported
	typ   string   // its MsgType ("" if it has none: not reported)
	total int      // fxBody: message length
	have  int      // fxBody: message bytes seen so far
	skip  bool     // fxBody: not buffered (longer than MaxHeader, or bytes lost)
	lost  bool     // fxBody: bytes of it were lost (it is dropped)

	// Requests sent by this side waiting for the other side's answer,
	// oldest first, at most MaxPending.
	queue []fixWait
}

type fixParser struct {
	cfg     *Config
	side    [2]fixSide
	scratch []byte // strings' buffer
	// Counters for tests and debugging.
	msgs      int // messages framed with a good trailer
	badSums   int // checksum mismatches (the message is still used)
	badFrames int // messages whose trailer is not where BodyLength says
}

var _ Parser = (*fixParser)(nil)

func newFIXParser(cfg *Config) Parser {
	p := &fixParser{cfg: cfg}
	p.side[0].prev, p.side[1].prev = fixSOH, fixSOH
	return p
}

// Data decodes the next in-order bytes of side s. b is borrowed for the
// call only; a message split across chunks is copied into the side's
// buffer.
func (p *fixParser) Data(s Side, b []byte, st Stream) {
	if len(b) == 0 {
		return
	}
	f := &p.side[s]
	i := 0
	for i < len(b) {
		switch f.state {
		case fxSync:
			k := f.find(b, i)
			if k < 0 {
				i = len(b)
				break
			}
			i = k
			total, typ, r := fixHeader(b[i:])
			switch r {
			case fixBad:
				i++
			case fixMore:
				// The header goes on in the next chunk; the message's
				// first byte is here, so begin it now and decide later.
				f.m = st.Begin(s, i)
				f.buf = append(f.buf[:0], b[i:]...)
				f.state = fxHead
				i = len(b)
			default:
				f.buf = f.buf[:0]
				p.framed(s, f, total, typ, i, st)
			}
		case fxHead:
			old := len(f.buf)
			n := min(len(b)-i, fixHdrMax-old)
			f.buf = append(f.buf, b[i:i+n]...)
			total, typ, r := fixHeader(f.buf)
			if r == fixMore && len(f.buf) < fixHdrMax {
				i += n // all of b
				break
			}
			f.buf = f.buf[:old]
			if r != fixOK {
				// Not a message after all: look again from here (the
				// buffered bytes of earlier chunks are given up).
				st.Discard(f.m)
				f.m = nil
				f.state = fxSync
				break
			}
			p.framed(s, f, total, typ, -1, st)
			f.have = old
		case fxBody:
			n := min(f.total-f.have, len(b)-i)
			// Check the trailer bytes among these as they come: if
			// BodyLength lied, the next message may start right there.
			if t0 := max(f.have, f.total-fixTrailer); t0 < f.have+n {
				off := i + t0 - f.have
				if k := fixTrailerBad(b[off:i+n], t0-(f.total-fixTrailer)); k >= 0 {
					p.badFrames++
					if f.m != nil {
						st.Discard(f.m)
						f.m = nil
					}
					f.state = fxSync
					i = off + k
					break
				}
			}
			if f.have == 0 && n == f.total && !f.skip {
				// The whole message is in b: parse it in place.
				p.finish(s, f, b[i:i+n], i+n, st)
				i += n
				break
			}
			if !f.skip {
				f.buf = append(f.buf, b[i:i+n]...)
			}
			f.have += n
			i += n
			if f.have == f.total {
				p.finish(s, f, f.buf, i, st)
			}
		}
	}
	f.prev = b[len(b)-1]
}

// find returns the index of the next possible message start in b[i:], or
// -1. A start is "8=FIX" (or a prefix of it at the end of b) not preceded
// by a digit (which would make it the tail of another tag, as in 58=).
func (f *fixSide) find(b []byte, i int) int {
	for i < len(b) {
		k := bytes.Index(b[i:], fixBegin)
		if k < 0 {
			// A start cut by the end of the chunk.
			for k = max(i, len(b)-len(fixBegin)+1); k < len(b); k++ {
				if bytes.HasPrefix(fixBegin, b[k:]) && !fixDigit(f.before(b, k)) {
					return k
				}
			}
			return -1
		}
		k += i
		if !fixDigit(f.before(b, k)) {
			return k
		}
		i = k + 1
	}
	return -1
}

func (f *fixSide) before(b []byte, k int) byte {
	if k == 0 {
		return f.prev
	}
	return b[k-1]
}

func fixDigit(c byte) bool { return c >= '0' && c <= '9' }

// framed sets up the body of a message whose header is complete: total
// bytes, MsgType typ; f.buf holds the bytes of earlier chunks. start is
// the message's first byte in the current chunk, or -1 if the message was
// begun in an earlier chunk (f.m).
func (p *fixParser) framed(s Side, f *fixSide, total int, typ []byte, start int, st Stream) {
	f.state, f.total, f.have, f.lost = fxBody, total, 0, false
	f.skip = total > p.cfg.MaxHeader
	f.typ = fixTypeStr(typ)
	switch {
	case f.typ == "" && f.m != nil:
		st.Discard(f.m)
		f.m = nil
	case f.typ != "" && f.m == nil && start >= 0:
		f.m = st.Begin(s, start)
	}
}

// fixTypeStr returns MsgType typ as a string, without allocating for the
// types of fixRequests, their answers and one-character ones; "" if typ
// is empty (no MsgType: not a FIX message, as for tshark).
func fixTypeStr(typ []byte) string {
	switch len(typ) {
	case 0:
		return ""
	case 1:
		return fixStr(typ)
	}
	if t, ok := fixKnownTypes[string(typ)]; ok {
		return t
	}
	return string(typ)
}

// finish handles a complete message of side s: msg is all of it (unless
// skip), its last byte is at b[end-1] of the current chunk.
func (p *fixParser) finish(s Side, f *fixSide, msg []byte, end int, st Stream) {
	m := f.m
	f.m = nil
	f.state = fxSync
	whole := !f.skip && len(msg) == f.total
	if whole {
		t := msg[len(msg)-fixTrailer:] // checked by Data
		sum := fixSum(msg[:len(msg)-fixTrailer])
		if int(sum) != int(t[3]-'0')*100+int(t[4]-'0')*10+int(t[5]-'0') {
			p.badSums++
		}
	}
	p.msgs++
	if m == nil {
		return
	}
	if f.lost {
		st.Discard(m)
		return
	}
	st.End(m, end)
	var v fixFields
	if !whole {
		// Too long to keep: its type is all there is.
		v.seq, v.refSeq = -1, -1
		p.oneSided(s, m, f.typ, &v, st)
		return
	}
	fixParseFields(msg[:len(msg)-fixTrailer], &v)
	if p.answer(s, m, f.typ, &v, st) {
		return
	}
	if r := fixRequestOf(f.typ); r != nil {
		p.request(s, m, r, &v, st)
		return
	}
	p.oneSided(s, m, f.typ, &v, st)
}

// request queues a request of side s, or reports it one-sided when it
// lacks the id its answer would echo, or a request with that id is
// already waiting (a resend: the first one keeps the answer).
func (p *fixParser) request(s Side, m *Message, r *fixReq, v *fixFields, st Stream) {
	f := &p.side[s]
	var id []byte
	if r.key != fkNone {
		id = v.val[r.key]
		if len(id) == 0 || f.waiting(r.key, id) {
			p.oneSided(s, m, r.typ, v, st)
			return
		}
	}
	m.Fields = slices.Grow(m.Fields, 7)
	m.Str("msgtype", r.typ)
	w := fixWait{m: m, req: r, seq: v.seq}
	s3 := p.strings(id, v.val[fkSymbol], v.val[fkQty])
	if len(id) > 0 {
		w.id = s3[0]
		if r.key == fkClOrdID {
			m.Str("clordid", w.id)
		} else {
			m.Str("reqid", w.id)
		}
	}
	p.orderFields(m, v, s3[1], s3[2])
	if v.seq >= 0 {
		m.Int("msgseqnum", v.seq)
	}
	if len(f.queue) >= max(p.cfg.MaxPending, 1) {
		o := f.queue[0]
		f.remove(0)
		st.Exchange(o.m, nil)
	}
	f.queue = append(f.queue, w)
}

// orderFields sets the order fields of m that v has (symbol and qty
// given as strings, from p.strings).
func (p *fixParser) orderFields(m *Message, v *fixFields, symbol, qty string) {
	if symbol != "" {
		m.Str("symbol", symbol)
	}
	if x := v.val[fkSide]; len(x) > 0 {
		m.Str("side", fixStr(x))
	}
	if qty != "" {
		m.Str("qty", qty)
	}
}

// strings returns a, b and c as strings that share one allocation (a
// message's values live as long as its record).
func (p *fixParser) strings(a, b, c []byte) [3]string {
	p.scratch = append(append(append(p.scratch[:0], a...), b...), c...)
	if len(p.scratch) == 0 {
		return [3]string{}
	}
	s := string(p.scratch)
	if cap(p.scratch) > fixHdrMax*4 {
		p.scratch = nil // a long value: do not keep its buffer
	}
	return [3]string{s[:len(a)], s[len(a) : len(a)+len(b)], s[len(a)+len(b):]}
}

// answerFields sets the fields of an answer (or a one-sided message) that
// v has.
func (p *fixParser) answerFields(m *Message, v *fixFields) {
	if x := v.val[fkExecType]; len(x) > 0 {
		m.Str("exec_type", fixStr(x))
	}
	if x := v.val[fkOrdStatus]; len(x) > 0 {
		m.Str("ord_status", fixStr(x))
	}
	if x := v.val[fkText]; len(x) > 0 {
		m.Str("text", fixCut(x, p.cfg.MaxStatement))
	}
}

// oneSided reports message m of side s, of type typ, alone.
func (p *fixParser) oneSided(s Side, m *Message, typ string, v *fixFields, st Stream) {
	m.Fields = slices.Grow(m.Fields, 6)
	m.Str("msgtype", typ)
	m.Str("from", s.String())
	s3 := p.strings(v.val[fkClOrdID], v.val[fkSymbol], v.val[fkQty])
	if s3[0] != "" {
		m.Str("clordid", s3[0])
	}
	p.orderFields(m, v, s3[1], s3[2])
	p.answerFields(m, v)
	if v.seq >= 0 {
		m.Int("msgseqnum", v.seq)
	}
	st.Exchange(nil, m)
}

// waiting says whether a request with id in slot key is waiting.
func (f *fixSide) waiting(key int8, id []byte) bool {
	for i := range f.queue {
		if w := &f.queue[i]; w.req.key == key && w.id == string(id) {
			return true
		}
	}
	return false
}

// remove drops the i-th waiting request.
func (f *fixSide) remove(i int) {
	copy(f.queue[i:], f.queue[i+1:])
	f.queue[len(f.queue)-1] = fixWait{}
	f.queue = f.queue[:len(f.queue)-1]
}

// answer pairs message m of side s, of type typ, with the request of the
// other side it answers, if any.
func (p *fixParser) answer(s Side, m *Message, typ string, v *fixFields, st Stream) bool {
	o := &p.side[s.Other()]
	if len(o.queue) == 0 {
		return false
	}
	i := o.match(typ, v)
	if i < 0 {
		return false
	}
	req := o.queue[i].m
	o.remove(i)
	m.Fields = slices.Grow(m.Fields, 4)
	m.Str("resp_msgtype", typ)
	p.answerFields(m, v)
	st.Exchange(req, m)
	return true
}

// match returns the position of the oldest waiting request that a message
// of type typ with fields v answers, or -1.
func (f *fixSide) match(typ string, v *fixFields) int {
	switch typ {
	case "3": // session Reject: any request, by its MsgSeqNum
		for i := range f.queue {
			if v.refSeq >= 0 && f.queue[i].seq == v.refSeq {
				return i
			}
		}
		return -1
	case "j": // BusinessMessageReject: any request with an id
		id := v.val[fkBusinessRejectRefID]
		for i := range f.queue {
			if len(id) > 0 && f.queue[i].id == string(id) {
				return i
			}
		}
		return -1
	}
	if v.possDup {
		for i := range f.queue {
			if f.queue[i].req.typ == "2" {
				return i
			}
		}
	}
	for i := range f.queue {
		w := &f.queue[i]
		for _, a := range w.req.answers {
			if a.typ != typ {
				continue
			}
			if w.req.key == fkNone || w.id == string(v.val[a.key]) {
				return i
			}
		}
	}
	return -1
}

// Gap: n bytes of side s were lost. Inside a framed message the length is
// counted down (the message is dropped at its end); otherwise whatever was
// in progress is dropped and the next "8=FIX" starts a message again.
func (p *fixParser) Gap(s Side, n int, st Stream) {
	if n <= 0 {
		return
	}
	f := &p.side[s]
	if f.state == fxBody && n < f.total-f.have {
		f.have += n
		f.skip, f.lost = true, true
		f.buf = f.buf[:0]
		return
	}
	if f.m != nil {
		st.Discard(f.m)
		f.m = nil
	}
	f.state = fxSync
	f.buf = f.buf[:0]
	f.prev = fixSOH
}

// Close reports the requests still waiting, with no answer.
func (p *fixParser) Close(st Stream) {
	for s := range p.side {
		f := &p.side[s]
		if f.m != nil {
			st.Discard(f.m)
			f.m = nil
		}
		for _, o := range f.queue {
			st.Exchange(o.m, nil)
		}
		clear(f.queue)
		f.queue = f.queue[:0]
		f.state = fxSync
		f.buf = nil
	}
}

// Header parse results.
const (
	fixOK = iota
	fixMore
	fixBad
)

// fixHeader frames the message at the start of b: "8=FIX...|9=<len>|",
// and returns its total length and the value of 35 if it comes next (as
// the standard requires; nil if not). fixMore: b is a valid beginning but
// too short to say.
func fixHeader(b []byte) (total int, typ []byte, r int) {
	if len(b) < len(fixBegin) {
		if bytes.HasPrefix(fixBegin, b) {
			return 0, nil, fixMore
		}
		return 0, nil, fixBad
	}
	if !bytes.HasPrefix(b, fixBegin) {
		return 0, nil, fixBad
	}
	// BeginString: FIX.4.x, FIXT.1.1
	i := len(fixBegin)
	for ; ; i++ {
		if i >= len(b) {
			return 0, nil, fixMore
		}
		if b[i] == fixSOH {
			break
		}
		if i >= 16 || b[i] < ' ' || b[i] > '~' {
			return 0, nil, fixBad
		}
	}
	i++ // after the SOH
	const bodyLen = "9="
	for k := range len(bodyLen) {
		if i+k >= len(b) {
			return 0, nil, fixMore
		}
		if b[i+k] != bodyLen[k] {
			return 0, nil, fixBad
		}
	}
	i += 2
	n, d := 0, 0
	for ; ; i++ {
		if i >= len(b) {
			return 0, nil, fixMore
		}
		c := b[i]
		if c == fixSOH {
			break
		}
		if !fixDigit(c) || d == 8 {
			return 0, nil, fixBad
		}
		n = n*10 + int(c-'0')
		d++
	}
	if d == 0 || n < 1 || n > fixMaxBody {
		return 0, nil, fixBad
	}
	i++ // body start
	total = i + n + fixTrailer
	// MsgType
	const msgType = "35="
	for k := range len(msgType) {
		if i+k >= len(b) {
			return 0, nil, fixMore
		}
		if b[i+k] != msgType[k] {
			return total, nil, fixOK
		}
	}
	i += 3
	for j := i; j < i+8 && j < i+n; j++ {
		if j >= len(b) {
			return 0, nil, fixMore
		}
		if b[j] == fixSOH {
			return total, b[i:j], fixOK
		}
	}
	return total, nil, fixOK
}

// fixTrailerBad returns the index in b of the first byte that does not
// fit the trailer "10=ddd<SOH>", b starting at trailer position pos; -1 if
// all fit.
func fixTrailerBad(b []byte, pos int) int {
	for k, c := range b {
		var ok bool
		switch pos + k {
		case 0:
			ok = c == '1'
		case 1:
			ok = c == '0'
		case 2:
			ok = c == '='
		case 6:
			ok = c == fixSOH
		default:
			ok = fixDigit(c)
		}
		if !ok {
			return k
		}
	}
	return -1
}

// fixSum returns the FIX checksum of b: the sum of its bytes mod 256. It
// adds 8 bytes at a time in 16-bit lanes (profiled 4x faster than a byte
// loop), flushing the lanes before they can overflow.
func fixSum(b []byte) byte {
	const m = 0x00ff00ff00ff00ff
	var total uint64
	for len(b) >= 8 {
		var acc uint64
		for n := 0; n < 128 && len(b) >= 8; n++ {
			x := binary.LittleEndian.Uint64(b)
			acc += x&m + (x>>8)&m
			b = b[8:]
		}
		total += acc&0xffff + (acc>>16)&0xffff + (acc>>32)&0xffff + acc>>48
	}
	for _, c := range b {
		total += uint64(c)
	}
	return byte(total)
}

// fixFields are the values of one message used for records; slices of the
// message bytes, valid until the message is dropped.
type fixFields struct {
	val     [fkCount][]byte
	seq     int64 // MsgSeqNum (34), -1 if none
	refSeq  int64 // RefSeqNum (45), -1 if none
	possDup bool  // PossDupFlag (43) is Y
}

// fixParseFields reads the fields used for records from msg (without the
// trailer). Malformed fields are skipped.
func fixParseFields(msg []byte, v *fixFields) {
	v.seq, v.refSeq = -1, -1
	for i := 0; i < len(msg); {
		tag, k := 0, i
		for k < len(msg) && k-i < 6 && fixDigit(msg[k]) {
			tag = tag*10 + int(msg[k]-'0')
			k++
		}
		if k == i || k == len(msg) || msg[k] != '=' {
			tag = -1 // malformed: skip to the next SOH
		} else {
			k++
		}
		// Values are mostly short: a byte loop first, IndexByte for the
		// long ones (profiled: IndexByte per field cost 2x overall).
		j := k
		for j < len(msg) && j-k < 16 && msg[j] != fixSOH {
			j++
		}
		if j < len(msg) && msg[j] != fixSOH {
			if e := bytes.IndexByte(msg[j:], fixSOH); e >= 0 {
				j += e
			} else {
				j = len(msg)
			}
		}
		val := msg[k:j]
		i = j + 1
		if tag < 0 || tag >= len(fixSlot) || fixSlot[tag] == 0 {
			continue
		}
		switch sl := int8(fixSlot[tag]) - 1; sl {
		case fkSeq:
			v.seq = fixInt(val)
		case fkRefSeq:
			v.refSeq = fixInt(val)
		case fkPossDup:
			v.possDup = len(val) == 1 && val[0] == 'Y'
		default:
			v.val[sl] = val
		}
	}
}

// fixInt parses a non-negative decimal of up to 18 digits; -1 otherwise.
func fixInt(b []byte) int64 {
	if len(b) == 0 || len(b) > 18 {
		return -1
	}
	var n int64
	for _, c := range b {
		if !fixDigit(c) {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

const fixChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// fixStr returns b as a string, without allocating for one-character
// codes (Side, ExecType, OrdStatus).
func fixStr(b []byte) string {
	if len(b) == 1 {
		if i := strings.IndexByte(fixChars, b[0]); i >= 0 {
			return fixChars[i : i+1]
		}
	}
	return string(b)
}

// fixCut returns b as a string of at most n bytes, cut at a UTF-8 rune
// boundary.
func fixCut(b []byte, n int) string {
	if len(b) > n {
		for n > 0 && b[n]&0xC0 == 0x80 {
			n--
		}
		b = b[:n]
	}
	return string(b)
}

// Slots of fixFields.val: the fields a record or a pairing uses. Those
// below fkCount are kept as bytes; fkSeq, fkRefSeq and fkPossDup are
// parsed.
const (
	fkNone int8 = iota - 1 // a request with no id
	fkClOrdID
	fkSymbol
	fkSide
	fkQty
	fkExecType
	fkOrdStatus
	fkText
	fkBusinessRejectRefID
	fkTestReqID
	fkQuoteReqID
	fkQuoteID
	fkQuoteStatusReqID
	fkMDReqID
	fkSecurityReqID
	fkSecurityStatusReqID
	fkTradSesReqID
	fkListID
	fkAllocID
	fkMassStatusReqID
	fkCrossID
	fkClientBidID
	fkRegistID
	fkTradeRequestID
	fkPosReqID
	fkSettlInstReqID
	fkConfirmReqID
	fkCollInquiryID
	fkUserRequestID
	fkNetworkRequestID
	fkApplReqID
	fkCount
	fkSeq     = fkCount
	fkRefSeq  = fkCount + 1
	fkPossDup = fkCount + 2
)

// fixSlotTags are the tags of the slots.
var fixSlotTags = [...]int{
	fkClOrdID: 11, fkSymbol: 55, fkSide: 54, fkQty: 38, fkExecType: 150, fkOrdStatus: 39, fkText: 58,
	fkBusinessRejectRefID: 379, fkTestReqID: 112, fkQuoteReqID: 131, fkQuoteID: 117, fkQuoteStatusReqID: 649,
	fkMDReqID: 262, fkSecurityReqID: 320, fkSecurityStatusReqID: 324, fkTradSesReqID: 335, fkListID: 66,
	fkAllocID: 70, fkMassStatusReqID: 584, fkCrossID: 548, fkClientBidID: 391, fkRegistID: 513,
	fkTradeRequestID: 568, fkPosReqID: 710, fkSettlInstReqID: 791, fkConfirmReqID: 859, fkCollInquiryID: 909,
	fkUserRequestID: 923, fkNetworkRequestID: 933, fkApplReqID: 1346,
	fkSeq: 34, fkRefSeq: 45, fkPossDup: 43,
}

// fixSlot maps a tag to its slot + 1 (0: not used). Filled by init.
var fixSlot [1347]uint8

// fixReq is a request message type and the messages that answer it.
type fixReq struct {
	typ string // MsgType
	// key is the slot of the id that the answers echo; fkNone: the first
	// message of an answer type from the other side answers.
	key     int8
	answers []fixAnswer
}

// fixAnswer is a message type that answers a request, and the slot in it
// that carries the request's id.
type fixAnswer struct {
	typ string
	key int8
}

func fixAns(key int8, types ...string) []fixAnswer {
	a := make([]fixAnswer, len(types))
	for i, t := range types {
		a[i] = fixAnswer{t, key}
	}
	return a
}

// fixRequests are the request/response pairs of FIX 4.4 and FIX 5.0 SP2
// (FIXT.1.1 for the session layer). Besides these, any request is
// answered by a Reject (3) and any request with an id by a
// BusinessMessageReject (j) (fixSide.match). A message type that answers
// a waiting request is taken as the answer first (Logout 5 answers a
// Logout, else it is one).
var fixRequests = []fixReq{
	// Session.
	{"A", fkNone, fixAns(fkNone, "A", "5")},      // Logon -> Logon, or Logout (refused)
	{"1", fkTestReqID, fixAns(fkTestReqID, "0")}, // TestRequest -> Heartbeat
	{"2", fkNone, fixAns(fkNone, "4")},           // ResendRequest -> SequenceReset (or the resent messages, PossDupFlag Y)
	{"5", fkNone, fixAns(fkNone, "5")},           // Logout -> Logout
	// Orders.
	{"D", fkClOrdID, fixAns(fkClOrdID, "8", "9")},             // NewOrderSingle -> ExecutionReport
	{"F", fkClOrdID, fixAns(fkClOrdID, "8", "9")},             // OrderCancelRequest -> ExecutionReport, OrderCancelReject
	{"G", fkClOrdID, fixAns(fkClOrdID, "8", "9")},             // OrderCancelReplaceRequest -> ExecutionReport, OrderCancelReject
	{"H", fkClOrdID, fixAns(fkClOrdID, "8")},                  // OrderStatusRequest -> ExecutionReport
	{"AB", fkClOrdID, fixAns(fkClOrdID, "8")},                 // NewOrderMultileg -> ExecutionReport
	{"AC", fkClOrdID, fixAns(fkClOrdID, "8", "9")},            // MultilegOrderCancelReplace -> ExecutionReport, OrderCancelReject
	{"q", fkClOrdID, fixAns(fkClOrdID, "r")},                  // OrderMassCancelRequest -> OrderMassCancelReport
	{"CA", fkClOrdID, fixAns(fkClOrdID, "BZ")},                // OrderMassActionRequest -> OrderMassActionReport
	{"AF", fkMassStatusReqID, fixAns(fkMassStatusReqID, "8")}, // OrderMassStatusRequest -> ExecutionReport
	{"s", fkCrossID, fixAns(fkCrossID, "8")},                  // NewOrderCross -> ExecutionReport
	{"t", fkCrossID, fixAns(fkCrossID, "8")},                  // CrossOrderCancelReplaceRequest -> ExecutionReport
	{"u", fkCrossID, fixAns(fkCrossID, "8")},                  // CrossOrderCancelRequest -> ExecutionReport
	{"E", fkListID, fixAns(fkListID, "N")},                    // NewOrderList -> ListStatus
	{"K", fkListID, fixAns(fkListID, "N")},                    // ListCancelRequest -> ListStatus
	{"L", fkListID, fixAns(fkListID, "N")},                    // ListExecute -> ListStatus
	{"M", fkListID, fixAns(fkListID, "N")},                    // ListStatusRequest -> ListStatus
	{"k", fkClientBidID, fixAns(fkClientBidID, "l")},          // BidRequest -> BidResponse
	// Quotes.
	{"R", fkQuoteReqID, fixAns(fkQuoteReqID, "S", "AG")},        // QuoteRequest -> Quote, QuoteRequestReject
	{"a", fkQuoteStatusReqID, fixAns(fkQuoteStatusReqID, "AI")}, // QuoteStatusRequest -> QuoteStatusReport
	{"i", fkQuoteID, fixAns(fkQuoteID, "b")},                    // MassQuote -> MassQuoteAcknowledgement
	{"Z", fkQuoteID, fixAns(fkQuoteID, "b", "AI")},              // QuoteCancel -> MassQuoteAcknowledgement, QuoteStatusReport
	// Market data and reference data.
	{"V", fkMDReqID, fixAns(fkMDReqID, "W", "X", "Y")},               // MarketDataRequest -> snapshot, incremental refresh, reject
	{"c", fkSecurityReqID, fixAns(fkSecurityReqID, "d")},             // SecurityDefinitionRequest -> SecurityDefinition
	{"x", fkSecurityReqID, fixAns(fkSecurityReqID, "y")},             // SecurityListRequest -> SecurityList
	{"z", fkSecurityReqID, fixAns(fkSecurityReqID, "AA")},            // DerivativeSecurityListRequest -> DerivativeSecurityList
	{"v", fkSecurityReqID, fixAns(fkSecurityReqID, "w")},             // SecurityTypeRequest -> SecurityTypes
	{"e", fkSecurityStatusReqID, fixAns(fkSecurityStatusReqID, "f")}, // SecurityStatusRequest -> SecurityStatus
	{"g", fkTradSesReqID, fixAns(fkTradSesReqID, "h")},               // TradingSessionStatusRequest -> TradingSessionStatus
	{"BW", fkApplReqID, fixAns(fkApplReqID, "BX")},                   // ApplicationMessageRequest -> ApplicationMessageRequestAck
	{"BE", fkUserRequestID, fixAns(fkUserRequestID, "BF")},           // UserRequest -> UserResponse
	{"BC", fkNetworkRequestID, fixAns(fkNetworkRequestID, "BD")},     // NetworkCounterpartySystemStatusRequest -> Response
	// Post-trade.
	{"J", fkAllocID, fixAns(fkAllocID, "P")},                       // AllocationInstruction -> AllocationInstructionAck
	{"AD", fkTradeRequestID, fixAns(fkTradeRequestID, "AQ", "AE")}, // TradeCaptureReportRequest -> Ack, TradeCaptureReport
	{"AN", fkPosReqID, fixAns(fkPosReqID, "AO", "AP")},             // RequestForPositions -> Ack, PositionReport
	{"AL", fkPosReqID, fixAns(fkPosReqID, "AM")},                   // PositionMaintenanceRequest -> PositionMaintenanceReport
	{"AV", fkSettlInstReqID, fixAns(fkSettlInstReqID, "T")},        // SettlementInstructionRequest -> SettlementInstructions
	{"BH", fkConfirmReqID, fixAns(fkConfirmReqID, "AK")},           // ConfirmationRequest -> Confirmation
	{"BB", fkCollInquiryID, fixAns(fkCollInquiryID, "BG", "BA")},   // CollateralInquiry -> CollateralInquiryAck, CollateralReport
	{"o", fkRegistID, fixAns(fkRegistID, "p")},                     // RegistrationInstructions -> RegistrationInstructionsResponse
}

// fixReq1 maps a one-character MsgType to its fixRequests index + 1;
// fixKnownTypes holds the longer MsgTypes of fixRequests and their
// answers (fixTypeStr returns them without allocating). Filled by init.
var (
	fixReq1       [128]uint8
	fixKnownTypes = map[string]string{}
)

func init() {
	for sl, tag := range fixSlotTags {
		fixSlot[tag] = uint8(sl + 1)
	}
	for i := range fixRequests {
		r := &fixRequests[i]
		if len(r.typ) == 1 {
			fixReq1[r.typ[0]] = uint8(i + 1)
		} else {
			fixKnownTypes[r.typ] = r.typ
		}
		for _, a := range r.answers {
			if len(a.typ) > 1 {
				fixKnownTypes[a.typ] = a.typ
			}
		}
	}
}

// fixRequestOf returns the request of MsgType typ, or nil.
func fixRequestOf(typ string) *fixReq {
	if len(typ) == 1 {
		if c := typ[0]; c < 128 && fixReq1[c] != 0 {
			return &fixRequests[fixReq1[c]-1]
		}
		return nil
	}
	for i := range fixRequests {
		if fixRequests[i].typ == typ {
			return &fixRequests[i]
		}
	}
	return nil
}
