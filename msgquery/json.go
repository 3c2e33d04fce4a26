package msgquery

import (
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"tapvault/analytics"
)

// fixedNames are the JSON names AppendJSON writes itself; a record field
// with one of these keys is written as "f_" + key.
var fixedNames = map[string]bool{
	"id": true, "proto": true, "transport": true, "vlan": true, "client": true, "server": true,
	"req_first_ns": true, "req_last_ns": true, "resp_first_ns": true, "resp_last_ns": true,
	"server_ack_ns": true, "client_ack_ns": true,
	"latency_ns": true, "network_ns": true, "server_ns": true, "transfer_ns": true,
	"client_net_ns": true, "rtt_ns": true, "class": true,
	"net_from": true, "confidence": true, "near": true, "why": true,
	"req_bytes": true, "resp_bytes": true, "req_packets": true, "resp_packets": true,
	"flags": true, "packets": true,
	"tier_before_ns": true, "tier_backend_ns": true, "tier_after_ns": true, "tier_self_ns": true,
	"backends": true, "frontend": true,
}

// AppendJSON appends r as one JSON object (no trailing newline) to dst and
// returns the extended buffer. t, when not nil, adds r's tier fields (see
// Tier). Field names are listed in docs/messages.md; scripts depend on
// them. It allocates nothing once dst has room.
func AppendJSON(dst []byte, r *analytics.Record, t *Tier) []byte {
	dst = append(dst, `{"id":"`...)
	dst = appendHex16(dst, r.ID)
	dst = append(dst, `","proto":`...)
	dst = appendString(dst, r.Proto)
	dst = append(dst, `,"transport":`...)
	switch r.Transport {
	case 6:
		dst = append(dst, `"tcp"`...)
	case 17:
		dst = append(dst, `"udp"`...)
	default:
		dst = append(dst, '"')
		dst = strconv.AppendUint(dst, uint64(r.Transport), 10)
		dst = append(dst, '"')
	}
	if r.VLAN != 0 {
		dst = append(dst, `,"vlan":`...)
		dst = strconv.AppendUint(dst, uint64(r.VLAN), 10)
	}
	dst = append(dst, `,"client":`...)
	dst = appendAddrPort(dst, r.Client)
	dst = append(dst, `,"server":`...)
	dst = appendAddrPort(dst, r.Server)

	dst = appendIntField(dst, "req_first_ns", max(r.ReqFirst, 0))
	dst = appendIntField(dst, "req_last_ns", max(r.ReqLast, 0))
	dst = appendIntField(dst, "resp_first_ns", max(r.RespFirst, 0))
	dst = appendIntField(dst, "resp_last_ns", max(r.RespLast, 0))
	dst = appendIntField(dst, "server_ack_ns", max(r.ServerAck, 0))
	dst = appendIntField(dst, "client_ack_ns", max(r.ClientAck, 0))
	dst = appendIntField(dst, "latency_ns", LatencyOf(r))
	dst = appendIntField(dst, "network_ns", dur(r.Network))
	dst = appendIntField(dst, "server_ns", dur(r.ServerTime))
	dst = appendIntField(dst, "transfer_ns", dur(r.Transfer))
	dst = appendIntField(dst, "client_net_ns", dur(r.ClientNet))
	dst = appendIntField(dst, "rtt_ns", dur(r.RTT))
	dst = append(dst, `,"class":`...)
	dst = appendString(dst, r.Class)
	for _, ev := range [...]struct{ key, v string }{
		{`,"net_from":`, r.NetFrom().String()},
		{`,"confidence":`, r.Confidence().String()},
		{`,"near":`, r.Near().String()},
		{`,"why":`, r.Why().String()},
	} {
		if ev.v != "" {
			dst = append(dst, ev.key...)
			dst = appendString(dst, ev.v)
		}
	}
	dst = appendIntField(dst, "req_bytes", r.ReqBytes)
	dst = appendIntField(dst, "resp_bytes", r.RespBytes)
	dst = appendIntField(dst, "req_packets", int64(r.ReqPkts))
	dst = appendIntField(dst, "resp_packets", int64(r.RespPkts))

	dst = append(dst, `,"flags":[`...)
	first := true
	for _, f := range analytics.FlagNames {
		if r.Flags&f.Bit == 0 {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, f.Name...)
		dst = append(dst, '"')
	}
	dst = append(dst, ']')

	for _, f := range r.Fields {
		dst = append(dst, ',')
		if fixedNames[f.Key] {
			dst = append(dst, `"f_`...)
			dst = appendStringBody(dst, f.Key)
			dst = append(dst, '"')
		} else {
			dst = appendString(dst, f.Key)
		}
		dst = append(dst, ':')
		if f.IsInt {
			dst = strconv.AppendInt(dst, f.Int, 10)
		} else {
			dst = appendString(dst, f.Str)
		}
	}

	dst = append(dst, `,"packets":[`...)
	for i, p := range r.Packets {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"block":"`...)
		dst = appendHex16(dst, p.Block)
		dst = append(dst, `","queue":`...)
		dst = strconv.AppendUint(dst, uint64(p.Queue), 10)
		dst = append(dst, `,"ord":`...)
		dst = strconv.AppendUint(dst, uint64(p.Ord), 10)
		dst = append(dst, '}')
	}
	dst = append(dst, ']')

	if t != nil {
		if t.IsFront {
			dst = appendIntField(dst, "tier_before_ns", t.Before)
			dst = appendIntField(dst, "tier_backend_ns", t.Backend)
			dst = appendIntField(dst, "tier_after_ns", t.After)
			dst = appendIntField(dst, "tier_self_ns", t.Self)
			dst = append(dst, `,"backends":[`...)
			for i, id := range t.Backends {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, '"')
				dst = appendHex16(dst, id)
				dst = append(dst, '"')
			}
			dst = append(dst, ']')
		} else if t.Frontend != 0 {
			dst = append(dst, `,"frontend":"`...)
			dst = appendHex16(dst, t.Frontend)
			dst = append(dst, '"')
		}
	}
	return append(dst, '}')
}

// dur maps every negative duration to -1, "unknown".
func dur(v int64) int64 {
	if v < 0 {
		return -1
	}
	return v
}

func appendIntField(dst []byte, name string, v int64) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return strconv.AppendInt(dst, v, 10)
}

const hexDigits = "0123456789abcdef"

// appendHex16 appends v as 16 lowercase hex digits.
func appendHex16(dst []byte, v uint64) []byte {
	for i := 60; i >= 0; i -= 4 {
		dst = append(dst, hexDigits[v>>uint(i)&0xf])
	}
	return dst
}

// appendAddrPort appends ap as a JSON string: "ip:port", "[ipv6]:port",
// or "" for an invalid (unset) address.
func appendAddrPort(dst []byte, ap netip.AddrPort) []byte {
	dst = append(dst, '"')
	if ap.IsValid() {
		dst = ap.AppendTo(dst) // digits, dots, colons, brackets, a zone: no escaping needed
	}
	return append(dst, '"')
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendStringBody(dst, s)
	return append(dst, '"')
}

// appendStringBody appends s escaped for the inside of a JSON string, as
// encoding/json does without HTML escaping: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, and U+2028/U+2029
// escaped so the output is also valid JavaScript.
func appendStringBody(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// AppendText appends one human-readable line for r (no trailing newline):
// the time of the request's first byte (or of the response's, without a
// request) in RFC 3339 UTC with microseconds, the protocol, client → server,
// a protocol-specific summary, the latency, network and server times, the
// class and the ID. Text from the record is cleaned of control characters
// so that one record is one line.
func AppendText(dst []byte, r *analytics.Record) []byte {
	ts := r.ReqFirst
	if ts <= 0 {
		ts = r.RespFirst
	}
	if ts > 0 {
		dst = time.Unix(0, ts).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	} else {
		dst = append(dst, '-')
	}
	dst = append(dst, ' ')
	dst = analytics.AppendClean(dst, r.Proto, 16)
	dst = append(dst, ' ')
	if r.Client.IsValid() {
		dst = r.Client.AppendTo(dst)
	} else {
		dst = append(dst, '?')
	}
	dst = append(dst, " → "...)
	if r.Server.IsValid() {
		dst = r.Server.AppendTo(dst)
	} else {
		dst = append(dst, '?')
	}
	dst = append(dst, ' ')
	dst = analytics.AppendSummary(dst, r)
	dst = append(dst, " latency="...)
	dst = analytics.AppendDuration(dst, LatencyOf(r))
	dst = append(dst, " network="...)
	dst = analytics.AppendDuration(dst, r.Network)
	if src := r.NetFrom(); src != analytics.NetNone {
		dst = append(dst, '(')
		dst = append(dst, src.String()...)
		dst = append(dst, ')')
	}
	dst = append(dst, " server="...)
	dst = analytics.AppendDuration(dst, r.ServerTime)
	dst = append(dst, " transfer="...)
	dst = analytics.AppendDuration(dst, r.Transfer)
	dst = append(dst, " client_net="...)
	dst = analytics.AppendDuration(dst, r.ClientNet)
	dst = append(dst, " class="...)
	dst = analytics.AppendClean(dst, r.Class, 16)
	if why := r.Why(); why != analytics.WhyNone {
		dst = append(dst, '(')
		dst = append(dst, why.String()...)
		dst = append(dst, ')')
	}
	dst = append(dst, " id="...)
	return appendHex16(dst, r.ID)
}
