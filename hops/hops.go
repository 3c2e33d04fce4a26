// Package hops measures the time between two capture points from the
// packets both of them saw: the one-way delay of each packet from one point
// to the other, per flow and direction, and, for an exchange seen at both
// points, where its network time went (client ↔ A, A ↔ B, B ↔ server).
// An exchange seen at more points is their pairs with one of them
// (MergeAcross): one ladder, the points in order from the client's side.
//
// Packets are matched by the bytes a path does not rewrite: the IPv4
// identification, the TCP sequence and acknowledgement numbers and flags,
// the payload's length and its first bytes. Addresses and ports are left
// out, so a NAT between the points (DNAT, MASQUERADE) does not break the
// match. A key seen more than once at either point (an IPv6 retransmission,
// which has no IP ID to tell it apart) is ambiguous and left out, counted.
//
// The two timestamps come from two clocks unless both points stamp with one
// host's clock; a figure smaller than the pair's clock uncertainty is
// flagged and not reported as a figure (Options.Uncertainty).
//
// It must not: keep payload bytes (only their hash), or guess a direction
// from addresses (NAT rewrites them): a packet's direction between the
// points is the sign of its delay, taken per flow and direction at A.
package hops

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"tapvault/packet"
)

// payloadPrefix is how many payload bytes go into a packet's key: enough to
// tell apart two segments of the same length at the same sequence number
// (which TCP only sends on a retransmission, whose IPv4 ID differs), and
// short enough to survive a small snap length at either point.
const payloadPrefix = 64

// Key returns a packet's invariant key, and false for packets that carry
// none worth matching (non-IP, fragments past the first, or IPv6 without
// a transport header).
func Key(d *packet.Decoded, data []byte) (uint64, bool) {
	if d.IPVer == 0 || d.FragOff != 0 {
		return 0, false
	}
	var b [40]byte
	b[0] = d.IPVer
	b[1] = d.Proto
	n := 2
	if d.IPVer == 4 {
		binary.LittleEndian.PutUint32(b[n:], d.FragID)
		n += 4
	}
	switch d.Proto {
	case 6:
		if d.L4Off < 0 {
			return 0, false
		}
		binary.LittleEndian.PutUint32(b[n:], d.Seq)
		binary.LittleEndian.PutUint32(b[n+4:], d.Ack)
		b[n+8] = d.TCPFlags
		n += 9
	case 17:
		if d.L4Off < 0 {
			return 0, false
		}
	case 1, 58:
		b[n], b[n+1] = d.ICMPType, d.ICMPCode
		n += 2
	default:
		if d.IPVer == 6 {
			return 0, false
		}
	}
	binary.LittleEndian.PutUint32(b[n:], uint32(d.PayloadLen))
	n += 4
	h := xxhash.New()
	h.Write(b[:n])
	if d.PayloadOff >= 0 && d.PayloadLen > 0 {
		end := int(d.PayloadOff) + min(int(d.PayloadLen), payloadPrefix)
		if end <= len(data) {
			h.Write(data[d.PayloadOff:end])
		}
	}
	return h.Sum64(), true
}

// Endpoints is a packet's addresses and ports as one point saw them.
type Endpoints struct {
	Src, Dst netip.AddrPort
	Proto    uint8
}

func (e Endpoints) String() string {
	return fmt.Sprintf("%s %s > %s", protoName(e.Proto), e.Src, e.Dst)
}

func (e Endpoints) reverse() Endpoints { return Endpoints{Src: e.Dst, Dst: e.Src, Proto: e.Proto} }

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmp6"
	}
	return fmt.Sprintf("ip-proto-%d", p)
}

// EndpointsOf returns d's endpoints.
func EndpointsOf(d *packet.Decoded) Endpoints {
	src := netip.AddrFrom16(d.Src).Unmap()
	dst := netip.AddrFrom16(d.Dst).Unmap()
	return Endpoints{Src: netip.AddrPortFrom(src, d.SrcPort), Dst: netip.AddrPortFrom(dst, d.DstPort), Proto: d.Proto}
}

// obs is one packet at one point: when, and which of the point's flows and
// directions it belongs to.
type obs struct {
	ts   int64
	flow int32 // index into Matcher.flows[point]
	n    int32 // times the key was seen at this point
}

// Options tune a match.
type Options struct {
	// MaxDelay is the largest one-way delay between the points that counts
	// as the same packet (default 2 s): a key seen at both points further
	// apart is a coincidence, not a packet in flight.
	MaxDelay time.Duration
	// Uncertainty is the pair's clock uncertainty: the sum of both points'
	// clock errors, 0 when one host's clock stamped both. A figure below it
	// is flagged, not reported.
	Uncertainty time.Duration
	// MaxPackets bounds the packets kept per point (default 5 000 000,
	// about 200 MB); past it Add fails, so a match never runs the machine
	// out of memory: narrow the time range or the filter.
	MaxPackets int
}

// Default option values.
const (
	DefaultMaxDelay   = 2 * time.Second
	DefaultMaxPackets = 5_000_000
)

// Point names the two capture points.
type Point uint8

const (
	A Point = iota
	B
)

// Matcher collects both points' packets and matches them.
type Matcher struct {
	opts  Options
	keys  [2]map[uint64]obs
	flows [2][]Endpoints
	fidx  [2]map[Endpoints]int32
	seen  [2]int // packets with a key
	skip  [2]int // packets without one
}

// ErrTooMany is returned by Add past Options.MaxPackets.
type ErrTooMany struct {
	Point Point
	Max   int
}

func (e *ErrTooMany) Error() string {
	return fmt.Sprintf("more than %d packets at point %c: narrow the time range or the filter (or raise the limit)", e.Max, 'A'+byte(e.Point))
}

// NewMatcher returns a Matcher.
func NewMatcher(opts Options) *Matcher {
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.MaxPackets <= 0 {
		opts.MaxPackets = DefaultMaxPackets
	}
	m := &Matcher{opts: opts}
	for p := range 2 {
		m.keys[p] = make(map[uint64]obs)
		m.fidx[p] = make(map[Endpoints]int32)
	}
	return m
}

// Add records a packet seen at point p at time ts (ns).
func (m *Matcher) Add(p Point, ts int64, d *packet.Decoded, data []byte) error {
	k, ok := Key(d, data)
	if !ok {
		m.skip[p]++
		return nil
	}
	if o, dup := m.keys[p][k]; dup {
		o.n++
		m.keys[p][k] = o
		return nil
	}
	if len(m.keys[p]) >= m.opts.MaxPackets {
		return &ErrTooMany{Point: p, Max: m.opts.MaxPackets}
	}
	m.seen[p]++
	e := EndpointsOf(d)
	fi, ok := m.fidx[p][e]
	if !ok {
		fi = int32(len(m.flows[p]))
		m.flows[p] = append(m.flows[p], e)
		m.fidx[p][e] = fi
	}
	m.keys[p][k] = obs{ts: ts, flow: fi, n: 1}
	return nil
}

// Pair is one packet seen at both points.
type Pair struct {
	AT, BT int64 // its time at A and at B
	AFlow  Endpoints
	BFlow  Endpoints
}

// Delay is BT - AT: positive when the packet went from A to B.
func (p *Pair) Delay() int64 { return p.BT - p.AT }

// Stats summarise one-way delays (ns).
type Stats struct {
	N                          int
	Min, P10, Median, P90, Max int64
}

func statsOf(d []int64) Stats {
	if len(d) == 0 {
		return Stats{}
	}
	slices.Sort(d)
	q := func(f float64) int64 { return d[int(f*float64(len(d)-1)+0.5)] }
	return Stats{N: len(d), Min: d[0], P10: q(0.1), Median: q(0.5), P90: q(0.9), Max: d[len(d)-1]}
}

// Spread is P90 - P10.
func (s Stats) Spread() int64 { return s.P90 - s.P10 }

// Direction is one flow direction between the points.
type Direction struct {
	// AFlow is the direction as A saw it (source > destination), BFlow as B
	// saw it: they differ across a NAT.
	AFlow, BFlow Endpoints
	// From is the point the packets passed first: A for A → B.
	From Point
	// Delay is the one-way delay from From to the other point.
	Delay Stats
	// BelowUncertainty is set when the median delay is smaller than the
	// pair's clock uncertainty: the figure is not to be trusted.
	BelowUncertainty bool
}

// Report is the result of a match.
type Report struct {
	Directions  []Direction
	Total       [2]Stats // all packets from A to B, and from B to A
	Packets     [2]int   // packets with a key at A and at B
	Skipped     [2]int   // packets without one (non-IP, later fragments)
	Matched     int
	Ambiguous   int // keys seen more than once at a point
	Uncertainty time.Duration
}

// Pairs returns every matched packet, in A's time order. A key seen more
// than once at either point, or at both points further apart than
// MaxDelay, is left out.
func (m *Matcher) Pairs() (pairs []Pair, ambiguous int) {
	max := m.opts.MaxDelay.Nanoseconds()
	for k, a := range m.keys[A] {
		b, ok := m.keys[B][k]
		if !ok {
			continue
		}
		if a.n > 1 || b.n > 1 {
			ambiguous++
			continue
		}
		if d := b.ts - a.ts; d > max || d < -max {
			continue
		}
		pairs = append(pairs, Pair{AT: a.ts, BT: b.ts, AFlow: m.flows[A][a.flow], BFlow: m.flows[B][b.flow]})
	}
	slices.SortFunc(pairs, func(x, y Pair) int {
		switch {
		case x.AT < y.AT:
			return -1
		case x.AT > y.AT:
			return 1
		}
		return 0
	})
	return pairs, ambiguous
}

// Report matches the points' packets and summarises the delays per flow
// direction (as A saw it) and in total.
func (m *Matcher) Report() *Report {
	pairs, amb := m.Pairs()
	r := &Report{Packets: m.seen, Skipped: m.skip, Matched: len(pairs), Ambiguous: amb, Uncertainty: m.opts.Uncertainty}
	type acc struct {
		bflow  Endpoints
		delays []int64
	}
	byFlow := map[Endpoints]*acc{}
	var order []Endpoints
	for i := range pairs {
		p := &pairs[i]
		a := byFlow[p.AFlow]
		if a == nil {
			a = &acc{bflow: p.BFlow}
			byFlow[p.AFlow] = a
			order = append(order, p.AFlow)
		}
		a.delays = append(a.delays, p.Delay())
	}
	var tot [2][]int64
	for _, f := range order {
		a := byFlow[f]
		// The direction is the sign of the median delay: a clock offset
		// smaller than the delay cannot flip it, and one packet on the
		// wrong side of zero does not either.
		s := statsOf(a.delays)
		from := A
		if s.Median < 0 {
			from = B
			for i := range a.delays {
				a.delays[i] = -a.delays[i]
			}
			s = statsOf(a.delays)
		}
		tot[from] = append(tot[from], a.delays...)
		r.Directions = append(r.Directions, Direction{AFlow: f, BFlow: a.bflow, From: from, Delay: s,
			BelowUncertainty: s.Median < m.opts.Uncertainty.Nanoseconds()})
	}
	r.Total[A], r.Total[B] = statsOf(tot[A]), statsOf(tot[B])
	return r
}
