package centre

import (
	"context"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"tapvault/fleet"
	"tapvault/internal/testframe"
	"tapvault/pcap"
)

// The view across sensors (across.go) over a fleet of three: near, on the
// client's side, and far, behind a NAT that rewrote both addresses and
// ports, saw the same HTTP connections, each client packet 3 ms later at
// far and each server packet 4 ms earlier; other saw other connections at
// the same times (other sequence numbers, so no packet matches).

const (
	hopBase     = int64(1_750_000_000) * 1e9
	hopGap      = int64(5 * time.Minute) // between connections: each has its own clock reports
	hopToServer = int64(3 * time.Millisecond)
	hopToClient = int64(4 * time.Millisecond)
	hopConns    = 3
	// hostileReq is the request: packet bytes are hostile, and the page
	// must never run them.
	hostileReq = "GET /<img/src=x/onerror=window.__pwned=3> HTTP/1.1\r\nHost: h\r\n\r\n"
	hopResp    = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
)

// hopAt is when packet k of connection i passed near.
func hopAt(i, k int, _ bool) int64 {
	return hopBase + int64(i)*hopGap + int64(k)*int64(20*time.Millisecond)
}

// hopAtFar is when it passed far.
func hopAtFar(i, k int, fromClient bool) int64 {
	if fromClient {
		return hopAt(i, k, true) + hopToServer
	}
	return hopAt(i, k, false) - hopToClient
}

// writeHopPoint writes what one capture point saw of hopConns HTTP
// connections: client and server as given (a NAT between the points
// rewrites them), each packet at its time at this point.
func writeHopPoint(t testing.TB, path string, client, server netip.Addr, sport, dport uint16, seqBase uint32, at func(i, k int, fromClient bool) int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcap.NewWriter(f, pcap.LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	req, resp := hostileReq, hopResp
	for i := range hopConns {
		cs, ss := seqBase+uint32(1000*i+1), seqBase+uint32(900000+1000*i)
		segs := []struct {
			fromClient bool
			seq, ack   uint32
			flags      testframe.TCPFlags
			payload    string
		}{
			{true, cs - 1, 0, testframe.SYN, ""},
			{false, ss - 1, cs, testframe.SYN | testframe.ACK, ""},
			{true, cs, ss, testframe.ACK, ""},
			{true, cs, ss, testframe.PSH | testframe.ACK, req},
			{false, ss, cs + uint32(len(req)), testframe.PSH | testframe.ACK, resp},
			{true, cs + uint32(len(req)), ss + uint32(len(resp)), testframe.ACK, ""},
		}
		for k, g := range segs {
			src, dst, sp, dp := client, server, sport+uint16(i), dport
			if !g.fromClient {
				src, dst, sp, dp = dst, src, dp, sp
			}
			fr := testframe.Frame{
				IPv4:    &testframe.IPv4{Src: src, Dst: dst, ID: uint16(100*i + k)},
				TCP:     &testframe.TCP{SrcPort: sp, DstPort: dp, Seq: g.seq, Ack: g.ack, Flags: g.flags, Window: 512},
				Payload: []byte(g.payload),
			}
			b := fr.Bytes()
			if err := w.WritePacket(at(i, k, g.fromClient), uint32(len(b)), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// newHopFleet is the fleet of near, far and other, with each sensor's
// clock reported around each connection (sensor_health): connection 0
// within 0.1 ms at both (0.2 ms together, under the 7 ms between them),
// connection 1 within 4 ms at both (8 ms: the 7 ms is refused), connection
// 2 with far unsynchronised (nothing bounds it).
func newHopFleet(t *testing.T, opts Options) *fleetEnv {
	t.Helper()
	e := newFleetEnvOf(t, opts, []sensorSpec{
		{"near", hopPoint("10.0.0.1", "10.0.0.2", 40000, 8008, 0, hopAt)},
		{"far", hopPoint("192.168.7.1", "192.168.7.2", 61000, 8080, 0, hopAtFar)},
		{"other", hopPoint("10.9.0.1", "10.9.0.2", 1000, 80, 1<<30, func(i, k int, b bool) int64 { return hopAt(i, k, b) + 7 })},
	})
	var rows []any
	report := func(sensor string, i int, synced bool, errNs int64) {
		rows = append(rows, hopClock(sensor, i, synced, errNs)...)
	}
	report("near", 0, true, 100_000)
	report("far", 0, true, 100_000)
	report("near", 1, true, 4_000_000)
	report("far", 1, true, 4_000_000)
	report("near", 2, true, 100_000)
	report("far", 2, false, 100_000)
	if err := e.client.Insert(context.Background(), "sensor_health", rows); err != nil {
		t.Fatal(err)
	}
	return e
}

// hopPoint builds a sensor's store of what writeHopPoint writes.
func hopPoint(client, server string, sport, dport uint16, seqBase uint32, at func(i, k int, fromClient bool) int64) func(testing.TB, string) {
	return func(t testing.TB, dir string) {
		trace := filepath.Join(t.TempDir(), "point.pcap")
		writeHopPoint(t, trace, netip.MustParseAddr(client), netip.MustParseAddr(server), sport, dport, seqBase, at)
		storeFrom(t, dir, trace)
	}
}

// hopClock is a sensor's clock report (sensor_health rows) at connection
// i: synchronised or not, with its error up to errNs.
func hopClock(sensor string, i int, synced bool, errNs int64) []any {
	ts := hopAt(i, 0, true)
	return []any{
		map[string]any{"sensor": sensor, "ts": ts, "name": fleet.HealthClockSynced, "value": map[bool]int{false: 0, true: 1}[synced]},
		map[string]any{"sensor": sensor, "ts": ts, "name": fleet.HealthClockError, "value": errNs},
	}
}

// hopIDs are a sensor's http exchange IDs in time order, from the centre.
func (e *fleetEnv) hopIDs(t *testing.T, sensor string) []string {
	t.Helper()
	resp, b := e.get(t, pathExchanges, url.Values{"sensor": {sensor}, "proto": {"http"}, "sort": {"req_first"}})
	if resp.StatusCode != 200 {
		t.Fatalf("exchanges of %s: %d %s", sensor, resp.StatusCode, b)
	}
	var ids []string
	for _, x := range decode[ExchangesAnswer](t, b).Exchanges {
		ids = append(ids, x.ID)
	}
	if len(ids) != hopConns {
		t.Fatalf("%s: %d http exchanges, want %d", sensor, len(ids), hopConns)
	}
	return ids
}

func TestAcross(t *testing.T) {
	e := newHopFleet(t, Options{})
	near, far := e.hopIDs(t, "near"), e.hopIDs(t, "far")
	across := func(q url.Values) AcrossAnswer {
		t.Helper()
		resp, b := e.get(t, pathAcross, q)
		if resp.StatusCode != 200 {
			t.Fatalf("across %v: %d %s", q, resp.StatusCode, b)
		}
		return decode[AcrossAnswer](t, b)
	}
	// The split of every connection, whichever sensor it is asked from:
	// client <-> near is near's client leg (SYN-ACK to ACK there: 20 ms),
	// near <-> far the 3 ms and 4 ms, far <-> server far's server leg
	// (SYN to SYN-ACK there: 20 ms less both).
	const (
		wantClientA = int64(20 * time.Millisecond)
		wantAB      = hopToServer + hopToClient
		wantBServer = int64(20*time.Millisecond) - hopToServer - hopToClient
	)
	checkPair := func(what string, p AcrossPair, a, b, idA, idB string, reversed bool) {
		t.Helper()
		if p.A != a || p.B != b || p.RecordA.ID != idA || p.RecordB.ID != idB || p.RecordA.Sensor != a || p.RecordB.Sensor != b || p.Reversed != reversed {
			t.Errorf("%s: got %s %s (%s) and %s %s (%s), reversed %v; want %s %s and %s %s, reversed %v",
				what, p.A, p.RecordA.Sensor, p.RecordA.ID, p.B, p.RecordB.Sensor, p.RecordB.ID, p.Reversed, a, idA, b, idB, reversed)
		}
		if p.ClientA != wantClientA || p.BServer != wantBServer {
			t.Errorf("%s: client leg %d, server leg %d; want %d and %d", what, p.ClientA, p.BServer, wantClientA, wantBServer)
		}
		// The drill-down of an HTTP exchange: its request, response and
		// the ACK that closes it, every one seen at both sensors.
		if p.Matched != 3 || len(p.Steps) != 3 {
			t.Errorf("%s: %d matched, %d steps; want 3 and 3", what, p.Matched, len(p.Steps))
		}
		for _, st := range p.Steps {
			atNear, atFar := st.AtA, st.AtB
			if reversed {
				atNear, atFar = atFar, atNear
			}
			if d := atFar - atNear; st.ToServer && d != hopToServer || !st.ToServer && d != -hopToClient {
				t.Errorf("%s: step %+v: far minus near %d, want %d to the server, %d to the client", what, st, d, hopToServer, -hopToClient)
			}
		}
		// far saw the client behind the NAT: its own addresses.
		nearRec, farRec := p.RecordA, p.RecordB
		if reversed {
			nearRec, farRec = farRec, nearRec
		}
		if !strings.HasPrefix(nearRec.Client, "10.0.0.1:") || !strings.HasPrefix(farRec.Client, "192.168.7.1:") {
			t.Errorf("%s: clients %s at near, %s at far", what, nearRec.Client, farRec.Client)
		}
	}

	// Connection 0, from near: far saw it, other did not.
	a := across(url.Values{"sensor": {"near"}, "id": {near[0]}})
	if a.Sensor != "near" || a.ID != near[0] || a.Record.ID != near[0] || len(a.Across) != 1 ||
		!slices.Equal(a.NotFound, []string{"other"}) || len(a.Missing) != 0 {
		t.Fatalf("connection 0 from near: got %+v, want far's pair, other not found, none missing", a)
	}
	p := a.Across[0]
	checkPair("connection 0 from near", p, "near", "far", near[0], far[0], false)
	if p.AB != wantAB || !p.ClockKnown || p.UncertaintyNs != 200_000 || p.Uncertain || p.BelowUncertainty {
		t.Errorf("connection 0: near <-> far %d, clocks known %v, uncertainty %d, uncertain %v, refused %v; want %d, known, 200000, a figure",
			p.AB, p.ClockKnown, p.UncertaintyNs, p.Uncertain, p.BelowUncertainty, wantAB)
	}
	// From far (the ID alone: ClickHouse knows which sensor holds it), the
	// same split, the sensors the other way round.
	a = across(url.Values{"id": {far[0]}, "peer": {"near"}})
	if a.Sensor != "far" || len(a.Across) != 1 || len(a.NotFound) != 0 {
		t.Fatalf("connection 0 from far: got %+v", a)
	}
	checkPair("connection 0 from far", a.Across[0], "far", "near", far[0], near[0], true)
	if a.Across[0].AB != wantAB {
		t.Errorf("connection 0 from far: near <-> far %d, want %d", a.Across[0].AB, wantAB)
	}

	// Connection 1: the clocks allow 8 ms, more than the 7 ms: refused.
	p = across(url.Values{"sensor": {"near"}, "id": {near[1]}, "peer": {"far"}}).Across[0]
	checkPair("connection 1", p, "near", "far", near[1], far[1], false)
	if p.AB != -1 || !p.BelowUncertainty || !p.Uncertain || !p.ClockKnown || p.UncertaintyNs != 8_000_000 {
		t.Errorf("connection 1: near <-> far %d, refused %v, uncertain %v, uncertainty %d; want -1, refused, uncertain, 8000000", p.AB, p.BelowUncertainty, p.Uncertain, p.UncertaintyNs)
	}
	// Connection 2: far's clock unsynchronised: a figure, unbounded.
	p = across(url.Values{"sensor": {"near"}, "id": {near[2]}, "peer": {"far"}}).Across[0]
	checkPair("connection 2", p, "near", "far", near[2], far[2], false)
	if p.AB != wantAB || p.ClockKnown || p.UncertaintyNs != -1 || !p.Uncertain || p.BelowUncertainty || !strings.Contains(p.Clock, "far unsynchronised") {
		t.Errorf("connection 2: near <-> far %d, known %v, uncertainty %d, uncertain %v, refused %v, clock %q; want %d, unknown, uncertain, not refused",
			p.AB, p.ClockKnown, p.UncertaintyNs, p.Uncertain, p.BelowUncertainty, p.Clock, wantAB)
	}

	// Asked of other alone: it holds records near in time, none of them
	// this exchange.
	a = across(url.Values{"sensor": {"near"}, "id": {near[0]}, "peer": {"other"}})
	if len(a.Across) != 0 || !slices.Equal(a.NotFound, []string{"other"}) {
		t.Errorf("other alone: got %+v, want not found there", a)
	}

	for _, c := range []struct {
		q    url.Values
		want int
	}{
		{url.Values{"sensor": {"near"}}, 400},
		{url.Values{"sensor": {"near"}, "id": {near[0]}, "peer": {"near"}}, 400},
		{url.Values{"sensor": {"near"}, "id": {near[0]}, "peer": {"nowhere"}}, 400},
		{url.Values{"sensor": {"near"}, "id": {near[0]}, "bogus": {"1"}}, 400},
		{url.Values{"sensor": {"near"}, "id": {"00000000000000ff"}}, 404},
	} {
		if resp, b := e.get(t, pathAcross, c.q); resp.StatusCode != c.want {
			t.Errorf("across %v: got %d %s, want %d", c.q, resp.StatusCode, b, c.want)
		}
	}

	// A connection record is not an exchange to draw.
	resp, b := e.get(t, pathExchanges, url.Values{"sensor": {"near"}, "kind": {"connection"}, "limit": {"1"}})
	conns := decode[ExchangesAnswer](t, b).Exchanges
	if resp.StatusCode != 200 || len(conns) != 1 {
		t.Fatalf("near's connection records: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.get(t, pathAcross, url.Values{"sensor": {"near"}, "id": {conns[0].ID}}); resp.StatusCode != 400 {
		t.Errorf("across of connection record %s: got %d %s, want 400", conns[0].ID, resp.StatusCode, b)
	}

	// far stopped: named missing, not "not found".
	e.sensors["far"].halt()
	a = across(url.Values{"sensor": {"near"}, "id": {near[0]}})
	if len(a.Across) != 0 || !slices.Equal(a.Missing, []string{"far"}) || !slices.Equal(a.NotFound, []string{"other"}) {
		t.Errorf("far stopped: got %+v, want far missing, other not found", a)
	}
	// near (the record's own sensor) stopped: 502, naming it.
	e.sensors["near"].halt()
	if resp, b := e.get(t, pathAcross, url.Values{"sensor": {"near"}, "id": {near[0]}}); resp.StatusCode != 502 || resp.Header.Get(hdrMissing) != "near" {
		t.Errorf("near stopped: got %d (%s missing) %s, want 502 naming near", resp.StatusCode, resp.Header.Get(hdrMissing), b)
	}
}
