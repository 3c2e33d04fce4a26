package analytics

// TLS handshake decoder: it follows the record layer of both sides until
// the handshake completes, reads the ClientHello and the ServerHello, and
// then ignores the connection (nothing is decrypted).
//
// Records and the handshake messages inside them:
//
//	+------+---------+---------+----------------------+
//	| type | version | length  | fragment (length B)  |   record
//	| 1 B  | 2 B     | 2 B     |                      |   type 20 CCS, 21 alert,
//	+------+---------+---------+----------------------+   22 handshake, 23 data
//	                           +------+--------+------+
//	                           | type | length | body |   handshake message; it
//	                           | 1 B  | 3 B    |      |   may span records
//	                           +------+--------+------+
//
// The exchange is the ClientHello (request: every record carrying it) and
// the ServerHello (response: every record carrying it). handshake_ns runs
// from the ClientHello's first packet to the packet that completes the
// handshake: for TLS <= 1.2 the second ChangeCipherSpec of the two sides,
// for TLS 1.3 the client's first record after the ServerHello. Only the
// hello being read is buffered (at most Config.MaxHeader bytes); other
// records are counted past.

func init() {
	Register(&Decoder{
		Name:    "tls",
		TCP:     true,
		Ports:   []uint16{443, 8443, 993, 995, 465, 636, 853, 5061},
		Detect:  tlsDetect,
		Fields:  []string{"alpn", "cipher", "handshake_ns", "sni", "version"},
		Summary: tlsSummary,
		New:     func(cfg *Config) Parser { return newTLSParser(cfg) },
	})
}

// tlsSummary: "www.example.com TLS1.3 alpn=h2".
func tlsSummary(dst []byte, r *Record) []byte {
	dst = appendField(dst, r, "sni", 120)
	if r.Has("version") {
		dst = append(dst, ' ')
		dst = appendField(dst, r, "version", 16)
	}
	if r.Has("alpn") {
		dst = append(dst, " alpn="...)
		dst = appendField(dst, r, "alpn", 32)
	}
	return dst
}

// tlsDetect says whether b, the first payload of side s, is a TLS record
// starting a ClientHello.
func tlsDetect(s Side, b []byte) bool {
	return s == Client && len(b) >= 6 && b[0] == 22 && b[1] == 3 && b[5] == 1
}

const (
	tlsCCS       = 20
	tlsAlert     = 21
	tlsHandshake = 22
	tlsAppData   = 23
	tlsHeartbeat = 24

	tlsMaxRecord = 1<<14 + 2048 // the largest TLSCiphertext (RFC 5246 6.2.3)
)

// tlsHRR is the ServerHello.random of a HelloRetryRequest (RFC 8446 4.1.3).
var tlsHRR = [32]byte{
	0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
	0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
}

// tlsHalf is the record and handshake state of one side.
type tlsHalf struct {
	hdr     [5]byte // record header bytes so far
	hdrN    int
	recType byte
	remain  int // fragment bytes of the current record left
	records int // records whose header is complete

	// collecting: the side's hello (ClientHello, or the server's
	// ServerHello) is still to be read from its handshake records.
	collecting bool
	// hs is the hello being reassembled, header included; owned by the
	// parser, reused, at most Config.MaxHeader+4 bytes.
	hs     []byte
	hsWant int     // 4 + the hello's length, once its header is in hs
	hsHead [4]byte // hs's first storage, until the hello's length is known

	m         *Message // the hello's message, begun at its first record
	endAtRec  bool     // the hello is complete: end m with its record
	ccs       bool     // sent a ChangeCipherSpec
	afterHelo bool     // client: a record began after the ServerHello
}

type tlsParser struct {
	cfg       *Config
	half      [2]tlsHalf
	req, resp *Message // the ended hellos, until the exchange
	shSeen    bool     // the (final) ServerHello was read
	tls13     bool     // it selected TLS 1.3
	done      bool     // the handshake completed at doneTS
	doneTS    int64
	stopped   bool
	closed    bool
}

var _ Parser = (*tlsParser)(nil)

func newTLSParser(cfg *Config) *tlsParser {
	p := new(tlsParser)
	p.init(cfg)
	return p
}

func (p *tlsParser) init(cfg *Config) {
	*p = tlsParser{cfg: cfg}
	p.half[Client].collecting = true
	p.half[Server].collecting = true
}

func (p *tlsParser) reset() { p.init(p.cfg) }

func (p *tlsParser) maxHeader() int {
	if p.cfg.MaxHeader > 0 {
		return p.cfg.MaxHeader
	}
	return 16 << 10
}

// Data follows the records of side s. b is valid only during the call.
func (p *tlsParser) Data(s Side, b []byte, st Stream) {
	if p.stopped || s > Server {
		return
	}
	h := &p.half[s]
	i := 0
	for i < len(b) && !p.stopped {
		if h.hdrN < len(h.hdr) {
			if h.hdrN == 0 && b[i] == tlsHandshake && h.collecting && h.m == nil &&
				len(h.hs) == 0 && (s == Server || h.records == 0) {
				// A handshake record that may start the hello: the message
				// starts with the record's first byte.
				h.m = st.Begin(s, i)
			}
			n := copy(h.hdr[h.hdrN:], b[i:])
			h.hdrN += n
			i += n
			if h.hdrN < len(h.hdr) {
				return
			}
			if !p.record(s, st) {
				return
			}
			if h.remain == 0 {
				p.recordEnd(s, i, st)
			}
			continue
		}
		n := min(len(b)-i, h.remain)
		if h.recType == tlsHandshake && h.collecting {
			p.handshake(s, b[i:i+n], st)
			if p.stopped {
				return
			}
		}
		i += n
		h.remain -= n
		if h.remain == 0 {
			p.recordEnd(s, i, st)
		}
	}
}

// record checks a complete record header of side s and tracks the
// handshake's progress. It returns false if decoding stopped.
func (p *tlsParser) record(s Side, st Stream) bool {
	h := &p.half[s]
	typ, length := h.hdr[0], int(h.hdr[3])<<8|int(h.hdr[4])
	if typ < tlsCCS || typ > tlsHeartbeat || h.hdr[1] != 3 || length > tlsMaxRecord {
		p.stop(st) // not TLS (SSLv2 hello, garbage, a midstream start)
		return false
	}
	if s == Client && h.records == 0 && typ != tlsHandshake {
		p.stop(st)
		return false
	}
	h.recType, h.remain = typ, length
	h.records++
	if h.collecting && typ != tlsHandshake {
		if len(h.hs) > 0 {
			p.stop(st) // a hello fragmented around another record type
			return false
		}
	}
	if typ == tlsCCS {
		h.ccs = true
	}
	if !p.shSeen || p.done {
		return true
	}
	switch {
	case p.tls13 && s == Client:
		h.afterHelo = true
		p.complete(st)
	case !p.tls13 && typ == tlsCCS && p.half[s.Other()].ccs:
		p.complete(st)
	}
	return !p.stopped
}

// complete notes that the handshake completed at the current packet.
func (p *tlsParser) complete(st Stream) {
	p.done, p.doneTS = true, st.TS()
	p.tryExchange(st)
}

// recordEnd is called when the record of side s ended at b[off-1] (off -1:
// at the last byte delivered).
func (p *tlsParser) recordEnd(s Side, off int, st Stream) {
	h := &p.half[s]
	h.hdrN = 0
	if h.m == nil || !h.endAtRec {
		return
	}
	m := h.m
	h.m, h.endAtRec = nil, false
	st.End(m, off)
	if s == Client {
		p.req = m
	} else {
		p.resp = m
	}
	p.tryExchange(st)
}

// tryExchange reports the exchange once the handshake completed and both
// hellos ended, and stops decoding.
func (p *tlsParser) tryExchange(st Stream) {
	if !p.done || p.req == nil || p.resp == nil {
		return
	}
	p.resp.Int("handshake_ns", p.doneTS-p.req.FirstTS)
	st.Exchange(p.req, p.resp)
	p.req, p.resp = nil, nil
	p.stop(st)
}

// handshake reads fragment bytes of a handshake record of side s into the
// hello being collected.
func (p *tlsParser) handshake(s Side, b []byte, st Stream) {
	h := &p.half[s]
	want := byte(1) // ClientHello
	if s == Server {
		want = 2 // ServerHello
	}
	for len(b) > 0 && h.collecting {
		if len(h.hs) < 4 {
			if h.hs == nil {
				h.hs = h.hsHead[:0]
			}
			n := min(4-len(h.hs), len(b))
			h.hs = append(h.hs, b[:n]...)
			b = b[n:]
			if len(h.hs) < 4 {
				return
			}
			length := int(h.hs[1])<<16 | int(h.hs[2])<<8 | int(h.hs[3])
			if h.hs[0] != want || length > p.maxHeader() || h.m == nil {
				p.stop(st)
				return
			}
			h.hsWant = 4 + length
			if cap(h.hs) < h.hsWant { // one allocation, of the hello's size
				h.hs = append(make([]byte, 0, h.hsWant), h.hs...)
			}
		}
		n := min(h.hsWant-len(h.hs), len(b))
		h.hs = append(h.hs, b[:n]...)
		b = b[n:]
		if len(h.hs) < h.hsWant {
			return
		}
		body := h.hs[4:]
		h.hs = h.hs[:0]
		if s == Client {
			if !p.clientHello(h.m, body) {
				p.stop(st)
				return
			}
			h.collecting, h.endAtRec = false, true
			continue
		}
		hrr, ok := p.serverHello(h.m, body)
		switch {
		case !ok:
			p.stop(st)
			return
		case hrr:
			// HelloRetryRequest: the client sends a second ClientHello
			// and the real ServerHello follows in a later record.
			st.Discard(h.m)
			h.m = nil
			if len(b) > 0 {
				p.stop(st) // more in the same record: not followed
				return
			}
		default:
			h.collecting, h.endAtRec = false, true
			p.shSeen = true
		}
	}
}

// tlsReader reads big-endian fields; a read past the end sets bad and
// returns zeros, so parsing never panics.
type tlsReader struct {
	b   []byte
	bad bool
}

func (r *tlsReader) bytes(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *tlsReader) u8() int {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (r *tlsReader) u16() int {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return int(b[0])<<8 | int(b[1])
}

// clientHello reads a ClientHello body onto m: the highest version
// offered, the SNI and the ALPN protocols.
func (p *tlsParser) clientHello(m *Message, body []byte) bool {
	r := tlsReader{b: body}
	best := r.u16()
	r.bytes(32)      // random
	r.bytes(r.u8())  // session_id
	r.bytes(r.u16()) // cipher_suites
	r.bytes(r.u8())  // compression_methods
	if r.bad {
		return false
	}
	var sni []byte
	var alpn [256]byte
	alpnN := 0
	ext := tlsReader{b: r.bytes(r.u16())} // absent in old hellos: empty
	for len(ext.b) >= 4 && !ext.bad {
		typ := ext.u16()
		d := tlsReader{b: ext.bytes(ext.u16())}
		switch typ {
		case 0: // server_name
			list := tlsReader{b: d.bytes(d.u16())}
			for len(list.b) > 0 && !list.bad {
				kind := list.u8()
				name := list.bytes(list.u16())
				if kind == 0 && !list.bad {
					sni = name
					break
				}
			}
		case 16: // application_layer_protocol_negotiation
			list := tlsReader{b: d.bytes(d.u16())}
			for len(list.b) > 0 && !list.bad {
				proto := list.bytes(list.u8())
				if list.bad || alpnN+1+len(proto) > len(alpn) {
					break
				}
				if alpnN > 0 {
					alpn[alpnN] = ','
					alpnN++
				}
				alpnN += copy(alpn[alpnN:], proto)
			}
		case 43: // supported_versions
			list := tlsReader{b: d.bytes(d.u8())}
			for len(list.b) >= 2 {
				v := list.u16()
				if !tlsGrease(v) && tlsRank(v) > tlsRank(best) {
					best = v
				}
			}
		}
	}
	m.Str("version", tlsVersionName(best))
	if sni != nil {
		if n := p.cfg.MaxStatement; n > 0 && len(sni) > n {
			sni = sni[:n]
		}
		m.Str("sni", string(sni))
	}
	if alpnN > 0 {
		m.Str("alpn", string(alpn[:alpnN]))
	}
	return true
}

// serverHello reads a ServerHello body onto m: the version, cipher suite
// and ALPN selected. hrr reports a HelloRetryRequest (nothing set).
func (p *tlsParser) serverHello(m *Message, body []byte) (hrr, ok bool) {
	r := tlsReader{b: body}
	ver := r.u16()
	random := r.bytes(32)
	r.bytes(r.u8()) // legacy_session_id_echo
	cipher := r.u16()
	r.u8() // compression_method
	if r.bad {
		return false, false
	}
	if [32]byte(random) == tlsHRR {
		return true, true
	}
	var alpn []byte
	ext := tlsReader{b: r.bytes(r.u16())}
	for len(ext.b) >= 4 && !ext.bad {
		typ := ext.u16()
		d := tlsReader{b: ext.bytes(ext.u16())}
		switch typ {
		case 16:
			list := tlsReader{b: d.bytes(d.u16())}
			if proto := list.bytes(list.u8()); !list.bad && len(proto) > 0 {
				alpn = proto
			}
		case 43:
			if v := d.u16(); !d.bad {
				ver = v
			}
		}
	}
	p.tls13 = tlsRank(ver) >= tlsRank(0x0304)
	m.Str("version", tlsVersionName(ver))
	if alpn != nil {
		m.Str("alpn", string(alpn))
	}
	const hex = "0123456789abcdef"
	c := [6]byte{'0', 'x', hex[cipher>>12&15], hex[cipher>>8&15], hex[cipher>>4&15], hex[cipher&15]}
	m.Str("cipher", string(c[:]))
	return false, true
}

// tlsGrease reports a GREASE value (RFC 8701): 0x?A?A with equal bytes.
func tlsGrease(v int) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// tlsRank orders protocol versions; drafts of TLS 1.3 (0x7fxx) rank as
// 1.3, unknown values lowest.
func tlsRank(v int) int {
	switch {
	case v >= 0x0300 && v <= 0x0304:
		return v - 0x0300 + 1
	case v>>8 == 0x7f:
		return 5
	}
	return 0
}

func tlsVersionName(v int) string {
	switch v {
	case 0x0304:
		return "TLS1.3"
	case 0x0303:
		return "TLS1.2"
	case 0x0302:
		return "TLS1.1"
	case 0x0301:
		return "TLS1.0"
	case 0x0300:
		return "SSL3.0"
	}
	if v>>8 == 0x7f {
		return "TLS1.3"
	}
	const hex = "0123456789abcdef"
	c := [6]byte{'0', 'x', hex[v>>12&15], hex[v>>8&15], hex[v>>4&15], hex[v&15]}
	return string(c[:])
}

// stop ends decoding: messages in progress are discarded; ended hellos wait
// for Close.
func (p *tlsParser) stop(st Stream) {
	p.stopped = true
	for s := range p.half {
		h := &p.half[s]
		if h.m != nil {
			st.Discard(h.m)
			h.m = nil
		}
		h.hs = nil
	}
}

// Gap follows n lost bytes of side s: inside a record that is not the
// hello being read they are counted past; otherwise decoding stops.
func (p *tlsParser) Gap(s Side, n int, st Stream) {
	if p.stopped || s > Server || n <= 0 {
		return
	}
	h := &p.half[s]
	if h.hdrN < len(h.hdr) || n > h.remain || h.collecting && h.recType == tlsHandshake {
		p.stop(st)
		return
	}
	h.remain -= n
	if h.remain == 0 {
		p.recordEnd(s, -1, st)
	}
}

// Close reports a ClientHello that got no complete handshake: with the
// ServerHello if it came (without handshake_ns), else unanswered.
func (p *tlsParser) Close(st Stream) {
	if p.closed {
		return
	}
	p.closed = true
	p.stop(st)
	switch {
	case p.req != nil:
		st.Exchange(p.req, p.resp)
	case p.resp != nil:
		st.Exchange(nil, p.resp)
	}
	p.req, p.resp = nil, nil
}

// Stopped reports that the parser decodes nothing more: not TLS, or the
// handshake is over and reported.
func (p *tlsParser) Stopped() bool { return p.stopped || p.done && p.req == nil && p.resp == nil }
