package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/internal/chtest"
	"tapvault/msgstore"
)

// startCH starts a ClickHouse with the fleet schema and returns a client of
// its tapvault database.
func startCH(t *testing.T) (*chtest.Server, *Client) {
	t.Helper()
	srv := chtest.Start(t)
	c, err := NewClient(srv.URL, DefaultDatabase, WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(context.Background(), c, DefaultDatabase); err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// testRecord is exchange i (every 5th a connection record) at time ts.
func testRecord(i int, ts int64) *analytics.Record {
	r := &analytics.Record{
		Proto: "http", Transport: 6, VLAN: uint16(i % 3),
		Client:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(40000+i%20000)),
		Server:   netip.MustParseAddrPort("192.0.2.80:80"),
		ReqFirst: ts, ReqLast: ts + 120_000, RespFirst: ts + 3_400_000, RespLast: ts + 3_900_000,
		Network: 40_000, ServerTime: 3_280_000, Transfer: 500_000, ClientNet: 50_000, RTT: 38_000,
		Class: analytics.ClassSlowApp, ReqBytes: 412, RespBytes: 18_230, ReqPkts: 1, RespPkts: 5,
		Fields: []analytics.Field{{Key: "method", Str: "GET"}, {Key: "path", Str: fmt.Sprintf("/x/%d", i)}, {Key: "status", Int: 200, IsInt: true}},
	}
	if i%5 == 0 {
		r.Proto, r.Class, r.Fields = "tcp", analytics.ClassFlow, nil
		r.RespFirst, r.RespLast = 0, 0
	}
	if i%7 == 3 {
		// What a page would have to escape, and IPv6.
		r.Client = netip.AddrPortFrom(netip.MustParseAddr("2001:db8::7"), 50000)
		r.Fields = append(r.Fields, analytics.Field{Key: "user_agent", Str: "<script>\"&'é\u2028\\"})
	}
	r.SetID()
	return r
}

func value(t *testing.T, c *Client, sql string) string {
	t.Helper()
	v, err := c.QueryValue(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrateIdempotent(t *testing.T) {
	_, c := startCH(t) // applied once
	res, err := Migrate(context.Background(), c, DefaultDatabase)
	if err != nil {
		t.Fatal(err)
	}
	migs, _ := Migrations()
	if res.CreatedDatabase || len(res.Applied) != 0 || len(res.Present) != len(migs) {
		t.Fatalf("second migrate: got %+v, want nothing applied and %d present", res, len(migs))
	}
	if got := value(t, c, "SELECT count() FROM schema_migrations"); got != strconv.Itoa(len(migs)) {
		t.Fatalf("schema_migrations rows: got %s, want %d", got, len(migs))
	}
	for _, tbl := range []string{"records", "flow_blocks", "sensor_health"} {
		if got := value(t, c, "SELECT count() FROM system.tables WHERE database = 'tapvault' AND name = '"+tbl+"'"); got != "1" {
			t.Errorf("table %s: got %s, want 1", tbl, got)
		}
	}
	if err := CheckSchema(context.Background(), c, DefaultDatabase); err != nil {
		t.Fatal(err)
	}
	if err := CheckSchema(context.Background(), c, "nowhere"); err == nil || !strings.Contains(err.Error(), "fleet init") {
		t.Fatalf("CheckSchema of a missing database: got %v, want an error naming fleet init", err)
	}
	if _, err := Migrate(context.Background(), c, "bad-name;"); err == nil {
		t.Fatal("Migrate accepted a database name that is not an identifier")
	}
}

func TestClientErrors(t *testing.T) {
	srv, c := startCH(t)
	err := c.Exec(context.Background(), "SELEC nonsense")
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != 62 || !strings.Contains(err.Error(), "Syntax error") || Retryable(err) {
		t.Fatalf("bad SQL: got %v (code %v), want a non-retryable syntax error, code 62", err, ce)
	}
	err = c.Insert(context.Background(), "records", []any{map[string]any{"sensor": "s", "id": "not a number"}})
	if !errors.As(err, &ce) || Retryable(err) {
		t.Fatalf("bad row: got %v, want a ClickHouse error", err)
	}
	srv.Kill()
	err = c.Ping(context.Background())
	if err == nil || !Retryable(err) {
		t.Fatalf("server down: got %v, want a retryable error", err)
	}
	srv.Start()
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	// A password in the URL never shows in an error.
	secret, _ := NewClient(strings.Replace(srv.URL, "http://", "http://default:s3cr3t@", 1), "")
	srv.Kill()
	if err := secret.Ping(context.Background()); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("server down, password in the URL: got %v, want an error without the password", err)
	}
	srv.Start()
	if err := secret.Ping(context.Background()); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("wrong password: got %v, want ClickHouse's refusal without the password", err)
	}
	if _, err := NewClient("localhost:8123", ""); err == nil {
		t.Fatal("NewClient accepted a URL without a scheme")
	}
}

// TestShipRecords ships a store, checks rows against records, then ships it
// again from a removed cursor: no duplicate is visible to FINAL or to a
// GROUP BY sensor, id.
func TestShipRecords(t *testing.T) {
	_, c := startCH(t)
	dir := t.TempDir()
	w, err := msgstore.OpenWriter(dir, msgstore.Options{FrameRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	t0 := time.Now().Add(-time.Hour).UnixNano()
	for i := range n {
		if err := w.Append(testRecord(i, t0+int64(i)*1e6)); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			w.Roll()
		}
	}
	w.Close()
	ship := func() Stats {
		sh, err := NewShipper(Options{Dir: dir, Sensor: "s1", Client: c, BatchRecords: 700})
		if err != nil {
			t.Fatal(err)
		}
		defer sh.Close()
		if err := sh.Run(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		return sh.Stats()
	}
	st := ship()
	if st.Records != n || st.LagNs != 0 || st.BacklogBytes != 0 {
		t.Fatalf("first ship: got %+v, want %d records and no lag", st, n)
	}
	if got := value(t, c, "SELECT count() FROM records FINAL WHERE sensor = 's1'"); got != strconv.Itoa(n) {
		t.Fatalf("rows: got %s, want %d", got, n)
	}
	if got := value(t, c, "SELECT count() FROM records WHERE kind = 'connection'"); got != strconv.Itoa(n/5) {
		t.Fatalf("connection rows: got %s, want %d", got, n/5)
	}
	// One row, column by column.
	r := testRecord(7, t0+7e6)
	rows, err := c.Query(context.Background(), fmt.Sprintf("SELECT * FROM records WHERE id = %d", r.ID))
	if err != nil || len(rows) != 1 {
		t.Fatalf("row of record 7: got %v, %v", rows, err)
	}
	want := map[string]string{"sensor": "s1", "kind": "exchange", "proto": "http", "vlan": "1", "client_ip": "10.1.0.7",
		"client_port": "40007", "server_ip": "192.0.2.80", "server_port": "80", "req_first": fmt.Sprint(r.ReqFirst),
		"latency": "3780000", "class": analytics.ClassSlowApp, "req_pkts": "1", "resp_bytes": "18230",
		"fields": `{"method":"GET","path":"/x/7","status":200}`}
	for k, v := range want {
		if got := fmt.Sprint(rows[0][k]); got != v {
			t.Errorf("column %s: got %q, want %q", k, got, v)
		}
	}
	// Escapes and IPv6 survive JSONEachRow both ways.
	r = testRecord(10, t0+10e6)
	rows, err = c.Query(context.Background(), fmt.Sprintf("SELECT client_ip, fields FROM records WHERE id = %d", r.ID))
	if err != nil || len(rows) != 1 {
		t.Fatalf("row of record 10: got %v, %v", rows, err)
	}
	if got := rows[0]["client_ip"]; got != "2001:db8::7" {
		t.Errorf("IPv6 client: got %v", got)
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(fmt.Sprint(rows[0]["fields"])), &f); err != nil || f["user_agent"] != "<script>\"&'é\u2028\\" {
		t.Errorf("fields with escapes: got %v (%v)", rows[0]["fields"], err)
	}
	// One shipper per store.
	first, err := NewShipper(Options{Dir: dir, Sensor: "s1", Client: c})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewShipper(Options{Dir: dir, Sensor: "s1", Client: c}); err == nil || !strings.Contains(err.Error(), "one shipper per store") {
		t.Fatalf("second shipper of one store: got %v, want refused", err)
	}
	first.Close()
	// A second shipper from the saved cursor finds nothing new.
	if st := ship(); st.Records != 0 {
		t.Fatalf("second ship from the cursor: got %d records, want 0", st.Records)
	}
	// Reset the cursor (a lost cursor, a crash before it was saved): every
	// record ships again, and queries still see each once.
	if err := os.Remove(CursorPath(dir)); err != nil {
		t.Fatal(err)
	}
	if st := ship(); st.Records != n {
		t.Fatalf("re-ship: got %d records, want %d", st.Records, n)
	}
	for _, q := range []string{
		"SELECT count() FROM records FINAL",
		"SELECT count() FROM (SELECT sensor, id FROM records GROUP BY sensor, id)",
	} {
		if got := value(t, c, q); got != strconv.Itoa(n) {
			t.Fatalf("%s after a re-ship: got %s, want %d", q, got, n)
		}
	}
	if got := value(t, c, "SELECT count() FROM sensor_health WHERE sensor = 's1' AND name = 'fleet_ship_lag_ns'"); got == "0" {
		t.Fatal("no health rows shipped")
	}
}

// TestShipOutage stops ClickHouse while a writer keeps appending records
// and a following shipper keeps trying; after the restart every record
// arrives, once. The outage lasts a minute (issue 15 §4), 5 s with -short.
func TestShipOutage(t *testing.T) {
	outage := 60 * time.Second
	if testing.Short() {
		outage = 5 * time.Second
	}
	srv, c := startCH(t)
	dir := t.TempDir()
	w, err := msgstore.OpenWriter(dir, msgstore.Options{FrameRecords: 50, FileBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sh, err := NewShipper(Options{Dir: dir, Sensor: "s1", Client: c, Poll: 100 * time.Millisecond,
		HealthEvery: time.Second, MaxBackoff: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	shipDone := make(chan error, 1)
	go func() { shipDone <- sh.Run(ctx, true) }()

	// The writer: 500 records/s, flushed every 100 ms, until told to stop.
	var written atomic.Int64
	stopW := make(chan struct{})
	wDone := make(chan struct{})
	go func() {
		defer close(wDone)
		t0 := time.Now().UnixNano()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; {
			select {
			case <-stopW:
				w.Close()
				return
			case <-tick.C:
			}
			for k := 0; k < 50; k++ {
				if err := w.Append(testRecord(i, t0+int64(i)*1e6)); err != nil {
					t.Error(err)
				}
				i++
				written.Add(1)
			}
			w.Flush()
		}
	}()
	time.Sleep(2 * time.Second)
	srv.Kill() // as a crash: nothing graceful
	downAt := written.Load()
	time.Sleep(outage / 2)
	if st := sh.Stats(); st.Errors == 0 || st.LagNs <= 0 || st.BacklogBytes <= 0 {
		t.Errorf("mid-outage: got %+v, want errors counted, a lag and a backlog", st)
	}
	time.Sleep(outage / 2)
	srv.Start()
	time.Sleep(2 * time.Second)
	close(stopW)
	<-wDone
	n := written.Load()
	t.Logf("%d records written, %d before the outage of %s", n, downAt, outage)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := value(t, c, "SELECT count() FROM records FINAL")
		if got == strconv.FormatInt(n, 10) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the outage: %s rows, want %d (shipper %+v)", got, n, sh.Stats())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := value(t, c, "SELECT count() FROM (SELECT id FROM records GROUP BY sensor, id)"); got != strconv.FormatInt(n, 10) {
		t.Fatalf("distinct ids: got %s, want %d", got, n)
	}
	cancel()
	if err := <-shipDone; err != nil {
		t.Fatal(err)
	}
	if st := sh.Stats(); st.LagNs != 0 || st.BacklogBytes != 0 || st.LastError != "" {
		t.Fatalf("after catching up: got %+v, want no lag, no backlog, no error", st)
	}
}

// TestShardedLayout: two ClickHouse servers in one cluster, each with the
// local tables and the Distributed ones (MigrateSharded). Stores of four
// sensors shipped through the first server's Distributed tables are spread
// over both shards, and every record is counted once from either server,
// also after a re-ship.
func TestShardedLayout(t *testing.T) {
	a, b := chtest.Start(t), chtest.Start(t)
	cluster := fmt.Sprintf(`<remote_servers><fleet>
  <shard><replica><host>127.0.0.1</host><port>%d</port></replica></shard>
  <shard><replica><host>127.0.0.1</host><port>%d</port></replica></shard>
</fleet></remote_servers>`, a.TCPPort, b.TCPPort)
	var clients []*Client
	for _, s := range []*chtest.Server{a, b} {
		s.AddConfig("cluster", cluster)
		s.Stop()
		s.Start()
		c, err := NewClient(s.URL+"/?insert_distributed_sync=1", DefaultDatabase, WithTimeout(20*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := MigrateSharded(context.Background(), c, DefaultDatabase, "fleet"); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	const perSensor = 1000
	t0 := time.Now().Add(-time.Hour).UnixNano()
	for k := range 4 {
		dir := t.TempDir()
		w, err := msgstore.OpenWriter(dir, msgstore.Options{FrameRecords: 100})
		if err != nil {
			t.Fatal(err)
		}
		for i := range perSensor {
			w.Append(testRecord(i, t0+int64(i)*1e6)) // the same records on every sensor: sensor tells them apart
		}
		w.Close()
		for range 2 { // the second ship, from a reset cursor, makes copies
			os.Remove(CursorPath(dir))
			sh, err := NewShipper(Options{Dir: dir, Sensor: fmt.Sprintf("s%d", k), Client: clients[0]})
			if err != nil {
				t.Fatal(err)
			}
			if err := sh.Run(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			sh.Close()
		}
	}
	for i, c := range clients {
		if got := value(t, c, "SELECT count() FROM records FINAL"); got != strconv.Itoa(4*perSensor) {
			t.Fatalf("server %d: records FINAL over the cluster: got %s, want %d", i, got, 4*perSensor)
		}
		local := value(t, c, "SELECT count() FROM records_local FINAL")
		if local == "0" || local == strconv.Itoa(4*perSensor) {
			t.Fatalf("server %d holds %s of %d rows: want a share, not none or all", i, local, 4*perSensor)
		}
		t.Logf("server %d: %s rows in its shard", i, local)
	}
}
