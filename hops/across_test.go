package hops

import (
	"context"
	"errors"
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
