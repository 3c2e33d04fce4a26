package groundtruth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/fleet"
	"tapvault/internal/chtest"
	"tapvault/msgstore"
	"tapvault/tracegen"
)

// The fleet end to end (issue 15 §4), every part its own process:
//
//	root namespace                          sensor namespace gt-PID-fleetN (x3)
//	tcpreplay -> tvfN-PID ══ veth ══ cap0 -> tapvault capture --iface cap0
//	clickhouse-server 127.0.0.1:P  <- fwd <- 127.0.0.1:8123  (--fleet-clickhouse)
//	tapvault serve --fleet -> fwd 127.0.0.1:Q -> 127.0.0.1:9443 (--fleet-listen, mTLS)
//
// The forwards (nsforward.go) are the management network: the capture
// interface carries only the replayed traffic, so shipping and the fleet
// port's TLS are never captured and never become records themselves.
//
// The checks: ClickHouse holds each sensor's records once (FINAL, distinct
// IDs and the centre's totals equal the sensor's own store); ClickHouse
// stopped for 60 s while traffic flows loses nothing and duplicates
// nothing once the ship lag is back to 0; the centre's drill-down of an
// exchange on each sensor is byte-identical to tapvault query --message on
// that sensor's store; a client without a fleet certificate, or with one
// from another CA, gets nothing from a fleet port; a killed sensor is named
// missing while the centre answers, and a fleet ship of its store after the
// crash completes its records.

const (
	fleetSensors   = 3
	fleetOutage    = 60 * time.Second
	fleetTracePkts = 3000
	fleetPPS       = 1500
	// fleetWait bounds each wait for the fleet to settle. The shipper's
	// retry backoff reaches 30 s during a 60 s outage, so the catch-up
	// after it can take that long before the first retry.
	fleetWait = 90 * time.Second
)

// fleetNeeds skips, saying why, when the scenario cannot run here.
func fleetNeeds(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("three captures in namespaces, ClickHouse and a 60 s outage")
	}
	if os.Geteuid() != 0 {
		t.Skip("the fleet end to end needs root (network namespaces, veth pairs, AF_PACKET)")
	}
	var missing []string
	for _, p := range []string{"ip", "ethtool", "sysctl", "tcpreplay"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		t.Skipf("the fleet end to end needs %s (scripts/setup.sh installs them)", strings.Join(missing, ", "))
	}
}

// fleetSensor is one sensor of the scenario.
type fleetSensor struct {
	name, ns, veth, store string
	chFwd, portFwd        *nsForward // ClickHouse into the namespace; the fleet port out of it
	p                     *proc
	traces                []string
}

// storeCount is what a sensor's message store holds by its own reading.
type storeCount struct {
	records   int // frames' records, copies included
	distinct  int // distinct record IDs
	exchanges int // distinct IDs of exchange records (not class flow)
}

func countFleetStore(dir string) (storeCount, error) {
	rd, err := msgstore.OpenReader(dir)
	if err != nil {
		return storeCount{}, err
	}
	defer rd.Close()
	var c storeCount
	ids := map[uint64]bool{}
	err = rd.Scan(context.Background(), msgstore.Query{}, func(r *analytics.Record) error {
		c.records++
		if !ids[r.ID] {
			ids[r.ID] = true
			if r.Class != analytics.ClassFlow {
				c.exchanges++
			}
		}
		return nil
	})
	c.distinct = len(ids)
	return c, err
}

func TestFleetEndToEnd(t *testing.T) {
	fleetNeeds(t)
	began := time.Now()
	RemoveStale()
	ch := chtest.Start(t) // skips when clickhouse-server is not installed
	tapvault := os.Getenv("TAPVAULT_BIN")
	dir := t.TempDir()
	if tapvault == "" {
		tapvault = filepath.Join(dir, "tapvault")
		if out, err := exec.Command("go", "build", "-o", tapvault, "tapvault/cmd/tapvault").CombinedOutput(); err != nil {
			t.Fatalf("build tapvault: %v: %s", err, out)
		}
	}
	tv := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tapvault, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("tapvault %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// Certificates: the fleet's CA, a certificate per sensor and one for
	// the centre; and a second CA with a member of its own, for the
	// intruder.
	caDir, certs := filepath.Join(dir, "ca"), filepath.Join(dir, "certs")
	otherCA, otherCerts := filepath.Join(dir, "other-ca"), filepath.Join(dir, "other-certs")
	tv("fleet", "enroll", "--ca", caDir, "init")
	tv("fleet", "enroll", "--ca", otherCA, "init")
	tv("fleet", "enroll", "--ca", otherCA, "--name", "centre", "--out", otherCerts)
	var sensors []*fleetSensor
	for i := 1; i <= fleetSensors; i++ {
		sensors = append(sensors, &fleetSensor{
			name:  fmt.Sprintf("s%d", i),
			ns:    fmt.Sprintf("%s%d-fleet%d", nsPrefix, os.Getpid(), i),
			veth:  fmt.Sprintf("tvf%d-%d", i, os.Getpid()),
			store: filepath.Join(dir, fmt.Sprintf("s%d", i)),
		})
		tv("fleet", "enroll", "--ca", caDir, "--name", sensors[i-1].name, "--out", certs)
	}
	tv("fleet", "enroll", "--ca", caDir, "--name", "centre", "--out", certs)
	tv("fleet", "init", "--clickhouse", ch.URL)
	chAddr := strings.TrimPrefix(ch.URL, "http://")

	// Traces: two per sensor (before and during the outage), each its own
	// seed, generated while nothing else runs.
	for i, s := range sensors {
		for k := 0; k < 2; k++ {
			tr := filepath.Join(dir, fmt.Sprintf("%s-%d.pcap", s.name, k))
			if _, err := tracegen.GenerateFile(tr, tracegen.Options{Kind: tracegen.KindApp, Packets: fleetTracePkts, Seed: int64(100 + 10*i + k), PPS: fleetPPS}); err != nil {
				t.Fatal(err)
			}
			s.traces = append(s.traces, tr)
		}
	}

	var procs []*proc // every long-running process, for the log tails
	dumpLogs := func() {
		for _, p := range procs {
			t.Logf("--- %s (exited: %v, %v):\n%s", p.name, p.exited(), p.err, tail(p.log.Bytes()))
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs()
		}
		for _, p := range procs {
			p.signal(syscall.SIGKILL, 5*time.Second)
		}
		for _, s := range sensors {
			if s.chFwd != nil {
				s.chFwd.Close()
			}
			if s.portFwd != nil {
				s.portFwd.Close()
			}
			deleteNS(s.ns) // also deletes the veth pair
		}
	})

	// Namespaces, veths, forwards and captures.
	for _, s := range sensors {
		for _, args := range [][]string{
			{"ip", "netns", "add", s.ns},
			{"ip", "-n", s.ns, "link", "set", "lo", "up"},
			{"ip", "link", "add", s.veth, "type", "veth", "peer", "name", "cap0", "netns", s.ns},
			// No router solicitations or MLD from either end: only the
			// replayed packets cross the link.
			{"sysctl", "-qw", "net.ipv6.conf." + s.veth + ".disable_ipv6=1"},
			{"ip", "netns", "exec", s.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"},
			{"ethtool", "-K", s.veth, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off"},
			{"ip", "netns", "exec", s.ns, "ethtool", "-K", "cap0", "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off"},
			{"ip", "link", "set", s.veth, "up"},
			{"ip", "-n", s.ns, "link", "set", "cap0", "up"},
		} {
			if err := run(args...); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		if s.chFwd, err = newNSForward(s.ns, "127.0.0.1:8123", "", chAddr); err != nil {
			t.Fatal(err)
		}
		if s.portFwd, err = newNSForward("", "127.0.0.1:0", s.ns, "127.0.0.1:9443"); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("nice", "-n", "-10", tapvault, "capture", "--iface", "cap0", "--data", s.store,
			"--listen", "127.0.0.1:8080", "--seal-after", "200ms", "--stats-interval", "10s",
			"--fleet-clickhouse", "http://127.0.0.1:8123", "--sensor", s.name,
			"--fleet-listen", "127.0.0.1:9443", "--fleet-cert", filepath.Join(certs, s.name+".crt"),
			"--fleet-key", filepath.Join(certs, s.name+".key"), "--fleet-ca", filepath.Join(certs, "ca.crt"))
		if s.p, err = startNS(s.ns, "tapvault capture "+s.name, cmd); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, s.p)
	}
	for _, s := range sensors {
		waitLog(t, s.p, "capturing through the kernel", 60*time.Second)
		waitLog(t, s.p, "fleet port listening", 60*time.Second)
	}

	// The centre, in the root namespace.
	centreAddr := freeLoopback(t)
	cfg := fmt.Sprintf("clickhouse:\n  url: %s\ntls:\n  cert: certs/centre.crt\n  key: certs/centre.key\n  ca: certs/ca.crt\nsensors:\n", ch.URL)
	for _, s := range sensors {
		cfg += fmt.Sprintf("  %s: %s\n", s.name, s.portFwd.Addr())
	}
	cfg += "probe_interval: 2s\nprobe_timeout: 2s\n"
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	centre, err := startNS("", "tapvault serve --fleet", exec.Command(tapvault, "serve", "--fleet", filepath.Join(dir, "fleet.yaml"), "--listen", centreAddr))
	if err != nil {
		t.Fatal(err)
	}
	procs = append(procs, centre)
	base := "http://" + centreAddr
	web := &http.Client{Timeout: 60 * time.Second}
	get := func(path string) (*http.Response, []byte, error) {
		resp, err := web.Get(base + path)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	waitSensors := func(want map[string]bool) {
		t.Helper()
		var last string
		deadline := time.Now().Add(fleetWait)
		for ; time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if centre.exited() {
				t.Fatalf("the centre exited (%v):\n%s", centre.err, tail(centre.log.Bytes()))
			}
			resp, b, err := get("/api/v1/fleet/sensors")
			if err != nil || resp.StatusCode != 200 {
				last = fmt.Sprint(err, resp, string(b))
				continue
			}
			var a struct {
				Sensors []struct {
					Name      string
					Reachable bool
				}
			}
			if err := json.Unmarshal(b, &a); err != nil {
				t.Fatalf("centre's sensors view: %v in %s", err, b)
			}
			ok := len(a.Sensors) == len(want)
			for _, x := range a.Sensors {
				ok = ok && want[x.Name] == x.Reachable
			}
			if last = string(b); ok {
				return
			}
		}
		t.Fatalf("centre's sensors view after %v: %s; want reachable %v", fleetWait, last, want)
	}
	waitSensors(map[string]bool{"s1": true, "s2": true, "s3": true})
	t.Logf("three sensors and the centre up after %.1f s", time.Since(began).Seconds())

	// The centre's own client: reads a sensor's /metrics over its fleet
	// port, as the centre would.
	ctls, err := fleet.ClientTLSConfig(filepath.Join(certs, "centre.crt"), filepath.Join(certs, "centre.key"), filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	shipLag := func(s *fleetSensor) (float64, error) {
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: fleet.ForSensor(ctls, s.name)}}
		defer cl.CloseIdleConnections()
		resp, err := cl.Get("https://" + s.portFwd.Addr() + "/metrics")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("/metrics: %s", resp.Status)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "tapvault_fleet_ship_lag_seconds" {
				return strconv.ParseFloat(f[1], 64)
			}
		}
		return 0, fmt.Errorf("no tapvault_fleet_ship_lag_seconds in the sensor's /metrics")
	}

	replayAll := func(k int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, len(sensors))
		for i, s := range sensors {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = run("tcpreplay", "-q", "-i", s.veth, "--pps", strconv.Itoa(fleetPPS), s.traces[k])
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}

	// chCounts is what ClickHouse holds of a sensor: rows as stored
	// (copies included), rows with FINAL, and distinct IDs.
	type chCount struct{ raw, final, distinct int }
	chCounts := func(name string) chCount {
		t.Helper()
		var c chCount
		for _, q := range []struct {
			v   *int
			sql string
		}{
			{&c.raw, "SELECT count() FROM tapvault.records WHERE sensor = '%s'"},
			{&c.final, "SELECT count() FROM tapvault.records FINAL WHERE sensor = '%s'"},
			{&c.distinct, "SELECT uniqExact(id) FROM tapvault.records WHERE sensor = '%s'"},
		} {
			n, err := strconv.Atoi(strings.TrimSpace(ch.Query(fmt.Sprintf(q.sql, name))))
			if err != nil {
				t.Fatal(err)
			}
			*q.v = n
		}
		return c
	}

	// settled waits until every running sensor reports a ship lag of 0 and
	// ClickHouse holds exactly its store's records, once each, at one look.
	settled := func(when string, running []*fleetSensor) map[string]storeCount {
		t.Helper()
		got := map[string]storeCount{}
		deadline := time.Now().Add(fleetWait)
		for _, s := range running {
			var last string
			for {
				lag, lerr := shipLag(s)
				sc, serr := countFleetStore(s.store)
				c := chCounts(s.name)
				if lerr == nil && serr == nil && lag == 0 && sc.distinct > 0 && c.final == sc.distinct && c.distinct == sc.distinct {
					got[s.name] = sc
					t.Logf("%s: %s: store %d records (%d distinct, %d exchanges); ClickHouse %d FINAL, %d distinct, %d rows stored",
						when, s.name, sc.records, sc.distinct, sc.exchanges, c.final, c.distinct, c.raw)
					break
				}
				last = fmt.Sprintf("ship lag %v s (%v), store %+v (%v), ClickHouse %+v", lag, lerr, sc, serr, c)
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s not settled after %v: %s", when, s.name, fleetWait, last)
				}
				time.Sleep(500 * time.Millisecond)
			}
		}
		return got
	}

	// 1. Traffic; ClickHouse holds each sensor's records once.
	replayAll(0)
	before := settled("after the first replay", sensors)

	// 2. Drill-down from the centre, for an exchange on each sensor.
	for _, s := range sensors {
		resp, b, err := get("/api/v1/fleet/exchanges?limit=1&proto=http&sort=req_first&sensor=" + s.name)
		var a struct {
			Exchanges []struct{ ID, Sensor, Packets string }
		}
		if err != nil || resp.StatusCode != 200 || json.Unmarshal(b, &a) != nil || len(a.Exchanges) != 1 || a.Exchanges[0].Sensor != s.name {
			t.Fatalf("%s: an http exchange from the centre: %v %v %s", s.name, err, resp, b)
		}
		x := a.Exchanges[0]
		resp, viaCentre, err := get(x.Packets)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: centre drill-down %s: %v %v %s", s.name, x.Packets, err, resp, viaCentre)
		}
		own, err := exec.Command(tapvault, "query", "--data", s.store, "--message", x.ID, "-w", "-").Output()
		if err != nil {
			t.Fatalf("%s: tapvault query --message %s: %v", s.name, x.ID, err)
		}
		if len(own) <= 24 || !bytes.Equal(viaCentre, own) {
			t.Errorf("%s: the centre's drill-down of %s is %d bytes, tapvault query --message on the sensor's store %d: want the same bytes", s.name, x.ID, len(viaCentre), len(own))
		} else {
			t.Logf("%s: drill-down of %s: %d bytes, identical", s.name, x.ID, len(own))
		}
	}

	// 3. mTLS: no certificate, or one from another CA: nothing.
	otherTLS, err := fleet.ClientTLSConfig(filepath.Join(otherCerts, "centre.crt"), filepath.Join(otherCerts, "centre.key"), filepath.Join(otherCerts, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	otherTLS.InsecureSkipVerify = true // the intruder does not care who the sensor is
	for _, c := range []struct {
		who  string
		conf *tls.Config
	}{
		{"a client without a certificate", &tls.Config{InsecureSkipVerify: true}},
		{"a client with a certificate from another CA", otherTLS},
	} {
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c.conf}}
		for _, path := range []string{"/api/v1/fleet/ping", "/api/v1/messages?limit=1", "/metrics"} {
			resp, err := cl.Get("https://" + sensors[0].portFwd.Addr() + path)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Errorf("%s got %s %q from %s: want the handshake refused", c.who, resp.Status, b, path)
			}
		}
		cl.CloseIdleConnections()
	}
	// The same with curl, an unenrolled client that is not Go's TLS.
	if _, err := exec.LookPath("curl"); err == nil {
		for _, c := range []struct{ who, args string }{
			{"curl without a certificate", ""},
			{"curl with a certificate from another CA", "--cert " + filepath.Join(otherCerts, "centre.crt") + " --key " + filepath.Join(otherCerts, "centre.key")},
		} {
			args := append([]string{"-sk", "--max-time", "10"}, strings.Fields(c.args)...)
			out, err := exec.Command("curl", append(args, "https://"+sensors[0].portFwd.Addr()+"/api/v1/messages?limit=1")...).Output()
			if err == nil || len(out) > 0 {
				t.Errorf("%s: exit %v, %d bytes %q: want a failed handshake and nothing", c.who, err, len(out), out)
			}
		}
	}
	// (shipLag reads /metrics through the same forward with the centre's
	// certificate: the refusals above are the certificates', not the path's.)

	// 4. ClickHouse down for a minute while the captures run and traffic
	// flows: the lag grows and the centre still answers the sensors view.
	// One sensor is killed (SIGKILL) during the outage, holding records it
	// could not ship.
	live, dead := sensors[:2], sensors[2]
	ch.Stop()
	down := time.Now()
	replayAll(1)
	for _, s := range sensors {
		for {
			lag, err := shipLag(s)
			if err == nil && lag > 0 {
				t.Logf("%s: ship lag %.1f s during the outage", s.name, lag)
				break
			}
			if time.Since(down) > fleetOutage {
				t.Fatalf("%s: ship lag %v (%v) after %v of outage with traffic: want it above 0", s.name, lag, err, fleetOutage)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	dead.p.signal(syscall.SIGKILL, 5*time.Second)
	deadCount, err := countFleetStore(dead.store)
	if err != nil {
		t.Fatal(err)
	}
	if n := before[dead.name].distinct; deadCount.distinct <= n {
		t.Fatalf("%s killed with %d records in its store, %d before the outage: want the outage's records in it", dead.name, deadCount.distinct, n)
	}
	t.Logf("%s killed during the outage: %d records in its store, %d shipped before", dead.name, deadCount.distinct, before[dead.name].distinct)
	resp, b, err := get("/api/v1/fleet/sensors")
	var sa struct {
		MetadataError string `json:"metadata_error"`
	}
	if err != nil || resp.StatusCode != 200 || json.Unmarshal(b, &sa) != nil || sa.MetadataError == "" {
		t.Errorf("centre's sensors view with ClickHouse down: %v %v %s; want 200 with the metadata error", err, resp, b)
	}
	time.Sleep(fleetOutage - time.Since(down))
	ch.Start()
	up := time.Now()
	after := settled("after a 60 s outage", live)
	t.Logf("caught up %.1f s after ClickHouse returned", time.Since(up).Seconds())
	for _, s := range live {
		if after[s.name].distinct <= before[s.name].distinct {
			t.Errorf("%s: %d records after the outage's traffic, %d before: the second replay made none", s.name, after[s.name].distinct, before[s.name].distinct)
		}
		// The centre's totals (FINAL) agree: no copy visible to a query.
		resp, b, err := get("/api/v1/fleet/exchanges?limit=1&sensor=" + s.name)
		var a struct{ Total int }
		if err != nil || resp.StatusCode != 200 || json.Unmarshal(b, &a) != nil {
			t.Fatalf("%s: centre's exchanges: %v %v %s", s.name, err, resp, b)
		}
		if a.Total != after[s.name].exchanges {
			t.Errorf("%s: the centre counts %d exchanges, the sensor's store %d", s.name, a.Total, after[s.name].exchanges)
		}
	}

	// 5. The killed sensor: named missing, and the centre still answers.
	waitSensors(map[string]bool{"s1": true, "s2": true, "s3": false})
	resp, b, err = get("/api/v1/fleet/exchanges?limit=5")
	if err != nil || resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"missing":["s3"]`)) || !bytes.Contains(b, []byte(`"exchanges":[{`)) {
		t.Errorf("exchanges with s3 down: %v %v %s; want 200 with exchanges, naming s3 missing", err, resp, b)
	}
	resp, b, err = get("/api/v1/fleet/latency")
	if err != nil || resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"missing":["s3"]`)) {
		t.Errorf("latency with s3 down: %v %v %s; want 200 naming s3 missing", err, resp, b)
	}
	resp, b, err = get("/api/v1/packets?limit=50")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Tapvault-Missing") != "s3" || len(b) <= 28 {
		t.Errorf("packets with s3 down: %v %v, %d bytes, missing %q; want 200 with packets, naming s3", err, resp, len(b), resp.Header.Get("X-Tapvault-Missing"))
	} else {
		t.Logf("packets with s3 down: %d bytes from %q, missing %q", len(b), resp.Header.Get("X-Tapvault-Sensors"), resp.Header.Get("X-Tapvault-Missing"))
	}

	// 6. The end: the live sensors stop cleanly and ship their last
	// records; the killed one's store is shipped by fleet ship after the
	// crash. Every store's records are in ClickHouse once.
	for _, s := range live {
		if err := s.p.signal(syscall.SIGINT, 60*time.Second); err != nil {
			t.Fatalf("%s: capture's exit: %v\n%s", s.name, err, tail(s.p.log.Bytes()))
		}
		t.Logf("%s's capture: %s; %s", s.name, lastLine(s.p.log.String(), "total "), lastLine(s.p.log.String(), "analytics "))
	}
	t.Logf("fleet ship of the killed sensor's store: %s", strings.TrimSpace(tv("fleet", "ship", "--data", dead.store, "--sensor", dead.name, "--clickhouse", ch.URL)))
	for _, s := range sensors {
		sc, err := countFleetStore(s.store)
		if err != nil {
			t.Fatal(err)
		}
		c := chCounts(s.name)
		if c.final != sc.distinct || c.distinct != sc.distinct {
			t.Errorf("%s at the end: ClickHouse %d FINAL, %d distinct; the store %d distinct", s.name, c.final, c.distinct, sc.distinct)
		}
		t.Logf("%s at the end: store %d records (%d distinct); ClickHouse %d FINAL, %d rows stored", s.name, sc.records, sc.distinct, c.final, c.raw)
	}
	if d := time.Since(began); d > 3*time.Minute {
		t.Logf("took %.0f s: over the 3 minutes it should take", d.Seconds())
	} else {
		t.Logf("took %.0f s", d.Seconds())
	}
}

// waitLog waits until p's output contains s, failing with its tail if p
// exits first or the wait runs out.
func waitLog(t *testing.T, p *proc, s string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); !strings.Contains(p.log.String(), s); time.Sleep(50 * time.Millisecond) {
		if p.exited() {
			t.Fatalf("%s exited (%v) before %q:\n%s", p.name, p.err, s, tail(p.log.Bytes()))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q after %v:\n%s", p.name, s, d, tail(p.log.Bytes()))
		}
	}
}

// freeLoopback returns a loopback address whose port was free a moment ago.
func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lastLine is the last line of out that starts with prefix.
func lastLine(out, prefix string) string {
	var l string
	for _, x := range strings.Split(out, "\n") {
		if x = strings.TrimSpace(x); strings.HasPrefix(x, prefix) {
			l = strings.Join(strings.Fields(x), " ")
		}
	}
	return l
}
