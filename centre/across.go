package centre

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"tapvault/analytics"
	"tapvault/api"
	"tapvault/fleet"
	"tapvault/hops"
	"tapvault/pcap"
	"tapvault/query"
)

// One exchange across the fleet's sensors (issue 16 §2; docs/fleet.md, "One
// exchange across sensors"): /api/v1/fleet/across?sensor=A&id=ID finds the
// exchange that record ID at sensor A is in the records of the other
// sensors, and answers, for each sensor that saw it, what a sensor's own
// across view answers for two stores on one machine (api_across.go): both
// records, every packet with its time at each sensor, and the network time
// by hop, with the two clocks' uncertainty from the fleet's clock data.
//
// The matching is package hops' (hops.FindAcross): a packet is known at
// both sensors by the bytes a path does not rewrite, so it holds across a
// NAT. What the centre adds is where the inputs come from: the records and
// each sensor's candidates (the same protocol, the nearest in time within
// hops.DefaultMaxDelay) from ClickHouse, and their packets from the sensors'
// drill-downs over the fleet's mutual TLS; the centre reads no store.

const pathAcross = "/api/v1/fleet/across"

// maxAcrossBytes bounds what the centre reads of one record's packets (the
// drill-down's pcapng): it holds them in memory to match them, and an
// exchange past this is a bulk transfer, not one to draw as a ladder.
const maxAcrossBytes = 32 << 20

// acrossParallel bounds the sensors searched at once: each holds up to two
// records' packets in memory, and takes a query slot on its sensor.
const acrossParallel = 4

// clockWindow widens the range whose clock reports state an exchange's
// clocks: sensors report their clocks every 10 s (sensor_health), and an
// exchange lasts far less.
const clockWindow = time.Minute

// AcrossStep is one packet of the exchange, as the sensor API's across
// answer has it: its time at each sensor (0: not seen there).
type AcrossStep struct {
	ToServer bool   `json:"to_server"`
	AtA      int64  `json:"at_a_ns"`
	AtB      int64  `json:"at_b_ns"`
	Payload  int    `json:"payload"`
	Flags    string `json:"flags"`
}

// AcrossPair is the exchange at sensor A and at sensor B, in the fields of
// the sensor API's across answer (so the web UI draws both alike), with
// the centre's records and the clocks' statement.
type AcrossPair struct {
	A        string   `json:"a"`
	B        string   `json:"b"`
	RecordA  Exchange `json:"record_a"`
	RecordB  Exchange `json:"record_b"`
	Reversed bool     `json:"reversed"` // B is nearer the client than A
	// The round trips by hop, ns: client <-> the sensor nearer the client,
	// between the sensors, the farther sensor <-> server; -1 where unknown
	// or, for a_b_ns, refused (below_uncertainty).
	ClientA int64 `json:"client_a_ns"`
	AB      int64 `json:"a_b_ns"`
	BServer int64 `json:"b_server_ns"`
	Matched int   `json:"matched"` // packets seen at both sensors
	// ClockKnown: both clocks were synchronised and reported their error
	// over the exchange; UncertaintyNs is then the two errors added, else
	// -1.
	ClockKnown    bool   `json:"clock_known"`
	UncertaintyNs int64  `json:"uncertainty_ns"`
	Clock         string `json:"clock"`
	// Uncertain: the between-sensors figure does not exceed the
	// uncertainty, or nothing bounds it (clock_known false).
	Uncertain bool `json:"uncertain"`
	// BelowUncertainty: the measured a_b_ns was no larger than a known
	// uncertainty; it is refused (a_b_ns -1), not given as a figure.
	BelowUncertainty bool         `json:"below_uncertainty"`
	Steps            []AcrossStep `json:"steps"`
}

// AcrossAnswer is /api/v1/fleet/across.
type AcrossAnswer struct {
	Sensor string   `json:"sensor"`
	ID     string   `json:"id"`
	Record Exchange `json:"record"`
	// Across has a pair for each other sensor that saw the exchange.
	Across []AcrossPair `json:"across"`
	// NotFound names the sensors searched that hold no record of it.
	NotFound []string `json:"not_found"`
	// Missing names the sensors that could not be searched (down, busy,
	// or their drill-down failed): whether they saw it is not known.
	Missing []string `json:"missing"`
	// Ladder is the exchange at the sensor and every other that saw it
	// as one ladder, the sensors ordered from the client's side (the
	// sensor API's across answer has the same); absent when no other
	// sensor saw it.
	Ladder *api.AcrossLadder `json:"ladder,omitempty"`
}

// acrossCols are the record columns the matching needs beyond a listed
// exchange's: the client leg.
const acrossCols = exchangeCols + ", client_net"

// record is the row as the analytics record hops matches on.
func (r *exchangeRow) record() *analytics.Record {
	cl, _ := netip.ParseAddr(r.ClientIP)
	sv, _ := netip.ParseAddr(r.ServerIP)
	return &analytics.Record{
		ID: uint64(r.ID), Proto: r.Proto, Transport: uint8(r.Transport), VLAN: uint16(r.VLAN), Class: r.Class,
		Client: netip.AddrPortFrom(cl.Unmap(), uint16(r.ClientPort)), Server: netip.AddrPortFrom(sv.Unmap(), uint16(r.ServerPort)),
		ReqFirst: int64(r.ReqFirst), ReqLast: int64(r.ReqLast), RespFirst: int64(r.RespFirst), RespLast: int64(r.RespLast),
		Network: int64(r.Network), ServerTime: int64(r.ServerTime), ClientNet: int64(r.ClientNet),
	}
}

func (c *Centre) handleAcross(w http.ResponseWriter, r *http.Request) {
	p, err := params(r, "id", "sensor", "peer")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, err := query.ParseMessageID(p["id"])
	if err != nil {
		writeError(w, http.StatusBadRequest, "id: "+err.Error())
		return
	}
	sa, ok := c.recordSensor(w, r, id, p["sensor"])
	if !ok {
		return
	}
	var peers []string
	if v := p["peer"]; v != "" {
		for _, n := range strings.Split(v, ",") {
			if _, ok := c.byName[n]; !ok || n == sa.name {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("peer %q: want another sensor of fleet.yaml than %s (have %s)", n, sa.name, strings.Join(c.cfg.sensorNames(), ", ")))
				return
			}
			if !slices.Contains(peers, n) {
				peers = append(peers, n)
			}
		}
		slices.Sort(peers)
	} else {
		for _, s := range c.sensors {
			if s != sa {
				peers = append(peers, s.name)
			}
		}
	}
	ctx := r.Context()

	var rowA *exchangeRow
	err = c.meta.QueryFunc(ctx, fmt.Sprintf("SELECT %s FROM %s.records FINAL WHERE sensor = %s AND id = %d LIMIT 1",
		acrossCols, c.db, sqlString(sa.name), id), func(line []byte) error {
		rowA = new(exchangeRow)
		return json.Unmarshal(line, rowA)
	})
	if err != nil {
		c.metaError(w, err)
		return
	}
	if rowA == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("sensor %s shipped no record %016x", sa.name, id))
		return
	}
	if rowA.Class == analytics.ClassFlow {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("record %016x is a connection record: the view across sensors is of one exchange", id))
		return
	}
	ra := rowA.record()
	a := AcrossAnswer{Sensor: sa.name, ID: fmt.Sprintf("%016x", id), Record: rowA.exchange(), Across: []AcrossPair{}, NotFound: []string{}, Missing: []string{}}

	cands, err := c.acrossCandidates(ctx, ra, peers)
	if err != nil {
		c.metaError(w, err)
		return
	}
	var search []string
	var fs []found // the pairs' finds, in a.Across's order
	for _, n := range peers {
		switch {
		case len(cands[n]) == 0:
			a.NotFound = append(a.NotFound, n)
		case !c.byName[n].reachable():
			a.Missing = append(a.Missing, n)
		default:
			search = append(search, n)
		}
	}
	if len(search) > 0 {
		pa, err := c.fetchSeen(ctx, sa, id)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errRecordGone) {
				writeError(w, http.StatusNotFound, fmt.Sprintf("sensor %s no longer holds record %016x (retention)", sa.name, id))
				return
			}
			w.Header().Set(hdrMissing, sa.name)
			writeErrorMissing(w, http.StatusBadGateway, fmt.Sprintf("the packets of %016x at %s: %v", id, sa.name, err), []string{sa.name})
			return
		}
		pairs := c.searchAcross(ctx, ra, pa, search, cands)
		for i, n := range search {
			switch x := pairs[i]; {
			case x.err == nil:
				a.Across = append(a.Across, c.acrossPair(ctx, sa.name, n, rowA, x))
				fs = append(fs, x)
			case errors.Is(x.err, hops.ErrNotAcross):
				a.NotFound = append(a.NotFound, n)
			default:
				if ctx.Err() != nil {
					return
				}
				c.log.Warn("centre: a sensor left out of an exchange across sensors", "sensor", n, "err", x.err)
				a.Missing = append(a.Missing, n)
			}
		}
	}
	slices.Sort(a.NotFound)
	slices.Sort(a.Missing)
	if len(a.Across) > 0 {
		a.Ladder = c.acrossLadder(ctx, &a, rowA, fs)
	}
	writeJSON(w, &a)
}

// acrossLadder merges the exchange at a's sensor and at every other that
// saw it (fs, in the order of a.Across) into one ladder, each hop with its
// two sensors' clocks as acrossPair states a pair's.
func (c *Centre) acrossLadder(ctx context.Context, a *AcrossAnswer, rowA *exchangeRow, fs []found) *api.AcrossLadder {
	xs := make([]*hops.Across, len(fs))
	names := []string{a.Sensor}
	rows := []*exchangeRow{rowA}
	from, to := int64(rowA.ReqFirst), int64(rowA.ReqFirst)
	for i, f := range fs {
		xs[i] = f.x
		names, rows = append(names, a.Across[i].B), append(rows, f.row)
		for _, st := range f.x.Steps {
			for _, t := range st.At {
				if t != 0 {
					from, to = min(from, t), max(to, t)
				}
			}
		}
	}
	l := hops.MergeAcross(xs)
	recs := make([]json.RawMessage, len(l.Points))
	for i, k := range l.Points {
		recs[i], _ = json.Marshal(rows[k].exchange())
	}
	clocks, err := c.clocks(ctx, from-clockWindow.Nanoseconds(), to+clockWindow.Nanoseconds(), names)
	if err != nil {
		c.log.Warn("centre: the clocks of an exchange across sensors not read", "err", err)
	}
	x := api.NewAcrossLadder(l, names, recs, a.NotFound, a.Missing, func(p, q int) api.LadderHop {
		cp, okP := clocks[names[p]]
		cq, okQ := clocks[names[q]]
		u := crossClock(0, cp, cq, okP, okQ)
		h := api.LadderHop{ClockKnown: u.Known, UncertaintyNs: u.Ns, Clock: clockText(names[p], cp, okP) + "; " + clockText(names[q], cq, okQ)}
		switch {
		case err != nil:
			h.Clock = "not read (ClickHouse: " + err.Error() + ")"
		case !u.Known:
			h.Clock += ": nothing bounds how far apart the two clocks are"
		}
		return h
	})
	return &x
}

// acrossCandidates reads, for each peer, its exchange records of ra's
// protocol whose request began within hops.DefaultMaxDelay of ra's, the
// nearest in time first, hops.MaxCandidates at most (what
// hops.ExchangeAcross reads from a local store).
func (c *Centre) acrossCandidates(ctx context.Context, ra *analytics.Record, peers []string) (map[string][]exchangeRow, error) {
	out := map[string][]exchangeRow{}
	if len(peers) == 0 || !protoRE().MatchString(ra.Proto) {
		return out, nil
	}
	q := make([]string, len(peers))
	for i, n := range peers {
		q[i] = sqlString(n)
	}
	md := hops.DefaultMaxDelay.Nanoseconds()
	err := c.meta.QueryFunc(ctx, fmt.Sprintf(
		"SELECT %s FROM %s.records FINAL WHERE kind = %s AND sensor IN (%s) AND proto = %s AND req_first >= %d AND req_first <= %d ORDER BY sensor, abs(req_first - %d), id LIMIT %d BY sensor",
		acrossCols, c.db, sqlString(fleet.KindExchange), strings.Join(q, ", "), sqlString(ra.Proto), ra.ReqFirst-md, ra.ReqFirst+md, ra.ReqFirst, hops.MaxCandidates), func(line []byte) error {
		var row exchangeRow
		if err := json.Unmarshal(line, &row); err != nil {
			return err
		}
		out[row.Sensor] = append(out[row.Sensor], row)
		return nil
	})
	return out, err
}

// found is one peer's outcome: the exchange there, or why not.
type found struct {
	x   *hops.Across
	row *exchangeRow // B's record
	err error
}

// searchAcross finds ra's exchange at each peer among its candidates,
// acrossParallel peers at a time.
func (c *Centre) searchAcross(ctx context.Context, ra *analytics.Record, pa []hops.Seen, peers []string, cands map[string][]exchangeRow) []found {
	out := make([]found, len(peers))
	sem := make(chan struct{}, acrossParallel)
	var wg sync.WaitGroup
	for i, n := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s := c.byName[n]
			rows := cands[n]
			ids := make([]uint64, len(rows))
			byID := make(map[uint64]*exchangeRow, len(rows))
			for k := range rows {
				ids[k] = uint64(rows[k].ID)
				byID[ids[k]] = &rows[k]
			}
			x, err := hops.FindAcross(ctx, ra, pa, ids, func(ctx context.Context, id uint64) (*analytics.Record, []hops.Seen, error) {
				pb, err := c.fetchSeen(ctx, s, id)
				if errors.Is(err, errRecordGone) {
					return nil, nil, nil // expired since it was shipped: not this one
				}
				if err != nil {
					return nil, nil, err
				}
				return byID[id].record(), pb, nil
			})
			out[i] = found{x: x, err: err}
			if err == nil {
				out[i].row = byID[x.IDB]
			}
		}()
	}
	wg.Wait()
	return out
}

// acrossPair is the answer's pair for A's record and what was found at b,
// with the clocks' statement: the largest error each sensor reported
// within clockWindow of the exchange (sensor_health), added. A figure
// between the sensors no larger than a known uncertainty is refused, as
// tapvault hops does.
func (c *Centre) acrossPair(ctx context.Context, a, b string, rowA *exchangeRow, f found) AcrossPair {
	x := f.x
	p := AcrossPair{A: a, B: b, RecordA: rowA.exchange(), RecordB: f.row.exchange(), Reversed: x.Reversed,
		ClientA: x.ClientA, AB: x.AB, BServer: x.BServer, Matched: x.Matched, Steps: make([]AcrossStep, len(x.Steps))}
	from, to := int64(rowA.ReqFirst), int64(rowA.ReqFirst)
	for i, st := range x.Steps {
		p.Steps[i] = AcrossStep{ToServer: st.ToServer, AtA: st.At[0], AtB: st.At[1], Payload: st.Payload, Flags: api.TCPFlagString(st.Flags)}
		for _, t := range st.At {
			if t != 0 {
				from, to = min(from, t), max(to, t)
			}
		}
	}
	clocks, err := c.clocks(ctx, from-clockWindow.Nanoseconds(), to+clockWindow.Nanoseconds(), []string{a, b})
	if err != nil {
		c.log.Warn("centre: the clocks of an exchange across sensors not read", "err", err)
	}
	ca, okA := clocks[a]
	cb, okB := clocks[b]
	u := crossClock(max(x.AB, 0), ca, cb, okA, okB)
	p.ClockKnown, p.UncertaintyNs, p.Uncertain = u.Known, u.Ns, u.Uncertain
	if u.Known && x.AB >= 0 && x.AB <= u.Ns {
		p.BelowUncertainty, p.AB = true, -1
	}
	p.Clock = clockText(a, ca, okA) + "; " + clockText(b, cb, okB)
	switch {
	case err != nil:
		p.Clock = "not read (ClickHouse: " + err.Error() + ")"
	case !u.Known:
		p.Clock += ": nothing bounds how far apart the two clocks are"
	}
	return p
}

// clockText states one sensor's clock over the exchange.
func clockText(name string, cl clockState, ok bool) string {
	switch {
	case !ok:
		return name + " reported no clock state"
	case !cl.Synced:
		return name + " unsynchronised"
	}
	return fmt.Sprintf("%s synchronised, error up to %s", name, time.Duration(cl.ErrorNs))
}

// errRecordGone: the sensor answered 404 for the record (its store no
// longer holds it).
var errRecordGone = errors.New("the sensor no longer holds the record")

// fetchSeen reads record id's packets from sensor s's drill-down (pcapng,
// nanosecond times), over the fleet's mutual TLS, into memory, up to
// maxAcrossBytes.
func (c *Centre) fetchSeen(ctx context.Context, s *sensor, id uint64) ([]hops.Seen, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url(fmt.Sprintf("/api/v1/messages/%016x/packets?format=pcapng", id)), nil)
	resp, err := s.pull.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, errRecordGone
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("sensor %s answered %d: %s", s.name, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	body := &boundedReader{r: resp.Body, left: maxAcrossBytes}
	rd, err := pcap.NewReader(body, s.name)
	if err != nil {
		return nil, fmt.Errorf("sensor %s: not a capture file: %w", s.name, err)
	}
	buf := make([]byte, pcap.MaxSnapLen)
	var out []hops.Seen
	for {
		ci, data, err := rd.ReadPacket(buf)
		if body.left <= 0 && err != nil {
			return nil, fmt.Errorf("sensor %s: %w", s.name, errTooLarge)
		}
		if errors.Is(err, io.EOF) {
			if werr := rd.Warning(); werr != nil {
				return nil, fmt.Errorf("sensor %s: the drill-down was cut: %w", s.name, werr)
			}
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("sensor %s: %w", s.name, err)
		}
		out = append(out, hops.Seen{TS: ci.TS, LinkType: ci.LinkType, Data: slices.Clone(data)})
	}
}

// errTooLarge: a record's packets past maxAcrossBytes.
var errTooLarge = fmt.Errorf("the exchange's packets exceed %d MiB: too large to compare across sensors", maxAcrossBytes>>20)

// boundedReader reads up to left bytes, then fails with errTooLarge (never
// a quiet EOF, which would look like a whole, shorter exchange).
type boundedReader struct {
	r    io.Reader
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
