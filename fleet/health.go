package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// The health queue: reports that ClickHouse has not taken yet, oldest
// first. Records need no such queue (the message store is their buffer),
// but a health report is a sample of counters at one moment and exists
// nowhere else, so the shipper keeps the unsent ones in memory, bounded,
// and sends them in order once ClickHouse answers. Overflow drops the
// oldest report and counts it (DroppedHealthReports).
//
// Duplicates: sensor_health is a plain MergeTree (migration 003), which
// does not dedup, and an engine cannot be changed in place on 18.16 (a new
// table, a copy and a rename, per node under a sharded layout, is not the
// idempotent CREATE ... IF NOT EXISTS every migration is). Instead the
// shipper does not insert a report twice: a report whose insert failed may
// still have been written (the answer lost after ClickHouse committed it),
// so before sending such a report again the shipper asks which of their
// times the table already holds for this sensor and leaves those out. A
// report is one timestamp in one partition, so one INSERT writes it whole
// or not at all, and one row present means the report is.

// DefaultHealthQueue is the cap on queued reports when HealthEvery gives
// more than it: an hour at one report a second.
const DefaultHealthQueue = 3600

// healthChunk is the most reports one health INSERT carries (about 50 rows
// each): a long queue goes in several, oldest first.
const healthChunk = 64

// healthReport is one report waiting for ClickHouse.
type healthReport struct {
	ts    int64
	rows  []healthRow
	tried bool // an insert of it failed: it may be in the table already
}

type healthRow struct {
	Sensor string  `json:"sensor"`
	TS     int64   `json:"ts"`
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
}

// healthQueueCap is the queue's bound for opts: an hour of reports at
// HealthEvery, capped at DefaultHealthQueue, unless HealthQueue says.
func healthQueueCap(opts Options) int {
	if opts.HealthQueue > 0 {
		return opts.HealthQueue
	}
	return int(min(max(time.Hour/opts.HealthEvery, 1), DefaultHealthQueue))
}

// Health names the shipper reports itself, beside Options.Health's.
const (
	HealthLagNs        = "fleet_ship_lag_ns"
	HealthBacklogBytes = "fleet_unshipped_bytes"
	HealthShipped      = "fleet_shipped_records_total"
	HealthShipErrors   = "fleet_ship_errors_total"
	HealthDiskFree     = "disk_free_bytes"
	HealthClockSynced  = "clock_synced"
	HealthClockError   = "clock_error_ns"
	HealthClockMaxErr  = "clock_max_error_ns"
	// HealthDropped is the health reports the queue dropped, in the
	// flattened form of the capture's drop counters (and so in the
	// centre's per-sensor drops), once the first is dropped.
	HealthDropped = "dropped_health_reports_total{cause=queue_full,stage=fleet_shipper}"
)

// HealthValues is one health report: the capture's counters, the
// shipper's, the store's disk and the clock.
func (s *Shipper) HealthValues() map[string]float64 {
	v := map[string]float64{}
	if s.opts.Health != nil {
		for k, x := range s.opts.Health() {
			v[k] = x
		}
	}
	st := s.Stats()
	v[HealthLagNs] = float64(st.LagNs)
	v[HealthBacklogBytes] = float64(st.BacklogBytes)
	v[HealthShipped] = float64(st.Records)
	v[HealthShipErrors] = float64(st.Errors)
	if st.HealthDropped > 0 {
		// Only once there is one: the centre reads a sensor without
		// drop counters (a store shipped by fleet ship) as reporting no
		// drops, not zero.
		v[HealthDropped] = float64(st.HealthDropped)
	}
	var fs unix.Statfs_t
	if unix.Statfs(s.opts.Dir, &fs) == nil {
		v[HealthDiskFree] = float64(fs.Bavail) * float64(fs.Bsize)
	}
	clk := ReadClock()
	v[HealthClockSynced] = 0
	if clk.Synced {
		v[HealthClockSynced] = 1
	}
	v[HealthClockError] = float64(clk.ErrorNs)
	v[HealthClockMaxErr] = float64(clk.MaxErrorNs)
	return v
}

// sampleHealth takes one report now and queues it, dropping the oldest
// when the queue is full.
func (s *Shipper) sampleHealth() {
	ts := time.Now().UnixNano()
	vals := s.HealthValues()
	rows := make([]healthRow, 0, len(vals))
	for k, x := range vals {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			continue // JSON has no NaN; an unreadable gauge is left out
		}
		// The names repeat in every report: keep one copy of each, so a
		// full queue holds mostly values.
		name, ok := s.names[k]
		if !ok {
			name = k
			s.names[k] = k
		}
		rows = append(rows, healthRow{Sensor: s.opts.Sensor, TS: ts, Name: name, Value: x})
	}
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if len(s.hq) >= s.hcap {
		n := len(s.hq) - s.hcap + 1
		clear(s.hq[:n])
		s.hq = s.hq[n:]
		s.healthDropped.Add(uint64(n))
		// Once per outage in the log (one a report would be every 10 s);
		// the counter has every one.
		if !s.dropLogged {
			s.dropLogged = true
			s.log.Warn("fleet: health report queue full: dropping the oldest until ClickHouse takes reports again (counted in tapvault_dropped_health_reports_total)",
				"queue", s.hcap, "dropped_total", s.healthDropped.Load())
		}
	}
	s.hq = append(s.hq, &healthReport{ts: ts, rows: rows})
}

// flushHealth sends the queued reports, oldest first, until the queue is
// empty or an insert fails.
func (s *Shipper) flushHealth(ctx context.Context) error {
	for {
		s.hmu.Lock()
		chunk := slices.Clone(s.hq[:min(len(s.hq), healthChunk)])
		s.hmu.Unlock()
		if len(chunk) == 0 {
			return nil
		}
		if slices.ContainsFunc(chunk, func(r *healthReport) bool { return r.tried }) {
			if err := s.skipDelivered(ctx, chunk); err != nil {
				s.healthErrors.Add(1)
				return err
			}
			continue // the queue's front changed: take the chunk again
		}
		var rows []any
		for _, r := range chunk {
			for i := range r.rows {
				rows = append(rows, &r.rows[i])
			}
		}
		err := s.opts.Client.Insert(ctx, "sensor_health", rows)
		s.hmu.Lock()
		if err != nil {
			for _, r := range chunk {
				r.tried = true
			}
			n := len(s.hq)
			s.hmu.Unlock()
			s.healthErrors.Add(1)
			s.log.Debug("fleet: health reports not shipped; kept to retry", "err", err, "queued", n)
			return err
		}
		s.popHealth(chunk)
		s.dropLogged = false
		s.hmu.Unlock()
		s.healthSent.Add(uint64(len(chunk)))
	}
}

// popHealth removes chunk's reports from the queue's front; the queue's
// oldest may have been dropped meanwhile (sampleHealth runs on the same
// goroutine today, but the check costs nothing). Called with hmu held.
func (s *Shipper) popHealth(chunk []*healthReport) {
	for _, r := range chunk {
		if len(s.hq) > 0 && s.hq[0] == r {
			s.hq[0] = nil
			s.hq = s.hq[1:]
		}
	}
}

// skipDelivered removes from the queue the reports of chunk that an
// earlier, failed insert wrote after all (it asks ClickHouse which of their
// times it holds for this sensor), and marks the others of chunk as known
// absent.
func (s *Shipper) skipDelivered(ctx context.Context, chunk []*healthReport) error {
	asked := map[*healthReport]bool{}
	var ts []string
	for _, r := range chunk {
		if r.tried {
			asked[r] = true
			ts = append(ts, strconv.FormatInt(r.ts, 10))
		}
	}
	q := fmt.Sprintf("SELECT DISTINCT ts FROM sensor_health WHERE sensor = %s AND ts IN (%s)",
		quoteString(s.opts.Sensor), strings.Join(ts, ","))
	present := map[int64]bool{}
	if err := s.opts.Client.QueryFunc(ctx, q, func(line []byte) error {
		var row struct {
			TS int64 `json:"ts,string"`
		}
		if err := json.Unmarshal(line, &row); err != nil {
			return err
		}
		present[row.TS] = true
		return nil
	}); err != nil {
		return err
	}
	s.hmu.Lock()
	defer s.hmu.Unlock()
	kept := s.hq[:0]
	for _, r := range s.hq {
		if asked[r] {
			if present[r.ts] {
				s.healthSent.Add(1)
				continue
			}
			r.tried = false
		}
		kept = append(kept, r)
	}
	clear(s.hq[len(kept):])
	s.hq = kept
	return nil
}

// quoteString is s as a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// finalHealth ships one last health report after ctx ended, briefly, with
// what is queued before it. What is still queued then is lost with the
// process: said in the log, never silently.
func (s *Shipper) finalHealth() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.sampleHealth()
	s.flushHealth(ctx)
}

// HealthQueued returns the health reports waiting for ClickHouse.
func (s *Shipper) HealthQueued() int {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	return len(s.hq)
}

var dDroppedHealth = prometheus.NewDesc("tapvault_dropped_health_reports_total",
	"Health reports the fleet shipper dropped, by stage and cause: stage fleet_shipper, cause queue_full (ClickHouse took none while the queue of unsent reports, an hour's by default, filled; the oldest went).",
	[]string{"stage", "cause"}, nil)

var dHealthQueued = prometheus.NewDesc("tapvault_fleet_health_queued_reports",
	"Health reports waiting for ClickHouse (sent in order when it answers).", nil, nil)

// Describe and Collect make the shipper a prometheus.Collector of its
// health queue: the drops and the reports waiting.
func (s *Shipper) Describe(ch chan<- *prometheus.Desc) {
	ch <- dDroppedHealth
	ch <- dHealthQueued
}

// Collect reads the counters at scrape time.
func (s *Shipper) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(dDroppedHealth, prometheus.CounterValue, float64(s.healthDropped.Load()), "fleet_shipper", "queue_full")
	ch <- prometheus.MustNewConstMetric(dHealthQueued, prometheus.GaugeValue, float64(s.HealthQueued()))
}

var _ prometheus.Collector = (*Shipper)(nil)
