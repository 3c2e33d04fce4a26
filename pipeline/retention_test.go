package pipeline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/bench"
	"tapvault/dataplane"
	"tapvault/msgstore"
	"tapvault/pipeline"
	"tapvault/query"
	"tapvault/writer"
)

const retPackets = 20000

// retTrace generates the trace the retention tests import: 20000 packets
// 100 us apart (2 s of packet time).
func retTrace(t *testing.T, dir string) string {
	t.Helper()
	trace := filepath.Join(dir, "t.pcap")
	if _, err := bench.GenerateFile(trace, bench.GenOptions{Kind: "imix", Packets: retPackets, Flows: 200, Seed: 7, PPS: 10000}); err != nil {
		t.Fatal(err)
	}
	return trace
}

// retOptions: one small block per segment, the index on.
func retOptions(ret pipeline.RetentionOptions) pipeline.Options {
	return pipeline.Options{BlockSize: 16 << 10, Blocks: 8, SegmentSize: writer.MinSegmentSize, Index: true, Retention: ret}
}

// spans lists the store's segments with their packet time.
func spans(t *testing.T, dir string) []writer.SegmentSpan {
	t.Helper()
	r, err := writer.OpenReader(dir, writer.WithReaderLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	segs, err := r.Segments()
	if err != nil {
		t.Fatal(err)
	}
	var out []writer.SegmentSpan
	for _, si := range segs {
		sp, err := r.Span(si)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sp)
	}
	return out
}

// checkRetained checks what a run with retention left: the log names
// exactly the segments that are gone, the oldest ones; the report agrees;
// the index has no refs of them; a query returns exactly the packets of the
// segments left; Verify is clean. It returns the segments left and the log.
func checkRetained(t *testing.T, store string, rep pipeline.Report, reason string) ([]writer.SegmentSpan, []pipeline.RetentionAction) {
	t.Helper()
	left := spans(t, store)
	log, err := pipeline.RetentionLog(store)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) == 0 {
		t.Fatal("retention log: got no actions, want some")
	}
	if rep.RetentionDrops != len(log) {
		t.Fatalf("report: got %d drops, want %d (the log's)", rep.RetentionDrops, len(log))
	}
	dropped := map[uint32]bool{}
	var bytes int64
	var pkts uint64
	for _, a := range log {
		if a.Reason != reason || a.Bytes <= 0 || a.Blocks < 1 || a.Packets < 1 || a.MinNS > a.MaxNS || a.Time.IsZero() {
			t.Fatalf("retention action: got %+v, want reason %q and a whole segment", a, reason)
		}
		if dropped[a.Segment] {
			t.Fatalf("retention log: segment %d dropped twice", a.Segment)
		}
		dropped[a.Segment] = true
		bytes += a.Bytes
		pkts += a.Packets
	}
	if rep.RetentionBytes != bytes {
		t.Fatalf("report: got %d bytes dropped, want %d (the log's)", rep.RetentionBytes, bytes)
	}
	var kept uint64
	for _, sp := range left {
		if dropped[sp.Number] {
			t.Fatalf("segment %d: logged as dropped, still on disk", sp.Number)
		}
		kept += sp.Packets
	}
	if len(left) == 0 {
		t.Fatal("no segment left, want the newest at least")
	}
	// Every segment below the first left is gone, and only those, but for
	// max_age, which may keep an old segment with new packets.
	for n := uint32(1); n < left[0].Number; n++ {
		if !dropped[n] {
			t.Fatalf("segment %d: neither on disk nor in the log", n)
		}
	}
	if kept+pkts != retPackets {
		t.Fatalf("packets: got %d kept + %d dropped, want %d", kept, pkts, retPackets)
	}
	if rep.Writer.PacketsCommitted != retPackets {
		t.Fatalf("committed: got %d, want %d", rep.Writer.PacketsCommitted, retPackets)
	}

	st, err := query.OpenStore(store, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.IndexState != query.IndexOK {
		t.Fatalf("index state: got %q, want %q", st.IndexState, query.IndexOK)
	}
	for _, a := range log {
		it := st.Ix.Time(a.MinNS, a.MaxNS)
		for it.Next() {
			if dropped[it.At().Segment()] {
				t.Fatalf("index Time over dropped segment %d: got ref %v of a dropped segment", a.Segment, it.At())
			}
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	res, err := st.Run(context.Background(), query.Request{From: query.MinTime, To: query.MaxTime}, func(*query.Packet) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if res.Matched != kept || res.SkippedCorrupt != 0 || res.SkippedGone != 0 {
		t.Fatalf("query: got %d packets (%d corrupt, %d gone blocks), want %d, 0, 0", res.Matched, res.SkippedCorrupt, res.SkippedGone, kept)
	}
	vr, err := writer.Verify(store, nil)
	if err != nil || !vr.OK() || vr.Packets != kept {
		t.Fatalf("verify: got %d packets, %d bad blocks, %v; want %d, 0, nil", vr.Packets, vr.BadBlocks, err, kept)
	}
	return left, log
}

func TestRetentionMaxBytes(t *testing.T) {
	dir := t.TempDir()
	trace := retTrace(t, dir)
	store := filepath.Join(dir, "store")
	const budget = 64 << 10
	// The loop never ticks: the pass at the end of the run does the work.
	rep := importFile(t, store, trace, retOptions(pipeline.RetentionOptions{MaxBytes: budget, Every: time.Hour}))
	left, log := checkRetained(t, store, rep, pipeline.ReasonMaxBytes)
	var total int64
	for _, sp := range left {
		total += sp.Size
	}
	if total > budget {
		t.Fatalf("segment bytes left: got %d, want at most %d", total, budget)
	}
	// Only as much as needed: with the last segment dropped back, the
	// budget would not hold.
	if last := log[len(log)-1]; total+last.Bytes <= budget {
		t.Fatalf("segment %d dropped with %d bytes left: not needed for a %d budget", last.Segment, total, budget)
	}
	// The oldest went: the log is in segment order from 1.
	for i, a := range log {
		if a.Segment != uint32(i+1) {
			t.Fatalf("action %d: got segment %d, want %d (oldest first)", i, a.Segment, i+1)
		}
	}
}

func TestRetentionMaxAge(t *testing.T) {
	dir := t.TempDir()
	trace := retTrace(t, dir)
	store := filepath.Join(dir, "store")
	const maxAge = 500 * time.Millisecond // of the trace's 2 s
	rep := importFile(t, store, trace, retOptions(pipeline.RetentionOptions{MaxAge: maxAge, Every: time.Hour}))
	left, log := checkRetained(t, store, rep, pipeline.ReasonMaxAge)
	var newest int64
	for _, sp := range left {
		newest = max(newest, sp.MaxTS)
	}
	cut := newest - int64(maxAge)
	for _, a := range log {
		if a.MaxNS >= cut {
			t.Fatalf("segment %d dropped with newest packet %d, want older than %d", a.Segment, a.MaxNS, cut)
		}
	}
	for _, sp := range left[:len(left)-1] {
		if sp.MaxTS < cut {
			t.Fatalf("segment %d kept with newest packet %d, older than %d", sp.Number, sp.MaxTS, cut)
		}
	}
	if first := left[0].MinTS; first > cut || newest-first < int64(maxAge) {
		t.Fatalf("packet time kept: got [%d, %d], want about the last %v", first, newest, maxAge)
	}
}

func TestRetentionKeepFree(t *testing.T) {
	dir := t.TempDir()
	trace := retTrace(t, dir)
	store := filepath.Join(dir, "store")
	// A fake filesystem of 64 MiB holding only the segments (about 4.8 MB):
	// keeping 95% free leaves room for 3.2 MiB.
	const fsSize = 64 << 20
	statfs := func(path string) (uint64, uint64, error) {
		if path != store {
			return 0, 0, errors.New("statfs of another path")
		}
		var used int64
		ents, err := os.ReadDir(filepath.Join(path, "segments"))
		if err != nil {
			return 0, 0, err
		}
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				return 0, 0, err
			}
			used += fi.Size()
		}
		return fsSize, uint64(max(0, fsSize-used)), nil
	}
	rep := importFile(t, store, trace, retOptions(pipeline.RetentionOptions{KeepFreePercent: 95, Every: time.Hour, Statfs: statfs}))
	left, _ := checkRetained(t, store, rep, pipeline.ReasonKeepFree)
	var used int64
	for _, sp := range left {
		used += sp.Size
	}
	if used > fsSize*5/100 {
		t.Fatalf("segment bytes left: got %d, want at most 5%% of %d", used, fsSize)
	}
}

// TestRetentionDuringRun drops segments while a lossless import writes and
// queries read: every block committed and not dropped stays readable.
func TestRetentionDuringRun(t *testing.T) {
	dir := t.TempDir()
	trace := retTrace(t, dir)
	store := filepath.Join(dir, "store")
	opts := retOptions(pipeline.RetentionOptions{MaxBytes: 48 << 10, Every: time.Millisecond})
	opts.Dir, opts.Logger, opts.Lossless = store, quiet(), true
	p, err := pipeline.Open(opts, 1)
	if err != nil {
		t.Fatal(err)
	}
	src, err := dataplane.OpenFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var (
		duringRun atomic.Bool // a drop was seen before every packet was committed
		done      = make(chan struct{})
		wg        sync.WaitGroup
		qerr      error
		queries   int
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			// (Not p.Live: it reads the run's start time unsynchronised.)
			committed := p.Writer().Stats().PacketsCommitted
			if log, err := pipeline.RetentionLog(store); err == nil && len(log) > 0 && committed < retPackets {
				duringRun.Store(true)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	go func() { // header-scan queries, racing the drops
		defer wg.Done()
		st, err := query.OpenStoreWithIndex(store, nil, quiet())
		if err != nil {
			qerr = err
			return
		}
		defer st.Close()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := st.Run(context.Background(), query.Request{From: query.MinTime, To: query.MaxTime}, func(*query.Packet) error { return nil }); err != nil {
				qerr = err
				return
			}
			queries++
		}
	}()
	rep, err := p.Run([]dataplane.Source{src})
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if qerr != nil {
		t.Fatalf("query during retention: %v", qerr)
	}
	if queries == 0 {
		t.Fatal("no query ran during the import")
	}
	if !duringRun.Load() {
		t.Fatal("no segment dropped while the import wrote, want some")
	}
	if rep.DropNoBuffer+rep.DropWriter != 0 || rep.Writer.BlocksLost != 0 {
		t.Fatalf("lossless run: got drops %d+%d, lost blocks %d, want none", rep.DropNoBuffer, rep.DropWriter, rep.Writer.BlocksLost)
	}
	checkRetained(t, store, rep, pipeline.ReasonMaxBytes)
}

func TestRetentionLogTornLine(t *testing.T) {
	dir := t.TempDir()
	body := `{"time":"2024-01-01T00:00:00Z","segment":3,"bytes":100,"blocks":1,"packets":5,"min_ns":1,"max_ns":2,"reason":"max_age"}` + "\n" + `{"time":"2024-01-01T00:0`
	if err := os.WriteFile(filepath.Join(dir, pipeline.RetentionLogName), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := pipeline.RetentionLog(dir)
	if err != nil || len(got) != 1 || got[0].Segment != 3 || got[0].Packets != 5 || got[0].Reason != pipeline.ReasonMaxAge {
		t.Fatalf("got %+v, %v, want one max_age action for segment 3", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, pipeline.RetentionLogName), []byte("junk\n"+body+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.RetentionLog(dir); err == nil {
		t.Fatal("a bad line in the middle: got no error, want one")
	}
	if got, err := pipeline.RetentionLog(t.TempDir()); err != nil || got != nil {
		t.Fatalf("no log: got %v, %v, want nothing", got, err)
	}
}

// TestRetentionDropsMessages: message records go with the packets they
// describe. An app trace is imported with analytics on, small message
// files and a byte budget; every message file left (but the newest, which
// may be open) holds records newer than the newest packet of every
// dropped segment, and the oldest files are gone.
func TestRetentionDropsMessages(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := bench.GenerateFile(trace, bench.GenOptions{Kind: bench.KindApp, Packets: retPackets, Seed: 7, PPS: 2000}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	ac := analytics.DefaultConfig()
	opts := retOptions(pipeline.RetentionOptions{MaxBytes: 64 << 10, Every: time.Hour})
	opts.Analytics = &ac
	opts.Messages = msgstore.Options{FrameRecords: 64, FileBytes: 4 << 10}
	rep := importFile(t, store, trace, opts)
	if rep.Analytics == nil || rep.Analytics.Stored == 0 {
		t.Fatalf("no records stored: %+v", rep.Analytics)
	}
	log, err := pipeline.RetentionLog(store)
	if err != nil || len(log) == 0 {
		t.Fatalf("retention log: %v, %d actions; want some", err, len(log))
	}
	var newestDropped int64
	for _, a := range log {
		newestDropped = max(newestDropped, a.MaxNS)
	}
	files, err := msgstore.Files(store)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 || files[0].Seq == 1 {
		t.Fatalf("message files: %d left, first %v; want the oldest dropped", len(files), files)
	}
	for _, f := range files[:len(files)-1] {
		if f.MaxTS < newestDropped {
			t.Fatalf("message file %s ends at %d, before the dropped packets' newest %d: should have gone", f.Path, f.MaxTS, newestDropped)
		}
	}
	t.Logf("%d segments dropped; %d message files left of %d records stored", len(log), len(files), rep.Analytics.Stored)
}
