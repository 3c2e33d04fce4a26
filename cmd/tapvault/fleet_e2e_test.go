package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/fleet"
	"tapvault/internal/chtest"
	"tapvault/msgstore"
	"tapvault/tracegen"
	"tapvault/writer"
)

// storeCounts is what a store holds by its own reading: records (and
// distinct record IDs, by kind) from a msgstore scan, packets from the
// segments' block summaries.
type storeCounts struct {
	records, distinct, connections int
	packets                        uint64
}

func countStore(t *testing.T, dir string) storeCounts {
	t.Helper()
	rd, err := msgstore.OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var c storeCounts
	ids := map[uint64]bool{}
	err = rd.Scan(context.Background(), msgstore.Query{}, func(r *analytics.Record) error {
		c.records++
		if !ids[r.ID] {
			ids[r.ID] = true
			if r.Class == analytics.ClassFlow {
				c.connections++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.distinct = len(ids)
	wr, err := writer.OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	segs, _ := wr.Segments()
	for _, s := range segs {
		wr.ScanSegment(s.Number, func(m writer.BlockMeta) error { c.packets += uint64(m.Count); return nil })
	}
	return c
}

func chValue(t *testing.T, srv *chtest.Server, sql string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(srv.Query(sql)))
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestFleetShipImportedStore: a store built by tapvault import of an app
// trace, shipped by tapvault fleet ship; ClickHouse's deduplicated counts
// equal the store's own, also after a re-ship from a reset cursor, and the
// flow summaries add up to the packets stored.
func TestFleetShipImportedStore(t *testing.T) {
	srv := chtest.Start(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: 30000, Seed: 5, PPS: 2000}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, trace)
	want := countStore(t, store)
	if want.distinct == 0 || want.connections == 0 {
		t.Fatalf("store counts %+v: want exchange and connection records", want)
	}

	out, _ := tv(t, false, "fleet", "init", "--clickhouse", srv.URL)
	if !strings.Contains(out, "created database tapvault") || !strings.Contains(out, "applied migration 001_records") {
		t.Fatalf("fleet init:\n%s", out)
	}
	if out, _ := tv(t, false, "fleet", "init", "--clickhouse", srv.URL); !strings.Contains(out, "up to date") {
		t.Fatalf("second fleet init:\n%s", out)
	}
	_, errOut := tv(t, true, "fleet", "ship", "--data", store, "--sensor", "s1", "--clickhouse", srv.URL, "--fleet-database", "missing")
	if !strings.Contains(errOut, "fleet init") {
		t.Fatalf("ship without a schema: stderr %q, want it to say to run fleet init", errOut)
	}

	ship := func() string {
		out, _ := tv(t, false, "fleet", "ship", "--data", store, "--sensor", "s1", "--clickhouse", srv.URL, "--fleet-batch", "3000")
		return out
	}
	out = ship()
	if !strings.Contains(out, "shipped "+strconv.Itoa(want.records)+" records") {
		t.Fatalf("fleet ship: got %q, want %d records", out, want.records)
	}
	check := func(when string) {
		t.Helper()
		if got := chValue(t, srv, "SELECT count() FROM tapvault.records FINAL WHERE sensor = 's1'"); got != want.distinct {
			t.Fatalf("%s: records FINAL: got %d, want the store's %d", when, got, want.distinct)
		}
		if got := chValue(t, srv, "SELECT count() FROM (SELECT sensor, id FROM tapvault.records GROUP BY sensor, id)"); got != want.distinct {
			t.Fatalf("%s: distinct (sensor, id): got %d, want %d", when, got, want.distinct)
		}
		if got := chValue(t, srv, "SELECT count() FROM tapvault.records FINAL WHERE kind = 'connection'"); got != want.connections {
			t.Fatalf("%s: connection records: got %d, want %d", when, got, want.connections)
		}
		if got := chValue(t, srv, "SELECT sum(packets) FROM tapvault.flow_blocks FINAL WHERE sensor = 's1'"); uint64(got) != want.packets {
			t.Fatalf("%s: flow_blocks packets: got %d, want the %d stored", when, got, want.packets)
		}
	}
	check("first ship")
	if out := ship(); !strings.Contains(out, "shipped 0 records and 0 flow rows") {
		t.Fatalf("ship again from the cursor: got %q, want nothing shipped", out)
	}
	if err := os.Remove(fleet.CursorPath(store)); err != nil {
		t.Fatal(err)
	}
	if out := ship(); !strings.Contains(out, "shipped "+strconv.Itoa(want.records)+" records") {
		t.Fatalf("re-ship from a reset cursor: got %q", out)
	}
	check("re-ship")
	if got := chValue(t, srv, "SELECT count() FROM tapvault.sensor_health WHERE sensor = 's1' AND name = 'clock_synced'"); got == 0 {
		t.Fatal("no health rows")
	}
	t.Logf("store: %+v", want)
}

// TestFleetCaptureShips: tapvault capture --fleet-clickhouse ships the
// records of what it captures, and its health, while it runs and at its end.
func TestFleetCaptureShips(t *testing.T) {
	needDPDK(t)
	srv := chtest.Start(t)
	tv(t, false, "fleet", "init", "--clickhouse", srv.URL)
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: 20000, Seed: 9, PPS: 2000}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	tv(t, false, "capture", "--eal", ealFor("net_pcap0,rx_pcap="+trace), "--data", store, "--listen", "",
		"--fleet-clickhouse", srv.URL, "--sensor", "cap1")
	want := countStore(t, store)
	if got := chValue(t, srv, "SELECT count() FROM tapvault.records FINAL WHERE sensor = 'cap1'"); got != want.distinct || got == 0 {
		t.Fatalf("records shipped by the capture: got %d, want the store's %d", got, want.distinct)
	}
	if got := chValue(t, srv, "SELECT count() FROM tapvault.sensor_health WHERE sensor = 'cap1' AND name LIKE 'dropped_packets_total%'"); got == 0 {
		t.Fatal("the capture's drop counters were not shipped")
	}
	// The port's own counters too: what the NIC dropped (imissed) and
	// received, which only the port knows.
	if got := chValue(t, srv, "SELECT count() FROM tapvault.sensor_health WHERE sensor = 'cap1' AND name = 'dropped_packets_total{cause=imissed,stage=nic}'"); got == 0 {
		t.Fatal("the NIC's imissed was not shipped")
	}
	if got := chValue(t, srv, "SELECT max(value) FROM tapvault.sensor_health WHERE sensor = 'cap1' AND name = 'nic_rx_packets_total'"); got != 20000 {
		t.Errorf("nic_rx_packets_total: got %d, want the trace's 20000 packets", got)
	}
	t.Logf("%d health names per report", chValue(t, srv, "SELECT uniqExact(name) FROM tapvault.sensor_health WHERE sensor = 'cap1'"))
}

// TestFleetShipFollowsAnotherProcess: tapvault fleet ship --follow ships
// what a tapvault import in another process appends to the store, from the
// live message file on; SIGINT stops it with its summary, exit 0.
func TestFleetShipFollowsAnotherProcess(t *testing.T) {
	srv := chtest.Start(t)
	tv(t, false, "fleet", "init", "--clickhouse", srv.URL)
	dir := t.TempDir()
	var traces []string
	for i, seed := range []int64{3, 4} {
		tr := filepath.Join(dir, "app"+strconv.Itoa(i)+".pcap")
		if _, err := tracegen.GenerateFile(tr, tracegen.Options{Kind: tracegen.KindApp, Packets: 20000, Seed: seed, PPS: 2000}); err != nil {
			t.Fatal(err)
		}
		traces = append(traces, tr)
	}
	store := filepath.Join(dir, "store")
	os.MkdirAll(store, 0o700)
	ship := exec.Command(os.Args[0], "fleet", "ship", "--follow", "--data", store, "--sensor", "f1", "--clickhouse", srv.URL)
	ship.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	var out, errb bytes.Buffer
	ship.Stdout, ship.Stderr = &out, &errb
	if err := ship.Start(); err != nil {
		t.Fatal(err)
	}
	defer ship.Process.Kill()
	for _, tr := range traces { // two imports: two writers, one after the other
		tv(t, false, "import", "--data", store, tr)
	}
	want := countStore(t, store)
	deadline := time.Now().Add(30 * time.Second)
	// Records and flow summaries are read from different files (the
	// message store, the segments): wait for both.
	for chValue(t, srv, "SELECT count() FROM tapvault.records FINAL WHERE sensor = 'f1'") != want.distinct ||
		uint64(chValue(t, srv, "SELECT sum(packets) FROM tapvault.flow_blocks FINAL WHERE sensor = 'f1'")) != want.packets {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %s of %d records and %s of %d packets shipped\nstderr:\n%s",
				srv.Query("SELECT count() FROM tapvault.records FINAL"), want.distinct,
				srv.Query("SELECT sum(packets) FROM tapvault.flow_blocks FINAL"), want.packets, errb.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	ship.Process.Signal(syscall.SIGINT)
	if err := ship.Wait(); err != nil {
		t.Fatalf("fleet ship --follow after SIGINT: %v\nstderr:\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "shipped "+strconv.Itoa(want.records)+" records") {
		t.Fatalf("summary: got %q, want %d records", out.String(), want.records)
	}
}
