package api

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"

	"tapvault/analytics"
	"tapvault/msgquery"
	"tapvault/query"
)

// tierExamples is how many example front exchanges a front end's row and
// each of its backend servers carry (the longest waits).
const tierExamples = 3

// tierFront is one front end's row of pathTiers (a server and protocol of
// front exchanges): over its front exchanges
// (those the expression selects) with a tier split (msgquery.Tier, the
// linking of tapvault messages --tiers), the sums of each part of the wait
// (ReqLast -> RespFirst). With backend calls: before the first call,
// in the calls (per backend server), after the last, and the front end's
// own time between them (self - before - after; negative when calls
// overlap). Without: the whole wait, in no_backend_wait_ns.
type tierFront struct {
	Front          string         `json:"front"`
	Proto          string         `json:"proto"`
	Fronts         int64          `json:"fronts"`
	WithBackends   int64          `json:"with_backends"`
	WaitNS         int64          `json:"wait_ns"`
	BeforeNS       int64          `json:"before_ns"`
	BackendNS      int64          `json:"backend_ns"`
	AfterNS        int64          `json:"after_ns"`
	BetweenNS      int64          `json:"between_ns"`
	NoBackendWait  int64          `json:"no_backend_wait_ns"`
	Backends       []*tierBackend `json:"backends"`
	Examples       []string       `json:"examples"`
	backendsByName map[endpointKey]*tierBackend
	ex             []tierExample
}

// endpointKey is a server and protocol, as a map key: a string made of
// them for each of a million records was a tenth of the tiers' time.
type endpointKey struct {
	proto  string
	server netip.AddrPort
}

// tierBackend is one backend server of a front end: its calls made inside
// the front exchanges' waits and the sum of their durations (RespLast -
// ReqFirst, as msgquery.Tier's Backend adds them). Its examples are the
// front exchanges with the longest call to it.
type tierBackend struct {
	Server   string   `json:"server"`
	Proto    string   `json:"proto"`
	Calls    int64    `json:"calls"`
	NS       int64    `json:"ns"`
	Examples []string `json:"examples"`
	ex       []tierExample
}

type tierExample struct {
	id uint64
	ns int64
}

// addExample keeps the n largest (ties: the first seen).
func addExample(ex []tierExample, e tierExample, n int) []tierExample {
	i, _ := slices.BinarySearchFunc(ex, e, func(a, b tierExample) int { return -cmp.Compare(a.ns, b.ns) })
	for i < len(ex) && ex[i].ns == e.ns {
		i++
	}
	if i >= n {
		return ex
	}
	ex = slices.Insert(ex, i, e)
	if len(ex) > n {
		ex = ex[:n]
	}
	return ex
}

func exampleIDs(ex []tierExample) []string {
	out := make([]string, len(ex))
	for i, e := range ex {
		out[i] = hexID(e.id)
	}
	return out
}

func hexID(id uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[id&15]
		id >>= 4
	}
	return string(b[:])
}

// handleTiers answers, per front end (a front exchange's server), where
// its clients' waits went, as JSON lines of tierFront, the front end with
// the most wait first. The expression selects the front exchanges; their
// backend calls are whatever the tier linker gave them. One streamed pass
// with the linker's bounded memory, plus the calls seen and not yet
// matched to their front (the linker releases a call before its front,
// within one window).
func (s *Server) handleTiers(w http.ResponseWriter, r *http.Request) {
	sel, _, _, err := s.messageParams(r, "expr", "from", "to", "tier_window")
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	expr := sel.Expr
	sel.Expr, sel.Tiers = nil, true
	// The rows read no fields or packets; the expression may.
	sel.NoDetail = expr == nil || !expr.UsesFields()
	sel.Exchanges = true // a connection record is never a front end's or its backend's
	exprText := exprString(expr)
	key := answerKey(pathTiers, s.store.Dir, i64(sel.From), i64(sel.To), i64(sel.Window), exprText)
	state, done := s.cachedAnswer(w, key)
	if done {
		return
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	type call struct {
		ep endpointKey
		ns int64
	}
	type frontRef struct {
		row *tierFront
		id  uint64
	}
	var (
		rows    = map[endpointKey]*tierFront{}
		calls   = map[uint64]call{}     // calls seen before their front
		waiting = map[uint64]frontRef{} // calls a front named, not yet seen
		ws      []error
	)
	addCall := func(f frontRef, c call) {
		b := f.row.backendsByName[c.ep]
		if b == nil {
			b = &tierBackend{Server: c.ep.server.String(), Proto: c.ep.proto}
			f.row.backendsByName[c.ep] = b
			f.row.Backends = append(f.row.Backends, b)
		}
		b.Calls++
		b.NS += c.ns
		// Examples: the front exchanges with the longest call to it, each
		// once.
		for i, e := range b.ex {
			if e.id == f.id {
				if c.ns <= e.ns {
					return
				}
				b.ex = slices.Delete(b.ex, i, i+1)
				break
			}
		}
		b.ex = addExample(b.ex, tierExample{f.id, c.ns}, tierExamples)
	}
	query.RunLowPriority(func() {
		ws, err = s.share.Scan(r.Context(), s.store.Dir, sel, func(rec *analytics.Record, t *msgquery.Tier) error {
			if t == nil {
				return nil
			}
			if !t.IsFront {
				if t.Frontend == 0 {
					return nil
				}
				c := call{endpointKey{rec.Proto, rec.Server}, rec.RespLast - rec.ReqFirst}
				if f, ok := waiting[rec.ID]; ok {
					delete(waiting, rec.ID)
					if f.row != nil {
						addCall(f, c)
					}
					return nil
				}
				calls[rec.ID] = c
				return nil
			}
			var row *tierFront
			if expr == nil || expr.Match(rec) {
				key := endpointKey{rec.Proto, rec.Server}
				row = rows[key]
				if row == nil {
					row = &tierFront{Front: rec.Server.String(), Proto: rec.Proto, backendsByName: map[endpointKey]*tierBackend{}}
					rows[key] = row
				}
				wait := rec.RespFirst - rec.ReqLast
				row.Fronts++
				if len(t.Backends) == 0 {
					row.NoBackendWait += wait
				} else {
					row.WithBackends++
					row.WaitNS += wait
					row.BeforeNS += t.Before
					row.AfterNS += t.After
					row.BackendNS += t.Backend
					row.BetweenNS += t.Self - t.Before - t.After
					row.ex = addExample(row.ex, tierExample{rec.ID, wait}, tierExamples)
				}
			}
			f := frontRef{row, rec.ID}
			for _, id := range t.Backends {
				c, ok := calls[id]
				if !ok {
					waiting[id] = f
					continue
				}
				delete(calls, id)
				if row != nil {
					addCall(f, c)
				}
			}
			return nil
		})
	})
	for _, wr := range ws {
		s.log.Warn("api tiers: skipped part of the message store", "err", wr)
	}
	if err != nil {
		s.scanFailed(w, r, "tiers", err)
		return
	}
	out := make([]*tierFront, 0, len(rows))
	for _, row := range rows {
		row.Examples = exampleIDs(row.ex)
		slices.SortFunc(row.Backends, func(a, b *tierBackend) int {
			return cmp.Or(-cmp.Compare(a.NS, b.NS), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Server, b.Server))
		})
		for _, b := range row.Backends {
			b.Examples = exampleIDs(b.ex)
		}
		if row.Backends == nil {
			row.Backends = []*tierBackend{}
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b *tierFront) int {
		return cmp.Or(-cmp.Compare(a.WaitNS+a.NoBackendWait, b.WaitNS+b.NoBackendWait), cmp.Compare(a.Front, b.Front), cmp.Compare(a.Proto, b.Proto))
	})
	var b []byte
	for _, row := range out {
		j, err := json.Marshal(row)
		if err != nil {
			writeError(w, r, http.StatusInternalServerError, "tiers: "+err.Error())
			return
		}
		b = append(append(b, j...), '\n')
	}
	s.keep(w, key, state, "application/x-ndjson", b, len(ws))
}
