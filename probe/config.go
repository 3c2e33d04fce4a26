// Package probe runs synthetic requests against a service from a sensor
// while it captures (issue 16 §3): an HTTP(S) GET, a DNS query, a TCP
// connect, a Redis PING, a PostgreSQL or MySQL SELECT 1. Each probe's
// connections are registered (Tags) so that the capture tags the exchange
// records they produce with the probe's name and the sensor's location:
// a probe is an ordinary exchange, with its packets, that says where it
// came from.
//
// A probe is traffic the operator sends on purpose, so it goes only where
// the configuration allows: every target address must be inside the
// allow-list (loopback only by default), checked when the configuration is
// loaded and again on every connection, against the address actually
// dialled (a name that resolves elsewhere later is refused then).
//
// It must not: send anything before the configuration is checked, follow
// an HTTP redirect off the allow-list, or keep response bodies (only their
// size).
package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Kinds of probe.
const (
	KindHTTP     = "http" // GET of an http:// or https:// URL
	KindDNS      = "dns"  // an A query for Query to the server Target (host:port, default port 53)
	KindTCP      = "tcp"  // a TCP connect to Target (host:port), then close
	KindRedis    = "redis"
	KindPostgres = "postgres" // SELECT 1; Target is a postgres:// URL
	KindMySQL    = "mysql"    // SELECT 1; Target is user:pass@tcp(host:port)/db
)

var kinds = []string{KindHTTP, KindDNS, KindTCP, KindRedis, KindPostgres, KindMySQL}

// Spec is one configured probe.
type Spec struct {
	Name     string        `yaml:"name"`
	Kind     string        `yaml:"kind"`
	Target   string        `yaml:"target"`
	Query    string        `yaml:"query"`    // dns: the name to look up
	Every    time.Duration `yaml:"every"`    // default 10 s
	Timeout  time.Duration `yaml:"timeout"`  // default 5 s
	Insecure bool          `yaml:"insecure"` // https: do not verify the certificate
}

// Config is a sensor's probes and where they may go.
type Config struct {
	// Location names where this sensor is ("eu-west", "office-3"): the
	// verdict across locations compares them.
	Location string `yaml:"location"`
	// Allow lists the networks probes may reach (CIDR). Empty: loopback
	// only (127.0.0.0/8, ::1).
	Allow  []string `yaml:"allow"`
	Probes []Spec   `yaml:"probes"`

	allow []netip.Prefix
}

// Default values.
const (
	DefaultEvery   = 10 * time.Second
	DefaultTimeout = 5 * time.Second
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Load reads and checks a probe configuration (YAML). An unknown key is an
// error naming it.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.Check(context.Background()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// Check validates c and fills its defaults. It resolves every target's
// host and refuses one with an address outside the allow-list.
func (c *Config) Check(ctx context.Context) error { return c.check(ctx, true) }

// CheckStatic validates c as Check does but resolves no name: what a
// configuration checked away from the sensor (the fleet centre's) can say.
// An address literal is still held to the allow-list.
func (c *Config) CheckStatic() error { return c.check(context.Background(), false) }

func (c *Config) check(ctx context.Context, resolve bool) error {
	if c.Location == "" {
		return errors.New("probes: location is required (where this sensor is: the verdict across locations compares them)")
	}
	c.allow = nil
	for _, s := range c.Allow {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, err2 := netip.ParseAddr(s); err2 == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return fmt.Errorf("probes: allow %q: not a CIDR prefix or address", s)
			}
		}
		c.allow = append(c.allow, p.Masked())
	}
	if len(c.allow) == 0 {
		c.allow = loopback
	}
	names := map[string]bool{}
	for i := range c.Probes {
		s := &c.Probes[i]
		if s.Name == "" {
			return fmt.Errorf("probes: probe %d has no name", i+1)
		}
		if names[s.Name] {
			return fmt.Errorf("probes: two probes are named %q", s.Name)
		}
		names[s.Name] = true
		if !contains(kinds, s.Kind) {
			return fmt.Errorf("probe %s: kind %q: want one of %s", s.Name, s.Kind, strings.Join(kinds, ", "))
		}
		if s.Every == 0 {
			s.Every = DefaultEvery
		}
		if s.Timeout == 0 {
			s.Timeout = DefaultTimeout
		}
		if s.Every < 100*time.Millisecond || s.Timeout < 0 {
			return fmt.Errorf("probe %s: every must be at least 100ms and timeout positive", s.Name)
		}
		if s.Kind == KindDNS && s.Query == "" {
			return fmt.Errorf("probe %s: a dns probe needs query: the name to look up", s.Name)
		}
		host, err := s.host()
		if err != nil {
			return fmt.Errorf("probe %s: %w", s.Name, err)
		}
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{a}
		} else if resolve {
			if addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
				return fmt.Errorf("probe %s: resolve %q: %w", s.Name, host, err)
			}
		}
		for _, a := range addrs {
			if !c.Allowed(a) {
				return fmt.Errorf("probe %s: target %s (%s) is outside the allow-list %s: a probe is traffic, and where it goes must be allowed (add the network to allow:)", s.Name, host, a.Unmap(), c.allowString())
			}
		}
	}
	return nil
}

// Location is one location of the fleet configuration's locations:
// section (docs/probes.md, "In the fleet configuration"): the sensors that
// stand there and what they probe from there.
type Location struct {
	Sensors []string `yaml:"sensors"`
	Allow   []string `yaml:"allow"`
	Probes  []Spec   `yaml:"probes"`
}

// Config returns the probe configuration of a sensor at location name.
func (l *Location) Config(name string) *Config {
	return &Config{Location: name, Allow: l.Allow, Probes: slices.Clone(l.Probes)}
}

// LoadFor reads a probe configuration for the sensor named sensor. The
// file is either a sensor's own (location:, allow:, probes:), read as
// Load reads it, or the fleet configuration (fleet.yaml), whose
// locations: section lists each location's sensors and probes: the
// sensor's location is the one that lists it. In the fleet form only
// locations: is read (the rest is the centre's), strictly.
func LoadFor(path, sensor string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	locs := mappingValue(&root, "locations")
	if locs == nil {
		return Load(path)
	}
	all, err := DecodeLocations(locs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if sensor == "" {
		return nil, fmt.Errorf("%s: a fleet configuration: give the sensor's name (--sensor) to pick its location", path)
	}
	var found []string
	for _, name := range slices.Sorted(maps.Keys(all)) {
		if slices.Contains(all[name].Sensors, sensor) {
			found = append(found, name)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s: sensor %q is in none of the locations (%s): add it to the sensors of one", path, sensor, strings.Join(slices.Sorted(maps.Keys(all)), ", "))
	case 1:
	default:
		return nil, fmt.Errorf("%s: sensor %q is in two locations (%s): a sensor stands in one place", path, sensor, strings.Join(found, ", "))
	}
	l := all[found[0]]
	c := l.Config(found[0])
	if err := c.Check(context.Background()); err != nil {
		return nil, fmt.Errorf("%s: location %s: %w", path, found[0], err)
	}
	return c, nil
}

// DecodeLocations decodes a locations: mapping strictly (an unknown key is
// an error naming it) and checks each location without resolving names
// (CheckStatic): sensors resolve their own targets when they load it.
func DecodeLocations(n *yaml.Node) (map[string]Location, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("locations: line %d: want a mapping of location names", n.Line)
	}
	out := map[string]Location{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name := n.Content[i].Value
		// Marshalled alone, the location must carry what its aliases
		// point to (probes: *common shares one list between locations).
		b, err := yaml.Marshal(unalias(n.Content[i+1]))
		if err != nil {
			return nil, fmt.Errorf("locations: %s: %w", name, err)
		}
		var l Location
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&l); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("locations: %s (line %d): %w", name, n.Content[i].Line, err)
		}
		if len(l.Sensors) == 0 {
			return nil, fmt.Errorf("locations: %s: no sensors: list the sensors that stand there", name)
		}
		if err := l.Config(name).CheckStatic(); err != nil {
			return nil, fmt.Errorf("locations: %s: %w", name, err)
		}
		out[name] = l
	}
	return out, nil
}

// unalias returns a copy of n with every alias replaced by what it names,
// to a depth of 64 (an alias inside its own anchor would never end; what
// is left deeper fails to decode).
func unalias(n *yaml.Node) *yaml.Node { return unaliasDepth(n, 64) }

func unaliasDepth(n *yaml.Node, depth int) *yaml.Node {
	if depth == 0 {
		return n
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	c := *n
	c.Anchor = ""
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = unaliasDepth(k, depth-1)
	}
	return &c
}

// mappingValue returns the value of key in a document's top-level mapping.
func mappingValue(doc *yaml.Node, key string) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Allowed reports whether a is inside the allow-list.
func (c *Config) Allowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (c *Config) allowString() string {
	s := make([]string, len(c.allow))
	for i, p := range c.allow {
		s[i] = p.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

// host returns the host part of the spec's target.
func (s *Spec) host() (string, error) {
	switch s.Kind {
	case KindHTTP:
		u, err := url.Parse(s.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("target %q: want an http:// or https:// URL", s.Target)
		}
		return u.Hostname(), nil
	case KindPostgres:
		u, err := url.Parse(s.Target)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			return "", fmt.Errorf("target %q: want a postgres://user:password@host:port/db URL", s.Target)
		}
		return u.Hostname(), nil
	case KindMySQL:
		// user:pass@tcp(host:port)/db
		i, j := strings.Index(s.Target, "tcp("), strings.LastIndex(s.Target, ")")
		if i < 0 || j < i {
			return "", fmt.Errorf("target %q: want user:password@tcp(host:port)/db", s.Target)
		}
		h, _, err := net.SplitHostPort(s.Target[i+4 : j])
		return h, err
	default:
		h, _, err := net.SplitHostPort(s.hostPort())
		if err != nil {
			return "", fmt.Errorf("target %q: want host:port", s.Target)
		}
		return h, nil
	}
}

// hostPort is a dns, tcp or redis target with its default port.
func (s *Spec) hostPort() string {
	if _, _, err := net.SplitHostPort(s.Target); err == nil {
		return s.Target
	}
	switch s.Kind {
	case KindDNS:
		return net.JoinHostPort(s.Target, "53")
	case KindRedis:
		return net.JoinHostPort(s.Target, "6379")
	}
	return s.Target
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
