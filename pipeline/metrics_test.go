package pipeline_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"tapvault/analytics"
	"tapvault/dataplane"
	"tapvault/pipeline"
	"tapvault/tracegen"
)

// scrape GETs the handler's text exposition and returns each sample's value
// by its series, written as in the exposition: name{label="value",...} with
// labels in name order.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: got status %d, want 200; body %s", rec.Code, rec.Body)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("scrape: bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: bad value in %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func want(t *testing.T, m map[string]float64, series string, v float64) {
	t.Helper()
	got, ok := m[series]
	if !ok {
		t.Errorf("%s: missing from the scrape", series)
		return
	}
	if got != v {
		t.Errorf("%s: got %v, want %v", series, got, v)
	}
}

func trace(t *testing.T, packets int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.pcap")
	if _, err := tracegen.GenerateFile(path, tracegen.Options{Kind: "mixed", Packets: packets, Flows: 200, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	return path
}

func sources(t *testing.T, path string, n int) []dataplane.Source {
	t.Helper()
	var out []dataplane.Source
	for range n {
		src, err := dataplane.OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, src)
	}
	return out
}

func TestMetricsOfARun(t *testing.T) {
	const packets = 20000
	tr := trace(t, packets)
	p, err := pipeline.Open(pipeline.Options{Dir: t.TempDir(), Logger: quiet(), Lossless: true, BlockSize: 32 << 10, Index: true}, 2)
	if err != nil {
		t.Fatal(err)
	}
	port := func() (dataplane.PortStats, bool) {
		return dataplane.PortStats{IPackets: 2 * packets, IBytes: 1 << 20, IMissed: 3, IErrors: 1, RxNoMbuf: 2}, true
	}
	c := pipeline.NewCollector(p, port)
	h := pipeline.MetricsHandler(pipeline.NewRegistry(c))

	// Scrapes run beside the run (go test -race checks them).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if rec.Code != http.StatusOK {
				t.Errorf("scrape during the run: got status %d, want 200", rec.Code)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	rep, err := p.Run(sources(t, tr, 2))
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}

	m := scrape(t, h)
	want(t, m, `tapvault_rx_packets_total{queue="0"}`, packets)
	want(t, m, `tapvault_rx_packets_total{queue="1"}`, packets)
	want(t, m, `tapvault_packets_committed_total`, 2*packets)
	if got := m[`tapvault_rx_bytes_total{queue="0"}`] + m[`tapvault_rx_bytes_total{queue="1"}`]; got != float64(rep.RxBytes) {
		t.Errorf("rx bytes over queues: got %v, want %d", got, rep.RxBytes)
	}
	want(t, m, `tapvault_dropped_packets_total{cause="no_buffer",stage="block_builder"}`, 0)
	want(t, m, `tapvault_dropped_packets_total{cause="queue_full",stage="writer"}`, 0)
	want(t, m, `tapvault_dropped_packets_total{cause="imissed",stage="nic"}`, 3)
	want(t, m, `tapvault_dropped_packets_total{cause="rx_nombuf",stage="nic"}`, 2)
	want(t, m, `tapvault_dropped_packets_total{cause="ierrors",stage="nic"}`, 1)
	want(t, m, `tapvault_nic_rx_packets_total`, 2*packets)
	want(t, m, `tapvault_blocks_committed_total`, float64(rep.Writer.BlocksCommitted))
	want(t, m, `tapvault_block_raw_bytes_total`, float64(rep.Writer.RawBytes))
	want(t, m, `tapvault_block_stored_bytes_total`, float64(rep.Writer.StoredBytes))
	if got := m[`tapvault_blocks_sealed_total{queue="0"}`] + m[`tapvault_blocks_sealed_total{queue="1"}`]; got != float64(rep.Writer.BlocksCommitted) {
		t.Errorf("sealed blocks over queues: got %v, want %d (committed)", got, rep.Writer.BlocksCommitted)
	}
	want(t, m, `tapvault_fsyncs_total`, float64(rep.Writer.Fsyncs))
	want(t, m, `tapvault_index_enabled`, 1)
	want(t, m, `tapvault_index_blocks_total`, float64(rep.Index.Blocks))
	want(t, m, `tapvault_index_keys_total`, float64(rep.Index.Keys))
	want(t, m, `tapvault_index_lag_blocks`, 0)
	want(t, m, `tapvault_index_holes_blocks`, 0)
	want(t, m, `tapvault_time_to_queryable_seconds_count`, float64(rep.TimeToQueryable.Count))
	want(t, m, `tapvault_time_to_queryable_seconds_bucket{le="+Inf"}`, float64(rep.TimeToQueryable.Count))
	if rep.TimeToQueryable.Count == 0 || m[`tapvault_time_to_queryable_seconds_sum`] <= 0 {
		t.Errorf("time to queryable: got %d samples, sum %v s, want some", rep.TimeToQueryable.Count, m[`tapvault_time_to_queryable_seconds_sum`])
	}
	for _, r := range []string{"max_bytes", "keep_free", "max_age"} {
		want(t, m, fmt.Sprintf(`tapvault_retention_dropped_segments_total{reason=%q}`, r), 0)
	}
	for _, series := range []string{
		`tapvault_store_segment_bytes`, `tapvault_filesystem_size_bytes`, `tapvault_filesystem_avail_bytes`,
		`tapvault_index_size_bytes{part="lsm"}`, `tapvault_start_time_seconds`,
		`tapvault_flows_created_total{queue="0"}`, `go_goroutines`, `process_cpu_seconds_total`,
	} {
		if m[series] <= 0 {
			t.Errorf("%s: got %v, want > 0", series, m[series])
		}
	}

	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("lint: %s: %s", pr.Metric, pr.Text)
	}
}

func TestMetricsWithoutIndexOrPort(t *testing.T) {
	p, err := pipeline.Open(pipeline.Options{Dir: t.TempDir(), Logger: quiet(), Lossless: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	c := pipeline.NewCollector(p, nil)
	h := pipeline.MetricsHandler(pipeline.NewRegistry(c))
	m := scrape(t, h) // before Run
	want(t, m, `tapvault_rx_packets_total{queue="0"}`, 0)
	want(t, m, `tapvault_start_time_seconds`, 0)
	if _, err := p.Run(sources(t, trace(t, 1000), 1)); err != nil {
		t.Fatal(err)
	}
	m = scrape(t, h)
	want(t, m, `tapvault_rx_packets_total{queue="0"}`, 1000)
	want(t, m, `tapvault_index_enabled`, 0)
	for series := range m {
		if strings.HasPrefix(series, "tapvault_index_blocks") || strings.HasPrefix(series, "tapvault_time_to_queryable") ||
			strings.HasPrefix(series, "tapvault_nic_") || strings.Contains(series, `stage="nic"`) {
			t.Errorf("%s: got it in a scrape without an index or a port, want it left out", series)
		}
	}
}

// Retention actions are counted by reason from DIR/retention.log: only
// those appended since the collector was made, and a torn last line once it
// is complete.
func TestMetricsRetentionByReason(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, pipeline.RetentionLogName)
	appendLog := func(s string) {
		t.Helper()
		f, err := os.OpenFile(logf, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	line := func(reason string, bytes int64) string {
		b, err := json.Marshal(pipeline.RetentionAction{Segment: 1, Bytes: bytes, Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	appendLog(line("max_age", 1000)) // an earlier run's: not counted
	p, err := pipeline.Open(pipeline.Options{Dir: dir, Logger: quiet(), Lossless: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	h := pipeline.MetricsHandler(pipeline.NewRegistry(pipeline.NewCollector(p, nil)))
	full := line("max_bytes", 300)
	appendLog(line("max_bytes", 100) + line("keep_free", 50) + full[:10])
	m := scrape(t, h)
	want(t, m, `tapvault_retention_dropped_segments_total{reason="max_bytes"}`, 1)
	want(t, m, `tapvault_retention_dropped_bytes_total{reason="max_bytes"}`, 100)
	want(t, m, `tapvault_retention_dropped_segments_total{reason="keep_free"}`, 1)
	want(t, m, `tapvault_retention_dropped_bytes_total{reason="keep_free"}`, 50)
	want(t, m, `tapvault_retention_dropped_segments_total{reason="max_age"}`, 0)
	appendLog(full[10:])
	m = scrape(t, h)
	want(t, m, `tapvault_retention_dropped_segments_total{reason="max_bytes"}`, 2)
	want(t, m, `tapvault_retention_dropped_bytes_total{reason="max_bytes"}`, 400)
	if _, err := p.Run(sources(t, trace(t, 100), 1)); err != nil {
		t.Fatal(err)
	}
}

// metricNames are the tapvault_ metrics the collector describes.
func metricNames(t *testing.T) []string {
	t.Helper()
	ac := analytics.DefaultConfig() // with analytics, so their metrics are described too
	p, err := pipeline.Open(pipeline.Options{Dir: t.TempDir(), Logger: quiet(), Analytics: &ac}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Writer().Close()
	ch := make(chan *prometheus.Desc, 256)
	pipeline.NewCollector(p, nil).Describe(ch)
	close(ch)
	re := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	var names []string
	for d := range ch {
		mm := re.FindStringSubmatch(d.String())
		if mm == nil {
			t.Fatalf("no fqName in %s", d)
		}
		names = append(names, mm[1])
	}
	return names
}

func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range metricNames(t) {
		if !strings.Contains(string(doc), "`"+n+"`") {
			t.Errorf("%s: not in docs/metrics.md", n)
		}
	}
}

// The dashboard is valid JSON, has a Prometheus datasource variable, and
// every metric its queries use exists.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title         string `json:"title"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	if d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("got title %q schemaVersion %d, want a title and schemaVersion >= 36", d.Title, d.SchemaVersion)
	}
	ds := false
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			ds = true
		}
	}
	if !ds {
		t.Error("got no datasource variable of type prometheus, want one")
	}
	known := make(map[string]bool)
	for _, n := range metricNames(t) {
		known[n] = true
	}
	re := regexp.MustCompile(`tapvault_[a-z_]+`)
	exprs := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			for _, n := range re.FindAllString(tg.Expr, -1) {
				base := n
				for _, suf := range []string{"_bucket", "_count", "_sum"} {
					if s, ok := strings.CutSuffix(n, suf); ok && known[s] {
						base = s
					}
				}
				if !known[base] {
					t.Errorf("panel %q: %s is not a tapvault metric", p.Title, n)
				}
			}
		}
	}
	if exprs < 7 {
		t.Errorf("got %d queries, want at least 7 (pps/bps, drops, compression, index lag, time to queryable, disk, retention)", exprs)
	}
}
