package centre

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"tapvault/fleet"
	"tapvault/query"
)

// The metadata endpoints, answered from ClickHouse (docs/api.md, "Fleet
// centre"). Every value that reaches SQL is parsed first (an address, a
// number, a configured sensor name, a protocol name of [a-z0-9_]), and
// strings are written quoted with ClickHouse's escapes: the statements are
// built from checked values, never from request text.

// flexInt decodes a JSON number or a quoted one: ClickHouse quotes 64-bit
// integers in JSONEachRow unless told otherwise, and versions differ.
type flexInt int64

func (v *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		u, uerr := strconv.ParseUint(string(b), 10, 64)
		if uerr != nil {
			return fmt.Errorf("integer %q: %w", b, err)
		}
		n = int64(u)
	}
	*v = flexInt(n)
	return nil
}

type flexFloat float64

func (v *flexFloat) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(bytes.Trim(b, `"`)), 64)
	*v = flexFloat(f)
	return err
}

// sqlString quotes s as a ClickHouse string literal.
func sqlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}

var protoRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9_]{1,32}$`) })

// selection is a metadata request's checked filter.
type selection struct {
	from, to int64
	// kind is the records' kind: "exchange" (the zero value's meaning),
	// "connection" (the "tcp" connection records), or "any".
	kind    string
	sensors []string // configured names; nil: all
	proto   string
	server  *endpoint
	client  *endpoint
}

type endpoint struct {
	ip   string // netip's canonical text, as the shipper writes it
	port int    // -1: any
}

// parseEndpoint reads 10.0.0.5, 10.0.0.5:80, 2001:db8::1 or [2001:db8::1]:443.
func parseEndpoint(s string) (*endpoint, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return &endpoint{ip: ap.Addr().Unmap().String(), port: int(ap.Port())}, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return &endpoint{ip: a.Unmap().String(), port: -1}, nil
	}
	return nil, fmt.Errorf("%q: want an address, optionally with a port (10.0.0.5, 10.0.0.5:80, [2001:db8::1]:443)", s)
}

// params reads a request's query string: only the allowed names, each at
// most once (a typo never turns into "everything").
func params(r *http.Request, allowed ...string) (map[string]string, error) {
	q := r.URL.Query()
	out := map[string]string{}
	for k, v := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			return nil, fmt.Errorf("unknown parameter %q (this endpoint takes: %s)", k, strings.Join(allowed, ", "))
		}
		if len(v) > 1 {
			return nil, fmt.Errorf("parameter %q given %d times", k, len(v))
		}
		out[k] = v[0]
	}
	return out, nil
}

// selectionOf checks the shared filter parameters.
// selectionParams reads the request's parameters (only allowed ones) and
// its selection, answering 400 and false when either is bad.
func (c *Centre) selectionParams(w http.ResponseWriter, r *http.Request, allowed ...string) (map[string]string, selection, bool) {
	p, err := params(r, allowed...)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, selection{}, false
	}
	sel, err := c.selectionOf(p)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, selection{}, false
	}
	return p, sel, true
}

func (c *Centre) selectionOf(p map[string]string) (selection, error) {
	sel := selection{from: query.MinTime, to: query.MaxTime}
	now := c.now().UTC()
	var err error
	if v, ok := p["from"]; ok {
		if sel.from, err = query.ParseTime(v, now); err != nil {
			return sel, fmt.Errorf("from: %w", err)
		}
	}
	if v, ok := p["to"]; ok {
		if sel.to, err = query.ParseTime(v, now); err != nil {
			return sel, fmt.Errorf("to: %w", err)
		}
	}
	if sel.from > sel.to {
		return sel, fmt.Errorf("from (%d ns) is after to (%d ns)", sel.from, sel.to)
	}
	if v := p["sensor"]; v != "" {
		for _, n := range strings.Split(v, ",") {
			if _, ok := c.byName[n]; !ok {
				return sel, fmt.Errorf("sensor %q: not in fleet.yaml (have %s)", n, strings.Join(c.cfg.sensorNames(), ", "))
			}
			sel.sensors = append(sel.sensors, n)
		}
	}
	if v := p["proto"]; v != "" {
		if !protoRE().MatchString(v) {
			return sel, fmt.Errorf("proto %q: want a protocol name such as http, dns, postgres", v)
		}
		sel.proto = v
	}
	if v := p["server"]; v != "" {
		if sel.server, err = parseEndpoint(v); err != nil {
			return sel, fmt.Errorf("server %w", err)
		}
	}
	if v := p["client"]; v != "" {
		if sel.client, err = parseEndpoint(v); err != nil {
			return sel, fmt.Errorf("client %w", err)
		}
	}
	return sel, nil
}

// where is the selection's WHERE clause over records (exchange records
// only; latency needs both messages, so the rows that lack it stay in
// lists and leave quantiles).
func (sel selection) where() string {
	var w []string
	switch sel.kind {
	case "", "exchange":
		w = append(w, "kind = 'exchange'")
	case "connection":
		w = append(w, "kind = 'connection'")
	default: // any
		w = append(w, "1")
	}
	if sel.from != query.MinTime {
		w = append(w, fmt.Sprintf("req_first >= %d", sel.from))
	}
	if sel.to != query.MaxTime {
		w = append(w, fmt.Sprintf("req_first <= %d", sel.to))
	}
	if len(sel.sensors) > 0 {
		q := make([]string, len(sel.sensors))
		for i, s := range sel.sensors {
			q[i] = sqlString(s)
		}
		w = append(w, "sensor IN ("+strings.Join(q, ", ")+")")
	}
	if sel.proto != "" {
		w = append(w, "proto = "+sqlString(sel.proto))
	}
	for _, e := range []struct {
		col string
		ep  *endpoint
	}{{"server", sel.server}, {"client", sel.client}} {
		if e.ep == nil {
			continue
		}
		w = append(w, e.col+"_ip = "+sqlString(e.ep.ip))
		if e.ep.port >= 0 {
			w = append(w, fmt.Sprintf("%s_port = %d", e.col, e.ep.port))
		}
	}
	return strings.Join(w, " AND ")
}

// clockState is a sensor's clock as its records and health reports carry
// it (issue 15 §3).
type clockState struct {
	Source string `json:"source,omitempty"` // ptp, ntp, unsynchronised; records carry it, health reports do not
	Synced bool   `json:"synced"`
	// ErrorNs is the largest estimated error the sensor reported in the
	// range asked about (the newest, for the sensors view).
	ErrorNs int64 `json:"error_ns"`
}

// clocks reads each sensor's clock over [from, to] from its health
// reports (sensor_health: clock_synced and clock_error_ns every report,
// a small table beside records): the largest error it reported and
// whether it stayed synchronised, so an uncertainty built on it bounds
// the whole range. A sensor with no report in the range gets its latest
// (the health cache): data imported long after it was captured has none.
// sensors nil: all.
func (c *Centre) clocks(ctx context.Context, from, to int64, sensors []string) (map[string]clockState, error) {
	w := []string{fmt.Sprintf("name IN (%s, %s)", sqlString(fleet.HealthClockError), sqlString(fleet.HealthClockSynced)),
		fmt.Sprintf("ts >= %d", from), fmt.Sprintf("ts <= %d", to)}
	if len(sensors) > 0 {
		q := make([]string, len(sensors))
		for i, s := range sensors {
			q[i] = sqlString(s)
		}
		w = append(w, "sensor IN ("+strings.Join(q, ", ")+")")
	}
	out := map[string]clockState{}
	err := c.meta.QueryFunc(ctx, fmt.Sprintf(
		"SELECT sensor, max(if(name = %s, value, 0)) AS err, min(if(name = %s, value, 1)) AS synced FROM %s.sensor_health WHERE %s GROUP BY sensor",
		sqlString(fleet.HealthClockError), sqlString(fleet.HealthClockSynced), c.db, strings.Join(w, " AND ")), func(line []byte) error {
		var row struct {
			Sensor string
			Err    flexFloat
			Synced flexFloat
		}
		if err := json.Unmarshal(line, &row); err != nil {
			return err
		}
		out[row.Sensor] = clockState{Synced: row.Synced != 0, ErrorNs: int64(row.Err)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.health.mu.Lock()
	defer c.health.mu.Unlock()
	for name, h := range c.health.values {
		if _, ok := out[name]; ok {
			continue
		}
		if cl, ok := clockOfHealth(h); ok {
			out[name] = cl
		}
	}
	return out, nil
}

// Uncertainty is the statement that goes with a figure compared across two
// sensors' clocks: the sum of their estimated errors (each clock may be
// off by its error, in opposite directions). Known is false when either
// clock is unsynchronised or unreported: then nothing bounds it.
type Uncertainty struct {
	Ns    int64 `json:"uncertainty_ns"`
	Known bool  `json:"uncertainty_known"`
	// Uncertain flags a figure whose magnitude does not exceed its
	// uncertainty (or whose uncertainty is unknown): its sign, or its
	// existence, is not established.
	Uncertain bool `json:"uncertain"`
}

// crossClock states the uncertainty of figure (ns) measured between the
// clocks of sensors a and b.
func crossClock(figure int64, a, b clockState, okA, okB bool) Uncertainty {
	u := Uncertainty{Known: okA && okB && a.Synced && b.Synced && a.ErrorNs >= 0 && b.ErrorNs >= 0}
	if !u.Known {
		u.Ns, u.Uncertain = -1, true
		return u
	}
	u.Ns = a.ErrorNs + b.ErrorNs
	if figure < 0 {
		figure = -figure
	}
	u.Uncertain = figure <= u.Ns
	return u
}

// Exchange is one exchange record in a centre answer.
type Exchange struct {
	Sensor     string          `json:"sensor"`
	ID         string          `json:"id"` // 16 hex digits, as the sensor's API
	Proto      string          `json:"proto"`
	Transport  int             `json:"transport"`
	VLAN       int             `json:"vlan"`
	Client     string          `json:"client"`
	Server     string          `json:"server"`
	ReqFirst   int64           `json:"req_first"`
	ReqLast    int64           `json:"req_last"`
	RespFirst  int64           `json:"resp_first"`
	RespLast   int64           `json:"resp_last"`
	Latency    int64           `json:"latency"`
	Network    int64           `json:"network"`
	ServerTime int64           `json:"server_time"`
	Transfer   int64           `json:"transfer"`
	RTT        int64           `json:"rtt"`
	Class      string          `json:"class"`
	ReqBytes   int64           `json:"req_bytes"`
	RespBytes  int64           `json:"resp_bytes"`
	Flags      uint32          `json:"flags"`
	Fields     json.RawMessage `json:"fields,omitempty"`
	Clock      clockState      `json:"clock"`
	// Packets is the centre's drill-down for this record.
	Packets string `json:"packets"`
}

type exchangeRow struct {
	Sensor       string
	ID           flexInt
	Proto        string
	Transport    flexInt
	VLAN         flexInt `json:"vlan"`
	ClientIP     string  `json:"client_ip"`
	ClientPort   flexInt `json:"client_port"`
	ServerIP     string  `json:"server_ip"`
	ServerPort   flexInt `json:"server_port"`
	ReqFirst     flexInt `json:"req_first"`
	ReqLast      flexInt `json:"req_last"`
	RespFirst    flexInt `json:"resp_first"`
	RespLast     flexInt `json:"resp_last"`
	Latency      flexInt
	Network      flexInt
	ServerTime   flexInt `json:"server_time"`
	Transfer     flexInt
	ClientNet    flexInt `json:"client_net"` // read by the view across sensors only (acrossCols)
	RTT          flexInt `json:"rtt"`
	Class        string
	ReqBytes     flexInt `json:"req_bytes"`
	RespBytes    flexInt `json:"resp_bytes"`
	Flags        flexInt
	Fields       string
	ClockSource  string  `json:"clock_source"`
	ClockSynced  flexInt `json:"clock_synced"`
	ClockErrorNs flexInt `json:"clock_error_ns"`
}

const exchangeCols = "sensor, id, proto, transport, vlan, client_ip, client_port, server_ip, server_port, req_first, req_last, resp_first, resp_last, latency, network, server_time, transfer, rtt, class, req_bytes, resp_bytes, flags, fields, clock_source, clock_synced, clock_error_ns"

func hostPort(ip string, port int64) string {
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("[%s]:%d", ip, port)
	}
	return fmt.Sprintf("%s:%d", ip, port)
}

// clock is the record's clock state as shipped; Source "" when the row
// carries none.
func (r *exchangeRow) clock() clockState {
	return clockState{Source: r.ClockSource, Synced: r.ClockSynced != 0, ErrorNs: int64(r.ClockErrorNs)}
}

func (r *exchangeRow) exchange() Exchange {
	id := fmt.Sprintf("%016x", uint64(r.ID))
	e := Exchange{
		Sensor: r.Sensor, ID: id, Proto: r.Proto, Transport: int(r.Transport), VLAN: int(r.VLAN),
		Client: hostPort(r.ClientIP, int64(r.ClientPort)), Server: hostPort(r.ServerIP, int64(r.ServerPort)),
		ReqFirst: int64(r.ReqFirst), ReqLast: int64(r.ReqLast), RespFirst: int64(r.RespFirst), RespLast: int64(r.RespLast),
		Latency: int64(r.Latency), Network: int64(r.Network), ServerTime: int64(r.ServerTime), Transfer: int64(r.Transfer),
		RTT: int64(r.RTT), Class: r.Class, ReqBytes: int64(r.ReqBytes), RespBytes: int64(r.RespBytes), Flags: uint32(r.Flags),
		Clock:   r.clock(),
		Packets: pathMessages + id + "/packets?sensor=" + r.Sensor,
	}
	if json.Valid([]byte(r.Fields)) && r.Fields != "" {
		e.Fields = json.RawMessage(r.Fields)
	}
	return e
}

// ExchangesAnswer is /api/v1/fleet/exchanges.
type ExchangesAnswer struct {
	Total     int64      `json:"total"`
	Offset    int        `json:"offset"`
	Sort      string     `json:"sort"`
	Exchanges []Exchange `json:"exchanges"`
	// Missing names the sensors that did not answer their last probe:
	// their newest records may not have reached ClickHouse yet, and their
	// packets cannot be fetched now.
	Missing []string `json:"missing"`
}

// sortable columns of the exchanges list.
var exchangeSorts = map[string]string{
	"latency": "latency", "req_first": "req_first", "network": "network", "server_time": "server_time",
	"resp_bytes": "resp_bytes", "req_bytes": "req_bytes", "sensor": "sensor",
}

const (
	defaultPage = 100
	maxPage     = 1000
)

func (c *Centre) handleExchanges(w http.ResponseWriter, r *http.Request) {
	p, sel, ok := c.selectionParams(w, r, "from", "to", "sensor", "proto", "server", "client", "sort", "offset", "limit", "kind")
	if !ok {
		return
	}
	var err error
	// The connection records (one per TCP connection, class flow) list
	// and drill down like exchanges.
	switch k := p["kind"]; k {
	case "", "exchange", "connection", "any":
		sel.kind = k
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("kind %q: want exchange (default), connection or any", k))
		return
	}
	sortBy := p["sort"]
	if sortBy == "" {
		sortBy = "-latency"
	}
	col, ok := exchangeSorts[strings.TrimPrefix(sortBy, "-")]
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("sort %q: want one of latency, req_first, network, server_time, req_bytes, resp_bytes, sensor, with - first for descending", sortBy))
		return
	}
	dir := "ASC"
	if strings.HasPrefix(sortBy, "-") {
		dir = "DESC"
	}
	offset, limit := 0, defaultPage
	if v, ok := p["offset"]; ok {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 || offset > 1e7 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("offset %q: want 0 to 10000000", v))
			return
		}
	}
	if v, ok := p["limit"]; ok {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxPage {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to %d", v, maxPage))
			return
		}
	}
	ctx := r.Context()
	a := ExchangesAnswer{Offset: offset, Sort: sortBy, Exchanges: []Exchange{}}
	// FINAL: a record shipped twice (at-least-once delivery) is one row.
	// Ties are broken by (sensor, id) so pages never overlap.
	err = c.meta.QueryFunc(ctx, fmt.Sprintf("SELECT count() AS n FROM %s.records FINAL WHERE %s", c.db, sel.where()), func(line []byte) error {
		var row struct{ N flexInt }
		err := json.Unmarshal(line, &row)
		a.Total = int64(row.N)
		return err
	})
	if err == nil {
		err = c.meta.QueryFunc(ctx, fmt.Sprintf("SELECT %s FROM %s.records FINAL WHERE %s ORDER BY %s %s, sensor, id LIMIT %d, %d",
			exchangeCols, c.db, sel.where(), col, dir, offset, limit), func(line []byte) error {
			var row exchangeRow
			if err := json.Unmarshal(line, &row); err != nil {
				return err
			}
			a.Exchanges = append(a.Exchanges, row.exchange())
			return nil
		})
	}
	if err != nil {
		c.metaError(w, err)
		return
	}
	a.Missing = c.missing()
	writeJSON(w, &a)
}

// LatencyGroup is one group of /api/v1/fleet/latency.
type LatencyGroup struct {
	Proto  string `json:"proto,omitempty"`
	Server string `json:"server,omitempty"`
	Sensor string `json:"sensor,omitempty"`
	Client string `json:"client,omitempty"`
	Count  int64  `json:"count"`
	// Quantiles of latency (ns), exact over the group's records (no
	// sampling: quantilesExact).
	P50 int64 `json:"p50"`
	P90 int64 `json:"p90"`
	P99 int64 `json:"p99"`
	Max int64 `json:"max"`
	// NetworkP50 and ServerP50 split the median the way a sensor does.
	NetworkP50 int64 `json:"network_p50"`
	ServerP50  int64 `json:"server_time_p50"`
}

// LatencyAnswer is /api/v1/fleet/latency.
type LatencyAnswer struct {
	By      []string       `json:"by"`
	Groups  []LatencyGroup `json:"groups"`
	Missing []string       `json:"missing"`
	// Why no cross-clock uncertainty here: every latency is the
	// difference of two times on one sensor's clock, so the offset
	// between sensors' clocks does not enter it (docs/fleet.md, "Time").
}

var latencyBy = map[string]string{
	"proto":  "proto",
	"server": "server_ip, server_port",
	"sensor": "sensor",
	"client": "client_ip",
}

func (c *Centre) handleLatency(w http.ResponseWriter, r *http.Request) {
	p, sel, ok := c.selectionParams(w, r, "from", "to", "sensor", "proto", "server", "client", "by")
	if !ok {
		return
	}
	var err error
	by := []string{"proto", "server", "sensor"}
	if v := p["by"]; v != "" {
		by = strings.Split(v, ",")
	}
	var cols []string
	seen := map[string]bool{}
	for _, b := range by {
		col, ok := latencyBy[b]
		if !ok || seen[b] {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("by %q: want a comma list of proto, server, sensor, client, each once", p["by"]))
			return
		}
		seen[b] = true
		cols = append(cols, col)
	}
	group := strings.Join(cols, ", ")
	a := LatencyAnswer{By: by, Groups: []LatencyGroup{}}
	// 18.16 has quantilesExact; GROUP BY over FINAL counts a re-shipped
	// record once.
	err = c.meta.QueryFunc(r.Context(), fmt.Sprintf(
		"SELECT %s, count() AS n, quantilesExact(0.5, 0.9, 0.99)(latency) AS q, max(latency) AS mx, quantileExact(0.5)(network) AS net, quantileExact(0.5)(server_time) AS srv FROM %s.records FINAL WHERE %s AND latency >= 0 GROUP BY %s ORDER BY n DESC, %s LIMIT 1000",
		group, c.db, sel.where(), group, group), func(line []byte) error {
		var row struct {
			Proto      string
			ServerIP   string  `json:"server_ip"`
			ServerPort flexInt `json:"server_port"`
			Sensor     string
			ClientIP   string `json:"client_ip"`
			N          flexInt
			Q          []flexInt
			Mx         flexInt
			Net        flexFloat
			Srv        flexFloat
		}
		if err := json.Unmarshal(line, &row); err != nil {
			return err
		}
		g := LatencyGroup{Proto: row.Proto, Sensor: row.Sensor, Client: row.ClientIP, Count: int64(row.N), Max: int64(row.Mx),
			NetworkP50: int64(row.Net), ServerP50: int64(row.Srv)}
		if seen["server"] {
			g.Server = hostPort(row.ServerIP, int64(row.ServerPort))
		}
		if len(row.Q) == 3 {
			g.P50, g.P90, g.P99 = int64(row.Q[0]), int64(row.Q[1]), int64(row.Q[2])
		}
		a.Groups = append(a.Groups, g)
		return nil
	})
	if err != nil {
		c.metaError(w, err)
		return
	}
	a.Missing = c.missing()
	writeJSON(w, &a)
}

// Transit is one exchange seen by two sensors: how much later the second
// saw its request begin than the first, across their two clocks.
type Transit struct {
	Proto   string `json:"proto"`
	Client  string `json:"client"`
	Server  string `json:"server"`
	First   string `json:"first"`  // the sensor that saw the request first
	Second  string `json:"second"` // the other
	FirstID string `json:"first_id"`
	// SecondID is the record at the second sensor.
	SecondID string `json:"second_id"`
	DeltaNs  int64  `json:"delta_ns"` // second's req_first minus first's
	Uncertainty
}

// TransitAnswer is /api/v1/fleet/transit.
type TransitAnswer struct {
	Transits  []Transit `json:"transits"`
	Truncated bool      `json:"truncated"`
	Missing   []string  `json:"missing"`
}

// Two sensors' records of one connection are one exchange only when their
// requests carry the same bytes and fields (method and path, query name
// and ID, ...) and began within the window of each other
// (default defaultTransitWindow, window= up to maxTransitWindow): the same
// connection's next request is a different exchange, and a 5-tuple reused
// elsewhere is a different connection.
const (
	defaultTransitWindow = 50 * time.Millisecond
	maxTransitWindow     = time.Second
)

func (c *Centre) handleTransit(w http.ResponseWriter, r *http.Request) {
	p, sel, ok := c.selectionParams(w, r, "from", "to", "sensor", "proto", "server", "client", "limit", "window")
	if !ok {
		return
	}
	var err error
	window := defaultTransitWindow
	if v, ok := p["window"]; ok {
		if window, err = time.ParseDuration(v); err != nil || window <= 0 || window > maxTransitWindow {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("window %q: want a duration above 0 and up to %s, like 20ms", v, maxTransitWindow))
			return
		}
	}
	limit := defaultPage
	if v, ok := p["limit"]; ok {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxPage {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to %d", v, maxPage))
			return
		}
	}
	ctx := r.Context()
	// The connections seen at more than one sensor, then their exchange
	// records; the pairing is done here, where it is plain to read.
	key := "proto, client_ip, client_port, server_ip, server_port"
	var rows []exchangeRow
	err = c.meta.QueryFunc(ctx, fmt.Sprintf(
		"SELECT %s FROM %s.records FINAL WHERE %s AND (%s) IN (SELECT %s FROM %s.records WHERE %s GROUP BY %s HAVING uniqExact(sensor) > 1) ORDER BY %s, req_first LIMIT %d",
		exchangeCols, c.db, sel.where(), key, key, c.db, sel.where(), key, key, 20*maxPage), func(line []byte) error {
		var row exchangeRow
		if err := json.Unmarshal(line, &row); err != nil {
			return err
		}
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		c.metaError(w, err)
		return
	}
	a := TransitAnswer{Transits: []Transit{}}
	// Rows come ordered by connection, then request time. Within one
	// connection, each sensor's exchanges are paired with the other's
	// nearest in time, when each is the other's nearest (the same
	// connection's next request is a different exchange) and they are
	// within the window, with the same request bytes and decoded fields.
	for lo := 0; lo < len(rows) && !a.Truncated; {
		hi := lo + 1
		for hi < len(rows) && sameConn(&rows[lo], &rows[hi]) {
			hi++
		}
		by := map[string][]*exchangeRow{}
		var names []string
		for i := lo; i < hi; i++ {
			if by[rows[i].Sensor] == nil {
				names = append(names, rows[i].Sensor)
			}
			by[rows[i].Sensor] = append(by[rows[i].Sensor], &rows[i])
		}
		sort.Strings(names)
		for i := range names {
			for j := i + 1; j < len(names); j++ {
				xs, ys := by[names[i]], by[names[j]]
				for _, x := range xs {
					y := nearest(ys, int64(x.ReqFirst))
					if y == nil || nearest(xs, int64(y.ReqFirst)) != x || abs(int64(y.ReqFirst-x.ReqFirst)) > int64(window) || x.ReqBytes != y.ReqBytes || x.Fields != y.Fields {
						continue
					}
					if len(a.Transits) == limit {
						a.Truncated = true
						break
					}
					first, second := x, y
					if y.ReqFirst < x.ReqFirst {
						first, second = y, x
					}
					// Each record carries its sensor's clock state when
					// it was shipped: the nearest statement there is.
					c1, c2 := first.clock(), second.clock()
					d := int64(second.ReqFirst - first.ReqFirst)
					a.Transits = append(a.Transits, Transit{
						Proto: x.Proto, Client: hostPort(x.ClientIP, int64(x.ClientPort)), Server: hostPort(x.ServerIP, int64(x.ServerPort)),
						First: first.Sensor, Second: second.Sensor, FirstID: fmt.Sprintf("%016x", uint64(first.ID)), SecondID: fmt.Sprintf("%016x", uint64(second.ID)),
						DeltaNs: d, Uncertainty: crossClock(d, c1, c2, c1.Source != "", c2.Source != ""),
					})
				}
			}
		}
		lo = hi
	}
	sort.SliceStable(a.Transits, func(i, j int) bool { return a.Transits[i].DeltaNs > a.Transits[j].DeltaNs })
	a.Missing = c.missing()
	writeJSON(w, &a)
}

func sameConn(x, y *exchangeRow) bool {
	return x.Proto == y.Proto && x.ClientIP == y.ClientIP && x.ClientPort == y.ClientPort && x.ServerIP == y.ServerIP && x.ServerPort == y.ServerPort
}

// nearest returns the row of rs (sorted by request time) whose request
// began nearest to ts, nil for none.
func nearest(rs []*exchangeRow, ts int64) *exchangeRow {
	i := sort.Search(len(rs), func(i int) bool { return int64(rs[i].ReqFirst) >= ts })
	var best *exchangeRow
	for _, k := range []int{i - 1, i} {
		if k >= 0 && k < len(rs) && (best == nil || abs(int64(rs[k].ReqFirst)-ts) < abs(int64(best.ReqFirst)-ts)) {
			best = rs[k]
		}
	}
	return best
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
