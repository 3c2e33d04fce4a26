package api

import (
	"cmp"
	"container/heap"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"tapvault/analytics"
	"tapvault/msgquery"
	"tapvault/msgstore"
	"tapvault/query"
)

// Exchange pages (pathExchanges): the records an expression selects, sorted
// by any column server-side, one page of them.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
	// maxPageEnd bounds offset+limit: the first pass keeps that many sort
	// keys (about 80 bytes each).
	maxPageEnd = 10_000_000
)

// sortKey is one record's place in the order: its value (an integer, or a
// string when str), unknown values last whichever the direction, then
// store order.
type sortKey struct {
	unknown bool
	str     bool
	i       int64
	s       string
	seq     int64
	id      uint64
	pos     msgstore.Pos // where the record lies, to read it whole for the page
}

// sorter reads the key of the column named by a sort parameter.
type sorter struct {
	desc   bool
	fields bool // key reads the record's fields
	key    func(r *analytics.Record) sortKey
}

// less: a before b in the page order.
func (o *sorter) less(a, b *sortKey) bool {
	if a.unknown != b.unknown {
		return b.unknown
	}
	if !a.unknown {
		c := cmp.Compare(boolInt(a.str), boolInt(b.str))
		if c == 0 {
			if a.str {
				c = strings.Compare(a.s, b.s)
			} else {
				c = cmp.Compare(a.i, b.i)
			}
		}
		if o.desc {
			c = -c
		}
		if c != 0 {
			return c < 0
		}
	}
	return a.seq < b.seq
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func durKey(v int64) sortKey { return sortKey{i: v, unknown: v < 0} }

// addrKey orders addresses numerically (IPv4 as IPv4-mapped), then by port.
func addrKey(ap netip.AddrPort) sortKey {
	a := ap.Addr().As16()
	p := ap.Port()
	return sortKey{str: true, s: string(a[:]) + string([]byte{byte(p >> 8), byte(p)})}
}

// newSorter reads sort: a column, "-" first for descending. The columns are
// the names of a record's JSON (docs/messages.md): its times, durations
// (unknown ones last), counts, proto, class, transport, id, client and server
// (numerically), summary (the one-line summary of tapvault messages),
// duration_ns (a connection's first packet to its last) and any protocol
// field (integers before strings; records without it last, and negative
// values of a field named *_ns, unknown durations, too).
func newSorter(sort string) (*sorter, error) {
	o := &sorter{}
	name, desc := strings.CutPrefix(sort, "-")
	o.desc = desc
	i64 := func(f func(r *analytics.Record) int64) func(r *analytics.Record) sortKey {
		return func(r *analytics.Record) sortKey { return sortKey{i: f(r)} }
	}
	dur := func(f func(r *analytics.Record) int64) func(r *analytics.Record) sortKey {
		return func(r *analytics.Record) sortKey { return durKey(f(r)) }
	}
	str := func(f func(r *analytics.Record) string) func(r *analytics.Record) sortKey {
		return func(r *analytics.Record) sortKey { return sortKey{str: true, s: f(r)} }
	}
	switch name {
	case "", "req_first_ns":
		o.key = i64(func(r *analytics.Record) int64 { return r.ReqFirst })
	case "req_last_ns":
		o.key = i64(func(r *analytics.Record) int64 { return r.ReqLast })
	case "resp_first_ns":
		o.key = i64(func(r *analytics.Record) int64 { return r.RespFirst })
	case "resp_last_ns":
		o.key = i64(func(r *analytics.Record) int64 { return r.RespLast })
	case "server_ack_ns":
		o.key = i64(func(r *analytics.Record) int64 { return r.ServerAck })
	case "client_ack_ns":
		o.key = i64(func(r *analytics.Record) int64 { return r.ClientAck })
	case "latency_ns":
		o.key = dur(msgquery.LatencyOf)
	case "network_ns":
		o.key = dur(func(r *analytics.Record) int64 { return r.Network })
	case "server_ns":
		o.key = dur(func(r *analytics.Record) int64 { return r.ServerTime })
	case "transfer_ns":
		o.key = dur(func(r *analytics.Record) int64 { return r.Transfer })
	case "client_net_ns":
		o.key = dur(func(r *analytics.Record) int64 { return r.ClientNet })
	case "rtt_ns":
		o.key = dur(func(r *analytics.Record) int64 { return r.RTT })
	case "duration_ns": // a connection's life: its first packet to its last
		o.key = i64(func(r *analytics.Record) int64 { return max(r.RespLast, r.ReqFirst) - r.ReqFirst })
	case "req_bytes":
		o.key = i64(func(r *analytics.Record) int64 { return r.ReqBytes })
	case "resp_bytes":
		o.key = i64(func(r *analytics.Record) int64 { return r.RespBytes })
	case "req_packets":
		o.key = i64(func(r *analytics.Record) int64 { return int64(r.ReqPkts) })
	case "resp_packets":
		o.key = i64(func(r *analytics.Record) int64 { return int64(r.RespPkts) })
	case "vlan":
		o.key = i64(func(r *analytics.Record) int64 { return int64(r.VLAN) })
	case "id":
		o.key = str(func(r *analytics.Record) string { return hexID(r.ID) })
	case "proto":
		o.key = str(func(r *analytics.Record) string { return r.Proto })
	case "class":
		o.key = str(func(r *analytics.Record) string { return r.Class })
	case "transport":
		o.key = str(func(r *analytics.Record) string {
			if r.Transport == 17 {
				return "udp"
			}
			return "tcp"
		})
	case "client":
		o.key = func(r *analytics.Record) sortKey { return addrKey(r.Client) }
	case "server":
		o.key = func(r *analytics.Record) sortKey { return addrKey(r.Server) }
	case "summary":
		o.fields = true
		var buf []byte
		o.key = func(r *analytics.Record) sortKey {
			buf = analytics.AppendSummary(buf[:0], r)
			return sortKey{str: true, s: string(buf)}
		}
	default:
		field := strings.TrimPrefix(name, "f_")
		if field == "" || strings.ContainsAny(field, " \t\"'") {
			return nil, fmt.Errorf("sort %q: want a record's column (latency_ns, server, a protocol field...), - first for descending", sort)
		}
		ns := strings.HasSuffix(field, "_ns") // a duration field: negative is unknown
		o.fields = true
		o.key = func(r *analytics.Record) sortKey {
			f, ok := r.Get(field)
			switch {
			case !ok:
				return sortKey{unknown: true}
			case f.IsInt:
				return sortKey{i: f.Int, unknown: ns && f.Int < 0}
			}
			return sortKey{str: true, s: f.Str}
		}
	}
	return o, nil
}

// keyHeap holds the best keys so far with the worst on top.
type keyHeap struct {
	o    *sorter
	keys []sortKey
}

func (h *keyHeap) Len() int           { return len(h.keys) }
func (h *keyHeap) Less(i, j int) bool { return h.o.less(&h.keys[j], &h.keys[i]) }
func (h *keyHeap) Swap(i, j int)      { h.keys[i], h.keys[j] = h.keys[j], h.keys[i] }
func (h *keyHeap) Push(x any)         { h.keys = append(h.keys, x.(sortKey)) }
func (h *keyHeap) Pop() any {
	k := h.keys[len(h.keys)-1]
	h.keys = h.keys[:len(h.keys)-1]
	return k
}

// handleExchanges answers one page of the records an expression selects in
// [from, to], sorted server-side:
//
//	{"total":N,"offset":O,"sort":"-latency_ns","records":[record JSON, ...]}
//
// with the objects of tapvault messages --json. A streamed pass over the
// message store counts the records and keeps the sort keys of the first
// offset+limit in a heap (so memory grows with the page's depth, never
// with the number of records), with each one's place in the store; then
// the page's records alone are read whole from there (msgstore.ReadAt) and
// written. The pass reads no fields unless the expression or the sort
// does: on the 1.8M-record store of docs/PERFORMANCE.md it decodes only
// the records' cores (msgstore's frame version 2), and a page of 100
// reads at most 100 frames whole. Ties keep store order, so a page is
// what a stable sort of tapvault messages' output gives.
func (s *Server) handleExchanges(w http.ResponseWriter, r *http.Request) {
	sel, _, q, err := s.messageParams(r, "expr", "from", "to", "sort", "offset", "limit")
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	sortBy := ""
	if v := q["sort"]; len(v) == 1 {
		sortBy = v[0]
	}
	o, err := newSorter(sortBy)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	offset, limit := 0, defaultPageLimit
	if v := q["offset"]; len(v) == 1 {
		if offset, err = strconv.Atoi(v[0]); err != nil || offset < 0 {
			writeError(w, r, http.StatusBadRequest, fmt.Sprintf("offset %q: want a whole number >= 0", v[0]))
			return
		}
	}
	if v := q["limit"]; len(v) == 1 {
		if limit, err = strconv.Atoi(v[0]); err != nil || limit < 1 || limit > maxPageLimit {
			writeError(w, r, http.StatusBadRequest, fmt.Sprintf("limit %q: want a whole number from 1 to %d", v[0], maxPageLimit))
			return
		}
	}
	if offset+limit > maxPageEnd {
		writeError(w, r, http.StatusBadRequest, fmt.Sprintf("offset %d: pages end at record %d at most; narrow the selection or sort the other way", offset, maxPageEnd))
		return
	}
	key := answerKey(pathExchanges, s.store.Dir, i64(sel.From), i64(sel.To), exprString(sel.Expr), sortBy, i64(int64(offset)), i64(int64(limit)))
	state, done := s.cachedAnswer(w, key)
	if done {
		return
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	// The pass keeps sort keys and places; the page's records are read
	// whole afterwards, so it needs no fields unless the order or the
	// expression does.
	sel.NoDetail = !o.fields && (sel.Expr == nil || !sel.Expr.UsesFields())
	var pos msgstore.Pos
	sel.Pos = &pos
	h := &keyHeap{o: o}
	end := offset + limit
	var (
		total int64
		ws    []error
	)
	query.RunLowPriority(func() {
		ws, err = s.share.Scan(r.Context(), s.store.Dir, sel, func(rec *analytics.Record, _ *msgquery.Tier) error {
			k := o.key(rec)
			k.seq, k.id, k.pos = total, rec.ID, pos
			total++
			switch {
			case h.Len() < end:
				heap.Push(h, k)
			case o.less(&k, &h.keys[0]):
				h.keys[0] = k
				heap.Fix(h, 0)
			}
			return nil
		})
	})
	for _, wr := range ws {
		s.log.Warn("api exchanges: skipped part of the message store", "err", wr)
	}
	warnings := len(ws)
	if err != nil {
		s.scanFailed(w, r, "exchanges", err)
		return
	}
	// The page: the heap's keys in order, from offset.
	keys := make([]sortKey, h.Len())
	for i := len(keys) - 1; i >= 0; i-- {
		keys[i] = heap.Pop(h).(sortKey)
	}
	var page []sortKey
	if offset < len(keys) {
		page = keys[offset:]
	}
	// Their records, whole, from where the pass found them (checked by ID;
	// one whose file retention dropped meanwhile is left out).
	byPos := make(map[msgstore.Pos]int, len(page))
	ps := make([]msgstore.Pos, len(page))
	for i, k := range page {
		byPos[k.pos] = i
		ps[i] = k.pos
	}
	out := make([][]byte, len(page))
	if len(page) > 0 {
		query.RunLowPriority(func() {
			ws, err = query.ReadMessagesAt(r.Context(), s.store.Dir, ps, func(rec *analytics.Record, p msgstore.Pos) error {
				if i, ok := byPos[p]; ok && page[i].id == rec.ID {
					out[i] = msgquery.AppendJSON(nil, rec, nil)
				}
				return nil
			})
		})
		for _, wr := range ws {
			s.log.Warn("api exchanges: skipped part of the message store", "err", wr)
		}
		warnings += len(ws)
		if err != nil {
			s.scanFailed(w, r, "exchanges", err)
			return
		}
	}
	b := []byte(`{"total":`)
	b = strconv.AppendInt(b, total, 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, int64(offset), 10)
	b = append(b, `,"sort":`...)
	b = append(b, jsonString(sortBy)...)
	b = append(b, `,"records":[`...)
	n := 0
	for _, j := range out {
		if j == nil { // gone between the passes
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, j...)
		n++
	}
	b = append(b, "]}\n"...)
	s.keep(w, key, state, "application/json", b, warnings)
}
