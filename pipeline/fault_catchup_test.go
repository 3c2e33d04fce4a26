package pipeline_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"tapvault/dataplane"
	"tapvault/index"
	"tapvault/pipeline"
	"tapvault/query"
	"tapvault/tracegen"
)

// A live capture (not lossless) starting on a store with many unindexed
// blocks (a stop that left them to the next start, a capture without the
// index) must not wait for the index catch-up before it captures: Open
// returns with nothing indexed yet and the catch-up runs beside the
// capture. A stop interrupts it promptly, nothing is lost (queries find
// the rest by header scan), and the next start indexes the rest: every
// block, exactly.
func TestFaultCatchUpInBackground(t *testing.T) {
	dir := t.TempDir()
	traceA, traceB := filepath.Join(dir, "a.pcap"), filepath.Join(dir, "b.pcap")
	if _, err := tracegen.GenerateFile(traceA, tracegen.Options{Kind: "imix", Packets: 4000, Flows: 100, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := tracegen.GenerateFile(traceB, tracegen.Options{Kind: "imix", Packets: 12000, Flows: 300, Seed: 6}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	// K blocks indexed (an import catches up at Open and fills its holes
	// before it exits), then M blocks written without the index.
	repA := importFile(t, store, traceA, pipeline.Options{BlockSize: 16 << 10, Index: true})
	repB := importFile(t, store, traceB, pipeline.Options{BlockSize: 16 << 10})
	k, m := repA.Writer.BlocksCommitted, repB.Writer.BlocksCommitted
	t.Logf("%d blocks indexed, %d written without the index", k, m)
	if m < 50 {
		t.Fatalf("only %d unindexed blocks: the test needs many", m)
	}
	const packets = 16000

	open := func() *pipeline.Pipeline {
		t.Helper()
		p, err := pipeline.Open(pipeline.Options{Dir: store, Logger: quiet(), Index: true, BlockSize: 16 << 10}, 1)
		if err != nil {
			t.Fatal(err)
		}
		// Open returned before the catch-up indexed anything.
		if st := p.Index().Stats(); st.CaughtUp || st.Blocks != 0 {
			t.Fatalf("after Open: caught up %v, %d blocks indexed; want the catch-up left to the background", st.CaughtUp, st.Blocks)
		}
		return p
	}
	run := func(p *pipeline.Pipeline) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := p.Run([]dataplane.Source{endless{}})
			done <- err
		}()
		return done
	}
	ended := func(done chan error) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return 20 s after Stop")
		}
	}

	// 1. A stop while the catch-up is at its 5th block.
	const at = 5
	reached, release := make(chan struct{}), make(chan struct{})
	pipeline.SetCatchUpStep(func(n int64) {
		if n == at {
			close(reached)
			<-release
		}
	})
	p := open()
	done := run(p)
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatal("the background catch-up did not reach its 5th block in 60 s")
	}
	if total, _, _ := pipeline.CatchUpProgress(p); total != int64(m) {
		t.Fatalf("catch-up counted %d blocks to index, want the %d unindexed", total, m)
	}
	// Queries through the capture's live index meanwhile answer in full:
	// the blocks past the watermark by header scan.
	live := liveQuery(t, store, p.Index(), "")
	liveSSH := liveQuery(t, store, p.Index(), "tcp port 22")
	if live.Matched != packets || live.Plan.Unindexed < int(m)-at {
		t.Fatalf("query during the catch-up: %d packets (want %d), %d blocks by header scan (want at least %d)",
			live.Matched, packets, live.Plan.Unindexed, int(m)-at)
	}
	p.Stop()
	close(release)
	ended(done)
	pipeline.SetCatchUpStep(nil)
	if _, n, _ := pipeline.CatchUpProgress(p); n != at {
		t.Fatalf("the catch-up indexed %d blocks after the stop, want it to stop at %d", n, at)
	}
	if st := p.Index().Stats(); st.CaughtUp || st.Blocks != at {
		t.Fatalf("after the stop: caught up %v, %d blocks written, want false and %d", st.CaughtUp, st.Blocks, at)
	}
	// Nothing lost: what the index lacks is found by header scan.
	res := countRes(t, store)
	if res.Matched != packets || res.Plan.Unindexed < int(m)-at {
		t.Fatalf("query after the interrupted catch-up: %d packets (want %d), %d blocks by header scan (want at least %d)",
			res.Matched, packets, res.Plan.Unindexed, int(m)-at)
	}

	// 2. The next start indexes the rest in the background: all M blocks
	// after the watermark (the 5 again: the watermark had not moved).
	p = open()
	done = run(p)
	deadline := time.Now().Add(120 * time.Second)
	for !p.Index().Stats().CaughtUp {
		if time.Now().After(deadline) {
			t.Fatal("the background catch-up did not end in 120 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if total, n, _ := pipeline.CatchUpProgress(p); total != int64(m) || n != int64(m) {
		t.Fatalf("catch-up: %d of %d blocks, want %d of %d", n, total, m, m)
	}
	p.Stop()
	ended(done)

	// Every block is indexed, none left to the header scan.
	ix, err := index.Open(index.Options{Dir: index.DirOf(store), ReadOnly: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	it := ix.Time(0, 1<<62)
	var blocks uint64
	for it.Next() {
		blocks++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	holes := len(ix.Missing())
	ix.Close()
	if blocks != k+m || holes != 0 {
		t.Fatalf("index: %d blocks, %d holes; want %d (%d+%d) and 0", blocks, holes, k+m, k, m)
	}
	if res := countRes(t, store); res.Matched != packets || res.Plan.Unindexed != 0 {
		t.Fatalf("query: %d packets, %d blocks by header scan; want %d and 0", res.Matched, res.Plan.Unindexed, packets)
	}
	// The same filtered query, from the complete index, agrees with the
	// one answered during the catch-up.
	ix, err = index.Open(index.Options{Dir: index.DirOf(store), ReadOnly: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	ssh := liveQuery(t, store, ix, "tcp port 22")
	t.Logf("'tcp port 22': %d packets, %d blocks from the index (%d during the catch-up, %d by header scan)", ssh.Matched, ssh.Plan.FromIndex, liveSSH.Plan.FromIndex, liveSSH.Plan.Unindexed)
	if ssh.Matched != liveSSH.Matched || ssh.Matched == 0 || ssh.Plan.Unindexed != 0 {
		t.Fatalf("'tcp port 22': %d packets from the complete index (%d by header scan), %d during the catch-up", ssh.Matched, ssh.Plan.Unindexed, liveSSH.Matched)
	}
}

func liveQuery(t *testing.T, dir string, ix *index.Index, filter string) query.Result {
	t.Helper()
	st, err := query.OpenStoreWithIndex(dir, ix, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	req := query.Request{From: query.MinTime, To: query.MaxTime}
	if filter != "" {
		if req.Filter, err = query.ParseFilter(filter); err != nil {
			t.Fatal(err)
		}
	}
	res, err := st.Run(context.Background(), req, func(*query.Packet) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// An import keeps catching up at Open, before it reads its first packet.
func TestLosslessCatchesUpAtOpen(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: "imix", Packets: 3000, Flows: 50, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	rep := importFile(t, store, trace, pipeline.Options{BlockSize: 16 << 10})
	p, err := pipeline.Open(pipeline.Options{Dir: store, Logger: quiet(), Index: true, Lossless: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	st := p.Index().Stats()
	if _, _, bg := pipeline.CatchUpProgress(p); bg || !st.CaughtUp || st.Blocks != rep.Writer.BlocksCommitted {
		t.Fatalf("lossless Open: background %v, caught up %v, %d blocks indexed; want false, true, %d", bg, st.CaughtUp, st.Blocks, rep.Writer.BlocksCommitted)
	}
	p.Stop()
	if _, err := p.Run([]dataplane.Source{endless{}}); err != nil {
		t.Fatal(err)
	}
}

func countRes(t *testing.T, dir string) query.Result {
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
	return res
}

// A live run whose sources end by themselves (no stop) waits for its
// background catch-up: it leaves the index complete, as an import does.
func TestFaultCatchUpEndedSourcesWait(t *testing.T) {
	dir := t.TempDir()
	trace, small := filepath.Join(dir, "t.pcap"), filepath.Join(dir, "small.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: "imix", Packets: 6000, Flows: 100, Seed: 8}); err != nil {
		t.Fatal(err)
	}
	if _, err := tracegen.GenerateFile(small, tracegen.Options{Kind: "imix", Packets: 50, Flows: 5, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	rep := importFile(t, store, trace, pipeline.Options{BlockSize: 16 << 10})
	m := rep.Writer.BlocksCommitted
	// Hold the catch-up at its first block until the source has ended.
	reached, release := make(chan struct{}), make(chan struct{})
	pipeline.SetCatchUpStep(func(n int64) {
		if n == 1 {
			close(reached)
			<-release
		}
	})
	defer pipeline.SetCatchUpStep(nil)
	p, err := pipeline.Open(pipeline.Options{Dir: store, Logger: quiet(), Index: true, BlockSize: 16 << 10}, 1)
	if err != nil {
		t.Fatal(err)
	}
	src, err := dataplane.OpenFile(small)
	if err != nil {
		t.Fatal(err)
	}
	go func() { <-reached; time.Sleep(100 * time.Millisecond); close(release) }()
	rep2, err := p.Run([]dataplane.Source{src})
	if err != nil {
		t.Fatal(err)
	}
	if total, n, _ := pipeline.CatchUpProgress(p); total != int64(m) || n != int64(m) {
		t.Fatalf("catch-up: %d of %d blocks when Run returned, want %d of %d", n, total, m, m)
	}
	if rep2.Index == nil || !rep2.Index.CaughtUp || rep2.Index.Blocks != m+rep2.Writer.BlocksCommitted {
		t.Fatalf("index after the run: %+v; want caught up, %d+%d blocks", rep2.Index, m, rep2.Writer.BlocksCommitted)
	}
	if res := countRes(t, store); res.Matched != 6050 || res.Plan.Unindexed != 0 {
		t.Fatalf("query: %d packets, %d blocks by header scan; want 6050 and 0", res.Matched, res.Plan.Unindexed)
	}
}
