package analytics

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// QUIC (RFC 9000, RFC 9369 v2, drafts 22-34, mvfst, Google's T050/T051): one
// record per connection, with the ClientHello's SNI and ALPN read from the
// client's Initial packets, as tshark and Arkime do.
//
// Initial packets are encrypted with keys anyone can derive (RFC 9001 5.2):
//
//	initial_secret = HKDF-Extract(version's salt, client's first DCID)
//	client_secret  = HKDF-Expand-Label(initial_secret, "client in", "", 32)
//	server_secret  = HKDF-Expand-Label(initial_secret, "server in", "", 32)
//	key, iv, hp    = HKDF-Expand-Label(secret, "quic key"/"quic iv"/"quic hp")
//	                 ("quicv2 key"/"quicv2 iv"/"quicv2 hp" for v2)
//
// A long-header packet, with its protected parts:
//
//	+------+---------+-----+------+-----+------+-------------+--------+----+----------------+
//	|flags | version | DCL | DCID | SCL | SCID | token (Init)| Length | PN | payload + tag  |
//	| 1 B  | 4 B     | 1 B |0-20 B| 1 B |0-20 B| varint + .. | varint |1-4B| (AES-128-GCM)  |
//	+------+---------+-----+------+-----+------+-------------+--------+----+----------------+
//	 low 4 bits protected                                            protected  sample: the 16
//	 (header protection)                                                        bytes at PN+4
//
// Header protection: mask = AES-ECB(hp, sample); flags ^= mask[0]&0x0f,
// PN ^= mask[1:]. The payload is then opened with AES-128-GCM, nonce iv XOR
// the packet number, the header (PN unmasked) as associated data. Several
// packets may share one datagram (Length delimits them); a short-header
// (1-RTT) packet, the last of its datagram, is not decrypted.
//
// The ClientHello travels in CRYPTO frames (offset, length, data) that may
// span several Initial packets and arrive in any order (Chrome scatters
// them, with PING and PADDING between); they are put back together by
// offset, up to Config.MaxHeader bytes and quicMaxRanges separate pieces,
// and the hello is read by the TLS decoder's ClientHello parser
// (tlsParser.clientHello). The server's Initial gives the ServerHello
// (cipher) the same way.
//
// The record: the request is the client's datagrams from its first Initial
// to the one completing the ClientHello; the response is the server's
// datagrams from its first Initial or Handshake packet (or Version
// Negotiation) to the client's first 1-RTT packet, when the client has
// finished the handshake, and the record is made then (or at the flow's
// end). hello_ns runs from the client's first Initial to the server's
// first answer, handshake_ns to the client's first 1-RTT packet after it;
// version is the one the server answered in (else the client's).
//
// A Retry keeps the same record (retry=1): the keys follow the client to
// the Retry's connection ID. So does a Version Negotiation on the same
// ports (vn=1): the client's next Initial, in the new version and with new
// connection IDs, carries on the record begun by its first. A client
// Initial that the connection's keys cannot open but keys from its own
// DCID can is a new connection on the same ports: the current one is
// reported first. After the record the parser stays on the flow, reading
// little more than the first byte of each datagram, to see such a new
// connection.
//
// What is dropped is counted on the record: undecrypted counts Initial
// packets that could not be opened (cut by the snaplen, unknown keys,
// damaged, larger than quicMaxPacket), crypto_dropped the CRYPTO bytes
// beyond the limits. A parser holds at most a hello per side (MaxHeader),
// one Initial's plaintext (quicMaxPacket), both freed with the record, and
// two key sets; MaxParsers bounds the parsers.

func init() {
	Register(&Decoder{
		Name:    "quic",
		UDP:     true,
		Ports:   []uint16{443, 853, 8443},
		Fields:  []string{"alpn", "cipher", "crypto_dropped", "dcid", "handshake_ns", "hello_ns", "retry", "scid", "server_cid", "sni", "undecrypted", "version", "vn"},
		Intern:  []string{"QUICv1", "QUICv2", "h3"},
		Summary: tlsSummary, // "www.example.com QUICv1 alpn=h3"
		New:     func(cfg *Config) Parser { return newQUICParser(cfg) },
	})
}

const (
	// quicMaxPacket bounds the Initial packet decrypted (its scratch
	// buffer, freed with the record): an Initial fills a datagram of at
	// least 1200 bytes, sent before the path MTU is known, so clients keep
	// to about 1200-1500 (quic-go 1252-1280, Chrome 1250-1350, ngtcp2
	// 1200). Larger ones count as undecrypted. With the hellos (at most
	// MaxHeader a side) this keeps a parser within Config's estimate.
	quicMaxPacket = 4 << 10
	// quicMaxRanges bounds the separate pieces of a hello being put back
	// together; Chrome's scattered frames leave fewer than 10 holes.
	quicMaxRanges = 32
	// quicMaxDerive bounds the key derivations per flow (versions,
	// Retry, new connections): each costs HKDF and cipher set-up, so a
	// flood of Initials with new connection IDs costs no more than this.
	quicMaxDerive = 8
)

// Packet kinds (the long header's type, by version).
const (
	quicInitial = iota
	quic0RTT
	quicHandshake
	quicRetry
	quicVN      // version 0: Version Negotiation
	quicUnknown // a version we have no keys for: header invariants only
)

// quicVersion is what a version changes: the Initial salt, the labels and
// packet type numbers (v2), its name.
type quicVersion struct {
	salt   []byte
	v2     bool // RFC 9369 labels and packet types
	google bool // Google's T050/T051: gQUIC frame types (CRYPTO 0x08, PING 0x07)
	name   string
}

var (
	quicSaltV1      = []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	quicSaltV2      = []byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9}
	quicSaltDraft29 = []byte{0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99}
	quicSaltDraft23 = []byte{0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4, 0x63, 0x65, 0xbe, 0xf9, 0xf5, 0x02}
	quicSaltDraft22 = []byte{0x7f, 0xbc, 0xdb, 0x0e, 0x7c, 0x66, 0xbb, 0xe9, 0x19, 0x3a, 0x96, 0xcd, 0x21, 0x51, 0x9e, 0xbd, 0x7a, 0x02, 0x64, 0x4a}
	quicSaltT050    = []byte{0x7f, 0xf5, 0x79, 0xe5, 0xac, 0xd0, 0x72, 0x91, 0x55, 0x80, 0x30, 0x4c, 0x43, 0xa2, 0x36, 0x7c, 0x60, 0x48, 0x83, 0x10}
	quicSaltT051    = []byte{0x7a, 0x4e, 0xde, 0xf4, 0xe7, 0xcc, 0xee, 0x5f, 0xa4, 0x50, 0x6c, 0x19, 0x12, 0x4f, 0xc8, 0xcc, 0xda, 0x6e, 0x03, 0x3d}
)

// quicVersions maps the versions whose Initials can be opened.
var quicVersions = func() map[uint32]*quicVersion {
	m := map[uint32]*quicVersion{
		0x00000001: {salt: quicSaltV1, name: "QUICv1"},
		0x6b3343cf: {salt: quicSaltV2, v2: true, name: "QUICv2"},
		0x54303530: {salt: quicSaltT050, google: true, name: "T050"},
		0x54303531: {salt: quicSaltT051, google: true, name: "T051"},
		0xfaceb001: {salt: quicSaltDraft22, name: "mvfst-1"},
		0xfaceb002: {salt: quicSaltDraft23, name: "mvfst-2"},
		0xfaceb00e: {salt: quicSaltDraft23, name: "mvfst-e"},
	}
	for d := uint32(22); d <= 34; d++ {
		salt := quicSaltDraft29
		switch {
		case d == 22:
			salt = quicSaltDraft22
		case d < 29:
			salt = quicSaltDraft23
		case d > 32:
			salt = quicSaltV1 // drafts 33 and 34 took v1's salt
		}
		m[0xff000000|d] = &quicVersion{salt: salt, name: "draft-" + strconv.Itoa(int(d))}
	}
	return m
}()

// quicForcingVN is how the versions reserved to force a Version
// Negotiation (0x?a?a?a?a, RFC 9000 15) are opened: clients that send one
// protect it as draft-29 does (Wireshark assumes the same).
var quicForcingVN = quicVersion{salt: quicSaltDraft29}

// quicLookup returns how version v is protected, or nil.
func quicLookup(v uint32) *quicVersion {
	if x := quicVersions[v]; x != nil {
		return x
	}
	if v&0x0f0f0f0f == 0x0a0a0a0a {
		return &quicForcingVN
	}
	return nil
}

// quicVersionName names a version: the known ones by name, Google's
// Qnnn/Tnnn by their text, others in hex.
func quicVersionName(v uint32) string {
	if x := quicVersions[v]; x != nil {
		return x.name
	}
	if c := byte(v >> 24); (c == 'Q' || c == 'T') && quicDigit(byte(v>>16)) && quicDigit(byte(v>>8)) && quicDigit(byte(v)) {
		return string([]byte{c, byte(v >> 16), byte(v >> 8), byte(v)})
	}
	const hx = "0123456789abcdef"
	b := []byte("0x00000000")
	for i := 0; i < 8; i++ {
		b[9-i] = hx[v>>(4*i)&15]
	}
	return string(b)
}

func quicDigit(c byte) bool { return c >= '0' && c <= '9' }

// quicCID is a connection ID (at most 20 bytes in the versions we know).
type quicCID struct {
	n uint8
	b [20]byte
}

func (c *quicCID) set(b []byte)  { c.n = uint8(copy(c.b[:], b)) }
func (c *quicCID) bytes() []byte { return c.b[:c.n] }
func (c *quicCID) eq(o *quicCID) bool {
	return c.n == o.n && string(c.b[:c.n]) == string(o.b[:o.n])
}

// quicHdr is one parsed long header.
type quicHdr struct {
	kind    int
	version uint32
	dcid    quicCID
	scid    quicCID
	pnOff   int  // Initial, 0-RTT, Handshake: offset of the packet number
	end     int  // end of the packet in the datagram slice it was parsed from
	cut     bool // the datagram ends before the packet's Length (snaplen)
}

// quicParseHeader parses the long header at the start of b. For a version
// without keys only the invariant fields (RFC 8999) are read and the packet
// runs to the datagram's end.
func quicParseHeader(b []byte) (h quicHdr, ok bool) {
	if len(b) < 7 || b[0]&0x80 == 0 {
		return h, false
	}
	h.version = binary.BigEndian.Uint32(b[1:5])
	i := 5
	dl := int(b[i])
	i++
	if dl > 20 || i+dl >= len(b) {
		return h, false
	}
	h.dcid.set(b[i : i+dl])
	i += dl
	sl := int(b[i])
	i++
	if sl > 20 || i+sl > len(b) {
		return h, false
	}
	h.scid.set(b[i : i+sl])
	i += sl
	h.end = len(b)
	if h.version == 0 {
		h.kind = quicVN
		return h, true
	}
	v := quicLookup(h.version)
	if v == nil {
		h.kind = quicUnknown
		return h, true
	}
	t := int(b[0]>>4) & 3
	if v.v2 {
		t = (t + 3) & 3 // v2: Retry 0, Initial 1, 0-RTT 2, Handshake 3
	}
	h.kind = t
	if h.kind == quicRetry {
		return h, true
	}
	if h.kind == quicInitial {
		tl, n := quicVarint(b[i:])
		if n == 0 || tl > uint64(len(b)-i-n) {
			return h, false
		}
		i += n + int(tl)
	}
	l, n := quicVarint(b[i:])
	if n == 0 {
		return h, false
	}
	i += n
	h.pnOff = i
	if l > uint64(len(b)-i) {
		h.cut = true
	} else {
		h.end = i + int(l)
	}
	return h, true
}

// quicVarint reads a variable-length integer (RFC 9000 16); n is 0 when b
// is too short.
func quicVarint(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0
	}
	v = uint64(b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v, n
}

// quicDirKeys are the Initial keys of one direction.
type quicDirKeys struct {
	aead cipher.AEAD
	hp   cipher.Block
	iv   [12]byte
}

// quicKeys are both directions' Initial keys for one version and DCID.
type quicKeys struct {
	version uint32
	dcid    quicCID
	dir     [2]quicDirKeys
}

// quicDeriveKeys derives the Initial keys of version v from the client's
// DCID (RFC 9001 5.2, RFC 9369 3.3).
func quicDeriveKeys(v *quicVersion, dcid []byte) (*quicKeys, error) {
	initial, err := hkdf.Extract(sha256.New, dcid, v.salt)
	if err != nil {
		return nil, err
	}
	kl, il, hl := "quic key", "quic iv", "quic hp"
	if v.v2 {
		kl, il, hl = "quicv2 key", "quicv2 iv", "quicv2 hp"
	}
	k := &quicKeys{}
	for s, label := range [2]string{"client in", "server in"} {
		secret, err := quicExpandLabel(initial, label, 32)
		if err != nil {
			return nil, err
		}
		key, err := quicExpandLabel(secret, kl, 16)
		if err != nil {
			return nil, err
		}
		iv, err := quicExpandLabel(secret, il, 12)
		if err != nil {
			return nil, err
		}
		hp, err := quicExpandLabel(secret, hl, 16)
		if err != nil {
			return nil, err
		}
		blk, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		d := &k.dir[s]
		if d.aead, err = cipher.NewGCM(blk); err != nil {
			return nil, err
		}
		if d.hp, err = aes.NewCipher(hp); err != nil {
			return nil, err
		}
		copy(d.iv[:], iv)
	}
	return k, nil
}

// quicExpandLabel is TLS 1.3's HKDF-Expand-Label with an empty context
// (RFC 8446 7.1).
func quicExpandLabel(secret []byte, label string, n int) ([]byte, error) {
	info := make([]byte, 0, 4+6+len(label))
	info = append(info, byte(n>>8), byte(n), byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, 0)
	return hkdf.Expand(sha256.New, secret, string(info), n)
}

// quicCrypto puts one side's Initial CRYPTO stream back together, up to
// the end of its hello.
type quicCrypto struct {
	buf     []byte                   // stream bytes [0, len(buf)); valid where rng says
	rng     [quicMaxRanges][2]uint32 // covered ranges rng[:nr], sorted and merged
	nr      int
	base    int  // stream offset of the hello (after a HelloRetryRequest: of the next)
	want    int  // stream offset after the hello, once its header is in
	done    bool // the hello was read, or given up
	dropped int  // bytes not kept: beyond the limits
}

// add stores CRYPTO data at stream offset off, bounded by limit bytes;
// what it cannot keep is counted in c.dropped.
func (c *quicCrypto) add(off uint64, data []byte, limit int) {
	if c.done || len(data) == 0 {
		return
	}
	end := off + uint64(len(data))
	if c.want > 0 && end > uint64(c.want) {
		if off >= uint64(c.want) {
			return // after the hello: not ours to read
		}
		data = data[:uint64(c.want)-off]
		end = uint64(c.want)
	}
	if end > uint64(limit) {
		if off >= uint64(limit) {
			c.dropped += len(data)
			return
		}
		c.dropped += int(end - uint64(limit))
		data = data[:uint64(limit)-off]
		end = uint64(limit)
	}
	c.store(off, end, data, limit)
}

func (c *quicCrypto) store(off, end uint64, data []byte, limit int) {
	if len(data) == 0 {
		return
	}
	if need := int(end); need > len(c.buf) {
		if need > cap(c.buf) {
			// Grow by doubling, from 2 KiB; end is within the limit,
			// and so is what is allocated.
			nb := make([]byte, need, min(max(need, 2*cap(c.buf), 2048), max(need, limit)))
			copy(nb, c.buf)
			c.buf = nb
		}
		c.buf = c.buf[:need]
	}
	copy(c.buf[off:end], data)
	// Insert [off, end) and merge.
	a, b := uint32(off), uint32(end)
	var tmp [quicMaxRanges + 1][2]uint32
	n := 0
	placed := false
	for _, r := range c.rng[:c.nr] {
		if r[1] < a { // wholly before
			tmp[n] = r
			n++
			continue
		}
		if r[0] > b { // wholly after
			if !placed {
				tmp[n] = [2]uint32{a, b}
				n++
				placed = true
			}
			tmp[n] = r
			n++
			continue
		}
		a, b = min(a, r[0]), max(b, r[1]) // overlapping or adjacent
	}
	if !placed {
		tmp[n] = [2]uint32{a, b}
		n++
	}
	if n > quicMaxRanges {
		c.giveUp() // too scattered
		return
	}
	c.nr = copy(c.rng[:], tmp[:n])
}

// giveUp stops reading, counting the bytes held as dropped.
func (c *quicCrypto) giveUp() {
	for _, r := range c.rng[:c.nr] {
		c.dropped += int(r[1] - r[0])
	}
	c.done, c.buf, c.nr = true, nil, 0
}

// hello returns the hello's body once it is complete; typ is the
// handshake type it must be (1 ClientHello, 2 ServerHello). ok false and
// c.done: it is not (given up).
func (c *quicCrypto) hello(typ byte, limit int) (body []byte, ok bool) {
	if c.done || c.nr == 0 || c.rng[0][0] != 0 || int(c.rng[0][1]) < c.base+4 {
		return nil, false
	}
	if c.want == 0 {
		h := c.buf[c.base:]
		l := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
		if h[0] != typ {
			c.done, c.buf = true, nil // not a hello: nothing to read
			return nil, false
		}
		if c.base+4+l > limit {
			c.dropped += 4 + l // too long to keep
			c.done, c.buf = true, nil
			return nil, false
		}
		c.want = c.base + 4 + l
	}
	if int(c.rng[0][1]) < c.want {
		return nil, false
	}
	c.done = true
	return c.buf[c.base+4 : c.want], true
}

// quicParser follows one UDP flow's QUIC connections.
type quicParser struct {
	cfg     *Config
	hello   tlsParser // its clientHello and serverHello read the hellos
	stopped bool      // not QUIC
	dgLen   int       // length of the datagram in the current Data call

	started  bool // a connection's long-header packet was seen
	reported bool // and its record made
	cliVer   uint32
	srvVer   uint32
	odcid    quicCID // the client's first DCID
	kdcid    quicCID // the DCID the Initial keys come from (odcid, or a Retry's SCID)
	scid     quicCID // the client's SCID
	srvCID   quicCID // the server's SCID
	retryCID quicCID // a Retry's SCID
	retry    bool
	vn       bool // the server sent a Version Negotiation

	keys    [2]*quicKeys // the last keys derived, by version and DCID
	derived int
	largest [2]int64 // largest Initial packet number opened, per side

	crypto      [2]quicCrypto
	req, resp   *Message
	hsTS        int64 // the client's first 1-RTT packet
	undecrypted int

	scratch []byte // decrypted Initial, reused
}

var _ Parser = (*quicParser)(nil)

func newQUICParser(cfg *Config) *quicParser {
	p := &quicParser{cfg: cfg}
	p.hello.cfg = cfg
	p.largest = [2]int64{-1, -1}
	return p
}

func (p *quicParser) limit() int {
	if p.cfg.MaxHeader > 0 {
		return p.cfg.MaxHeader
	}
	return 16 << 10
}

// Data reads one UDP datagram of side s. b is valid only during the call.
func (p *quicParser) Data(s Side, b []byte, st Stream) {
	if p.stopped || len(b) == 0 || s > Server {
		return
	}
	p.dgLen = len(b)
	off := 0
	for off < len(b) {
		if b[off]&0x80 == 0 {
			// A short-header (1-RTT) packet: the rest of the datagram.
			if !p.started {
				p.stopped = true // not a handshake we saw begin, or not QUIC
				return
			}
			if s == Client && (off == 0 || p.shortAfter(b[off:])) {
				p.oneRTT(st)
			}
			return
		}
		h, ok := quicParseHeader(b[off:])
		if !ok {
			if !p.started {
				p.stopped = true
			}
			return
		}
		p.packet(s, b[off:off+h.end], &h, st)
		if h.cut {
			return
		}
		off += h.end
	}
}

// packet handles one long-header packet pkt of side s.
func (p *quicParser) packet(s Side, pkt []byte, h *quicHdr, st Stream) {
	switch h.kind {
	case quicRetry:
		if s == Server && p.started && !p.reported {
			p.retryCID, p.retry = h.scid, true
		}
	case quicVN:
		// The server's answer to an Initial in a version it does not
		// speak: the response when nothing else came first.
		if s == Server && p.started && !p.reported {
			p.vn = true
			if p.resp == nil {
				p.resp = st.Begin(Server, 0)
			}
		}
	case quicInitial:
		if s == Client {
			p.clientInitial(pkt, h, st)
		} else {
			p.serverLong(h, st)
			p.serverInitial(pkt, h, st)
		}
	case quicHandshake:
		if s == Server {
			p.serverLong(h, st)
		}
	case quicUnknown:
		// A version we have no keys for: the connection is still
		// recorded, with its version and connection IDs.
		if s == Client && !p.started {
			p.start(h)
		}
		p.started = true
		if p.reported {
			return
		}
		if s == Client && p.req == nil {
			p.req = st.Begin(Client, 0)
		} else if s == Server && p.srvVer == 0 {
			if p.resp == nil {
				p.resp = st.Begin(Server, 0)
			}
			p.srvVer, p.srvCID = h.version, h.scid
		}
	}
}

// start begins a connection at its first long-header packet.
func (p *quicParser) start(h *quicHdr) {
	p.started = true
	p.cliVer = h.version
	p.odcid, p.kdcid, p.scid = h.dcid, h.dcid, h.scid
}

// knownDCID reports whether a client packet's DCID belongs to the
// connection.
func (p *quicParser) knownDCID(c *quicCID) bool {
	return c.eq(&p.odcid) || c.eq(&p.kdcid) || c.eq(&p.srvCID) || p.retry && c.eq(&p.retryCID)
}

func (p *quicParser) clientInitial(pkt []byte, h *quicHdr, st Stream) {
	if !p.started {
		p.start(h)
	}
	var pt []byte
	opened := false
	if !p.knownDCID(&h.dcid) {
		// Another connection on the same ports, or a DCID the server
		// gave in a packet we did not see: the keys tell.
		if pt, opened = p.open(Client, pkt, h, &p.kdcid); !opened {
			pt, opened = p.open(Client, pkt, h, &h.dcid)
			if !opened {
				p.undecrypted++
				return
			}
			if p.vn && p.srvVer == 0 && !p.reported {
				// The client starts again in a version the server
				// offered: the same record, with the new keys.
				p.start(h)
				p.crypto[Client] = quicCrypto{}
				p.largest[Client] = -1
			} else {
				p.finish(st)
				p.reset()
				p.start(h)
			}
		} else if p.reported {
			return
		}
	} else if p.reported {
		return // a retransmission or an ACK of a connection reported
	}
	if p.retry && h.dcid.eq(&p.retryCID) {
		p.kdcid = p.retryCID // the keys follow the Retry's connection ID
	}
	if p.req == nil {
		p.req = st.Begin(Client, 0)
	}
	if !opened {
		if pt, opened = p.open(Client, pkt, h, &p.kdcid); !opened {
			p.undecrypted++
			return
		}
	}
	p.frames(Client, h.version, pt, st)
}

// serverLong notes a server Initial or Handshake packet: the first begins
// the response.
func (p *quicParser) serverLong(h *quicHdr, st Stream) {
	if !p.started {
		p.started = true // the client's Initial was not seen
	}
	if p.reported || p.srvVer != 0 {
		return
	}
	if p.resp == nil {
		p.resp = st.Begin(Server, 0)
	}
	p.srvVer, p.srvCID = h.version, h.scid
}

func (p *quicParser) serverInitial(pkt []byte, h *quicHdr, st Stream) {
	if p.reported || p.crypto[Server].done || p.kdcid.n == 0 {
		return
	}
	pt, ok := p.open(Server, pkt, h, &p.kdcid)
	if !ok {
		p.undecrypted++
		return
	}
	p.frames(Server, h.version, pt, st)
}

// keysFor returns the Initial keys of version v from dcid, deriving them
// (at most quicMaxDerive times per flow) when the last two were others.
func (p *quicParser) keysFor(v uint32, dcid *quicCID) *quicKeys {
	for _, k := range p.keys {
		if k != nil && k.version == v && k.dcid.eq(dcid) {
			return k
		}
	}
	ver := quicLookup(v)
	if ver == nil || p.derived >= quicMaxDerive {
		return nil
	}
	p.derived++
	k, err := quicDeriveKeys(ver, dcid.bytes())
	if err != nil {
		return nil
	}
	k.version, k.dcid = v, *dcid
	p.keys[1] = p.keys[0]
	p.keys[0] = k
	return k
}

// open removes the header protection of the Initial packet pkt of side s
// and decrypts it with the keys from dcid. The plaintext is in p.scratch,
// valid until the next open.
func (p *quicParser) open(s Side, pkt []byte, h *quicHdr, dcid *quicCID) ([]byte, bool) {
	if h.cut || h.pnOff+4+16 > len(pkt) || len(pkt) > quicMaxPacket {
		return nil, false
	}
	k := p.keysFor(h.version, dcid)
	if k == nil {
		return nil, false
	}
	d := &k.dir[s]
	var mask [16]byte
	d.hp.Encrypt(mask[:], pkt[h.pnOff+4:h.pnOff+20])
	first := pkt[0] ^ mask[0]&0x0f
	pnLen := int(first&3) + 1
	hdrLen := h.pnOff + pnLen
	if len(pkt)-hdrLen < d.aead.Overhead() {
		return nil, false
	}
	if cap(p.scratch) < len(pkt) {
		p.scratch = make([]byte, 0, max(len(pkt), 1500))
	}
	hdr := p.scratch[:hdrLen]
	copy(hdr, pkt[:hdrLen])
	hdr[0] = first
	var trunc uint64
	for i := 0; i < pnLen; i++ {
		hdr[h.pnOff+i] ^= mask[1+i]
		trunc = trunc<<8 | uint64(hdr[h.pnOff+i])
	}
	pn := quicDecodePN(p.largest[s], trunc, uint(pnLen*8))
	var nonce [12]byte
	copy(nonce[:], d.iv[:])
	for i := 0; i < 8; i++ {
		nonce[11-i] ^= byte(pn >> (8 * i))
	}
	pt, err := d.aead.Open(p.scratch[hdrLen:hdrLen], nonce[:], pkt[hdrLen:], hdr)
	if err != nil {
		return nil, false
	}
	if pn > p.largest[s] {
		p.largest[s] = pn
	}
	return pt, true
}

// quicDecodePN expands a truncated packet number (RFC 9000 A.3).
func quicDecodePN(largest int64, truncated uint64, bits uint) int64 {
	expected := largest + 1
	win := int64(1) << bits
	hwin := win / 2
	cand := expected&^(win-1) | int64(truncated)
	switch {
	case cand <= expected-hwin && cand < 1<<62-win:
		return cand + win
	case cand > expected+hwin && cand >= win:
		return cand - win
	}
	return cand
}

// frames reads the frames of a decrypted Initial payload of side s: the
// CRYPTO data goes to the side's hello; PADDING, PING, ACK and
// CONNECTION_CLOSE are skipped; any other frame (not allowed in an
// Initial) ends the packet.
func (p *quicParser) frames(s Side, version uint32, pt []byte, st Stream) {
	c := &p.crypto[s]
	google := quicLookup(version).google
	for i := 0; i < len(pt); {
		t := pt[i]
		if google {
			// gQUIC frame types: PADDING 0x00, PING 0x07, CRYPTO 0x08
			// (varint offset and length, as IETF's); nothing else is
			// followed.
			switch t {
			case 0x07:
				t = 0x01
			case 0x08:
				t = 0x06
			case 0x00:
			default:
				return
			}
		}
		switch t {
		case 0x00, 0x01: // PADDING, PING
			i++
		case 0x02, 0x03: // ACK, ACK with ECN counts
			ecn := t == 0x03
			i++
			var n int
			var cnt uint64
			for k := 0; k < 4; k++ { // largest, delay, range count, first range
				var v uint64
				if v, n = quicVarint(pt[i:]); n == 0 {
					return
				}
				if k == 2 {
					cnt = v
				}
				i += n
			}
			if cnt > uint64(len(pt)) {
				return
			}
			extra := 2 * int(cnt)
			if ecn {
				extra += 3
			}
			for k := 0; k < extra; k++ {
				if _, n = quicVarint(pt[i:]); n == 0 {
					return
				}
				i += n
			}
		case 0x06: // CRYPTO
			i++
			off, n := quicVarint(pt[i:])
			if n == 0 {
				return
			}
			i += n
			l, n := quicVarint(pt[i:])
			if n == 0 || l > uint64(len(pt)-i-n) {
				return
			}
			i += n
			c.add(off, pt[i:i+int(l)], p.limit())
			i += int(l)
		case 0x1c, 0x1d: // CONNECTION_CLOSE
			app := t == 0x1d
			i++
			for k := 0; k < 2; k++ { // error code, frame type
				if k == 1 && app {
					break
				}
				_, n := quicVarint(pt[i:])
				if n == 0 {
					return
				}
				i += n
			}
			l, n := quicVarint(pt[i:])
			if n == 0 || l > uint64(len(pt)-i-n) {
				return
			}
			i += n + int(l)
		default:
			return
		}
	}
	p.readHello(s, st)
}

// readHello parses side s's hello once its bytes are all in.
func (p *quicParser) readHello(s Side, st Stream) {
	c := &p.crypto[s]
	if s == Client {
		body, ok := c.hello(1, p.limit())
		if !ok || p.req == nil {
			return
		}
		p.hello.clientHello(p.req, body)
		c.buf = nil
		if !p.req.Ended {
			st.End(p.req, p.dgLen)
		}
		return
	}
	body, ok := c.hello(2, p.limit())
	if !ok || p.resp == nil {
		return
	}
	if hrr, _ := p.hello.serverHello(p.resp, body); hrr {
		// A HelloRetryRequest: the ServerHello follows it in the
		// stream, after the client's second ClientHello.
		c.base, c.want, c.done = c.want, 0, false
		return
	}
	c.buf = nil
}

// shortAfter reports whether b, the bytes after a client's long-header
// packets in a datagram, is a 1-RTT packet rather than padding (some
// clients fill the datagram with zeros after the Initial): its DCID is the
// server's connection ID, or, when that is not known, its fixed bit is set
// (a client may clear it, RFC 9287, so the DCID is the better test).
func (p *quicParser) shortAfter(b []byte) bool {
	n := int(p.srvCID.n)
	if len(b) < 1+n+17 { // flags, DCID, packet number, tag
		return false
	}
	if n > 0 {
		return string(b[1:1+n]) == string(p.srvCID.bytes())
	}
	return b[0]&0x40 != 0
}

// oneRTT notes a client 1-RTT packet: the first after the server's reply
// says the client finished the handshake, and the record is made.
func (p *quicParser) oneRTT(st Stream) {
	if p.reported || p.req == nil || p.resp == nil {
		return
	}
	p.hsTS = st.TS()
	p.finish(st)
}

// finish reports the connection's record (if it has anything to report).
func (p *quicParser) finish(st Stream) {
	if p.reported || p.req == nil && p.resp == nil {
		return
	}
	p.reported = true
	p.scratch = nil
	p.crypto[Client].buf, p.crypto[Server].buf = nil, nil
	req, resp := p.req, p.resp
	p.req, p.resp = nil, nil
	m := req
	if req != nil {
		if !req.Ended {
			st.End(req, -1)
		}
		req.Str("version", quicVersionName(p.cliVer))
		if p.hsTS != 0 {
			req.Int("handshake_ns", p.hsTS-req.FirstTS)
		}
	}
	if resp != nil {
		if !resp.Ended {
			st.End(resp, -1)
		}
		v := p.srvVer
		if v == 0 {
			v = p.cliVer // only a Version Negotiation came
		}
		resp.Str("version", quicVersionName(v))
		if m == nil {
			m = resp
		} else {
			m.Int("hello_ns", resp.FirstTS-req.FirstTS)
		}
	}
	if p.odcid.n > 0 {
		m.Str("dcid", hex.EncodeToString(p.odcid.bytes()))
	}
	if p.scid.n > 0 {
		m.Str("scid", hex.EncodeToString(p.scid.bytes()))
	}
	if p.srvCID.n > 0 {
		m.Str("server_cid", hex.EncodeToString(p.srvCID.bytes()))
	}
	if p.retry {
		m.Int("retry", 1)
	}
	if p.vn {
		m.Int("vn", 1)
	}
	if p.undecrypted > 0 {
		m.Int("undecrypted", int64(p.undecrypted))
	}
	if n := p.crypto[Client].dropped + p.crypto[Server].dropped; n > 0 {
		m.Int("crypto_dropped", int64(n))
	}
	st.Exchange(req, resp)
}

// reset forgets the connection reported, keeping the keys cache (and its
// bound) and the scratch buffer (which may hold the plaintext being read).
func (p *quicParser) reset() {
	*p = quicParser{
		cfg: p.cfg, hello: tlsParser{cfg: p.cfg}, dgLen: p.dgLen,
		keys: p.keys, derived: p.derived, scratch: p.scratch,
		largest: [2]int64{-1, -1},
	}
}

// Gap does nothing: datagrams carry their own framing.
func (p *quicParser) Gap(Side, int, Stream) {}

// Close reports the connection not reported yet: without handshake_ns,
// and without a response if the server never answered.
func (p *quicParser) Close(st Stream) {
	p.finish(st)
	p.crypto = [2]quicCrypto{}
}

// Stopped reports that the flow is not QUIC (or began unseen).
func (p *quicParser) Stopped() bool { return p.stopped }
