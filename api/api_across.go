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
	}{s.opts.PointName, name, msgquery.AppendJSON(nil, x.RecordA, nil), msgquery.AppendJSON(nil, x.RecordB, nil),
		x.Reversed, x.ClientA, x.AB, x.BServer, x.Matched, clock.Known, clock.Uncertainty.Nanoseconds(), clock.Why, steps})
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
