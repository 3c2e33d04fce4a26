package api

import (
	"fmt"
	"net/http"
	"strconv"

	"tapvault/analytics"
	"tapvault/msgquery"
	"tapvault/msgstore"
	"tapvault/query"
)

// The endpoints the UI's views added after the first cut (docs/api.md):
// the latency heatmap, the tiers table, the sorted exchange pages and the
// store's health. uiAPIRoute is route's hook for them.
const (
	pathHeatmap   = "/api/v1/heatmap"
	pathTiers     = "/api/v1/tiers"
	pathExchanges = "/api/v1/exchanges"
	pathHealth    = "/api/v1/health"
)

func isUIAPIPath(p string) bool {
	return p == pathHeatmap || p == pathTiers || p == pathExchanges || p == pathHealth || p == pathLatencySeries
}

func (s *Server) uiAPIRoute(p string) func(http.ResponseWriter, *http.Request) {
	switch p {
	case pathHeatmap:
		return s.handleHeatmap
	case pathTiers:
		return s.handleTiers
	case pathExchanges:
		return s.handleExchanges
	case pathHealth:
		return s.handleHealth
	case pathLatencySeries:
		return s.handleLatencySeries
	}
	return nil
}

// heatmapBounds are the latency rows' lower bounds, ns: 0, then 1-2-5 from
// 1 µs to 100 s. Row i holds [bounds[i], bounds[i+1]); the last row holds
// 100 s and more.
var heatmapBounds = func() []int64 {
	b := []int64{0}
	for d := int64(1000); d < 100e9; d *= 10 {
		b = append(b, d, 2*d, 5*d)
	}
	return append(b, 100e9)
}()

// heatmapRow is the row of latency ns.
func heatmapRow(lat int64) int {
	lo, hi := 0, len(heatmapBounds)-1
	for lo < hi { // the last bound <= lat
		m := (lo + hi + 1) / 2
		if heatmapBounds[m] <= lat {
			lo = m
		} else {
			hi = m - 1
		}
	}
	return lo
}

const (
	defaultHeatmapCols = 60
	maxHeatmapCols     = 1000
)

// messageSpan is the time span of the stored message records, from the
// message files' frame headers (no record is read): 0, 0 when none.
func messageSpan(dir string) (from, to int64) {
	files, _ := msgstore.Files(dir)
	for _, f := range files {
		if f.MinTS == 0 && f.MaxTS == 0 {
			continue
		}
		if from == 0 || f.MinTS < from {
			from = f.MinTS
		}
		to = max(to, f.MaxTS)
	}
	return from, to
}

// window reads cols and fills an unbounded from or to with the message
// store's span: the columns are [from + i*step, from + (i+1)*step), the
// last one ending after to.
func (s *Server) window(q map[string][]string, sel *query.MessageSel) (cols int, step int64, err error) {
	cols = defaultHeatmapCols
	if v := q["cols"]; len(v) == 1 {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > maxHeatmapCols {
			return 0, 0, fmt.Errorf("cols %q: want a whole number from 1 to %d", v[0], maxHeatmapCols)
		}
		cols = n
	}
	if sel.From == query.MinTime || sel.To == query.MaxTime {
		f, t := messageSpan(s.store.Dir)
		if sel.From == query.MinTime {
			sel.From = f
		}
		if sel.To == query.MaxTime {
			sel.To = t
		}
		if sel.To < sel.From {
			sel.To = sel.From
		}
	}
	step = (sel.To-sel.From)/int64(cols) + 1
	return cols, step, nil
}

// handleHeatmap answers the records an expression selects counted by the
// time of their request's first packet (columns over the window) and their
// latency (heatmapBounds), one JSON object:
//
//	{"from","to","step","cols","bounds":[...],"count","no_latency":[per column],
//	 "outside","cells":[[col,row,count],...]}
//
// The work is one streamed pass over the message store; memory is the
// columns × rows counts, whatever the number of records. Nothing is
// skipped but what the expression leaves out: a record without a latency
// (no response) is counted in no_latency, one whose request began outside
// [from, to] (it overlaps the window, so the store selects it) in outside.
func (s *Server) handleHeatmap(w http.ResponseWriter, r *http.Request) {
	sel, _, q, err := s.messageParams(r, "expr", "from", "to", "cols")
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	cols, step, err := s.window(q, &sel)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	exprText := exprString(sel.Expr)
	key := answerKey(pathHeatmap, s.store.Dir, i64(sel.From), i64(sel.To), exprText, strconv.Itoa(cols))
	state, done := s.cachedAnswer(w, key)
	if done {
		return
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	sel.NoDetail = sel.Expr == nil || !sel.Expr.UsesFields() // a cell reads no fields
	rows := len(heatmapBounds)
	counts := make([]int64, cols*rows)
	noLat := make([]int64, cols)
	var total, outside int64
	var ws []error
	query.RunLowPriority(func() {
		ws, err = s.share.Scan(r.Context(), s.store.Dir, sel, func(rec *analytics.Record, _ *msgquery.Tier) error {
			if rec.ReqFirst < sel.From || rec.ReqFirst > sel.To {
				outside++
				return nil
			}
			total++
			c := int((rec.ReqFirst - sel.From) / step)
			lat := msgquery.LatencyOf(rec)
			if lat < 0 {
				noLat[c]++
				return nil
			}
			counts[c*rows+heatmapRow(lat)]++
			return nil
		})
	})
	for _, wr := range ws {
		s.log.Warn("api heatmap: skipped part of the message store", "err", wr)
	}
	if err != nil {
		s.scanFailed(w, r, "heatmap", err)
		return
	}
	b := []byte(`{"from":`)
	b = strconv.AppendInt(b, sel.From, 10)
	b = append(b, `,"to":`...)
	b = strconv.AppendInt(b, sel.To, 10)
	b = append(b, `,"step":`...)
	b = strconv.AppendInt(b, step, 10)
	b = append(b, `,"cols":`...)
	b = strconv.AppendInt(b, int64(cols), 10)
	b = append(b, `,"bounds":`...)
	b = appendInts(b, heatmapBounds)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, total, 10)
	b = append(b, `,"outside":`...)
	b = strconv.AppendInt(b, outside, 10)
	b = append(b, `,"no_latency":`...)
	b = appendInts(b, noLat)
	b = append(b, `,"cells":[`...)
	first := true
	for c := range cols {
		for y := range rows {
			n := counts[c*rows+y]
			if n == 0 {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(c), 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(y), 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, n, 10)
			b = append(b, ']')
		}
	}
	b = append(b, "]}\n"...)
	s.keep(w, key, state, "application/json", b, len(ws))
}

func appendInts(b []byte, v []int64) []byte {
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, x, 10)
	}
	return append(b, ']')
}

// scanFailed answers a failed scan of the message store.
func (s *Server) scanFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	if r.Context().Err() != nil {
		infoOf(r).status = statusClientGone
		return
	}
	writeError(w, r, http.StatusInternalServerError, what+": "+err.Error())
}

// writeBytes answers b, whole, within one write deadline.
func (s *Server) writeBytes(w http.ResponseWriter, ctype string, b []byte) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	setWriteDeadline(http.NewResponseController(w), s.opts.StreamWriteTimeout)
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}
