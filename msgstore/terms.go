package msgstore

import (
	"net/netip"
	"strconv"

	"tapvault/analytics"
)

// Terms appends the skip-index terms of r to dst and returns it. A frame's
// bloom filter holds the terms of all its records; Query.Terms are tested
// against it, then against each record's terms. The terms (all ASCII
// letters lowercased, so matching is case-insensitive):
//
//	id=<16 lowercase hex digits>
//	proto=<proto>              class=<class>        vlan=<n> (when not 0)
//	client=<ip>                server=<ip>          server=<ip:port>
//	ip=<ip>                    for both ends
//	port=<n>                   for both ends (when not 0)
//	<key>=<value>              for every field: the string lowercased, or
//	                           the integer in decimal ("status=404")
//
// An <ip> is in netip.Addr String form, <ip:port> in netip.AddrPort String
// form ("[2001:db8::1]:443"). Endpoint terms are "ip=", not "host=", so
// they never collide with the HTTP "host" field. Empty proto, class, field
// keys and invalid addresses give no term.
func Terms(r *analytics.Record, dst []string) []string {
	var t termBuf
	t.build(r)
	for i := range t.ends {
		dst = append(dst, string(t.term(i)))
	}
	return dst
}

// NormalizeTerm returns a query term in the form Terms produces (ASCII
// letters lowercased).
func NormalizeTerm(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			lowerASCII(b[i:])
			return string(b)
		}
	}
	return s
}

func lowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
}

// termBuf holds one record's terms back to back in buf; term i is
// buf[ends[i-1]:ends[i]]. It is reused between records, so building terms
// allocates nothing once the buffers have grown. Owned by one goroutine.
type termBuf struct {
	buf  []byte
	ends []int
}

func (t *termBuf) term(i int) []byte {
	start := 0
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.buf[start:t.ends[i]]
}

// end closes the term started at start: lowercases it and records its end.
func (t *termBuf) end(start int) {
	lowerASCII(t.buf[start:])
	t.ends = append(t.ends, len(t.buf))
}

func (t *termBuf) build(r *analytics.Record) {
	t.buf, t.ends = t.buf[:0], t.ends[:0]
	const hex = "0123456789abcdef"
	s := len(t.buf)
	t.buf = append(t.buf, "id="...)
	for sh := 60; sh >= 0; sh -= 4 {
		t.buf = append(t.buf, hex[r.ID>>uint(sh)&0xf])
	}
	t.end(s)
	if r.Proto != "" {
		t.str("proto=", r.Proto)
	}
	if r.Class != "" {
		t.str("class=", r.Class)
	}
	if r.VLAN != 0 {
		t.uint("vlan=", uint64(r.VLAN))
	}
	ca, sa := r.Client.Addr(), r.Server.Addr()
	if ca.IsValid() {
		t.addr("client=", ca)
		t.addr("ip=", ca)
	}
	if sa.IsValid() {
		t.addr("server=", sa)
		s := len(t.buf)
		t.buf = append(t.buf, "server="...)
		t.buf = r.Server.AppendTo(t.buf)
		t.end(s)
		if sa != ca {
			t.addr("ip=", sa)
		}
	}
	if p := r.Client.Port(); p != 0 {
		t.uint("port=", uint64(p))
	}
	if p := r.Server.Port(); p != 0 && p != r.Client.Port() {
		t.uint("port=", uint64(p))
	}
	for i := range r.Fields {
		f := &r.Fields[i]
		if f.Key == "" {
			continue
		}
		s := len(t.buf)
		t.buf = append(t.buf, f.Key...)
		t.buf = append(t.buf, '=')
		if f.IsInt {
			t.buf = strconv.AppendInt(t.buf, f.Int, 10)
		} else {
			t.buf = append(t.buf, f.Str...)
		}
		t.end(s)
	}
}

func (t *termBuf) str(prefix, v string) {
	s := len(t.buf)
	t.buf = append(t.buf, prefix...)
	t.buf = append(t.buf, v...)
	t.end(s)
}

func (t *termBuf) uint(prefix string, v uint64) {
	s := len(t.buf)
	t.buf = append(t.buf, prefix...)
	t.buf = strconv.AppendUint(t.buf, v, 10)
	t.end(s)
}

func (t *termBuf) addr(prefix string, a netip.Addr) {
	s := len(t.buf)
	t.buf = append(t.buf, prefix...)
	t.buf = a.AppendTo(t.buf)
	t.end(s)
}

// has reports whether the record's terms include every term in want
// (already normalized).
func (t *termBuf) has(want []string) bool {
	for _, w := range want {
		found := false
		for i := range t.ends {
			if string(t.term(i)) == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
