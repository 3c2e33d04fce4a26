package query

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"tapvault/packet"
)

// The filter parser: recursive descent over the grammar in filter.go,
// building the tree of ast.go.

// Qualifier types (the aqual of a head).
const (
	typNone uint8 = iota // only pqual/dqual given: the id must be an address (a host)
	typHost
	typNet
	typPort
	typPortRange
	typProto
	typVLAN
)

// qual is what a head says; bare ids inherit the last one.
type qual struct {
	pq    string // "", ip, ip6, tcp, udp, sctp, ether
	pqTok token
	dir   uint8
	typ   uint8
}

// maxDepth bounds the nesting of parentheses and nots, so that a filter
// from the network cannot make parsing or Match recurse without bound.
const maxDepth = 200

type parser struct {
	expr  string
	toks  []token
	i     int
	depth int  // current nesting of parentheses and nots
	q     qual // qualifiers a bare id takes
	qok   bool // q is valid (false at the start and after a pname)
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekAt(k int) token {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errAt(t token, msg string) *FilterError {
	if t.kind == tErr {
		msg = t.text
	}
	n := t.end - t.pos
	if n < 1 {
		n = 1
	}
	return &FilterError{Pos: t.pos, Len: n, Msg: msg, Expr: p.expr}
}

func (p *parser) errExpected(t token, what string) *FilterError {
	if t.kind == tEOF {
		return p.errAt(t, "unexpected end of filter, expected "+what)
	}
	return p.errAt(t, fmt.Sprintf("expected %s, got %q", what, t.text))
}

// combine joins left and right with an and/or, flattening same-op children
// (and/or are associative), so the canonical form needs no redundant
// parentheses.
func combine(op nodeOp, left, right *node) *node {
	n := &node{op: op}
	for _, k := range [2]*node{left, right} {
		if k.op == op {
			n.kids = append(n.kids, k.kids...)
		} else {
			n.kids = append(n.kids, k)
		}
	}
	return n
}

func (p *parser) parseExpr() (*node, error) {
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		var op nodeOp
		switch t.kind {
		case tAnd:
			op = opAnd
		case tOr:
			op = opOr
		default:
			return left, nil
		}
		p.next()
		right, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		left = combine(op, left, right)
	}
}

func (p *parser) parseUnary() (*node, error) {
	t := p.peek()
	if t.kind == tNot || t.kind == tLParen {
		if p.depth++; p.depth > maxDepth {
			return nil, p.errAt(t, fmt.Sprintf("filter nested more than %d deep", maxDepth))
		}
		defer func() { p.depth-- }()
	}
	switch t.kind {
	case tNot:
		p.next()
		k, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return &node{op: opNot, kids: []*node{k}}, nil
	case tLParen:
		p.next()
		saved, savedOK := p.q, p.qok
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if c := p.peek(); c.kind != tRParen {
			if c.kind == tEOF {
				return nil, p.errAt(t, "unbalanced (: missing )")
			}
			return nil, p.errExpected(c, "and, or or )")
		}
		p.next()
		p.q, p.qok = saved, savedOK
		return e, nil
	case tWord:
		return p.parsePrimitive()
	}
	return nil, p.errExpected(t, "a primitive")
}

func isPQual(w string) bool {
	switch w {
	case "ip", "ip6", "tcp", "udp", "sctp", "ether", "arp", "rarp":
		return true
	}
	return false
}

func isDQual(w string) bool { return w == "src" || w == "dst" }

func aqualType(w string) uint8 {
	switch w {
	case "host":
		return typHost
	case "net":
		return typNet
	case "port":
		return typPort
	case "portrange":
		return typPortRange
	case "proto":
		return typProto
	}
	return typNone
}

// isKeyword reports whether w (lower-cased) is a word of the language, which
// therefore cannot be a bare id.
func isKeyword(w string) bool {
	if isPQual(w) || isDQual(w) || aqualType(w) != typNone {
		return true
	}
	switch w {
	case "vlan", "mpls", "flow", "community-id":
		return true
	}
	for _, pn := range pnames {
		if pn.name == w {
			return true
		}
	}
	_, ok := unsupported[w]
	return ok
}

func (p *parser) parsePrimitive() (*node, error) {
	t := p.peek()
	w := t.word
	if w == "" || !isKeyword(w) {
		// A value: a bare Community-ID, or an id with inherited qualifiers.
		if isCommunityID(t.text) {
			p.next()
			p.qok = false
			return communityNode(t.text), nil
		}
		if !p.qok {
			if looksLikeValue(t.text) {
				return nil, p.errAt(t, fmt.Sprintf("%q needs a qualifier in front (host, net or port)", t.text))
			}
			if strings.ContainsRune(t.text, '[') {
				return nil, p.errAt(t, fmt.Sprintf("packet data accessors (%s) are not supported", t.text))
			}
			return nil, p.errAt(t, fmt.Sprintf("unknown primitive %q", t.text))
		}
		return p.parseID(p.q)
	}
	if msg, ok := unsupported[w]; ok {
		return nil, p.errAt(t, msg)
	}
	switch w {
	case "vlan":
		p.next()
		n := &node{op: opVLAN, anyVLAN: true}
		p.qok = false
		if v := p.peek(); v.kind == tWord && !isKeyword(v.word) && looksLikeNumber(v.text) {
			p.q, p.qok = qual{typ: typVLAN}, true
			return p.parseID(p.q)
		}
		return n, nil
	case "mpls":
		p.next()
		p.qok = false
		if v := p.peek(); v.kind == tWord && looksLikeNumber(v.text) {
			return nil, p.errAt(v, "mpls labels are not decoded: only a bare mpls (any label stack) is supported")
		}
		return &node{op: opMPLS}, nil
	case "flow":
		return p.parseFlow(0)
	case "community-id":
		p.next()
		p.qok = false
		v := p.next()
		if v.kind != tWord || !isCommunityID(v.text) {
			return nil, p.errExpected(v, `a Community-ID v1 string ("1:" and 28 base64 characters)`)
		}
		return communityNode(v.text), nil
	}

	// A head, or a protocol name standing alone.
	var q qual
	if isPQual(w) {
		q.pq, q.pqTok = w, t
		p.next()
		nw := p.peek().word
		switch {
		case p.peek().kind == tWord && (isDQual(nw) || aqualType(nw) != typNone):
		case nw == "flow" && (w == "tcp" || w == "udp" || w == "sctp"):
			return p.parseFlow(ipProtos[w])
		default:
			return p.pname(t)
		}
	} else {
		for _, pn := range pnames {
			if pn.name == w {
				p.next()
				p.qok = false
				return &node{op: opProto, ver: pn.ver, proto: pn.proto}, nil
			}
		}
	}
	if d := p.peek(); d.kind == tWord && isDQual(d.word) {
		p.next()
		q.dir = dirSrc
		if d.word == "dst" {
			q.dir = dirDst
		}
		if c, o := p.peek(), p.peekAt(1); (c.kind == tOr || c.kind == tAnd) && o.kind == tWord && isDQual(o.word) && o.word != d.word {
			p.next()
			p.next()
			q.dir = dirAny
			if c.kind == tAnd {
				q.dir = dirBoth
			}
		}
	}
	if a := p.peek(); a.kind == tWord && aqualType(a.word) != typNone {
		p.next()
		q.typ = aqualType(a.word)
	}
	if err := p.checkQual(q); err != nil {
		return nil, err
	}
	p.q, p.qok = q, true
	return p.parseID(q)
}

// pname builds a protocol primitive that stands alone: ip, ip6, arp, rarp,
// tcp, udp, sctp; ether alone is an error.
func (p *parser) pname(t token) (*node, error) {
	p.qok = false
	for _, e := range etherNames {
		if e.name == t.word {
			return &node{op: opEtherType, etherType: e.etherType, flag: e.flag}, nil
		}
	}
	for _, pn := range pnames {
		if pn.name == t.word {
			return &node{op: opProto, ver: pn.ver, proto: pn.proto}, nil
		}
	}
	if t.word == "ether" {
		return nil, p.errAt(t, "ether must be followed by proto (MAC addresses are not decoded)")
	}
	panic("BUG: pname " + t.word)
}

// checkQual rejects protocol qualifiers that do not apply to the type.
func (p *parser) checkQual(q qual) error {
	if q.pq == "" {
		return nil
	}
	ok := false
	switch q.typ {
	case typNone, typHost, typNet:
		ok = q.pq == "ip" || q.pq == "ip6"
		if q.pq == "arp" || q.pq == "rarp" {
			return p.errAt(q.pqTok, q.pq+" addresses are not decoded: use arp alone, or host without arp")
		}
		if q.pq == "ether" {
			return p.errAt(q.pqTok, "MAC addresses are not decoded: ether host/src/dst are not supported")
		}
	case typPort, typPortRange:
		ok = q.pq == "tcp" || q.pq == "udp" || q.pq == "sctp"
	case typProto:
		ok = q.pq == "ip" || q.pq == "ip6" || q.pq == "ether"
	}
	if !ok {
		return p.errAt(q.pqTok, fmt.Sprintf("%s cannot qualify %s", q.pq, typName(q.typ)))
	}
	return nil
}

func typName(t uint8) string {
	switch t {
	case typHost:
		return "host"
	case typNet:
		return "net"
	case typPort:
		return "port"
	case typPortRange:
		return "portrange"
	case typProto:
		return "proto"
	case typVLAN:
		return "vlan"
	}
	return "an address"
}

// parseID parses an id under qualifiers q: a value, "not" id, or a
// parenthesised list of ids joined by and/or ("host (a or b)").
func (p *parser) parseID(q qual) (*node, error) {
	t := p.peek()
	if t.kind == tNot || t.kind == tLParen {
		if p.depth++; p.depth > maxDepth {
			return nil, p.errAt(t, fmt.Sprintf("filter nested more than %d deep", maxDepth))
		}
		defer func() { p.depth-- }()
	}
	switch t.kind {
	case tNot:
		p.next()
		k, err := p.parseID(q)
		if err != nil {
			return nil, err
		}
		return &node{op: opNot, kids: []*node{k}}, nil
	case tLParen:
		p.next()
		left, err := p.parseID(q)
		if err != nil {
			return nil, err
		}
		for {
			c := p.peek()
			var op nodeOp
			switch c.kind {
			case tAnd:
				op = opAnd
			case tOr:
				op = opOr
			case tRParen:
				p.next()
				return left, nil
			case tEOF:
				return nil, p.errAt(t, "unbalanced (: missing )")
			default:
				return nil, p.errExpected(c, "and, or or )")
			}
			p.next()
			right, err := p.parseID(q)
			if err != nil {
				return nil, err
			}
			left = combine(op, left, right)
		}
	case tWord:
		_, isProto := ipProtos[t.word]
		protoName := q.typ == typProto && (isProto || etherByName(t.word) >= 0)
		if t.word != "" && isKeyword(t.word) && !protoName {
			return nil, p.errExpected(t, idWhat(q.typ))
		}
		p.next()
		return p.value(q, t)
	}
	return nil, p.errExpected(t, idWhat(q.typ))
}

func idWhat(typ uint8) string {
	switch typ {
	case typPort:
		return "a port number"
	case typPortRange:
		return "a port range (lo-hi)"
	case typProto:
		return "a protocol number or name"
	case typVLAN:
		return "a VLAN id"
	case typNet:
		return "a network (CIDR)"
	}
	return "an IP address"
}

// value turns one word into a primitive under q.
func (p *parser) value(q qual, t token) (*node, error) {
	s := t.text
	switch q.typ {
	case typNone, typHost, typNet:
		return p.addrValue(q, t)
	case typPort:
		proto := ipProtos[q.pq]
		if sv, ok := services[strings.ToLower(s)]; ok {
			switch {
			case sv.proto == 0:
			case proto == 0:
				proto = sv.proto
			case proto != sv.proto:
				return nil, p.errAt(t, fmt.Sprintf("port %s is %s only", s, ipProtoName(sv.proto)))
			}
			return &node{op: opPort, proto: proto, dir: q.dir, lo: sv.port, hi: sv.port}, nil
		}
		port, err := p.port(t, s)
		if err != nil {
			return nil, err
		}
		return &node{op: opPort, proto: proto, dir: q.dir, lo: port, hi: port}, nil
	case typPortRange:
		i := strings.IndexByte(s, '-')
		if i <= 0 || i == len(s)-1 {
			return nil, p.errAt(t, fmt.Sprintf("invalid port range %q, want lo-hi", s))
		}
		lo, err := p.port(t, s[:i])
		if err != nil {
			return nil, err
		}
		hi, err := p.port(t, s[i+1:])
		if err != nil {
			return nil, err
		}
		if lo > hi {
			lo, hi = hi, lo // as pcap-filter does
		}
		return &node{op: opPort, proto: ipProtos[q.pq], dir: q.dir, lo: lo, hi: hi}, nil
	case typProto:
		if q.dir != dirAny {
			return nil, p.errAt(t, "src/dst cannot qualify proto")
		}
		if q.pq == "ether" {
			var et uint64
			if e := etherByName(s); e >= 0 {
				et = uint64(etherNames[e].etherType)
			} else {
				v, err := parseNum(s, 0xffff)
				if err != nil {
					return nil, p.errAt(t, fmt.Sprintf("invalid EtherType %q: %v", s, err))
				}
				et = v
			}
			n := &node{op: opEtherType, etherType: uint16(et)}
			for _, e := range etherNames {
				if e.etherType == n.etherType {
					n.flag = e.flag
				}
			}
			return n, nil
		}
		var ver uint8
		switch q.pq {
		case "ip":
			ver = 4
		case "ip6":
			ver = 6
		}
		v, ok := ipProtos[strings.ToLower(s)]
		if !ok {
			n, err := parseNum(s, 255)
			if err != nil {
				return nil, p.errAt(t, fmt.Sprintf("invalid protocol %q: want a number 0-255 or a name such as tcp", s))
			}
			v = uint8(n)
		}
		return &node{op: opProto, ver: ver, proto: v}, nil
	case typVLAN:
		v, err := parseNum(s, 4095)
		if err != nil {
			return nil, p.errAt(t, fmt.Sprintf("invalid VLAN id %q: %v", s, err))
		}
		return &node{op: opVLAN, lo: uint16(v)}, nil
	}
	panic("BUG: qualifier type")
}

// etherByName returns the index in etherNames of a name, or -1.
func etherByName(s string) int {
	for i, e := range etherNames {
		if strings.EqualFold(e.name, s) {
			return i
		}
	}
	return -1
}

// port parses a port number (names are looked up by the caller).
func (p *parser) port(t token, s string) (uint16, error) {
	v, err := parseNum(s, 65535)
	if err != nil {
		return 0, p.errAt(t, fmt.Sprintf("invalid port %q: %v", s, err))
	}
	return uint16(v), nil
}

// addrValue parses the id of host, net, or a head with no type (src X,
// which must be an address, as in pcap-filter).
func (p *parser) addrValue(q qual, t token) (*node, error) {
	s := t.text
	typ := q.typ
	var pfx netip.Prefix
	if m := p.peek(); m.kind == tWord && m.word == "mask" {
		if typ != typNet {
			return nil, p.errAt(m, "mask applies to net only (as in pcap-filter)")
		}
		p.next()
		mt := p.next()
		if mt.kind != tWord {
			return nil, p.errExpected(mt, "a netmask")
		}
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, p.errAt(t, fmt.Sprintf("invalid IPv4 network %q", s))
		}
		m, err := netip.ParseAddr(mt.text)
		if err != nil || !m.Is4() {
			return nil, p.errAt(mt, fmt.Sprintf("invalid IPv4 netmask %q", mt.text))
		}
		bits := maskBits(m.As4())
		if bits < 0 {
			return nil, p.errAt(mt, fmt.Sprintf("netmask %q is not contiguous", mt.text))
		}
		pfx = netip.PrefixFrom(a, bits)
		typ = typNet
	} else if i := strings.IndexByte(s, '/'); i >= 0 {
		if typ != typNet {
			// pcap-filter refuses "src 10.0.0.0/8" too: the type is not
			// guessed from the value's form.
			return nil, p.errAt(t, fmt.Sprintf("%q is a network: write net before it", s))
		}
		a, err := parsePartialAddr(s[:i])
		if err != nil {
			return nil, p.errAt(t, fmt.Sprintf("invalid network %q: %v", s, err))
		}
		bits, err := parseNum(s[i+1:], uint64(a.BitLen()))
		if err != nil {
			return nil, p.errAt(t, fmt.Sprintf("invalid prefix length in %q: %v", s, err))
		}
		pfx = netip.PrefixFrom(a, int(bits))
		typ = typNet
	} else {
		if typ == typNet {
			// pcap-filter: "net 10" is 10.0.0.0/8, "net 10.1" a /16, ...
			a, bits, err := parseNetAddr(s)
			if err != nil {
				return nil, p.errAt(t, p.addrError(s, err))
			}
			pfx = netip.PrefixFrom(a, bits)
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, p.errAt(t, p.addrError(s, err))
			}
			if a.Zone() != "" {
				return nil, p.errAt(t, fmt.Sprintf("address %q has a zone, which packets do not carry", s))
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
			typ = typHost
		}
	}
	if pfx.Masked() != pfx {
		return nil, p.errAt(t, fmt.Sprintf("non-network bits set in %s (did you mean %s?)", pfx, pfx.Masked()))
	}
	a := pfx.Addr()
	ver := uint8(6)
	if a.Is4() {
		ver = 4
	}
	if (q.pq == "ip" && ver != 4) || (q.pq == "ip6" && ver != 6) {
		return nil, p.errAt(t, fmt.Sprintf("%s cannot qualify an IPv%d address", q.pq, ver))
	}
	n := &node{dir: q.dir, ver: ver, prefix: pfx, addr: a.As16()}
	if typ == typHost {
		n.op = opHost
		return n, nil
	}
	n.op = opNet
	bits := pfx.Bits()
	if ver == 4 {
		bits += 96
	}
	n.maskHi, n.maskLo = prefixMask(bits)
	n.netHi = binary.BigEndian.Uint64(n.addr[:8]) & n.maskHi
	n.netLo = binary.BigEndian.Uint64(n.addr[8:]) & n.maskLo
	return n, nil
}

func (p *parser) addrError(s string, err error) string {
	if looksLikeValue(s) {
		return fmt.Sprintf("invalid address %q: %v", s, err)
	}
	return fmt.Sprintf("%q is neither an IP address (host names are not resolved) nor a primitive", s)
}

// prefixMask returns the 128-bit mask of a prefix length, as two halves.
func prefixMask(bits int) (hi, lo uint64) {
	switch {
	case bits >= 128:
		return ^uint64(0), ^uint64(0)
	case bits > 64:
		return ^uint64(0), ^uint64(0) << (128 - bits)
	case bits == 64:
		return ^uint64(0), 0
	case bits > 0:
		return ^uint64(0) << (64 - bits), 0
	}
	return 0, 0
}

func maskBits(m [4]byte) int {
	v := binary.BigEndian.Uint32(m[:])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return -1
	}
	return n
}

// parseNetAddr parses the id of "net": a full address (a /32 or /128) or a
// dotted IPv4 network of 1 to 3 parts (10, 10.1, 10.1.2: /8, /16, /24).
func parseNetAddr(s string) (netip.Addr, int, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return a, 0, fmt.Errorf("zones are not supported")
		}
		return a, a.BitLen(), nil
	}
	a, err := parsePartialAddr(s)
	if err != nil {
		return a, 0, err
	}
	return a, 8 * (strings.Count(s, ".") + 1), nil
}

// parsePartialAddr parses an address, or 1 to 3 dotted IPv4 parts padded
// with zeros.
func parsePartialAddr(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return a, fmt.Errorf("zones are not supported")
		}
		return a, nil
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 || s == "" {
		_, err := netip.ParseAddr(s)
		return netip.Addr{}, err
	}
	var b [4]byte
	for i, part := range parts {
		v, err := parseNum(part, 255)
		if err != nil || part != strconv.FormatUint(v, 10) {
			return netip.Addr{}, fmt.Errorf("%q is not an IP address or network", s)
		}
		b[i] = byte(v)
	}
	return netip.AddrFrom4(b), nil
}

// parseNum parses a decimal or 0x-hexadecimal number up to max. A leading
// zero is refused: pcap-filter reads it as octal, which nobody means.
func parseNum(s string, max uint64) (uint64, error) {
	base := 10
	digits := s
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		base, digits = 16, s[2:]
	} else if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("leading zero (pcap-filter would read it as octal)")
	}
	if digits == "" || digits[0] == '+' || digits[0] == '-' {
		return 0, fmt.Errorf("not a number")
	}
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number")
	}
	if v > max {
		return 0, fmt.Errorf("out of range (max %d)", max)
	}
	return v, nil
}

func looksLikeNumber(s string) bool {
	return s != "" && s[0] >= '0' && s[0] <= '9'
}

// looksLikeValue reports whether s is shaped like an address, network or
// number rather than a misspelt keyword.
func looksLikeValue(s string) bool {
	return looksLikeNumber(s) || strings.ContainsAny(s, ".:/")
}

// parseFlow parses "flow A[:p] <> B[:q]" (the flow keyword is next).
func (p *parser) parseFlow(proto uint8) (*node, error) {
	p.next()
	p.qok = false
	at := p.next()
	if at.kind != tWord {
		return nil, p.errExpected(at, "a flow endpoint (addr:port)")
	}
	a, pa, hasPA, err := parseEndpoint(at.text)
	if err != nil {
		return nil, p.errAt(at, fmt.Sprintf("invalid flow endpoint %q: %v", at.text, err))
	}
	if s := p.next(); s.kind != tFlowSep {
		return nil, p.errExpected(s, "<> between the flow's endpoints")
	}
	bt := p.next()
	if bt.kind != tWord {
		return nil, p.errExpected(bt, "a flow endpoint (addr:port)")
	}
	b, pb, hasPB, err := parseEndpoint(bt.text)
	if err != nil {
		return nil, p.errAt(bt, fmt.Sprintf("invalid flow endpoint %q: %v", bt.text, err))
	}
	if a.Is4() != b.Is4() {
		return nil, p.errAt(bt, "the flow's endpoints are of different IP versions")
	}
	ver := uint8(6)
	if a.Is4() {
		ver = 4
	}
	return &node{op: opFlow, proto: proto, ver: ver, addr: a.As16(), addr2: b.As16(),
		pa: pa, pb: pb, hasPA: hasPA, hasPB: hasPB}, nil
}

// parseEndpoint parses 1.2.3.4, 1.2.3.4:80, [::1]:80, [::1] or ::1.
func parseEndpoint(s string) (netip.Addr, uint16, bool, error) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	} else if strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, 0, false, err
		}
		if ap.Addr().Zone() != "" {
			return netip.Addr{}, 0, false, fmt.Errorf("zones are not supported")
		}
		// Refuse what ParseAddrPort lets through but parseNum would not, so
		// that the canonical form re-parses.
		if _, err := parseNum(s[strings.LastIndexByte(s, ':')+1:], 65535); err != nil {
			return netip.Addr{}, 0, false, fmt.Errorf("port: %v", err)
		}
		return ap.Addr(), ap.Port(), true, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, 0, false, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, 0, false, fmt.Errorf("zones are not supported")
	}
	return a, 0, false, nil
}

// isCommunityID reports whether s is a Community-ID v1 string: "1:" and the
// base64 of a 20-byte SHA-1 digest.
func isCommunityID(s string) bool {
	if len(s) != packet.CommunityIDLen || s[:2] != "1:" {
		return false
	}
	var sum [21]byte // DecodedLen(28): an unpadded string decodes to 21 bytes
	n, err := base64.StdEncoding.Decode(sum[:], []byte(s[2:]))
	if err != nil || n != 20 {
		return false
	}
	// Only the canonical encoding (zero padding bits) re-encodes to s.
	return base64.StdEncoding.EncodeToString(sum[:20]) == s[2:]
}

func communityNode(s string) *node {
	c := &communityMatch{}
	copy(c.want[:], s)
	return &node{op: opCommunity, comm: c}
}
