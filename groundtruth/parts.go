package groundtruth

import "time"

// Class is the harness's own name for a verdict, independent of how the
// analytics spell it.
type Class string

const (
	Healthy    Class = "healthy"
	SlowNet    Class = "slow_net"
	SlowApp    Class = "slow_app"
	CantTell   Class = "cant_tell"
	NoResponse Class = "no_response"
	NoRequest  Class = "no_request"
	OtherClass Class = "other"
)

// Measured is what a record says about one exchange, in the harness's
// terms. Unknown parts are negative.
type Measured struct {
	Network, Server, Transfer time.Duration
	Class                     Class
	RawClass                  string // the record's own class name
	// Tier split of a front exchange (negative: not linked).
	TierBefore, TierBackend, TierAfter time.Duration
}

// Parts maps a record's JSON (docs/messages.md) to the harness's network
// part, server part and class. It is the one place that knows the
// breakdown's field and class names: when the analytics rename them, change
// this function only.
func Parts(r Record) Measured {
	ns := func(key string) time.Duration {
		v, ok := r.Int(key)
		if !ok || v < 0 {
			return -1
		}
		return time.Duration(v)
	}
	m := Measured{
		Network:     ns("network_ns"),
		Server:      ns("server_ns"),
		Transfer:    ns("transfer_ns"),
		RawClass:    r.Str("class"),
		TierBefore:  ns("tier_before_ns"),
		TierBackend: ns("tier_backend_ns"),
		TierAfter:   ns("tier_after_ns"),
	}
	switch m.RawClass {
	case "fast", "healthy":
		m.Class = Healthy
	case "slow_net", "slow_network":
		m.Class = SlowNet
	case "slow_app", "slow_application":
		m.Class = SlowApp
	case "udp", "unknown", "cant_tell":
		m.Class = CantTell
	case "no_response":
		m.Class = NoResponse
	case "no_request":
		m.Class = NoRequest
	default:
		m.Class = OtherClass
	}
	return m
}
