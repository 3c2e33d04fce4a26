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
