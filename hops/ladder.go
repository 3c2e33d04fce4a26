package hops

import (
	"slices"

	"tapvault/packet"
)

// Seen is one packet as a point stored it.
type Seen struct {
	TS       int64
	LinkType uint16
	Data     []byte
}

// Step is one packet of an exchange across two points: its time at each
// (0 where that point did not see it) and its direction.
type Step struct {
	// ToServer: the packet went from the client towards the server.
	ToServer bool
	// At are its times at A and at B (ns); 0: not seen there.
	At [2]int64
	// Payload is its payload length; Flags its TCP flags.
	Payload int
	Flags   uint8
	// ia is the packet's index at A plus one (0: seen at B only); keyB,
	// when hasKey, is the key of a packet seen at B only. MergeAcross
	// joins the steps of several pairs by them.
	ia     int
	keyB   uint64
	hasKey bool
}

// LadderSteps merges what two points saw of one exchange (A nearer the
// client, or not: Reversed says) into one list of packets in time order,
// each with its time at both points where both saw it. client is the
// exchange's client as A saw it (its records' Client), which tells each
// packet's direction at A; at B, where a NAT may have rewritten the
// addresses, a matched packet takes A's direction, and an unmatched one the
// direction of B's packets from the same source.
func LadderSteps(a, b []Seen, clientA Endpoints) (steps []Step, reversed bool) {
	var dec packet.Decoder
	var d packet.Decoded
	keysB := map[uint64]int{}
	dupB := map[uint64]bool{}
	for i := range b {
		dec.Decode(b[i].Data, b[i].LinkType, &d)
		if k, ok := Key(&d, b[i].Data); ok {
			if _, seen := keysB[k]; seen {
				dupB[k] = true
			}
			keysB[k] = i
		}
	}
	used := make([]bool, len(b))
	srcDir := map[[16]byte]bool{} // B's source address -> towards the server
	var delays []int64
	for i := range a {
		dec.Decode(a[i].Data, a[i].LinkType, &d)
		e := EndpointsOf(&d)
		st := Step{ToServer: e.Src == clientA.Src, Payload: int(max(d.PayloadLen, 0)), Flags: d.TCPFlags, ia: i + 1}
		st.At[0] = a[i].TS
		if k, ok := Key(&d, a[i].Data); ok && !dupB[k] {
			if j, ok := keysB[k]; ok && !used[j] {
				used[j] = true
				st.At[1] = b[j].TS
				if st.ToServer {
					delays = append(delays, b[j].TS-a[i].TS)
				}
				var db packet.Decoded
				dec.Decode(b[j].Data, b[j].LinkType, &db)
				srcDir[db.Src] = st.ToServer
			}
		}
		steps = append(steps, st)
	}
	for j := range b {
		if used[j] {
			continue
		}
		dec.Decode(b[j].Data, b[j].LinkType, &d)
		to, ok := srcDir[d.Src]
		if !ok {
			continue // a packet of another conversation, or one A never saw from that side
		}
		k, ok := Key(&d, b[j].Data)
		steps = append(steps, Step{ToServer: to, Payload: int(max(d.PayloadLen, 0)), Flags: d.TCPFlags, At: [2]int64{0, b[j].TS}, keyB: k, hasKey: ok && !dupB[k]})
	}
	if len(delays) > 0 {
		slices.Sort(delays)
		reversed = delays[len(delays)/2] < 0
	}
	first := func(s Step) int64 {
		if s.At[0] != 0 {
			return s.At[0]
		}
		return s.At[1]
	}
	slices.SortStableFunc(steps, func(x, y Step) int { return cmpI64(first(x), first(y)) })
	return steps, reversed
}

func cmpI64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
