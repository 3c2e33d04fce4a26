package hops

import (
	"context"
	"errors"
	"slices"
	"testing"

	"tapvault/analytics"
	"tapvault/pcap"
)

// TestFindAcross: the candidate search both the API's and the fleet
// centre's across views run. A candidate that is gone is passed over, the
// one with the most packets in common is chosen (here the last, past one
// that shares some), a fetch error stops the search, and none in common is
// ErrNotAcross.
func TestFindAcross(t *testing.T) {
	var pa, full, part []Seen
	ts := int64(1e18)
	for i, g := range conv {
		ts += 10 * ms
		at, bt := ts, ts+toServer
		if !g.fromClient {
			at, bt = ts+toClient, ts
		}
		pa = append(pa, Seen{TS: at, LinkType: pcap.LinkTypeEthernet, Data: sideA.frame(g)})
		full = append(full, Seen{TS: bt, LinkType: pcap.LinkTypeEthernet, Data: sideB.frame(g)})
		if i < 3 {
			part = append(part, full[i])
		}
	}
	ra := &analytics.Record{ID: 1, Proto: "http", Transport: 6, Client: sideA.client, Server: sideA.server, ClientNet: 5 * ms}
	cands := map[uint64][]Seen{3: part, 4: full}
	var asked []uint64
	fetch := func(_ context.Context, id uint64) (*analytics.Record, []Seen, error) {
		asked = append(asked, id)
		switch id {
		case 2:
			return nil, nil, nil // gone
		case 9:
			return nil, nil, errors.New("sensor down")
		}
		return &analytics.Record{ID: id, Network: 6 * ms}, cands[id], nil
	}
	x, err := FindAcross(context.Background(), ra, pa, []uint64{2, 3, 4}, fetch)
	if err != nil {
		t.Fatal(err)
	}
	if x.IDB != 4 || x.Matched != len(conv) || x.AB != toServer+toClient || x.ClientA != 5*ms || x.BServer != 6*ms || x.Reversed || len(asked) != 3 {
		t.Fatalf("got B %d, %d matched, AB %d, legs %d %d, reversed %v, asked %v; want 4, %d, %d, 5 ms, 6 ms",
			x.IDB, x.Matched, x.AB, x.ClientA, x.BServer, x.Reversed, asked, len(conv), toServer+toClient)
	}
	// Every packet found at once: the rest are not read.
	asked = nil
	if x, err := FindAcross(context.Background(), ra, pa, []uint64{4, 3}, fetch); err != nil || x.IDB != 4 || len(asked) != 1 {
		t.Errorf("full first: got %v, asked %v; want 4 alone", err, asked)
	}
	if _, err := FindAcross(context.Background(), ra, pa, []uint64{3, 9, 4}, fetch); err == nil || err.Error() != "sensor down" {
		t.Errorf("fetch error: got %v, want it back", err)
	}
	if _, err := FindAcross(context.Background(), ra, pa, []uint64{2}, fetch); !errors.Is(err, ErrNotAcross) {
		t.Errorf("none in common: got %v, want ErrNotAcross", err)
	}
}

// TestMergeAcross: three points saw one exchange. The record is the
// middle point's (A); near is on the client's side of it, with its clock
// 1.5 ms behind (more than the 1 ms a packet takes from A to it); far is
// behind a NAT that rewrote addresses and ports. A packet towards the
// server is 2 ms from near to A and 3 ms from A to far, one towards the
// client 4 ms from far to A and 1 ms from A to near. The
// Across answers are given far's first: the ladder puts near, A, far from
// the client's side, each packet with its time at each, the packet A
// missed one rung across near and far, and the hops 3 ms (the clock's
// offset held out of the round trip by the delays' signs) and 7 ms.
func TestMergeAcross(t *testing.T) {
	sideNear := sideA // before the NAT: the same addresses as A
	const (
		nearToA, aToFar   = 2 * ms, 3 * ms
		farToA, aToNear   = 4 * ms, 1 * ms
		nearClock         = -3 * ms / 2
		missedA, onlyFarI = 2, 6
	)
	var pa, pn, pf []Seen
	var want [][3]int64 // near, A, far
	ts := int64(1e18)
	for i, g := range conv {
		ts += 10 * ms
		var n, a, f int64
		if g.fromClient {
			n, a, f = ts, ts+nearToA, ts+nearToA+aToFar
		} else {
			f, a, n = ts, ts+farToA, ts+farToA+aToNear
		}
		n += nearClock
		if i == onlyFarI {
			n, a = 0, 0
		}
		if i == missedA {
			a = 0
		}
		if n != 0 {
			pn = append(pn, Seen{TS: n, LinkType: pcap.LinkTypeEthernet, Data: sideNear.frame(g)})
		}
		if a != 0 {
			pa = append(pa, Seen{TS: a, LinkType: pcap.LinkTypeEthernet, Data: sideA.frame(g)})
		}
		pf = append(pf, Seen{TS: f, LinkType: pcap.LinkTypeEthernet, Data: sideB.frame(g)})
		want = append(want, [3]int64{n, a, f})
	}
	ra := &analytics.Record{ID: 1, Proto: "http", Transport: 6, Client: sideA.client, Server: sideA.server, ClientNet: 5 * ms, Network: 9 * ms}
	recs := map[uint64]*analytics.Record{
		2: {ID: 2, ClientNet: 3 * ms, Network: 11 * ms}, // near
		3: {ID: 3, ClientNet: 12 * ms, Network: 2 * ms}, // far
	}
	seen := map[uint64][]Seen{2: pn, 3: pf}
	fetch := func(_ context.Context, id uint64) (*analytics.Record, []Seen, error) { return recs[id], seen[id], nil }
	var xs []*Across
	for _, id := range []uint64{3, 2} {
		x, err := FindAcross(context.Background(), ra, pa, []uint64{id}, fetch)
		if err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x)
	}
	l := MergeAcross(xs)
	// Inputs: 0 is A, 1 far (the first Across), 2 near.
	if !slices.Equal(l.Points, []int{2, 0, 1}) || l.Records[0].ID != 2 || l.Records[1].ID != 1 || l.Records[2].ID != 3 {
		t.Fatalf("points %v, want [2 0 1] (near, A, far)", l.Points)
	}
	if !slices.Equal(l.Hops, []int64{nearToA + aToNear, aToFar + farToA}) || l.Client != 3*ms || l.Server != 2*ms {
		t.Errorf("hops %v, client %d, server %d; want [%d %d], 3 ms, 2 ms", l.Hops, l.Client, l.Server, nearToA+aToNear, aToFar+farToA)
	}
	if len(l.Rungs) != len(conv) {
		t.Fatalf("%d rungs, want %d: %+v", len(l.Rungs), len(conv), l.Rungs)
	}
	for i, r := range l.Rungs {
		if !slices.Equal(r.At, want[i][:]) || r.ToServer != conv[i].fromClient || r.Payload != len(conv[i].payload) {
			t.Errorf("rung %d: at %v, to server %v, payload %d; want %v, %v, %d", i, r.At, r.ToServer, r.Payload, want[i], conv[i].fromClient, len(conv[i].payload))
		}
	}
	// Two points: the same ladder as the pair's steps.
	l2 := MergeAcross(xs[:1])
	if !slices.Equal(l2.Points, []int{0, 1}) || l2.Hops[0] != xs[0].AB {
		t.Errorf("two points: %v, hop %v; want [0 1] and %d", l2.Points, l2.Hops, xs[0].AB)
	}
}
