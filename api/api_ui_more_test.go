package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestHeatmapRows: the latency rows are 0, then 1-2-5 from 1 µs to 100 s.
func TestHeatmapRows(t *testing.T) {
	for _, c := range []struct {
		lat  int64
		row  int
		from int64
	}{{0, 0, 0}, {999, 0, 0}, {1000, 1, 1000}, {1999, 1, 1000}, {2000, 2, 2000}, {4999, 2, 2000}, {5000, 3, 5000},
		{9999, 3, 5000}, {10_000, 4, 10_000}, {82_491_182, 15, 50_000_000}, {99_999_999_999, 24, 50e9}, {100e9, 25, 100e9}, {1 << 62, 25, 100e9}} {
		r := heatmapRow(c.lat)
		if r != c.row || heatmapBounds[r] != c.from {
			t.Errorf("latency %d: row %d (from %d), want %d (from %d)", c.lat, r, heatmapBounds[r], c.row, c.from)
		}
	}
}

// TestScrapeIndexHealth: the index lag and the time to queryable's p50 and
// p99 read from a capture's /metrics: the upper bound of the bucket where
// the quantile falls.
func TestScrapeIndexHealth(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`# HELP tapvault_index_lag_blocks x
# TYPE tapvault_index_lag_blocks gauge
tapvault_index_lag_blocks 7
tapvault_time_to_queryable_seconds_bucket{le="0.01"} 0
tapvault_time_to_queryable_seconds_bucket{le="0.1"} 50
tapvault_time_to_queryable_seconds_bucket{le="1"} 98
tapvault_time_to_queryable_seconds_bucket{le="2.5"} 100
tapvault_time_to_queryable_seconds_bucket{le="+Inf"} 100
tapvault_time_to_queryable_seconds_sum 20
tapvault_time_to_queryable_seconds_count 100
`))
	})
	lag, p50, p99 := scrapeIndexHealth(h)
	if lag != 7 || p50 != 0.1 || p99 != 2.5 {
		t.Errorf("scraped lag %v p50 %v p99 %v, want 7 0.1 2.5", lag, p50, p99)
	}
	lag, p50, p99 = scrapeIndexHealth(http.NotFoundHandler())
	if lag != -1 || p50 != -1 || p99 != -1 {
		t.Errorf("without metrics: %v %v %v, want -1 -1 -1", lag, p50, p99)
	}
}

// TestUIAPIEndpoints: the new endpoints answer on a store without message
// records, and refuse bad parameters.
func TestUIAPIEndpoints(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{}, false)
	for _, c := range []struct {
		path string
		q    string
		code int
		has  string
	}{
		{pathHeatmap, "", 200, `"cells":[]`},
		{pathHeatmap, "cols=0", 400, "cols"},
		{pathHeatmap, "cols=1001", 400, "cols"},
		{pathHeatmap, "expr=proto+(", 400, "expr"},
		{pathTiers, "", 200, ""},
		{pathTiers, "tier_window=2h", 400, "tier_window"},
		{pathExchanges, "sort=-latency_ns", 200, `"total":0`},
		{pathExchanges, "sort=a+b", 400, "sort"},
		{pathExchanges, "limit=0", 400, "limit"},
		{pathExchanges, "offset=-1", 400, "offset"},
		{pathExchanges, "offset=9999999&limit=2", 400, "offset"},
		{pathHealth, "cols=10", 200, `"packets":[`},
		{pathLatencySeries, "", 200, `"columns":[[]`},
		{pathLatencySeries, "by=nosuchkey", 400, "by"},
		{pathLatencySeries, "cols=1001", 400, "cols"},
		{pathHealth, "bogus=1", 400, "bogus"},
	} {
		q, _ := url.ParseQuery(c.q)
		resp, body := e.get(t, c.path, q)
		if resp.StatusCode != c.code || !strings.Contains(string(body), c.has) {
			t.Errorf("GET %s?%s: %d %s, want %d with %q", c.path, c.q, resp.StatusCode, body, c.code, c.has)
		}
	}
	// Health over the whole store: its packets, all in the series.
	_, body := e.get(t, pathHealth, nil)
	var h healthAnswer
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range h.Series.Packets {
		n += p
	}
	if n != apiEthPackets+apiRawPackets || h.Now.Packets != uint64(n) || h.Now.OldestNS != apiTS(0) || h.Series.From != apiTS(0) {
		t.Errorf("health: series %d packets from %d, now %d packets, oldest %d; want %d from %d", n, h.Series.From, h.Now.Packets, h.Now.OldestNS, apiEthPackets+apiRawPackets, apiTS(0))
	}
}
