package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"tapvault/clocklog"
	"tapvault/hops"
	"tapvault/msgquery"
	"tapvault/query"
)

// One exchange across capture points (issue 16 §2): the server's store is
// point A; ServerOptions.Peers are other points' stores on this machine
// (tapvault serve --peer NAME=DIR). /api/v1/messages/{id}/across?peer=NAME
// finds the exchange in the peer's store by its packets and answers both
// records, the packets with their time at each point, and the network time
// by hop; /api/v1/peers lists the peers.

const (
	pathPeers    = "/api/v1/peers"
	suffixAcross = "/across"
)

// messageAcrossID extracts {id} from /api/v1/messages/{id}/across.
func messageAcrossID(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, pathMessages+"/")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, suffixAcross)
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

func (s *Server) peerNames() []string {
	names := make([]string, 0, len(s.opts.Peers))
	for n := range s.opts.Peers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	if _, err := s.parseParams(r); err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	s.writeJSON(w, r, struct {
		Name  string   `json:"name"`
		Peers []string `json:"peers"`
	}{s.opts.PointName, s.peerNames()})
}

type acrossStep struct {
	ToServer bool   `json:"to_server"`
	AtA      int64  `json:"at_a_ns"` // 0: not seen at A
	AtB      int64  `json:"at_b_ns"`
	Payload  int    `json:"payload"`
	Flags    string `json:"flags"`
}

func (s *Server) handleAcross(w http.ResponseWriter, r *http.Request, idText string) {
	if _, err := s.parseParams(r, "peer"); err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	id, err := query.ParseMessageID(idText)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	name := r.URL.Query().Get("peer")
	if name == "" && len(s.opts.Peers) == 1 {
		name = s.peerNames()[0]
	}
	peer, ok := s.opts.Peers[name]
	if !ok {
		writeError(w, r, http.StatusBadRequest, fmt.Sprintf("peer %q: not one of this server's capture points %v (tapvault serve --peer NAME=DIR)", name, s.peerNames()))
		return
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	var x *hops.Across
	query.RunLowPriority(func() { x, err = hops.ExchangeAcross(r.Context(), s.store, id, peer, 0) })
	switch {
	case errors.Is(err, query.ErrNoMessage), errors.Is(err, hops.ErrNotAcross):
		writeError(w, r, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, r, http.StatusInternalServerError, "across: "+err.Error())
		return
	}
	ea, _ := clocklog.Read(s.store.Dir)
	eb, _ := clocklog.Read(peer.Dir)
	clock := clocklog.Compare(ea, eb)
	ladder, ok := s.acrossLadder(w, r, id, name, x, ea)
	if !ok {
		return
	}
	steps := make([]acrossStep, len(x.Steps))
	for i, st := range x.Steps {
		steps[i] = acrossStep{ToServer: st.ToServer, AtA: st.At[0], AtB: st.At[1], Payload: st.Payload, Flags: TCPFlagString(st.Flags)}
	}
	s.writeJSON(w, r, struct {
		A        string          `json:"a"`
		B        string          `json:"b"`
		RecordA  json.RawMessage `json:"record_a"`
		RecordB  json.RawMessage `json:"record_b"`
		Reversed bool            `json:"reversed"`
		ClientA  int64           `json:"client_a_ns"`
		AB       int64           `json:"a_b_ns"`
		BServer  int64           `json:"b_server_ns"`
		Matched  int             `json:"matched"`
		// The two stores' clocks (clocklog): known, and the uncertainty
		// of the between-points figures; a_b_ns below it is not a figure.
		ClockKnown  bool         `json:"clock_known"`
		Uncertainty int64        `json:"uncertainty_ns"`
		Clock       string       `json:"clock"`
		Steps       []acrossStep `json:"steps"`
		// Ladder: the exchange at this point and every peer that holds
		// it, as one ladder.
		Ladder AcrossLadder `json:"ladder"`
	}{s.opts.PointName, name, msgquery.AppendJSON(nil, x.RecordA, nil), msgquery.AppendJSON(nil, x.RecordB, nil),
		x.Reversed, x.ClientA, x.AB, x.BServer, x.Matched, clock.Known, clock.Uncertainty.Nanoseconds(), clock.Why, steps, ladder})
}

// acrossLadder finds the exchange at the server's other peers too (x is
// what the asked one, name, holds) and merges every point's into one
// ladder; ea is the server's own clock log. It writes the error and
// answers false when the request's context ends.
func (s *Server) acrossLadder(w http.ResponseWriter, r *http.Request, id uint64, name string, x *hops.Across, ea []clocklog.Entry) (AcrossLadder, bool) {
	names := []string{s.opts.PointName, name}
	xs := []*hops.Across{x}
	logs := [][]clocklog.Entry{ea, nil}
	logs[1], _ = clocklog.Read(s.opts.Peers[name].Dir)
	var notFound, missing []string
	for _, n := range s.peerNames() {
		if n == name {
			continue
		}
		st := s.opts.Peers[n]
		var y *hops.Across
		var err error
		query.RunLowPriority(func() { y, err = hops.ExchangeAcross(r.Context(), s.store, id, st, 0) })
		switch {
		case r.Context().Err() != nil:
			writeError(w, r, http.StatusServiceUnavailable, "across: "+r.Context().Err().Error())
			return AcrossLadder{}, false
		case errors.Is(err, hops.ErrNotAcross):
			notFound = append(notFound, n)
			continue
		case err != nil:
			s.log.Warn("api: a peer left out of an exchange's ladder", "peer", n, "err", err)
			missing = append(missing, n)
			continue
		}
		e, _ := clocklog.Read(st.Dir)
		names, xs, logs = append(names, n), append(xs, y), append(logs, e)
	}
	l := hops.MergeAcross(xs)
	recs := make([]json.RawMessage, len(l.Records))
	for i, rec := range l.Records {
		recs[i] = msgquery.AppendJSON(nil, rec, nil)
	}
	return NewAcrossLadder(l, names, recs, notFound, missing, func(p, q int) LadderHop {
		c := clocklog.Compare(logs[p], logs[q])
		return LadderHop{ClockKnown: c.Known, UncertaintyNs: c.Uncertainty.Nanoseconds(), Clock: c.Why}
	}), true
}

// AcrossLadder is the across answers' "ladder" (a server's with its peers,
// the fleet centre's with its sensors): the exchange at every point that
// holds it as one ladder, the points from the client's side to the
// server's (hops.MergeAcross).
type AcrossLadder struct {
	Points []LadderPoint `json:"points"`
	// The round trips client <-> the first point and the last point <->
	// server, ns (-1 unknown); the ones between adjacent points are Hops.
	ClientNs int64        `json:"client_ns"`
	ServerNs int64        `json:"server_ns"`
	Hops     []LadderHop  `json:"hops"`
	Steps    []LadderStep `json:"steps"`
	// NotFound names the points searched that hold no record of it,
	// Missing those that could not be searched.
	NotFound []string `json:"not_found"`
	Missing  []string `json:"missing"`
}

// LadderPoint is one point of the ladder and its record of the exchange.
type LadderPoint struct {
	Name   string          `json:"name"`
	Record json.RawMessage `json:"record"`
}

// LadderHop is the round trip between two adjacent points, with their
// clocks' statement: a figure no larger than a known uncertainty is
// refused (rtt_ns -1, below_uncertainty), as the pair's a_b_ns.
type LadderHop struct {
	From string `json:"from"`
	To   string `json:"to"`
	RTT  int64  `json:"rtt_ns"` // -1: unknown or refused
	// ClockKnown: the two clocks' uncertainty is known; UncertaintyNs
	// is then their errors added.
	ClockKnown    bool   `json:"clock_known"`
	UncertaintyNs int64  `json:"uncertainty_ns"`
	Clock         string `json:"clock"`
	// Uncertain: nothing bounds the clocks, or the figure is no larger
	// than the uncertainty.
	Uncertain        bool `json:"uncertain"`
	BelowUncertainty bool `json:"below_uncertainty"`
}

// LadderStep is one packet of the ladder: its time at each point, in the
// order of points (0: not seen there).
type LadderStep struct {
	ToServer bool    `json:"to_server"`
	At       []int64 `json:"at_ns"`
	Payload  int     `json:"payload"`
	Flags    string  `json:"flags"`
}

// NewAcrossLadder writes l as the answers' ladder: names are the points
// MergeAcross was given (0 the record's own), recs their records in
// ladder order, and clock(p, q) states the clocks of two of them (by
// MergeAcross's index), with From, To, RTT, Uncertain and
// BelowUncertainty left for this to fill.
func NewAcrossLadder(l *hops.Ladder, names []string, recs []json.RawMessage, notFound, missing []string, clock func(p, q int) LadderHop) AcrossLadder {
	a := AcrossLadder{ClientNs: l.Client, ServerNs: l.Server, Points: make([]LadderPoint, len(l.Points)),
		Hops: make([]LadderHop, len(l.Hops)), Steps: make([]LadderStep, len(l.Rungs)),
		NotFound: append([]string{}, notFound...), Missing: append([]string{}, missing...)}
	for i, k := range l.Points {
		a.Points[i] = LadderPoint{Name: names[k], Record: recs[i]}
	}
	for i, rtt := range l.Hops {
		h := clock(l.Points[i], l.Points[i+1])
		h.From, h.To, h.RTT = names[l.Points[i]], names[l.Points[i+1]], rtt
		h.Uncertain = !h.ClockKnown || rtt >= 0 && rtt <= h.UncertaintyNs
		if !h.ClockKnown {
			h.UncertaintyNs = -1
		}
		if h.ClockKnown && rtt >= 0 && rtt <= h.UncertaintyNs {
			h.RTT, h.BelowUncertainty = -1, true
		}
		a.Hops[i] = h
	}
	for i, r := range l.Rungs {
		a.Steps[i] = LadderStep{ToServer: r.ToServer, At: r.At, Payload: r.Payload, Flags: TCPFlagString(r.Flags)}
	}
	return a
}

// TCPFlagString is tcpdump's flag letters (S, F, R, P, . for ACK); the
// fleet centre's across answer writes its steps' flags with it too.
func TCPFlagString(f uint8) string {
	var b []byte
	for _, c := range []struct {
		bit uint8
		l   byte
	}{{0x02, 'S'}, {0x01, 'F'}, {0x04, 'R'}, {0x08, 'P'}, {0x20, 'U'}, {0x10, '.'}} {
		if f&c.bit != 0 {
			b = append(b, c.l)
		}
	}
	return string(b)
}
