package probe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fleetYAML = `# the centre's keys, which the probes ignore
clickhouse: {url: http://127.0.0.1:8123}
sensors: {s-paris: 10.0.1.7:9443, s-lagos: 10.0.2.7:9443, s-osaka: 10.0.3.7:9443}
common: &common
  - {name: web, kind: http, target: "http://10.20.0.5:8080/health", every: 2s}
  - {name: cache, kind: redis, target: "10.20.0.6"}
locations:
  paris:
    sensors: [s-paris]
    allow: [10.20.0.0/16]
    probes: *common
  lagos:
    sensors: [s-lagos, s-lagos-2]
    allow: [10.20.0.0/16]
    probes: *common
  osaka:
    sensors: [s-osaka]
    probes: [{name: local, kind: tcp, target: "127.0.0.1:9"}]
`

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A sensor takes its location's probes from the fleet configuration; lists
// shared through a YAML anchor arrive whole.
func TestLoadForFleetLocations(t *testing.T) {
	p := writeFile(t, fleetYAML)
	for _, c := range []struct {
		sensor, loc string
		probes      []string
	}{{"s-paris", "paris", []string{"web", "cache"}}, {"s-lagos-2", "lagos", []string{"web", "cache"}}, {"s-osaka", "osaka", []string{"local"}}} {
		cfg, err := LoadFor(p, c.sensor)
		if err != nil {
			t.Fatalf("%s: %v", c.sensor, err)
		}
		var names []string
		for _, s := range cfg.Probes {
			names = append(names, s.Name)
		}
		if cfg.Location != c.loc || strings.Join(names, ",") != strings.Join(c.probes, ",") {
			t.Errorf("%s: got location %q probes %v, want %q %v", c.sensor, cfg.Location, names, c.loc, c.probes)
		}
		if c.loc == "paris" && (cfg.Probes[0].Every.String() != "2s" || cfg.Probes[1].hostPort() != "10.20.0.6:6379") {
			t.Errorf("paris: got %+v, want the anchor's values with defaults filled", cfg.Probes)
		}
	}
	// A sensor's own file still loads as before, whatever --sensor says.
	own := writeFile(t, "location: here\nprobes:\n  - {name: x, kind: tcp, target: \"127.0.0.1:9\"}\n")
	if cfg, err := LoadFor(own, "anything"); err != nil || cfg.Location != "here" {
		t.Fatalf("own file: got %+v, %v", cfg, err)
	}
}

func TestLoadForFleetErrors(t *testing.T) {
	p := writeFile(t, fleetYAML)
	for _, c := range []struct{ file, sensor, want string }{
		{p, "s-nowhere", `sensor "s-nowhere" is in none of the locations (lagos, osaka, paris)`},
		{p, "", "give the sensor's name (--sensor)"},
		{writeFile(t, strings.Replace(fleetYAML, "sensors: [s-osaka]", "sensors: [s-osaka, s-paris]", 1)), "s-paris", `sensor "s-paris" is in two locations (osaka, paris)`},
		{writeFile(t, strings.Replace(fleetYAML, "    allow: [10.20.0.0/16]\n    probes: *common\n  lagos", "    probes: *common\n  lagos", 1)), "s-osaka", "locations: paris: probe web: target 10.20.0.5 (10.20.0.5) is outside the allow-list"},
		{writeFile(t, strings.Replace(fleetYAML, "sensors: [s-osaka]", "sensor: [s-osaka]", 1)), "s-paris", "field sensor not found"},
		{writeFile(t, strings.Replace(fleetYAML, "sensors: [s-osaka]\n", "", 1)), "s-paris", "locations: osaka: no sensors"},
		{writeFile(t, "locations: [paris]\n"), "s-paris", "want a mapping of location names"},
	} {
		_, err := LoadFor(c.file, c.sensor)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("sensor %q: got %v, want an error containing %q", c.sensor, err, c.want)
		}
	}
}
