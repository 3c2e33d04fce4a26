package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tapvault/writer"
)

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("  abcdefghijklmnopqrstuvwxyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file, env, want string
		ok              bool
	}{
		{"", "", "", true},
		{"", " from-env-0123456789\n", "from-env-0123456789", true},
		{good, "", "abcdefghijklmnopqrstuvwxyz", true},
		{good, "from-env-0123456789", "", false},
		{empty, "", "", false},
		{filepath.Join(dir, "missing"), "", "", false},
		{dir, "", "", false},
	}
	for _, c := range cases {
		got, err := loadToken(c.file, c.env)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("loadToken(%q, %q): got %q, %v, want %q, ok %v", c.file, c.env, got, err, c.want, c.ok)
		}
	}
}

func TestServeRefusesOpenAddressWithoutToken(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 100)
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, trace)
	t.Setenv(tokenEnv, "")
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--data", store, "--listen", "0.0.0.0:0"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "without a token") {
		t.Fatalf("got %v, want a refusal to listen without a token", err)
	}
}

// The API's pcap is the CLI's, byte for byte, and the server stops on its
// context.
func TestServeMatchesQuery(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "mixed", 5000)
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, "--block-size", "64KiB", trace)
	cliOut := filepath.Join(dir, "cli.pcap")
	tv(t, false, "query", "--data", store, "-w", cliOut, "tcp")
	want, err := os.ReadFile(cliOut)
	if err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const token = "serve-test-token-0123456789"
	t.Setenv(tokenEnv, token)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--data", store, "--listen", addr})
	errc := make(chan error, 1)
	go func() { errc <- cmd.ExecuteContext(ctx) }()

	get := func(auth string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/packets?filter=tcp", nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	var (
		resp *http.Response
		body []byte
	)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, body = get(token); resp != nil {
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("serve ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not answer within 10s")
		}
	}
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("got status %d and %d bytes, want 200 and the CLI's %d bytes", resp.StatusCode, len(body), len(want))
	}
	// The token from the environment is required on loopback too.
	if resp, _ := get(""); resp == nil || resp.StatusCode != 401 {
		t.Fatalf("got %v without a token, want 401", resp)
	}
	// /metrics, behind the same token: the store's packets and horizon.
	mget := func(auth string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := mget(""); code != 401 {
		t.Fatalf("/metrics without a token: %d, want 401", code)
	}
	code, m := mget(token)
	statsOut, _ := tv(t, false, "stats", "--data", store, "--json")
	var stats struct {
		Packets uint64 `json:"packets"`
		FirstNS int64  `json:"first_ns"`
	}
	if err := json.Unmarshal([]byte(statsOut), &stats); err != nil || stats.Packets == 0 {
		t.Fatalf("stats --json: %v: %s", err, statsOut)
	}
	for _, want := range []string{
		fmt.Sprintf("tapvault_store_packets %d\n", stats.Packets),
		"tapvault_store_oldest_packet_timestamp_seconds ",
		"tapvault_store_segment_bytes ",
		"tapvault_filesystem_avail_bytes ",
		"go_goroutines ",
	} {
		if code != 200 || !strings.Contains(m, want) {
			t.Fatalf("/metrics: status %d, no %q in:\n%s", code, want, m)
		}
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("serve returned %v after its context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s of its context ending")
	}
}

// serveStore runs `tapvault serve` on store at a free loopback port until
// the test ends, waits until it answers, and returns a GET of a path on it
// (status 0 when the request fails).
func serveStore(t *testing.T, store string) func(path string) (int, []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--data", store, "--listen", addr})
	errc := make(chan error, 1)
	go func() { errc <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() { cancel(); <-errc })
	get := func(path string) (int, []byte) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := get("/api/v1/stats"); code == 200 {
			return get
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not answer within 10s")
		}
	}
}

// serve --query-priority: auto asks whether a capture writes one of the
// stores (at most once a second), low always yields (nil), normal never;
// anything else is refused.
func TestCaptureYield(t *testing.T) {
	dir := t.TempDir()
	if f, err := captureYield("low", []string{dir}); err != nil || f != nil {
		t.Errorf("low: got %v, %v; want nil, nil", f != nil, err)
	}
	if f, err := captureYield("normal", []string{dir}); err != nil || f == nil || f() {
		t.Errorf("normal: got %v; want a test that says false", err)
	}
	if _, err := captureYield("nice", []string{dir}); err == nil || !strings.Contains(err.Error(), "want auto, low or normal") {
		t.Errorf("nice: got %v, want the modes named", err)
	}
	other := t.TempDir()
	f, err := captureYield("auto", []string{other, dir})
	if err != nil || f == nil || f() {
		t.Fatalf("auto, nothing writing: got %v, want false", err)
	}
	w, err := writer.Open(writer.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if f() {
		t.Error("auto: asked again within a second: true, want the cached false")
	}
	f, _ = captureYield("auto", []string{other, dir})
	if !f() {
		t.Error("auto, a writer on the second store: false, want true")
	}
}

func TestPhysicalMemory(t *testing.T) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skip("no /proc/meminfo")
	}
	var kb int64
	fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
	if got := memTotal(); got != kb<<10 || got <= 0 {
		t.Fatalf("memTotal: %d, want %d (MemTotal)", got, kb<<10)
	}
	if got := physicalMemory(); got <= 0 || got > kb<<10 {
		t.Fatalf("physicalMemory: %d, want at most MemTotal %d", got, kb<<10)
	}
}
