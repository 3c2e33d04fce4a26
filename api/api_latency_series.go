package api

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"tapvault/analytics"
	"tapvault/msgquery"
	"tapvault/query"
)

// pathLatencySeries is the latency groups over time (docs/api.md).
const pathLatencySeries = "/api/v1/latency_series"

const defaultSeriesCols = 30

// handleLatencySeries answers the latency groups of tapvault latency per
// column of request time:
//
//	{"from","to","step","cols","by":[...],"outside","columns":[[group, ...], ...]}
//
// where each group is the object of tapvault latency --json for the
// records whose request began in that column. One streamed pass with one
// msgquery.Aggregator per column; the exact-value budget of one aggregator
// (msgquery.DefaultMaxExact) is shared between the columns, so memory is
// what /api/v1/latency takes, and a column past its share reports
// approximate percentiles ("approx") as the aggregator does.
//
// With total=true the answer also has "total": the groups of every record
// the pass read (the window's, as /api/v1/latency selects them, with the
// same by and expr and its own full exact-value budget), so a page that
// shows both the table and the series reads the store once, not twice
// (the overview: measured 1.69 s with two passes on a 1.1M-record store,
// docs/PERFORMANCE.md).
func (s *Server) handleLatencySeries(w http.ResponseWriter, r *http.Request) {
	sel, _, q, err := s.messageParams(r, "by", "expr", "from", "to", "cols", "total")
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	withTotal := false
	if v := q["total"]; len(v) == 1 {
		if withTotal, err = strconv.ParseBool(v[0]); err != nil {
			writeError(w, r, http.StatusBadRequest, fmt.Sprintf("total %q: want true or false", v[0]))
			return
		}
	}
	if v := q["cols"]; len(v) == 0 {
		q["cols"] = []string{strconv.Itoa(defaultSeriesCols)}
	}
	// The key has the window as asked: an open end is the store's span,
	// which the store's state fixes.
	exprText := exprString(sel.Expr)
	asked := []string{pathLatencySeries, s.store.Dir, i64(sel.From), i64(sel.To), exprText}
	cols, step, err := s.window(q, &sel)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	by := []string{"proto"}
	if v := q["by"]; len(v) == 1 && v[0] != "" {
		by = strings.Split(v[0], ",")
	}
	aggs := make([]*msgquery.Aggregator, cols)
	for i := range aggs {
		if aggs[i], err = msgquery.NewAggregator(by); err != nil {
			writeError(w, r, http.StatusBadRequest, "by: "+err.Error())
			return
		}
		aggs[i].MaxExact = max(1, msgquery.DefaultMaxExact/cols)
	}
	// Without a field in by or expr, the scan skips decoding them.
	sel.NoDetail = !aggs[0].UsesFields() && (sel.Expr == nil || !sel.Expr.UsesFields())
	var total *msgquery.Aggregator
	if withTotal {
		total, _ = msgquery.NewAggregator(by) // by was checked above
	}
	key := answerKey(append(asked, strings.Join(by, ","), strconv.Itoa(cols), strconv.FormatBool(withTotal))...)
	state, done := s.cachedAnswer(w, key)
	if done {
		return
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	var (
		outside int64
		ws      []error
	)
	query.RunLowPriority(func() {
		ws, err = s.share.Scan(r.Context(), s.store.Dir, sel, func(rec *analytics.Record, _ *msgquery.Tier) error {
			if total != nil {
				total.Add(rec)
			}
			if rec.ReqFirst < sel.From || rec.ReqFirst > sel.To {
				outside++
				return nil
			}
			aggs[(rec.ReqFirst-sel.From)/step].Add(rec)
			return nil
		})
	})
	for _, wr := range ws {
		s.log.Warn("api latency series: skipped part of the message store", "err", wr)
	}
	if err != nil {
		s.scanFailed(w, r, "latency series", err)
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
	b = append(b, `,"by":[`...)
	for i, k := range by {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, jsonString(k)...)
	}
	b = append(b, `],"outside":`...)
	b = strconv.AppendInt(b, outside, 10)
	b = append(b, `,"columns":[`...)
	var lines []byte
	for i, a := range aggs {
		if i > 0 {
			b = append(b, ',')
		}
		// The groups as JSON lines, made one array.
		lines = msgquery.AppendGroupsJSON(lines[:0], a.By(), a.Groups())
		b = append(b, '[')
		b = append(b, bytes.ReplaceAll(bytes.TrimSuffix(lines, []byte{'\n'}), []byte{'\n'}, []byte{','})...)
		b = append(b, ']')
	}
	b = append(b, ']')
	if total != nil {
		b = append(b, `,"total":[`...)
		lines = msgquery.AppendGroupsJSON(lines[:0], total.By(), total.Groups())
		b = append(b, bytes.ReplaceAll(bytes.TrimSuffix(lines, []byte{'\n'}), []byte{'\n'}, []byte{','})...)
		b = append(b, ']')
	}
	b = append(b, "}\n"...)
	s.keep(w, key, state, "application/json", b, len(ws))
}
