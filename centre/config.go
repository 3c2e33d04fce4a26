package centre

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"tapvault/fleet"
	"tapvault/probe"
)

// Config is fleet.yaml (docs/fleet.md, "The centre"):
//
//	listen: 127.0.0.1:8090          # optional; --listen overrides
//	clickhouse:
//	  url: http://127.0.0.1:8123
//	  database: tapvault
//	tls:                            # the centre's certificate, from tapvault fleet enroll
//	  cert: /etc/tapvault/fleet/centre.crt
//	  key:  /etc/tapvault/fleet/centre.key
//	  ca:   /etc/tapvault/fleet/ca.crt
//	  crl:  /etc/tapvault/fleet/crl.pem  # optional: tapvault fleet revoke's list
//	sensors:                        # name (as enrolled) -> its fleet port
//	  sensor-a: 10.0.1.7:9443
//	  sensor-b: 10.0.2.7:9443
//	probe_interval: 5s              # optional
//	probe_timeout: 2s               # optional
//	locations:                      # optional: where sensors stand, what they probe
//	  paris:                        # (docs/probes.md; each sensor reads its part)
//	    sensors: [sensor-a]
//	    allow: [10.20.0.0/16]
//	    probes: [{name: web, kind: http, target: "http://10.20.0.5/"}]
//
// Relative paths are read from the file's directory.
type Config struct {
	Listen     string `yaml:"listen"`
	ClickHouse struct {
		URL      string `yaml:"url"`
		Database string `yaml:"database"`
	} `yaml:"clickhouse"`
	TLS struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
		CA   string `yaml:"ca"`
		// CRL is the fleet CA's revocation list (optional): a sensor
		// whose certificate it revokes is refused in the handshake.
		CRL string `yaml:"crl"`
	} `yaml:"tls"`
	Sensors map[string]string `yaml:"sensors"`
	// Locations says where the sensors stand and what each location
	// probes (docs/probes.md, "In the fleet configuration"): the sensors
	// read their part of this file (capture --probes fleet.yaml --sensor
	// NAME); the centre checks it.
	LocationsYAML yaml.Node                 `yaml:"locations"`
	Locations     map[string]probe.Location `yaml:"-"`
	ProbeInterval time.Duration             `yaml:"probe_interval"`
	ProbeTimeout  time.Duration             `yaml:"probe_timeout"`
}

// Defaults.
const (
	DefaultAddr          = "127.0.0.1:8090"
	DefaultDatabase      = "tapvault"
	DefaultProbeInterval = 5 * time.Second
	DefaultProbeTimeout  = 2 * time.Second
)

// dbNameRE keeps the database name a plain identifier: it is written into
// every statement.
var dbNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`) })

// LoadConfig reads and checks fleet.yaml. Unknown keys are errors: a typo
// must not silently drop a sensor or the TLS settings.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet config: %w", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("fleet config %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&c.TLS.Cert, &c.TLS.Key, &c.TLS.CA, &c.TLS.CRL} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("fleet config %s: %w", path, err)
	}
	return &c, nil
}

// check fills defaults and refuses what cannot work.
func (c *Config) check() error {
	if c.ClickHouse.URL == "" {
		return errors.New("clickhouse.url is required (the HTTP interface, e.g. http://127.0.0.1:8123)")
	}
	if c.ClickHouse.Database == "" {
		c.ClickHouse.Database = DefaultDatabase
	}
	if !dbNameRE().MatchString(c.ClickHouse.Database) {
		return fmt.Errorf("clickhouse.database %q: want a plain name (letters, digits, _)", c.ClickHouse.Database)
	}
	if c.TLS.Cert == "" || c.TLS.Key == "" || c.TLS.CA == "" {
		return errors.New("tls.cert, tls.key and tls.ca are required: the centre reaches sensors only over mutual TLS (tapvault fleet enroll --name centre issues them)")
	}
	if len(c.Sensors) == 0 {
		return errors.New("sensors: none listed (name: host:port of its --fleet-listen)")
	}
	for name, addr := range c.Sensors {
		if err := fleet.CheckName(name); err != nil {
			return fmt.Errorf("sensors: %w", err)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("sensors: %s: address %q: want host:port", name, addr)
		}
	}
	if !c.LocationsYAML.IsZero() {
		locs, err := probe.DecodeLocations(&c.LocationsYAML)
		if err != nil {
			return err
		}
		where := map[string]string{}
		for _, name := range slices.Sorted(maps.Keys(locs)) {
			for _, s := range locs[name].Sensors {
				if _, ok := c.Sensors[s]; !ok {
					return fmt.Errorf("locations: %s: sensor %q is not among the sensors", name, s)
				}
				if w, ok := where[s]; ok {
					return fmt.Errorf("locations: sensor %q is in two locations (%s, %s): a sensor stands in one place", s, w, name)
				}
				where[s] = name
			}
		}
		c.Locations = locs
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.ProbeInterval < 100*time.Millisecond || c.ProbeTimeout <= 0 || c.ProbeTimeout > c.ProbeInterval {
		return fmt.Errorf("probe_interval %s, probe_timeout %s: want an interval of at least 100ms and a timeout above 0 and not above the interval", c.ProbeInterval, c.ProbeTimeout)
	}
	return nil
}

// sensorNames returns the configured names, sorted.
func (c *Config) sensorNames() []string { return slices.Sorted(maps.Keys(c.Sensors)) }
