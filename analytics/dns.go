package analytics

import "strconv"

// DNS over UDP (one message per datagram) and over TCP (each message
// behind a 2-byte big-endian length prefix, RFC 1035 4.2.2).
//
// Queries and responses are told apart by the QR bit, not by the side, so
// mDNS and LLMNR flows where either end asks work too. A response is paired
// with the oldest waiting query with the same ID and question (name and
// type); a response without a question (some FORMERR answers) pairs on the
// ID alone. Several queries may be in flight on one flow (an A and an AAAA
// sent together).
//
// What counts as a DNS message: anything of at least the 12-byte header.
// Shorter datagrams are ignored (no message at all) and shorter TCP
// messages are discarded. A message whose question cannot be read
// (truncated, bad label, compression loop) is still reported, with the
// header fields only; it pairs on the ID.
//
// TCP message layout:
//
//	+--------+--------+------------------------------+
//	| len hi | len lo | DNS message (len bytes)      |
//	+--------+--------+------------------------------+
//	 \_ Begin here                      End after _/
//
// The prefix belongs to the message (Bytes counts it).

const (
	dnsHeaderLen = 12
	// dnsKeep is how much of a TCP message body is buffered: the header
	// and the question (at most 255 bytes of name + 4) fit with room to
	// spare; the answers are only counted.
	dnsKeep = 512
	// dnsNameText bounds the text form of a name: 255 wire bytes, every
	// byte possibly escaped as \DDD.
	dnsNameText = 4 * 256
)

func init() {
	Register(&Decoder{
		Name:    "dns",
		TCP:     true,
		UDP:     true,
		Ports:   []uint16{53, 5353, 5355},
		Fields:  []string{"answers", "dns_id", "qname", "qtype", "rcode", "rcode_name"},
		Summary: dnsSummary,
		New:     func(cfg *Config) Parser { return newDNSParser(cfg) },
	})
}

// dnsSummary: "A example.com -> NOERROR 2 answers".
func dnsSummary(dst []byte, r *Record) []byte {
	dst = appendField(dst, r, "qtype", 16)
	dst = append(dst, ' ')
	dst = appendField(dst, r, "qname", 120)
	dst = appendArrow(dst)
	switch {
	case r.Has("rcode_name"):
		dst = appendField(dst, r, "rcode_name", 16)
	case r.Has("rcode"):
		dst = append(dst, "rcode="...)
		dst = appendField(dst, r, "rcode", 8)
	default:
		dst = append(dst, '-')
	}
	if f, ok := r.Get("answers"); ok && f.IsInt {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, f.Int, 10)
		if f.Int == 1 {
			dst = append(dst, " answer"...)
		} else {
			dst = append(dst, " answers"...)
		}
	}
	return dst
}

// dnsParser decodes one DNS flow, UDP or TCP. It starts in TCP mode; the
// core calls SetUDP before the first Data call of a UDP flow.
type dnsParser struct {
	cfg  *Config
	udp  bool
	dead bool // lost the TCP framing after a gap: decode nothing more

	tcp [2]dnsTCPSide

	// waiting holds the queries without a response yet, oldest first, at
	// most cfg.MaxPending. The messages are owned by the parser until
	// they are handed to Exchange (then removed from here).
	waiting []dnsQuery
	wait0   [2]dnsQuery // waiting's first array: most flows have one query at a time

	name [dnsNameText]byte // scratch for a name's text, valid during one parse
	txt  *textCache        // the analyzer's texts
}

var (
	_ Parser   = (*dnsParser)(nil)
	_ usesText = (*dnsParser)(nil)
)

type dnsQuery struct {
	m     *Message
	id    uint16
	qtype uint16
	hasQ  bool
	qname string
}

// dnsTCPSide is the framing state of one side of a TCP flow.
type dnsTCPSide struct {
	m      *Message // the message being read (begun, not ended), or nil
	nlen   int      // length-prefix bytes read (0..2)
	msgLen int      // the prefix's value once nlen == 2
	left   int      // body bytes still to come
	n      int      // body bytes kept in buf
	cut    bool     // a gap hit the body: buf holds only the bytes before it
	buf    [dnsKeep]byte
}

func newDNSParser(cfg *Config) *dnsParser {
	p := &dnsParser{cfg: cfg}
	p.waiting = p.wait0[:0]
	return p
}

// reset keeps the queue of waiting queries, emptied, and the texts.
func (p *dnsParser) reset() { *p = dnsParser{cfg: p.cfg, waiting: reuseQueue(p.waiting), txt: p.txt} }

func (p *dnsParser) useText(t *textCache) { p.txt = t }

// SetUDP tells the parser that each Data call is one UDP datagram. The
// core calls it (when the parser has it) before the first Data call of a
// UDP flow; without it the parser reads the TCP framing.
func (p *dnsParser) SetUDP() { p.udp = true }

func (p *dnsParser) Data(s Side, b []byte, st Stream) {
	if p.dead || len(b) == 0 {
		return
	}
	if p.udp {
		if len(b) < dnsHeaderLen {
			return
		}
		m := st.Begin(s, 0)
		st.End(m, len(b))
		p.message(m, b, st)
		return
	}
	t := &p.tcp[s]
	for i := 0; i < len(b); {
		if t.m == nil {
			t.m = st.Begin(s, i)
			t.nlen, t.msgLen, t.left, t.n, t.cut = 0, 0, 0, 0, false
		}
		if t.nlen < 2 {
			t.msgLen = t.msgLen<<8 | int(b[i])
			t.nlen++
			i++
			if t.nlen == 2 {
				t.left = t.msgLen
				if t.left == 0 {
					p.endTCP(s, i, st)
				}
			}
			continue
		}
		k := min(t.left, len(b)-i)
		if !t.cut && t.n < len(t.buf) {
			t.n += copy(t.buf[t.n:], b[i:i+k])
		}
		i += k
		t.left -= k
		if t.left == 0 {
			p.endTCP(s, i, st)
		}
	}
}

// endTCP ends side s's message at off (-1: at the last byte delivered) and
// reports it.
func (p *dnsParser) endTCP(s Side, off int, st Stream) {
	t := &p.tcp[s]
	m := t.m
	t.m = nil
	st.End(m, off)
	p.message(m, t.buf[:t.n], st)
}

func (p *dnsParser) Gap(s Side, n int, st Stream) {
	if p.udp || p.dead || n <= 0 {
		return // datagrams carry their own framing
	}
	t := &p.tcp[s]
	if t.m != nil && t.nlen == 2 && n <= t.left {
		// Inside a body: count the loss down and stay in step.
		t.left -= n
		t.cut = true
		if t.left == 0 {
			p.endTCP(s, -1, st)
		}
		return
	}
	// The next length prefix is lost: the framing cannot be recovered.
	p.stop(st)
}

// stop gives up on the flow: open messages and waiting queries are
// discarded (whether they were answered is unknown).
func (p *dnsParser) stop(st Stream) {
	p.dead = true
	for s := range p.tcp {
		if m := p.tcp[s].m; m != nil {
			p.tcp[s].m = nil
			st.Discard(m)
		}
	}
	for i := range p.waiting {
		st.Discard(p.waiting[i].m)
		p.waiting[i] = dnsQuery{}
	}
	p.waiting = p.waiting[:0]
}

func (p *dnsParser) Close(st Stream) {
	for s := range p.tcp {
		if m := p.tcp[s].m; m != nil {
			p.tcp[s].m = nil
			st.Discard(m) // a message cut by the close
		}
	}
	for i := range p.waiting {
		st.Exchange(p.waiting[i].m, nil)
		p.waiting[i] = dnsQuery{}
	}
	p.waiting = p.waiting[:0]
}

// dnsInfo is what one message's header and question say. The name's text
// is in p.name[:nameLen].
type dnsInfo struct {
	id      uint16
	qr      bool
	rcode   int
	an      int
	hasQ    bool
	qtype   uint16
	nameLen int
}

// parse reads the header and first question of msg (which may be cut
// short); ok is false when msg is shorter than the header.
func (p *dnsParser) parse(msg []byte) (d dnsInfo, ok bool) {
	if len(msg) < dnsHeaderLen {
		return d, false
	}
	d.id = uint16(msg[0])<<8 | uint16(msg[1])
	d.qr = msg[2]&0x80 != 0
	d.rcode = int(msg[3] & 0x0F)
	qd := int(msg[4])<<8 | int(msg[5])
	d.an = int(msg[6])<<8 | int(msg[7])
	if qd > 0 {
		n, next, good := dnsName(msg, dnsHeaderLen, p.name[:])
		if good && next+4 <= len(msg) {
			d.hasQ = true
			d.nameLen = n
			d.qtype = uint16(msg[next])<<8 | uint16(msg[next+1])
		}
	}
	return d, true
}

// message reports the ended message m whose bytes (or their first part)
// are msg: a query waits for its response, a response is paired.
func (p *dnsParser) message(m *Message, msg []byte, st Stream) {
	d, ok := p.parse(msg)
	if !ok {
		st.Discard(m)
		return
	}
	m.Int("dns_id", int64(d.id))
	if !d.qr {
		q := dnsQuery{m: m, id: d.id, qtype: d.qtype, hasQ: d.hasQ}
		if d.hasQ {
			q.qname = p.txt.of(p.name[:d.nameLen])
			m.Str("qname", q.qname)
			m.Str("qtype", dnsTypeName(d.qtype))
		}
		limit := max(p.cfg.MaxPending, 1)
		if len(p.waiting) >= limit {
			st.Exchange(p.waiting[0].m, nil) // the oldest counts as unanswered
			n := copy(p.waiting, p.waiting[1:])
			p.waiting[n] = dnsQuery{}
			p.waiting = p.waiting[:n]
		}
		p.waiting = append(p.waiting, q)
		return
	}
	m.Int("rcode", int64(d.rcode))
	m.Str("rcode_name", dnsRcodeName(d.rcode))
	m.Int("answers", int64(d.an))
	name := p.name[:d.nameLen]
	for i := range p.waiting {
		q := &p.waiting[i]
		if q.id != d.id {
			continue
		}
		if d.hasQ && (!q.hasQ || q.qtype != d.qtype || q.qname != string(name)) {
			continue
		}
		req := q.m
		n := copy(p.waiting[i:], p.waiting[i+1:])
		p.waiting[i+n] = dnsQuery{}
		p.waiting = p.waiting[:i+n]
		st.Exchange(req, m)
		return
	}
	// No query waits for it: report it alone, with its question.
	if d.hasQ {
		m.Str("qname", string(name))
		m.Str("qtype", dnsTypeName(d.qtype))
	}
	st.Exchange(nil, m)
}

// dnsName writes the text of the name at msg[off:] into dst: lowercased,
// labels joined by dots, no trailing dot, "." for the root; '.', '\' and
// bytes outside printable ASCII inside a label are escaped (\. \\ \DDD).
// It returns the text length and the offset just after the name where it
// was met (after the first compression pointer). Every pointer must point
// below everything read so far, so a chain of pointers always ends; the
// wire length is bounded by 255 (RFC 1035).
func dnsName(msg []byte, off int, dst []byte) (n, next int, ok bool) {
	next = -1
	low := off // lowest offset read: a pointer must go below it
	wire := 0
	for {
		if off >= len(msg) {
			return 0, 0, false
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				if next < 0 {
					next = off + 1
				}
				if n == 0 {
					dst[0] = '.'
					n = 1
				}
				return n, next, true
			}
			wire += c + 1
			if wire > 255 || off+1+c > len(msg) {
				return 0, 0, false
			}
			if n > 0 {
				dst[n] = '.'
				n++
			}
			for _, x := range msg[off+1 : off+1+c] {
				switch {
				case x >= 'A' && x <= 'Z':
					dst[n] = x + ('a' - 'A')
					n++
				case x == '.' || x == '\\':
					dst[n], dst[n+1] = '\\', x
					n += 2
				case x <= ' ' || x >= 0x7F:
					dst[n], dst[n+1], dst[n+2], dst[n+3] = '\\', '0'+x/100, '0'+x/10%10, '0'+x%10
					n += 4
				default:
					dst[n] = x
					n++
				}
			}
			off += 1 + c
		case 0xC0:
			if off+1 >= len(msg) {
				return 0, 0, false
			}
			ptr := (c&0x3F)<<8 | int(msg[off+1])
			if next < 0 {
				next = off + 2
			}
			if ptr >= low {
				return 0, 0, false // forward or looping pointer
			}
			low, off = ptr, ptr
		default:
			return 0, 0, false // extended label types (0x40, 0x80)
		}
	}
}

// dnsTypeName returns the mnemonic of a record type, or TYPE<n>.
func dnsTypeName(t uint16) string {
	switch t {
	case 1:
		return "A"
	case 2:
		return "NS"
	case 5:
		return "CNAME"
	case 6:
		return "SOA"
	case 12:
		return "PTR"
	case 13:
		return "HINFO"
	case 15:
		return "MX"
	case 16:
		return "TXT"
	case 17:
		return "RP"
	case 18:
		return "AFSDB"
	case 24:
		return "SIG"
	case 25:
		return "KEY"
	case 28:
		return "AAAA"
	case 29:
		return "LOC"
	case 33:
		return "SRV"
	case 35:
		return "NAPTR"
	case 36:
		return "KX"
	case 37:
		return "CERT"
	case 39:
		return "DNAME"
	case 41:
		return "OPT"
	case 42:
		return "APL"
	case 43:
		return "DS"
	case 44:
		return "SSHFP"
	case 45:
		return "IPSECKEY"
	case 46:
		return "RRSIG"
	case 47:
		return "NSEC"
	case 48:
		return "DNSKEY"
	case 49:
		return "DHCID"
	case 50:
		return "NSEC3"
	case 51:
		return "NSEC3PARAM"
	case 52:
		return "TLSA"
	case 53:
		return "SMIMEA"
	case 55:
		return "HIP"
	case 59:
		return "CDS"
	case 60:
		return "CDNSKEY"
	case 61:
		return "OPENPGPKEY"
	case 62:
		return "CSYNC"
	case 63:
		return "ZONEMD"
	case 64:
		return "SVCB"
	case 65:
		return "HTTPS"
	case 99:
		return "SPF"
	case 108:
		return "EUI48"
	case 109:
		return "EUI64"
	case 249:
		return "TKEY"
	case 250:
		return "TSIG"
	case 251:
		return "IXFR"
	case 252:
		return "AXFR"
	case 253:
		return "MAILB"
	case 254:
		return "MAILA"
	case 255:
		return "ANY"
	case 256:
		return "URI"
	case 257:
		return "CAA"
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// dnsRcodeName returns the mnemonic of a header RCODE (4 bits), or
// RCODE<n>.
func dnsRcodeName(r int) string {
	switch r {
	case 0:
		return "NOERROR"
	case 1:
		return "FORMERR"
	case 2:
		return "SERVFAIL"
	case 3:
		return "NXDOMAIN"
	case 4:
		return "NOTIMP"
	case 5:
		return "REFUSED"
	case 6:
		return "YXDOMAIN"
	case 7:
		return "YXRRSET"
	case 8:
		return "NXRRSET"
	case 9:
		return "NOTAUTH"
	case 10:
		return "NOTZONE"
	case 11:
		return "DSOTYPENI"
	}
	return "RCODE" + strconv.Itoa(r)
}

// Stopped reports that the parser decodes nothing more (TCP framing lost).
func (p *dnsParser) Stopped() bool { return p.dead }
