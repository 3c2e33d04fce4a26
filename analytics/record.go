package analytics

import (
	"net/netip"
	"slices"
	"tapvault/packet"
)

// Building the records: the tcp record of a connection and the record of
// one exchange, with its timing split and class.

// emit hands r to the output.
func (a *Analyzer) emit(r *Record) {
	r.SetID()
	a.recs++
	if !a.out(r) {
		a.drops++
	}
}

// exchangeRecord is a record with room for a typical exchange's fields
// and packet refs (the app trace: at most 7 fields, 90 % of exchanges at
// most 4 refs plus 2 ACKs of evidence), so that building one costs a
// single allocation (712 bytes, the 768-byte size class). Larger
// exchanges get their own slices.
type exchangeRecord struct {
	r      Record
	fields [7]Field
	refs   [6]PktRef
}

// newExchangeRecord returns a zero record whose Fields and Packets are
// empty with room for nf fields and nr refs.
func newExchangeRecord(nf, nr int) *Record {
	x := new(exchangeRecord)
	r := &x.r
	if nf <= len(x.fields) {
		r.Fields = x.fields[:0]
	} else {
		r.Fields = make([]Field, 0, nf)
	}
	if nr <= len(x.refs) {
		r.Packets = x.refs[:0]
	} else {
		r.Packets = make([]PktRef, 0, nr)
	}
	return r
}

// flowFields is the most fields a "tcp" record has.
const flowFields = 12

// flowRecord is a "tcp" record with its fields, in one allocation.
type flowRecord struct {
	r      Record
	fields [flowFields]Field
}

// emitFlow emits the "tcp" record of a connection.
func (a *Analyzer) emitFlow(c *conn, how string) {
	x := new(flowRecord)
	r := &x.r
	r.Proto, r.Transport, r.Class, r.Flags = "tcp", 6, ClassFlow, c.flags
	a.endpoints(c, r)
	r.ReqFirst, r.RespLast = c.firstTS, c.lastTS
	r.Network, r.ServerTime, r.Transfer, r.ClientNet, r.RTT = -1, -1, -1, -1, c.rttSrv
	r.ReqBytes, r.RespBytes = int64(c.nby[Client]), int64(c.nby[Server])
	r.ReqPkts, r.RespPkts = int32(c.npk[Client]), int32(c.npk[Server])
	f := x.fields[:0]
	if c.synTS != 0 {
		f = append(f, Field{Key: "syn_ns", Int: c.synTS, IsInt: true})
	}
	f = append(f,
		Field{Key: "hs_server_ns", Int: c.rttSrvHS(), IsInt: true},
		Field{Key: "hs_client_ns", Int: c.rttCliHS(), IsInt: true},
		Field{Key: "retrans", Int: int64(c.retrans), IsInt: true},
		Field{Key: "ooo", Int: int64(c.ooo), IsInt: true},
		Field{Key: "dupack", Int: int64(c.dupack), IsInt: true},
		Field{Key: "zerowin", Int: int64(c.zerowin), IsInt: true},
		Field{Key: "rst", Int: int64(c.rst), IsInt: true},
		Field{Key: "gap_bytes", Int: int64(c.gapBytes), IsInt: true},
		Field{Key: "close", Str: how},
	)
	if c.dec != nil {
		f = append(f, Field{Key: "app", Str: c.dec.Name})
	}
	r.Fields = f
	a.emit(r)
}

func (a *Analyzer) endpoints(c *conn, r *Record) {
	k := &c.key
	ca, cb := netip.AddrFrom16(k.A).Unmap(), netip.AddrFrom16(k.B).Unmap()
	if c.cliDir == packet.DirAB {
		r.Client, r.Server = netip.AddrPortFrom(ca, k.PortA), netip.AddrPortFrom(cb, k.PortB)
	} else {
		r.Client, r.Server = netip.AddrPortFrom(cb, k.PortB), netip.AddrPortFrom(ca, k.PortA)
	}
	r.VLAN = k.VLAN
}

// emitExchange builds and emits the record of one exchange; clientAck is
// the client's first ACK covering the response (0: none seen), stored at
// ackRef.
func (a *Analyzer) emitExchange(c *conn, req, resp *Message, clientAck int64, ackRef PktRef) {
	n, nf := 0, 0
	if req != nil {
		n += len(req.Pkts)
		nf += len(req.Fields)
	}
	if resp != nil {
		n += len(resp.Pkts)
		nf += len(resp.Fields)
	}
	// Room for the refs, and the two ACKs appendEvidence may add.
	r := newExchangeRecord(nf, min(n, a.cfg.MaxRefs)+2)
	r.Proto, r.Transport, r.Flags = c.dec.Name, 17, c.flags
	if c.tcp {
		r.Transport = 6
	}
	a.endpoints(c, r)
	r.Network, r.ServerTime, r.Transfer, r.ClientNet, r.RTT = -1, -1, -1, -1, -1
	refs, fields := r.Packets, r.Fields
	if req != nil {
		r.ReqFirst, r.ReqLast, r.ReqBytes = req.FirstTS, req.LastTS, req.Bytes
		r.ReqPkts = int32(min(len(req.Pkts), a.cfg.MaxRefs))
		refs = appendRefs(refs, req.Pkts, a.cfg.MaxRefs, &r.Flags)
		fields = append(fields, req.Fields...)
		if req.Gap {
			r.Flags |= FlagGap
		}
		r.ServerAck = req.ackTS
	} else {
		r.Flags |= FlagNoRequest
	}
	if resp != nil {
		r.RespFirst, r.RespLast, r.RespBytes = resp.FirstTS, resp.LastTS, resp.Bytes
		r.RespPkts = int32(min(len(resp.Pkts), a.cfg.MaxRefs))
		refs = appendRefs(refs, resp.Pkts, a.cfg.MaxRefs, &r.Flags)
		for _, f := range resp.Fields {
			fields = setField(fields, f)
		}
		if resp.Gap {
			r.Flags |= FlagGap
		}
		r.Transfer = resp.LastTS - resp.FirstTS
	}
	r.Fields, r.Packets = fields, refs
	r.ClientAck = clientAck
	defer a.freeMessage(req)
	defer a.freeMessage(resp)
	switch {
	case req == nil:
		r.Class = ClassNoRequest
		r.SetEvidence(NetNone, ConfNone, c.position(), WhyNoRequest)
	case resp == nil:
		r.Class = ClassNoResponse
		a.unans++
	default:
		a.exch++
		wait := resp.FirstTS - req.LastTS
		switch {
		case !c.tcp:
			// No ACKs: the wait cannot be split (latency_ns has it).
			r.Class = ClassCantTell
			r.SetEvidence(NetNone, ConfNone, NearUnknown, WhyUDP)
		case wait < 0:
			r.ServerAck = 0
			r.Class = ClassCantTell
			r.SetEvidence(NetNone, ConfNone, c.position(), WhyOverlap)
		default:
			a.split(c, r, req, resp, wait)
			if r.Flags&FlagRefsCut == 0 {
				r.Packets = appendEvidence(r.Packets, r, req, resp, ackRef)
			}
		}
	}
	a.emit(r)
}

func appendRefs(dst, src []PktRef, max int, flags *uint32) []PktRef {
	for _, r := range src {
		if len(dst) >= max {
			*flags |= FlagRefsCut
			return dst
		}
		dst = append(dst, r)
	}
	return dst
}

// setField sets f in fs, replacing a field with the same key.
func setField(fs []Field, f Field) []Field {
	for i := range fs {
		if fs[i].Key == f.Key {
			fs[i] = f
			return fs
		}
	}
	return append(fs, f)
}

// appendEvidence appends to refs the ACK packets the split looked at, after
// the messages' own packets: the server's bare ACK of the request, and the
// client's ACK of the response. The drill-down then shows in Wireshark why
// the class is what it is.
func appendEvidence(refs []PktRef, r *Record, req, resp *Message, cliAck PktRef) []PktRef {
	add := func(x PktRef) {
		if x.Block != 0 && !slices.Contains(refs, x) {
			refs = append(refs, x)
		}
	}
	if r.ServerAck != 0 && req.ackPkt != resp.firstPkt {
		add(req.ackRef)
	}
	if r.ClientAck != 0 {
		add(cliAck)
	}
	return refs
}
