package analytics

import (
	"strconv"
	"unicode/utf8"
)

// AppendSummary appends the key fields of r in a short protocol-specific
// form, e.g. "GET www.example.com/path -> 200", and " (no response)" for an
// exchange without one. The form comes from the record's decoder
// (Decoder.Summary, found by name or alias); a connection record (proto
// "tcp") gives its handshake, counters and bytes; any other record its
// fields as key=value.
func AppendSummary(dst []byte, r *Record) []byte {
	if r.Proto == FlowProto {
		return appendFlowSummary(dst, r)
	}
	if d := lookupProto(r.Proto); d != nil && d.Summary != nil {
		dst = d.Summary(dst, r)
	} else {
		// Unknown protocol: its fields, key=value.
		for i, f := range r.Fields {
			if i > 0 {
				dst = append(dst, ' ')
			}
			dst = AppendClean(dst, f.Key, 32)
			dst = append(dst, '=')
			if f.IsInt {
				dst = strconv.AppendInt(dst, f.Int, 10)
			} else {
				dst = AppendClean(dst, f.Str, 60)
			}
		}
	}
	if r.RespFirst <= 0 && r.RespLast <= 0 {
		dst = append(dst, " (no response)"...)
	}
	return dst
}

// appendFlowSummary is the summary of a connection record (emitFlow).
func appendFlowSummary(dst []byte, r *Record) []byte {
	dst = append(dst, "handshake="...)
	syn, sok := r.Get("syn_ns")
	srv, vok := r.Get("hs_server_ns")
	cli, cok := r.Get("hs_client_ns")
	if sok && vok && cok && syn.IsInt && srv.IsInt && cli.IsInt {
		dst = AppendDuration(dst, srv.Int)
		dst = append(dst, '+')
		dst = AppendDuration(dst, cli.Int)
	} else {
		dst = append(dst, '-')
	}
	for _, k := range [...]string{"retrans", "ooo", "dupack", "zerowin", "rst"} {
		if f, ok := r.Get(k); ok && f.IsInt && f.Int != 0 {
			dst = append(dst, ' ')
			dst = append(dst, k...)
			dst = append(dst, '=')
			dst = strconv.AppendInt(dst, f.Int, 10)
		}
	}
	dst = append(dst, " bytes="...)
	dst = strconv.AppendInt(dst, r.ReqBytes, 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, r.RespBytes, 10)
}

// Helpers for the decoders' Summary functions.

// appendField appends the value of r's field key as clean text (at most
// maxLen runes), nothing when r has no such field.
func appendField(dst []byte, r *Record, key string, maxLen int) []byte {
	f, ok := r.Get(key)
	if !ok {
		return dst
	}
	if f.IsInt {
		return strconv.AppendInt(dst, f.Int, 10)
	}
	return AppendClean(dst, f.Str, maxLen)
}

// appendFieldOr appends field key as appendField does, or "-" when r has no
// such field.
func appendFieldOr(dst []byte, r *Record, key string, maxLen int) []byte {
	if !r.Has(key) {
		return append(dst, '-')
	}
	return appendField(dst, r, key, maxLen)
}

// appendArrow appends the separator between request and response.
func appendArrow(dst []byte) []byte { return append(dst, " -> "...) }

// appendStatement appends a SQL record's statement cut to 60 characters,
// or its command when it has no statement.
func appendStatement(dst []byte, r *Record) []byte {
	if r.Has("statement") {
		return appendField(dst, r, "statement", 60)
	}
	return appendField(dst, r, "command", 32)
}

// Has reports whether r has a field named key.
func (r *Record) Has(key string) bool {
	_, ok := r.Get(key)
	return ok
}

// AppendClean appends s for a text line: at most maxRunes runes (then
// "…"), control characters as spaces (tabs, newlines) or '?', invalid
// UTF-8 as U+FFFD.
func AppendClean(dst []byte, s string, maxRunes int) []byte {
	n := 0
	for i := 0; i < len(s); {
		if n == maxRunes {
			return append(dst, "…"...)
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\t' || c == '\n' || c == '\r':
				dst = append(dst, ' ')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '?')
			default:
				dst = append(dst, c)
			}
			i++
			n++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		case r >= 0x80 && r < 0xa0 || r == '\u2028' || r == '\u2029':
			dst = append(dst, '?')
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
		n++
	}
	return dst
}

// AppendDuration appends a duration in ns in a short human form: "850ns",
// "12.3µs", "1.234ms", "2.5s", "3m7.2s"; "-" for a negative (unknown)
// duration.
func AppendDuration(dst []byte, ns int64) []byte {
	switch {
	case ns < 0:
		return append(dst, '-')
	case ns < 1000:
		dst = strconv.AppendInt(dst, ns, 10)
		return append(dst, "ns"...)
	case ns < 1_000_000:
		dst = appendFixed(dst, ns, 1000)
		return append(dst, "µs"...)
	case ns < 1_000_000_000:
		dst = appendFixed(dst, ns, 1_000_000)
		return append(dst, "ms"...)
	case ns < 60_000_000_000:
		dst = appendFixed(dst, ns, 1_000_000_000)
		return append(dst, 's')
	}
	m := ns / 60_000_000_000
	dst = strconv.AppendInt(dst, m, 10)
	dst = append(dst, 'm')
	dst = appendFixed(dst, ns-m*60_000_000_000, 1_000_000_000)
	return append(dst, 's')
}

// appendFixed appends v/unit with up to three decimals (rounded, trailing
// zeros dropped).
func appendFixed(dst []byte, v, unit int64) []byte {
	// Round to three decimals.
	step := unit / 1000
	v = (v + step/2) / step // thousandths of the unit
	dst = strconv.AppendInt(dst, v/1000, 10)
	frac := v % 1000
	if frac == 0 {
		return dst
	}
	d := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for n > 0 && d[n-1] == '0' {
		n--
	}
	dst = append(dst, '.')
	return append(dst, d[:n]...)
}
