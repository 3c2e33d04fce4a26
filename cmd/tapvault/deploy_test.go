package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The deployment files shipped in scripts/ (docs/deploy.md): the scripts
// parse, the systemd unit has what a DPDK capture daemon needs and only
// names flags capture has, and systemd itself accepts the unit when
// systemd-analyze is installed.

const (
	unitPath    = "../../scripts/tapvault.service"
	examplePath = "../../scripts/tapvault.example.yaml"
	// unitConfig is where the unit expects the installed configuration.
	unitConfig = "/etc/tapvault/tapvault.yaml"
)

func TestShippedScriptsParse(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	scripts, err := filepath.Glob("../../scripts/*.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"setup.sh", "hugepages.sh", "bind-nic.sh"} {
		found := false
		for _, s := range scripts {
			found = found || filepath.Base(s) == want
		}
		if !found {
			t.Errorf("scripts/%s is missing", want)
		}
	}
	for _, s := range scripts {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s: mode %v, want executable", s, fi.Mode().Perm())
		}
	}
	// --help must work without root and change nothing.
	for _, s := range []string{"../../scripts/hugepages.sh", "../../scripts/bind-nic.sh"} {
		out, err := exec.Command("bash", s, "--help").CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("docs/deploy.md")) {
			t.Errorf("%s --help: err %v, output %q: want usage naming docs/deploy.md", s, err, out)
		}
	}
}

// unitKeys reads a systemd unit into section.Key -> values (in order).
// Comments are skipped; commented-out lines are returned separately.
func unitKeys(t *testing.T, path string) (keys map[string][]string, commented []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys = make(map[string][]string)
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "":
		case strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
			commented = append(commented, strings.TrimLeft(l, "#; "))
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = strings.Trim(l, "[]")
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: line %q is not Key=Value", path, l)
			}
			keys[section+"."+k] = append(keys[section+"."+k], v)
		}
	}
	return keys, commented
}

func TestUnitFile(t *testing.T) {
	keys, commented := unitKeys(t, unitPath)
	one := func(k string) string {
		v := keys[k]
		if len(v) != 1 {
			t.Errorf("%s: got %d values %q, want exactly one", k, len(v), v)
			return ""
		}
		return v[0]
	}
	for k, want := range map[string]string{
		"Service.Restart":         "on-failure",
		"Service.LimitMEMLOCK":    "infinity",
		"Service.KillSignal":      "SIGTERM",
		"Service.UMask":           "0077",
		"Service.ProtectSystem":   "strict",
		"Service.ProtectHome":     "yes",
		"Service.PrivateTmp":      "yes",
		"Service.EnvironmentFile": "-/etc/tapvault/tapvault.env",
	} {
		if got := one(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if one("Service.TimeoutStopSec") == "" {
		t.Errorf("TimeoutStopSec: missing; the default 90 s may cut a drain short")
	}
	if v := keys["Service.PrivateDevices"]; len(v) > 0 {
		t.Errorf("PrivateDevices=%v: it hides /dev/vfio from DPDK", v)
	}
	if !strings.Contains(strings.Join(keys["Unit.RequiresMountsFor"], " "), "/dev/hugepages") {
		t.Errorf("RequiresMountsFor: got %q, want /dev/hugepages among them", keys["Unit.RequiresMountsFor"])
	}

	// ExecStart runs capture with the installed config, and every flag it
	// (or the commented credential variant) passes is a capture flag.
	start := one("Service.ExecStart")
	execs := []string{start}
	for _, c := range commented {
		if strings.HasPrefix(c, "ExecStart=/") {
			execs = append(execs, strings.TrimPrefix(c, "ExecStart="))
		}
	}
	if !strings.Contains(start, " capture --config "+unitConfig) {
		t.Errorf("ExecStart=%q: want \"tapvault capture --config %s\"", start, unitConfig)
	}
	capture := newCaptureCmd()
	for _, e := range execs {
		f := strings.Fields(e)
		if len(f) < 2 || filepath.Base(f[0]) != "tapvault" || f[1] != "capture" {
			t.Errorf("ExecStart=%q: want /path/tapvault capture ...", e)
			continue
		}
		for _, a := range f[2:] {
			if name, ok := strings.CutPrefix(a, "--"); ok {
				name, _, _ = strings.Cut(name, "=")
				if capture.Flags().Lookup(name) == nil {
					t.Errorf("ExecStart=%q: capture has no flag --%s", e, name)
				}
			}
		}
	}

	// The unit tells how to install the config from the shipped example,
	// and the example's store is writable under the sandbox.
	b, _ := os.ReadFile(unitPath)
	if !bytes.Contains(b, []byte("scripts/tapvault.example.yaml "+unitConfig)) {
		t.Errorf("the unit does not say to install scripts/tapvault.example.yaml as %s", unitConfig)
	}
	if !bytes.Contains(b, []byte(tokenEnv+"=")) {
		t.Errorf("the unit does not show %s= for the env file", tokenEnv)
	}
	c, err := loadCaptureConfig(examplePath)
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	rw := strings.Join(keys["Service.ReadWritePaths"], " ")
	if !strings.Contains(" "+rw+" ", " "+c.Data+" ") && !strings.Contains(" "+rw+" ", " -"+c.Data+" ") {
		t.Errorf("ReadWritePaths=%q does not hold the example's data directory %s", rw, c.Data)
	}
	if sd := one("Service.StateDirectory"); "/var/lib/"+sd != c.Data {
		t.Errorf("StateDirectory=%s: got /var/lib/%s, want the example's data %s", sd, sd, c.Data)
	}
	// Without a token the example must listen on loopback, or the unit
	// fails to start with an empty env file.
	if c.Listen != nil && *c.Listen != "" {
		if !strings.HasPrefix(*c.Listen, "127.") && !strings.HasPrefix(*c.Listen, "[::1]") && !strings.HasPrefix(*c.Listen, "localhost:") {
			t.Errorf("example listen %q is not loopback: the unit would need a token to start", *c.Listen)
		}
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit, with ExecStart
// pointed at an executable that exists here (verify checks the path).
// systemd-analyze exits 0 on many warnings, so any output fails the test.
func TestUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("/usr/local/bin/tapvault "), []byte(self+" "))
	p := filepath.Join(t.TempDir(), "tapvault.service")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: err %v, output:\n%s", err, out)
	}
}
