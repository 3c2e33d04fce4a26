package fleet

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/dataplane"
	"tapvault/msgstore"
	"tapvault/pipeline"
	"tapvault/tracegen"
)

// cpuSeconds is the user+system CPU time of process pid so far.
func cpuSeconds(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which is in parentheses).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// appRecords imports a generated app trace with the analytics on and
// returns its records.
func appRecords(t *testing.T) []*analytics.Record {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: 100000, Seed: 5, PPS: 2000}); err != nil {
		t.Fatal(err)
	}
	ac := analytics.DefaultConfig()
	store := filepath.Join(dir, "store")
	p, err := pipeline.Open(pipeline.Options{Dir: store, Analytics: &ac, Lossless: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	src, err := dataplane.OpenFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run([]dataplane.Source{src}); err != nil {
		t.Fatal(err)
	}
	rd, err := msgstore.OpenReader(store)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []*analytics.Record
	rd.Scan(context.Background(), msgstore.Query{}, func(r *analytics.Record) error {
		c := *r
		c.Fields = slices.Clone(r.Fields)
		c.Packets = slices.Clone(r.Packets)
		out = append(out, &c)
		return nil
	})
	slices.SortFunc(out, func(a, b *analytics.Record) int { return cmp.Compare(a.ReqFirst, b.ReqFirst) })
	return out
}

// TestIngestRate measures how fast a shipper gets records into the Debian
// ClickHouse on this machine: rows/s, and rows per CPU-second of the server
// and of the shipper, plus the bytes a row takes on ClickHouse's disk and
// the time of a typical query. It is a measurement, not a check: it runs
// only with TAPVAULT_FLEET_INGEST=ROWS (docs/fleet.md gives the command).
func TestIngestRate(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TAPVAULT_FLEET_INGEST"))
	if n <= 0 {
		t.Skip("a measurement: set TAPVAULT_FLEET_INGEST=ROWS to run it")
	}
	srv, c := startCH(t)
	// Real records: those the analytics make of a generated app trace
	// (HTTP, DNS, Postgres, Redis exchanges and tcp connection records),
	// repeated with shifted times and new IDs until there are n.
	tmpl := appRecords(t)
	dir := t.TempDir()
	w, err := msgstore.OpenWriter(dir, msgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	span := tmpl[len(tmpl)-1].ReqFirst - tmpl[0].ReqFirst + 1e9
	for i := range n {
		r := *tmpl[i%len(tmpl)]
		shift := int64(i/len(tmpl)) * span
		for _, p := range []*int64{&r.ReqFirst, &r.ReqLast, &r.RespFirst, &r.RespLast, &r.ServerAck, &r.ClientAck} {
			if *p != 0 {
				*p += shift
			}
		}
		r.ID ^= uint64(i/len(tmpl)) << 40
		if err := w.Append(&r); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	t.Logf("%d rows from %d template records of an app trace", n, len(tmpl))
	for _, batch := range []int{5000, 20000, 50000} {
		// Each batch size ships every record again, as another sensor.
		os.Remove(CursorPath(dir))
		sh, err := NewShipper(Options{Dir: dir, Sensor: fmt.Sprintf("bench-%d", batch), Client: c, BatchRecords: batch, NoFlows: true})
		if err != nil {
			t.Fatal(err)
		}
		srvCPU0, selfCPU0 := cpuSeconds(t, srv.PID()), selfCPU()
		start := time.Now()
		if err := sh.Run(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		el := time.Since(start).Seconds()
		srvCPU, shipCPU := cpuSeconds(t, srv.PID())-srvCPU0, selfCPU()-selfCPU0
		st := sh.Stats()
		sh.Close()
		if st.Records != uint64(n) {
			t.Fatalf("shipped %d records, want %d", st.Records, n)
		}
		t.Logf("batch=%d: %d rows in %.2f s = %.0f rows/s; clickhouse-server %.2f CPU-s (%.0f rows per server CPU-second), shipper %.2f CPU-s (%.0f rows per CPU-second)",
			batch, n, el, float64(n)/el, srvCPU, float64(n)/srvCPU, shipCPU, float64(n)/shipCPU)
	}
	c.Exec(context.Background(), "OPTIMIZE TABLE records FINAL") // one part per partition: what a day's data settles to
	parts, _ := c.QueryValue(context.Background(), "SELECT sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.parts WHERE database = 'tapvault' AND table = 'records' AND active")
	t.Logf("on disk (rows, compressed, uncompressed bytes): %s", parts)
	lo, hi := tmpl[0].ReqFirst, tmpl[0].ReqFirst+int64((n+len(tmpl)-1)/len(tmpl))*span
	for _, q := range []string{
		"SELECT proto, count(), quantile(0.99)(latency) FROM records FINAL WHERE kind = 'exchange' GROUP BY proto",
		"SELECT proto, count(), quantile(0.99)(latency) FROM records WHERE kind = 'exchange' GROUP BY proto",
		"SELECT server_ip, count() AS n FROM records FINAL GROUP BY server_ip ORDER BY n DESC LIMIT 10",
		// One sensor, a 24th of its time: the primary key (sensor,
		// req_first) limits what is read.
		fmt.Sprintf("SELECT proto, count(), quantile(0.99)(latency) FROM records FINAL WHERE sensor = 'bench-20000' AND req_first BETWEEN %d AND %d GROUP BY proto", lo, lo+(hi-lo)/24),
	} {
		var best time.Duration
		for k := 0; k < 3; k++ {
			s := time.Now()
			if _, err := c.Query(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(s); k == 0 || d < best {
				best = d
			}
		}
		t.Logf("query (best of 3) %s: %s", best.Round(time.Millisecond), q)
	}
}
