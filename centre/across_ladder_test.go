package centre

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The across view's ladder (acrossLadder, issue 16 §2) over three capture
// points of the same HTTP connections: near on the client's side, mid
// behind a NAT (its own addresses; each client packet 1 ms after near,
// each server packet 1.5 ms before) and far behind another (3 ms after,
// 4 ms before, as in TestAcross), so the hops are near <-> mid 2.5 ms and
// mid <-> far 4.5 ms; other saw other connections. The centre orders its
// sensors by name, far, mid, near, the reverse of the ladder's order, so
// the points reach hops.MergeAcross in an order the ladder must not keep,
// whichever sensor is asked.

const (
	midToServer = int64(time.Millisecond)
	midToClient = int64(1500 * time.Microsecond)
)

// hopAtMid is when packet k of connection i passed mid.
func hopAtMid(i, k int, fromClient bool) int64 {
	if fromClient {
		return hopAt(i, k, true) + midToServer
	}
	return hopAt(i, k, false) - midToClient
}

func TestAcrossLadder(t *testing.T) {
	e := newFleetEnvOf(t, Options{}, []sensorSpec{
		{"near", hopPoint("10.0.0.1", "10.0.0.2", 40000, 8008, 0, hopAt)},
		{"mid", hopPoint("172.16.4.1", "172.16.4.2", 52000, 8088, 0, hopAtMid)},
		{"far", hopPoint("192.168.7.1", "192.168.7.2", 61000, 8080, 0, hopAtFar)},
		{"other", hopPoint("10.9.0.1", "10.9.0.2", 1000, 80, 1<<30, func(i, k int, b bool) int64 { return hopAt(i, k, b) + 7 })},
	})
	// The clocks: connection 0 within 0.1 ms at every point (0.2 ms a
	// hop, under both); connection 1 within 4 ms at near, 0.1 ms at mid,
	// 3 ms at far, so near <-> mid is known within 4.1 ms, more than its
	// 2.5 ms (refused), and mid <-> far within 3.1 ms, less than its
	// 4.5 ms (given); connection 2 with mid unsynchronised (nothing
	// bounds either hop).
	var rows []any
	for _, r := range []struct {
		sensor string
		i      int
		synced bool
		errNs  int64
	}{
		{"near", 0, true, 100_000}, {"mid", 0, true, 100_000}, {"far", 0, true, 100_000},
		{"near", 1, true, 4_000_000}, {"mid", 1, true, 100_000}, {"far", 1, true, 3_000_000},
		{"near", 2, true, 100_000}, {"mid", 2, false, 100_000}, {"far", 2, true, 100_000},
	} {
		rows = append(rows, hopClock(r.sensor, r.i, r.synced, r.errNs)...)
	}
	if err := e.client.Insert(context.Background(), "sensor_health", rows); err != nil {
		t.Fatal(err)
	}
	ids := map[string][]string{}
	for _, n := range []string{"near", "mid", "far"} {
		ids[n] = e.hopIDs(t, n)
	}

	order := []string{"near", "mid", "far"}
	at := []func(i, k int, fromClient bool) int64{hopAt, hopAtMid, hopAtFar}
	const (
		nearMid = midToServer + midToClient                             // 2.5 ms
		midFar  = hopToServer - midToServer + hopToClient - midToClient // 4.5 ms
		// The outer legs: near's client leg (SYN-ACK to ACK there) and
		// far's server leg (SYN to SYN-ACK there, 20 ms less 7).
		wantClient = int64(20 * time.Millisecond)
		wantServer = int64(20*time.Millisecond) - hopToServer - hopToClient
	)
	// hop is what a hop of the ladder must state.
	type hop struct {
		rtt                       int64
		known, uncertain, refused bool
		uncertainty               int64
		clockHas                  string
	}
	wantHops := [][2]hop{
		{{nearMid, true, false, false, 200_000, ""}, {midFar, true, false, false, 200_000, ""}},
		{{-1, true, true, true, 4_100_000, ""}, {midFar, true, false, false, 3_100_000, ""}},
		{{nearMid, false, true, false, -1, "mid unsynchronised"}, {midFar, false, true, false, -1, "mid unsynchronised"}},
	}

	check := func(what string, i int, a AcrossAnswer, notFound []string) {
		t.Helper()
		l := a.Ladder
		if l == nil {
			t.Fatalf("%s: no ladder in %+v", what, a)
		}
		var names []string
		for _, p := range l.Points {
			names = append(names, p.Name)
		}
		if !slices.Equal(names, order) {
			t.Fatalf("%s: points %v, want %v (from the client's side)", what, names, order)
		}
		for j, p := range l.Points {
			var r Exchange
			if err := json.Unmarshal(p.Record, &r); err != nil {
				t.Fatalf("%s: point %s's record %s: %v", what, p.Name, p.Record, err)
			}
			if r.Sensor != p.Name || r.ID != ids[order[j]][i] {
				t.Errorf("%s: point %s holds %s's record %s, want its own %s", what, p.Name, r.Sensor, r.ID, ids[order[j]][i])
			}
		}
		if l.ClientNs != wantClient || l.ServerNs != wantServer {
			t.Errorf("%s: client leg %d, server leg %d; want %d (near's) and %d (far's)", what, l.ClientNs, l.ServerNs, wantClient, wantServer)
		}
		if !slices.Equal(l.NotFound, notFound) || len(l.Missing) != 0 {
			t.Errorf("%s: not found %v, missing %v; want %v, none", what, l.NotFound, l.Missing, notFound)
		}
		// The drill-down of the exchange: its request, response and the
		// ACK that closes it (packets 3, 4, 5 of the connection), each at
		// the time every point's trace has it, to the nanosecond (the
		// points match packets by their bytes; the times are the
		// stores').
		want := []struct {
			toServer bool
			payload  int
			flags    string
		}{{true, len(hostileReq), "P."}, {false, len(hopResp), "P."}, {true, 0, "."}}
		if len(l.Steps) != len(want) {
			t.Fatalf("%s: %d steps, want %d: %+v", what, len(l.Steps), len(want), l.Steps)
		}
		for s, w := range want {
			st := l.Steps[s]
			k := 3 + s
			wantAt := make([]int64, len(at))
			for j, f := range at {
				wantAt[j] = f(i, k, w.toServer)
			}
			if st.ToServer != w.toServer || st.Payload != w.payload || st.Flags != w.flags || !slices.Equal(st.At, wantAt) {
				t.Errorf("%s: step %d: to server %v, payload %d, flags %q, at %v; want %v, %d, %q, at %v (near, mid, far)",
					what, s, st.ToServer, st.Payload, st.Flags, st.At, w.toServer, w.payload, w.flags, wantAt)
			}
		}
		if len(l.Hops) != 2 {
			t.Fatalf("%s: %d hops, want 2: %+v", what, len(l.Hops), l.Hops)
		}
		for j, w := range wantHops[i] {
			h := l.Hops[j]
			if h.From != order[j] || h.To != order[j+1] || h.RTT != w.rtt || h.ClockKnown != w.known || h.Uncertain != w.uncertain ||
				h.BelowUncertainty != w.refused || h.UncertaintyNs != w.uncertainty || !strings.Contains(h.Clock, w.clockHas) {
				t.Errorf("%s: hop %d: %s -> %s %d ns, clock known %v, uncertainty %d, uncertain %v, refused %v (%q); want %s -> %s %d, %v, %d, %v, %v (%q)",
					what, j, h.From, h.To, h.RTT, h.ClockKnown, h.UncertaintyNs, h.Uncertain, h.BelowUncertainty, h.Clock,
					order[j], order[j+1], w.rtt, w.known, w.uncertainty, w.uncertain, w.refused, w.clockHas)
			}
		}
	}

	across := func(q url.Values) AcrossAnswer {
		t.Helper()
		resp, b := e.get(t, pathAcross, q)
		if resp.StatusCode != 200 {
			t.Fatalf("across %v: %d %s", q, resp.StatusCode, b)
		}
		return decode[AcrossAnswer](t, b)
	}
	for i := range hopConns {
		// From each point: the ladder is the same whichever point's
		// record it starts from and whatever order the others come in.
		for _, n := range order {
			a := across(url.Values{"sensor": {n}, "id": {ids[n][i]}})
			if len(a.Across) != 2 || !slices.Equal(a.NotFound, []string{"other"}) {
				t.Errorf("connection %d from %s: %d pairs, not found %v; want 2, other", i, n, len(a.Across), a.NotFound)
			}
			check(fmt.Sprintf("connection %d from %s", i, n), i, a, []string{"other"})
		}
	}
	// The peers named (sorted far, mid by the centre): the same ladder;
	// other not searched, so not named.
	a := across(url.Values{"sensor": {"near"}, "id": {ids["near"][0]}, "peer": {"mid,far"}})
	check("connection 0 from near, peers mid and far", 0, a, []string{})

	// One other point alone: a ladder of two, the hop between them the
	// pair's figure (near <-> far within 0.2 ms: 7 ms).
	a = across(url.Values{"sensor": {"far"}, "id": {ids["far"][0]}, "peer": {"near"}})
	if l := a.Ladder; l == nil || len(l.Points) != 2 || l.Points[0].Name != "near" || l.Points[1].Name != "far" ||
		len(l.Hops) != 1 || l.Hops[0].RTT != hopToServer+hopToClient || l.Hops[0].BelowUncertainty {
		t.Errorf("far with near alone: got ladder %+v, want near, far, 7 ms between", l)
	}
}
