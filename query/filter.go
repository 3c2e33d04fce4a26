package query

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"tapvault/packet"
	"unicode/utf8"
)

// The filter language is the part of pcap-filter(7) that tcpdump users type
// every day, evaluated on a packet.Decoded instead of on raw bytes, so that
// it sees through any number of VLAN tags and MPLS labels. docs/filters.md
// is the user-facing reference, and lists every difference from BPF.
//
// Grammar (and/or have equal precedence and associate to the left, as in
// pcap-filter; not binds tightest):
//
//	expr    = unary { ("and" | "&&" | "or" | "||") unary }
//	unary   = ("not" | "!") unary | "(" expr ")" | prim | id
//	prim    = head id | pname | "vlan" [num] | "mpls"
//	        | [l4] "flow" endpoint "<>" endpoint
//	        | "community-id" cid | cid
//	head    = [pqual] [dqual] [aqual] | pqual "proto"  (at least one part)
//	pqual   = ip | ip6 | tcp | udp | sctp | ether
//	dqual   = src | dst | src or dst | dst or src | src and dst | dst and src
//	aqual   = host | net | port | portrange | proto
//	id      = word | "(" idexpr ")" | ("not" | "!") id
//
// A bare id (a value with no qualifier in front of it) takes the qualifiers
// of the primitive before it: "host a or b" is "host a or host b", and
// "tcp port 80 or 443" is "tcp port 80 or tcp port 443". Parentheses restore
// the qualifiers that were in force before them, as pcap-filter does.
//
// Parsing builds a tree of concrete node structs (no interfaces); Match walks
// it with a switch per node, which is what keeps Match at 0 allocations.

// FilterError is a filter that cannot be parsed or is not supported. Pos and
// Len are the byte offset and length in Expr of the offending token (Pos may
// equal len(Expr) for an error at the end). Error() renders the 1-based
// column and a caret line under the token.
type FilterError struct {
	Pos, Len int
	Msg      string
	Expr     string
}

func (e *FilterError) Error() string {
	pos := e.Pos
	if pos < 0 {
		pos = 0
	}
	if pos > len(e.Expr) {
		pos = len(e.Expr)
	}
	col := utf8.RuneCountInString(e.Expr[:pos]) + 1
	var b strings.Builder
	fmt.Fprintf(&b, "filter: %s at column %d\n  %s\n  ", e.Msg, col, e.Expr)
	for _, r := range e.Expr[:pos] {
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	n := 1
	if end := pos + e.Len; e.Len > 0 && end <= len(e.Expr) {
		n = utf8.RuneCountInString(e.Expr[pos:end])
	}
	b.WriteString(strings.Repeat("^", max(n, 1)))
	return b.String()
}

// Filter is a parsed filter. Match is safe for concurrent use unless the
// filter contains a community-id primitive, which caches the last flow's ID
// in the Filter: give each goroutine its own Clone then.
type Filter struct {
	root  *node // nil: match everything
	canon string
}

// ParseFilter parses expr. An empty or all-space expr matches every packet.
// Errors are *FilterError.
func ParseFilter(expr string) (*Filter, error) {
	p := &parser{expr: expr, toks: lex(expr)}
	if p.peek().kind == tEOF {
		return &Filter{}, nil
	}
	root, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, p.errAt(t, "unbalanced )")
		}
		return nil, p.errAt(t, fmt.Sprintf("expected and, or or the end of the filter, got %q", t.text))
	}
	var b strings.Builder
	root.write(&b)
	return &Filter{root: root, canon: b.String()}, nil
}

// MustParseFilter is ParseFilter for start-up constants and tests; it panics
// on error.
func MustParseFilter(expr string) *Filter {
	f, err := ParseFilter(expr)
	if err != nil {
		panic(err)
	}
	return f
}

// String returns the canonical form: every qualifier written out, every
// nested and/or parenthesised, numbers in decimal. Parsing it gives a filter
// with the same String.
func (f *Filter) String() string { return f.canon }

// MatchAll reports whether the filter is empty and so matches every packet.
func (f *Filter) MatchAll() bool { return f.root == nil }

// Match reports whether the decoded packet d passes the filter. It
// allocates nothing.
func (f *Filter) Match(d *packet.Decoded) bool {
	if f.root == nil {
		return true
	}
	return f.root.match(d)
}

// Clone returns a copy of f with its own per-filter state (the community-id
// cache), for use on another goroutine.
func (f *Filter) Clone() *Filter {
	return &Filter{root: f.root.clone(), canon: f.canon}
}

// Plan returns what the index can use to choose blocks: a superset of the
// packets Match accepts.
func (f *Filter) Plan() Plan {
	if f.root == nil {
		return Plan{Op: PlanAll}
	}
	return planOf(f.root)
}

// ---------------------------------------------------------------------------
// Nodes

type nodeOp uint8

const (
	opAnd nodeOp = iota
	opOr
	opNot
	opHost      // addr, ver, dir
	opNet       // prefix, ver, dir
	opPort      // proto (0 = tcp/udp/sctp), lo..hi, dir
	opProto     // ver (0 = any), proto
	opEtherType // etherType; flag also accepted
	opVLAN      // vlan; anyVLAN
	opMPLS      //
	opFlow      // addr:pa <> addr2:pb, proto (0 = tcp/udp/sctp when ports given, any otherwise)
	opCommunity // comm
)

// Directions of host, net and port primitives.
const (
	dirAny  uint8 = iota // src or dst (the default)
	dirSrc               // src
	dirDst               // dst
	dirBoth              // src and dst
)

type node struct {
	op   nodeOp
	kids []*node

	dir   uint8
	ver   uint8 // 4 or 6 for host/net/flow; 0, 4 or 6 for proto
	proto uint8
	flag  uint32 // opEtherType: a Decoded flag that also counts as a match

	etherType uint16
	lo, hi    uint16 // port range; vlan id in lo
	anyVLAN   bool

	addr, addr2    [16]byte // host; flow endpoints (IPv4-mapped for IPv4)
	pa, pb         uint16
	hasPA, hasPB   bool
	prefix         netip.Prefix
	netHi, netLo   uint64 // opNet: masked network, 16-byte form
	maskHi, maskLo uint64

	comm *communityMatch
}

// communityMatch holds a community-id primitive: the wanted ID and a cache of
// the last flow key looked at, so that the SHA-1 runs once per flow run
// rather than once per packet.
type communityMatch struct {
	want     [packet.CommunityIDLen]byte
	buf      [packet.CommunityIDLen]byte
	last     packet.FlowKey
	lastOK   bool
	lastHave bool
}

func (c *communityMatch) match(d *packet.Decoded) bool {
	k, _, ok := packet.FlowKeyOf(d)
	if !ok {
		return false
	}
	// The ID does not depend on VLANs: clearing them lets a flow seen on two
	// VLANs share the cache entry.
	k.VLAN, k.VLAN2 = 0, 0
	if c.lastHave && k == c.last {
		return c.lastOK
	}
	id := packet.AppendCommunityID(c.buf[:0], &k, 0)
	c.last, c.lastHave = k, true
	c.lastOK = bytes.Equal(id, c.want[:])
	return c.lastOK
}

func (n *node) clone() *node {
	if n == nil {
		return nil
	}
	c := *n
	if n.kids != nil {
		c.kids = make([]*node, len(n.kids))
		for i, k := range n.kids {
			c.kids[i] = k.clone()
		}
	}
	if n.comm != nil {
		cm := *n.comm
		cm.lastHave = false
		c.comm = &cm
	}
	return &c
}

func (n *node) match(d *packet.Decoded) bool {
	switch n.op {
	case opAnd:
		for _, k := range n.kids {
			if !k.match(d) {
				return false
			}
		}
		return true
	case opOr:
		for _, k := range n.kids {
			if k.match(d) {
				return true
			}
		}
		return false
	case opNot:
		return !n.kids[0].match(d)
	case opHost:
		if d.IPVer != n.ver {
			return false
		}
		switch n.dir {
		case dirSrc:
			return d.Src == n.addr
		case dirDst:
			return d.Dst == n.addr
		case dirBoth:
			return d.Src == n.addr && d.Dst == n.addr
		}
		return d.Src == n.addr || d.Dst == n.addr
	case opNet:
		if d.IPVer != n.ver {
			return false
		}
		switch n.dir {
		case dirSrc:
			return n.inNet(&d.Src)
		case dirDst:
			return n.inNet(&d.Dst)
		case dirBoth:
			return n.inNet(&d.Src) && n.inNet(&d.Dst)
		}
		return n.inNet(&d.Src) || n.inNet(&d.Dst)
	case opPort:
		if d.Flags&packet.FlagPorts == 0 || (n.proto != 0 && d.Proto != n.proto) {
			return false
		}
		// Unsigned wrap-around turns lo <= p <= hi into one compare.
		w := n.hi - n.lo
		switch n.dir {
		case dirSrc:
			return d.SrcPort-n.lo <= w
		case dirDst:
			return d.DstPort-n.lo <= w
		case dirBoth:
			return d.SrcPort-n.lo <= w && d.DstPort-n.lo <= w
		}
		return d.SrcPort-n.lo <= w || d.DstPort-n.lo <= w
	case opProto:
		return d.IPVer != 0 && d.Proto == n.proto && (n.ver == 0 || d.IPVer == n.ver)
	case opEtherType:
		return d.Flags&n.flag != 0 || d.EtherType == n.etherType
	case opVLAN:
		if n.anyVLAN {
			return d.NVLAN > 0
		}
		return d.HasVLAN(n.lo)
	case opMPLS:
		return d.NMPLS > 0
	case opFlow:
		return n.matchFlow(d)
	case opCommunity:
		return n.comm.match(d)
	}
	panic("BUG: unknown filter node")
}

func (n *node) inNet(a *[16]byte) bool {
	return binary.BigEndian.Uint64(a[:8])&n.maskHi == n.netHi &&
		binary.BigEndian.Uint64(a[8:])&n.maskLo == n.netLo
}

func (n *node) matchFlow(d *packet.Decoded) bool {
	if d.IPVer != n.ver {
		return false
	}
	ports := n.hasPA || n.hasPB
	if n.proto != 0 {
		if d.Proto != n.proto {
			return false
		}
	}
	if ports && d.Flags&packet.FlagPorts == 0 {
		return false
	}
	if d.Src == n.addr && d.Dst == n.addr2 &&
		(!n.hasPA || d.SrcPort == n.pa) && (!n.hasPB || d.DstPort == n.pb) {
		return true
	}
	return d.Src == n.addr2 && d.Dst == n.addr &&
		(!n.hasPB || d.SrcPort == n.pb) && (!n.hasPA || d.DstPort == n.pa)
}

// ---------------------------------------------------------------------------
// Canonical form

func (n *node) write(b *strings.Builder) {
	switch n.op {
	case opAnd, opOr:
		sep := " and "
		if n.op == opOr {
			sep = " or "
		}
		for i, k := range n.kids {
			if i > 0 {
				b.WriteString(sep)
			}
			k.writeKid(b)
		}
	case opNot:
		b.WriteString("not ")
		n.kids[0].writeKid(b)
	case opHost:
		writeDir(b, n.dir)
		b.WriteString("host ")
		b.WriteString(n.prefix.Addr().String())
	case opNet:
		writeDir(b, n.dir)
		b.WriteString("net ")
		b.WriteString(n.prefix.String())
	case opPort:
		if n.proto != 0 {
			b.WriteString(ipProtoName(n.proto))
			b.WriteByte(' ')
		}
		writeDir(b, n.dir)
		if n.lo == n.hi {
			fmt.Fprintf(b, "port %d", n.lo)
		} else {
			fmt.Fprintf(b, "portrange %d-%d", n.lo, n.hi)
		}
	case opProto:
		for _, pn := range pnames {
			if pn.proto == n.proto && pn.ver == n.ver {
				b.WriteString(pn.name)
				return
			}
		}
		switch n.ver {
		case 4:
			b.WriteString("ip ")
		case 6:
			b.WriteString("ip6 ")
		}
		fmt.Fprintf(b, "proto %d", n.proto)
	case opEtherType:
		for _, e := range etherNames {
			if e.etherType == n.etherType {
				b.WriteString(e.name)
				return
			}
		}
		fmt.Fprintf(b, "ether proto 0x%04x", n.etherType)
	case opVLAN:
		if n.anyVLAN {
			b.WriteString("vlan")
		} else {
			fmt.Fprintf(b, "vlan %d", n.lo)
		}
	case opMPLS:
		b.WriteString("mpls")
	case opFlow:
		if n.proto != 0 {
			b.WriteString(ipProtoName(n.proto))
			b.WriteByte(' ')
		}
		b.WriteString("flow ")
		writeEndpoint(b, n.addr, n.ver, n.pa, n.hasPA)
		b.WriteString(" <> ")
		writeEndpoint(b, n.addr2, n.ver, n.pb, n.hasPB)
	case opCommunity:
		b.WriteString("community-id ")
		b.Write(n.comm.want[:])
	default:
		panic("BUG: unknown filter node")
	}
}

func (n *node) writeKid(b *strings.Builder) {
	if n.op == opAnd || n.op == opOr {
		b.WriteByte('(')
		n.write(b)
		b.WriteByte(')')
		return
	}
	n.write(b)
}

func writeDir(b *strings.Builder, dir uint8) {
	switch dir {
	case dirSrc:
		b.WriteString("src ")
	case dirDst:
		b.WriteString("dst ")
	case dirBoth:
		b.WriteString("src and dst ")
	}
}

func writeEndpoint(b *strings.Builder, a [16]byte, ver uint8, port uint16, hasPort bool) {
	addr := netip.AddrFrom16(a)
	if ver == 4 {
		addr = addr.Unmap()
	}
	if !hasPort {
		b.WriteString(addr.String())
		return
	}
	b.WriteString(netip.AddrPortFrom(addr, port).String())
}

// ---------------------------------------------------------------------------
// Names

// pnames are the protocol primitives that stand alone ("tcp"). ver 0 means
// IPv4 or IPv6, as in pcap-filter.
var pnames = []struct {
	name  string
	ver   uint8
	proto uint8
}{
	{"tcp", 0, 6},
	{"udp", 0, 17},
	{"sctp", 0, 132},
	{"icmp", 4, 1},
	{"icmp6", 6, 58},
	{"igmp", 4, 2},
	{"pim", 0, 103},
	{"vrrp", 4, 112},
	{"ah", 0, 51},
	{"esp", 0, 50},
}

// etherNames are the link-layer protocol primitives; flag is the Decoded bit
// that also counts, so that raw-IP links (EtherType 0) match "ip".
var etherNames = []struct {
	name      string
	etherType uint16
	flag      uint32
}{
	{"ip", 0x0800, packet.FlagIPv4},
	{"ip6", 0x86dd, packet.FlagIPv6},
	{"arp", 0x0806, packet.FlagARP},
	{"rarp", 0x8035, 0},
}

// ipProtos are the names "proto" accepts (with or without a backslash).
var ipProtos = map[string]uint8{
	"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
	"icmp6": 58, "ospf": 89, "pim": 103, "vrrp": 112, "sctp": 132,
}

func ipProtoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	}
	panic("BUG: port protocol is not tcp, udp or sctp")
}

// services are the port names accepted, for the few services people type by
// name, with the protocol /etc/services gives them (0: tcp and udp, which
// pcap-filter then applies to tcp, udp and sctp). tcpdump reads
// /etc/services; a fixed table keeps a filter's meaning independent of the
// host it runs on. The entries follow IANA and Debian's netbase.
var services = map[string]struct {
	port  uint16
	proto uint8
}{
	"ftp-data": {20, 6}, "ftp": {21, 6}, "ssh": {22, 6}, "telnet": {23, 6},
	"smtp": {25, 6}, "domain": {53, 0}, "bootps": {67, 17}, "bootpc": {68, 17},
	"tftp": {69, 17}, "http": {80, 6}, "www": {80, 6}, "kerberos": {88, 0},
	"pop3": {110, 6}, "ntp": {123, 17}, "netbios-ns": {137, 17}, "imap": {143, 6},
	"snmp": {161, 0}, "snmp-trap": {162, 0}, "bgp": {179, 6}, "ldap": {389, 0},
	"https": {443, 0}, "syslog": {514, 17}, "ldaps": {636, 0}, "imaps": {993, 6},
	"pop3s": {995, 6}, "mysql": {3306, 6}, "postgresql": {5432, 6},
}

// unsupported are pcap-filter keywords this language does not implement,
// with the reason given to the user.
var unsupported = map[string]string{
	"gateway":    "gateway needs MAC addresses, which are not decoded",
	"broadcast":  "broadcast is not supported",
	"multicast":  "multicast is not supported",
	"less":       "less is not supported (packet lengths are not filtered)",
	"greater":    "greater is not supported (packet lengths are not filtered)",
	"len":        "len is not supported (packet lengths are not filtered)",
	"inbound":    "inbound is not supported (no capture direction is recorded)",
	"outbound":   "outbound is not supported (no capture direction is recorded)",
	"ifname":     "ifname is not supported",
	"on":         "on is not supported",
	"protochain": "protochain is not supported (extension headers are always walked; use proto)",
	"fddi":       "fddi is not supported",
	"tr":         "tr is not supported",
	"wlan":       "wlan is not supported",
	"ppp":        "ppp is not supported",
	"slip":       "slip is not supported",
	"link":       "link is not supported",
	"decnet":     "decnet is not supported",
	"iso":        "iso is not supported",
	"stp":        "stp is not supported",
	"ipx":        "ipx is not supported",
	"netbeui":    "netbeui is not supported",
	"atalk":      "atalk is not supported",
	"aarp":       "aarp is not supported",
	"lat":        "lat is not supported",
	"mopdl":      "mopdl is not supported",
	"moprc":      "moprc is not supported",
	"sca":        "sca is not supported",
	"pppoed":     "pppoed is not supported",
	"pppoes":     "pppoes is not supported (PPPoE is decoded through: filter on what it carries)",
	"geneve":     "geneve is not supported (tunnels are not entered)",
	"vxlan":      "vxlan is not supported (tunnels are not entered)",
	"llc":        "llc is not supported",
	"type":       "type is not supported",
	"subtype":    "subtype is not supported",
	"dir":        "dir is not supported",
	"addr1":      "addr1 is not supported",
	"addr2":      "addr2 is not supported",
	"addr3":      "addr3 is not supported",
	"addr4":      "addr4 is not supported",
	"ra":         "ra is not supported",
	"ta":         "ta is not supported",
	"iso8473":    "iso8473 is not supported",
	"clnp":       "clnp is not supported",
	"esis":       "esis is not supported",
	"isis":       "isis is not supported",
	"mask":       "mask must follow an IPv4 network address (net 10.0.0.0 mask 255.0.0.0)",
}

// ---------------------------------------------------------------------------
// Lexer

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tLParen
	tRParen
	tNot
	tAnd
	tOr
	tFlowSep // <>
	tErr     // a lexical error, reported when the parser reaches it
)

type token struct {
	kind     tokKind
	pos, end int
	text     string // as written
	word     string // lower-cased text, "" for an escaped word (\tcp)
}

// isWordByte reports whether c continues a word: anything but white space
// and the operator characters.
func isWordByte(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '(', ')', '!', '&', '|', '<', '>':
		return false
	}
	return true
}

func lex(expr string) []token {
	var toks []token
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			i++
			continue
		case c == '(':
			toks = append(toks, token{kind: tLParen, pos: i, end: i + 1, text: "("})
			i++
			continue
		case c == ')':
			toks = append(toks, token{kind: tRParen, pos: i, end: i + 1, text: ")"})
			i++
			continue
		case c == '!':
			if i+1 < len(expr) && expr[i+1] == '=' {
				toks = append(toks, token{kind: tErr, pos: i, end: i + 2, text: `comparisons ("!=") are not supported`})
				i += 2
				continue
			}
			toks = append(toks, token{kind: tNot, pos: i, end: i + 1, text: "!"})
			i++
			continue
		case c == '&' || c == '|':
			if i+1 < len(expr) && expr[i+1] == c {
				k := tAnd
				if c == '|' {
					k = tOr
				}
				toks = append(toks, token{kind: k, pos: i, end: i + 2, text: expr[i : i+2]})
				i += 2
				continue
			}
			toks = append(toks, token{kind: tErr, pos: i, end: i + 1, text: fmt.Sprintf("unexpected %q (did you mean %q?)", c, string([]byte{c, c}))})
			i++
			continue
		case c == '<' && i+1 < len(expr) && expr[i+1] == '>':
			toks = append(toks, token{kind: tFlowSep, pos: i, end: i + 2, text: "<>"})
			i += 2
			continue
		case c == '<' || c == '>':
			toks = append(toks, token{kind: tErr, pos: i, end: i + 1, text: fmt.Sprintf("unexpected %q (comparisons are not supported; flows are written A <> B)", c)})
			i++
			continue
		}
		j := i
		for j < len(expr) && isWordByte(expr[j]) {
			j++
		}
		text := expr[i:j]
		t := token{kind: tWord, pos: i, end: j, text: text}
		if text[0] == '\\' {
			t.text = text[1:]
		} else {
			t.word = strings.ToLower(text)
			switch t.word {
			case "and":
				t.kind = tAnd
			case "or":
				t.kind = tOr
			case "not":
				t.kind = tNot
			}
		}
		toks = append(toks, t)
		i = j
	}
	toks = append(toks, token{kind: tEOF, pos: len(expr), end: len(expr)})
	return toks
}

// ---------------------------------------------------------------------------
// Parser

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
