package centre

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"tapvault/pcap"
	"tapvault/query"
)

// Packet answers name the sensors they lack in headers (docs/api.md,
// "Fleet centre"):
//
//	X-Tapvault-Sensors          the sensors whose packets are in the answer
//	X-Tapvault-Missing          sensors that hold packets for the query but did not answer
//	X-Tapvault-Missing-After    (a trailer) sensors whose stream broke after the answer began:
//	                            the file is whole, but lacks the rest of theirs
//	X-Tapvault-Clock-Uncertainty-Ns   how far the order of two sensors' packets may be off:
//	                            the sum of the two largest clock errors, or "unknown"
const (
	hdrSensors     = "X-Tapvault-Sensors"
	hdrMissing     = "X-Tapvault-Missing"
	hdrMissingAft  = "X-Tapvault-Missing-After"
	hdrUncertainty = "X-Tapvault-Clock-Uncertainty-Ns"
)

// handleDrillDown fetches /api/v1/messages/{id}/packets from the sensor that
// holds the record and streams its answer through unchanged: the bytes are
// the sensor's own (tapvault query --message ID on it).
func (c *Centre) handleDrillDown(w http.ResponseWriter, r *http.Request, idText string) {
	p, err := params(r, "sensor", "format")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, err := query.ParseMessageID(idText)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if f, ok := p["format"]; ok && f != "pcap" && f != "pcapng" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: want pcap or pcapng", f))
		return
	}
	s, ok := c.recordSensor(w, r, id, p["sensor"])
	if !ok {
		return
	}
	name := s.name
	u := fmt.Sprintf("/api/v1/messages/%016x/packets", id)
	if f, ok := p["format"]; ok {
		u += "?format=" + url.QueryEscape(f)
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, s.url(u), nil)
	resp, err := s.pull.Do(req)
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		w.Header().Set(hdrMissing, name)
		writeErrorMissing(w, http.StatusBadGateway, fmt.Sprintf("sensor %s did not answer: %v", name, err), []string{name})
		return
	}
	defer resp.Body.Close()
	for _, k := range []string{"Content-Type", "Content-Disposition", "X-Content-Type-Options", "Cache-Control", "Retry-After"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.Header().Set(hdrSensors, name)
	w.WriteHeader(resp.StatusCode)
	if err := copyFlushing(w, resp.Body); err != nil {
		if r.Context().Err() == nil {
			c.log.Warn("centre: drill-down stream from the sensor broke; the client gets a cut-short transfer", "sensor", name, "err", err)
		}
		// Never let a cut stream look like a whole file.
		panic(http.ErrAbortHandler)
	}
}

// recordSensor is the sensor that holds record id: the one named (which
// must be in fleet.yaml), else the one ClickHouse knows it from (IDs are
// unique per sensor only). It answers the error and false when there is
// none or several.
func (c *Centre) recordSensor(w http.ResponseWriter, r *http.Request, id uint64, name string) (*sensor, bool) {
	if name == "" {
		var holders []string
		err := c.meta.QueryFunc(r.Context(), fmt.Sprintf("SELECT DISTINCT sensor FROM %s.records WHERE id = %d ORDER BY sensor LIMIT 10", c.db, id), func(line []byte) error {
			var row struct{ Sensor string }
			err := json.Unmarshal(line, &row)
			holders = append(holders, row.Sensor)
			return err
		})
		if err != nil {
			c.metaError(w, err)
			return nil, false
		}
		switch len(holders) {
		case 0:
			writeError(w, http.StatusNotFound, fmt.Sprintf("no sensor shipped record %016x", id))
			return nil, false
		case 1:
			name = holders[0]
		default:
			writeError(w, http.StatusConflict, fmt.Sprintf("record %016x is on several sensors (%s): give sensor=", id, strings.Join(holders, ", ")))
			return nil, false
		}
	}
	s, ok := c.byName[name]
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("sensor %q: not in fleet.yaml (have %s)", name, strings.Join(c.cfg.sensorNames(), ", ")))
		return nil, false
	}
	return s, true
}

// copyFlushing copies src to w, flushing at least every second so a slow
// sensor's stream shows progress.
func copyFlushing(w http.ResponseWriter, src io.Reader) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 256<<10)
	last := time.Now()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if time.Since(last) >= time.Second {
				_ = rc.Flush()
				last = time.Now()
			}
		}
		if errors.Is(err, io.EOF) {
			_ = rc.Flush()
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// source is one sensor's packet stream in a merge.
type source struct {
	s     *sensor
	order int // position in the answer's sensor list: ties in time go by it
	body  io.ReadCloser
	rd    *pcap.Reader
	buf   []byte
	ci    pcap.CaptureInfo
	data  []byte // the pending packet, valid until the next read
	err   error  // the stream broke before its end
}

func (src *source) next() bool {
	ci, data, err := src.rd.ReadPacket(src.buf)
	if errors.Is(err, io.EOF) {
		if w := src.rd.Warning(); w != nil {
			src.err = w
		}
		return false
	}
	if err != nil {
		src.err = err
		return false
	}
	src.ci, src.data = ci, data
	return true
}

type sourceHeap []*source

func (h sourceHeap) Len() int { return len(h) }
func (h sourceHeap) Less(i, j int) bool {
	if h[i].ci.TS != h[j].ci.TS {
		return h[i].ci.TS < h[j].ci.TS
	}
	return h[i].order < h[j].order
}
func (h sourceHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *sourceHeap) Push(x any)   { *h = append(*h, x.(*source)) }
func (h *sourceHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// holders asks flow_blocks which sensors stored packets in [from, to]
// (of host, when given).
func (c *Centre) holders(ctx context.Context, sel selection, host string) ([]string, error) {
	w := []string{fmt.Sprintf("first_ns <= %d", sel.to), fmt.Sprintf("last_ns >= %d", sel.from)}
	if host != "" {
		w = append(w, fmt.Sprintf("(a_ip = %s OR b_ip = %s)", sqlString(host), sqlString(host)))
	}
	if len(sel.sensors) > 0 {
		q := make([]string, len(sel.sensors))
		for i, s := range sel.sensors {
			q[i] = sqlString(s)
		}
		w = append(w, "sensor IN ("+strings.Join(q, ", ")+")")
	}
	var out []string
	err := c.meta.QueryFunc(ctx, fmt.Sprintf("SELECT DISTINCT sensor FROM %s.flow_blocks WHERE %s ORDER BY sensor", c.db, strings.Join(w, " AND ")), func(line []byte) error {
		var row struct{ Sensor string }
		if err := json.Unmarshal(line, &row); err != nil {
			return err
		}
		if _, ok := c.byName[row.Sensor]; ok { // a sensor since removed from fleet.yaml cannot be asked
			out = append(out, row.Sensor)
		}
		return nil
	})
	return out, err
}

// handlePackets fans a packet query out to the sensors that hold packets in
// its time range (flow_blocks), and merges their streams in time order into
// one pcapng with an interface per sensor, named after it.
func (c *Centre) handlePackets(w http.ResponseWriter, r *http.Request) {
	p, sel, ok := c.selectionParams(w, r, "filter", "from", "to", "sensor", "host", "limit")
	if !ok {
		return
	}
	var err error
	filter := p["filter"]
	var host string
	if v := p["host"]; v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("host %q: want an IP address", v))
			return
		}
		host = a.Unmap().String()
		// The sensors then filter on it too, so the narrowing by
		// flow_blocks and the packets agree.
		if strings.TrimSpace(filter) == "" {
			filter = "host " + host
		} else {
			filter = "host " + host + " and (" + filter + ")"
		}
	}
	if _, err := query.ParseFilter(filter); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit := 0
	if v, ok := p["limit"]; ok {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a whole number >= 0 (0: no limit)", v))
			return
		}
	}
	ctx := r.Context()
	names, err := c.holders(ctx, sel, host)
	var clocks map[string]clockState
	if err == nil {
		clocks, err = c.clocks(ctx, sel.from, sel.to, names)
	}
	if err != nil {
		c.metaError(w, err)
		return
	}

	// Open every stream first, in parallel: a sensor that does not answer
	// is named in the headers, which must be sent before the first packet.
	q := url.Values{"format": {"pcapng"}}
	if filter != "" {
		q.Set("filter", filter)
	}
	if sel.from != query.MinTime {
		q.Set("from", strconv.FormatInt(sel.from, 10))
	}
	if sel.to != query.MaxTime {
		q.Set("to", strconv.FormatInt(sel.to, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit)) // no sensor need send more than the whole answer
	}
	srcs := make([]*source, len(names))
	fails := make([]string, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := c.byName[n]
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/api/v1/packets?"+q.Encode()), nil)
			resp, err := s.pull.Do(req)
			if err != nil {
				fails[i] = err.Error()
				return
			}
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				fails[i] = fmt.Sprintf("answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
				return
			}
			rd, err := pcap.NewReader(resp.Body, n)
			if err != nil {
				resp.Body.Close()
				fails[i] = "not a capture file: " + err.Error()
				return
			}
			srcs[i] = &source{s: s, order: i, body: resp.Body, rd: rd, buf: make([]byte, pcap.MaxSnapLen)}
		}()
	}
	wg.Wait()
	var have, missing []string
	var open sourceHeap
	for i, src := range srcs {
		if src == nil {
			missing = append(missing, names[i])
			c.log.Warn("centre: sensor left out of a packet query", "sensor", names[i], "err", fails[i])
			continue
		}
		defer src.body.Close()
		have = append(have, names[i])
		if src.next() {
			open = append(open, src)
		}
	}
	heap.Init(&open)

	h := w.Header()
	h.Set("Content-Type", "application/x-pcapng")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", "tapvault-fleet-"+c.now().UTC().Format("20060102T150405Z")+".pcapng"))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set(hdrSensors, strings.Join(have, ","))
	h.Set(hdrMissing, strings.Join(missing, ","))
	h.Set(hdrUncertainty, orderUncertainty(have, clocks))
	h.Set("Trailer", hdrMissingAft)
	w.WriteHeader(http.StatusOK)

	nw, err := pcap.NewNgWriter(w, pcap.WithBufferSize(1<<20), pcap.WithUserAppl("tapvault centre"))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	type ifKey struct {
		order    int
		linkType uint16
	}
	ifaces := map[ifKey]uint32{}
	rc := http.NewResponseController(w)
	lastFlush := time.Now()
	var n int
	var cut []string
	for open.Len() > 0 && (limit == 0 || n < limit) {
		src := open[0]
		k := ifKey{src.order, src.ci.LinkType}
		id, ok := ifaces[k]
		if !ok {
			if id, err = nw.AddNamedInterface(src.ci.LinkType, 0, src.s.name); err != nil {
				panic(http.ErrAbortHandler)
			}
			ifaces[k] = id
		}
		if err := nw.WritePacket(src.ci.TS, src.ci.WireLen, id, src.data); err != nil {
			panic(http.ErrAbortHandler) // the client went away, or a bad packet: cut, never whole-looking
		}
		n++
		if time.Since(lastFlush) >= time.Second {
			if nw.Flush() != nil {
				panic(http.ErrAbortHandler)
			}
			_ = rc.Flush()
			lastFlush = time.Now()
		}
		if src.next() {
			heap.Fix(&open, 0)
			continue
		}
		heap.Pop(&open)
		if src.err != nil {
			cut = append(cut, src.s.name)
			c.log.Warn("centre: a sensor's stream broke during a packet query", "sensor", src.s.name, "err", src.err)
		}
	}
	if nw.Flush() != nil {
		panic(http.ErrAbortHandler)
	}
	// Sources that broke before their first packet were never in the heap.
	for _, src := range srcs {
		if src != nil && src.err != nil && !contains(cut, src.s.name) {
			cut = append(cut, src.s.name)
		}
	}
	sort.Strings(cut)
	h.Set(hdrMissingAft, strings.Join(cut, ","))
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// orderUncertainty is how far apart in truth two packets from different
// sensors may be when the merge puts them in one order: each clock may be
// off by its error, so the two largest errors added. One sensor: 0 (one
// clock orders its own packets).
func orderUncertainty(names []string, clocks map[string]clockState) string {
	if len(names) < 2 {
		return "0"
	}
	errs := make([]int64, 0, len(names))
	for _, n := range names {
		cl, ok := clocks[n]
		if !ok || !cl.Synced || cl.ErrorNs < 0 {
			return "unknown"
		}
		errs = append(errs, cl.ErrorNs)
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i] > errs[j] })
	return strconv.FormatInt(errs[0]+errs[1], 10)
}
