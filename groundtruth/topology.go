package groundtruth

import (
	"fmt"
	"os"
	"os/exec"
	"time"
)

// Addresses of the hosts. C, S and D share one Ethernet segment through the
// delay line and S's bridge; N sits behind S's NAT.
const (
	clientIP  = "10.11.0.1" // C
	serverIP  = "10.11.0.2" // S (br0)
	backendIP = "10.11.0.3" // D
	natGWIP   = "192.168.77.1"
	natSrvIP  = "192.168.77.2" // N

	httpPort     = "8080" // the sleeping HTTP server, in S and in N
	frontendPort = "8000" // the front end, in S
	natPort      = "8008" // S's public port for N's HTTP server
	dnsPort      = "53"
	redisPort    = "6379"
	pgPort       = "5432"
	mysqlPort    = "3306"
)

// Topology is the set of namespaces and links of one harness run.
//
//	C                M                                           S                    D
//	c0 ═══════ mc ─[stage 1]─ xa ═══ xb ─[stage 2]─ ms ═══════ su ┐
//	10.11.0.1       delay line   ▲ middle    delay line           br0 10.11.0.2 ─ sd ═══ d0 10.11.0.3
//	▲ client point               capture point                    ▲ server point
//	                                                           sn 192.168.77.1 ═══ n0 192.168.77.2  N
//
// Capture points: c0 in C (next to the client), xa in M (between the two
// stages), br0 in S (next to the servers: it sees S's own traffic, the
// front end's calls to D and the NAT's public side).
type Topology struct {
	C, M, S, D, N  string // namespace names
	Stage1, Stage2 *Link  // client side and server side of the delay line

	created []string
}

// Capture point names, in table order.
const (
	PointClient = "client"
	PointMiddle = "middle"
	PointServer = "server"
)

// Points are the capture points, in table order.
var Points = []string{PointClient, PointMiddle, PointServer}

// captureIface gives the namespace and interface of a capture point.
func (t *Topology) captureIface(point string) (ns, iface string) {
	switch point {
	case PointClient:
		return t.C, "c0"
	case PointMiddle:
		return t.M, "xa"
	case PointNAT:
		return t.N, "n0"
	default:
		return t.S, "br0"
	}
}

// NewTopology creates the namespaces, links, addresses and routes, and
// starts both stages of the delay line with no delay. On error it removes
// what it created.
func NewTopology() (*Topology, error) {
	RemoveStale()
	pid := os.Getpid()
	name := func(role string) string { return fmt.Sprintf("%s%d-%s", nsPrefix, pid, role) }
	t := &Topology{C: name("c"), M: name("m"), S: name("s"), D: name("d"), N: name("n")}
	if err := t.setup(); err != nil {
		t.Close()
		return nil, fmt.Errorf("topology: %w", err)
	}
	return t, nil
}

func (t *Topology) setup() error {
	for _, ns := range []string{t.C, t.M, t.S, t.D, t.N} {
		if err := run("ip", "netns", "add", ns); err != nil {
			return err
		}
		t.created = append(t.created, ns)
		// No IPv6 (router solicitations, MLD) in the captures; loopback up.
		if err := runNS(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
			return err
		}
		if err := run("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	veth := func(ns1, a, ns2, b string) error {
		return run("ip", "-n", ns1, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns2)
	}
	steps := []func() error{
		func() error { return veth(t.C, "c0", t.M, "mc") },
		func() error { return veth(t.M, "xa", t.M, "xb") },
		func() error { return veth(t.M, "ms", t.S, "su") },
		func() error { return veth(t.S, "sd", t.D, "d0") },
		func() error { return veth(t.S, "sn", t.N, "n0") },
		func() error {
			return run("ip", "-n", t.S, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
		},
		func() error { return run("ip", "-n", t.S, "link", "set", "su", "master", "br0") },
		func() error { return run("ip", "-n", t.S, "link", "set", "sd", "master", "br0") },
		func() error { return run("ip", "-n", t.C, "addr", "add", clientIP+"/24", "dev", "c0") },
		func() error { return run("ip", "-n", t.S, "addr", "add", serverIP+"/24", "dev", "br0") },
		func() error { return run("ip", "-n", t.D, "addr", "add", backendIP+"/24", "dev", "d0") },
		func() error { return run("ip", "-n", t.S, "addr", "add", natGWIP+"/24", "dev", "sn") },
		func() error { return run("ip", "-n", t.N, "addr", "add", natSrvIP+"/24", "dev", "n0") },
		func() error { return runNS(t.S, "sysctl", "-qw", "net.ipv4.ip_forward=1") },
		// With br_netfilter loaded, frames bridged into br0 meet the NAT
		// before br0's packet taps, so the server point would see the
		// request after DNAT and the response before it undoes it: two
		// half connections. Off, br0 sees the public side both ways.
		func() error {
			if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
				return nil // br_netfilter not loaded: nothing to turn off
			}
			return runNS(t.S, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0")
		},
		// The NAT case: S's public port natPort leads to N's HTTP server,
		// and N sees S's address as the client (MASQUERADE).
		func() error {
			return runNS(t.S, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", serverIP, "-p", "tcp", "--dport", natPort,
				"-j", "DNAT", "--to-destination", natSrvIP+":"+httpPort)
		},
		func() error {
			return runNS(t.S, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "sn", "-j", "MASQUERADE")
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	links := map[string][]string{
		t.C: {"c0"}, t.M: {"mc", "xa", "xb", "ms"}, t.S: {"su", "sd", "sn", "br0"}, t.D: {"d0"}, t.N: {"n0"},
	}
	for ns, devs := range links {
		for _, dev := range devs {
			// Offloads off: TSO/GSO would hand the captures and the delay
			// line 64 KiB frames, and checksum offload would leave partial
			// checksums in frames the delay line forwards.
			if err := runNS(ns, "ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off"); err != nil {
				return err
			}
			if err := run("ip", "-n", ns, "link", "set", dev, "up"); err != nil {
				return err
			}
		}
	}
	if err := run("ip", "-n", t.N, "route", "add", "default", "via", natGWIP); err != nil {
		return err
	}
	var err error
	if t.Stage1, err = NewLink(t.M, "mc", "xa", LinkConfig{}); err != nil {
		return err
	}
	if t.Stage2, err = NewLink(t.M, "xb", "ms", LinkConfig{}); err != nil {
		return err
	}
	// The path works: C reaches S through the delay line, S reaches D and N.
	for _, p := range [][2]string{{t.C, serverIP}, {t.S, backendIP}, {t.S, natSrvIP}} {
		if out, err := exec.Command("ip", "netns", "exec", p[0], "ping", "-c", "1", "-W", "2", p[1]).CombinedOutput(); err != nil {
			return fmt.Errorf("ping %s from %s: %w: %s", p[1], p[0], err, tail(out))
		}
	}
	return nil
}

// SetPath sets the one-way delay of each stage (client side, server side),
// the same in both directions, with jitter, and an optional drop of the
// Nth client→server data segment on the server-side stage. Statistics are
// cleared.
func (t *Topology) SetPath(stage1, stage2, jitter time.Duration, dropNth int) {
	t.Stage1.Reset(LinkConfig{AB: stage1, BA: stage1, Jitter: jitter})
	t.Stage2.Reset(LinkConfig{AB: stage2, BA: stage2, Jitter: jitter, DropAB: dropNth})
}

// Close stops the delay line and deletes the namespaces, which kills every
// process left in them and removes their interfaces.
func (t *Topology) Close() error {
	for _, l := range []*Link{t.Stage1, t.Stage2} {
		if l != nil {
			l.Close()
		}
	}
	var first error
	for i := len(t.created) - 1; i >= 0; i-- {
		if err := deleteNS(t.created[i]); err != nil && first == nil {
			first = err
		}
	}
	t.created = nil
	return first
}
