package msgquery

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"tapvault/analytics"
)

// The grammar (keywords and built-in key names are case-insensitive):
//
//	expr    = andexpr { ("or" | "||") andexpr }
//	andexpr = unary { ("and" | "&&") unary }
//	unary   = ("not" | "!") unary | "(" expr ")" | cmp
//	cmp     = key op value | key value          (the second form is key = value)
//	op      = "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "~" | "!~"
//	value   = word | '"' { char | '\"' | '\\' } '"'
//
// Unlike the packet filter of `tapvault query` (pcap-filter, where and and
// or have the same precedence), "and" binds tighter than "or", as in SQL and
// most languages: "a or b and c" is "a or (b and c)". String() writes every
// nested and/or in parentheses, so the canonical form is unambiguous.

// maxDepth bounds the nesting of parentheses and not, so that a hostile
// expression cannot make the recursive parser, Match or String deep.
const maxDepth = 200

// ParseError is an expression that cannot be parsed. Pos is the byte offset
// in Expr of the offending token (len(Expr) for an error at the end).
// Error() gives the 1-based column in runes.
type ParseError struct {
	Expr string
	Pos  int
	Msg  string
}

func (e *ParseError) Error() string {
	pos := min(max(e.Pos, 0), len(e.Expr))
	col := utf8.RuneCountInString(e.Expr[:pos]) + 1
	return fmt.Sprintf("parse %q: %s at column %d", e.Expr, e.Msg, col)
}

// Expr is a parsed expression. It is immutable after Parse and safe for
// concurrent use by several goroutines.
type Expr struct {
	root  *node
	canon string
	terms []string
	// anyTerms: the alternatives' terms (AnyTerms).
	anyTerms [][]string
	protos   []string
	protoC   bool // protos constrains (protos may then be empty: nothing matches)
}

// nodeKind is the kind of a tree node.
type nodeKind uint8

const (
	nCmp nodeKind = iota
	nAnd
	nOr
	nNot
)

type node struct {
	kind nodeKind
	l, r *node // nAnd, nOr: both; nNot: l
	c    cmp   // nCmp
}

// opKind is a comparison operator.
type opKind uint8

const (
	opEq opKind = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opRe
	opNotRe
)

var opNames = [...]string{opEq: "=", opNe: "!=", opLt: "<", opLe: "<=", opGt: ">", opGe: ">=", opRe: "~", opNotRe: "!~"}

// keyKind says what a comparison looks at: a built-in key or a field.
type keyKind uint8

const (
	kField keyKind = iota
	kProto
	kClass
	kTransport
	kClient
	kServer
	kIP
	kPort
	kID
	kVLAN
	kReqBytes
	kRespBytes
	kReqPkts
	kRespPkts
	kLatency
	kNetwork
	kServerTime
	kTransfer
	kClientNet
	kRTT
	kReqFirst
	kReqLast
	kRespFirst
	kRespLast
)

// valKind is how a built-in key's value is read.
type valKind uint8

const (
	vString    valKind = iota // proto, class: case-insensitive text
	vTransport                // tcp/udp
	vAddr                     // an address, address:port or prefix
	vInt                      // a plain integer
	vHex                      // a record ID
	vDuration                 // a duration with a unit
	vTime                     // ns since the epoch or RFC 3339
	vField                    // a record field
)

var builtins = map[string]struct {
	k keyKind
	v valKind
}{
	"proto":        {kProto, vString},
	"class":        {kClass, vString},
	"transport":    {kTransport, vTransport},
	"client":       {kClient, vAddr},
	"server":       {kServer, vAddr},
	"ip":           {kIP, vAddr},
	"port":         {kPort, vInt},
	"id":           {kID, vHex},
	"vlan":         {kVLAN, vInt},
	"req_bytes":    {kReqBytes, vInt},
	"resp_bytes":   {kRespBytes, vInt},
	"req_packets":  {kReqPkts, vInt},
	"resp_packets": {kRespPkts, vInt},
	"latency":      {kLatency, vDuration},
	"network":      {kNetwork, vDuration},
	"server_time":  {kServerTime, vDuration},
	"transfer":     {kTransfer, vDuration},
	"client_net":   {kClientNet, vDuration},
	"rtt":          {kRTT, vDuration},
	"req_first":    {kReqFirst, vTime},
	"req_last":     {kReqLast, vTime},
	"resp_first":   {kRespFirst, vTime},
	"resp_last":    {kRespLast, vTime},
}

// foldKeys are the fields whose string equality ignores case: DNS names,
// HTTP hosts and TLS server names are case-insensitive.
func foldKey(key string) bool { return key == "host" || key == "qname" || key == "sni" }

// addrForm is which address form a vAddr value has.
type addrForm uint8

const (
	aAddr addrForm = iota
	aAddrPort
	aPrefix
)

// cmp is one comparison.
type cmp struct {
	key   keyKind
	field string // the key as written (lowercased); the field name for kField
	op    opKind
	raw   string // the value after unquoting, as written
	quote bool   // the value was quoted (kept for String)
	pos   int    // byte offset of the key

	// Compiled value.
	str    string // lowercased/canonical text (proto, class)
	num    int64  // vInt, vHex, vDuration, vTime, vTransport; fields when isNum
	isNum  bool   // fields: raw is an integer (or a duration for *_ns keys)
	canon  bool   // fields: raw is the canonical decimal of num, or not a number
	re     *regexp.Regexp
	form   addrForm
	addr   netip.Addr
	ap     netip.AddrPort
	prefix netip.Prefix
	fold   bool   // fields: string equality ignores case
	alt    string // class: a second name that matches (an old name's)
}

// Parse parses an expression. Errors are *ParseError and say at which
// column the problem is.
func Parse(s string) (*Expr, error) {
	p := &parser{src: s}
	if err := p.lex(); err != nil {
		return nil, err
	}
	if p.peek().kind == tEOF {
		return nil, p.errAt(p.peek(), "empty expression")
	}
	root, err := p.parseOr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, p.errAt(t, `unbalanced ")"`)
		}
		return nil, p.errAt(t, fmt.Sprintf(`expected "and", "or" or the end before %q`, t.text))
	}
	e := &Expr{root: root}
	var b strings.Builder
	root.write(&b)
	e.canon = b.String()
	e.terms = root.terms()
	e.anyTerms = root.alternatives()
	e.protos, e.protoC = root.protoSet()
	return e, nil
}

// String returns the canonical form of the expression: keys lowercased,
// every nested and/or in parentheses, values quoted where needed. Parse of
// it gives an Expr with the same String.
func (e *Expr) String() string { return e.canon }

// Match reports whether r matches. It allocates nothing (a regular
// expression on an integer field formats it into a pooled buffer).
func (e *Expr) Match(r *analytics.Record) bool { return e.root.match(r) }

// Terms returns skip-index terms that every record matching e has, sorted
// and without duplicates: "key=value" with string values lowercased, as
// msgstore writes them (docs/messages.md lists the terms). They come from
// equality comparisons required on every path through "and"; a term under
// "or" is kept only when both sides require it, and nothing under "not" is
// used. Terms are given for proto (except postgres, whose record proto may
// be "pgsql"), class, id, vlan and port (not 0), client, server, ip and for
// record fields; they assume the store indexes every field and both ends'
// ports, as msgstore.Terms does. A store that indexes less must drop the
// terms whose key it does not hold (a bloom filter that never saw
// "method=get" rejects every frame): the key is the text before the first
// "=". The slice is shared: do not modify it.
func (e *Expr) Terms() []string { return e.terms }

// UsesFields reports whether matching reads the record's Fields (a
// comparison on a field key such as method or host): without them a scan
// can skip decoding them (msgstore.Query.NoDetail).
func (e *Expr) UsesFields() bool { return e.root.usesFields() }

func (n *node) usesFields() bool {
	switch n.kind {
	case nAnd, nOr:
		return n.l.usesFields() || n.r.usesFields()
	case nNot:
		return n.l.usesFields()
	}
	return n.c.key == kField
}

// Protos returns the record protocols a matching record must have, sorted,
// or nil when e does not constrain the protocol. An empty, non-nil slice
// means no record can match (proto http and proto dns). Postgres is given
// as both "pgsql" and "postgres". The slice is shared: do not modify it.
func (e *Expr) Protos() []string {
	if !e.protoC {
		return nil
	}
	return e.protos
}

// isPostgres reports whether a record's proto is postgres under any alias,
// without allocating.
func isPostgres(p string) bool {
	return equalFoldASCII(p, "postgres") || equalFoldASCII(p, "pgsql") || equalFoldASCII(p, "postgresql")
}

// equalFoldASCII reports whether a and b are equal up to the case of ASCII
// letters. Unlike strings.EqualFold it does not fold non-ASCII letters
// (the Kelvin sign and k), so that two strings it calls equal always
// lowercase to the same skip-index term.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// lowerASCII lowercases the ASCII letters of s.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// --- lexer ---

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tString
	tOp
	tAnd
	tOr
	tNot
	tLParen
	tRParen
)

type token struct {
	kind     tokKind
	text     string // as written (tString: unquoted)
	op       opKind
	pos, end int
}

type parser struct {
	src  string
	toks []token
	i    int
}

func (p *parser) errAt(t token, msg string) error {
	return &ParseError{Expr: p.src, Pos: t.pos, Msg: msg}
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// opChar reports whether c starts an operator.
func opChar(c byte) bool {
	switch c {
	case '=', '!', '<', '>', '~', '&', '|':
		return true
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// wordChar reports whether c may be part of a bare word.
func wordChar(c byte) bool {
	return !isSpace(c) && !opChar(c) && c != '(' && c != ')' && c != '"'
}

func (p *parser) lex() error {
	s := p.src
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			p.toks = append(p.toks, token{kind: tEOF, pos: len(s), end: len(s)})
			return nil
		}
		start := i
		c := s[i]
		switch {
		case c == '(':
			p.toks = append(p.toks, token{kind: tLParen, text: "(", pos: i, end: i + 1})
			i++
		case c == ')':
			p.toks = append(p.toks, token{kind: tRParen, text: ")", pos: i, end: i + 1})
			i++
		case c == '"':
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return &ParseError{Expr: s, Pos: start, Msg: "unterminated quoted string"}
			}
			p.toks = append(p.toks, token{kind: tString, text: b.String(), pos: start, end: i})
		case opChar(c):
			two := ""
			if i+1 < len(s) {
				two = s[i : i+2]
			}
			t := token{kind: tOp, pos: i}
			switch two {
			case "&&":
				t.kind = tAnd
			case "||":
				t.kind = tOr
			case "==":
				t.op = opEq
			case "!=":
				t.op = opNe
			case "<=":
				t.op = opLe
			case ">=":
				t.op = opGe
			case "!~":
				t.op = opNotRe
			default:
				two = ""
			}
			if two != "" {
				i += 2
			} else {
				i++
				switch c {
				case '=':
					t.op = opEq
				case '<':
					t.op = opLt
				case '>':
					t.op = opGt
				case '~':
					t.op = opRe
				case '!':
					t.kind = tNot
				default: // a single & or |
					return &ParseError{Expr: s, Pos: start, Msg: fmt.Sprintf(`unknown operator %q (use "and"/"&&" or "or"/"||")`, string(c))}
				}
			}
			t.text = s[start:i]
			t.end = i
			p.toks = append(p.toks, t)
		default:
			for i < len(s) && wordChar(s[i]) {
				i++
			}
			w := s[start:i]
			t := token{kind: tWord, text: w, pos: start, end: i}
			switch strings.ToLower(w) {
			case "and":
				t.kind = tAnd
			case "or":
				t.kind = tOr
			case "not":
				t.kind = tNot
			}
			p.toks = append(p.toks, t)
		}
	}
}

// --- parser ---

func (p *parser) parseOr(depth int) (*node, error) {
	l, err := p.parseAnd(depth)
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tOr {
		op := p.next()
		if p.peek().kind == tEOF {
			return nil, p.errAt(p.peek(), fmt.Sprintf("expected an expression after %q", op.text))
		}
		r, err := p.parseAnd(depth)
		if err != nil {
			return nil, err
		}
		l = &node{kind: nOr, l: l, r: r}
	}
	return l, nil
}

func (p *parser) parseAnd(depth int) (*node, error) {
	l, err := p.parseUnary(depth)
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tAnd {
		op := p.next()
		if p.peek().kind == tEOF {
			return nil, p.errAt(p.peek(), fmt.Sprintf("expected an expression after %q", op.text))
		}
		r, err := p.parseUnary(depth)
		if err != nil {
			return nil, err
		}
		l = &node{kind: nAnd, l: l, r: r}
	}
	return l, nil
}

func (p *parser) parseUnary(depth int) (*node, error) {
	if depth >= maxDepth {
		return nil, p.errAt(p.peek(), fmt.Sprintf("expression nested deeper than %d", maxDepth))
	}
	t := p.peek()
	switch t.kind {
	case tNot:
		p.next()
		if p.peek().kind == tEOF {
			return nil, p.errAt(p.peek(), fmt.Sprintf("expected an expression after %q", t.text))
		}
		c, err := p.parseUnary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &node{kind: nNot, l: c}, nil
	case tLParen:
		p.next()
		if p.peek().kind == tRParen {
			return nil, p.errAt(p.peek(), `empty parentheses`)
		}
		n, err := p.parseOr(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.peek().kind != tRParen {
			return nil, p.errAt(p.peek(), fmt.Sprintf(`expected ")" to close the "(" at column %d`, utf8.RuneCountInString(p.src[:t.pos])+1))
		}
		p.next()
		return n, nil
	case tWord:
		return p.parseCmp()
	case tEOF:
		return nil, p.errAt(t, "unexpected end of expression")
	case tRParen:
		return nil, p.errAt(t, `unbalanced ")"`)
	case tString:
		return nil, p.errAt(t, "expected a key, got a quoted string")
	default:
		return nil, p.errAt(t, fmt.Sprintf("expected a key, got %q", t.text))
	}
}

// validKey reports whether k looks like a field key: a letter, then
// letters, digits, '_', '.' or '-'.
func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func (p *parser) parseCmp() (*node, error) {
	kt := p.next()
	key := strings.ToLower(kt.text)
	if !validKey(key) {
		return nil, p.errAt(kt, fmt.Sprintf("bad key %q (a letter, then letters, digits, _ . or -)", kt.text))
	}
	if _, ok := builtins[key]; !ok && !knownNames().fields[key] {
		return nil, p.errAt(kt, unknownKeyMsg(kt.text, key))
	}
	c := cmp{field: key, pos: kt.pos, op: opEq}
	t := p.peek()
	switch t.kind {
	case tOp:
		p.next()
		c.op = t.op
		v := p.peek()
		if v.kind == tOp && v.pos == t.end && t.text == "=" && v.op == opRe {
			p.next() // "=~" is "~"
			c.op = opRe
			v = p.peek()
		} else if v.kind == tOp && v.pos == t.end {
			return nil, p.errAt(t, fmt.Sprintf("unknown operator %q", p.src[t.pos:v.end]))
		}
		if v.kind == tNot && v.pos == t.end {
			return nil, p.errAt(t, fmt.Sprintf("unknown operator %q", p.src[t.pos:v.end]))
		}
		if v.kind != tWord && v.kind != tString {
			return nil, p.errAt(v, fmt.Sprintf("expected a value after %q", t.text))
		}
		p.next()
		c.raw, c.quote = v.text, v.kind == tString
		if err := p.compile(&c, v); err != nil {
			return nil, err
		}
	case tWord, tString:
		p.next()
		c.raw, c.quote = t.text, t.kind == tString
		if err := p.compile(&c, t); err != nil {
			return nil, err
		}
	case tNot:
		return nil, p.errAt(t, fmt.Sprintf("expected an operator or a value after %q (use != or !~)", kt.text))
	default:
		return nil, p.errAt(t, fmt.Sprintf("expected an operator or a value after %q", kt.text))
	}
	return &node{kind: nCmp, c: c}, nil
}

// compile checks c's operator against its key and reads its value; v is
// the value token, for error positions.
func (p *parser) compile(c *cmp, v token) error {
	bad := func(format string, args ...any) error {
		return p.errAt(v, fmt.Sprintf(format, args...))
	}
	b, isBuiltin := builtins[c.field]
	vk := vField
	if isBuiltin {
		c.key, vk = b.k, b.v
	}
	opOK := func(ops ...opKind) error {
		if slices.Contains(ops, c.op) {
			return nil
		}
		return p.errAt(v, fmt.Sprintf("operator %q does not apply to %s", opNames[c.op], c.field))
	}
	eqOnly := []opKind{opEq, opNe}
	ordered := []opKind{opEq, opNe, opLt, opLe, opGt, opGe}
	switch vk {
	case vString:
		if err := opOK(opEq, opNe, opRe, opNotRe); err != nil {
			return err
		}
		if c.key == kProto {
			c.str = analytics.CanonicalProto(c.raw)
		} else {
			c.str = lowerASCII(c.raw)
		}
		if c.op == opEq || c.op == opNe {
			// A name no record can have is a typo, not an empty answer.
			n := knownNames()
			if c.key == kProto && !slices.Contains(n.protos, c.str) {
				return bad("unknown protocol %q (want %s; ~ takes a pattern)", c.raw, strings.Join(n.protos, ", "))
			}
			if c.key == kClass {
				if err := c.oldClass(); err != nil {
					return err
				}
			}
			if c.key == kClass && !slices.Contains(analytics.Classes, c.str) {
				return bad("unknown class %q (want %s; ~ takes a pattern)", c.raw, strings.Join(analytics.Classes, ", "))
			}
		}
	case vTransport:
		if err := opOK(eqOnly...); err != nil {
			return err
		}
		switch strings.ToLower(c.raw) {
		case "tcp", "6":
			c.num = 6
		case "udp", "17":
			c.num = 17
		default:
			return bad("bad transport %q (tcp or udp)", c.raw)
		}
	case vAddr:
		if err := opOK(eqOnly...); err != nil {
			return err
		}
		if ap, err := netip.ParseAddrPort(c.raw); err == nil {
			c.form, c.ap = aAddrPort, ap
		} else if pf, err := netip.ParsePrefix(c.raw); err == nil {
			c.form, c.prefix = aPrefix, pf.Masked()
		} else if a, err := netip.ParseAddr(c.raw); err == nil {
			c.form, c.addr = aAddr, a
		} else {
			return bad("bad address %q (want an IP, IP:port, [IPv6]:port or a CIDR prefix)", c.raw)
		}
	case vInt:
		if err := opOK(ordered...); err != nil {
			return err
		}
		n, err := strconv.ParseInt(c.raw, 10, 64)
		if err != nil {
			return bad("bad number %q for %s", c.raw, c.field)
		}
		if c.key == kPort && (n < 0 || n > 65535) {
			return bad("bad port %q (0 to 65535)", c.raw)
		}
		c.num = n
	case vHex:
		if err := opOK(eqOnly...); err != nil {
			return err
		}
		h := strings.TrimPrefix(strings.ToLower(c.raw), "0x")
		n, err := strconv.ParseUint(h, 16, 64)
		if err != nil || len(h) > 16 || len(h) == 0 {
			return bad("bad id %q (up to 16 hex digits)", c.raw)
		}
		c.num = int64(n)
	case vDuration:
		if err := opOK(ordered...); err != nil {
			return err
		}
		n, err := parseDuration(c.raw, true)
		if err != nil {
			return bad("%v", err)
		}
		c.num = n
	case vTime:
		if err := opOK(ordered...); err != nil {
			return err
		}
		if n, err := strconv.ParseInt(c.raw, 10, 64); err == nil {
			c.num = n
		} else if tm, err := time.Parse(time.RFC3339Nano, c.raw); err == nil {
			c.num = tm.UnixNano()
		} else {
			return bad("bad time %q (ns since the epoch or RFC 3339)", c.raw)
		}
	case vField:
		c.fold = foldKey(c.field)
		if c.op == opRe || c.op == opNotRe {
			re, err := compileRe(c.raw)
			if err != nil {
				return bad("%v", err)
			}
			c.re = re
			return nil
		}
		c.canon = true
		if n, ok := parseInt(c.raw); ok {
			c.num, c.isNum = n, true
			c.canon = strconv.FormatInt(n, 10) == c.raw
		} else if strings.HasSuffix(c.field, "_ns") {
			if n, err := parseDuration(c.raw, false); err == nil {
				c.num, c.isNum, c.canon = n, true, false
			}
		}
		return nil
	}
	if c.op == opRe || c.op == opNotRe {
		re, err := compileRe(c.raw)
		if err != nil {
			return bad("%v", err)
		}
		c.re = re
	}
	return nil
}

// names are what Parse checks keys and values against, from the decoder
// registry (analytics.Decoders): the record protocols, and the field keys
// the decoders declare.
type names struct {
	protos []string        // decoder names and the connection records' "tcp", sorted
	fields map[string]bool // every declared field key
	keys   []string        // built-in keys, then field keys, each part sorted
	nBuilt int             // how many of keys are built in
}

// knownNames is built on first use, after every decoder's init has
// registered it.
var knownNames = sync.OnceValue(func() *names {
	n := &names{fields: map[string]bool{}}
	n.protos = append(n.protos, analytics.FlowProto)
	var fields []string
	for _, d := range analytics.Decoders() {
		n.protos = append(n.protos, d.Name)
		fields = append(fields, d.Fields...)
	}
	fields = append(fields, analytics.FlowFields...)
	fields = append(fields, analytics.TagFields...)
	slices.Sort(n.protos)
	slices.Sort(fields)
	fields = slices.Compact(fields)
	for _, f := range fields {
		n.fields[f] = true
	}
	for k := range builtins {
		n.keys = append(n.keys, k)
	}
	slices.Sort(n.keys)
	n.nBuilt = len(n.keys)
	n.keys = append(n.keys, fields...)
	return n
})

// unknownKeyMsg says that key (lowercased: lower) is neither built in nor a
// declared field, suggests the closest known key, and lists them all.
func unknownKeyMsg(key, lower string) string {
	n := knownNames()
	best, bestD := "", 3 // suggest only within an edit distance of 2
	for _, k := range n.keys {
		if d := editDistance(lower, k); d < bestD {
			best, bestD = k, d
		}
	}
	msg := fmt.Sprintf("unknown key %q (", key)
	if best != "" {
		msg += fmt.Sprintf("did you mean %q? ", best)
	}
	return msg + "built-in keys: " + strings.Join(n.keys[:n.nBuilt], " ") +
		"; record fields: " + strings.Join(n.keys[n.nBuilt:], " ") + ")"
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// compileRe compiles a case-insensitive, unanchored regular expression.
// The error quotes the expression as the user wrote it.
func compileRe(s string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(s); err != nil {
		return nil, fmt.Errorf("bad regular expression %q: %s", s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	re, err := regexp.Compile("(?i)" + s)
	if err != nil {
		return nil, fmt.Errorf("bad regular expression %q: %w", s, err)
	}
	return re, nil
}

// intBufs holds buffers for formatting an integer field that a regular
// expression is matched against: regexp's Match makes its argument escape,
// and a pool keeps Match at zero allocations.
var intBufs = sync.Pool{New: func() any { return new([24]byte) }}

// parseDuration reads a duration: a Go duration with units (ns, us, µs,
// ms, s, m, h; "1.5ms", "1m30s"). A bare integer is accepted only when
// bare is false, or when it is 0.
func parseDuration(s string, needUnit bool) (int64, error) {
	if n, ok := parseInt(s); ok {
		if needUnit && n != 0 {
			return 0, fmt.Errorf("duration %q needs a unit (ns, us, ms, s, m)", s)
		}
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (want e.g. 250us, 1.5ms, 2s)", s)
	}
	return int64(d), nil
}

// parseInt parses a decimal int64 (optional sign) without allocating.
func parseInt(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	neg := false
	i := 0
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		i = 1
		if len(s) == 1 {
			return 0, false
		}
	}
	var n uint64
	for ; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63 {
			return 0, false
		}
	}
	if neg {
		return -int64(n), true // -(1<<63) wraps to itself: correct
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// --- matching ---

func (n *node) match(r *analytics.Record) bool {
	switch n.kind {
	case nAnd:
		return n.l.match(r) && n.r.match(r)
	case nOr:
		return n.l.match(r) || n.r.match(r)
	case nNot:
		return !n.l.match(r)
	}
	return n.c.match(r)
}

// LatencyOf is a record's latency_ns: RespLast - ReqLast, or -1 when the
// record has no response or no request. The API's sorting and heatmap use it
// too, so every view means the same latency.
func LatencyOf(r *analytics.Record) int64 {
	if r.RespLast <= 0 || r.ReqLast <= 0 || r.RespLast < r.ReqLast {
		return -1
	}
	return r.RespLast - r.ReqLast
}

func (c *cmp) match(r *analytics.Record) bool {
	switch c.key {
	case kField:
		return c.matchField(r)
	case kProto:
		if c.re != nil {
			p := r.Proto
			if isPostgres(p) {
				p = "postgres"
			}
			return c.re.MatchString(p) == (c.op == opRe)
		}
		eq := equalFoldASCII(r.Proto, c.str) || c.str == "postgres" && isPostgres(r.Proto)
		return eq == (c.op == opEq)
	case kClass:
		if c.re != nil {
			return c.re.MatchString(analytics.CurrentClass(r)) == (c.op == opRe)
		}
		cl := analytics.CurrentClass(r)
		eq := equalFoldASCII(cl, c.str) || c.alt != "" && equalFoldASCII(cl, c.alt)
		return eq == (c.op == opEq)
	case kTransport:
		return (int64(r.Transport) == c.num) == (c.op == opEq)
	case kClient:
		return c.matchAddr(r.Client) == (c.op == opEq)
	case kServer:
		return c.matchAddr(r.Server) == (c.op == opEq)
	case kIP:
		return (c.matchAddr(r.Client) || c.matchAddr(r.Server)) == (c.op == opEq)
	case kID:
		return (r.ID == uint64(c.num)) == (c.op == opEq)
	case kPort:
		if c.op == opNe {
			return !(int64(r.Client.Port()) == c.num || int64(r.Server.Port()) == c.num)
		}
		return cmpInt(int64(r.Client.Port()), c.op, c.num) || cmpInt(int64(r.Server.Port()), c.op, c.num)
	case kVLAN:
		return cmpInt(int64(r.VLAN), c.op, c.num)
	case kReqBytes:
		return cmpInt(r.ReqBytes, c.op, c.num)
	case kRespBytes:
		return cmpInt(r.RespBytes, c.op, c.num)
	case kReqPkts:
		return cmpInt(int64(r.ReqPkts), c.op, c.num)
	case kRespPkts:
		return cmpInt(int64(r.RespPkts), c.op, c.num)
	}
	// Durations and times: unknown (negative durations, zero times) never
	// matches, not even !=.
	var v int64
	switch c.key {
	case kLatency:
		v = LatencyOf(r)
	case kNetwork:
		v = r.Network
	case kServerTime:
		v = r.ServerTime
	case kTransfer:
		v = r.Transfer
	case kClientNet:
		v = r.ClientNet
	case kRTT:
		v = r.RTT
	default:
		switch c.key {
		case kReqFirst:
			v = r.ReqFirst
		case kReqLast:
			v = r.ReqLast
		case kRespFirst:
			v = r.RespFirst
		case kRespLast:
			v = r.RespLast
		}
		if v <= 0 {
			return false
		}
		return cmpInt(v, c.op, c.num)
	}
	if v < 0 {
		return false
	}
	return cmpInt(v, c.op, c.num)
}

func (c *cmp) matchAddr(ap netip.AddrPort) bool {
	switch c.form {
	case aAddrPort:
		return ap == c.ap
	case aPrefix:
		return c.prefix.Contains(ap.Addr())
	}
	return ap.Addr() == c.addr
}

func cmpInt(v int64, op opKind, want int64) bool {
	switch op {
	case opEq:
		return v == want
	case opNe:
		return v != want
	case opLt:
		return v < want
	case opLe:
		return v <= want
	case opGt:
		return v > want
	case opGe:
		return v >= want
	}
	return false
}

func (c *cmp) matchField(r *analytics.Record) bool {
	f, ok := r.Get(c.field)
	if !ok {
		return false // a missing field never matches, not even != or !~
	}
	switch c.op {
	case opRe, opNotRe:
		var m bool
		if f.IsInt {
			buf := intBufs.Get().(*[24]byte)
			m = c.re.Match(strconv.AppendInt(buf[:0], f.Int, 10))
			intBufs.Put(buf)
		} else {
			m = c.re.MatchString(f.Str)
		}
		return m == (c.op == opRe)
	case opEq, opNe:
		var eq bool
		switch {
		case f.IsInt:
			eq = c.isNum && f.Int == c.num
		case c.fold:
			eq = equalFoldASCII(f.Str, c.raw)
		default:
			eq = f.Str == c.raw
		}
		return eq == (c.op == opEq)
	}
	// Ordered: numerically when the value is a number (a string field must
	// then parse as one), else as text.
	if c.isNum {
		v := f.Int
		if !f.IsInt {
			n, ok := parseInt(f.Str)
			if !ok {
				return false
			}
			v = n
		}
		return cmpInt(v, c.op, c.num)
	}
	if f.IsInt {
		return false
	}
	return cmpInt(int64(strings.Compare(f.Str, c.raw)), c.op, 0)
}

// --- String ---

// needQuote reports whether a value must be quoted to read back the same.
func needQuote(s string) bool {
	if s == "" {
		return true
	}
	switch strings.ToLower(s) {
	case "and", "or", "not":
		return true
	}
	for i := 0; i < len(s); i++ {
		if !wordChar(s[i]) {
			return true
		}
	}
	return false
}

func quote(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}

func (n *node) write(b *strings.Builder) {
	switch n.kind {
	case nAnd, nOr:
		b.WriteByte('(')
		n.l.write(b)
		if n.kind == nAnd {
			b.WriteString(" and ")
		} else {
			b.WriteString(" or ")
		}
		n.r.write(b)
		b.WriteByte(')')
	case nNot:
		b.WriteString("not ")
		n.l.write(b)
	default:
		c := &n.c
		b.WriteString(c.field)
		b.WriteByte(' ')
		b.WriteString(opNames[c.op])
		b.WriteByte(' ')
		v := c.raw
		if c.key == kProto && c.re == nil {
			v = c.str
		}
		if needQuote(v) {
			quote(b, v)
		} else {
			b.WriteString(v)
		}
	}
}

// --- pruning ---

// maxAlternatives bounds AnyTerms: an expression with more alternatives
// is not worth a bloom check per alternative and frame.
const maxAlternatives = 64

// AnyTerms returns term lists of which a matching record has every term of
// at least one: the alternatives of an "or" whose every branch requires
// terms ("id A or id B" gives [[id=A] [id=B]]), where Terms has none. Nil
// when some path requires no term or there are more than 64 lists. The
// lists are shared: do not modify them.
func (e *Expr) AnyTerms() [][]string { return e.anyTerms }

// alternatives returns term lists of which a record matching n has every
// term of at least one (nil: nothing known).
func (n *node) alternatives() [][]string {
	switch n.kind {
	case nOr:
		l, r := n.l.alternatives(), n.r.alternatives()
		if l == nil || r == nil || len(l)+len(r) > maxAlternatives {
			return nil
		}
		return append(slices.Clip(l), r...)
	case nAnd:
		// Every term both sides require is required; an alternative of
		// one side is then narrowed by the other side's required terms.
		// Keep it simple: the required terms as one alternative, else one
		// side's alternatives.
		if t := n.terms(); len(t) > 0 {
			return [][]string{t}
		}
		if l := n.l.alternatives(); l != nil {
			return l
		}
		return n.r.alternatives()
	case nNot:
		return nil
	}
	if t := n.terms(); len(t) > 0 {
		return [][]string{t}
	}
	return nil
}

// terms returns the sorted terms every record matching n has.
func (n *node) terms() []string {
	switch n.kind {
	case nAnd:
		t := append(n.l.terms(), n.r.terms()...)
		slices.Sort(t)
		return slices.Compact(t)
	case nOr:
		l, r := n.l.terms(), n.r.terms()
		var t []string
		for _, x := range l {
			if _, ok := slices.BinarySearch(r, x); ok {
				t = append(t, x)
			}
		}
		return t
	case nNot:
		return nil
	}
	t := n.c.terms() // lowercased by the codec, IPv6 zones included
	slices.Sort(t)
	return t
}

// terms returns the terms a record matching c has, unsorted.
func (c *cmp) terms() []string {
	if c.op != opEq {
		return nil
	}
	switch c.key {
	case kProto:
		if c.str == "postgres" || c.str == "" || !isASCII(c.str) {
			return nil // the record may say "pgsql"; an empty proto has no term
		}
		return []string{analytics.ProtoTerm(c.str)}
	case kClass:
		if c.str == "" || !isASCII(c.str) || c.re != nil {
			return nil
		}
		if _, renamed := classRenamed[c.str]; renamed {
			// Files written before issue 11 hold the old name's term.
			return nil
		}
		return []string{analytics.ClassTerm(c.str)}
	case kPort:
		if c.num == 0 {
			return nil // port 0 has no term
		}
		return []string{analytics.PortTerm(uint64(c.num))}
	case kVLAN:
		if c.num <= 0 {
			return nil // VLAN 0 has no term
		}
		return []string{analytics.VLANTerm(uint64(c.num))}
	case kID:
		return []string{analytics.IDTerm(uint64(c.num))}
	case kServer:
		switch c.form {
		case aAddrPort:
			return []string{analytics.ServerPortTerm(c.ap), analytics.ServerTerm(c.ap.Addr())}
		case aAddr:
			return []string{analytics.ServerTerm(c.addr)}
		}
	case kClient:
		switch c.form {
		case aAddrPort:
			return []string{analytics.ClientTerm(c.ap.Addr())}
		case aAddr:
			return []string{analytics.ClientTerm(c.addr)}
		}
	case kIP:
		switch c.form {
		case aAddrPort:
			return []string{analytics.IPTerm(c.ap.Addr())}
		case aAddr:
			return []string{analytics.IPTerm(c.addr)}
		}
	case kField:
		if !c.canon || !isASCII(c.raw) {
			// "007" matches the integer 7 but the text "007"; and non-ASCII
			// text lowercases differently under strings.ToLower and an
			// ASCII-only lowercasing.
			return nil
		}
		return []string{analytics.FieldTerm(c.field, c.raw)}
	}
	return nil
}

// protoSet returns the protocols n requires (sorted) and whether it
// constrains them at all.
func (n *node) protoSet() ([]string, bool) {
	switch n.kind {
	case nAnd:
		l, lc := n.l.protoSet()
		r, rc := n.r.protoSet()
		switch {
		case !lc:
			return r, rc
		case !rc:
			return l, lc
		}
		t := []string{}
		for _, x := range l {
			if _, ok := slices.BinarySearch(r, x); ok {
				t = append(t, x)
			}
		}
		return t, true
	case nOr:
		l, lc := n.l.protoSet()
		r, rc := n.r.protoSet()
		if !lc || !rc {
			return nil, false
		}
		t := append(slices.Clone(l), r...)
		slices.Sort(t)
		return slices.Compact(t), true
	case nNot:
		return nil, false
	}
	c := &n.c
	if c.key != kProto || c.op != opEq {
		return nil, false
	}
	if c.str == "postgres" {
		return []string{"pgsql", "postgres"}, true
	}
	return []string{c.str}, true
}

// classRenamed are the classes whose records were stored under another
// name before issue 11 (analytics.OldClasses), so their skip-index terms
// cannot be trusted for one release.
var classRenamed = map[string]bool{analytics.ClassHealthy: true, analytics.ClassCantTell: true, analytics.ClassNoRequest: true}

// oldClass turns a class name of older releases into today's: fast is
// healthy, udp is cant_tell, and unknown is cant_tell or no_request.
func (c *cmp) oldClass() error {
	n, ok := analytics.OldClasses[c.str]
	if !ok {
		return nil
	}
	if c.str == analytics.ClassUnknown {
		c.alt = analytics.ClassNoRequest
	}
	c.str = n
	return nil
}
