package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tapvault/dataplane"
	"tapvault/pcap"
	"tapvault/query"
	"tapvault/tracegen"
)

// The test binary doubles as the tapvault binary: with TAPVAULT_E2E_MAIN set
// it runs main, so the end-to-end tests exercise the real command line, each
// command in its own process (DPDK's EAL initialises once per process).
func TestMain(m *testing.M) {
	if os.Getenv("TAPVAULT_E2E_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tv runs tapvault with args and returns stdout; it fails the test on a
// non-zero exit unless wantErr.
func tv(t *testing.T, wantErr bool, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if wantErr != (err != nil) {
		t.Fatalf("tapvault %s: err %v, want error %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, wantErr, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

type filePacket struct {
	ts       int64
	wire     uint32
	linkType uint16
	data     []byte
}

func readAll(t *testing.T, path string) []filePacket {
	t.Helper()
	f, err := dataplane.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []filePacket
	var b dataplane.Burst
	for {
		n, err := f.Recv(&b)
		for i := 0; i < n; i++ {
			p := &b.Pkts[i]
			out = append(out, filePacket{p.TS, p.WireLen, p.LinkType, bytes.Clone(p.Data)})
		}
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// samePackets compares two packet lists; tsUnit is the precision the
// timestamps must agree to (1 for ns, 1000 for µs: both sides are truncated
// to it). wireFromCap says the
// source lost wire lengths (net_pcap sets them to the captured length).
func samePackets(t *testing.T, got, want []filePacket, tsUnit int64, wireFromCap bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("packets: got %d, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		wantWire := w.wire
		if wireFromCap {
			wantWire = uint32(len(w.data))
		}
		if g.ts/tsUnit != w.ts/tsUnit || g.wire != wantWire || g.linkType != w.linkType || !bytes.Equal(g.data, w.data) {
			t.Fatalf("packet %d: got ts %d wire %d lt %d len %d, want ts %d wire %d lt %d len %d (bytes equal %v)",
				i, g.ts, g.wire, g.linkType, len(g.data), w.ts/tsUnit*tsUnit, wantWire, w.linkType, len(w.data), bytes.Equal(g.data, w.data))
		}
	}
}

func genTrace(t *testing.T, path, kind string, packets int) {
	t.Helper()
	if _, err := tracegen.GenerateFile(path, tracegen.Options{Kind: kind, Packets: packets, Flows: 500, Seed: 7, PPS: 100_000}); err != nil {
		t.Fatal(err)
	}
}

func TestImportQueryRoundTrip(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "mixed", 30000)
	store := filepath.Join(dir, "store")
	// Small blocks and segments so the round trip crosses many of both.
	tv(t, false, "import", "--data", store, "--block-size", "64KiB", "--segment-size", "1MiB", trace)
	out, _ := tv(t, false, "query", "--data", store, "--count")
	if strings.TrimSpace(out) != "30000" {
		t.Fatalf("count: got %q, want 30000", out)
	}
	exported := filepath.Join(dir, "out.pcap")
	tv(t, false, "query", "--data", store, "-w", exported)
	samePackets(t, readAll(t, exported), readAll(t, trace), 1, false)

	ng := filepath.Join(dir, "out.pcapng")
	tv(t, false, "query", "--data", store, "-w", ng)
	samePackets(t, readAll(t, ng), readAll(t, trace), 1, false)

	vout, _ := tv(t, false, "verify", "--data", store)
	if !strings.Contains(vout, "verify: OK") || !strings.Contains(vout, "30000 packets") {
		t.Fatalf("verify output:\n%s", vout)
	}
}

func TestImportMixedLinkTypes(t *testing.T) {
	dir := t.TempDir()
	eth := filepath.Join(dir, "eth.pcap")
	genTrace(t, eth, "imix", 200)
	// The same packets as raw IP (link type 101): strip the 14-byte header.
	raw := filepath.Join(dir, "raw.pcap")
	var buf bytes.Buffer
	w, err := query.NewPcapWriter(&buf, pcap.LinkTypeRaw, 262144)
	if err != nil {
		t.Fatal(err)
	}
	ethPkts := readAll(t, eth)
	for i, p := range ethPkts {
		if err := w.WritePacket(p.ts+5e9+int64(i), p.wire-14, pcap.LinkTypeRaw, 0, p.data[14:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(raw, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, eth, raw)
	// pcap cannot hold two link types: a clear error, and no file left.
	bad := filepath.Join(dir, "mixed.pcap")
	_, stderr := tv(t, true, "query", "--data", store, "-w", bad)
	if !strings.Contains(stderr, "pcapng") {
		t.Fatalf("mixed link types into pcap: error %q does not point to pcapng", stderr)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("a failed query left %s behind (stat err %v)", bad, err)
	}
	ng := filepath.Join(dir, "mixed.pcapng")
	tv(t, false, "query", "--data", store, "-w", ng)
	got := readAll(t, ng)
	want := append(ethPkts, readAll(t, raw)...)
	samePackets(t, got, want, 1, false)
}

func TestImportCutShortFile(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 1000)
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	pkts := readAll(t, trace)
	last := 16 + len(pkts[len(pkts)-1].data) // pcap record header + data
	cut := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(cut, b[:len(b)-last/2], 0o600); err != nil { // inside the last packet
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	out, _ := tv(t, false, "import", "--data", store, cut)
	if !strings.Contains(out, "warning") {
		t.Fatalf("import of a cut file gave no warning:\n%s", out)
	}
	cnt, _ := tv(t, false, "query", "--data", store, "--count")
	if strings.TrimSpace(cnt) != "999" {
		t.Fatalf("count after cut: got %q, want 999", cnt)
	}
}

func TestImportRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pcap")
	os.WriteFile(junk, []byte("this is not a capture file at all"), 0o600)
	_, stderr := tv(t, true, "import", "--data", filepath.Join(dir, "s"), junk)
	if !strings.Contains(stderr, "not a pcap or pcapng") {
		t.Fatalf("stderr %q does not say what is wrong", stderr)
	}
	// Nothing was written for a rejected import.
	if _, err := os.Stat(filepath.Join(dir, "s", "segments")); err == nil {
		entries, _ := os.ReadDir(filepath.Join(dir, "s", "segments"))
		if len(entries) > 0 {
			t.Fatalf("rejected import wrote %d segment files", len(entries))
		}
	}
	_, stderr = tv(t, true, "query", "--data", dir, "--count", "hots", "1.2.3.4")
	if !strings.Contains(stderr, "hots") {
		t.Fatalf("bad filter: stderr %q does not name the token", stderr)
	}
}

func needDPDK(t *testing.T) {
	if !dataplane.Available {
		t.Skip("built without DPDK")
	}
}

// ealFor is the EAL string for tests: no hugepages, no PCI, no shared config.
func ealFor(vdev string) string {
	return "-l 0 --no-pci --no-huge -m 256 --no-shconf --vdev=" + vdev
}

func TestCaptureReplayThroughDPDK(t *testing.T) {
	needDPDK(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "mixed", 20000)
	store := filepath.Join(dir, "store")
	out, _ := tv(t, false, "capture", "--eal", ealFor("net_pcap0,rx_pcap="+trace), "--data", store, "--block-size", "128KiB", "--listen", "")
	if !strings.Contains(out, "20000 packets stored, 0 dropped") {
		t.Fatalf("capture summary:\n%s", out)
	}
	exported := filepath.Join(dir, "out.pcap")
	tv(t, false, "query", "--data", store, "-w", exported)
	// net_pcap delivers µs timestamps and sets the wire length to the
	// captured length (documented in docs/dataplane.md).
	samePackets(t, readAll(t, exported), readAll(t, trace), 1000, true)
	vout, _ := tv(t, false, "verify", "--data", store)
	if !strings.Contains(vout, "verify: OK") {
		t.Fatalf("verify:\n%s", vout)
	}
}

// TestCaptureKill9 kills a capture mid-run, then checks the store: every
// committed block verifies, queries work, and the next writer cuts any torn
// tail and appends after it.
func TestCaptureKill9(t *testing.T) {
	needDPDK(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 400000)
	store := filepath.Join(dir, "store")
	// The capture serves its HTTP API meanwhile: query it while it runs.
	addr := fmt.Sprintf("127.0.0.1:%d", 20000+os.Getpid()%20000)
	cmd := exec.Command(os.Args[0], "capture", "--eal", ealFor("net_pcap0,rx_pcap="+trace), "--data", store, "--block-size", "256KiB", "--listen", addr)
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(store, "segments", "0000000001.seg")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if fi, err := os.Stat(seg); err == nil && fi.Size() > 2<<20 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("capture wrote nothing in 60s:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// While capture goes on, the API answers from committed blocks.
	var live struct{ Packets uint64 }
	for {
		resp, err := http.Get("http://" + addr + "/api/v1/stats")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&live)
			resp.Body.Close()
		}
		if err == nil && live.Packets > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("API during capture: %v, packets %d\n%s", err, live.Packets, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ws, ok := err.(*exec.ExitError); !ok || ws.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Skipf("capture ended before the kill (err %v): nothing to recover", err)
	}
	vout, _ := tv(t, false, "verify", "--data", store)
	if !strings.Contains(vout, "verify: OK") {
		t.Fatalf("verify after kill -9:\n%s", vout)
	}
	cnt, _ := tv(t, false, "query", "--data", store, "--count")
	before, err := strconv.Atoi(strings.TrimSpace(cnt))
	if err != nil || before <= 0 {
		t.Fatalf("count after kill -9: %q", cnt)
	}
	// Committed packets are a prefix of the trace, in order.
	exported := filepath.Join(dir, "out.pcap")
	tv(t, false, "query", "--data", store, "-w", exported)
	got := readAll(t, exported)
	want := readAll(t, trace)[:len(got)]
	samePackets(t, got, want, 1000, true)

	// A new writer recovers (cuts a torn tail) and appends.
	more := filepath.Join(dir, "more.pcap")
	genTrace(t, more, "udp64", 1000)
	tv(t, false, "import", "--data", store, more)
	cnt, _ = tv(t, false, "query", "--data", store, "--count")
	if after, _ := strconv.Atoi(strings.TrimSpace(cnt)); after != before+1000 {
		t.Fatalf("count after recovery and import: got %d, want %d", after, before+1000)
	}
	vout, _ = tv(t, false, "verify", "--data", store)
	if !strings.Contains(vout, "verify: OK") || strings.Contains(vout, "after the last complete block") {
		t.Fatalf("verify after recovery:\n%s", vout)
	}
	fmt.Fprintln(io.Discard, logs.String())
}

// TestRetentionThroughTheCLI imports more than a byte budget allows: the
// oldest whole segments go, stats says so, and what remains verifies and
// answers queries.
func TestRetentionThroughTheCLI(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 60000)
	store := filepath.Join(dir, "store")
	out, _ := tv(t, false, "import", "--data", store, "--segment-size", "2MiB", "--block-size", "128KiB", "--retain-bytes", "6MiB", trace)
	if !strings.Contains(out, "retention         dropped") {
		t.Fatalf("import summary has no retention line:\n%s", out)
	}
	st, _ := tv(t, false, "stats", "--data", store, "--json")
	var s struct {
		Packets      uint64 `json:"packets"`
		SegmentBytes int64  `json:"segment_bytes"`
		Retention    []struct {
			Segment uint32 `json:"segment"`
		} `json:"retention_actions"`
	}
	if err := json.Unmarshal([]byte(st), &s); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, st)
	}
	if len(s.Retention) == 0 || s.SegmentBytes > 6<<20 || s.Packets == 0 || s.Packets >= 60000 {
		t.Fatalf("after retention: %d actions, %d segment bytes (budget %d), %d packets of 60000", len(s.Retention), s.SegmentBytes, 6<<20, s.Packets)
	}
	cnt, _ := tv(t, false, "query", "--data", store, "--count")
	if strings.TrimSpace(cnt) != strconv.FormatUint(s.Packets, 10) {
		t.Fatalf("query count %s, stats %d", strings.TrimSpace(cnt), s.Packets)
	}
	// What remains is the newest part of the trace, in order.
	exported := filepath.Join(dir, "out.pcap")
	tv(t, false, "query", "--data", store, "-w", exported)
	all := readAll(t, trace)
	samePackets(t, readAll(t, exported), all[len(all)-int(s.Packets):], 1, false)
	if vout, _ := tv(t, false, "verify", "--data", store); !strings.Contains(vout, "verify: OK") {
		t.Fatalf("verify after retention:\n%s", vout)
	}
}

// TestImportWriteOptions: an import compresses every block by default (no
// raw "behind" blocks) and writes flow sub-frames; --subframe-size 0 keeps
// one frame per block; the round trip and a flow query are the same either
// way; bad values are refused naming the flag.
func TestImportWriteOptions(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 20000)
	var outs [2]string
	for i, sub := range []string{"64KiB", "0"} {
		store := filepath.Join(dir, "store"+strconv.Itoa(i))
		out, _ := tv(t, false, "import", "--data", store, "--subframe-size", sub, "--compressors", "1", trace)
		if !strings.Contains(out, "compressor behind 0;") {
			t.Fatalf("import --subframe-size %s stored blocks raw while the compressor was behind:\n%s", sub, out)
		}
		exported := filepath.Join(dir, "out"+strconv.Itoa(i)+".pcap")
		tv(t, false, "query", "--data", store, "-w", exported)
		samePackets(t, readAll(t, exported), readAll(t, trace), 1000, true)
		f, _ := tv(t, false, "query", "--data", store, "--count", "host 10.0.0.1 or host 10.0.0.2")
		outs[i] = strings.TrimSpace(f)
		if vout, _ := tv(t, false, "verify", "--data", store); !strings.Contains(vout, "verify: OK") {
			t.Fatalf("verify --subframe-size %s:\n%s", sub, vout)
		}
	}
	if outs[0] != outs[1] {
		t.Fatalf("a host query counts %s with sub-frames, %s without", outs[0], outs[1])
	}
	for _, tc := range []struct{ flag, val string }{{"--subframe-size", "1KiB"}, {"--subframe-size", "lots"}, {"--write-io", "sideways"}} {
		_, errOut := tv(t, true, "import", "--data", filepath.Join(dir, "bad"), tc.flag, tc.val, trace)
		if !strings.Contains(errOut, tc.flag) {
			t.Fatalf("%s %s: error %q does not name the flag", tc.flag, tc.val, errOut)
		}
	}
}

// TestQueryWritesToAFIFO: -w onto something that is not a regular file (a
// named pipe here; /dev/null and other devices the same) writes into it.
// Writing a temporary file and renaming it over the target, as for regular
// files, replaced a root user's /dev/null with a regular file.
func TestQueryWritesToAFIFO(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "mixed", 3000)
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, trace)
	file := filepath.Join(dir, "out.pcap")
	tv(t, false, "query", "--data", store, "-w", file)
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hold, err := os.OpenFile(fifo, os.O_WRONLY, 0) // so the reader sees no EOF before the query opens it
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	tv(t, false, "query", "--data", store, "-w", fifo)
	hold.Close()
	b := <-got
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the named pipe was replaced: %v %v", fi.Mode(), err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("read %d bytes from the pipe, want the %d of -w to a file", len(b), len(want))
	}
}
