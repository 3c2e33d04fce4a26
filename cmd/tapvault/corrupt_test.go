package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestCorruptBlockIsNamedAndSkipped damages bytes in the middle of a
// segment: verify names the bad block and fails with status 2; queries skip
// that block with a warning and return every other packet.
func TestCorruptBlockIsNamedAndSkipped(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 20000)
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, "--block-size", "64KiB", trace)
	seg := filepath.Join(store, "segments", "0000000001.seg")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	mid := len(b) / 2
	for i := mid; i < mid+16; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "verify", "--data", store)
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("verify of a damaged store: err %v, want exit status 2\n%s", err, out)
	}
	m := regexp.MustCompile(`bad block at segment 1 offset (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("verify does not name the bad block:\n%s", out)
	}
	off, _ := strconv.Atoi(string(m[1]))
	if off > mid || off < mid-(1<<20) {
		t.Fatalf("verify names offset %d, the damage is at %d", off, mid)
	}

	cnt, stderr := tv(t, false, "query", "--data", store, "--count")
	n, _ := strconv.Atoi(strings.TrimSpace(cnt))
	if n <= 0 || n >= 20000 {
		t.Fatalf("count with one bad block: got %d, want most of 20000", n)
	}
	if !strings.Contains(stderr, "corrupt") {
		t.Fatalf("query gave no warning about the skipped block:\n%s", stderr)
	}
	// Everything else comes back: the packets before and after the bad
	// block are a prefix and a suffix of the trace.
	exported := filepath.Join(dir, "out.pcap")
	tv(t, false, "query", "--data", store, "-w", exported)
	got, want := readAll(t, exported), readAll(t, trace)
	if len(got) != n {
		t.Fatalf("exported %d packets, counted %d", len(got), n)
	}
	i := 0
	for i < len(got) && string(got[i].data) == string(want[i].data) {
		i++
	}
	lost := len(want) - len(got)
	samePackets(t, got[i:], want[i+lost:], 1, false)
	if lost <= 0 || lost > 1000 {
		t.Fatalf("lost %d packets to one 64 KiB block", lost)
	}
	// Without the index (a header scan finds the blocks) the answer is the
	// same.
	if err := os.RemoveAll(filepath.Join(store, "index")); err != nil {
		t.Fatal(err)
	}
	if cnt2, _ := tv(t, false, "query", "--data", store, "--count"); strings.TrimSpace(cnt2) != strconv.Itoa(n) {
		t.Fatalf("count without the index: got %s, with it %d", strings.TrimSpace(cnt2), n)
	}
}
