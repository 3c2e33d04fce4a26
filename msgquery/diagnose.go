package msgquery

// Diagnose: the verdict "where is the time going?" over a window of
// records, per server, in plain sentences, each with its numbers and the
// IDs of the exchanges behind it (docs/analytics.md, "Diagnose").
//
// It reads only the records' additive split (Network, ServerTime,
// Transfer, ClientNet), their evidence (NetFrom, flags) and the tier
// linker's split of a front end's wait. Every claim needs MinCount
// exchanges with a split on the server, and MinAffected of them showing
// it; below that the answer is "not enough data".

import (
	stdcmp "cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"tapvault/analytics"
)

// Finding kinds (Finding.Kind).
const (
	// The server's own time is slow while its network part is not: the
	// application, or what it waits on.
	FindSlowServer = "slow_server"
	// The slow round trips are spread over every client network: the
	// server's side of the network.
	FindServerNetwork = "server_network"
	// The slow round trips come from a few client networks: theirs.
	FindClientNetwork = "client_network"
	// Slow round trips, but only one client network to compare, or a
	// spread that is neither everywhere nor concentrated.
	FindNetworkUnclear = "network_unclear"
	// A front end's wait, split by its backend calls (tier linker).
	FindTierBackend = "tier_backend" // the backend calls take most of it: the database is slow
	FindTierBefore  = "tier_before"  // the front end waits before it calls the database
	FindTierAfter   = "tier_after"   // the front end works after the database answered
	FindTierSpread  = "tier_spread"  // no part takes most of it
	// No part is slow on a server with enough data.
	FindHealthy = "healthy"
	// A server with enough exchanges whose time cannot be split (UDP, or
	// TCP exchanges the analyser could not split).
	FindCantSplit = "cant_split"
	// Nothing could be said: too few exchanges on every server.
	FindNotEnoughData = "not_enough_data"
)

// Diagnose defaults.
const (
	DefaultMinCount    = 20
	DefaultMinAffected = 5
	DefaultMinShare    = 0.05
	DefaultMinGroup    = 5
	DefaultMaxSamples  = 1 << 19
)

// DiagnoseOptions tune the verdicts. Zero values take the defaults.
type DiagnoseOptions struct {
	// SlowNetwork: a path round trip (NetworkNS + ClientNetNS) at or over
	// it is slow, as is a retransmission (default: the analyser's, 20 ms).
	SlowNetwork int64
	// SlowServer: a server part at or over it is slow (default 10 ms).
	SlowServer int64
	// MinCount: exchanges with a time split a server needs before
	// anything is said about it (default 20).
	MinCount int
	// MinAffected and MinShare: a problem is claimed when at least
	// MinAffected exchanges and MinShare of the server's show it
	// (defaults 5 and 5 %).
	MinAffected int
	MinShare    float64
	// MinGroup: exchanges a client network needs to be compared with the
	// others (default 5).
	MinGroup int
	// MaxSamples bounds memory: past it, the exchanges kept for
	// percentiles and examples are a uniform sample (reservoir) of those
	// seen, 64 bytes each (default 2^19, 32 MiB). Counts stay exact.
	MaxSamples int
	// Server selects the servers to diagnose (zero: all). The backend
	// calls of a selected front end are kept too.
	Server ServerSel
}

func (o *DiagnoseOptions) setDefaults() {
	def := analytics.DefaultConfig()
	if o.SlowNetwork <= 0 {
		o.SlowNetwork = int64(def.SlowNetwork)
	}
	if o.SlowServer <= 0 {
		o.SlowServer = int64(def.SlowServer)
	}
	if o.MinCount <= 0 {
		o.MinCount = DefaultMinCount
	}
	if o.MinAffected <= 0 {
		o.MinAffected = DefaultMinAffected
	}
	if o.MinShare <= 0 {
		o.MinShare = DefaultMinShare
	}
	if o.MinGroup <= 0 {
		o.MinGroup = DefaultMinGroup
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = DefaultMaxSamples
	}
}

// ServerSel selects servers by address prefix and, when Port is not 0,
// port. The zero ServerSel selects every server.
type ServerSel struct {
	Prefix netip.Prefix
	Port   uint16
}

// ParseServerSel reads "10.0.0.5", "10.0.0.5:80", "[2001:db8::1]:443",
// "2001:db8::1" or a prefix "10.0.0.0/24".
func ParseServerSel(s string) (ServerSel, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return ServerSel{}, nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return ServerSel{Prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return ServerSel{Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 {
		a := ap.Addr().Unmap()
		return ServerSel{Prefix: netip.PrefixFrom(a, a.BitLen()), Port: ap.Port()}, nil
	}
	return ServerSel{}, fmt.Errorf("server %q: want an address, address:port or prefix, like 10.0.0.5, 10.0.0.5:80, [2001:db8::1]:443 or 10.0.0.0/24", s)
}

// IsZero reports whether s selects every server.
func (s ServerSel) IsZero() bool { return !s.Prefix.IsValid() }

func (s ServerSel) String() string {
	switch {
	case s.IsZero():
		return ""
	case s.Port == 0 && s.Prefix.IsSingleIP():
		return s.Prefix.Addr().String()
	case s.Port == 0:
		return s.Prefix.String()
	}
	return netip.AddrPortFrom(s.Prefix.Addr(), s.Port).String()
}

func (s ServerSel) hostMatch(a netip.Addr) bool {
	return s.IsZero() || s.Prefix.Contains(a.Unmap())
}

func (s ServerSel) match(ap netip.AddrPort) bool {
	return s.hostMatch(ap.Addr()) && (s.Port == 0 || ap.Port() == s.Port)
}

// ClientNet returns the client network an address is grouped in: its /24
// for IPv4, its /48 for IPv6.
func ClientNet(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

// dsample is one exchange kept for the analysis (64 bytes).
type dsample struct {
	id        uint64
	srv, cnet int32 // indexes into Diagnoser.servers and .nets
	lat       int64
	net, cli  int64 // Network, ClientNet (-1 unknown)
	server    int64 // ServerTime (-1 unknown)
	xfer      int64
	flags     uint32
}

func (s *dsample) split() bool { return s.net >= 0 && s.server >= 0 }

// path is the round trip between client and server: both legs (the
// client's when known).
func (s *dsample) path() int64 { return s.net + max(s.cli, 0) }

// tsample is one front exchange with backend calls.
type tsample struct {
	id                           uint64
	srv                          int32
	calls                        int32
	wait, before, backend, after int64
}

// between is the wait neither before, in nor after the backend calls:
// between calls (0 when parallel calls overlap).
func (t *tsample) between() int64 { return max(t.wait-t.before-t.backend-t.after, 0) }

type srvAcc struct {
	ap        netip.AddrPort
	protos    map[string]int
	classes   map[string]int
	exchanges int // exchange records
	answered  int // with a response
	split     int // with a time split
	udp       int
	fronts    int // front exchanges with backend calls
}

// Diagnoser collects records (Add) and judges them (Diagnosis). It is
// used from one goroutine.
type Diagnoser struct {
	opts    DiagnoseOptions
	servers []*srvAcc
	srvIdx  map[netip.AddrPort]int32
	nets    []netip.Prefix
	netIdx  map[netip.Prefix]int32
	samples chunked[dsample]
	seen    int64
	tiers   chunked[tsample]
	tseen   int64
	rnd     uint64
	// backend calls seen per front-end host: backend server -> calls
	backends map[netip.Addr]map[netip.AddrPort]int
	from, to int64
	records  int
}

// NewDiagnoser returns a Diagnoser with opts (zero values: defaults).
func NewDiagnoser(opts DiagnoseOptions) *Diagnoser {
	opts.setDefaults()
	return &Diagnoser{
		opts:     opts,
		srvIdx:   map[netip.AddrPort]int32{},
		netIdx:   map[netip.Prefix]int32{},
		backends: map[netip.Addr]map[netip.AddrPort]int{},
		rnd:      0x9e3779b97f4a7c15,
	}
}

// Options returns the options in use, defaults filled in.
func (d *Diagnoser) Options() DiagnoseOptions { return d.opts }

func (d *Diagnoser) next() uint64 {
	// splitmix64: a fixed seed, so a diagnosis is reproducible.
	d.rnd += 0x9e3779b97f4a7c15
	z := d.rnd
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Add takes one record and its tier links (nil without). r is read during
// the call only. Connection records (proto tcp) are left out.
func (d *Diagnoser) Add(r *analytics.Record, t *Tier) {
	if r.Proto == "tcp" || r.Class == analytics.ClassFlow {
		return
	}
	isBackend := t != nil && !t.IsFront && t.Frontend != 0
	if !d.opts.Server.match(r.Server) && !(isBackend && d.opts.Server.hostMatch(r.Client.Addr())) {
		return
	}
	d.records++
	for _, ts := range [...]int64{r.ReqFirst, r.RespFirst} {
		if ts > 0 && (d.from == 0 || ts < d.from) {
			d.from = ts
		}
	}
	d.to = max(d.to, r.RespLast, r.ReqLast)

	si, ok := d.srvIdx[r.Server]
	if !ok {
		si = int32(len(d.servers))
		d.srvIdx[r.Server] = si
		d.servers = append(d.servers, &srvAcc{ap: r.Server, protos: map[string]int{}, classes: map[string]int{}})
	}
	acc := d.servers[si]
	acc.exchanges++
	acc.protos[r.Proto]++
	acc.classes[r.Class]++
	if r.Transport == 17 {
		acc.udp++
	}
	if isBackend {
		m := d.backends[r.Client.Addr()]
		if m == nil {
			m = map[netip.AddrPort]int{}
			d.backends[r.Client.Addr()] = m
		}
		m[r.Server]++
	}
	if r.RespFirst <= 0 || r.ReqLast <= 0 {
		return // no response (or no request): nothing to time
	}
	acc.answered++
	cn := ClientNet(r.Client.Addr())
	ni, ok := d.netIdx[cn]
	if !ok {
		ni = int32(len(d.nets))
		d.netIdx[cn] = ni
		d.nets = append(d.nets, cn)
	}
	s := dsample{
		id: r.ID, srv: si, cnet: ni,
		lat: max(r.RespLast-r.ReqLast, -1), net: max(r.Network, -1), cli: max(r.ClientNet, -1),
		server: max(r.ServerTime, -1), xfer: max(r.Transfer, -1), flags: r.Flags,
	}
	if r.Transport == 17 || r.NetFrom() == analytics.NetNone {
		// No split: UDP has none, and a TCP record without evidence was
		// stored before the additive split (issue 11), when ServerTime was
		// the whole wait and Network overlapped it.
		s.net, s.server = -1, -1
	}
	if s.split() {
		acc.split++
	}
	d.seen++
	if d.samples.len() < d.opts.MaxSamples {
		d.samples.push(s)
	} else if j := d.next() % uint64(d.seen); j < uint64(d.samples.len()) {
		*d.samples.at(int(j)) = s
	}

	if t != nil && t.IsFront && len(t.Backends) > 0 {
		acc.fronts++
		ts := tsample{id: r.ID, srv: si, calls: int32(len(t.Backends)), wait: r.RespFirst - r.ReqLast,
			before: max(t.Before, 0), backend: t.Backend, after: max(t.After, 0)}
		d.tseen++
		if d.tiers.len() < d.opts.MaxSamples/4 {
			d.tiers.push(ts)
		} else if j := d.next() % uint64(d.tseen); j < uint64(d.tiers.len()) {
			*d.tiers.at(int(j)) = ts
		}
	}
}

// chunked is a growing array in fixed chunks: appending never copies what
// it holds, and pointers to its elements stay valid. The samples of a
// diagnosis (up to DefaultMaxSamples, 32 MiB) grown by append were copied
// and their memory zeroed again at each growth: a fifth of the CPU of a
// diagnosis of 1.1M records (profiled).
type chunked[T any] struct {
	chunks [][]T
	n      int
}

const chunkLen = 8192

func (c *chunked[T]) len() int { return c.n }

func (c *chunked[T]) push(v T) {
	if c.n%chunkLen == 0 {
		c.chunks = append(c.chunks, make([]T, 0, chunkLen))
	}
	last := &c.chunks[len(c.chunks)-1]
	*last = append(*last, v)
	c.n++
}

func (c *chunked[T]) at(i int) *T { return &c.chunks[i/chunkLen][i%chunkLen] }

// Diagnosis is the verdict over the records added.
type Diagnosis struct {
	// From and To are the span of the records' times (0 without records).
	From, To int64
	// Exchanges is the exchange records considered (after Server), Split
	// those with a time split.
	Exchanges, Split int
	// Sampled: more exchanges than MaxSamples were seen, so percentiles
	// and examples come from a uniform sample of them.
	Sampled bool
	Options DiagnoseOptions
	// Findings, the largest time first: each a verdict with its numbers.
	Findings []Finding
	// Servers: every server seen, the busiest first.
	Servers []ServerSummary
	// NotEnough counts the servers (and their exchanges) with fewer than
	// MinCount exchanges with a split, about which nothing is said.
	NotEnoughServers, NotEnoughExchanges int
}

// Finding is one verdict: a headline, sentences with the numbers, and the
// exchanges that show it.
type Finding struct {
	Kind     string
	Server   string // ip:port
	Proto    string
	Headline string
	Detail   []string
	// Count of Of exchanges show it (Of: the server's with a split, or
	// its front exchanges with backend calls).
	Count, Of int
	// Impact is the time it accounts for, summed over the exchanges kept
	// (ns): the order of the findings.
	Impact int64
	// Numbers are the figures of the sentences, by name (ns, counts).
	Numbers map[string]int64
	// Clients are the client networks compared (network findings).
	Clients []ClientGroup
	// Backends are the backend servers a front end called (tier findings
	// and a slow front end's).
	Backends []BackendUse
	// TierView: the server's front exchanges have backend calls; the tier
	// view (messages --tiers 'server S') shows them.
	TierView bool
	Examples []Example
}

// ClientGroup is one client network's share of slow round trips.
type ClientGroup struct {
	Net      netip.Prefix
	Count    int   // exchanges with a split
	Slow     int   // of them with a slow path
	PathP50  int64 // p50 path round trip of all its exchanges (ns)
	SlowP50  int64 // p50 path round trip of its slow ones (-1: none)
	Affected bool  // named as a cause (client_network)
}

// BackendUse is a backend server a front end called.
type BackendUse struct {
	Server string `json:"server"`
	Proto  string `json:"proto"`
	Calls  int    `json:"calls"`
}

// Example is an exchange behind a finding: its ID leads to the record
// (messages 'id X') and its packets (query --message X).
type Example struct {
	ID     uint64
	Role   string // "slowest", "median"
	Metric string // the figure judged: server_ns, path_ns, wait_ns, latency_ns
	Value  int64
}

// ServerSummary is one server's figures over the window.
type ServerSummary struct {
	Server    string
	Proto     string
	Exchanges int
	Answered  int
	Split     int
	UDP       int
	Fronts    int // front exchanges with backend calls
	Classes   map[string]int
	// p50 and p90 (ns; -1 without values); network, server and client_net
	// over the exchanges with a split.
	Latency, Network, ServerTime, ClientNet, Transfer P5090
	Verdicts                                          []string // the kinds of its findings
}

// P5090 is a median and a 90th percentile (nearest rank), ns.
type P5090 struct{ P50, P90 int64 }

// p5090 reorders v. It selects the two ranks instead of sorting v, which
// took most of Diagnosis on 1.1M records (profiled); the values are the
// nearest-rank percentiles of sorted v (-1 when v is empty).
func p5090(v []int64) P5090 {
	if len(v) == 0 {
		return P5090{-1, -1}
	}
	i50, i90 := rank(len(v), 50), rank(len(v), 90)
	p90 := selectNth(v, i90)
	// selectNth leaves v[:i90] at most v[i90]: the median is among them
	// (or is v[i90] itself).
	p50 := p90
	if i50 < i90 {
		p50 = selectNth(v[:i90], i50)
	}
	return P5090{p50, p90}
}

// rank is the index of the nearest-rank p-th percentile in a sorted
// slice of n values.
func rank(n int, p float64) int {
	i := int(float64(n)*p/100+0.999999) - 1
	return min(max(i, 0), n-1)
}

func collect(ss []*dsample, f func(*dsample) int64) []int64 {
	v := make([]int64, 0, len(ss))
	for _, s := range ss {
		if x := f(s); x >= 0 {
			v = append(v, x)
		}
	}
	return v
}

func durText(ns int64) string { return string(analytics.AppendDuration(nil, ns)) }

func pctText(n, of int) string {
	if of == 0 {
		return "0%"
	}
	return strconv.Itoa((200*n+of)/(2*of)) + "%"
}

// examples picks the slowest and the median exchange of ss by f.
func examples(ss []*dsample, metric string, f func(*dsample) int64) []Example {
	if len(ss) == 0 {
		return nil
	}
	s := slices.Clone(ss)
	slices.SortStableFunc(s, func(a, b *dsample) int {
		if c := stdcmp.Compare(f(a), f(b)); c != 0 {
			return c
		}
		return stdcmp.Compare(a.id, b.id)
	})
	top, mid := s[len(s)-1], s[(len(s)-1)/2]
	out := []Example{{ID: top.id, Role: "slowest", Metric: metric, Value: f(top)}}
	if mid != top {
		out = append(out, Example{ID: mid.id, Role: "median", Metric: metric, Value: f(mid)})
	}
	return out
}

// Diagnosis judges what was added. It can be called more than once.
func (d *Diagnoser) Diagnosis() *Diagnosis {
	o := d.opts
	dg := &Diagnosis{From: d.from, To: d.to, Exchanges: d.records, Sampled: d.seen > int64(d.samples.len()), Options: o}
	bySrv := make([][]*dsample, len(d.servers))
	for i := range d.samples.len() {
		s := d.samples.at(i)
		bySrv[s.srv] = append(bySrv[s.srv], s)
	}
	tiersBySrv := make([][]*tsample, len(d.servers))
	for i := range d.tiers.len() {
		t := d.tiers.at(i)
		tiersBySrv[t.srv] = append(tiersBySrv[t.srv], t)
	}
	order := make([]int, len(d.servers))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		x, y := d.servers[a], d.servers[b]
		if c := stdcmp.Compare(y.exchanges, x.exchanges); c != 0 {
			return c
		}
		return x.ap.Compare(y.ap)
	})
	// Each server is judged on its own samples, reading d only: the
	// servers are judged in parallel (a fifth of a diagnosis of 1.1M
	// records was this loop, on one thread) and collected in order.
	type judged struct {
		sum ServerSummary
		fs  []Finding
	}
	out := make([]judged, len(order))
	judge := func(k int) {
		i := order[k]
		acc := d.servers[i]
		ss := bySrv[i]
		var split []*dsample
		for _, s := range ss {
			if s.split() {
				split = append(split, s)
			}
		}
		sum := ServerSummary{
			Server: acc.ap.String(), Proto: mainProto(acc.protos), Exchanges: acc.exchanges, Answered: acc.answered,
			Split: acc.split, UDP: acc.udp, Fronts: acc.fronts, Classes: acc.classes,
			Latency:    p5090(collect(ss, func(s *dsample) int64 { return s.lat })),
			Network:    p5090(collect(split, func(s *dsample) int64 { return s.net })),
			ServerTime: p5090(collect(split, func(s *dsample) int64 { return s.server })),
			ClientNet:  p5090(collect(split, func(s *dsample) int64 { return s.cli })),
			Transfer:   p5090(collect(split, func(s *dsample) int64 { return s.xfer })),
		}
		var fs []Finding
		switch {
		case acc.split >= o.MinCount:
			fs = d.judgeServer(&sum, split, tiersBySrv[i])
		case acc.answered >= o.MinCount:
			fs = []Finding{d.cantSplit(&sum, ss)}
		}
		for _, f := range fs {
			sum.Verdicts = append(sum.Verdicts, f.Kind)
		}
		out[k] = judged{sum, fs}
	}
	parallel(len(order), judge)
	for k, i := range order {
		acc := d.servers[i]
		dg.Split += acc.split
		if acc.split < o.MinCount && acc.answered < o.MinCount {
			dg.NotEnoughServers++
			dg.NotEnoughExchanges += acc.exchanges
		}
		dg.Findings = append(dg.Findings, out[k].fs...)
		dg.Servers = append(dg.Servers, out[k].sum)
	}
	slices.SortStableFunc(dg.Findings, func(a, b Finding) int { return stdcmp.Compare(b.Impact, a.Impact) })
	if len(dg.Findings) == 0 {
		f := Finding{Kind: FindNotEnoughData, Count: dg.Split, Of: dg.Exchanges}
		f.Headline = "Not enough data to say where the time goes."
		f.Detail = []string{fmt.Sprintf("%d exchanges in the window, %d with a time split into network and server; a verdict needs %d with a split on one server.",
			dg.Exchanges, dg.Split, o.MinCount)}
		dg.Findings = []Finding{f}
	}
	return dg
}

func mainProto(m map[string]int) string {
	best, n := "", -1
	for p, c := range m {
		if c > n || c == n && p < best {
			best, n = p, c
		}
	}
	return best
}

// cantSplit is the finding for a server with answered exchanges but too
// few with a split (UDP, or TCP exchanges the analyser could not split).
func (d *Diagnoser) cantSplit(sum *ServerSummary, ss []*dsample) Finding {
	f := Finding{Kind: FindCantSplit, Server: sum.Server, Proto: sum.Proto, Count: sum.Split, Of: sum.Answered}
	why := "its exchanges are over UDP: without TCP signalling the wait cannot be split into network and server"
	if sum.UDP < sum.Answered/2 {
		why = fmt.Sprintf("only %d of them have a time split (the others are cant_tell, no handshake or round trip seen, or were stored before the additive split)", sum.Split)
	}
	f.Headline = fmt.Sprintf("%s (%s): the time cannot be split.", sum.Server, sum.Proto)
	f.Detail = []string{fmt.Sprintf("%d answered exchanges, latency p50 %s, p90 %s; %s.", sum.Answered, durText(sum.Latency.P50), durText(sum.Latency.P90), why)}
	f.Numbers = map[string]int64{"answered": int64(sum.Answered), "latency_p50_ns": sum.Latency.P50, "latency_p90_ns": sum.Latency.P90}
	f.Examples = examples(ss, "latency_ns", func(s *dsample) int64 { return s.lat })
	return f
}

// judgeServer makes the findings of one server with enough split
// exchanges.
func (d *Diagnoser) judgeServer(sum *ServerSummary, split []*dsample, tiers []*tsample) []Finding {
	o := d.opts
	n := len(split)
	claim := func(k int) bool { return k >= o.MinAffected && float64(k) >= o.MinShare*float64(n) }
	var fs []Finding
	addr, _ := netip.ParseAddrPort(sum.Server)
	var backends []BackendUse
	for ap, c := range d.backends[addr.Addr()] {
		p := ""
		if si, ok := d.srvIdx[ap]; ok {
			p = mainProto(d.servers[si].protos)
		}
		backends = append(backends, BackendUse{Server: ap.String(), Proto: p, Calls: c})
	}
	slices.SortFunc(backends, func(a, b BackendUse) int {
		if c := stdcmp.Compare(b.Calls, a.Calls); c != 0 {
			return c
		}
		return strings.Compare(a.Server, b.Server)
	})

	// The server's own time.
	var slowSrv []*dsample
	for _, s := range split {
		if s.server >= o.SlowServer {
			slowSrv = append(slowSrv, s)
		}
	}
	if claim(len(slowSrv)) {
		fs = append(fs, d.slowServer(sum, split, slowSrv, backends))
	}

	// The network.
	var slowNet []*dsample
	for _, s := range split {
		if s.flags&analytics.FlagRetrans != 0 || s.path() >= o.SlowNetwork {
			slowNet = append(slowNet, s)
		}
	}
	if claim(len(slowNet)) {
		fs = append(fs, d.slowNetwork(sum, split, slowNet))
	}

	// The front end's wait, by its backend calls.
	if len(tiers) >= o.MinCount {
		fs = append(fs, d.tierFinding(sum, tiers, backends))
	}

	if len(fs) == 0 {
		f := Finding{Kind: FindHealthy, Server: sum.Server, Proto: sum.Proto, Count: n, Of: n}
		f.Headline = fmt.Sprintf("%s (%s) looks healthy.", sum.Server, sum.Proto)
		f.Detail = []string{fmt.Sprintf("%d exchanges with a time split: server time p50 %s, p90 %s; path round trip p50 %s, p90 %s; %d slow server (≥%s) and %d slow path (≥%s), under the %d and %s needed to call it a problem.",
			n, durText(sum.ServerTime.P50), durText(sum.ServerTime.P90),
			durText(p5090(collect(split, (*dsample).path)).P50), durText(p5090(collect(split, (*dsample).path)).P90),
			len(slowSrv), durText(o.SlowServer), len(slowNet), durText(o.SlowNetwork), o.MinAffected, pctText(int(o.MinShare*1000), 1000))}
		f.Numbers = map[string]int64{"exchanges": int64(n), "server_p50_ns": sum.ServerTime.P50, "server_p90_ns": sum.ServerTime.P90, "slow_server": int64(len(slowSrv)), "slow_path": int64(len(slowNet))}
		f.Examples = examples(split, "latency_ns", func(s *dsample) int64 { return s.lat })
		fs = append(fs, f)
	}
	return fs
}

func (d *Diagnoser) slowServer(sum *ServerSummary, split, slow []*dsample, backends []BackendUse) Finding {
	o := d.opts
	f := Finding{Kind: FindSlowServer, Server: sum.Server, Proto: sum.Proto, Count: len(slow), Of: len(split), Backends: backends, TierView: sum.Fronts > 0}
	srv := p5090(collect(slow, func(s *dsample) int64 { return s.server }))
	net := p5090(collect(slow, func(s *dsample) int64 { return s.net }))
	var bare, late, timer, rode, weak int
	for _, s := range slow {
		f.Impact += s.server
		switch {
		case s.flags&analytics.FlagAckTimer != 0:
			timer++
		case netSource(s.flags) == analytics.NetBareAck && conf(s.flags) == analytics.ConfHigh:
			bare++
		case netSource(s.flags) == analytics.NetBareAck:
			late++ // late, and not the timer: the network slowed down
		default:
			rode++
		}
		if conf(s.flags) == analytics.ConfLow {
			weak++
		}
	}
	switch {
	case weak*2 > len(slow):
		f.Headline = fmt.Sprintf("%s (%s) seems slow to answer, but most of these splits have low confidence (a middlebox, or no handshake seen).", sum.Server, sum.Proto)
	case net.P50 >= srv.P50:
		f.Headline = fmt.Sprintf("%s (%s) is slow to answer, though its network part is larger still.", sum.Server, sum.Proto)
	default:
		f.Headline = fmt.Sprintf("%s (%s) is slow, but its ACKs are prompt: the time is in the application, or what it waits on.", sum.Server, sum.Proto)
	}
	f.Detail = append(f.Detail,
		fmt.Sprintf("%d of %d exchanges (%s) waited %s or more for the server: server time p50 %s, p90 %s, while the network part stayed at p50 %s.",
			len(slow), len(split), pctText(len(slow), len(split)), durText(o.SlowServer), durText(srv.P50), durText(srv.P90), durText(net.P50)),
		fmt.Sprintf("How the server's TCP stack acknowledged these requests: in %d a prompt bare ACK (within a round trip), in %d at the delayed-ACK timer (the kernel waited for data the application had not written), in %d riding on the late response (held to piggyback on it: the response was late, not the network).",
			bare, timer, rode))
	if late > 0 {
		f.Detail = append(f.Detail, fmt.Sprintf("In %d more the bare ACK came late, and not at the timer: the network slowed down as well.", late))
	}
	if weak > 0 {
		f.Detail = append(f.Detail, fmt.Sprintf("%d of them have a low-confidence split (a middlebox, or no handshake seen).", weak))
	}
	if f.TierView {
		f.Detail = append(f.Detail, fmt.Sprintf("Backend calls are seen from this host (%s): the tier view splits the wait into the front end's own time and its calls.", backendList(backends)))
	}
	f.Numbers = map[string]int64{"slow": int64(len(slow)), "exchanges": int64(len(split)), "server_p50_ns": srv.P50, "server_p90_ns": srv.P90,
		"network_p50_ns": net.P50, "bare_ack": int64(bare), "late_bare_ack": int64(late), "ack_timer": int64(timer), "ack_on_response": int64(rode)}
	f.Examples = examples(slow, "server_ns", func(s *dsample) int64 { return s.server })
	return f
}

func backendList(bs []BackendUse) string {
	var b strings.Builder
	for i, u := range bs {
		if i == 3 {
			fmt.Fprintf(&b, " and %d more", len(bs)-3)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s, %d calls", u.Proto, u.Server, u.Calls)
	}
	return b.String()
}

func netSource(flags uint32) analytics.NetSource {
	r := analytics.Record{Flags: flags}
	return r.NetFrom()
}

func conf(flags uint32) analytics.Confidence {
	r := analytics.Record{Flags: flags}
	return r.Confidence()
}

func (d *Diagnoser) slowNetwork(sum *ServerSummary, split, slow []*dsample) Finding {
	o := d.opts
	f := Finding{Count: len(slow), Of: len(split), Server: sum.Server, Proto: sum.Proto}
	isSlow := make(map[*dsample]bool, len(slow))
	var rtx int
	for _, s := range slow {
		isSlow[s] = true
		if s.flags&analytics.FlagRetrans != 0 {
			rtx++
		}
	}
	var rest []*dsample
	for _, s := range split {
		if !isSlow[s] {
			rest = append(rest, s)
		}
	}
	pathSlow := p5090(collect(slow, (*dsample).path))
	pathRest := p5090(collect(rest, (*dsample).path))
	extra := int64(-1)
	if pathRest.P50 >= 0 {
		extra = pathSlow.P50 - pathRest.P50
	}
	for _, s := range slow {
		if extra >= 0 {
			f.Impact += max(s.path()-pathRest.P50, 0)
		} else {
			f.Impact += s.path()
		}
	}
	// Which leg holds it: the server's side of the capture point
	// (network_ns) or the client's (client_net_ns).
	legNet := p5090(collect(slow, func(s *dsample) int64 { return s.net })).P50 - max(p5090(collect(rest, func(s *dsample) int64 { return s.net })).P50, 0)
	legCli := p5090(collect(slow, func(s *dsample) int64 { return s.cli })).P50 - max(p5090(collect(rest, func(s *dsample) int64 { return s.cli })).P50, 0)
	leg := "between the capture point and the server (network_ns)"
	if legCli > legNet {
		leg = "between the capture point and the clients (client_net_ns)"
	}

	// By client network.
	type grp struct {
		n, k        int
		paths, slow []int64
	}
	gs := map[int32]*grp{}
	for _, s := range split {
		g := gs[s.cnet]
		if g == nil {
			g = &grp{}
			gs[s.cnet] = g
		}
		g.n++
		g.paths = append(g.paths, s.path())
		if isSlow[s] {
			g.k++
			g.slow = append(g.slow, s.path())
		}
	}
	n, k := len(split), len(slow)
	var compared []int32
	small, smallK, smallTot := 0, 0, 0
	for ni, g := range gs {
		if g.n >= o.MinGroup {
			compared = append(compared, ni)
		} else {
			small++
			smallK += g.k
			smallTot += g.n
		}
	}
	slices.SortFunc(compared, func(a, b int32) int {
		ga, gb := gs[a], gs[b]
		ra, rb := float64(ga.k)/float64(ga.n), float64(gb.k)/float64(gb.n)
		if c := stdcmp.Compare(rb, ra); c != 0 {
			return c
		}
		return d.nets[a].Addr().Compare(d.nets[b].Addr())
	})
	hot := map[int32]bool{}
	hotK, hotN, withSlow := 0, 0, 0
	for _, ni := range compared {
		g := gs[ni]
		if g.k > 0 {
			withSlow++
		}
		restN, restK := n-g.n, k-g.k
		restShare := 0.0
		if restN > 0 {
			restShare = float64(restK) / float64(restN)
		}
		share := float64(g.k) / float64(g.n)
		if g.k >= min(3, o.MinAffected) && share >= 0.25 && share >= 2*restShare {
			hot[ni] = true
			hotK += g.k
			hotN += g.n
		}
	}
	for _, ni := range compared {
		g := gs[ni]
		cg := ClientGroup{Net: d.nets[ni], Count: g.n, Slow: g.k, PathP50: p5090(g.paths).P50, SlowP50: p5090(g.slow).P50, Affected: hot[ni]}
		f.Clients = append(f.Clients, cg)
	}
	what := fmt.Sprintf("%d of %d exchanges (%s) had a slow path (round trip ≥%s, or a retransmission: %d): p50 round trip %s against %s on the others, %s more, %s.",
		k, n, pctText(k, n), durText(o.SlowNetwork), rtx, durText(pathSlow.P50), durText(pathRest.P50), durText(extra), leg)
	if pathRest.P50 < 0 {
		what = fmt.Sprintf("%d of %d exchanges (%s) had a slow path (round trip ≥%s, or a retransmission: %d): p50 round trip %s, p90 %s, %s.",
			k, n, pctText(k, n), durText(o.SlowNetwork), rtx, durText(pathSlow.P50), durText(pathSlow.P90), leg)
	}
	f.Detail = append(f.Detail, what)
	smallNote := ""
	if small > 0 {
		smallNote = fmt.Sprintf(" (%d more client networks have fewer than %d exchanges each, %d of them slow)", small, o.MinGroup, smallK)
	}
	switch {
	case len(compared) < 2:
		f.Kind = FindNetworkUnclear
		f.Headline = fmt.Sprintf("The path to %s (%s) is slow, but its clients cannot be compared.", sum.Server, sum.Proto)
		only := "No client network has"
		if len(compared) == 1 {
			only = fmt.Sprintf("Only one client network (%s) has", d.nets[compared[0]])
		}
		f.Detail = append(f.Detail, fmt.Sprintf("%s %d exchanges or more%s: the delay may be on the clients' side or the server's.", only, o.MinGroup, smallNote))
	case len(hot) > 0 && len(hot)*2 <= len(compared) && hotK*3 >= k*2:
		f.Kind = FindClientNetwork
		var names []string
		for _, ni := range compared {
			if hot[ni] {
				g := gs[ni]
				names = append(names, fmt.Sprintf("%s (%d of %d slow, p50 round trip %s)", d.nets[ni], g.k, g.n, durText(p5090(g.slow).P50)))
			}
		}
		f.Headline = fmt.Sprintf("Only some clients of %s (%s) see a slow network: their local networks.", sum.Server, sum.Proto)
		f.Detail = append(f.Detail,
			fmt.Sprintf("%d of %d client networks hold %d of the %d slow exchanges: %s.", len(hot), len(compared), hotK, k, strings.Join(names, "; ")),
			fmt.Sprintf("The other %d client networks are slow in %d of %d exchanges%s.", len(compared)-len(hot), k-hotK-smallK, n-hotN-smallTot, smallNote))
	case withSlow*4 >= len(compared)*3:
		f.Kind = FindServerNetwork
		lo, hi := int64(-1), int64(-1)
		for _, ni := range compared {
			g := gs[ni]
			if len(g.slow) == 0 {
				continue
			}
			p := p5090(g.slow).P50
			if lo < 0 || p < lo {
				lo = p
			}
			hi = max(hi, p)
		}
		f.Headline = fmt.Sprintf("Every client of %s (%s) shows the same extra network delay: the problem is on the server's side of the network (its hosting provider).", sum.Server, sum.Proto)
		f.Detail = append(f.Detail, fmt.Sprintf("%d of %d client networks with %d exchanges or more show it, the slow round trips' p50 from %s to %s in each%s.",
			withSlow, len(compared), o.MinGroup, durText(lo), durText(hi), smallNote))
	default:
		f.Kind = FindNetworkUnclear
		f.Headline = fmt.Sprintf("The path to %s (%s) is slow for some clients, without a clear pattern.", sum.Server, sum.Proto)
		f.Detail = append(f.Detail, fmt.Sprintf("%d of %d client networks show it, and no few of them hold most of it%s.", withSlow, len(compared), smallNote))
	}
	f.Numbers = map[string]int64{"slow": int64(k), "exchanges": int64(n), "retrans": int64(rtx), "path_slow_p50_ns": pathSlow.P50,
		"path_slow_p90_ns": pathSlow.P90, "path_other_p50_ns": pathRest.P50, "extra_p50_ns": extra,
		"client_networks": int64(len(compared)), "client_networks_slow": int64(withSlow), "client_networks_named": int64(len(hot))}
	f.Examples = examples(slow, "path_ns", (*dsample).path)
	return f
}

func (d *Diagnoser) tierFinding(sum *ServerSummary, tiers []*tsample, backends []BackendUse) Finding {
	o := d.opts
	f := Finding{Server: sum.Server, Proto: sum.Proto, Of: len(tiers), TierView: true, Backends: backends}
	// Judge the slow waits when there are enough of them: that is where
	// the time goes; else all.
	var slow []*tsample
	for _, t := range tiers {
		if t.wait >= o.SlowServer {
			slow = append(slow, t)
		}
	}
	judged, which := tiers, fmt.Sprintf("Over the %d requests with backend calls", len(tiers))
	if len(slow) >= o.MinAffected {
		judged = slow
		which = fmt.Sprintf("Over the %d of %d requests with backend calls that waited %s or more", len(slow), len(tiers), durText(o.SlowServer))
	}
	f.Count = len(judged)
	var wait, before, backend, after, between int64
	var waits, befores, backs, afters []int64
	for _, t := range judged {
		wait += t.wait
		before += t.before
		backend += min(t.backend, t.wait)
		after += t.after
		between += t.between()
		waits, befores, backs, afters = append(waits, t.wait), append(befores, t.before), append(backs, t.backend), append(afters, t.after)
	}
	f.Impact = wait
	share := func(x int64) int {
		if wait <= 0 {
			return 0
		}
		return int((200*x + wait) / (2 * wait))
	}
	pw, pb, pk, pa := p5090(waits), p5090(befores), p5090(backs), p5090(afters)
	sb, sk, sa, sx := share(before), share(backend), share(after), share(between)
	f.Detail = []string{fmt.Sprintf("%s (wait p50 %s, p90 %s): the backend calls take %d%% of the wait (p50 %s), the front end before its first call %d%% (p50 %s), after the last answer %d%% (p50 %s), between calls %d%%.",
		which, durText(pw.P50), durText(pw.P90), sk, durText(pk.P50), sb, durText(pb.P50), sa, durText(pa.P50), sx)}
	switch {
	case sk >= 50:
		f.Kind = FindTierBackend
		f.Headline = fmt.Sprintf("%s (%s) waits on its database: the backend calls take %d%% of its wait.", sum.Server, sum.Proto, sk)
		if len(backends) > 0 {
			f.Detail = append(f.Detail, fmt.Sprintf("Its calls go to %s; their own findings say whether the database or the path to it is slow.", backendList(backends)))
		}
	case sb >= 50:
		f.Kind = FindTierBefore
		f.Headline = fmt.Sprintf("%s (%s) waits before it calls the database: %d%% of its wait comes before the first backend call.", sum.Server, sum.Proto, sb)
	case sa >= 50:
		f.Kind = FindTierAfter
		f.Headline = fmt.Sprintf("%s (%s) spends its wait after the database answered: %d%% comes after the last backend call.", sum.Server, sum.Proto, sa)
	default:
		f.Kind = FindTierSpread
		f.Headline = fmt.Sprintf("%s (%s): no one part takes most of its wait (backend %d%%, before %d%%, after %d%%, between calls %d%%).", sum.Server, sum.Proto, sk, sb, sa, sx)
	}
	f.Numbers = map[string]int64{"requests": int64(len(judged)), "with_backend_calls": int64(len(tiers)), "wait_p50_ns": pw.P50, "wait_p90_ns": pw.P90,
		"backend_p50_ns": pk.P50, "before_p50_ns": pb.P50, "after_p50_ns": pa.P50,
		"backend_pct": int64(sk), "before_pct": int64(sb), "after_pct": int64(sa), "between_pct": int64(sx)}
	s := slices.Clone(judged)
	slices.SortStableFunc(s, func(a, b *tsample) int {
		if c := stdcmp.Compare(a.wait, b.wait); c != 0 {
			return c
		}
		return stdcmp.Compare(a.id, b.id)
	})
	top, mid := s[len(s)-1], s[(len(s)-1)/2]
	f.Examples = []Example{{ID: top.id, Role: "slowest", Metric: "wait_ns", Value: top.wait}}
	if mid != top {
		f.Examples = append(f.Examples, Example{ID: mid.id, Role: "median", Metric: "wait_ns", Value: mid.wait})
	}
	return f
}

// WriteDiagnosis writes d as text: a heading, the findings, the servers
// not judged, and how to drill down. dataDir, when set, makes the links
// command lines (tapvault ... --data dataDir); empty, API paths.
func WriteDiagnosis(w io.Writer, d *Diagnosis, dataDir string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Where the time goes")
	if d.Options.Server.IsZero() {
		b.WriteString(", all servers")
	} else {
		fmt.Fprintf(&b, ", server %s", d.Options.Server)
	}
	if d.From > 0 {
		fmt.Fprintf(&b, ", %s to %s", fmtTime(d.From), fmtTime(d.To))
	}
	servers := "servers"
	if len(d.Servers) == 1 {
		servers = "server"
	}
	fmt.Fprintf(&b, ": %d exchanges, %d with a time split, %d %s.\n", d.Exchanges, d.Split, len(d.Servers), servers)
	if sum := summaryLine(d.Findings); sum != "" {
		b.WriteString(sum)
	}
	if d.Sampled {
		fmt.Fprintf(&b, "(More exchanges than %d: the findings' counts, percentiles and examples come from a uniform sample of them; the totals above are exact.)\n", d.Options.MaxSamples)
	}
	for i, f := range d.Findings {
		fmt.Fprintf(&b, "\n%d. %s\n", i+1, f.Headline)
		for _, s := range f.Detail {
			fmt.Fprintf(&b, "   %s\n", s)
		}
		if len(f.Examples) > 0 {
			b.WriteString("   Exchanges:")
			for j, e := range f.Examples {
				if j > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, " %016x (%s, %s %s)", e.ID, e.Role, strings.TrimSuffix(e.Metric, "_ns"), durText(e.Value))
			}
			b.WriteString("\n")
		}
		if f.TierView {
			expr := "server " + f.Server
			if dataDir != "" {
				fmt.Fprintf(&b, "   Tier view: tapvault messages --data %s --tiers '%s'\n", dataDir, expr)
			} else {
				fmt.Fprintf(&b, "   Tier view: GET /api/v1/messages?tiers=true&expr=%s\n", strings.ReplaceAll(expr, " ", "+"))
			}
		}
	}
	if d.NotEnoughServers > 0 {
		fmt.Fprintf(&b, "\nNot enough data on %d more servers (%d exchanges in all): each has fewer than %d exchanges with a time split.\n",
			d.NotEnoughServers, d.NotEnoughExchanges, d.Options.MinCount)
	}
	if dataDir != "" {
		fmt.Fprintf(&b, "\nEach exchange: tapvault messages --data %s 'id ID'; its packets: tapvault query --data %s --message ID -w ID.pcap\n", dataDir, dataDir)
	} else {
		b.WriteString("\nEach exchange: GET /api/v1/messages?expr=id+ID; its packets: GET /api/v1/messages/ID/packets\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// summaryLine counts the findings by what they say, the largest first:
// "In short: 2 servers slow in the application, ...".
func summaryLine(fs []Finding) string {
	names := map[string][2]string{
		FindSlowServer:     {"server slow in the application", "servers slow in the application"},
		FindServerNetwork:  {"server with a slow network on its side", "servers with a slow network on their side"},
		FindClientNetwork:  {"server with some slow client networks", "servers with some slow client networks"},
		FindNetworkUnclear: {"server with a slow path that cannot be placed", "servers with a slow path that cannot be placed"},
		FindTierBackend:    {"front end waiting on its database", "front ends waiting on their databases"},
		FindTierBefore:     {"front end waiting before its database calls", "front ends waiting before their database calls"},
		FindTierAfter:      {"front end busy after its database calls", "front ends busy after their database calls"},
		FindTierSpread:     {"front end whose wait is spread", "front ends whose wait is spread"},
		FindHealthy:        {"healthy server", "healthy servers"},
		FindCantSplit:      {"server whose time cannot be split", "servers whose time cannot be split"},
	}
	n := map[string]int{}
	var order []string
	for _, f := range fs {
		if _, ok := names[f.Kind]; !ok {
			continue
		}
		if n[f.Kind] == 0 {
			order = append(order, f.Kind)
		}
		n[f.Kind]++
	}
	if len(order) == 0 {
		return ""
	}
	var parts []string
	for _, k := range order {
		i := 0
		if n[k] > 1 {
			i = 1
		}
		parts = append(parts, fmt.Sprintf("%d %s", n[k], names[k][i]))
	}
	return "In short: " + strings.Join(parts, ", ") + ".\n"
}

func fmtTime(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000Z") }

// The JSON form of a Diagnosis (docs/analytics.md, "Diagnose"): IDs as 16
// hex digits, times and durations in ns, -1 for an unknown figure.
type (
	diagJSON struct {
		FromNS             int64         `json:"from_ns"`
		ToNS               int64         `json:"to_ns"`
		Server             string        `json:"server,omitempty"`
		Exchanges          int           `json:"exchanges"`
		Split              int           `json:"split"`
		Sampled            bool          `json:"sampled"`
		SlowNetworkNS      int64         `json:"slow_network_ns"`
		SlowServerNS       int64         `json:"slow_server_ns"`
		MinCount           int           `json:"min_count"`
		Findings           []findingJSON `json:"findings"`
		Servers            []serverJSON  `json:"servers"`
		NotEnoughServers   int           `json:"not_enough_servers"`
		NotEnoughExchanges int           `json:"not_enough_exchanges"`
	}
	findingJSON struct {
		Kind     string           `json:"kind"`
		Server   string           `json:"server,omitempty"`
		Proto    string           `json:"proto,omitempty"`
		Text     string           `json:"text"`
		Detail   []string         `json:"detail"`
		Count    int              `json:"count"`
		Of       int              `json:"of"`
		ImpactNS int64            `json:"impact_ns"`
		Numbers  map[string]int64 `json:"numbers,omitempty"`
		Clients  []clientJSON     `json:"clients,omitempty"`
		Backends []BackendUse     `json:"backends,omitempty"`
		TierView string           `json:"tier_view,omitempty"`
		Examples []exampleJSON    `json:"examples"`
	}
	clientJSON struct {
		Net       string `json:"net"`
		Count     int    `json:"count"`
		Slow      int    `json:"slow"`
		PathP50NS int64  `json:"path_p50_ns"`
		SlowP50NS int64  `json:"slow_path_p50_ns"`
		Named     bool   `json:"named"`
	}
	exampleJSON struct {
		ID      string `json:"id"`
		Role    string `json:"role"`
		Metric  string `json:"metric"`
		ValueNS int64  `json:"value_ns"`
		Packets string `json:"packets"`
	}
	p5090JSON struct {
		P50 int64 `json:"p50"`
		P90 int64 `json:"p90"`
	}
	serverJSON struct {
		Server      string         `json:"server"`
		Proto       string         `json:"proto"`
		Exchanges   int            `json:"exchanges"`
		Answered    int            `json:"answered"`
		Split       int            `json:"split"`
		UDP         int            `json:"udp"`
		Fronts      int            `json:"fronts_with_backends"`
		Classes     map[string]int `json:"classes"`
		LatencyNS   p5090JSON      `json:"latency_ns"`
		NetworkNS   p5090JSON      `json:"network_ns"`
		ServerNS    p5090JSON      `json:"server_ns"`
		ClientNetNS p5090JSON      `json:"client_net_ns"`
		TransferNS  p5090JSON      `json:"transfer_ns"`
		Verdicts    []string       `json:"verdicts"`
	}
)

// AppendDiagnosisJSON appends d as one JSON object and a newline.
func AppendDiagnosisJSON(dst []byte, d *Diagnosis) []byte {
	j := diagJSON{
		FromNS: d.From, ToNS: d.To, Server: d.Options.Server.String(), Exchanges: d.Exchanges, Split: d.Split, Sampled: d.Sampled,
		SlowNetworkNS: d.Options.SlowNetwork, SlowServerNS: d.Options.SlowServer, MinCount: d.Options.MinCount,
		Findings: []findingJSON{}, Servers: []serverJSON{},
		NotEnoughServers: d.NotEnoughServers, NotEnoughExchanges: d.NotEnoughExchanges,
	}
	for _, f := range d.Findings {
		fj := findingJSON{Kind: f.Kind, Server: f.Server, Proto: f.Proto, Text: f.Headline, Detail: f.Detail, Count: f.Count, Of: f.Of,
			ImpactNS: f.Impact, Numbers: f.Numbers, Backends: f.Backends, Examples: []exampleJSON{}}
		if fj.Detail == nil {
			fj.Detail = []string{}
		}
		if f.TierView {
			fj.TierView = "/api/v1/messages?tiers=true&expr=server+" + f.Server
		}
		for _, c := range f.Clients {
			fj.Clients = append(fj.Clients, clientJSON{Net: c.Net.String(), Count: c.Count, Slow: c.Slow, PathP50NS: c.PathP50, SlowP50NS: c.SlowP50, Named: c.Affected})
		}
		for _, e := range f.Examples {
			id := fmt.Sprintf("%016x", e.ID)
			fj.Examples = append(fj.Examples, exampleJSON{ID: id, Role: e.Role, Metric: e.Metric, ValueNS: e.Value, Packets: "/api/v1/messages/" + id + "/packets"})
		}
		j.Findings = append(j.Findings, fj)
	}
	pj := func(p P5090) p5090JSON { return p5090JSON(p) }
	for _, s := range d.Servers {
		v := s.Verdicts
		if v == nil {
			v = []string{}
		}
		j.Servers = append(j.Servers, serverJSON{Server: s.Server, Proto: s.Proto, Exchanges: s.Exchanges, Answered: s.Answered, Split: s.Split,
			UDP: s.UDP, Fronts: s.Fronts, Classes: s.Classes, LatencyNS: pj(s.Latency), NetworkNS: pj(s.Network), ServerNS: pj(s.ServerTime),
			ClientNetNS: pj(s.ClientNet), TransferNS: pj(s.Transfer), Verdicts: v})
	}
	b, err := json.Marshal(j)
	if err != nil {
		panic("BUG: diagnosis JSON: " + err.Error())
	}
	dst = append(dst, b...)
	return append(dst, '\n')
}
