package query

import (
	"fmt"
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
