package api

import (
	"bytes"
	"net/netip"
	"net/url"
	"testing"

	"tapvault/analytics"
	"tapvault/msgstore"
)

// writeExchanges appends n http exchanges (a front end at 10.0.0.80:80
// calling a redis backend in every other one) to the store at dir with a
// writer of its own, which starts and seals a new message file.
func writeExchanges(t *testing.T, dir string, first, n int) {
	t.Helper()
	w, err := msgstore.OpenWriter(dir, msgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	front := netip.MustParseAddrPort("10.0.0.80:80")
	for i := first; i < first+n; i++ {
		ts := apiTS(0) + int64(i)*10_000_000
		r := &analytics.Record{
			ID: uint64(1000 + i), Proto: "http", Transport: 6, Class: analytics.ClassHealthy,
			Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, 1, byte(i)}), 40000), Server: front,
			ReqFirst: ts, ReqLast: ts + 1000, RespFirst: ts + 5_000_000, RespLast: ts + 5_100_000,
			Network: 200_000, ServerTime: 4_799_000, Transfer: 100_000, ClientNet: 100_000, RTT: 300_000,
		}
		r.SetEvidence(analytics.NetHandshake, analytics.ConfHigh, analytics.NearServer, analytics.WhyNone)
		if err := w.Append(r); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			b := &analytics.Record{
				ID: uint64(900000 + i), Proto: "redis", Transport: 6, Class: analytics.ClassHealthy,
				Client: netip.AddrPortFrom(front.Addr(), 50000), Server: netip.MustParseAddrPort("10.0.0.90:6379"),
				ReqFirst: ts + 1_000_000, ReqLast: ts + 1_000_100, RespFirst: ts + 3_000_000, RespLast: ts + 3_000_100,
				Network: 100, ServerTime: 1_999_800, Transfer: 100, ClientNet: -1, RTT: 100,
			}
			if err := w.Append(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAnswersKept: a repeated request is answered from the kept answer,
// the same bytes; once a writer has added records, it is computed again
// and counts them; different parameters are different answers.
func TestAnswersKept(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{}, false)
	dir := e.srv.store.Dir
	writeExchanges(t, dir, 0, 40)
	reqs := []struct {
		path string
		q    url.Values
	}{
		{pathTiers, nil},
		{pathDiagnose, url.Values{"min_count": {"5"}}},
		{pathLatencySeries, url.Values{"total": {"true"}, "cols": {"5"}}},
		{pathHeatmap, url.Values{"expr": {"proto http"}}},
		{pathLatency, url.Values{"by": {"proto"}}},
		{pathExchanges, url.Values{"sort": {"-latency_ns"}, "limit": {"5"}}},
	}
	hits := func() uint64 {
		answers.mu.Lock()
		defer answers.mu.Unlock()
		return answers.hits
	}
	get := func(path string, q url.Values) []byte {
		resp, body := e.get(t, path, q)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s?%s: %d %s", path, q.Encode(), resp.StatusCode, body)
		}
		return body
	}
	first := make([][]byte, len(reqs))
	for i, rq := range reqs {
		first[i] = get(rq.path, rq.q)
		h := hits()
		if again := get(rq.path, rq.q); !bytes.Equal(again, first[i]) {
			t.Errorf("GET %s again: got %s, want %s", rq.path, again, first[i])
		}
		if got := hits(); got != h+1 {
			t.Errorf("GET %s again: %d answers kept served, want %d", rq.path, got-h, 1)
		}
	}
	// Another parameter: computed, not the kept answer.
	h := hits()
	if b := get(pathHeatmap, url.Values{"expr": {"proto redis"}}); bytes.Equal(b, first[3]) || hits() != h {
		t.Errorf("heatmap of redis: got the http answer or a kept one (%d served)", hits()-h)
	}
	if b := get(pathExchanges, url.Values{"sort": {"-latency_ns"}, "limit": {"5"}, "offset": {"5"}}); bytes.Equal(b, first[5]) || hits() != h {
		t.Errorf("exchanges' second page: got the first or a kept one (%d served)", hits()-h)
	}
	if b := get(pathLatency, url.Values{"by": {"server"}}); bytes.Equal(b, first[4]) || hits() != h {
		t.Errorf("latency by server: got the by-proto answer or a kept one (%d served)", hits()-h)
	}
	writeExchanges(t, dir, 40, 10)
	h = hits()
	for i, rq := range reqs {
		if b := get(rq.path, rq.q); bytes.Equal(b, first[i]) {
			t.Errorf("GET %s after 10 more exchanges: got the same answer %s", rq.path, b)
		}
	}
	if got := hits(); got != h {
		t.Errorf("after the store changed: %d kept answers served, want 0", got-h)
	}
}

func TestAnswerCacheBounds(t *testing.T) {
	c := newAnswerCache(2, 100)
	c.put("a", "s", "t", []byte("1"))
	c.put("b", "s", "t", []byte("2"))
	if _, _, ok := c.get("a", "s"); !ok { // a is now the most recent
		t.Fatal("a: not kept")
	}
	c.put("c", "s", "t", []byte("3"))
	if _, _, ok := c.get("b", "s"); ok {
		t.Error("b: kept, want evicted (least recently used)")
	}
	if _, _, ok := c.get("a", "other state"); ok {
		t.Error("a: served for another store state")
	}
	c.put("big", "s", "t", make([]byte, 26)) // over a quarter of the bytes
	if _, _, ok := c.get("big", "s"); ok {
		t.Error("an answer over a quarter of the budget was kept")
	}
	c.put("d", "s", "t", make([]byte, 25))
	c.put("e", "s", "t", make([]byte, 25))
	c.put("f", "s", "t", make([]byte, 25))
	if len(c.m) > 2 || c.bytes > 100 {
		t.Errorf("got %d answers of %d bytes, want at most 2 and 100", len(c.m), c.bytes)
	}
}
