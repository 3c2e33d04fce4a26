package centre

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tapvault/api"
	"tapvault/fleet"
)

// sensor is one configured sensor: two HTTP clients over the fleet's mutual
// TLS, and what its last probe saw.
//
// Why two clients: a long packet pull holds a connection for as long as
// the user downloads; a health probe on the same pool could wait behind it
// and show a busy sensor as down (Security Onion #3279, #15650). Probes have
// a transport of their own and a short timeout, and run in their own
// goroutine, so nothing a user pulls delays them.
type sensor struct {
	name, addr string
	pull       *http.Client // packet pulls: no overall timeout (streams), bounded dial/handshake/header waits
	probe      *http.Client // health probes: ProbeTimeout end to end

	mu    sync.Mutex
	state probeState
}

// probeState is the last probe's outcome.
type probeState struct {
	Probed    bool
	Reachable bool
	Busy      bool  // answered 503: up, every query slot taken
	Last      int64 // ns of the last probe
	LastOK    int64 // ns of the last answer, 0: never
	RTT       time.Duration
	Err       string
	// OffsetNs is the sensor's clock minus the centre's at the probe,
	// within OffsetErrNs (half the round trip).
	OffsetNs, OffsetErrNs int64
	OffsetKnown           bool
}

func newSensor(name, addr string, conf *tls.Config, probeTimeout time.Duration) *sensor {
	return &sensor{
		name: name, addr: addr,
		pull:  &http.Client{Transport: sensorTransport(conf)},
		probe: &http.Client{Transport: sensorTransport(conf), Timeout: probeTimeout},
	}
}

// url is a path on the sensor's fleet port.
func (s *sensor) url(pathAndQuery string) string { return "https://" + s.addr + pathAndQuery }

func (s *sensor) get() probeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// reachable is what queries go by: a sensor never probed yet counts as
// reachable (the query itself finds out).
func (s *sensor) reachable() bool {
	st := s.get()
	return !st.Probed || st.Reachable
}

// probeOnce asks the sensor's fleet ping (api.PathFleetPing), which takes
// no query slot: a sensor whose slots are all held by long pulls still
// answers at once, and shows as busy, not down.
func (s *sensor) probeOnce(ctx context.Context, now time.Time) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url(api.PathFleetPing), nil)
	resp, err := s.probe.Do(req)
	end := time.Now()
	st := probeState{Probed: true, Last: now.UnixNano(), RTT: end.Sub(start)}
	if err == nil {
		var p api.FleetPing
		derr := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&p)
		resp.Body.Close()
		switch {
		case resp.StatusCode != http.StatusOK:
			// An answer over a verified connection: the sensor is there,
			// but its fleet port is not what this centre expects.
			st.Reachable, st.Err = true, fmt.Sprintf("ping answered %d", resp.StatusCode)
		case derr != nil:
			st.Reachable, st.Err = true, "ping: "+derr.Error()
		default:
			st.Reachable, st.Busy = true, p.MaxQueries > 0 && p.QueriesRunning >= p.MaxQueries
			// The sensor's clock against the centre's, NTP-style: its
			// reading is taken somewhere within the round trip.
			st.OffsetNs = p.TimeNs - (start.UnixNano()+end.UnixNano())/2
			st.OffsetErrNs = int64(st.RTT / 2)
			st.OffsetKnown = true
		}
	} else {
		st.Err = err.Error()
	}
	s.mu.Lock()
	if st.Reachable {
		st.LastOK = st.Last
	} else {
		st.LastOK = s.state.LastOK
	}
	s.state = st
	s.mu.Unlock()
}

// StartProbes probes every sensor now and then every ProbeInterval, each in
// its own goroutine, and refreshes the health rows from ClickHouse on the
// same beat. The returned stop waits for them.
func (c *Centre) StartProbes(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	loop := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(c.cfg.ProbeInterval)
			defer t.Stop()
			for {
				fn()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	for _, s := range c.sensors {
		loop(func() { s.probeOnce(ctx, c.now()) })
	}
	loop(func() { c.refreshHealth(ctx) })
	return func() { cancel(); wg.Wait() }
}

// ProbeNow probes every sensor once, in parallel, and waits (tests, and the
// first answer after a start).
func (c *Centre) ProbeNow(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range c.sensors {
		wg.Add(1)
		go func() { defer wg.Done(); s.probeOnce(ctx, c.now()) }()
	}
	wg.Wait()
	c.refreshHealth(ctx)
}

// missing lists the sensors whose last probe failed, sorted.
func (c *Centre) missing() []string {
	out := []string{}
	for _, s := range c.sensors {
		if !s.reachable() {
			out = append(out, s.name)
		}
	}
	return out
}

// healthCache is the sensors' shipped health, read from ClickHouse by the
// probe loop (never by a request), so the sensors view answers at once.
type healthCache struct {
	mu     sync.Mutex
	at     int64
	err    string
	values map[string]map[string]healthValue // sensor -> name -> latest
}

type healthValue struct {
	Value float64 `json:"value"`
	TS    int64   `json:"ts"`
}

// healthWindow bounds the health scan, which runs every probe interval:
// the latest row of each counter within it is its current value. Shippers
// report every 10 s; a sensor silent for longer shows no values, and its
// report age says since when.
const healthWindow = time.Hour

func (c *Centre) refreshHealth(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*c.cfg.ProbeTimeout+5*time.Second)
	defer cancel()
	since := c.now().Add(-healthWindow).UnixNano()
	values := map[string]map[string]healthValue{}
	err := c.meta.QueryFunc(ctx, fmt.Sprintf(
		"SELECT sensor, name, argMax(value, ts) AS v, max(ts) AS t FROM %s.sensor_health WHERE ts >= %d GROUP BY sensor, name",
		c.db, since), func(line []byte) error {
		// Aliases differ from the columns: 18.16 resolves an alias that
		// shadows a column inside the aggregate, and fails.
		var row struct {
			Sensor, Name string
			V            flexFloat
			T            flexInt
		}
		if err := json.Unmarshal(line, &row); err != nil {
			return err
		}
		if values[row.Sensor] == nil {
			values[row.Sensor] = map[string]healthValue{}
		}
		values[row.Sensor][row.Name] = healthValue{Value: float64(row.V), TS: int64(row.T)}
		return nil
	})
	c.health.mu.Lock()
	defer c.health.mu.Unlock()
	c.health.at = c.now().UnixNano()
	if err != nil {
		c.health.err = err.Error() // keep the last good values beside the error
		return
	}
	c.health.err, c.health.values = "", values
}

// clockOfHealth is a sensor's clock as its newest health report states
// it (the shipper reads adjtimex for each report).
func clockOfHealth(h map[string]healthValue) (clockState, bool) {
	synced, ok1 := h[fleet.HealthClockSynced]
	errNs, ok2 := h[fleet.HealthClockError]
	if !ok1 || !ok2 {
		return clockState{}, false
	}
	return clockState{Synced: synced.Value != 0, ErrorNs: int64(errNs.Value)}, true
}

// SensorHealth is one sensor in the sensors view.
type SensorHealth struct {
	Name      string  `json:"name"`
	Addr      string  `json:"addr"`
	Reachable bool    `json:"reachable"`
	Busy      bool    `json:"busy"`
	Probed    bool    `json:"probed"`
	LastProbe int64   `json:"last_probe"` // ns
	LastOK    int64   `json:"last_ok"`    // ns, 0: never
	ProbeMs   float64 `json:"probe_ms"`
	Error     string  `json:"error,omitempty"`
	// ClockOffset is the sensor's clock minus the centre's, measured by
	// the last probe, with its uncertainty (half the probe's round trip);
	// absent when the probe failed.
	ClockOffset *Offset `json:"clock_offset,omitempty"`
	// Health is the latest value of each counter the sensor shipped
	// (sensor_health: ship lag, drops, disk, ...), with its time.
	Health map[string]healthValue `json:"health"`
	// Clock is the sensor's clock state in its newest health report.
	Clock *clockState `json:"clock,omitempty"`
}

// Offset is a clock offset with its uncertainty; Uncertain flags one no
// larger than its uncertainty (its sign is not established).
type Offset struct {
	Ns            int64 `json:"ns"`
	UncertaintyNs int64 `json:"uncertainty_ns"`
	Uncertain     bool  `json:"uncertain"`
}

// SensorsAnswer is /api/v1/fleet/sensors.
type SensorsAnswer struct {
	Sensors []SensorHealth `json:"sensors"`
	Missing []string       `json:"missing"`
	// MetadataError is set when ClickHouse did not answer the last health
	// refresh: the health values are then the last ones read.
	MetadataError string `json:"metadata_error,omitempty"`
	HealthAt      int64  `json:"health_at"` // ns of the last health refresh
}

func (c *Centre) sensorsAnswer() SensorsAnswer {
	c.health.mu.Lock()
	defer c.health.mu.Unlock()
	a := SensorsAnswer{Missing: c.missing(), MetadataError: c.health.err, HealthAt: c.health.at}
	for _, s := range c.sensors {
		st := s.get()
		h := SensorHealth{
			Name: s.name, Addr: s.addr, Reachable: st.Reachable, Busy: st.Busy, Probed: st.Probed,
			LastProbe: st.Last, LastOK: st.LastOK, ProbeMs: float64(st.RTT.Microseconds()) / 1000, Error: st.Err,
			Health: c.health.values[s.name],
		}
		if st.OffsetKnown {
			h.ClockOffset = &Offset{Ns: st.OffsetNs, UncertaintyNs: st.OffsetErrNs, Uncertain: abs(st.OffsetNs) <= st.OffsetErrNs}
		}
		if h.Health == nil {
			h.Health = map[string]healthValue{}
		}
		if cl, ok := clockOfHealth(h.Health); ok {
			h.Clock = &cl
		}
		a.Sensors = append(a.Sensors, h)
	}
	return a
}

func (c *Centre) handleSensors(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > 0 {
		writeError(w, http.StatusBadRequest, "this endpoint takes no parameters")
		return
	}
	writeJSON(w, c.sensorsAnswer())
}

// handleMetrics serves the per-sensor gauges (docs/metrics.md): read at
// scrape time from the probe state and the health cache.
func (c *Centre) handleMetrics(w http.ResponseWriter, r *http.Request) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&centreCollector{c: c})
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

var (
	descReachable = prometheus.NewDesc("tapvault_fleet_sensor_reachable", "1 when the sensor's fleet port answered the last probe (a busy sensor is reachable), else 0.", []string{"sensor"}, nil)
	descProbe     = prometheus.NewDesc("tapvault_fleet_sensor_probe_seconds", "Duration of the last probe of the sensor's fleet port.", []string{"sensor"}, nil)
	descLag       = prometheus.NewDesc("tapvault_fleet_sensor_ship_lag_seconds", "The sensor's shipping lag as it last reported it (sensor_health), seconds.", []string{"sensor"}, nil)
	descReport    = prometheus.NewDesc("tapvault_fleet_sensor_report_age_seconds", "Time since the sensor's newest health row reached ClickHouse's data (now minus its ts).", []string{"sensor"}, nil)
	descDrops     = prometheus.NewDesc("tapvault_fleet_sensor_drops", "The sensor's drop and loss counters as it last reported them, added (running totals since its capture started).", []string{"sensor"}, nil)
	descDisk      = prometheus.NewDesc("tapvault_fleet_sensor_disk_free_bytes", "Free space on the sensor's store file system as it last reported it.", []string{"sensor"}, nil)
	descSynced    = prometheus.NewDesc("tapvault_fleet_sensor_clock_synced", "1 when the sensor's clock was synchronised at its last report, else 0.", []string{"sensor"}, nil)
	descClockErr  = prometheus.NewDesc("tapvault_fleet_sensor_clock_error_seconds", "The sensor clock's estimated error at its last report (adjtimex esterror).", []string{"sensor"}, nil)
)

type centreCollector struct{ c *Centre }

func (cc *centreCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descReachable
	ch <- descProbe
	ch <- descLag
	ch <- descReport
	ch <- descDrops
	ch <- descDisk
	ch <- descSynced
	ch <- descClockErr
}

func (cc *centreCollector) Collect(ch chan<- prometheus.Metric) {
	a := cc.c.sensorsAnswer()
	now := cc.c.now().UnixNano()
	for _, s := range a.Sensors {
		ch <- prometheus.MustNewConstMetric(descReachable, prometheus.GaugeValue, b2f(s.Reachable), s.Name)
		ch <- prometheus.MustNewConstMetric(descProbe, prometheus.GaugeValue, s.ProbeMs/1000, s.Name)
		if lag, ok := shipLag(s.Health); ok {
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, lag, s.Name)
		}
		var newest int64
		for _, v := range s.Health {
			newest = max(newest, v.TS)
		}
		if newest > 0 {
			ch <- prometheus.MustNewConstMetric(descReport, prometheus.GaugeValue, float64(now-newest)/1e9, s.Name)
		}
		if d, ok := dropsOf(s.Health); ok {
			ch <- prometheus.MustNewConstMetric(descDrops, prometheus.GaugeValue, d, s.Name)
		}
		if v, ok := s.Health[fleet.HealthDiskFree]; ok {
			ch <- prometheus.MustNewConstMetric(descDisk, prometheus.GaugeValue, v.Value, s.Name)
		}
		if v, ok := s.Health[fleet.HealthClockSynced]; ok {
			ch <- prometheus.MustNewConstMetric(descSynced, prometheus.GaugeValue, v.Value, s.Name)
		}
		if v, ok := s.Health[fleet.HealthClockError]; ok {
			ch <- prometheus.MustNewConstMetric(descClockErr, prometheus.GaugeValue, v.Value/1e9, s.Name)
		}
	}
}

// shipLag is the sensor's ship lag in seconds, as its shipper last
// reported it.
func shipLag(h map[string]healthValue) (float64, bool) {
	v, ok := h[fleet.HealthLagNs]
	return v.Value / 1e9, ok
}

// dropsOf adds up the drop and loss counters a capture's shipper reports
// (names with "dropped" or "lost", fleet's captureHealth); false when the
// sensor reports none (a store shipped by fleet ship, not a capture).
func dropsOf(h map[string]healthValue) (float64, bool) {
	var sum float64
	found := false
	for n, v := range h {
		if strings.Contains(n, "dropped") || strings.Contains(n, "lost") {
			sum, found = sum+v.Value, true
		}
	}
	return sum, found
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
