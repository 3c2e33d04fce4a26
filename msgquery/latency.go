package msgquery

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"

	"tapvault/analytics"
)

// DefaultMaxGroups is the default Aggregator.MaxGroups.
const DefaultMaxGroups = 10000

// OtherGroup is the key value of the group that collects records once
// MaxGroups groups exist.
const OtherGroup = "(other)"

// Aggregator groups records by the values of some keys and computes exact
// latency percentiles per group.
//
// Percentiles are exact (nearest rank) over every value added, so the
// aggregator keeps the values: 8 bytes per record per metric (latency,
// network, server time, transfer, and with AddTier before, backend, after,
// self), about 32 bytes per record in all; a million records cost about
// 32 MB. The number of groups is capped by MaxGroups: once that many exist,
// records of further new groups go to one group whose every key value is
// "(other)".
//
// An Aggregator is used from one goroutine.
type Aggregator struct {
	// MaxGroups caps the groups (default DefaultMaxGroups); set it before
	// the first Add.
	MaxGroups int
	// MaxExact caps the values kept exactly, over all groups and metrics
	// (default DefaultMaxExact: 8 bytes each). Beyond it, each metric that
	// grows keeps a log-scale histogram instead (1 % buckets), and its
	// percentiles are approximate (Percentiles.Approx). Set it before the
	// first Add.
	MaxExact int

	exact  int // values kept exactly so far
	by     []string
	groups map[string]*group
	other  *group
	keyBuf []byte
}

type group struct {
	key        []string
	count      int64
	noResponse int64
	latency    valueSet
	network    valueSet
	server     valueSet
	transfer   valueSet
	classes    map[string]int64
	tiers      int64
	before     valueSet
	backend    valueSet
	after      valueSet
	self       valueSet
	slowest    uint64 // ID of the exchange with the largest latency
	slowestLat int64
}

// Percentiles are nearest-rank percentiles of a set of ns values; all are
// -1 when the set is empty (N 0).
type Percentiles struct {
	N                        int
	P50, P90, P99, Max, Mean int64
	// Approx: the values outgrew Aggregator.MaxExact and the percentiles
	// come from 1 % buckets (each at most 1 % above the exact figure).
	Approx bool
}

// Group is one group's statistics. Key holds the group's value for each
// grouping key, in the order given to NewAggregator ("" when a record has
// no such field). Latency covers the exchanges with a response (RespLast -
// ReqLast); Network, ServerTime and Transfer the records where each is
// known. Classes counts records by class. Tiers counts the front exchanges
// added with AddTier; TierBefore, TierAfter cover those with backends,
// TierBackend and TierSelf all of them.
type Group struct {
	Key        []string
	Count      int64
	NoResponse int64
	Latency    Percentiles
	Network    Percentiles
	ServerTime Percentiles
	Transfer   Percentiles
	Classes    map[string]int64
	// Slowest is the ID of the exchange behind Latency.Max (0: none), the
	// drill-down from the group's figures: tapvault query --message.
	Slowest uint64

	Tiers       int64
	TierBefore  Percentiles
	TierBackend Percentiles
	TierAfter   Percentiles
	TierSelf    Percentiles
}

// NewAggregator returns an aggregator grouping by the keys in by: proto,
// server (ip:port), server_ip, client_ip, class, or any record field key
// (method, host, status, qtype, command, ...). host, qname and sni values
// are lowercased.
func NewAggregator(by []string) (*Aggregator, error) {
	if len(by) == 0 {
		return nil, fmt.Errorf("new aggregator: no grouping key")
	}
	seen := map[string]bool{}
	for _, k := range by {
		if !validKey(k) {
			return nil, fmt.Errorf("new aggregator: bad grouping key %q (a lowercase letter, then letters, digits, _ . or -)", k)
		}
		if !slices.Contains(groupKeys, k) && !knownNames().fields[k] {
			return nil, fmt.Errorf("new aggregator: %s", unknownGroupKeyMsg(k))
		}
		if seen[k] {
			return nil, fmt.Errorf("new aggregator: grouping key %q given twice", k)
		}
		seen[k] = true
	}
	return &Aggregator{
		MaxGroups: DefaultMaxGroups,
		by:        slices.Clone(by),
		groups:    make(map[string]*group),
	}, nil
}

// UsesFields reports whether grouping reads the record's Fields (a key
// that is not one of proto, server, server_ip, client_ip and class).
func (a *Aggregator) UsesFields() bool {
	for _, k := range a.by {
		if !slices.Contains(groupKeys, k) {
			return true
		}
	}
	return false
}

// groupKeys are the grouping keys that are not record fields.
var groupKeys = []string{"proto", "server", "server_ip", "client_ip", "class"}

// unknownGroupKeyMsg says that k is no grouping key, suggests the closest
// and lists them all (the record fields from the decoder registry).
func unknownGroupKeyMsg(k string) string {
	n := knownNames()
	fields := n.keys[n.nBuilt:]
	best, bestD := "", 3
	for _, c := range slices.Concat(groupKeys, fields) {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	msg := fmt.Sprintf("unknown grouping key %q (", k)
	if best != "" {
		msg += fmt.Sprintf("did you mean %q? ", best)
	}
	return msg + "want " + strings.Join(groupKeys, " ") + " or a record field: " + strings.Join(fields, " ") + ")"
}

// appendKeyValue appends r's value for grouping key k.
func appendKeyValue(dst []byte, r *analytics.Record, k string) []byte {
	switch k {
	case "proto":
		if isPostgres(r.Proto) {
			return append(dst, "postgres"...)
		}
		return append(dst, r.Proto...)
	case "server":
		if r.Server.IsValid() {
			return r.Server.AppendTo(dst)
		}
		return dst
	case "server_ip":
		if r.Server.IsValid() {
			return r.Server.Addr().AppendTo(dst)
		}
		return dst
	case "client_ip":
		if r.Client.IsValid() {
			return r.Client.Addr().AppendTo(dst)
		}
		return dst
	case "class":
		return append(dst, r.Class...)
	}
	f, ok := r.Get(k)
	switch {
	case !ok:
		return dst
	case f.IsInt:
		return strconv.AppendInt(dst, f.Int, 10)
	case foldKey(k):
		for i := 0; i < len(f.Str); i++ {
			c := f.Str[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		}
		return dst
	}
	return append(dst, f.Str...)
}

// groupOf returns r's group, creating it (or using "(other)") as needed.
func (a *Aggregator) groupOf(r *analytics.Record) *group {
	b := a.keyBuf[:0]
	for i, k := range a.by {
		if i > 0 {
			b = append(b, 0)
		}
		b = appendKeyValue(b, r, k)
	}
	a.keyBuf = b
	if g := a.groups[string(b)]; g != nil {
		return g
	}
	if len(a.groups) >= max(a.MaxGroups, 1) {
		if a.other == nil {
			key := make([]string, len(a.by))
			for i := range key {
				key[i] = OtherGroup
			}
			a.other = &group{key: key, classes: map[string]int64{}}
		}
		return a.other
	}
	g := &group{key: strings.Split(string(b), "\x00"), classes: map[string]int64{}}
	if len(g.key) != len(a.by) { // a value held a NUL: rebuild the key one by one
		g.key = g.key[:0]
		for _, k := range a.by {
			g.key = append(g.key, string(appendKeyValue(nil, r, k)))
		}
	}
	a.groups[string(b)] = g
	return g
}

// Add counts r in its group. "tcp" flow records are skipped. A record
// without a response counts in Count and NoResponse but adds no latency.
func (a *Aggregator) Add(r *analytics.Record) {
	if r.Proto == "tcp" || r.Class == analytics.ClassFlow {
		return
	}
	g := a.groupOf(r)
	g.count++
	g.classes[r.Class]++
	lat := LatencyOf(r)
	if lat < 0 {
		g.noResponse++
		return
	}
	a.add(&g.latency, lat)
	if g.slowest == 0 || lat > g.slowestLat {
		g.slowest, g.slowestLat = r.ID, lat
	}
	if r.Network >= 0 {
		a.add(&g.network, r.Network)
	}
	if r.ServerTime >= 0 {
		a.add(&g.server, r.ServerTime)
	}
	if r.Transfer >= 0 {
		a.add(&g.transfer, r.Transfer)
	}
}

// AddTier adds a front exchange's tier split to r's group. It does not
// count r (call Add for that too); t's that are nil or not of a front
// exchange are ignored. Before and After are added only when the front
// exchange had backends.
func (a *Aggregator) AddTier(r *analytics.Record, t *Tier) {
	if t == nil || !t.IsFront || r.Proto == "tcp" || r.Class == analytics.ClassFlow {
		return
	}
	g := a.groupOf(r)
	g.tiers++
	a.add(&g.backend, t.Backend)
	a.add(&g.self, t.Self)
	if len(t.Backends) > 0 {
		a.add(&g.before, t.Before)
		a.add(&g.after, t.After)
	}
}

// percentiles sorts v in place and returns its nearest-rank percentiles.
// DefaultMaxExact is Aggregator.MaxExact's default: 16M values, 128 MiB.
const DefaultMaxExact = 16 << 20

// valueSet holds one metric's values of one group: exactly while the
// aggregator's budget lasts, then (for good) in a histogram of 1 %-wide
// logarithmic buckets, which bounds the memory of a latency query over any
// number of records.
type valueSet struct {
	v    []int64
	hist map[int32]int64 // bucket -> count; nil while exact
	n    int
	max  int64
	sum  float64 // for the mean in histogram mode
}

// histBase is the width of a histogram bucket: a value is reported as its
// bucket's upper bound, at most 1 % above it.
const histBase = 1.01

func histBucket(v int64) int32 {
	switch {
	case v == 0:
		return 0
	case v < 0:
		return -histBucket(-v)
	}
	return int32(math.Ceil(math.Log(float64(v))/math.Log(histBase))) + 1
}

func histValue(b int32) int64 {
	switch {
	case b == 0:
		return 0
	case b < 0:
		return -histValue(-b)
	}
	return int64(math.Round(math.Pow(histBase, float64(b-1))))
}

// add records v in s, within the aggregator's exact budget.
func (a *Aggregator) add(s *valueSet, v int64) {
	if s.n == 0 || v > s.max {
		s.max = v
	}
	s.n++
	s.sum += float64(v)
	if s.hist == nil {
		limit := a.MaxExact
		if limit == 0 {
			limit = DefaultMaxExact
		}
		if a.exact < limit {
			s.v = append(s.v, v)
			a.exact++
			return
		}
		// Out of budget: this set goes to the histogram, its values too.
		s.hist = make(map[int32]int64)
		for _, x := range s.v {
			s.hist[histBucket(x)]++
		}
		a.exact -= len(s.v)
		s.v = nil
	}
	s.hist[histBucket(v)]++
}

// percentiles computes the set's figures: nearest rank over the exact
// values, or over the histogram's buckets (Approx, each value at most 1 %
// high; Max is exact either way, Mean within float64 rounding).
func (s *valueSet) percentiles() Percentiles {
	if s.n == 0 {
		return Percentiles{P50: -1, P90: -1, P99: -1, Max: -1, Mean: -1}
	}
	n := s.n
	if s.hist == nil {
		v := s.v
		// Nearest rank: the ceil(p/100 * n)-th smallest value. The three
		// ranks are selected, not sorted for: sorting took a quarter of
		// the overview's latency series on 1.1M records (profiled). Each
		// selection leaves the values below its rank before it, so the
		// next, lower, rank is selected among those.
		idx := func(p int) int { return max((p*n+99)/100, 1) - 1 }
		i99, i90, i50 := idx(99), idx(90), idx(50)
		p99 := selectNth(v, i99)
		p90 := p99
		if i90 < i99 {
			p90 = selectNth(v[:i99], i90)
		}
		p50 := p90
		if i50 < i90 {
			p50 = selectNth(v[:i90], i50)
		}
		// The mean without overflow: sum quotients and remainders separately.
		var q, rem int64
		for _, x := range v {
			q += x / int64(n)
			rem += x % int64(n)
		}
		return Percentiles{N: n, P50: p50, P90: p90, P99: p99, Max: s.max, Mean: q + rem/int64(n)}
	}
	keys := make([]int32, 0, len(s.hist))
	for b := range s.hist {
		keys = append(keys, b)
	}
	slices.Sort(keys)
	rank := func(p int) int64 {
		k := int64(max((p*n+99)/100, 1))
		var c int64
		for _, b := range keys {
			if c += s.hist[b]; c >= k {
				return min(histValue(b), s.max)
			}
		}
		return s.max
	}
	return Percentiles{N: n, P50: rank(50), P90: rank(90), P99: rank(99), Max: s.max, Mean: int64(s.sum / float64(n)), Approx: true}
}

// Groups returns the groups, by count (largest first), then by key. The
// values are computed on each call.
func (a *Aggregator) Groups() []Group {
	gs := make([]*group, 0, len(a.groups)+1)
	for _, g := range a.groups {
		gs = append(gs, g)
	}
	if a.other != nil {
		gs = append(gs, a.other)
	}
	out := make([]Group, len(gs))
	add := func(i int, g *group) {
		out[i] = Group{
			Key:         slices.Clone(g.key),
			Count:       g.count,
			NoResponse:  g.noResponse,
			Latency:     g.latency.percentiles(),
			Network:     g.network.percentiles(),
			ServerTime:  g.server.percentiles(),
			Transfer:    g.transfer.percentiles(),
			Classes:     copyMap(g.classes),
			Slowest:     g.slowest,
			Tiers:       g.tiers,
			TierBefore:  g.before.percentiles(),
			TierBackend: g.backend.percentiles(),
			TierAfter:   g.after.percentiles(),
			TierSelf:    g.self.percentiles(),
		}
	}
	// Each group's figures are its own (a selection moves only its own
	// values): they are computed in parallel, a tenth of the overview's
	// latency series after its scan, on one thread (profiled).
	parallel(len(gs), func(i int) { add(i, gs[i]) })
	slices.SortFunc(out, func(x, y Group) int {
		if x.Count != y.Count {
			return cmpI64(y.Count, x.Count)
		}
		return slices.Compare(x.Key, y.Key)
	})
	return out
}

func copyMap(m map[string]int64) map[string]int64 {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// By returns the grouping keys.
func (a *Aggregator) By() []string { return slices.Clone(a.by) }

// AppendGroupsJSON appends one JSON object per group, each followed by a
// newline: {"key":{name:value,...},"count":N,"no_response":N,
// "latency_ns":{"p50","p90","p99","max","mean"},"network_ns":{"p50","p99"},
// "server_ns":{"p50","p99"},"transfer_ns":{"p50"},"classes":{class:N}},
// and, for groups with tiers, "tiers":N and "tier_before_ns",
// "tier_backend_ns", "tier_after_ns", "tier_self_ns" as {"p50","p99"}.
// Key values are strings; unknown percentiles are -1.
func AppendGroupsJSON(dst []byte, by []string, groups []Group) []byte {
	for _, g := range groups {
		dst = append(dst, `{"key":{`...)
		for i, k := range by {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			v := ""
			if i < len(g.Key) {
				v = g.Key[i]
			}
			dst = appendString(dst, v)
		}
		dst = append(dst, '}')
		dst = appendIntField(dst, "count", g.Count)
		dst = appendIntField(dst, "no_response", g.NoResponse)
		dst = append(dst, `,"latency_ns":{"p50":`...)
		dst = strconv.AppendInt(dst, g.Latency.P50, 10)
		dst = appendIntField(dst, "p90", g.Latency.P90)
		dst = appendIntField(dst, "p99", g.Latency.P99)
		dst = appendIntField(dst, "max", g.Latency.Max)
		dst = appendIntField(dst, "mean", g.Latency.Mean)
		dst = append(dst, '}')
		dst = appendP50P99(dst, "network_ns", g.Network)
		dst = appendP50P99(dst, "server_ns", g.ServerTime)
		dst = append(dst, `,"transfer_ns":{"p50":`...)
		dst = strconv.AppendInt(dst, g.Transfer.P50, 10)
		dst = append(dst, '}')
		if g.Slowest != 0 {
			dst = append(dst, `,"slowest_id":"`...)
			dst = appendHex16(dst, g.Slowest)
			dst = append(dst, '"')
		}
		if g.approx() {
			dst = append(dst, `,"approx":true`...)
		}
		dst = append(dst, `,"classes":{`...)
		classes := make([]string, 0, len(g.Classes))
		for c := range g.Classes {
			classes = append(classes, c)
		}
		slices.Sort(classes)
		for i, c := range classes {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, c)
			dst = append(dst, ':')
			dst = strconv.AppendInt(dst, g.Classes[c], 10)
		}
		dst = append(dst, '}')
		if g.Tiers > 0 {
			dst = appendIntField(dst, "tiers", g.Tiers)
			dst = appendP50P99(dst, "tier_before_ns", g.TierBefore)
			dst = appendP50P99(dst, "tier_backend_ns", g.TierBackend)
			dst = appendP50P99(dst, "tier_after_ns", g.TierAfter)
			dst = appendP50P99(dst, "tier_self_ns", g.TierSelf)
		}
		dst = append(dst, "}\n"...)
	}
	return dst
}

func appendP50P99(dst []byte, name string, p Percentiles) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, `":{"p50":`...)
	dst = strconv.AppendInt(dst, p.P50, 10)
	dst = appendIntField(dst, "p99", p.P99)
	return append(dst, '}')
}

// WriteTable writes the groups as an aligned text table with human
// durations ("-" when unknown): the key columns, count, no_resp, latency
// p50/p90/p99/max/mean, network and server p50/p99, transfer p50, the
// classes, and tier before/backend/after p50 when any group has tiers.
func WriteTable(w io.Writer, by []string, groups []Group) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	tiers := slices.ContainsFunc(groups, func(g Group) bool { return g.Tiers > 0 })
	var b []byte
	for _, k := range by {
		b = append(b, k...)
		b = append(b, '\t')
	}
	b = append(b, "count\tno_resp\tp50\tp90\tp99\tmax\tmean\tnet_p50\tnet_p99\tsrv_p50\tsrv_p99\txfer_p50\t"...)
	if tiers {
		b = append(b, "before_p50\tbackend_p50\tafter_p50\t"...)
	}
	b = append(b, "slowest\tclasses\t\n"...)
	for _, g := range groups {
		for i := range by {
			v := ""
			if i < len(g.Key) {
				v = g.Key[i]
			}
			if v == "" {
				v = "-"
			}
			b = analytics.AppendClean(b, v, 60)
			b = append(b, '\t')
		}
		b = strconv.AppendInt(b, g.Count, 10)
		b = append(b, '\t')
		b = strconv.AppendInt(b, g.NoResponse, 10)
		for _, v := range [...]int64{g.Latency.P50, g.Latency.P90, g.Latency.P99, g.Latency.Max, g.Latency.Mean,
			g.Network.P50, g.Network.P99, g.ServerTime.P50, g.ServerTime.P99, g.Transfer.P50} {
			b = append(b, '\t')
			b = analytics.AppendDuration(b, v)
		}
		if tiers {
			for _, v := range [...]int64{g.TierBefore.P50, g.TierBackend.P50, g.TierAfter.P50} {
				b = append(b, '\t')
				b = analytics.AppendDuration(b, v)
			}
		}
		b = append(b, '\t')
		if g.Slowest != 0 {
			b = appendHex16(b, g.Slowest)
		} else {
			b = append(b, '-')
		}
		b = append(b, '\t')
		classes := make([]string, 0, len(g.Classes))
		for c := range g.Classes {
			classes = append(classes, c)
		}
		slices.Sort(classes)
		for i, c := range classes {
			if i > 0 {
				b = append(b, ' ')
			}
			b = analytics.AppendClean(b, c, 20)
			b = append(b, '=')
			b = strconv.AppendInt(b, g.Classes[c], 10)
		}
		b = append(b, "\t\n"...)
	}
	if _, err := tw.Write(b); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	for _, g := range groups {
		if g.approx() {
			_, err := fmt.Fprintln(w, "(more values than kept exactly: some percentiles are from 1% buckets, at most 1% high)")
			return err
		}
	}
	return nil
}

// approx says whether any of g's figures are from histogram buckets.
func (g *Group) approx() bool {
	for _, p := range [...]Percentiles{g.Latency, g.Network, g.ServerTime, g.Transfer, g.TierBefore, g.TierBackend, g.TierAfter, g.TierSelf} {
		if p.Approx {
			return true
		}
	}
	return false
}

// Spawn starts the goroutines msgquery spreads its work over (a
// diagnosis's servers, an Aggregator's groups). The query package sets it
// to start them as its query threads are (at the lowest priority while a
// capture runs); by default a plain go statement.
var Spawn = func(f func()) { go f() }

// parallel calls f(0..n-1) on up to one goroutine per CPU (started by
// Spawn) and waits for them.
func parallel(n int, f func(i int)) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(runtime.NumCPU(), n) {
		wg.Add(1)
		Spawn(func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}
