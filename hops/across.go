package hops

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"tapvault/analytics"
	"tapvault/msgstore"
	"tapvault/packet"
	"tapvault/query"
)

// Across is one exchange as two capture points saw it: both records, its
// packets with their times at each point, and its network time by hop.
type Across struct {
	IDA, IDB         uint64
	RecordA, RecordB *analytics.Record
	Steps            []Step
	// Reversed: B is nearer the client than A.
	Reversed bool
	// ClientA, AB and BServer are the round trips client <-> (the point
	// nearer the client), between the points, and (the point nearer the
	// server) <-> server, ns; -1 where unknown.
	ClientA, AB, BServer int64
	Matched              int // packets seen at both points
}

// ErrNotAcross is returned when the other point holds no record of the
// exchange (no record there shares a packet with it).
var ErrNotAcross = errors.New("the other capture point holds no record of this exchange")

// MaxCandidates bounds the records at B whose packets are read to find the
// exchange's: those nearest in time to A's first request packet.
const MaxCandidates = 32

// ExchangeAcross finds the exchange with ID id of store a in store b (the
// record at b that shares the most packets with it, among b's records of
// the same protocol within maxDelay of it) and merges what both saw.
func ExchangeAcross(ctx context.Context, a *query.Store, id uint64, b *query.Store, maxDelay time.Duration) (*Across, error) {
	if maxDelay <= 0 {
		maxDelay = DefaultMaxDelay
	}
	pa, da, err := drill(ctx, a, id)
	if err != nil {
		return nil, err
	}
	ra := da.Record
	from, to := query.RecordSpan(ra)
	md := maxDelay.Nanoseconds()
	rd, err := msgstore.OpenReader(b.Dir)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	type cand struct {
		id   uint64
		dist int64
	}
	var cands []cand
	err = rd.Scan(ctx, msgstore.Query{From: from - md, To: to + md, Protos: []string{ra.Proto}, NoDetail: true}, func(r *analytics.Record) error {
		if r.Class == analytics.ClassFlow || !strings.EqualFold(r.Proto, ra.Proto) {
			return nil
		}
		dist := r.ReqFirst - ra.ReqFirst
		if dist < 0 {
			dist = -dist
		}
		if dist <= md {
			cands = append(cands, cand{r.ID, dist})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(cands, func(x, y cand) int { return cmpI64(x.dist, y.dist) })
	if len(cands) > MaxCandidates {
		cands = cands[:MaxCandidates]
	}
	ids := make([]uint64, len(cands))
	for i, c := range cands {
		ids[i] = c.id
	}
	return FindAcross(ctx, ra, pa, ids, func(ctx context.Context, id uint64) (*analytics.Record, []Seen, error) {
		pb, db, err := drill(ctx, b, id)
		if err != nil {
			return nil, nil, nil // damaged or gone since the scan: not this one
		}
		return db.Record, pb, nil
	})
}

// FindAcross finds, among the candidate records at B (IDs, nearest in time
// to ra first; at most MaxCandidates are read), the one whose packets share
// the most keys with pa, ra's packets at A, and merges what both points
// saw. fetch reads a candidate's record and packets; it returns a nil
// record to pass one over (gone since it was listed), and an error to stop.
// ExchangeAcross reads both from local stores; the fleet's centre fetches
// them from two sensors.
func FindAcross(ctx context.Context, ra *analytics.Record, pa []Seen, cands []uint64, fetch func(ctx context.Context, id uint64) (*analytics.Record, []Seen, error)) (*Across, error) {
	keys := map[uint64]bool{}
	var dec packet.Decoder
	var d packet.Decoded
	for _, s := range pa {
		dec.Decode(s.Data, s.LinkType, &d)
		if k, ok := Key(&d, s.Data); ok {
			keys[k] = true
		}
	}
	if len(cands) > MaxCandidates {
		cands = cands[:MaxCandidates]
	}
	var best []Seen
	var bestRec *analytics.Record
	bestN := 0
	for _, id := range cands {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rb, pb, err := fetch(ctx, id)
		if err != nil {
			return nil, err
		}
		if rb == nil {
			continue
		}
		n := 0
		for _, s := range pb {
			dec.Decode(s.Data, s.LinkType, &d)
			if k, ok := Key(&d, s.Data); ok && keys[k] {
				n++
			}
		}
		if n > bestN {
			best, bestRec, bestN = pb, rb, n
			if n == len(keys) {
				break
			}
		}
	}
	if bestRec == nil {
		return nil, ErrNotAcross
	}
	x := &Across{IDA: ra.ID, IDB: bestRec.ID, RecordA: ra, RecordB: bestRec, Matched: bestN}
	x.Steps, x.Reversed = LadderSteps(pa, best, Endpoints{Src: ra.Client, Dst: ra.Server, Proto: ra.Transport})
	var req, resp []int64
	for _, s := range x.Steps {
		if s.At[0] == 0 || s.At[1] == 0 {
			continue
		}
		dl := s.At[1] - s.At[0]
		if dl < 0 {
			dl = -dl
		}
		if s.ToServer {
			req = append(req, dl)
		} else {
			resp = append(resp, dl)
		}
	}
	x.AB = -1
	if len(req) > 0 && len(resp) > 0 {
		x.AB = statsOf(req).Median + statsOf(resp).Median
	}
	x.ClientA, x.BServer = ra.ClientNet, bestRec.Network
	if x.Reversed {
		x.ClientA, x.BServer = bestRec.ClientNet, ra.Network
	}
	return x, nil
}

// drill reads the record id's packets from st, copied.
func drill(ctx context.Context, st *query.Store, id uint64) ([]Seen, query.MessageDrill, error) {
	var out []Seen
	d, err := st.MessagePackets(ctx, id, func(p *query.Packet) error {
		out = append(out, Seen{TS: p.TS, LinkType: p.LinkType, Data: slices.Clone(p.Data)})
		return nil
	})
	return out, d, err
}
