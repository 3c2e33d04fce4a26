package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"tapvault/tracegen"
	"testing"
	"time"
)

// TestSIGHUPReloadsTokenAndRetention runs a capture from a config file,
// changes the token file and the retention limit in it, sends SIGHUP, and
// checks the running capture took both.
func TestSIGHUPReloadsTokenAndRetention(t *testing.T) {
	needDPDK(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 20000)
	tokA, tokB := "token-aaaaaaaaaaaaaaaa", "token-bbbbbbbbbbbbbbbb"
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte(tokA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", 20000+(os.Getpid()+7)%20000)
	store := filepath.Join(dir, "store")
	cfg := filepath.Join(dir, "tapvault.yaml")
	write := func(extra string) {
		body := fmt.Sprintf("eal: %q\ndata: %s\nlisten: %q\ntoken_file: %s\nsegment_size: 16MiB\nlossless: \"false\"\n%s",
			ealFor("net_pcap0,rx_pcap="+trace+",infinite_rx=1"), store, addr, tokFile, extra)
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	cmd := exec.Command(os.Args[0], "capture", "--config", cfg, "--retention-every", "200ms")
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ts := time.Now()
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		t.Logf("stopped in %s", time.Since(ts).Round(time.Millisecond))
	}()
	status := func(tok string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/stats", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	t0 := time.Now()
	waitFor := func(what string, ok func() bool) {
		defer func() { t.Logf("%s: at %s", what, time.Since(t0).Round(time.Millisecond)) }()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20 s\n%s", what, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("API up with token A", func() bool { return status(tokA) == 200 })
	if got := status(tokB); got != 401 {
		t.Fatalf("token B before the reload: got %d, want 401", got)
	}

	// New token, and a retention budget the store already exceeds.
	if err := os.WriteFile(tokFile, []byte(tokB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write("retain_bytes: 32MiB\n")
	waitFor("store past 48 MiB", func() bool {
		entries, _ := os.ReadDir(filepath.Join(store, "segments"))
		return len(entries) >= 4
	})
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("token B accepted after SIGHUP", func() bool { return status(tokB) == 200 })
	if got := status(tokA); got != 401 {
		t.Fatalf("token A after the reload: got %d, want 401", got)
	}
	if !strings.Contains(logs.String(), "SIGHUP: reloaded") {
		t.Fatalf("no reload line in the log:\n%s", logs.String())
	}
	// Retention checks every 200 ms here (--retention-every): the new
	// budget shows in the retention log within that.
	waitFor("retention under the reloaded budget", func() bool {
		b, _ := os.ReadFile(filepath.Join(store, "retention.log"))
		return bytes.Contains(b, []byte("max_bytes"))
	})
}

// TestSIGHUPReloadsDecoders runs a capture of the app trace (replayed in a
// loop) with only the DNS decoder, then switches the config to HTTP only
// and sends SIGHUP: HTTP exchange records appear, from connections that
// start after the reload. It also checks the per-protocol latency
// histograms on /metrics.
func TestSIGHUPReloadsDecoders(t *testing.T) {
	needDPDK(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: 20000, Seed: 9, PPS: 20000}); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", 20000+(os.Getpid()+11)%20000)
	store := filepath.Join(dir, "store")
	cfg := filepath.Join(dir, "tapvault.yaml")
	write := func(decoder string) {
		body := fmt.Sprintf("eal: %q\ndata: %s\nlisten: %q\nsegment_size: 16MiB\nlossless: \"false\"\nanalytics:\n  decoders: [%s]\n",
			ealFor("net_pcap0,rx_pcap="+trace+",infinite_rx=1"), store, addr, decoder)
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("dns")
	cmd := exec.Command(os.Args[0], "capture", "--config", cfg)
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	get := func(path string) string {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return ""
		}
		return string(b)
	}
	waitFor := func(what string, ok func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30 s\n%s", what, logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	has := func(expr string) bool {
		return strings.Contains(get("/api/v1/messages?limit=1&expr="+url.QueryEscape(expr)), `"id"`)
	}
	waitFor("dns records", func() bool { return has("proto dns") })
	if has("proto http") {
		t.Fatal("http records with only the dns decoder on")
	}
	m := get("/metrics")
	if !strings.Contains(m, `tapvault_message_latency_seconds_bucket{part="server",proto="dns"`) || !strings.Contains(m, "tapvault_analytics_records_total") {
		t.Fatalf("no dns latency histogram on /metrics:\n%s", m)
	}
	// OpenMetrics carries exemplars: a latency bucket names a record ID,
	// and that record leads to its packets.
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	om, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ex := regexp.MustCompile(`tapvault_message_latency_seconds_bucket\{[^}]*part="total"[^}]*\} \d+ # \{id="([0-9a-f]{16})"\}`).FindStringSubmatch(string(om))
	if ex == nil {
		t.Fatalf("no exemplar on the latency histogram:\n%s", om)
	}
	// (records are readable once the record stage flushes, within a second)
	waitFor("the exemplar's record drilled down to packets", func() bool {
		return get("/api/v1/messages/"+ex[1]+"/packets") != ""
	})
	write("http")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("http records after SIGHUP", func() bool { return has("proto http") })
	if !strings.Contains(logs.String(), "decoders=http") {
		t.Fatalf("no reload line naming the decoders:\n%s", logs.String())
	}
}
