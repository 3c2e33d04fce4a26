package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"tapvault/msgquery"
	"tapvault/query"
)

// pathDiagnose is the verdict of tapvault diagnose (docs/api.md).
const pathDiagnose = "/api/v1/diagnose"

// diagnoseParams reads the parameters of pathDiagnose: from and to
// (through parseParams), server, slow_network, slow_server, min_count and
// tier_window.
func (s *Server) diagnoseParams(r *http.Request) (from, to, window int64, opts msgquery.DiagnoseOptions, err error) {
	p, err := s.parseParams(r, "from", "to", "server", "slow_network", "slow_server", "min_count", "tier_window")
	if err != nil {
		return 0, 0, 0, opts, err
	}
	q, _ := parseQuery(r.URL.RawQuery) // parseParams checked it
	from, to, window = p.req.From, p.req.To, int64(10*time.Second)
	if v := q["server"]; len(v) == 1 {
		if opts.Server, err = msgquery.ParseServerSel(v[0]); err != nil {
			return 0, 0, 0, opts, err
		}
	}
	for _, d := range []struct {
		name string
		dst  *int64
		max  time.Duration
	}{{"slow_network", &opts.SlowNetwork, time.Hour}, {"slow_server", &opts.SlowServer, time.Hour}, {"tier_window", &window, time.Hour}} {
		v := q[d.name]
		if len(v) != 1 {
			continue
		}
		x, err := time.ParseDuration(v[0])
		if err != nil || x <= 0 || x > d.max {
			return 0, 0, 0, opts, fmt.Errorf("%s %q: want a duration up to 1h, like 20ms", d.name, v[0])
		}
		*d.dst = int64(x)
	}
	if v := q["min_count"]; len(v) == 1 {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > 1_000_000 {
			return 0, 0, 0, opts, fmt.Errorf("min_count %q: want a whole number from 1 to 1000000", v[0])
		}
		opts.MinCount = n
	}
	return from, to, window, opts, nil
}

// handleDiagnose answers the verdict over the window as one JSON object
// (the object of tapvault diagnose --json).
func (s *Server) handleDiagnose(w http.ResponseWriter, r *http.Request) {
	from, to, window, opts, err := s.diagnoseParams(r)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	key := answerKey(pathDiagnose, s.store.Dir, i64(from), i64(to), i64(window), opts.Server.String(),
		i64(opts.SlowNetwork), i64(opts.SlowServer), strconv.Itoa(opts.MinCount))
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
		d  *msgquery.Diagnosis
		ws []error
	)
	query.RunLowPriority(func() {
		d, ws, err = query.Diagnose(r.Context(), s.store.Dir, from, to, window, opts)
	})
	for _, wr := range ws {
		s.log.Warn("api diagnose: skipped part of the message store", "err", wr)
	}
	if err != nil {
		if r.Context().Err() != nil {
			infoOf(r).status = statusClientGone
			return
		}
		writeError(w, r, http.StatusInternalServerError, "diagnose: "+err.Error())
		return
	}
	s.keep(w, key, state, "application/json", msgquery.AppendDiagnosisJSON(nil, d), len(ws))
}
