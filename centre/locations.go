package centre

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"tapvault/probe"
)

// pathLocations is the verdict across locations (issue 16 §3): the probe
// exchanges every sensor shipped (records whose fields carry probe and
// location, docs/probes.md), compared by location with probe.Decide, the
// same rules as tapvault locations on local stores.
const pathLocations = "/api/v1/fleet/locations"

// maxLocationSamples bounds the probe exchanges one verdict reads.
const maxLocationSamples = 200000

// LocationsAnswer is the verdict with what it was drawn from.
type LocationsAnswer struct {
	probe.Verdict
	Probe   string `json:"probe,omitempty"`
	Samples int    `json:"samples"`
	// Cut: more probe exchanges matched than were read (the newest are
	// left out); narrow from/to.
	Cut bool `json:"cut,omitempty"`
	// SlowestSensor names the sensor that holds each of the locations'
	// slowest exchanges (ID as in slowest): a location may have several
	// sensors, and a drill-down goes to the one that has the packets.
	SlowestSensor map[string]string `json:"slowest_sensor"`
}

func (c *Centre) handleLocations(w http.ResponseWriter, r *http.Request) {
	p, sel, ok := c.selectionParams(w, r, "from", "to", "sensor", "probe", "slow_network", "slow_server")
	if !ok {
		return
	}
	var err error
	var vo probe.VerdictOptions
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{"slow_network", &vo.SlowNetwork}, {"slow_server", &vo.SlowServer}} {
		if v, ok := p[d.key]; ok {
			if *d.dst, err = time.ParseDuration(v); err != nil || *d.dst <= 0 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %q: want a positive duration like 20ms", d.key, v))
				return
			}
		}
	}
	// The probe's name as the shipper encodes it in the fields' JSON.
	needle := `"probe":`
	if name := p["probe"]; name != "" {
		b, _ := json.Marshal(name)
		needle += string(b)
	}
	a := LocationsAnswer{Probe: p["probe"]}
	var samples []probe.Sample
	var sensorOf []string // samples[i]'s sensor
	err = c.meta.QueryFunc(r.Context(), fmt.Sprintf(
		"SELECT sensor, id, network, server_time, visitParamExtractString(fields, 'location') AS location FROM %s.records FINAL WHERE %s AND position(fields, %s) > 0 ORDER BY req_first LIMIT %d",
		c.db, sel.where(), sqlString(needle), maxLocationSamples+1), func(line []byte) error {
		var row struct {
			Sensor     string
			ID         flexInt
			Network    flexInt
			ServerTime flexInt `json:"server_time"`
			Location   string
		}
		if err := json.Unmarshal(line, &row); err != nil {
			return err
		}
		if len(samples) == maxLocationSamples {
			a.Cut = true
			return nil
		}
		loc := row.Location
		if loc == "" {
			loc = row.Sensor // a record tagged without a location: its sensor's
		}
		samples = append(samples, probe.Sample{Location: loc, ID: uint64(row.ID), Network: int64(row.Network), Server: int64(row.ServerTime)})
		sensorOf = append(sensorOf, row.Sensor)
		return nil
	})
	if err != nil {
		c.metaError(w, err)
		return
	}
	a.Samples = len(samples)
	a.Verdict = probe.Decide(samples, vo)
	a.SlowestSensor = map[string]string{}
	want := map[uint64]bool{}
	for _, l := range a.Locations {
		for _, id := range l.Worst {
			want[id] = true
		}
	}
	for i, s := range samples {
		if want[s.ID] {
			a.SlowestSensor[fmt.Sprintf("%016x", s.ID)] = sensorOf[i]
		}
	}
	writeJSON(w, a)
}
