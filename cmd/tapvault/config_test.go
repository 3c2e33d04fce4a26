package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	c, err := loadCaptureConfig("../../scripts/tapvault.example.yaml")
	if err != nil {
		t.Fatalf("the shipped example does not load: %v", err)
	}
	if c.Data != "/var/lib/tapvault" || c.SealAfter != time.Second || c.BlockSize != "1MiB" || c.Listen == nil || *c.Listen != "127.0.0.1:8080" {
		t.Fatalf("got %+v, want the example's values", c)
	}
	a := c.Analytics
	if a == nil || a.FragMaxDgram == nil || *a.FragMaxDgram != 1024 || a.FragMaxBytes != "4MiB" || a.FragTimeout != 30*time.Second || a.LateAck != 5*time.Millisecond {
		t.Fatalf("analytics: got %+v, want the example's values", a)
	}
}

// TestFragOptions: the reassembly limits reach analytics.Config, 0 turns
// reassembly off, and a bad size is refused naming the flag.
func TestFragOptions(t *testing.T) {
	o := storeOptions{fragDatagrams: -1}
	c, err := o.analyticsConfig()
	if err != nil || c.FragMaxDatagrams != 1024 || c.FragMaxBytes != 4<<20 || c.FragTimeout != 30*time.Second {
		t.Fatalf("defaults: got %+v, %v", c, err)
	}
	o = storeOptions{fragDatagrams: 0}
	if c, err = o.analyticsConfig(); err != nil || c.FragMaxDatagrams != 0 {
		t.Fatalf("0 must turn reassembly off: got %d, %v", c.FragMaxDatagrams, err)
	}
	o = storeOptions{fragDatagrams: 10, fragBytes: "1MiB", fragTimeout: 5 * time.Second}
	if c, err = o.analyticsConfig(); err != nil || c.FragMaxDatagrams != 10 || c.FragMaxBytes != 1<<20 || c.FragTimeout != 5*time.Second {
		t.Fatalf("set: got %+v, %v", c, err)
	}
	for _, tc := range []struct {
		o    storeOptions
		want string
	}{
		{storeOptions{fragDatagrams: -1, fragBytes: "lots"}, "--frag-max-bytes"},
		{storeOptions{fragDatagrams: -1, fragBytes: "1KiB"}, "frag_max_bytes"},
	} {
		if _, err := tc.o.analyticsConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%+v: got %v, want an error naming %s", tc.o, err, tc.want)
		}
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{"data: x\nseal_afer: 1s\n", "seal_afer"},
		{"seal_after: soon\n", "soon"},
		{"queues: many\n", "many"},
	} {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadCaptureConfig(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("config %q: got error %v, want one naming %q", tc.body, err, tc.want)
		}
	}
}

// The endpoint's, the probes' and the fleet's keys reach their flags: each
// is seen by the check its flag has.
func TestConfigIfaceFleetProbeKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte("data: "+filepath.Join(dir, "s")+"\nlisten: \"\"\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct{ body, want string }{
		{"iface: {name: lo, snaplen: 10}\n", "--snaplen 10: at least 64"},
		{"iface: {name: lo, ring: 1.5MiB}\n", "whole number of MiB"},
		{"iface: {name: lo}\neal: \"-l 0\"\n", "exclude each other"},
		{"iface: {name: lo}\nprobes: " + filepath.Join(dir, "none.yaml") + "\n", "none.yaml"},
		{"iface: {name: lo}\nfleet: {cert: a.crt}\n", "need --fleet-listen"},
		{"iface: {name: lo, bogus: 1}\n", "bogus"},
	} {
		_, stderr := tv(t, true, "capture", "--config", write(c.body))
		if !strings.Contains(stderr, c.want) {
			t.Errorf("%q: stderr %q, want %q", c.body, stderr, c.want)
		}
	}
	// A flag still wins over the file.
	_, stderr := tv(t, true, "capture", "--config", write("iface: {name: lo, snaplen: 10}\n"), "--snaplen", "20")
	if !strings.Contains(stderr, "--snaplen 20") {
		t.Errorf("--snaplen 20 over the file's 10: stderr %q", stderr)
	}
}
