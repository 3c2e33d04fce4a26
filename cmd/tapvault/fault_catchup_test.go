package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFaultCaptureCatchUpInBackground: a live capture (--lossless false)
// on a store whose blocks were never indexed captures at once and indexes
// them in the background; SIGTERM ends it within the stop timeout whether
// or not the catch-up was done, and the next start leaves the index
// complete (pipeline's TestFaultCatchUpInBackground checks the order and
// the interruption exactly).
func TestFaultCaptureCatchUpInBackground(t *testing.T) {
	needDPDK(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "flood.pcap")
	tv(t, false, "bench", "gen", "--kind", "udp64", "--packets", "50000", "--flows", "50000", "-o", trace)
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, "--no-index", "--block-size", "32KiB", trace)
	_, backlog := storeEnd(t, store)
	const stopTimeout = 4 * time.Second
	cmd := exec.Command(os.Args[0], "capture", "--eal", ealFor("net_pcap0,rx_pcap="+trace+",infinite_rx=1"), "--data", store, "--listen", "",
		"--lossless", "false", "--block-size", "32KiB", "--stop-timeout", stopTimeout.String())
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	var out, logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(logs.String(), "catching up with the segments in the background") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no background catch-up in 60 s:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if want := "blocks=" + strconv.Itoa(backlog); !strings.Contains(logs.String(), want) {
		t.Errorf("the catch-up's start does not count the %d unindexed blocks (%s):\n%s", backlog, want, logs.String())
	}
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("capture: %v\n%s\n%s", err, out.String(), logs.String())
	}
	ended := strings.Contains(logs.String(), "background catch-up done")
	t.Logf("%d blocks to catch up; stop took %s; catch-up done before the stop: %v", backlog, took.Round(time.Millisecond), ended)
	if !ended && !strings.Contains(logs.String(), "background catch-up interrupted by the stop") {
		t.Errorf("the catch-up neither ended nor was interrupted:\n%s", logs.String())
	}
	if took > stopTimeout+5*time.Second {
		t.Errorf("stop took %s, want within the stop timeout %s (+5 s slack)", took, stopTimeout)
	}
	// The next start (an import) leaves the index complete.
	more := filepath.Join(dir, "more.pcap")
	genTrace(t, more, "udp64", 1000)
	tv(t, false, "import", "--data", store, more)
	last, _ := storeEnd(t, store)
	if wm, missing := indexState(t, store); wm != last || len(missing) > 0 {
		t.Errorf("index after the next start: watermark %v, %d missing; want watermark %v, none missing", wm, len(missing), last)
	}
	total := summaryNum(t, out.String(), "total            ")
	cnt, _ := tv(t, false, "query", "--data", store, "--count", "udp")
	if n, _ := strconv.ParseUint(strings.TrimSpace(cnt), 10, 64); n != total+51000 {
		t.Errorf("indexed query count: got %s, want %d", strings.TrimSpace(cnt), total+51000)
	}
}
