package centre

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"tapvault/fleet"
	"tapvault/internal/chtest"
)

// TestLocations: probe exchanges shipped by three sensors, one location's
// network slow; the centre's verdict across locations names it alone, and
// only probe records count.
func TestLocations(t *testing.T) {
	ctx := context.Background()
	ch := chtest.Start(t)
	client, err := fleet.NewClient(ch.URL, "tapvault")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.Migrate(ctx, client, "tapvault"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca, err := fleet.InitCA(filepath.Join(t.TempDir(), "ca"), now)
	if err != nil {
		t.Fatal(err)
	}
	certs := t.TempDir()
	if _, _, err := ca.Enroll(certs, "centre", fleet.IssueOptions{}, now); err != nil {
		t.Fatal(err)
	}
	var rows []byte
	id := 0
	add := func(sensor, fields string, network int64) {
		id++
		r := map[string]any{"sensor": sensor, "id": id, "kind": "exchange", "proto": "http", "req_first": now.UnixNano() + int64(id), "req_last": now.UnixNano() + int64(id),
			"latency": network + 1e6, "network": network, "server_time": 1e6, "fields": fields, "ver": 1}
		b, _ := json.Marshal(r)
		rows = append(append(rows, b...), '\n')
	}
	for i := range 10 {
		ms := int64(time.Millisecond)
		add("s1", `{"probe":"web","location":"paris"}`, 2*ms+int64(i)*ms/10)
		add("s2", `{"probe":"web","location":"lagos"}`, 60*ms+int64(i)*ms/10)
		add("s3", `{"probe":"web","location":"osaka"}`, 3*ms)
		add("s2", `{"method":"GET"}`, 900*ms) // not a probe's
		add("s1", `{"probe":"dns","location":"paris"}`, 80*ms)
	}
	if err := client.InsertJSON(ctx, "records", rows); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Sensors: map[string]string{"s1": "127.0.0.1:1", "s2": "127.0.0.1:1", "s3": "127.0.0.1:1"}, ProbeInterval: time.Hour, ProbeTimeout: time.Second}
	cfg.ClickHouse.URL, cfg.ClickHouse.Database = ch.URL, "tapvault"
	cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA = filepath.Join(certs, "centre.crt"), filepath.Join(certs, "centre.key"), filepath.Join(certs, fleet.CACertFile)
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, client, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(c.Handler())
	defer web.Close()
	get := func(q url.Values) (int, LocationsAnswer) {
		resp, err := http.Get(web.URL + pathLocations + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a LocationsAnswer
		json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, a
	}
	code, a := get(url.Values{"probe": {"web"}})
	if code != 200 || a.Samples != 30 || a.Blame != "networks" || !slices.Equal(a.Slow, []string{"lagos"}) {
		t.Fatalf("web: %d %+v", code, a)
	}
	for _, l := range a.Locations {
		if l.Location == "lagos" && (len(l.WorstIDs) != 5 || l.WorstIDs[0] != fmt.Sprintf("%016x", 47)) {
			t.Errorf("lagos's slowest %v, want 5 IDs, the last lagos row (47) first", l.WorstIDs)
		}
		for _, id := range l.WorstIDs {
			if want := map[string]string{"paris": "s1", "lagos": "s2", "osaka": "s3"}[l.Location]; a.SlowestSensor[id] != want {
				t.Errorf("%s's slowest %s: sensor %q, want %q", l.Location, id, a.SlowestSensor[id], want)
			}
		}
	}
	// Every probe: paris's dns probe is slow too, so paris and lagos.
	if code, a = get(nil); code != 200 || a.Samples != 40 || !slices.Equal(a.Slow, []string{"lagos", "paris"}) {
		t.Fatalf("all probes: %d %+v", code, a)
	}
	if code, _ = get(url.Values{"slow_network": {"fast"}}); code != 400 {
		t.Errorf("bad slow_network: %d", code)
	}
	if code, _ = get(url.Values{"bogus": {"1"}}); code != 400 {
		t.Errorf("unknown parameter: %d", code)
	}
}
