package centre

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/api"
	"tapvault/dataplane"
	"tapvault/fleet"
	"tapvault/internal/chtest"
	"tapvault/msgquery"
	"tapvault/pcap"
	"tapvault/pipeline"
	"tapvault/query"
	"tapvault/tracegen"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// traceStart is the traces' first timestamp (tracegen's default epoch).
const traceStart = int64(1704067200_000_000_000)

// shiftB is how much later sensor-b sees the same traffic as sensor-a: two
// taps on one path.
const shiftB = 37_000

// testSensor is one sensor: a store built by the pipeline from a generated
// trace, served by an api.Server on a fleet port with mTLS.
type testSensor struct {
	name, dir, addr string
	st              *query.Store
	srv             *api.Server
	conf            *tls.Config
	stop            context.CancelFunc
	done            chan struct{}
}

func (s *testSensor) serve(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.ServeFleet(ctx, ln, s.conf); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}()
}

func (s *testSensor) halt() {
	s.stop()
	<-s.done
}

type fleetEnv struct {
	sensors map[string]*testSensor
	ch      *chtest.Server
	client  *fleet.Client
	centre  *Centre
	web     *httptest.Server
	certs   string // enrolment output: NAME.crt, NAME.key, ca.crt
	other   string // a second CA's enrolment of "centre"
}

func buildStore(t testing.TB, dir string, seed, start int64, packets int) {
	t.Helper()
	trace := filepath.Join(t.TempDir(), "app.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: packets, Seed: seed, StartNS: start, PPS: 2000}); err != nil {
		t.Fatal(err)
	}
	storeFrom(t, dir, trace)
}

// storeFrom builds the store dir from the capture file trace, with its
// exchange records, as a capture would.
func storeFrom(t testing.TB, dir, trace string) {
	t.Helper()
	ac := analytics.DefaultConfig()
	p, err := pipeline.Open(pipeline.Options{Dir: dir, Logger: quiet(), Lossless: true, Index: true, Analytics: &ac}, 1)
	if err != nil {
		t.Fatal(err)
	}
	src, err := dataplane.OpenFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := p.Run([]dataplane.Source{src})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Analytics == nil || rep.Analytics.Stored == 0 {
		t.Fatalf("store %s: no records stored (%+v)", dir, rep.Analytics)
	}
}

func newFleetEnv(t *testing.T) *fleetEnv { return newFleetEnvWith(t, Options{}, 3000) }

// newFleetEnvWith is newFleetEnv with the centre's options (Logger is set
// here): sensor-a and sensor-b hold the same generated trace, sensor-b
// shiftB later; sensor-c another.
func newFleetEnvWith(t testing.TB, opts Options, packets int) *fleetEnv {
	t.Helper()
	var specs []sensorSpec
	for _, sp := range []struct {
		name        string
		seed, start int64
	}{{"sensor-a", 7, traceStart}, {"sensor-b", 7, traceStart + shiftB}, {"sensor-c", 8, traceStart}} {
		specs = append(specs, sensorSpec{sp.name, func(t testing.TB, dir string) { buildStore(t, dir, sp.seed, sp.start, packets) }})
	}
	return newFleetEnvOf(t, opts, specs)
}

// sensorSpec is one sensor of a test fleet: its name and how its store is
// built.
type sensorSpec struct {
	name  string
	build func(t testing.TB, dir string)
}

// newFleetEnvOf starts a ClickHouse, the sensors of specs (each store
// built, served on a fleet port and shipped) and a centre over them.
func newFleetEnvOf(t testing.TB, opts Options, specs []sensorSpec) *fleetEnv {
	t.Helper()
	ctx := context.Background()
	e := &fleetEnv{sensors: map[string]*testSensor{}, certs: filepath.Join(t.TempDir(), "certs"), other: filepath.Join(t.TempDir(), "other")}
	now := time.Now()
	ca, err := fleet.InitCA(filepath.Join(t.TempDir(), "ca"), now)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"centre"}
	for _, sp := range specs {
		names = append(names, sp.name)
	}
	for _, n := range names {
		if _, _, err := ca.Enroll(e.certs, n, fleet.IssueOptions{}, now); err != nil {
			t.Fatal(err)
		}
	}
	ca2, err := fleet.InitCA(filepath.Join(t.TempDir(), "ca2"), now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca2.Enroll(e.other, "centre", fleet.IssueOptions{}, now); err != nil {
		t.Fatal(err)
	}

	e.ch = chtest.Start(t)
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"err.log", "server.log"} {
				b, _ := os.ReadFile(filepath.Join(e.ch.Dir, "log", f))
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("clickhouse %s:\n%s", f, b)
			}
		}
	})
	e.client, err = fleet.NewClient(e.ch.URL, "tapvault")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.Migrate(ctx, e.client, "tapvault"); err != nil {
		t.Fatal(err)
	}

	cfg := &Config{Sensors: map[string]string{}, ProbeInterval: time.Hour, ProbeTimeout: 2 * time.Second}
	cfg.ClickHouse.URL, cfg.ClickHouse.Database = e.ch.URL, "tapvault"
	cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA = e.pem("centre")
	for _, sp := range specs {
		s := &testSensor{name: sp.name, dir: filepath.Join(t.TempDir(), sp.name), addr: "127.0.0.1:0"}
		sp.build(t, s.dir)
		if s.st, err = query.OpenStore(s.dir, quiet()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.st.Close() })
		if s.srv, err = api.NewServer(s.st, api.ServerOptions{Logger: quiet()}); err != nil {
			t.Fatal(err)
		}
		if s.conf, err = fleet.ServerTLSConfig(e.pem(sp.name)); err != nil {
			t.Fatal(err)
		}
		s.serve(t)
		t.Cleanup(func() {
			select {
			case <-s.done:
			default:
				s.halt()
			}
		})
		e.sensors[sp.name] = s
		cfg.Sensors[sp.name] = s.addr

		sh, err := fleet.NewShipper(fleet.Options{Dir: s.dir, Sensor: sp.name, Client: e.client, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if err := sh.Run(ctx, false); err != nil {
			t.Fatal(err)
		}
		sh.Close()
	}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	opts.Logger = quiet()
	e.centre, err = New(cfg, e.client, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.centre.ProbeNow(ctx)
	e.web = httptest.NewServer(e.centre.Handler())
	t.Cleanup(e.web.Close)
	return e
}

func (e *fleetEnv) pem(name string) (string, string, string) {
	return filepath.Join(e.certs, name+".crt"), filepath.Join(e.certs, name+".key"), filepath.Join(e.certs, fleet.CACertFile)
}

// get asks the centre.
func (e *fleetEnv) get(t testing.TB, path string, q url.Values) (*http.Response, []byte) {
	t.Helper()
	u := e.web.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", u, err)
	}
	return resp, b
}

// sensorGet asks a sensor's fleet port directly, as the enrolled centre.
func (e *fleetEnv) sensorGet(t testing.TB, name, path string) []byte {
	t.Helper()
	conf, err := fleet.ClientTLSConfig(e.pem("centre"))
	if err != nil {
		t.Fatal(err)
	}
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: fleet.ForSensor(conf, name)}, Timeout: 30 * time.Second}
	resp, err := cl.Get("https://" + e.sensors[name].addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sensor %s %s: %d %s", name, path, resp.StatusCode, b)
	}
	return b
}

// exchangeIDs is what a sensor's own store holds: its exchange records
// (every record but the "tcp" connection records), by ID.
func exchangeIDs(t testing.TB, dir string) map[uint64]*analytics.Record {
	t.Helper()
	out := map[uint64]*analytics.Record{}
	_, err := query.ScanMessages(context.Background(), dir, query.MessageSel{From: query.MinTime, To: query.MaxTime}, func(r *analytics.Record, _ *msgquery.Tier) error {
		if r.Proto != "tcp" {
			c := *r
			out[r.ID] = &c
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func TestCentre(t *testing.T) {
	e := newFleetEnv(t)
	want := map[string]map[uint64]*analytics.Record{}
	total := 0
	for n, s := range e.sensors {
		want[n] = exchangeIDs(t, s.dir)
		total += len(want[n])
	}

	// At-least-once delivery: ship sensor-a's records a second time, as a
	// shipper restarted before saving its cursor would. Queries must not
	// see them twice.
	if err := e.client.Exec(context.Background(), "INSERT INTO tapvault.records SELECT * FROM tapvault.records WHERE sensor = 'sensor-a'"); err != nil {
		t.Fatal(err)
	}

	t.Run("exchanges", func(t *testing.T) {
		seen := map[string]map[uint64]bool{}
		var last int64 = 1 << 62
		for off := 0; ; off += 1000 {
			resp, b := e.get(t, pathExchanges, url.Values{"offset": {fmt.Sprint(off)}, "limit": {"1000"}})
			if resp.StatusCode != 200 {
				t.Fatalf("got %d %s", resp.StatusCode, b)
			}
			a := decode[ExchangesAnswer](t, b)
			if a.Total != int64(total) {
				t.Fatalf("total: got %d, want %d (the sensors' own exchange records, none twice)", a.Total, total)
			}
			if len(a.Missing) != 0 {
				t.Errorf("missing: got %v, want none", a.Missing)
			}
			for _, x := range a.Exchanges {
				if x.Latency > last {
					t.Fatalf("not sorted by latency, descending: %d after %d", x.Latency, last)
				}
				last = x.Latency
				var id uint64
				fmt.Sscanf(x.ID, "%x", &id)
				r, ok := want[x.Sensor][id]
				if !ok {
					t.Fatalf("exchange %s on %s: not in that sensor's store", x.ID, x.Sensor)
				}
				if x.ReqFirst != r.ReqFirst || x.Proto != r.Proto || x.Server != r.Server.String() {
					t.Fatalf("exchange %s on %s: got %+v, want the store's %+v", x.ID, x.Sensor, x, r)
				}
				if seen[x.Sensor] == nil {
					seen[x.Sensor] = map[uint64]bool{}
				}
				if seen[x.Sensor][id] {
					t.Fatalf("exchange %s on %s listed twice across pages", x.ID, x.Sensor)
				}
				seen[x.Sensor][id] = true
			}
			if len(a.Exchanges) < 1000 {
				break
			}
		}
		for n := range want {
			if len(seen[n]) != len(want[n]) {
				t.Errorf("%s: listed %d exchanges, its store holds %d", n, len(seen[n]), len(want[n]))
			}
		}
		// A filter: one sensor, one protocol.
		resp, b := e.get(t, pathExchanges, url.Values{"sensor": {"sensor-b"}, "proto": {"http"}, "limit": {"1000"}})
		a := decode[ExchangesAnswer](t, b)
		n := 0
		for _, r := range want["sensor-b"] {
			if r.Proto == "http" {
				n++
			}
		}
		if resp.StatusCode != 200 || a.Total != int64(n) || n == 0 {
			t.Errorf("sensor-b http: got %d total %d, want %d", resp.StatusCode, a.Total, n)
		}
		for _, x := range a.Exchanges {
			if x.Sensor != "sensor-b" || x.Proto != "http" {
				t.Fatalf("filtered list holds %s %s", x.Sensor, x.Proto)
			}
		}
		// Connection records list and drill down too.
		resp, b = e.get(t, pathExchanges, url.Values{"kind": {"connection"}, "sensor": {"sensor-a"}, "limit": {"1"}})
		ca := decode[ExchangesAnswer](t, b)
		if resp.StatusCode != 200 || ca.Total == 0 || len(ca.Exchanges) != 1 || ca.Exchanges[0].Proto != "tcp" {
			t.Fatalf("connection records: got %d %s", resp.StatusCode, b)
		}
		cx := ca.Exchanges[0]
		own := e.sensorGet(t, "sensor-a", "/api/v1/messages/"+cx.ID+"/packets")
		if resp, b := e.get(t, cx.Packets, nil); resp.StatusCode != 200 || !bytes.Equal(b, own) || len(own) <= 24 {
			t.Errorf("connection drill-down: got %d, %d bytes, want the sensor's %d", resp.StatusCode, len(b), len(own))
		}
		for _, bad := range []url.Values{{"kind": {"flow"}}, {"sensor": {"sensor-z"}}, {"proto": {"x'; DROP"}}, {"server": {"nope"}}, {"sort": {"id"}}, {"limit": {"0"}}, {"fliter": {"x"}}} {
			if resp, b := e.get(t, pathExchanges, bad); resp.StatusCode != 400 {
				t.Errorf("%v: got %d %s, want 400", bad, resp.StatusCode, b)
			}
		}
	})

	t.Run("latency", func(t *testing.T) {
		resp, b := e.get(t, pathLatency, url.Values{"by": {"sensor"}})
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %s", resp.StatusCode, b)
		}
		a := decode[LatencyAnswer](t, b)
		got := map[string]LatencyGroup{}
		for _, g := range a.Groups {
			got[g.Sensor] = g
		}
		for n, recs := range want {
			var lat []int64
			for _, r := range recs {
				if l := msgquery.LatencyOf(r); l >= 0 {
					lat = append(lat, l)
				}
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			g := got[n]
			if g.Count != int64(len(lat)) || len(lat) == 0 {
				t.Errorf("%s: count %d, want %d", n, g.Count, len(lat))
				continue
			}
			if g.Max != lat[len(lat)-1] {
				t.Errorf("%s: max %d, want %d", n, g.Max, lat[len(lat)-1])
			}
			// quantileExact(0.5) is the element at floor(0.5*n).
			if p50 := lat[len(lat)/2]; g.P50 != p50 {
				t.Errorf("%s: p50 %d, want %d", n, g.P50, p50)
			}
		}
	})

	t.Run("drilldown", func(t *testing.T) {
		for n, recs := range want {
			var id uint64
			for k := range recs {
				id = k
				break
			}
			path := fmt.Sprintf("/api/v1/messages/%016x/packets", id)
			own := e.sensorGet(t, n, path)
			if len(own) <= 24 {
				t.Fatalf("%s: the sensor's own drill-down is %d bytes: no packets", n, len(own))
			}
			for _, q := range []url.Values{{"sensor": {n}}, nil} {
				resp, b := e.get(t, path, q)
				if resp.StatusCode != 200 || !bytes.Equal(b, own) {
					t.Errorf("%s %v: got %d, %d bytes, want the sensor's own %d bytes, byte for byte", n, q, resp.StatusCode, len(b), len(own))
				}
			}
			ownNg := e.sensorGet(t, n, path+"?format=pcapng")
			if resp, b := e.get(t, path, url.Values{"sensor": {n}, "format": {"pcapng"}}); resp.StatusCode != 200 || !bytes.Equal(b, ownNg) {
				t.Errorf("%s pcapng: got %d, %d bytes, want %d bytes, byte for byte", n, resp.StatusCode, len(b), len(ownNg))
			}
		}
		if resp, _ := e.get(t, "/api/v1/messages/00000000000000ff/packets", nil); resp.StatusCode != 404 {
			t.Errorf("unknown record: got %d, want 404", resp.StatusCode)
		}
	})

	t.Run("merged", func(t *testing.T) {
		// A client seen by sensor-a and, 37 µs later, by sensor-b.
		var host string
		for _, r := range want["sensor-a"] {
			host = r.Client.Addr().String()
			break
		}
		count := func(name string) (int, []int64) {
			var ts []int64
			_, err := e.sensors[name].st.Run(context.Background(), query.Request{From: query.MinTime, To: query.MaxTime, Filter: mustFilter(t, "host "+host)},
				func(p *query.Packet) error { ts = append(ts, p.TS); return nil })
			if err != nil {
				t.Fatal(err)
			}
			return len(ts), ts
		}
		na, _ := count("sensor-a")
		nb, _ := count("sensor-b")
		if na == 0 || na != nb {
			t.Fatalf("host %s: sensor-a holds %d packets, sensor-b %d: want the same, > 0", host, na, nb)
		}
		resp, b := e.get(t, pathPackets, url.Values{"host": {host}, "sensor": {"sensor-a,sensor-b"}})
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %s", resp.StatusCode, b)
		}
		if got := resp.Header.Get(hdrSensors); got != "sensor-a,sensor-b" {
			t.Errorf("%s: got %q", hdrSensors, got)
		}
		if got := resp.Trailer.Get(hdrMissingAft); got != "" {
			t.Errorf("trailer %s: got %q, want empty", hdrMissingAft, got)
		}
		rd, err := pcap.NewReader(bytes.NewReader(b), "merged")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, pcap.MaxSnapLen)
		perIface := map[uint16]int{}
		var prev int64
		for {
			ci, _, err := rd.ReadPacket(buf)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if ci.TS < prev {
				t.Fatalf("merged packets out of time order: %d after %d", ci.TS, prev)
			}
			prev = ci.TS
			perIface[ci.Iface]++
		}
		ifs := rd.Interfaces()
		if len(ifs) != 2 || ifs[0].Name != "sensor-a" || ifs[1].Name != "sensor-b" {
			t.Fatalf("interfaces: got %+v, want sensor-a and sensor-b", ifs)
		}
		if perIface[0] != na || perIface[1] != nb {
			t.Errorf("packets per interface: got %v, want %d and %d", perIface, na, nb)
		}
		// The statement: both sensors' largest reported clock errors added,
		// unknown if either was unsynchronised, from their health reports.
		rows, err := e.client.Query(context.Background(), "SELECT sensor, max(if(name = 'clock_error_ns', value, 0)) AS e, min(if(name = 'clock_synced', value, 1)) AS s FROM tapvault.sensor_health WHERE sensor IN ('sensor-a', 'sensor-b') GROUP BY sensor")
		if err != nil || len(rows) != 2 {
			t.Fatalf("health rows: %v %v", rows, err)
		}
		wantU, sum := "", int64(0)
		for _, r := range rows {
			ev, _ := r["e"].(json.Number).Float64()
			sv, _ := r["s"].(json.Number).Float64()
			if sv == 0 {
				wantU = "unknown"
			}
			sum += int64(ev)
		}
		if wantU == "" {
			wantU = fmt.Sprint(sum)
		}
		if u := resp.Header.Get(hdrUncertainty); u != wantU {
			t.Errorf("%s: got %q, want %q (the two clocks' errors added, or unknown)", hdrUncertainty, u, wantU)
		}
	})

	t.Run("transit", func(t *testing.T) {
		resp, b := e.get(t, pathTransit, url.Values{"limit": {"1000"}, "sensor": {"sensor-a,sensor-b"}})
		if resp.StatusCode != 200 {
			t.Fatalf("got %d %s", resp.StatusCode, b)
		}
		a := decode[TransitAnswer](t, b)
		if len(a.Transits) == 0 {
			t.Fatal("no exchange paired across sensor-a and sensor-b")
		}
		for _, x := range a.Transits {
			if x.First != "sensor-a" || x.Second != "sensor-b" || x.DeltaNs != shiftB {
				t.Fatalf("got %+v, want sensor-a then sensor-b, %d ns apart", x, shiftB)
			}
			if x.Known && x.Uncertain != (x.DeltaNs <= x.Ns) || !x.Known && !x.Uncertain {
				t.Fatalf("uncertainty statement wrong: %+v", x)
			}
		}
	})

	t.Run("unenrolled", func(t *testing.T) {
		s := e.sensors["sensor-a"]
		path := "https://" + s.addr + "/api/v1/stats"
		caPool, _ := fleet.ClientTLSConfig(e.pem("centre"))
		try := func(what string, conf *tls.Config) {
			cl := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}, Timeout: 10 * time.Second}
			resp, err := cl.Get(path)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Errorf("%s: got %d %q, want the handshake refused", what, resp.StatusCode, b)
			}
		}
		try("no certificate", &tls.Config{RootCAs: caPool.RootCAs, ServerName: "sensor-a"})
		other, err := fleet.ClientTLSConfig(filepath.Join(e.other, "centre.crt"), filepath.Join(e.other, "centre.key"), filepath.Join(e.other, fleet.CACertFile))
		if err != nil {
			t.Fatal(err)
		}
		other.RootCAs, other.ServerName = caPool.RootCAs, "sensor-a"
		try("a certificate from another CA", other)
		// Plain HTTP to the TLS port: no API answer.
		resp, err := http.Get("http://" + s.addr + "/api/v1/stats")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 || bytes.Contains(b, []byte("segments")) {
				t.Errorf("plain HTTP: got %d %q", resp.StatusCode, b)
			}
		}
		// The enrolled centre is served.
		if b := e.sensorGet(t, "sensor-a", "/api/v1/stats"); !json.Valid(b) {
			t.Errorf("enrolled: got %q", b)
		}
	})

	t.Run("sensors", func(t *testing.T) {
		resp, b := e.get(t, pathSensors, nil)
		a := decode[SensorsAnswer](t, b)
		if resp.StatusCode != 200 || len(a.Sensors) != 3 || len(a.Missing) != 0 || a.MetadataError != "" {
			t.Fatalf("got %d %+v", resp.StatusCode, a)
		}
		for _, s := range a.Sensors {
			if !s.Reachable || s.Busy || s.Error != "" {
				t.Errorf("%s: reachable %v busy %v error %q, want reachable, idle", s.Name, s.Reachable, s.Busy, s.Error)
			}
			// Sensors in this process share the centre's clock: the
			// measured offset must lie within its stated uncertainty
			// (plus the clock reads' own cost).
			if o := s.ClockOffset; o == nil || abs(o.Ns) > o.UncertaintyNs+int64(time.Millisecond) || !o.Uncertain && abs(o.Ns) <= o.UncertaintyNs {
				t.Errorf("%s: clock offset %+v, want |ns| within its uncertainty", s.Name, o)
			}
			if _, ok := s.Health[fleet.HealthLagNs]; !ok {
				t.Errorf("%s: no %s in its health %v", s.Name, fleet.HealthLagNs, s.Health)
			}
			if s.Clock == nil || s.Clock.Synced != (s.Health[fleet.HealthClockSynced].Value == 1) {
				t.Errorf("%s: clock %+v, want the state of its health report %v", s.Name, s.Clock, s.Health)
			}
		}
	})

	t.Run("clickhouse-down", func(t *testing.T) {
		e.ch.Stop()
		defer func() {
			e.ch.Start()
			e.centre.ProbeNow(context.Background())
		}()
		e.centre.ProbeNow(context.Background())
		if resp, b := e.get(t, pathExchanges, nil); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("exchanges with ClickHouse down: got %d %s, want 503", resp.StatusCode, b)
		}
		resp, b := e.get(t, pathSensors, nil)
		a := decode[SensorsAnswer](t, b)
		if resp.StatusCode != 200 || a.MetadataError == "" || len(a.Missing) != 0 || len(a.Sensors[0].Health) == 0 {
			t.Errorf("sensors with ClickHouse down: got %d, metadata_error %q, missing %v, want 200, the error, none missing, the last health kept", resp.StatusCode, a.MetadataError, a.Missing)
		}
		// A drill-down naming its sensor needs no metadata.
		var id uint64
		for k := range want["sensor-b"] {
			id = k
			break
		}
		path := fmt.Sprintf("/api/v1/messages/%016x/packets", id)
		own := e.sensorGet(t, "sensor-b", path)
		if resp, b := e.get(t, path, url.Values{"sensor": {"sensor-b"}}); resp.StatusCode != 200 || !bytes.Equal(b, own) {
			t.Errorf("drill-down with ClickHouse down: got %d, %d bytes, want the sensor's %d", resp.StatusCode, len(b), len(own))
		}
	})

	// Last: it stops a sensor.
	t.Run("missing", func(t *testing.T) {
		e.sensors["sensor-c"].halt()
		e.centre.ProbeNow(context.Background())
		resp, b := e.get(t, pathExchanges, url.Values{"limit": {"5"}})
		a := decode[ExchangesAnswer](t, b)
		if resp.StatusCode != 200 || a.Total != int64(total) || len(a.Missing) != 1 || a.Missing[0] != "sensor-c" {
			t.Fatalf("exchanges with sensor-c down: got %d total %d missing %v, want 200, %d, [sensor-c]", resp.StatusCode, a.Total, a.Missing, total)
		}
		_, b = e.get(t, pathSensors, nil)
		sa := decode[SensorsAnswer](t, b)
		if len(sa.Missing) != 1 || sa.Missing[0] != "sensor-c" {
			t.Errorf("sensors: missing %v, want [sensor-c]", sa.Missing)
		}
		var id uint64
		for k := range want["sensor-c"] {
			id = k
			break
		}
		resp, b = e.get(t, fmt.Sprintf("/api/v1/messages/%016x/packets", id), url.Values{"sensor": {"sensor-c"}})
		if resp.StatusCode != http.StatusBadGateway || !bytes.Contains(b, []byte(`"missing":["sensor-c"]`)) {
			t.Errorf("drill-down to sensor-c: got %d %s, want 502 naming it missing", resp.StatusCode, b)
		}
		resp, b = e.get(t, pathPackets, url.Values{"limit": {"50"}})
		if resp.StatusCode != 200 || resp.Header.Get(hdrMissing) != "sensor-c" || resp.Header.Get(hdrSensors) != "sensor-a,sensor-b" {
			t.Errorf("packets with sensor-c down: got %d, sensors %q, missing %q", resp.StatusCode, resp.Header.Get(hdrSensors), resp.Header.Get(hdrMissing))
		}
		if rd, err := pcap.NewReader(bytes.NewReader(b), "partial"); err != nil {
			t.Errorf("partial answer is not pcapng: %v", err)
		} else {
			n := 0
			buf := make([]byte, pcap.MaxSnapLen)
			for {
				if _, _, err := rd.ReadPacket(buf); err != nil {
					break
				}
				n++
			}
			if n != 50 {
				t.Errorf("partial answer: %d packets, want the limit, 50", n)
			}
		}
		_, b = e.get(t, pathMetrics, nil)
		for _, line := range []string{`tapvault_fleet_sensor_reachable{sensor="sensor-c"} 0`, `tapvault_fleet_sensor_reachable{sensor="sensor-a"} 1`, `tapvault_fleet_sensor_ship_lag_seconds{sensor="sensor-a"}`,
			`tapvault_fleet_sensor_disk_free_bytes{sensor="sensor-a"}`, `tapvault_fleet_sensor_clock_synced{sensor="sensor-b"}`,
			`tapvault_fleet_sensor_clock_error_seconds{sensor="sensor-c"}`} {
			if !strings.Contains(string(b), line) {
				t.Errorf("metrics lack %q", line)
			}
		}
	})
}

func mustFilter(t *testing.T, s string) *query.Filter {
	t.Helper()
	f, err := query.ParseFilter(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCrossClock(t *testing.T) {
	sync := func(e int64) clockState { return clockState{Source: "ntp", Synced: true, ErrorNs: e} }
	for _, tc := range []struct {
		fig      int64
		a, b     clockState
		okA, okB bool
		want     Uncertainty
	}{
		{37000, sync(1000), sync(2000), true, true, Uncertainty{Ns: 3000, Known: true}},
		{-2000, sync(1000), sync(2000), true, true, Uncertainty{Ns: 3000, Known: true, Uncertain: true}},
		{3000, sync(1000), sync(2000), true, true, Uncertainty{Ns: 3000, Known: true, Uncertain: true}},
		{37000, sync(1000), clockState{Source: "unsynchronised"}, true, true, Uncertainty{Ns: -1, Uncertain: true}},
		{37000, sync(1000), sync(0), true, false, Uncertainty{Ns: -1, Uncertain: true}},
	} {
		if got := crossClock(tc.fig, tc.a, tc.b, tc.okA, tc.okB); got != tc.want {
			t.Errorf("crossClock(%d, %+v, %+v): got %+v, want %+v", tc.fig, tc.a, tc.b, got, tc.want)
		}
	}
	cl := map[string]clockState{"a": sync(5), "b": sync(7), "c": sync(100)}
	if got := orderUncertainty([]string{"a", "b", "c"}, cl); got != "107" {
		t.Errorf("orderUncertainty: got %s, want 107 (the two largest)", got)
	}
	if got := orderUncertainty([]string{"a"}, cl); got != "0" {
		t.Errorf("one sensor: got %s, want 0", got)
	}
	cl["b"] = clockState{Source: "unsynchronised"}
	if got := orderUncertainty([]string{"a", "b"}, cl); got != "unknown" {
		t.Errorf("an unsynchronised clock: got %s, want unknown", got)
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "fleet.yaml")
		if err := writeFile(p, s); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "clickhouse:\n  url: http://127.0.0.1:8123\ntls:\n  cert: c.crt\n  key: c.key\n  ca: ca.crt\nsensors:\n  sensor-a: 10.0.0.1:9443\n"
	c, err := LoadConfig(write(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClickHouse.Database != DefaultDatabase || c.TLS.Cert != filepath.Join(dir, "c.crt") || c.ProbeInterval != DefaultProbeInterval {
		t.Errorf("defaults: got %+v", c)
	}
	for _, bad := range []string{
		strings.Replace(good, "sensors:", "sensorz:", 1),
		strings.Replace(good, "sensor-a:", "Sensor_A:", 1),
		strings.Replace(good, "10.0.0.1:9443", "10.0.0.1", 1),
		strings.Replace(good, "  url: http://127.0.0.1:8123\n", "  url: http://x\n  database: \"a;b\"\n", 1),
		strings.Replace(good, "  ca: ca.crt\n", "", 1),
		good + "probe_timeout: 10s\nprobe_interval: 1s\n",
	} {
		if _, err := LoadConfig(write(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}

	// Locations: checked against the sensors; the probes as a sensor
	// would, without resolving names.
	locs := good + "  sensor-b: 10.0.0.2:9443\nlocations:\n  paris:\n    sensors: [sensor-a]\n    allow: [10.20.0.0/16]\n    probes: [{name: web, kind: http, target: \"http://shop.internal/\"}]\n  lagos:\n    sensors: [sensor-b]\n"
	if c, err := LoadConfig(write(locs)); err != nil || len(c.Locations) != 2 || c.Locations["paris"].Probes[0].Name != "web" {
		t.Fatalf("locations: got %+v, %v", c, err)
	}
	for bad, want := range map[string]string{
		strings.Replace(locs, "sensors: [sensor-b]", "sensors: [sensor-c]", 1):                                                                        `locations: lagos: sensor "sensor-c" is not among the sensors`,
		strings.Replace(locs, "sensors: [sensor-b]", "sensors: [sensor-b, sensor-a]", 1):                                                              `sensor "sensor-a" is in two locations (lagos, paris)`,
		strings.Replace(locs, "allow: [10.20.0.0/16]", "allow: [10.21.0.0/16]", 1) + "    probes: [{name: x, kind: tcp, target: \"10.20.0.9:80\"}]\n": "outside the allow-list",
		strings.Replace(locs, "    allow:", "    alow:", 1):                                                                                           "field alow not found",
	} {
		if _, err := LoadConfig(write(bad)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }
