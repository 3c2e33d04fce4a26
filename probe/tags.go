package probe

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"tapvault/analytics"
)

// Field keys a probe's records carry (analytics.TagFields lists them for
// the message filters).
const (
	FieldProbe    = "probe"
	FieldLocation = "location"
)

// tagKeep is how long a connection's tag outlives the probe that opened it:
// its records are emitted when the exchange completes and its tcp record
// seconds after the connection closes (the flow table keeps a closed
// connection 5 s), later still behind a backlog.
const tagKeep = 2 * time.Minute

// Tags maps the connections probes opened to their probe, for the capture
// to tag the records they produce (Tag). Safe for concurrent use.
type Tags struct {
	mu       sync.Mutex
	location string
	m        map[[2]netip.AddrPort]tag
	now      func() time.Time
	swept    time.Time
}

type tag struct {
	probe   string
	expires time.Time
}

// NewTags returns an empty table for a sensor at location.
func NewTags(location string) *Tags {
	return &Tags{location: location, m: map[[2]netip.AddrPort]tag{}, now: time.Now}
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	switch x := a.(type) {
	case *net.TCPAddr:
		ap = x.AddrPort()
	case *net.UDPAddr:
		ap = x.AddrPort()
	default:
		return ap, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// add registers a connection of probe: local is the client's end.
func (t *Tags) add(probe string, local, remote net.Addr) {
	l, ok1 := addrPort(local)
	r, ok2 := addrPort(remote)
	if !ok1 || !ok2 {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[[2]netip.AddrPort{l, r}] = tag{probe: probe, expires: now.Add(tagKeep)}
	if now.Sub(t.swept) > tagKeep {
		for k, v := range t.m {
			if now.After(v.expires) {
				delete(t.m, k)
			}
		}
		t.swept = now
	}
}

// refresh keeps a connection's tag for tagKeep from now (a probe's
// connection closes after its exchange).
func (t *Tags) refresh(local, remote net.Addr) {
	l, ok1 := addrPort(local)
	r, ok2 := addrPort(remote)
	if !ok1 || !ok2 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := [2]netip.AddrPort{l, r}
	if v, ok := t.m[k]; ok {
		v.expires = t.now().Add(tagKeep)
		t.m[k] = v
	}
}

// Len is the number of connections registered.
func (t *Tags) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// Tag adds the probe and location fields to r when a probe opened its
// connection. The record's ID does not change (analytics.Record.SetID
// covers the packets, not the fields).
func (t *Tags) Tag(r *analytics.Record) {
	k := [2]netip.AddrPort{
		netip.AddrPortFrom(r.Client.Addr().Unmap(), r.Client.Port()),
		netip.AddrPortFrom(r.Server.Addr().Unmap(), r.Server.Port()),
	}
	t.mu.Lock()
	v, ok := t.m[k]
	t.mu.Unlock()
	if !ok {
		return
	}
	r.Fields = append(r.Fields,
		analytics.Field{Key: FieldProbe, Str: v.probe},
		analytics.Field{Key: FieldLocation, Str: t.location})
}
