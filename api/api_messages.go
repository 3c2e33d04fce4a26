package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tapvault/analytics"
	"tapvault/msgquery"
	"tapvault/query"
)

// The message endpoints (docs/api.md).
const (
	pathMessages = "/api/v1/messages"
	pathLatency  = "/api/v1/latency"
	// pathMessages + "/{id}/packets" is the drill-down.
	suffixPackets = "/packets"
)

// messageParams reads the parameters the message endpoints share: from,
// to, limit (through parseParams), expr, tiers and tier_window.
func (s *Server) messageParams(r *http.Request, allowed ...string) (query.MessageSel, params, map[string][]string, error) {
	sel := query.MessageSel{Window: int64(10 * time.Second)}
	p, err := s.parseParams(r, allowed...)
	if err != nil {
		return sel, p, nil, err
	}
	q, _ := parseQuery(r.URL.RawQuery) // parseParams checked it
	sel.From, sel.To = p.req.From, p.req.To
	if v := q["expr"]; len(v) == 1 && strings.TrimSpace(v[0]) != "" {
		if sel.Expr, err = msgquery.Parse(v[0]); err != nil {
			return sel, p, q, fmt.Errorf("expr: %w", err)
		}
	}
	if v := q["tiers"]; len(v) == 1 {
		if sel.Tiers, err = strconv.ParseBool(v[0]); err != nil {
			return sel, p, q, fmt.Errorf("tiers %q: want true or false", v[0])
		}
	}
	if v := q["tier_window"]; len(v) == 1 {
		d, err := time.ParseDuration(v[0])
		if err != nil || d <= 0 || d > time.Hour {
			return sel, p, q, fmt.Errorf("tier_window %q: want a duration up to 1h, like 10s", v[0])
		}
		sel.Window = int64(d)
	}
	return sel, p, q, nil
}

// handleMessages streams the selected records as JSON lines (the same
// objects as tapvault messages --json).
func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request) {
	sel, p, _, err := s.messageParams(r, "expr", "from", "to", "limit", "tiers", "tier_window")
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	rc := http.NewResponseController(w)
	var (
		buf  []byte
		n    int
		sent bool
	)
	errLimit := errors.New("limit")
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if !sent {
			h := w.Header()
			h.Set("Content-Type", "application/x-ndjson")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			sent = true
		}
		setWriteDeadline(rc, s.opts.StreamWriteTimeout)
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	}
	var ws []error
	query.RunLowPriority(func() {
		ws, err = s.share.Scan(r.Context(), s.store.Dir, sel, func(rec *analytics.Record, t *msgquery.Tier) error {
			buf = msgquery.AppendJSON(buf, rec, t)
			buf = append(buf, '\n')
			n++
			if len(buf) > 64<<10 {
				if err := flush(); err != nil {
					return err
				}
			}
			if p.req.Limit > 0 && n >= p.req.Limit {
				return errLimit
			}
			return nil
		})
	})
	for _, wr := range ws {
		s.log.Warn("api messages: skipped part of the message store", "err", wr)
	}
	if errors.Is(err, errLimit) {
		err = nil
	}
	if err == nil {
		if !sent && len(buf) == 0 {
			h := w.Header()
			h.Set("Content-Type", "application/x-ndjson")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			return
		}
		err = flush()
	}
	if err == nil {
		return
	}
	if !sent {
		if r.Context().Err() != nil {
			infoOf(r).status = statusClientGone
			return
		}
		writeError(w, r, http.StatusInternalServerError, "messages: "+err.Error())
		return
	}
	panic(http.ErrAbortHandler)
}

// handleLatency answers the latency groups as JSON lines (the objects of
// tapvault latency --json).
func (s *Server) handleLatency(w http.ResponseWriter, r *http.Request) {
	sel, _, q, err := s.messageParams(r, "by", "expr", "from", "to", "tiers", "tier_window")
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	by := []string{"proto", "server"}
	if v := q["by"]; len(v) == 1 && v[0] != "" {
		by = strings.Split(v[0], ",")
	}
	agg, err := msgquery.NewAggregator(by)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "by: "+err.Error())
		return
	}
	// The groups read no fields or packets unless by or the expression
	// names a field: decoding them was half of reading 1.8M records.
	sel.NoDetail = !agg.UsesFields() && (sel.Expr == nil || !sel.Expr.UsesFields())
	key := answerKey(pathLatency, s.store.Dir, i64(sel.From), i64(sel.To), exprString(sel.Expr), strings.Join(by, ","),
		strconv.FormatBool(sel.Tiers), i64(sel.Window))
	state, done := s.cachedAnswer(w, key)
	if done {
		return
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	var ws []error
	query.RunLowPriority(func() {
		ws, err = s.share.Scan(r.Context(), s.store.Dir, sel, func(rec *analytics.Record, t *msgquery.Tier) error {
			agg.Add(rec)
			agg.AddTier(rec, t)
			return nil
		})
	})
	for _, wr := range ws {
		s.log.Warn("api latency: skipped part of the message store", "err", wr)
	}
	if err != nil {
		if r.Context().Err() != nil {
			infoOf(r).status = statusClientGone
			return
		}
		writeError(w, r, http.StatusInternalServerError, "latency: "+err.Error())
		return
	}
	s.keep(w, key, state, "application/x-ndjson", msgquery.AppendGroupsJSON(nil, agg.By(), agg.Groups()), len(ws))
}

// exprString is an expression's canonical text for an answer's key ("" for
// none).
func exprString(e *msgquery.Expr) string {
	if e == nil {
		return ""
	}
	return e.String()
}

// handleMessagePackets is the drill-down: the packets of both messages of
// one record, as pcap or pcapng.
func (s *Server) handleMessagePackets(w http.ResponseWriter, r *http.Request, idText string) {
	p, err := s.parseParams(r, "format")
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	id, err := query.ParseMessageID(idText)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	ps := &packetStream{
		w: w, rc: http.NewResponseController(w), timeout: s.opts.StreamWriteTimeout,
		format: p.format, name: fmt.Sprintf("tapvault-message-%016x", id),
	}
	var n uint64
	d, err := s.store.MessagePackets(r.Context(), id, func(pk *query.Packet) error {
		n++
		return ps.write(pk)
	})
	infoOf(r).packets = n
	if errors.Is(err, query.ErrNoMessage) {
		writeError(w, r, http.StatusNotFound, err.Error())
		return
	}
	if err == nil && ps.pw == nil {
		err = ps.start(1)
	}
	if err == nil {
		err = ps.flush()
	}
	if err == nil {
		if d.Missing > 0 || d.NotSaved > 0 {
			s.log.Info("api drill-down incomplete", "detail", d.String())
		}
		return
	}
	if !ps.sent {
		switch {
		case r.Context().Err() != nil:
			infoOf(r).status = statusClientGone
		case errors.Is(err, query.ErrMixedLinkTypes):
			writeError(w, r, http.StatusUnprocessableEntity, err.Error())
		default:
			writeError(w, r, http.StatusInternalServerError, "drill-down: "+err.Error())
		}
		return
	}
	panic(http.ErrAbortHandler)
}

// messagePacketsID returns the {id} of pathMessages/{id}/packets.
func messagePacketsID(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, pathMessages+"/")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, suffixPackets)
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}
