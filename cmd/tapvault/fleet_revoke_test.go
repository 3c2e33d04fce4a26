package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"tapvault/fleet"
	"tapvault/internal/chtest"
	"tapvault/tracegen"
)

// TestFleetRevokeCLI: tapvault fleet enroll issues two clients (centre and
// centre-2) and two sensors; tapvault fleet revoke revokes centre-2 before
// the sensors start with --fleet-crl: centre-2 gets nothing from a fleet
// port, the centre still gets its answer. Then, with the centre (tapvault
// serve --fleet, tls.crl) running, revoking sensor-b by its serial makes
// the centre refuse sensor-b, saying it is revoked, while sensor-a stays.
func TestFleetRevokeCLI(t *testing.T) {
	ch := chtest.Start(t)
	dir := t.TempDir()
	certs, caDir := filepath.Join(dir, "certs"), filepath.Join(dir, "ca")
	tv(t, false, "fleet", "enroll", "--ca", caDir, "init")
	serials := map[string]string{}
	for _, n := range []string{"sensor-a", "sensor-b", "centre", "centre-2"} {
		out, _ := tv(t, false, "fleet", "enroll", "--ca", caDir, "--name", n, "--out", certs)
		m := regexp.MustCompile(`\(serial ([0-9A-F]+)\)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("enroll %s: got %q, want the serial", n, out)
		}
		serials[n] = m[1]
	}
	tv(t, false, "fleet", "init", "--clickhouse", ch.URL)
	out, _ := tv(t, false, "fleet", "revoke", "--ca", caDir, "--cert", filepath.Join(certs, "centre-2.crt"))
	if !strings.Contains(out, "revoked serial "+serials["centre-2"]+" (centre-2)") {
		t.Fatalf("fleet revoke: got %q, want centre-2's serial %s named", out, serials["centre-2"])
	}
	if out, _ := tv(t, false, "fleet", "revoke", "--ca", caDir, "--serial", serials["centre-2"]); !strings.Contains(out, "1 already revoked") {
		t.Fatalf("revoking again: got %q, want it said to be revoked already", out)
	}
	crl := filepath.Join(caDir, fleet.CRLFile)

	start := func(args ...string) {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
		var logb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logb, &logb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			if t.Failed() {
				t.Logf("tapvault %s:\n%s", strings.Join(args, " "), logb.String())
			}
		})
	}
	addrs := map[string]string{}
	for i, n := range []string{"sensor-a", "sensor-b"} {
		trace := filepath.Join(dir, n+".pcap")
		if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: 300, Seed: int64(3 + i), PPS: 2000}); err != nil {
			t.Fatal(err)
		}
		store := filepath.Join(dir, n)
		tv(t, false, "import", "--data", store, trace)
		addrs[n] = freeAddr(t, "127.0.0.1")
		start("serve", "--data", store, "--listen", freeAddr(t, "127.0.0.1"), "--fleet-listen", addrs[n],
			"--fleet-cert", filepath.Join(certs, n+".crt"), "--fleet-key", filepath.Join(certs, n+".key"),
			"--fleet-ca", filepath.Join(certs, "ca.crt"), "--fleet-crl", crl)
	}

	ping := func(client, sensor string) (int, error) {
		t.Helper()
		conf, err := fleet.ClientTLSConfig(filepath.Join(certs, client+".crt"), filepath.Join(certs, client+".key"), filepath.Join(certs, "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: fleet.ForSensor(conf, sensor)}, Timeout: 10 * time.Second}
		resp, err := cl.Get("https://" + addrs[sensor] + "/api/v1/fleet/ping")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var code int
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, err = ping("centre", "sensor-a"); err == nil {
			break
		}
	}
	if code != 200 {
		t.Fatalf("the centre's certificate at sensor-a: got %d, %v, want 200", code, err)
	}
	for _, s := range []string{"sensor-a", "sensor-b"} {
		if code, err := ping("centre-2", s); err == nil {
			t.Errorf("centre-2, revoked, at %s: got %d, want the handshake refused", s, code)
		}
	}

	centreAddr := freeAddr(t, "127.0.0.1")
	cfg := fmt.Sprintf("clickhouse:\n  url: %s\ntls:\n  cert: certs/centre.crt\n  key: certs/centre.key\n  ca: certs/ca.crt\n  crl: ca/crl.pem\nsensors:\n  sensor-a: %s\n  sensor-b: %s\nprobe_interval: 300ms\nprobe_timeout: 300ms\n",
		ch.URL, addrs["sensor-a"], addrs["sensor-b"])
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start("serve", "--fleet", filepath.Join(dir, "fleet.yaml"), "--listen", centreAddr)
	waitSensors := func(want string) (errs map[string]string) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			resp, err := http.Get("http://" + centreAddr + "/api/v1/fleet/sensors")
			if err != nil {
				continue
			}
			var a struct {
				Sensors []struct {
					Name      string
					Reachable bool
					Error     string
				}
			}
			json.NewDecoder(resp.Body).Decode(&a)
			resp.Body.Close()
			var s []string
			errs = map[string]string{}
			for _, x := range a.Sensors {
				s = append(s, fmt.Sprintf("%s=%v", x.Name, x.Reachable))
				errs[x.Name] = x.Error
			}
			if last = strings.Join(s, ","); last == want {
				return errs
			}
		}
		t.Fatalf("centre's sensors: got %q, want %q", last, want)
		return nil
	}
	waitSensors("sensor-a=true,sensor-b=true")
	out, _ = tv(t, false, "fleet", "revoke", "--ca", caDir, "--serial", serials["sensor-b"])
	if !strings.Contains(out, "revoked serial "+serials["sensor-b"]) {
		t.Fatalf("fleet revoke --serial: got %q", out)
	}
	errs := waitSensors("sensor-a=true,sensor-b=false")
	if !strings.Contains(errs["sensor-b"], `sensor's certificate "sensor-b"`) || !strings.Contains(errs["sensor-b"], "revoked") {
		t.Fatalf("sensor-b's error at the centre: got %q, want it named revoked", errs["sensor-b"])
	}
	t.Logf("the centre on sensor-b: %s", errs["sensor-b"])
}
