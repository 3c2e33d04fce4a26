package probe

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sample is one probe exchange as the sensor at its location recorded it.
type Sample struct {
	Location string
	ID       uint64
	// Network is the exchange's network round trip from the sensor (on the
	// probing host: the whole path to the server); Server the server's own
	// time. Negative: unknown.
	Network, Server int64
}

// VerdictOptions set what counts as slow; zero values take the analytics'
// defaults (analytics.DefaultConfig's SlowNetwork and SlowServer).
type VerdictOptions struct {
	SlowNetwork, SlowServer time.Duration
	// MinSamples is the fewest exchanges a location needs to be judged
	// (default 5); fewer, and it is listed as not judged.
	MinSamples int
}

// LocationStats is one location's probe exchanges.
type LocationStats struct {
	Location string `json:"location"`
	N        int    `json:"exchanges"`
	NetP50   int64  `json:"network_p50_ns"`
	NetP90   int64  `json:"network_p90_ns"`
	SrvP50   int64  `json:"server_p50_ns"`
	SlowNet  bool   `json:"slow_network"`
	SlowSrv  bool   `json:"slow_server"`
	Judged   bool   `json:"judged"`
	// Worst are the IDs of the location's slowest exchanges by network
	// time (up to 5): the drill-down behind the figure; WorstIDs the same
	// as 16 hex digits, as record IDs are written everywhere else.
	Worst    []uint64 `json:"-"`
	WorstIDs []string `json:"slowest"`
}

// Blame values.
const (
	BlameNone     = "none"     // no location sees a slow network
	BlameProvider = "provider" // every location sees it
	BlameNetworks = "networks" // only some locations: their networks
	BlameUnknown  = "unknown"  // too few exchanges to judge
)

// Verdict is the diagnosis across locations.
type Verdict struct {
	Locations []LocationStats `json:"locations"`
	Blame     string          `json:"blame"`
	Slow      []string        `json:"slow"` // the locations with a slow network
	// ServiceSlow: the server's own time is slow from every location
	// judged (the service, whatever the network).
	ServiceSlow bool   `json:"service_slow"`
	Text        string `json:"text"`
}

// Decide compares the locations' network times. A location's network is
// slow when the median round trip of its probe exchanges reaches
// SlowNetwork: slow from every judged location means the provider (the
// path they share, next to the service); from some only, those locations'
// networks.
func Decide(samples []Sample, o VerdictOptions) Verdict {
	if o.SlowNetwork <= 0 {
		o.SlowNetwork = 20 * time.Millisecond
	}
	if o.SlowServer <= 0 {
		o.SlowServer = 10 * time.Millisecond
	}
	if o.MinSamples <= 0 {
		o.MinSamples = 5
	}
	by := map[string][]Sample{}
	for _, s := range samples {
		by[s.Location] = append(by[s.Location], s)
	}
	var v Verdict
	judged, srvSlow := 0, 0
	for loc, ss := range by {
		ls := LocationStats{Location: loc, N: len(ss)}
		var net, srv []int64
		for _, s := range ss {
			if s.Network >= 0 {
				net = append(net, s.Network)
			}
			if s.Server >= 0 {
				srv = append(srv, s.Server)
			}
		}
		slices.SortFunc(ss, func(a, b Sample) int { return cmpInt(b.Network, a.Network) })
		for i := 0; i < len(ss) && i < 5; i++ {
			ls.Worst = append(ls.Worst, ss[i].ID)
			ls.WorstIDs = append(ls.WorstIDs, fmt.Sprintf("%016x", ss[i].ID))
		}
		ls.NetP50, ls.NetP90 = quantile(net, 0.5), quantile(net, 0.9)
		ls.SrvP50 = quantile(srv, 0.5)
		if len(net) >= o.MinSamples {
			ls.Judged = true
			judged++
			ls.SlowNet = ls.NetP50 >= o.SlowNetwork.Nanoseconds()
			if ls.SlowNet {
				v.Slow = append(v.Slow, loc)
			}
			if len(srv) >= o.MinSamples && ls.SrvP50 >= o.SlowServer.Nanoseconds() {
				ls.SlowSrv = true
				srvSlow++
			}
		}
		v.Locations = append(v.Locations, ls)
	}
	slices.SortFunc(v.Locations, func(a, b LocationStats) int { return strings.Compare(a.Location, b.Location) })
	slices.Sort(v.Slow)
	v.ServiceSlow = judged > 0 && srvSlow == judged
	ms := func(ns int64) string { return fmt.Sprintf("%.1f ms", float64(ns)/1e6) }
	var parts []string
	for _, l := range v.Locations {
		if l.Judged {
			parts = append(parts, fmt.Sprintf("%s %s", l.Location, ms(l.NetP50)))
		}
	}
	nets := strings.Join(parts, ", ")
	switch {
	case judged == 0:
		v.Blame = BlameUnknown
		v.Text = fmt.Sprintf("too few probe exchanges to judge (need %d per location)", o.MinSamples)
	case len(v.Slow) == 0:
		v.Blame = BlameNone
		v.Text = fmt.Sprintf("no location sees a slow network (median round trip %s; slow from %s)", nets, ms(o.SlowNetwork.Nanoseconds()))
	case len(v.Slow) == judged && judged > 1:
		v.Blame = BlameProvider
		v.Text = fmt.Sprintf("slow from every location (%s): the provider, or the path all of them share to the service", nets)
	case len(v.Slow) == judged:
		v.Blame = BlameUnknown
		v.Text = fmt.Sprintf("slow from the only location judged (%s): probe from another location to tell its network from the provider's", nets)
	default:
		v.Blame = BlameNetworks
		v.Text = fmt.Sprintf("slow from %s only (%s): their networks, not the provider", strings.Join(v.Slow, ", "), nets)
	}
	if v.ServiceSlow {
		v.Text += fmt.Sprintf("; the service itself is slow from every location (server time ≥ %s)", ms(o.SlowServer.Nanoseconds()))
	}
	return v
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// quantile of v (sorted in place); -1 for none.
func quantile(v []int64, q float64) int64 {
	if len(v) == 0 {
		return -1
	}
	slices.Sort(v)
	return v[int(q*float64(len(v)-1)+0.5)]
}
