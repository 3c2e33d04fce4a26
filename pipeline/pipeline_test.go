package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tapvault/dataplane"
	"tapvault/index"
	"tapvault/pipeline"
	"tapvault/query"
	"tapvault/tracegen"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func importFile(t *testing.T, dir, trace string, opts pipeline.Options) pipeline.Report {
	t.Helper()
	opts.Dir, opts.Logger, opts.Lossless = dir, quiet(), true
	p, err := pipeline.Open(opts, 1)
	if err != nil {
		t.Fatal(err)
	}
	src, err := dataplane.OpenFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := p.Run([]dataplane.Source{src})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func count(t *testing.T, dir string) uint64 {
	t.Helper()
	st, err := query.OpenStore(dir, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := st.Run(context.Background(), query.Request{From: query.MinTime, To: query.MaxTime}, func(*query.Packet) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.IndexState != query.IndexOK {
		t.Fatalf("index state %q after a run with the index on, want %q", st.IndexState, query.IndexOK)
	}
	return res.Matched
}

func TestLosslessRunWithIndex(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: "mixed", Packets: 30000, Flows: 500, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	// A pool of 4 small blocks and a short queue: a lossless run must wait,
	// never drop.
	rep := importFile(t, store, trace, pipeline.Options{BlockSize: 32 << 10, Blocks: 4, Index: true})
	if rep.RxPackets != 30000 || rep.Writer.PacketsCommitted != 30000 || rep.DropNoBuffer+rep.DropWriter != 0 {
		t.Fatalf("got rx %d committed %d drops %d+%d, want 30000, 30000, 0", rep.RxPackets, rep.Writer.PacketsCommitted, rep.DropNoBuffer, rep.DropWriter)
	}
	if rep.Index == nil || rep.Index.Blocks != rep.Writer.BlocksCommitted || rep.IndexBytes <= 0 {
		t.Fatalf("index: got %+v, %d bytes, want %d blocks", rep.Index, rep.IndexBytes, rep.Writer.BlocksCommitted)
	}
	if rep.TimeToQueryable.Count != int(rep.Writer.BlocksCommitted) || rep.TimeToQueryable.P50 <= 0 {
		t.Fatalf("time to queryable: got %+v, want one sample per block (%d)", rep.TimeToQueryable, rep.Writer.BlocksCommitted)
	}
	if len(rep.WorkerCPU) != 1 || rep.ProcessCPU <= 0 {
		t.Fatalf("CPU accounting: got workers %v process %v", rep.WorkerCPU, rep.ProcessCPU)
	}
	if got := count(t, store); got != 30000 {
		t.Fatalf("query count: got %d, want 30000", got)
	}
}

// endless is a live source with nothing to receive: only Stop ends a run.
type endless struct{}

func (endless) Recv(b *dataplane.Burst) (int, error) { b.N = 0; return 0, nil }
func (endless) Close() error                         { return nil }

func TestStopEndsALiveRun(t *testing.T) {
	p, err := pipeline.Open(pipeline.Options{Dir: t.TempDir(), Logger: quiet()}, 2)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Run([]dataplane.Source{endless{}, endless{}})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	p.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return 5 s after Stop")
	}
}

func TestDamagedIndexIsMovedAsideAndRebuilt(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: "imix", Packets: 5000, Flows: 100, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	importFile(t, store, trace, pipeline.Options{BlockSize: 32 << 10, Index: true})
	// Wreck the index: a Badger MANIFEST of garbage.
	ixDir := index.DirOf(store)
	if err := os.RemoveAll(ixDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(ixDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ixDir, "MANIFEST"), []byte("not a manifest"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The next writer moves it aside, rebuilds it from the segments, and
	// indexes what it adds.
	importFile(t, store, trace, pipeline.Options{BlockSize: 32 << 10, Index: true})
	entries, _ := os.ReadDir(store)
	aside := false
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "index.corrupt-") {
			aside = true
		}
	}
	if !aside {
		t.Fatalf("no index.corrupt-* beside the store's index; entries %v", entries)
	}
	if got := count(t, store); got != 10000 {
		t.Fatalf("query count after rebuild: got %d, want 10000", got)
	}
}

// Live is for progress displays: it runs beside Run (go test -race checks).
func TestLiveDuringRun(t *testing.T) {
	p, err := pipeline.Open(pipeline.Options{Dir: t.TempDir(), Logger: quiet()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			_ = p.Live()
			time.Sleep(time.Millisecond)
		}
	}()
	go func() { time.Sleep(30 * time.Millisecond); p.Stop() }()
	if _, err := p.Run([]dataplane.Source{endless{}}); err != nil {
		t.Fatal(err)
	}
	<-done
}

// SetRetention (a SIGHUP reload) sets limits on an open pipeline that had
// none: the run's final check applies them.
func TestSetRetentionOnAnOpenPipeline(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: "imix", Packets: 20000, Flows: 200, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	p, err := pipeline.Open(pipeline.Options{Dir: store, Logger: quiet(), Lossless: true, BlockSize: 64 << 10, SegmentSize: 1 << 20, Index: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetRetention(pipeline.RetentionOptions{MaxBytes: -1}); err == nil {
		t.Fatalf("a negative budget was accepted")
	}
	if err := p.SetRetention(pipeline.RetentionOptions{MaxBytes: 3 << 20}); err != nil {
		t.Fatal(err)
	}
	src, err := dataplane.OpenFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := p.Run([]dataplane.Source{src})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RetentionDrops == 0 {
		t.Fatalf("no segment dropped with a 3 MiB budget set by SetRetention")
	}
	acts, err := pipeline.RetentionLog(store)
	if err != nil || len(acts) != rep.RetentionDrops {
		t.Fatalf("retention log: %d actions (err %v), report %d", len(acts), err, rep.RetentionDrops)
	}
}
