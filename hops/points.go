package hops

import (
	"slices"

	"tapvault/analytics"
)

// Ladder is one exchange as n capture points saw it: one list of its
// packets with each packet's time at every point that saw it, the points
// in order from the client's side to the server's, and the network time
// between each two adjacent points.
type Ladder struct {
	// Points are the points in ladder order, client's side first, as
	// indexes into MergeAcross's points: 0 is the record's own point (A
	// of every Across), k > 0 the B of the k-th Across given.
	Points []int
	// Records are each point's record of the exchange, in ladder order.
	Records []*analytics.Record
	// Rungs are the packets, in time order.
	Rungs []Rung
	// Client is the round trip between the client and the first point
	// (that point's record's ClientNet), Server the one between the last
	// point and the server (its record's Network); Hops[i] the one between
	// the points i and i+1 of the ladder: the median one-way delay of the
	// packets towards the server that both saw, plus that of the packets
	// towards the client. -1 where unknown.
	Client, Server int64
	Hops           []int64
}

// Rung is one packet of a Ladder.
type Rung struct {
	ToServer bool
	// At is its time at each point, in ladder order (ns); 0: not seen
	// there.
	At      []int64
	Payload int
	Flags   uint8
}

// MergeAcross merges what every point saw of one exchange into a Ladder.
// xs are the exchange as the record's own point (A) and each other point
// saw it (FindAcross or ExchangeAcross of the same record of A against
// each other point): the matching is theirs, against A's packets. A packet
// A saw is one rung with its time at every point that matched it; a
// packet A did not see is joined across the other points by its key
// (Key; one seen more than once at a point is left apart), so a packet A
// missed but two others saw is still one rung.
//
// The order of the points is the sign and size of their one-way delay from
// A: a packet towards the server reaches a point nearer the client before
// A, so the median, over the packets towards the server that both saw, of
// (its time at the point - its time at A) is negative there, 0 at A, and
// grows towards the server. A point that shares no packet towards the
// server with A is placed by the packets towards the client, whose delay
// has the opposite sign. The delays come from two clocks: an offset
// between them larger than the delays between the points can misplace a
// point, and the figure between those points is then below their clocks'
// uncertainty, which the answers refuse as a figure.
func MergeAcross(xs []*Across) *Ladder {
	if len(xs) == 0 {
		return nil
	}
	n := len(xs) + 1
	// Rows in A's packet order, then the packets A did not see.
	var rows []Rung
	byA := map[int]int{}      // A's packet index + 1 -> row
	byKey := map[uint64]int{} // a key of a packet A did not see -> row
	row := func(s Step) *Rung {
		rows = append(rows, Rung{ToServer: s.ToServer, At: make([]int64, n), Payload: s.Payload, Flags: s.Flags})
		return &rows[len(rows)-1]
	}
	for k, x := range xs {
		if x.IDA != xs[0].IDA {
			panic("BUG: MergeAcross of different records")
		}
		seenKey := map[uint64]bool{}
		for _, s := range x.Steps {
			switch {
			case s.ia > 0:
				i, ok := byA[s.ia]
				if !ok {
					i = len(rows)
					byA[s.ia] = i
					row(s).At[0] = s.At[0]
				}
				rows[i].At[k+1] = s.At[1]
			case s.hasKey && !seenKey[s.keyB]:
				seenKey[s.keyB] = true
				i, ok := byKey[s.keyB]
				if !ok {
					i = len(rows)
					byKey[s.keyB] = i
					row(s)
				}
				rows[i].At[k+1] = s.At[1]
			default:
				row(s).At[k+1] = s.At[1]
			}
		}
	}

	// The points' order: the median delay from A (the doc comment above).
	pos := make([]int64, n)
	for k := 1; k < n; k++ {
		var req, resp []int64
		for _, r := range rows {
			if r.At[0] == 0 || r.At[k] == 0 {
				continue
			}
			if r.ToServer {
				req = append(req, r.At[k]-r.At[0])
			} else {
				resp = append(resp, r.At[0]-r.At[k])
			}
		}
		switch {
		case len(req) > 0:
			pos[k] = statsOf(req).Median
		case len(resp) > 0:
			pos[k] = statsOf(resp).Median
		}
	}
	l := &Ladder{Points: make([]int, n), Records: make([]*analytics.Record, n), Hops: make([]int64, n-1)}
	for k := range l.Points {
		l.Points[k] = k
	}
	slices.SortStableFunc(l.Points, func(p, q int) int { return cmpI64(pos[p], pos[q]) })
	rec := func(k int) *analytics.Record {
		if k == 0 {
			return xs[0].RecordA
		}
		return xs[k-1].RecordB
	}
	for i, k := range l.Points {
		l.Records[i] = rec(k)
	}
	for i := range rows {
		at := make([]int64, n)
		for j, k := range l.Points {
			at[j] = rows[i].At[k]
		}
		rows[i].At = at
	}
	// Time order: by the time at A where A saw it, as LadderSteps orders
	// a pair's, else at the first point in the ladder that saw it.
	first := func(r Rung) int64 {
		for j, k := range l.Points {
			if k == 0 && r.At[j] != 0 {
				return r.At[j]
			}
		}
		for _, t := range r.At {
			if t != 0 {
				return t
			}
		}
		return 0
	}
	slices.SortStableFunc(rows, func(x, y Rung) int { return cmpI64(first(x), first(y)) })
	l.Rungs = rows

	// The hops: with the order known the delays are signed, so an offset
	// between two clocks adds to one direction what it takes from the
	// other and the round trip holds it out.
	for i := range l.Hops {
		var req, resp []int64
		for _, r := range rows {
			p, q := r.At[i], r.At[i+1]
			if p == 0 || q == 0 {
				continue
			}
			if r.ToServer {
				req = append(req, q-p)
			} else {
				resp = append(resp, p-q)
			}
		}
		l.Hops[i] = -1
		if len(req) > 0 && len(resp) > 0 {
			// Below 0 only by jitter on a hop of no measurable length.
			l.Hops[i] = max(statsOf(req).Median+statsOf(resp).Median, 0)
		}
	}
	l.Client, l.Server = -1, -1
	if r := l.Records[0]; r != nil {
		l.Client = r.ClientNet
	}
	if r := l.Records[n-1]; r != nil {
		l.Server = r.Network
	}
	return l
}
