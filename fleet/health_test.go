package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tapvault/msgstore"
)

// healthStore is a store of a few records, for a shipper whose health is
// under test.
func healthStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	w, err := msgstore.OpenWriter(dir, msgstore.Options{FrameRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Minute).UnixNano()
	for i := range 20 {
		if err := w.Append(testRecord(i, t0+int64(i)*1e6)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return dir
}

// healthTimes returns the times of s1's reports in ClickHouse, in order,
// one per row of the lag counter (every report carries it): a report
// present twice shows as a repeated time.
func healthTimes(t *testing.T, c *Client) []int64 {
	t.Helper()
	rows, err := c.Query(context.Background(), "SELECT ts FROM sensor_health WHERE sensor = 's1' AND name = '"+HealthLagNs+"' ORDER BY ts")
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, r := range rows {
		v, err := strconv.ParseInt(r["ts"].(string), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// TestShipHealthOutage stops ClickHouse for 3 s while a following shipper
// takes a health report every 200 ms: the reports due during the outage
// are queued and arrive, in order, once ClickHouse is back, each exactly
// once, with no gap in the series.
func TestShipHealthOutage(t *testing.T) {
	srv, c := startCH(t)
	const every = 200 * time.Millisecond
	sh, err := NewShipper(Options{Dir: healthStore(t), Sensor: "s1", Client: c, Poll: 100 * time.Millisecond,
		HealthEvery: every, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx, true) }()
	waitFor := func(what string, ok func(Stats) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok(sh.Stats()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30 s (shipper %+v)", what, sh.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("two reports shipped", func(st Stats) bool { return st.HealthSent >= 2 })
	srv.Kill()
	down := time.Now().UnixNano()
	time.Sleep(3 * time.Second)
	if st := sh.Stats(); st.HealthQueued < 5 || st.HealthErrors == 0 {
		t.Errorf("mid-outage: got %d reports queued, %d failed attempts; want at least 5 queued (one every %s) and failures counted", st.HealthQueued, st.HealthErrors, every)
	}
	srv.Start()
	up := time.Now().UnixNano()
	waitFor("the queue sent", func(st Stats) bool { return st.HealthQueued == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := sh.Stats()
	if st.HealthDropped != 0 || st.HealthQueued != 0 {
		t.Fatalf("after the outage: got %+v, want nothing dropped or queued", st)
	}
	ts := healthTimes(t, c)
	if uint64(len(ts)) != st.HealthSent {
		t.Fatalf("reports in ClickHouse: got %d, want %d (every one taken, once)", len(ts), st.HealthSent)
	}
	during := 0
	for i, x := range ts {
		if i > 0 && x == ts[i-1] {
			t.Fatalf("report at %d is in ClickHouse twice", x)
		}
		// Taken on time throughout: no hole where the 3 s outage was
		// (the slack is for a loaded machine).
		if i > 0 && time.Duration(x-ts[i-1]) > every+2*time.Second {
			t.Errorf("reports %d and %d are %s apart: want about %s", i-1, i, time.Duration(x-ts[i-1]), every)
		}
		if x > down && x < up {
			during++
		}
	}
	if during < 5 {
		t.Fatalf("reports taken during the outage and present now: got %d, want at least 5", during)
	}
	n, _ := strconv.Atoi(value(t, c, "SELECT count() FROM sensor_health WHERE sensor = 's1'"))
	if d, _ := strconv.Atoi(value(t, c, "SELECT count() FROM (SELECT DISTINCT sensor, ts, name FROM sensor_health)")); d != n {
		t.Fatalf("sensor_health rows: got %d, %d distinct: want no duplicate", n, d)
	}
	t.Logf("%d reports, %d taken during the %.1f s outage; %d rows", len(ts), during, float64(up-down)/1e9, n)
}

// lossyTransport passes requests to ClickHouse and, while lose is set,
// loses the answer to every INSERT into sensor_health after ClickHouse has
// run it: the shipper sees a failure for rows that were written. It
// records the report times of each insert that got its answer, in order.
type lossyTransport struct {
	lose atomic.Bool
	mu   sync.Mutex
	sent [][]int64
}

func (l *lossyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	insert := strings.HasPrefix(req.URL.Query().Get("query"), "INSERT INTO sensor_health")
	var body []byte
	if insert && req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !insert {
		return resp, err
	}
	if l.lose.Load() {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errors.New("connection reset (test: the answer was lost after the insert)")
	}
	var ts []int64
	for line := range bytes.Lines(body) {
		var r healthRow
		if json.Unmarshal(line, &r) == nil && (len(ts) == 0 || ts[len(ts)-1] != r.TS) {
			ts = append(ts, r.TS)
		}
	}
	l.mu.Lock()
	l.sent = append(l.sent, ts)
	l.mu.Unlock()
	return resp, nil
}

// TestShipHealthLostAnswer: ClickHouse writes a batch of reports but the
// shipper never hears so; the retry must not write them again. Then a
// queue longer than one INSERT goes in order.
func TestShipHealthLostAnswer(t *testing.T) {
	srv, _ := startCH(t)
	lt := &lossyTransport{}
	c, err := NewClient(srv.URL, DefaultDatabase, WithHTTPClient(&http.Client{Transport: lt, Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	sh, err := NewShipper(Options{Dir: healthStore(t), Sensor: "s1", Client: c})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ctx := context.Background()
	lt.lose.Store(true)
	for range 3 {
		sh.sampleHealth()
		if err := sh.flushHealth(ctx); err == nil {
			t.Fatal("flush with the answer lost: got no error")
		}
	}
	if got := len(healthTimes(t, c)); got != 3 {
		t.Fatalf("reports written with their answers lost: got %d, want 3 (the first flush wrote them)", got)
	}
	lt.lose.Store(false)
	// Enough for three INSERTs behind the three already written.
	for range 2*healthChunk + 5 {
		sh.sampleHealth()
	}
	if err := sh.flushHealth(ctx); err != nil {
		t.Fatal(err)
	}
	want := 3 + 2*healthChunk + 5
	ts := healthTimes(t, c)
	if distinct := len(slices.Compact(slices.Clone(ts))); len(ts) != want || distinct != want {
		t.Fatalf("reports in ClickHouse: got %d (%d distinct), want %d, each once", len(ts), distinct, want)
	}
	if st := sh.Stats(); st.HealthSent != uint64(want) || st.HealthQueued != 0 {
		t.Fatalf("stats: got %+v, want %d sent, none queued", st, want)
	}
	// In order: each insert's reports, and the inserts one after another.
	var all []int64
	for _, s := range lt.sent {
		all = append(all, s...)
	}
	if len(lt.sent) != 3 || !slices.IsSorted(all) || len(all) != want-3 {
		t.Fatalf("inserts after the loss: got %d carrying %d reports (sorted: %v), want 3 carrying %d in time order", len(lt.sent), len(all), slices.IsSorted(all), want-3)
	}
}

// TestShipHealthOverflow: with ClickHouse down, a queue of 5 takes 8
// reports: the 3 oldest go, counted in the metric and in the next report;
// the 5 newest arrive once ClickHouse is back.
func TestShipHealthOverflow(t *testing.T) {
	srv, c := startCH(t)
	sh, err := NewShipper(Options{Dir: healthStore(t), Sensor: "s1", Client: c, HealthQueue: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(sh)
	dropped := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "tapvault_dropped_health_reports_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["stage"] == "fleet_shipper" && labels["cause"] == "queue_full" {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatal("no tapvault_dropped_health_reports_total{stage=fleet_shipper,cause=queue_full}")
		return 0
	}
	if got := dropped(); got != 0 {
		t.Fatalf("dropped before the outage: got %v, want 0", got)
	}
	ctx := context.Background()
	srv.Kill()
	var taken []int64
	for range 8 {
		sh.sampleHealth()
		sh.hmu.Lock()
		taken = append(taken, sh.hq[len(sh.hq)-1].ts)
		sh.hmu.Unlock()
		if err := sh.flushHealth(ctx); err == nil {
			t.Fatal("flush with ClickHouse down: got no error")
		}
	}
	if got, st := dropped(), sh.Stats(); got != 3 || st.HealthDropped != 3 || st.HealthQueued != 5 {
		t.Fatalf("after 8 reports into a queue of 5: got metric %v, %+v; want 3 dropped, 5 queued", got, st)
	}
	srv.Start()
	if err := sh.flushHealth(ctx); err != nil {
		t.Fatal(err)
	}
	sh.sampleHealth() // the 9th: it reports the 3 dropped
	if err := sh.flushHealth(ctx); err != nil {
		t.Fatal(err)
	}
	ts := healthTimes(t, c)
	if len(ts) != 6 || !slices.Equal(ts[:5], taken[3:]) {
		t.Fatalf("reports in ClickHouse: got %v, want the 5 newest of %v and the 9th", ts, taken)
	}
	if got := value(t, c, "SELECT value FROM sensor_health WHERE sensor = 's1' AND name = '"+HealthDropped+"' ORDER BY ts DESC LIMIT 1"); got != "3" {
		t.Fatalf("the drops as reported in sensor_health: got %s, want 3", got)
	}
}
