package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/dataplane"
	"tapvault/msgstore"
	"tapvault/pipeline"
	"tapvault/query"
	"tapvault/tracegen"
	"tapvault/writer"
)

const retPackets = 20000

// retTrace generates the trace the retention tests import: 20000 packets
// 100 us apart (2 s of packet time).
func retTrace(t *testing.T, dir string) string {
	t.Helper()
	trace := filepath.Join(dir, "t.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: "imix", Packets: retPackets, Flows: 200, Seed: 7, PPS: 10000}); err != nil {
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
	// Segment order is not time order: a lossless import stores the
	// blocks the compressor has no room for raw, and they overtake it.
	first := newest
	for _, sp := range left {
		if sp.Blocks > 0 {
			first = min(first, sp.MinTS)
		}
	}
	if first > cut || newest-first < int64(maxAge) {
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
// may be open) holds records no older than the oldest packet kept, and the
// oldest files are gone.
func TestRetentionDropsMessages(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: retPackets, Seed: 7, PPS: 2000}); err != nil {
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
	// The oldest packet kept. Not the newest dropped: segment order is
	// not time order (a lossless import stores the blocks the compressor
	// has no room for raw, and they overtake it), so a dropped segment
	// can hold packets newer than a kept one.
	oldestKept := int64(-1)
	for _, sp := range spans(t, store) {
		if sp.Blocks > 0 && (oldestKept < 0 || sp.MinTS < oldestKept) {
			oldestKept = sp.MinTS
		}
	}
	files, err := msgstore.Files(store)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 || files[0].Seq == 1 {
		t.Fatalf("message files: %d left, first %v; want the oldest dropped", len(files), files)
	}
	for _, f := range files[:len(files)-1] {
		if f.MaxTS < oldestKept {
			t.Fatalf("message file %s ends at %d, before the oldest packet kept %d: should have gone", f.Path, f.MaxTS, oldestKept)
		}
	}
	t.Logf("%d segments dropped; %d message files left of %d records stored", len(log), len(files), rep.Analytics.Stored)
}

// killEnv carries "store|killAt|budget" to TestFaultRetentionKillHelper.
const killEnv = "TAPVAULT_TEST_RETENTION_KILL"

// killOptions: an app trace's store with analytics on, small segments and
// small message files.
func killOptions(budget int64) pipeline.Options {
	opts := retOptions(pipeline.RetentionOptions{MaxBytes: budget, Every: time.Hour})
	ac := analytics.DefaultConfig()
	opts.Analytics = &ac
	opts.Messages = msgstore.Options{FrameRecords: 64, FileBytes: 4 << 10}
	return opts
}

// TestFaultRetentionKillHelper is TestFaultRetentionKill's child process:
// it opens the store as a capture does, writes nothing (an empty trace),
// and lets the end-of-run retention pass drop what is over the budget,
// printing each durable step; it SIGKILLs itself after step killAt (0:
// never).
func TestFaultRetentionKillHelper(t *testing.T) {
	spec := os.Getenv(killEnv)
	if spec == "" {
		t.Skip("the child of TestFaultRetentionKill")
	}
	parts := strings.Split(spec, "|")
	store := parts[0]
	killAt, _ := strconv.Atoi(parts[1])
	budget, _ := strconv.ParseInt(parts[2], 10, 64)
	// Beside the store, in the parent test's TempDir: this process dies by
	// SIGKILL, so a TempDir of its own would never be removed.
	empty := filepath.Join(filepath.Dir(store), fmt.Sprintf("empty-%d.pcap", killAt))
	hdr := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0}
	if err := os.WriteFile(empty, hdr, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := killOptions(budget)
	opts.Dir, opts.Logger, opts.Lossless = store, quiet(), true
	p, err := pipeline.Open(opts, 1)
	if err != nil {
		t.Fatal(err)
	}
	steps := 0
	pipeline.SetRetentionStep(p, func(step string) {
		steps++
		fmt.Printf("STEP %d %s\n", steps, step)
		if steps == killAt {
			os.Stdout.Sync()
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	})
	src, err := dataplane.OpenFile(empty)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run([]dataplane.Source{src}); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("STEPS %d\n", steps)
}

// inventory lists a store's segment and message files, as
// "segments/NAME" and "messages/NAME".
func inventory(t *testing.T, store string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, sub := range []string{"segments", "messages"} {
		ents, err := os.ReadDir(filepath.Join(store, sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for _, e := range ents {
			if n := e.Name(); strings.HasSuffix(n, ".seg") || strings.HasSuffix(n, ".msg") {
				out[sub+"/"+n] = true
			}
		}
	}
	return out
}

// copyStore copies a store directory, keeping file modes (sealed message
// files are read-only).
func copyStore(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
}

// TestFaultRetentionKill kills a process with SIGKILL after each durable
// step of a retention pass that drops both segments and message files
// (index entries dropped, segment unlinked, action logged, message file
// unlinked, action logged). After each kill the store verifies (segments
// and message files), what is gone is exactly the first segments and
// message files of the uninterrupted pass's order, and nothing else; a
// restart finishes the pass and leaves exactly what the uninterrupted pass
// left, with no index entries of a dropped segment.
func TestFaultRetentionKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process per step")
	}
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: retPackets, Seed: 7, PPS: 2000}); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base")
	importFile(t, base, trace, killOptions(0))
	var segBytes int64
	for _, sp := range spans(t, base) {
		segBytes += sp.Size
	}
	msgBytes := msgstore.Size(base)
	budget := (segBytes + msgBytes) / 2
	all := inventory(t, base)

	child := func(store string, killAt int) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFaultRetentionKillHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d|%d", killEnv, store, killAt, budget))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	ref := filepath.Join(dir, "ref")
	copyStore(t, base, ref)
	out, err := child(ref, 0)
	if err != nil {
		t.Fatalf("uninterrupted pass: %v\n%s", err, out)
	}
	var nsteps int
	for _, line := range strings.Split(out, "\n") {
		fmt.Sscanf(line, "STEPS %d", &nsteps)
	}
	refLeft := inventory(t, ref)
	log, err := pipeline.RetentionLog(ref)
	if err != nil {
		t.Fatal(err)
	}
	var order []string // what the pass drops, in order
	var segs, mfiles int
	for _, a := range log {
		if a.IsMessageFile() {
			order = append(order, "messages/"+a.MessageFile)
			mfiles++
		} else {
			order = append(order, fmt.Sprintf("segments/%010d.seg", a.Segment))
			segs++
		}
	}
	if segs < 2 || mfiles < 2 || nsteps != 3*segs+2*mfiles {
		t.Fatalf("uninterrupted pass: %d segments, %d message files dropped in %d steps; want >= 2 of each, 3 steps a segment and 2 a file\n%s", segs, mfiles, nsteps, out)
	}
	for _, name := range order {
		if !all[name] || refLeft[name] {
			t.Fatalf("%s: logged as dropped; in the base store %v, left after the pass %v", name, all[name], refLeft[name])
		}
	}
	t.Logf("budget %d of %d segment + %d message bytes: %d segments and %d message files dropped in %d steps", budget, segBytes, msgBytes, segs, mfiles, nsteps)
	t0 := time.Now()

	// Every kind of step, at the first drops of each kind and the last
	// step: a process per step of every drop would take minutes.
	var ks []int
	seen := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		var k int
		var step string
		if n, _ := fmt.Sscanf(line, "STEP %d %s", &k, &step); n == 2 && (seen[step] < 2 || k == nsteps) {
			seen[step]++
			ks = append(ks, k)
		}
	}
	defer func() { t.Logf("killed at steps %v in %v", ks, time.Since(t0)) }()
	for _, k := range ks {
		store := filepath.Join(dir, fmt.Sprintf("kill%d", k))
		copyStore(t, base, store)
		out, err := child(store, k)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill at step %d: got %v, want SIGKILL\n%s", k, err, out)
		}
		left := inventory(t, store)
		var gone int
		for name := range all {
			if !left[name] {
				gone++
			}
		}
		for _, name := range order[:gone] {
			if left[name] {
				t.Fatalf("kill at step %d: %d files gone, but %s, among the first %d to drop, is left", k, gone, name, gone)
			}
		}
		vr, err := writer.Verify(store, nil)
		if err != nil || !vr.OK() {
			t.Fatalf("kill at step %d: segments verify: %+v, %v", k, vr, err)
		}
		if mr, err := msgstore.Verify(store); err != nil || len(mr.Corrupt) != 0 {
			t.Fatalf("kill at step %d: messages verify: %+v, %v", k, mr, err)
		}

		if out, err := child(store, 0); err != nil {
			t.Fatalf("restart after the kill at step %d: %v\n%s", k, err, out)
		}
		left = inventory(t, store)
		for name := range all {
			if left[name] != refLeft[name] {
				t.Fatalf("after the kill at step %d and a restart: %s left %v, want %v (as the uninterrupted pass)", k, name, left[name], refLeft[name])
			}
		}
		if mr, err := msgstore.Verify(store); err != nil || len(mr.Corrupt) != 0 || len(mr.Torn) != 0 {
			t.Fatalf("after the kill at step %d and a restart: messages verify: %+v, %v", k, mr, err)
		}
		st, err := query.OpenStore(store, quiet())
		if err != nil {
			t.Fatal(err)
		}
		it := st.Ix.Time(query.MinTime, query.MaxTime)
		for it.Next() {
			if name := fmt.Sprintf("segments/%010d.seg", it.At().Segment()); !left[name] {
				t.Fatalf("after the kill at step %d and a restart: index ref %v into dropped %s", k, it.At(), name)
			}
		}
		it.Close()
		st.Close()
		os.RemoveAll(store)
	}
}

// TestFaultMessagesKeepReserve: with the index on, the message store keeps
// the packet writer's free-space reserve (1.5 x IndexReserve). A
// filesystem reported below it (the packet writer asks the real one, which
// has room) gets no record: every one is dropped and counted at stage
// "store", none is stored, and the capture goes on.
func TestFaultMessagesKeepReserve(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: 5000, Seed: 7, PPS: 2000}); err != nil {
		t.Fatal(err)
	}
	ac := analytics.DefaultConfig()
	var asked atomic.Int64
	opts := pipeline.Options{Index: true, IndexReserve: 8 << 20, Analytics: &ac,
		Messages: msgstore.Options{Avail: func(string) (int64, error) {
			asked.Add(1)
			return 11 << 20, nil // under 1.5 x 8 MiB
		}}}
	rep := importFile(t, filepath.Join(dir, "store"), trace, opts)
	a := rep.Analytics
	if a == nil || a.Records == 0 || a.DropStore != a.Records || a.Stored != 0 || asked.Load() == 0 {
		t.Fatalf("got %+v (statfs asked %d times), want every record dropped at the store", a, asked.Load())
	}
	if rep.Writer.PacketsCommitted != 5000 {
		t.Fatalf("packets committed: got %d, want 5000", rep.Writer.PacketsCommitted)
	}
	// Above the reserve, the same run stores them all.
	opts.Messages.Avail = func(string) (int64, error) { return 13 << 20, nil }
	rep = importFile(t, filepath.Join(dir, "store2"), trace, opts)
	if a := rep.Analytics; a.DropStore != 0 || a.Stored != a.Records {
		t.Fatalf("above the reserve: got %+v, want every record stored", a)
	}
}

// TestRetentionKeepsRecordsOfKeptPackets: when the newest segment alone is
// over the budget (it is never dropped), dropping message files could not
// meet the limit: retention keeps them, and does not roll the message file
// for nothing, rather than delete the records of packets it keeps.
func TestRetentionKeepsRecordsOfKeptPackets(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: 20000, Seed: 7, PPS: 2000}); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	ac := analytics.DefaultConfig()
	opts := pipeline.Options{Index: true, Analytics: &ac, // one segment: the newest
		Retention: pipeline.RetentionOptions{MaxBytes: 64 << 10, Every: 50 * time.Millisecond},
		Messages:  msgstore.Options{FrameRecords: 64, FileBytes: 16 << 10}}
	rep := importFile(t, store, trace, opts)
	files, err := msgstore.Files(store)
	if err != nil {
		t.Fatal(err)
	}
	var records int64
	for _, f := range files {
		records += f.Records
	}
	log, _ := pipeline.RetentionLog(store)
	if len(log) != 0 || records != int64(rep.Analytics.Stored) || files[0].Seq != 1 {
		t.Fatalf("got %d retention actions, %d of %d records left, first file %d; want none dropped", len(log), records, rep.Analytics.Stored, files[0].Seq)
	}
}

// TestRetentionKeepFreeSegmentDirs: with segments on two disks, keep_free
// holds on each. The small disk's oldest segments go, the big disk's stay
// (dropping them would free nothing where space is short), and every
// packet left reads back through the index and verifies.
func TestRetentionKeepFreeSegmentDirs(t *testing.T) {
	dir := t.TempDir()
	trace := retTrace(t, dir)
	store := filepath.Join(dir, "store")
	small, big := filepath.Join(dir, "small"), filepath.Join(dir, "big")
	const smallFS = 32 << 20 // 95 % free leaves 1.6 MiB for segments
	used := func(d string) int64 {
		ents, _ := os.ReadDir(d)
		var n int64
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".seg") {
				n += fi.Size()
			}
		}
		return n
	}
	statfs := func(path string) (uint64, uint64, error) {
		switch path {
		case small:
			return smallFS, uint64(max(0, smallFS-used(small))), nil
		case store, big:
			return 1 << 40, 1<<40 - 1<<20, nil
		}
		return 0, 0, fmt.Errorf("statfs of %q", path)
	}
	opts := retOptions(pipeline.RetentionOptions{KeepFreePercent: 95, Every: time.Hour, Statfs: statfs})
	opts.SegmentDirs = []string{small, big}
	rep := importFile(t, store, trace, opts)

	left := spans(t, store)
	log, err := pipeline.RetentionLog(store)
	if err != nil || len(log) == 0 || rep.RetentionDrops != len(log) {
		t.Fatalf("retention log: %d actions, %v; report %d drops: want some, the same", len(log), err, rep.RetentionDrops)
	}
	if u := used(small); u > smallFS*5/100 {
		t.Fatalf("small disk: %d segment bytes left, want at most 5%% of %d", u, smallFS)
	}
	var kept, onBig uint64
	for _, sp := range left {
		kept += sp.Packets
		if filepath.Dir(sp.Path) == big {
			onBig += sp.Packets
		}
	}
	var dropped uint64
	for _, a := range log {
		if a.Reason != pipeline.ReasonKeepFree || a.Segment%2 != 1 {
			// Segments alternate small (odd), big (even).
			t.Fatalf("retention action %+v: want keep_free drops of the small disk's segments only", a)
		}
		dropped += a.Packets
	}
	if kept+dropped != retPackets || onBig == 0 {
		t.Fatalf("packets: %d kept (%d on the big disk) + %d dropped, want %d in all", kept, onBig, dropped, retPackets)
	}
	st, err := query.OpenStore(store, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := st.Run(context.Background(), query.Request{From: query.MinTime, To: query.MaxTime}, func(*query.Packet) error { return nil })
	if err != nil || res.Matched != kept || res.SkippedCorrupt != 0 || res.SkippedGone != 0 {
		t.Fatalf("query: %d packets (%d corrupt, %d gone), %v: want %d", res.Matched, res.SkippedCorrupt, res.SkippedGone, err, kept)
	}
	if vr, err := writer.Verify(store, nil); err != nil || !vr.OK() || vr.Packets != kept {
		t.Fatalf("verify: %d packets, %d bad blocks, %v: want %d", vr.Packets, vr.BadBlocks, err, kept)
	}
}
