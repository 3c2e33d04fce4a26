package centre

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"tapvault/fleet"
)

// BenchmarkCentrePackets: what streaming through the centre costs. The same
// packets read straight from a sensor's fleet port (mTLS), through the
// centre from one sensor (pcapng parsed and written again, the merge with
// one source), and merged from two sensors; and a drill-down straight and
// through the centre (passed through unchanged). Three sensors of 100k app
// packets each, real ClickHouse for flow_blocks.
func BenchmarkCentrePackets(b *testing.B) {
	e := newFleetEnvWith(b, Options{Logger: quiet()}, 100000)
	conf, err := fleet.ClientTLSConfig(e.pem("centre"))
	if err != nil {
		b.Fatal(err)
	}
	direct := &http.Client{Transport: &http.Transport{TLSClientConfig: fleet.ForSensor(conf, "sensor-a")}}
	fetch := func(b *testing.B, cl *http.Client, url string) int64 {
		resp, err := cl.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%s: %d %v", url, resp.StatusCode, err)
		}
		return n
	}
	var id string
	for _, r := range exchangeIDs(b, e.sensors["sensor-a"].dir) {
		if r.Proto == "http" {
			id = fmt.Sprintf("%016x", r.ID)
			break
		}
	}
	for _, bc := range []struct {
		name string
		cl   *http.Client
		url  string
	}{
		{"direct/sensor=a", direct, "https://" + e.sensors["sensor-a"].addr + "/api/v1/packets?format=pcapng"},
		{"centre/sensors=a", http.DefaultClient, e.web.URL + "/api/v1/packets?sensor=sensor-a"},
		{"centre/sensors=a,b", http.DefaultClient, e.web.URL + "/api/v1/packets?sensor=sensor-a,sensor-b"},
		{"drilldown/direct", direct, "https://" + e.sensors["sensor-a"].addr + "/api/v1/messages/" + id + "/packets"},
		{"drilldown/centre", http.DefaultClient, e.web.URL + "/api/v1/messages/" + id + "/packets?sensor=sensor-a"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var bytes int64
			start := time.Now()
			for range b.N {
				bytes = fetch(b, bc.cl, bc.url)
			}
			b.SetBytes(bytes)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "answers/s")
		})
	}
}
