package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tapvault/analytics"
	"tapvault/dataplane"
	"tapvault/pipeline"
	"tapvault/tracegen"
	"tapvault/writer"
)

// TestFaultMessagesHostileInput: messages, latency and query answer a
// mistake with an error (exit 1, as query does for a bad filter) that
// names what is valid, instead of an empty answer; and an empty answer
// to a time range that misses the store says what the store holds.
func TestFaultMessagesHostileInput(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	opts := appOpts
	opts.Packets = 3000
	if _, err := tracegen.GenerateFile(trace, opts); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, trace)
	if out, _ := tv(t, false, "messages", "--data", store, "--json", "--limit", "1"); !strings.Contains(out, `"id"`) {
		t.Fatalf("no records in the store:\n%s", out)
	}
	notStore := t.TempDir()
	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"messages on a directory that is not a store", []string{"messages", "--data", notStore}, 1, []string{"not a tapvault store"}},
		{"latency on a directory that is not a store", []string{"latency", "--data", notStore}, 1, []string{"not a tapvault store"}},
		{"query on a directory that is not a store", []string{"query", "--data", notStore, "--count"}, 1, []string{"not a tapvault store"}},
		{"unknown key", []string{"messages", "--data", store, "statsu = 200"}, 1, []string{`unknown key "statsu"`, `did you mean "status"?`, "record fields: ", " qname "}},
		{"unknown protocol", []string{"messages", "--data", store, "proto htp"}, 1, []string{`unknown protocol "htp"`, knownProtos()}},
		{"unknown class", []string{"messages", "--data", store, "class slow"}, 1, []string{`unknown class "slow"`, "slow_app", "slow_net"}},
		{"unknown key in latency", []string{"latency", "--data", store, "proto htp"}, 1, []string{`unknown protocol "htp"`}},
		{"unknown group key", []string{"latency", "--data", store, "--by", "bogus"}, 1, []string{`unknown grouping key "bogus"`, "proto server server_ip client_ip class"}},
		{"relative time on an imported trace", []string{"messages", "--data", store, "--from", "-15m"}, 0,
			[]string{"0 records", "no records in [", "the store holds records from ", "--from -15m counts from the wall clock"}},
		{"latency, range before the store", []string{"latency", "--data", store, "--to", "2000-01-01"}, 0,
			[]string{"no records in [the start, 2000-01-01T00:00:00.000000Z]; the store holds records from "}},
		{"query, relative time on an imported trace", []string{"query", "--data", store, "--count", "--from", "-1h", "--to", "now"}, 0,
			[]string{"no packets in [", "the store holds packets from ", "--from -1h and --to now count from the wall clock"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := tvRC(t, c.args...)
			if code != c.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			for _, w := range c.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
	// A range that holds records says nothing more.
	_, errOut, _ := tvRC(t, "messages", "--data", store, "--from", "2000-01-01", "proto http")
	if strings.Contains(errOut, "no records in") || strings.Contains(errOut, " 0 records") {
		t.Errorf("a range that holds records:\n%s", errOut)
	}
	// A store without message records says so.
	bare := filepath.Join(dir, "bare")
	tv(t, false, "import", "--no-analytics", "--data", bare, trace)
	if _, errOut, code := tvRC(t, "messages", "--data", bare); code != 0 || !strings.Contains(errOut, "holds no message records") {
		t.Errorf("messages on a store without records: exit %d\n%s", code, errOut)
	}
}

// TestFaultProgressCountsEveryDrop: the live progress line counts every
// drop the end-of-run summary counts. It showed only the workers' drops
// (no free buffer, writer queue), so a disk-full run read "0 dropped"
// live and 36.7M dropped at the end.
func TestFaultProgressCountsEveryDrop(t *testing.T) {
	total := regexp.MustCompile(`(?m)^total +(\d+) packets stored, (\d+) dropped$`)
	live := regexp.MustCompile(`^capture: (\d+) packets received, (\d+) stored, (\d+) dropped`)
	for _, c := range []struct {
		name  string
		r     pipeline.Report
		port  *dataplane.PortStats
		parts []string
	}{
		{"disk full", pipeline.Report{RxPackets: 40_000_000, Writer: writer.Stats{PacketsCommitted: 3_300_000, PacketsLost: 36_700_000, DiskFullPackets: 36_700_000}},
			nil, []string{"36700000 at the disk (36700000 disk full)"}},
		{"every cause", pipeline.Report{RxPackets: 1000, DropNoBuffer: 5, DropWriter: 7, Writer: writer.Stats{PacketsCommitted: 900, PacketsLost: 11, DiskFullPackets: 2}},
			&dataplane.PortStats{IMissed: 3, RxNoMbuf: 2, IErrors: 1}, []string{"6 at the port", "5 no free buffer", "7 writer queue full", "11 at the disk (2 disk full)"}},
		{"none", pipeline.Report{RxPackets: 10, Writer: writer.Stats{PacketsCommitted: 10}}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			printReport(&b, c.r, c.port)
			m := total.FindStringSubmatch(b.String())
			if m == nil {
				t.Fatalf("no total line in the summary:\n%s", b.String())
			}
			line := progressLine("capture", c.r, c.port)
			p := live.FindStringSubmatch(line)
			if p == nil {
				t.Fatalf("progress line %q", line)
			}
			if p[2] != m[1] || p[3] != m[2] {
				t.Errorf("progress line %q: stored %s dropped %s; the summary says stored %s dropped %s", line, p[2], p[3], m[1], m[2])
			}
			for _, w := range c.parts {
				if !strings.Contains(line, w) {
					t.Errorf("progress line %q lacks %q", line, w)
				}
			}
			if n, _ := strconv.Atoi(p[3]); n == 0 && strings.Contains(line, "(") {
				t.Errorf("progress line %q lists causes of no drop", line)
			}
		})
	}
}

// TestFaultCaptureMissingPcap: a missing rx_pcap file is the error, before
// EAL starts; it used to end in "no such ethdev ... operation not
// permitted", the cause buried in DPDK's log lines.
func TestFaultCaptureMissingPcap(t *testing.T) {
	needDPDK(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pcap")
	_, errOut, code := tvRC(t, "capture", "--listen", "", "--eal", ealFor("net_pcap0,rx_pcap="+missing), "--data", filepath.Join(dir, "store"))
	want := "tapvault: capture: --vdev net_pcap0: rx_pcap: open " + missing + ": no such file or directory"
	if code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, want 1 and %q in stderr:\n%s", code, want, errOut)
	}
	if strings.Contains(errOut, "no such ethdev") || strings.Contains(errOut, "EAL:") {
		t.Errorf("EAL ran:\n%s", errOut)
	}
}

// TestFaultCaptureRuntimeDir: a capture removes its EAL runtime directory
// (tapvault-PID under /var/run/dpdk) at exit, also when it fails after EAL
// started, and removes those of runs that are gone at start; every run
// used to leave one.
func TestFaultCaptureRuntimeDir(t *testing.T) {
	needDPDK(t)
	base := dataplane.RuntimeBaseDir()
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Skipf("no EAL runtime base: %v", err)
	}
	// A stale directory of a process that is gone (as kill -9 leaves it).
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(base, defaultFilePrefix+strconv.Itoa(gone.Process.Pid))
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "config"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(stale)

	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "mixed", 2000)
	runDir := func(pid int) string { return filepath.Join(base, defaultFilePrefix+strconv.Itoa(pid)) }

	out, errOut, code, pid := tvPID(t, "capture", "--listen", "", "--eal", ealFor("net_pcap0,rx_pcap="+trace), "--data", filepath.Join(dir, "store"), "--block-size", "128KiB")
	if code != 0 || !strings.Contains(out, "2000 packets stored, 0 dropped") {
		t.Fatalf("capture: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "--file-prefix="+defaultFilePrefix+strconv.Itoa(pid)) {
		t.Fatalf("capture did not use the default prefix:\n%s", errOut)
	}
	if _, err := os.Stat(runDir(pid)); err == nil {
		t.Errorf("%s is left after a capture", runDir(pid))
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("stale %s is left", stale)
	}

	// An error exit after EAL started: the port is not among the devices.
	_, errOut, code, pid = tvPID(t, "capture", "--listen", "", "--port", "net_pcap9", "--eal", ealFor("net_pcap0,rx_pcap="+trace), "--data", filepath.Join(dir, "store2"))
	if code != 1 || !strings.Contains(errOut, "net_pcap9") || !strings.Contains(errOut, "EAL:") {
		t.Fatalf("capture of a port EAL lacks: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(runDir(pid)); err == nil {
		t.Errorf("%s is left after a capture that failed", runDir(pid))
	}
}

// knownProtos is the list an unknown-protocol error gives: the registered
// decoders and "tcp", sorted.
func knownProtos() string {
	names := []string{analytics.FlowProto}
	for _, d := range analytics.Decoders() {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
