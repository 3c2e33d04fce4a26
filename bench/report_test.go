package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"tapvault/dataplane"
	"tapvault/pipeline"
	"tapvault/writer"
)

func sampleResult() *Result {
	return &Result{
		Port:     "net_ring0",
		Driver:   "net_ring",
		Sent:     3_000_000,
		PortStat: dataplane.PortStats{IPackets: 2_999_000, IMissed: 700, RxNoMbuf: 300},
		Report: pipeline.Report{
			Elapsed:      2 * time.Second,
			RxPackets:    2_999_000,
			RxBytes:      2_999_000 * 100,
			DropNoBuffer: 40,
			DropWriter:   2,
			WorkerCPU:    []time.Duration{1500 * time.Millisecond},
			ProcessCPU:   3 * time.Second,
			Writer:       writer.Stats{PacketsCommitted: 2_998_958, RawBytes: 400_000_000, StoredBytes: 100_000_000, CompressNanos: 200e6, WriteNanos: 100e6},
		},
		Producer: 1 * time.Second,
		DiskSize: 101_000_000,
	}
}

func TestRunSummaryFrom(t *testing.T) {
	s := RunSummaryFrom(sampleResult())
	if s.Name != "net_ring0" || s.Driver != "net_ring" || s.Packets != 2_999_000 || s.Sent != 3_000_000 {
		t.Errorf("got %q %q %d packets %d sent", s.Name, s.Driver, s.Packets, s.Sent)
	}
	want := Drops{DropIMissed: 700, DropRxNoMbuf: 300, DropIErrors: 0, DropNoBuffer: 40, DropWriterQueue: 2}
	if len(s.Drops) != len(want) {
		t.Errorf("got drops %v, want %v", s.Drops, want)
	}
	for k, v := range want {
		if got, ok := s.Drops[k]; !ok || got != v {
			t.Errorf("drop %s: got %d (present %v), want %d", k, got, ok, v)
		}
	}
	if got := s.Mpps(); math.Abs(got-1.4995) > 1e-9 {
		t.Errorf("got %v Mpps, want 1.4995", got)
	}
	if got := s.Gbps(); math.Abs(got-1.1996) > 1e-9 {
		t.Errorf("got %v Gbps, want 1.1996", got)
	}
	if got := s.CompressionRatio(); got != 4 {
		t.Errorf("got compression %v, want 4", got)
	}
	if s.PeakRSS <= 0 {
		t.Errorf("got peak RSS %d, want > 0", s.PeakRSS)
	}
	cpu := map[string]float64{}
	for _, st := range s.Stages {
		cpu[st.Name] = st.CPU
	}
	// Process 3 s = worker 1.5 + producer 1 + the rest 0.5, of which
	// compress 0.2 and write 0.1 (no index), leaving 0.2 to "other".
	for name, v := range map[string]float64{StageGenerator: 1, StageNIC: 0, StageWorker: 1.5, StageCompress: 0.2, StageWrite: 0.1, StageIndex: 0, StageWriter: 0.2} {
		if got, ok := cpu[name]; !ok || math.Abs(got-v) > 1e-9 {
			t.Errorf("stage %s: got %v s (present %v), want %v", name, got, ok, v)
		}
	}
}

func sampleReport() *Report {
	run := RunSummaryFrom(sampleResult())
	run.Name = "net_ring, 3 x 1M frames"
	run.IndexBytes = 2_000_000
	run.PeakRSS = 300 << 20
	dev := &fakeDevice{capacity: 1_234_567}
	search, err := SearchLossFree(bgCtx(), SearchOptions{Kind: "udp64", MaxRate: 2e6, MaxTrials: 6, Duration: time.Second}, dev.trial, nil)
	if err != nil {
		panic(err)
	}
	return &Report{
		Machine: Machine{
			CPUModel: "Test CPU | 9000", LogicalCPUs: 8, PhysicalCores: 4, Sockets: 1, MemTotal: 16 << 30,
			HugePages:   HugePages{Total: 1024, Free: 1000, PageSize: 2 << 20, Hugetlbfs: []string{"/dev/hugepages"}},
			DPDKVersion: "22.11.11", Kernel: "6.1.0-test", GoVersion: "go1.26.8",
			Store: Disk{Dir: "/data/store", MountPoint: "/data", Device: "/dev/nvme0n1", FSType: "xfs", FreeBytes: 500 << 30, TotalBytes: 1 << 40},
			Date:  time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC),
		},
		Command:  CommandLine([]string{"tapvault", "bench", "--kind", "udp64", "--data", "/tmp/my dir"}),
		Runs:     []RunSummary{run},
		Searches: []SearchResult{search},
		Peers: []Peer{
			{Name: "tapvault", Rate: "max", Sent: 1000, SentPPS: 250000, Captured: 1000, DropsKnown: true, CPU: 0.5, DiskBytes: 61000},
			{Name: "tcpdump", Rate: "max", Sent: 1000, SentPPS: 251000, Captured: 900, Drops: 100, DropsKnown: true, CPU: 0.2, DiskBytes: 240000},
			{Name: "dumpcap", Rate: "max", Sent: 1000, Error: "exit status 1"},
		},
		Goals: []GoalCheck{
			CheckGoal("loss-free rate, 64 B", "Mpps", 1, search.LossFreePPS/1e6, false),
			CheckGoal("worker CPU per Mpps", "s", 0.5, 1.0, true),
		},
		Notes: []string{"shared VM"},
	}
}

func TestWriteMarkdown(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"tapvault bench --kind udp64 --data '/tmp/my dir'",
		`| CPU | Test CPU \| 9000 (8 logical, 4 physical, 1 socket(s)) |`,
		"| Memory | 16.0 GiB |",
		"1024 x 2.0 MiB, 1000 free; hugetlbfs at /dev/hugepages",
		"| DPDK | 22.11.11 |",
		"xfs on /dev/nvme0n1 (mounted at /data), 500.0 GiB free of 1.0 TiB",
		"| 2025-11-22T10:00:00Z |",
		// Runs: summary row and per-run tables.
		"| net_ring, 3 x 1M frames | net_ring | 2999000 | 1.500 | 1.200 | 1042 | 95.4 MiB | 4.00x | 0.0200 | 300.0 MiB |",
		"| imissed | 700 |",
		"| writer_queue | 2 |",
		"| **total** | 1042 |",
		"| worker | rx, decode, flow, block build | 2999000 | 1.500 | 1.500 | 75% | 1.999 |",
		"| compress | zstd (time in the compressor goroutines) | 2998958 |",
		"| other | the rest: commit hook, Go runtime and GC | 2998958 |",
		// Search: summary, sentence, trials.
		"## Loss-free rate",
		"| udp64 | ",
		"| 1 | 2.000 | 2.000 | 1.235 | 0.632 | 765433 | 38.2717 | imissed 765433 | worker 0.90 | fail |",
		"| 2 | 1.000 | 1.000 | 1.000 | 0.512 | 0 | 0.0000 | 0 drops | worker 0.90 | pass |",
		// Peers and goals.
		"| tapvault | max | 1000 | 250000 | 1000 | 0 | 0.0000% | 0 | 0.500 | 500.000 | 61000 |  |",
		"| tcpdump | max | 1000 | 251000 | 900 | 100 | 10.0000% | 100 | 0.200 | 222.222 | 240000 |  |",
		"| dumpcap | max | 1000 | 0 | 0 | 1000 | 100.0000% | ? | 0.000 | - | 0 | exit status 1 |",
		"| worker CPU per Mpps | ≤ 0.5 s | 1 s | no |",
		"- shared VM",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
	s := &r.Searches[0]
	if !strings.Contains(md, searchSentence(s)) || s.Outcome == "" {
		t.Errorf("markdown lacks the search sentence %q", searchSentence(s))
	}
	if g := r.Goals[0]; !g.Met || !strings.Contains(md, "| loss-free rate, 64 B | ≥ 1 Mpps |") {
		t.Errorf("got goal %+v, want met and reported", g)
	}
	// Every table row has as many cells as its header.
	var cols int
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			cols = 0
			continue
		}
		n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|")
		if cols == 0 {
			cols = n
		} else if n != cols {
			t.Errorf("row %q has %d separators, header %d", line, n, cols)
		}
	}
}

func TestWriteJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"machine"`, `"cpu_model"`, `"hugetlbfs_mounts"`, `"loss_free_pps"`, `"trials"`, `"offered_pps"`,
		`"drops"`, `"imissed"`, `"cpu_seconds"`, `"stored_bytes"`, `"index_bytes"`, `"peak_rss_bytes"`, `"goals"`, `"met"`} {
		if !bytes.Contains(b.Bytes(), []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	var b2 bytes.Buffer
	if err := back.WriteJSON(&b2); err != nil {
		t.Fatal(err)
	}
	if b.String() != b2.String() {
		t.Errorf("JSON changed on a round trip:\n%s\nvs\n%s", b.String(), b2.String())
	}
	if !back.Machine.Date.Equal(r.Machine.Date) || back.Searches[0].LossFreePPS != r.Searches[0].LossFreePPS ||
		len(back.Searches[0].Trials) != len(r.Searches[0].Trials) || back.Runs[0].Drops[DropIMissed] != 700 ||
		back.Searches[0].Trials[0].Drops[DropIMissed] != r.Searches[0].Trials[0].Drops[DropIMissed] {
		t.Errorf("got %+v after a round trip, want %+v", back, *r)
	}

	// An empty report writes lists as [], never null.
	var e bytes.Buffer
	if err := (&Report{}).WriteJSON(&e); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(e.Bytes(), []byte("null")) {
		t.Errorf("empty report JSON has null:\n%s", e.String())
	}
}

func TestCheckGoal(t *testing.T) {
	for _, tc := range []struct {
		target, measured float64
		atMost, want     bool
	}{
		{10, 10, false, true}, {10, 9.99, false, false}, {10, 10, true, true}, {10, 10.01, true, false},
	} {
		if got := CheckGoal("g", "u", tc.target, tc.measured, tc.atMost).Met; got != tc.want {
			t.Errorf("target %v measured %v at most %v: got met %v, want %v", tc.target, tc.measured, tc.atMost, got, tc.want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got := CommandLine([]string{"tapvault", "bench", "--pps=1e6", "", "it's", "a b", "x;y"})
	want := `tapvault bench --pps=1e6 '' 'it'\''s' 'a b' 'x;y'`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestIEC(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 20: "3.0 MiB", 1 << 40: "1.0 TiB"} {
		if got := iec(n); got != want {
			t.Errorf("iec(%d): got %s, want %s", n, got, want)
		}
	}
}

func bgCtx() context.Context { return context.Background() }

func TestPeersFrom(t *testing.T) {
	res := sampleResult()
	c := &Comparison{
		Rate:           Rate{PPS: 1000},
		Tapvault:       res,
		TapvaultReplay: ReplayResult{Packets: 3_000_000, PPS: 1000},
		Peers: []PeerRun{
			{PeerResult: PeerResult{Kind: PeerTcpdump, Captured: 2_900_000, Reported: true, KernelDrops: 100_000, CPU: 2 * time.Second},
				Replay: ReplayResult{Packets: 3_000_000, PPS: 999}},
			{PeerResult: PeerResult{Kind: PeerDumpcap}, Err: errors.New("not found")},
		},
	}
	ps := PeersFrom(c)
	if len(ps) != 3 {
		t.Fatalf("got %d peers, want 3", len(ps))
	}
	tv, td, dc := ps[0], ps[1], ps[2]
	if tv.Name != "tapvault" || tv.Rate != "pps=1000" || tv.Sent != 3_000_000 || tv.Captured != 2_998_958 || tv.Drops != 1042 || !tv.DropsKnown || tv.CPU != 3 {
		t.Errorf("got tapvault %+v", tv)
	}
	if tv.Lost() != 1042 {
		t.Errorf("got tapvault lost %d, want 1042", tv.Lost())
	}
	if td.Name != PeerTcpdump || td.Captured != 2_900_000 || td.Drops != 100_000 || td.CPU != 2 || td.SentPPS != 999 || td.Error != "" {
		t.Errorf("got tcpdump %+v", td)
	}
	if dc.Error != "not found" || dc.DropsKnown {
		t.Errorf("got dumpcap %+v", dc)
	}
}
