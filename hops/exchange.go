package hops

import (
	"slices"

	"tapvault/analytics"
)

// Exchange is where one exchange's network time went, from its records at
// both points: A nearer the client, B nearer the server (or the other way
// round: the packets' delays tell which, and Reversed says so).
type Exchange struct {
	ID  uint64 // the record at A
	BID uint64 // the record of the same exchange at B; 0 when B holds none
	// ClientA is the round trip between the client and A (A's record's
	// ClientNet), AB the round trip between the points (the request's delay
	// one way plus the response's the other), BServer the round trip
	// between B and the server (B's record's Network); -1 where unknown.
	ClientA, AB, BServer int64
	// Req and Resp are the one-way delays of the request's and the
	// response's packets between the points (absolute values).
	Req, Resp Stats
	// Reversed: the request reached B before A, so B is the client's side
	// and ClientA/BServer come from the other record.
	Reversed bool
	// BelowUncertainty: AB is smaller than the pair's clock uncertainty.
	BelowUncertainty bool
}

// Exchanges attributes the network time of every exchange record at A that
// has packets seen at both points. recsB are B's records over the same
// time: the one whose first request packet is the same packet as A's is
// the same exchange (its times are B's).
func (m *Matcher) Exchanges(recsA, recsB []*analytics.Record) []Exchange {
	pairs, _ := m.Pairs()
	byFirst := make(map[int64]*analytics.Record, len(recsB))
	for _, r := range recsB {
		if r.Class != analytics.ClassFlow && r.ReqFirst > 0 {
			byFirst[r.ReqFirst] = r
		}
	}
	var out []Exchange
	for _, r := range recsA {
		if r.Class == analytics.ClassFlow || r.ReqFirst <= 0 || r.RespLast <= 0 {
			continue
		}
		req := Endpoints{Src: r.Client, Dst: r.Server, Proto: r.Transport}
		resp := req.reverse()
		// Pairs are in A's time order: the exchange's are a run of them.
		i, _ := slices.BinarySearchFunc(pairs, r.ReqFirst, func(p Pair, t int64) int {
			switch {
			case p.AT < t:
				return -1
			case p.AT > t:
				return 1
			}
			return 0
		})
		var rq, rs []int64
		var rb *analytics.Record
		for ; i < len(pairs) && pairs[i].AT <= r.RespLast; i++ {
			p := &pairs[i]
			switch {
			case p.AFlow == req && p.AT <= r.ReqLast:
				rq = append(rq, p.Delay())
				if p.AT == r.ReqFirst {
					rb = byFirst[p.BT]
				}
			case p.AFlow == resp && p.AT >= r.RespFirst:
				rs = append(rs, p.Delay())
			}
		}
		if len(rq) == 0 || len(rs) == 0 {
			continue
		}
		x := Exchange{ID: r.ID, ClientA: r.ClientNet, BServer: -1}
		sq, ss := statsOf(rq), statsOf(rs)
		if sq.Median < 0 {
			x.Reversed = true
			neg(rq)
			sq = statsOf(rq)
		} else {
			neg(rs)
		}
		ss = statsOf(rs)
		x.Req, x.Resp = sq, ss
		x.AB = sq.Median + ss.Median
		x.BelowUncertainty = x.AB < m.opts.Uncertainty.Nanoseconds()
		if rb != nil {
			x.BID = rb.ID
			x.BServer = rb.Network
			if x.Reversed {
				// B is the client's side: its client leg is the client's,
				// and A's server leg the server's.
				x.ClientA, x.BServer = rb.ClientNet, r.Network
			}
		}
		out = append(out, x)
	}
	return out
}

func neg(d []int64) {
	for i := range d {
		d[i] = -d[i]
	}
}
