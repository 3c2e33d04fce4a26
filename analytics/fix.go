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
// Exchanges: an order (NewOrderSingle D, OrderCancelRequest F,
// OrderCancelReplaceRequest G) and the first message from the other side
// that answers it: an ExecutionReport (8) or OrderCancelReject (9) with the
// order's ClOrdID (11), a BusinessMessageReject (j) whose
// BusinessRejectRefID (379) is the ClOrdID, or a session Reject (3) whose
// RefSeqNum (45) is the order's MsgSeqNum (34). Either side may send
// orders. Other messages make no record.
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
		Fields:  []string{"clordid", "exec_type", "msgseqnum", "msgtype", "ord_status", "qty", "resp_msgtype", "side", "symbol", "text"},
		Summary: fixSummary,
		New:     newFIXParser,
	})
}

// fixSummary: "D ORD-1 -> 8" (message type and ClOrdID, then the response
// type).
func fixSummary(dst []byte, r *Record) []byte {
	dst = appendField(dst, r, "msgtype", 8)
	if r.Has("clordid") {
		dst = append(dst, ' ')
		dst = appendField(dst, r, "clordid", 40)
	}
	dst = appendArrow(dst)
	return appendFieldOr(dst, r, "resp_msgtype", 8)
}

// fixDetect says whether a connection's first payload is a FIX message.
func fixDetect(_ Side, b []byte) bool { return bytes.HasPrefix(b, fixBegin) }

type fixState uint8

const (
	fxSync fixState = iota // between messages: looking for "8=FIX"
	fxHead                 // a header split across chunks, being buffered
	fxBody                 // framed: counting the message to its end
)

// fixOrder is an order waiting for its answer.
type fixOrder struct {
	m   *Message
	id  string // ClOrdID
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
	typ   string   // its MsgType when it is one we may report
	total int      // fxBody: message length
	have  int      // fxBody: message bytes seen so far
	skip  bool     // fxBody: not buffered (longer than MaxHeader, or bytes lost)

	// Orders sent by this side waiting for the other side's answer.
	byID  map[string]*Message
	queue []fixOrder // oldest first
}

type fixParser struct {
	cfg  *Config
	side [2]fixSide
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
// bytes, MsgType typ; f.buf holds the bytes of earlier chunks. start is the message's first byte in the current
// chunk, or -1 if the message was begun in an earlier chunk (f.m).
func (p *fixParser) framed(s Side, f *fixSide, total int, typ []byte, start int, st Stream) {
	f.state, f.total, f.have, f.typ = fxBody, total, 0, ""
	f.skip = total > p.cfg.MaxHeader
	if !f.skip {
		f.typ = p.interesting(s, typ)
	}
	switch {
	case f.typ == "" && f.m != nil:
		st.Discard(f.m)
		f.m = nil
	case f.typ != "" && f.m == nil && start >= 0:
		f.m = st.Begin(s, start)
	}
}

// interesting returns MsgType typ as a string if a message of side s of
// that type may make (part of) a record, else "".
func (p *fixParser) interesting(s Side, typ []byte) string {
	if len(typ) != 1 {
		return ""
	}
	switch typ[0] {
	case 'D':
		return "D"
	case 'F':
		return "F"
	case 'G':
		return "G"
	}
	if len(p.side[s.Other()].queue) == 0 {
		return ""
	}
	switch typ[0] {
	case '8':
		return "8"
	case '9':
		return "9"
	case 'j':
		return "j"
	case '3':
		return "3"
	}
	return ""
}

// fixFields are the values of one message used for records; slices of the
// message bytes, valid until the message is dropped.
type fixFields struct {
	seq                              int64
	clOrdID, symbol, side, qty       []byte
	execType, ordStatus, text, refID []byte
	refSeq                           int64
}

// finish handles a complete message of side s: msg is all of it (unless
// skip), its last byte is at b[end-1] of the current chunk.
func (p *fixParser) finish(s Side, f *fixSide, msg []byte, end int, st Stream) {
	m := f.m
	f.m = nil
	f.state = fxSync
	if f.skip || len(msg) != f.total {
		if m != nil {
			st.Discard(m)
		}
		return
	}
	t := msg[len(msg)-fixTrailer:] // checked by Data
	p.msgs++
	sum := fixSum(msg[:len(msg)-fixTrailer])
	if int(sum) != int(t[3]-'0')*100+int(t[4]-'0')*10+int(t[5]-'0') {
		p.badSums++
	}
	if m == nil {
		return
	}
	var v fixFields
	fixParseFields(msg[:len(msg)-fixTrailer], &v)
	switch f.typ {
	case "D", "F", "G":
		p.order(s, m, f.typ, &v, end, st)
	default:
		p.answer(s, m, f.typ, &v, end, st)
	}
}

// order queues a request of side s.
func (p *fixParser) order(s Side, m *Message, typ string, v *fixFields, end int, st Stream) {
	f := &p.side[s]
	if len(v.clOrdID) == 0 || f.byID[string(v.clOrdID)] != nil {
		// Nothing to match an answer with, or a resend of an order
		// still waiting: the first one keeps the answer.
		st.Discard(m)
		return
	}
	st.End(m, end)
	m.Fields = slices.Grow(m.Fields, 6)
	m.Str("msgtype", typ)
	id := string(v.clOrdID)
	m.Str("clordid", id)
	if len(v.symbol) > 0 {
		m.Str("symbol", string(v.symbol))
	}
	if len(v.side) > 0 {
		m.Str("side", fixStr(v.side))
	}
	if len(v.qty) > 0 {
		m.Str("qty", string(v.qty))
	}
	if v.seq >= 0 {
		m.Int("msgseqnum", v.seq)
	}
	if len(f.queue) >= max(p.cfg.MaxPending, 1) {
		o := f.queue[0]
		f.remove(0)
		st.Exchange(o.m, nil)
	}
	if f.byID == nil {
		f.byID = make(map[string]*Message)
	}
	f.byID[id] = m
	f.queue = append(f.queue, fixOrder{m: m, id: id, seq: v.seq})
}

// remove drops the i-th waiting order.
func (f *fixSide) remove(i int) {
	delete(f.byID, f.queue[i].id)
	copy(f.queue[i:], f.queue[i+1:])
	f.queue[len(f.queue)-1] = fixOrder{}
	f.queue = f.queue[:len(f.queue)-1]
}

// answer matches a possible answer of side s with an order of the other
// side.
func (p *fixParser) answer(s Side, m *Message, typ string, v *fixFields, end int, st Stream) {
	o := &p.side[s.Other()]
	i := -1
	switch typ {
	case "8", "9":
		i = o.index(v.clOrdID)
	case "j":
		i = o.index(v.refID)
	case "3":
		for k := range o.queue {
			if v.refSeq >= 0 && o.queue[k].seq == v.refSeq {
				i = k
				break
			}
		}
	}
	if i < 0 {
		st.Discard(m)
		return
	}
	req := o.queue[i].m
	o.remove(i)
	st.End(m, end)
	m.Fields = slices.Grow(m.Fields, 4)
	m.Str("resp_msgtype", typ)
	if len(v.execType) > 0 {
		m.Str("exec_type", fixStr(v.execType))
	}
	if len(v.ordStatus) > 0 {
		m.Str("ord_status", fixStr(v.ordStatus))
	}
	if len(v.text) > 0 {
		m.Str("text", fixCut(v.text, p.cfg.MaxStatement))
	}
	st.Exchange(req, m)
}

// index returns the position of the waiting order with ClOrdID id, or -1.
func (f *fixSide) index(id []byte) int {
	if len(id) == 0 || f.byID[string(id)] == nil {
		return -1
	}
	for i := range f.queue {
		if f.queue[i].id == string(id) {
			return i
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
		f.skip = true
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

// Close reports the orders still waiting, with no answer.
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
		clear(f.byID)
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
		switch tag {
		case 34:
			v.seq = fixInt(val)
		case 11:
			v.clOrdID = val
		case 55:
			v.symbol = val
		case 54:
			v.side = val
		case 38:
			v.qty = val
		case 150:
			v.execType = val
		case 39:
			v.ordStatus = val
		case 58:
			v.text = val
		case 379:
			v.refID = val
		case 45:
			v.refSeq = fixInt(val)
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
