package analytics

import (
	"net/netip"
	"strconv"
)

// The skip-index terms of a record: msgstore puts them in each frame's bloom
// filter and matches them against each record; msgquery derives the terms a
// query requires. Both build them here, so the two sides agree byte for
// byte. The terms (all ASCII letters lowercased, so matching is
// case-insensitive):
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
// keys and invalid addresses give no term. The terms are written into
// stores: changing their form makes existing stores miss matches.

// Terms appends the skip-index terms of r to dst and returns it.
func Terms(r *Record, dst []string) []string {
	var t TermBuf
	t.Build(r)
	for i := range t.ends {
		dst = append(dst, string(t.Term(i)))
	}
	return dst
}

// Terms of one kind, for a query to require. Each is the term Terms gives a
// record with that value.

// ProtoTerm is the term of a record whose proto is p.
func ProtoTerm(p string) string { return string(appendStrTerm(nil, "proto=", p)) }

// ClassTerm is the term of a record whose class is c.
func ClassTerm(c string) string { return string(appendStrTerm(nil, "class=", c)) }

// IDTerm is the term of the record with ID id.
func IDTerm(id uint64) string { return string(appendIDTerm(nil, id)) }

// VLANTerm is the term of a record on VLAN v.
func VLANTerm(v uint64) string { return string(appendUintTerm(nil, "vlan=", v)) }

// PortTerm is the term of a record with an end on port p.
func PortTerm(p uint64) string { return string(appendUintTerm(nil, "port=", p)) }

// ClientTerm is the term of a record whose client address is a.
func ClientTerm(a netip.Addr) string { return string(appendAddrTerm(nil, "client=", a)) }

// ServerTerm is the term of a record whose server address is a.
func ServerTerm(a netip.Addr) string { return string(appendAddrTerm(nil, "server=", a)) }

// ServerPortTerm is the term of a record whose server is ap.
func ServerPortTerm(ap netip.AddrPort) string { return string(appendAddrPortTerm(nil, "server=", ap)) }

// IPTerm is the term of a record with an end at address a.
func IPTerm(a netip.Addr) string { return string(appendAddrTerm(nil, "ip=", a)) }

// FieldTerm is the term of a record with the string field key = v.
func FieldTerm(key, v string) string { return string(appendFieldTerm(nil, key, v)) }

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

// lowerASCII lowercases the ASCII letters of b in place and returns it.
func lowerASCII(b []byte) []byte {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return b
}

func appendStrTerm(dst []byte, prefix, v string) []byte {
	s := len(dst)
	dst = append(dst, prefix...)
	dst = append(dst, v...)
	lowerASCII(dst[s:])
	return dst
}

func appendUintTerm(dst []byte, prefix string, v uint64) []byte {
	dst = append(dst, prefix...)
	return strconv.AppendUint(dst, v, 10)
}

func appendIDTerm(dst []byte, id uint64) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, "id="...)
	for sh := 60; sh >= 0; sh -= 4 {
		dst = append(dst, hex[id>>uint(sh)&0xf])
	}
	return dst
}

func appendAddrTerm(dst []byte, prefix string, a netip.Addr) []byte {
	s := len(dst)
	dst = append(dst, prefix...)
	dst = a.AppendTo(dst)
	lowerASCII(dst[s:]) // an IPv6 zone may have capitals
	return dst
}

func appendAddrPortTerm(dst []byte, prefix string, ap netip.AddrPort) []byte {
	s := len(dst)
	dst = append(dst, prefix...)
	dst = ap.AppendTo(dst)
	lowerASCII(dst[s:])
	return dst
}

func appendFieldTerm(dst []byte, key, v string) []byte {
	s := len(dst)
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = append(dst, v...)
	lowerASCII(dst[s:])
	return dst
}

func appendIntFieldTerm(dst []byte, key string, v int64) []byte {
	s := len(dst)
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = strconv.AppendInt(dst, v, 10)
	lowerASCII(dst[s:])
	return dst
}

// TermBuf holds one record's terms back to back; Term(i) is the i-th. It is
// reused between records, so building terms allocates nothing once its
// buffers have grown. Owned by one goroutine.
type TermBuf struct {
	buf  []byte
	ends []int
}

// Len returns the number of terms.
func (t *TermBuf) Len() int { return len(t.ends) }

// Term returns term i, valid until the next Build.
func (t *TermBuf) Term(i int) []byte {
	start := 0
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.buf[start:t.ends[i]]
}

func (t *TermBuf) end() { t.ends = append(t.ends, len(t.buf)) }

// Build replaces t's terms with those of r.
func (t *TermBuf) Build(r *Record) {
	t.buf, t.ends = t.buf[:0], t.ends[:0]
	t.buf = appendIDTerm(t.buf, r.ID)
	t.end()
	if r.Proto != "" {
		t.buf = appendStrTerm(t.buf, "proto=", r.Proto)
		t.end()
	}
	if r.Class != "" {
		t.buf = appendStrTerm(t.buf, "class=", r.Class)
		t.end()
	}
	if r.VLAN != 0 {
		t.buf = appendUintTerm(t.buf, "vlan=", uint64(r.VLAN))
		t.end()
	}
	ca, sa := r.Client.Addr(), r.Server.Addr()
	if ca.IsValid() {
		t.buf = appendAddrTerm(t.buf, "client=", ca)
		t.end()
		t.buf = appendAddrTerm(t.buf, "ip=", ca)
		t.end()
	}
	if sa.IsValid() {
		t.buf = appendAddrTerm(t.buf, "server=", sa)
		t.end()
		t.buf = appendAddrPortTerm(t.buf, "server=", r.Server)
		t.end()
		if sa != ca {
			t.buf = appendAddrTerm(t.buf, "ip=", sa)
			t.end()
		}
	}
	if p := r.Client.Port(); p != 0 {
		t.buf = appendUintTerm(t.buf, "port=", uint64(p))
		t.end()
	}
	if p := r.Server.Port(); p != 0 && p != r.Client.Port() {
		t.buf = appendUintTerm(t.buf, "port=", uint64(p))
		t.end()
	}
	for i := range r.Fields {
		f := &r.Fields[i]
		if f.Key == "" {
			continue
		}
		if f.IsInt {
			t.buf = appendIntFieldTerm(t.buf, f.Key, f.Int)
		} else {
			t.buf = appendFieldTerm(t.buf, f.Key, f.Str)
		}
		t.end()
	}
}

// Has reports whether the terms include every term in want (already
// normalized).
func (t *TermBuf) Has(want []string) bool {
	for _, w := range want {
		found := false
		for i := range t.ends {
			if string(t.Term(i)) == w {
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
