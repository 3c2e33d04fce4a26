package api

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"tapvault/query"
	"testing"
	"time"
)

// BenchmarkAPIPackets streams a whole store through /api/v1/packets (pcapng)
// from 1, 2 and 4 clients at once, with the default 2 query slots: past 2,
// clients queue. pkts/s is the aggregate over all clients, ms/query the
// latency one client sees.
func BenchmarkAPIPackets(b *testing.B) {
	const packets = 100_000
	dir, _ := apiStoreN(b, packets, 0)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := query.OpenStore(dir, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	srv, err := NewServer(st, ServerOptions{Logger: quiet, QueueWait: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	fetch := func(q string) (int64, error) {
		resp, err := http.Get(hs.URL + "/api/v1/packets?format=pcapng" + q)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return io.Copy(io.Discard, resp.Body)
	}
	for _, qc := range []struct {
		name, q string
		matched int
	}{
		{"all", "", packets},
		{"udp", "&filter=udp", (packets + 2) / 3},
	} {
		for _, clients := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("query=%s/clients=%d", qc.name, clients), func(b *testing.B) {
				n, err := fetch(qc.q)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(n * int64(clients))
				b.ReportAllocs()
				var (
					mu      sync.Mutex
					latency time.Duration
					firstEr error
				)
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					var wg sync.WaitGroup
					for c := 0; c < clients; c++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							t0 := time.Now()
							_, err := fetch(qc.q)
							mu.Lock()
							latency += time.Since(t0)
							if err != nil && firstEr == nil {
								firstEr = err
							}
							mu.Unlock()
						}()
					}
					wg.Wait()
				}
				el := time.Since(start)
				b.StopTimer()
				if firstEr != nil {
					b.Fatal(firstEr)
				}
				b.ReportMetric(float64(qc.matched*clients*b.N)/el.Seconds(), "pkts/s")
				b.ReportMetric(float64(packets*clients*b.N)/el.Seconds(), "scanned/s")
				b.ReportMetric(latency.Seconds()*1e3/float64(clients*b.N), "ms/query")
			})
		}
	}
}
