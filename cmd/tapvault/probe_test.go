package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A probe target outside the allow-list is refused before anything is
// sent, with an error that says why and what to do; one inside runs.
func TestProbeAllowList(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte("location: lab\nprobes:\n  - name: web\n    kind: http\n    target: http://198.51.100.7/\n"), 0o600)
	_, stderr := tv(t, true, "probe", "--config", cfg, "--once")
	if !strings.Contains(stderr, "198.51.100.7") || !strings.Contains(stderr, "outside the allow-list [127.0.0.0/8 ::1/128]") {
		t.Errorf("stderr %q", stderr)
	}
	// The capture refuses it too, before it starts.
	_, stderr = tv(t, true, "capture", "--iface", "lo", "--data", filepath.Join(dir, "s"), "--probes", cfg)
	if !strings.Contains(stderr, "outside the allow-list") {
		t.Errorf("capture stderr %q", stderr)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	os.WriteFile(cfg, []byte("location: lab\nprobes:\n  - name: connect\n    kind: tcp\n    target: "+ln.Addr().String()+"\n"), 0o600)
	out, _ := tv(t, false, "probe", "--config", cfg, "--once")
	if !strings.Contains(out, "connect") || !strings.Contains(out, " ok") {
		t.Errorf("stdout %q", out)
	}
}

// The fleet configuration's locations: the sensor named picks its
// location's probes, and the runs say the location; a sensor that is in no
// location is refused by probe and by capture before anything runs.
func TestProbeFleetLocations(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	cfg := filepath.Join(dir, "fleet.yaml")
	os.WriteFile(cfg, []byte(`clickhouse: {url: http://127.0.0.1:8123}
sensors: {s-a: 127.0.0.1:1, s-b: 127.0.0.1:2}
locations:
  paris:
    sensors: [s-a]
    probes: [{name: connect, kind: tcp, target: "`+ln.Addr().String()+`"}]
  lagos:
    sensors: [s-b]
    probes: [{name: other, kind: tcp, target: "`+ln.Addr().String()+`"}]
`), 0o600)
	out, _ := tv(t, false, "probe", "--config", cfg, "--sensor", "s-a", "--once")
	if !strings.Contains(out, "connect") || !strings.Contains(out, "paris") || strings.Contains(out, "other") {
		t.Errorf("s-a: stdout %q, want paris's probe only", out)
	}
	out, _ = tv(t, false, "probe", "--config", cfg, "--sensor", "s-b", "--once")
	if !strings.Contains(out, "other") || !strings.Contains(out, "lagos") {
		t.Errorf("s-b: stdout %q, want lagos's probe", out)
	}
	_, stderr := tv(t, true, "probe", "--config", cfg, "--sensor", "s-c", "--once")
	if !strings.Contains(stderr, `sensor "s-c" is in none of the locations (lagos, paris)`) {
		t.Errorf("s-c: stderr %q", stderr)
	}
	_, stderr = tv(t, true, "capture", "--iface", "lo", "--data", filepath.Join(dir, "s"), "--probes", cfg, "--sensor", "s-c")
	if !strings.Contains(stderr, `sensor "s-c" is in none of the locations`) {
		t.Errorf("capture s-c: stderr %q", stderr)
	}
}
