package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tapvault/internal/chtest"
	"tapvault/tracegen"
)

// TestFleetCentreCLI runs the fleet as an operator would, each part its own
// process: tapvault fleet enroll, two sensors (tapvault serve --data with
// --fleet-listen and their certificates), tapvault fleet init and ship into
// Debian's clickhouse-server, and the centre (tapvault serve --fleet). The
// centre's drill-down for an exchange on each sensor must be byte-identical
// to tapvault query --message ID -w on that sensor's store; a sensor killed
// is named missing while the centre goes on answering; a client without a
// fleet certificate gets nothing from a fleet port.
func TestFleetCentreCLI(t *testing.T) {
	ch := chtest.Start(t)
	dir := t.TempDir()
	certs, caDir := filepath.Join(dir, "certs"), filepath.Join(dir, "ca")
	tv(t, false, "fleet", "enroll", "--ca", caDir, "init")
	for _, n := range []string{"sensor-a", "sensor-b", "centre"} {
		tv(t, false, "fleet", "enroll", "--ca", caDir, "--name", n, "--out", certs)
	}
	tv(t, false, "fleet", "init", "--clickhouse", ch.URL)

	type proc struct {
		store, fleetAddr string
		cmd              *exec.Cmd
	}
	sensors := map[string]*proc{}
	start := func(args ...string) *exec.Cmd {
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
		return cmd
	}
	for i, n := range []string{"sensor-a", "sensor-b"} {
		trace := filepath.Join(dir, n+".pcap")
		if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: 3000, Seed: int64(7 + i), PPS: 2000}); err != nil {
			t.Fatal(err)
		}
		p := &proc{store: filepath.Join(dir, n), fleetAddr: freeAddr(t, "127.0.0.1")}
		tv(t, false, "import", "--data", p.store, trace)
		tv(t, false, "fleet", "ship", "--data", p.store, "--sensor", n, "--clickhouse", ch.URL)
		p.cmd = start("serve", "--data", p.store, "--listen", freeAddr(t, "127.0.0.1"), "--fleet-listen", p.fleetAddr,
			"--fleet-cert", filepath.Join(certs, n+".crt"), "--fleet-key", filepath.Join(certs, n+".key"), "--fleet-ca", filepath.Join(certs, "ca.crt"))
		sensors[n] = p
	}
	centreAddr := freeAddr(t, "127.0.0.1")
	cfg := fmt.Sprintf("clickhouse:\n  url: %s\ntls:\n  cert: certs/centre.crt\n  key: certs/centre.key\n  ca: certs/ca.crt\nsensors:\n  sensor-a: %s\n  sensor-b: %s\nprobe_interval: 300ms\nprobe_timeout: 300ms\n",
		ch.URL, sensors["sensor-a"].fleetAddr, sensors["sensor-b"].fleetAddr)
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start("serve", "--fleet", filepath.Join(dir, "fleet.yaml"), "--listen", centreAddr)
	base := "http://" + centreAddr

	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			return nil, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	type sensorsAnswer struct {
		Sensors []struct {
			Name      string
			Reachable bool
		}
		Missing []string
	}
	waitSensors := func(want string) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			resp, b := get("/api/v1/fleet/sensors")
			if resp == nil || resp.StatusCode != 200 {
				continue
			}
			var a sensorsAnswer
			json.Unmarshal(b, &a)
			var s []string
			for _, x := range a.Sensors {
				s = append(s, fmt.Sprintf("%s=%v", x.Name, x.Reachable))
			}
			if last = strings.Join(s, ","); last == want {
				return
			}
		}
		t.Fatalf("centre's sensors: got %q, want %q", last, want)
	}
	waitSensors("sensor-a=true,sensor-b=true")

	for n, p := range sensors {
		resp, b := get("/api/v1/fleet/exchanges?limit=1&proto=http&sensor=" + n)
		var a struct {
			Total     int
			Exchanges []struct{ ID, Sensor, Packets string }
		}
		if err := json.Unmarshal(b, &a); err != nil || resp.StatusCode != 200 || len(a.Exchanges) != 1 || a.Exchanges[0].Sensor != n {
			t.Fatalf("%s: exchanges: %d %s", n, resp.StatusCode, b)
		}
		x := a.Exchanges[0]
		resp, viaCentre := get(x.Packets)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: centre drill-down %s: %d %s", n, x.Packets, resp.StatusCode, viaCentre)
		}
		own := filepath.Join(dir, n+"-"+x.ID+".pcap")
		tv(t, false, "query", "--data", p.store, "--message", x.ID, "-w", own)
		want, err := os.ReadFile(own)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(viaCentre, want) || len(want) <= 24 {
			t.Errorf("%s: the centre's drill-down of %s is %d bytes, tapvault query --message on the sensor %d: want the same bytes", n, x.ID, len(viaCentre), len(want))
		}
	}

	// No fleet certificate: the sensor's fleet port gives nothing.
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	if resp, err := cl.Get("https://" + sensors["sensor-a"].fleetAddr + "/api/v1/stats"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Errorf("unenrolled client: got %d %q, want the handshake refused", resp.StatusCode, b)
	}

	// A sensor down: named, and the centre still answers.
	sensors["sensor-b"].cmd.Process.Kill()
	waitSensors("sensor-a=true,sensor-b=false")
	resp, b := get("/api/v1/fleet/exchanges?limit=5")
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"missing":["sensor-b"]`)) {
		t.Errorf("exchanges with sensor-b down: got %d %s", resp.StatusCode, b)
	}
	resp, _ = get("/api/v1/packets?limit=20")
	if resp.StatusCode != 200 || resp.Header.Get("X-Tapvault-Missing") != "sensor-b" || resp.Header.Get("X-Tapvault-Sensors") != "sensor-a" {
		t.Errorf("packets with sensor-b down: got %d, sensors %q, missing %q", resp.StatusCode, resp.Header.Get("X-Tapvault-Sensors"), resp.Header.Get("X-Tapvault-Missing"))
	}
}
