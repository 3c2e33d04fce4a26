package pipeline_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tapvault/analytics"
	"tapvault/dataplane"
	"tapvault/fleet"
	"tapvault/msgstore"
	"tapvault/pipeline"
	"tapvault/tracegen"
)

// unshippedBytes is the tapvault_fleet_unshipped_bytes gauge of p (-1:
// absent).
func unshippedBytes(t *testing.T, p *pipeline.Pipeline) float64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(pipeline.NewCollector(p, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tapvault_fleet_unshipped_bytes" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// importShipped imports an app trace into a store whose fleet cursor is cur
// (as a shipper that has shipped nothing, or everything, would leave it),
// with retention ret, and returns the retention actions and the two
// unshipped-drop counters.
func importShipped(t *testing.T, cur fleet.Cursor, ret pipeline.RetentionOptions) (store string, acts []pipeline.RetentionAction, files, records float64) {
	t.Helper()
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := tracegen.GenerateFile(trace, tracegen.Options{Kind: tracegen.KindApp, Packets: retPackets, Seed: 7, PPS: 2000}); err != nil {
		t.Fatal(err)
	}
	store = filepath.Join(dir, "store")
	if err := fleet.SaveCursor(store, cur); err != nil {
		t.Fatal(err)
	}
	ac := analytics.DefaultConfig()
	opts := retOptions(ret)
	opts.Analytics = &ac
	opts.Messages = msgstore.Options{FrameRecords: 64, FileBytes: 4 << 10}
	opts.Dir, opts.Logger, opts.Lossless = store, quiet(), true
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
	if rep.Analytics == nil || rep.Analytics.Stored == 0 {
		t.Fatalf("no records stored: %+v", rep.Analytics)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(pipeline.NewCollector(p, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "tapvault_fleet_unshipped_dropped_files_total":
			files = mf.GetMetric()[0].GetCounter().GetValue()
		case "tapvault_fleet_unshipped_dropped_records_total":
			records = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	acts, err = pipeline.RetentionLog(store)
	if err != nil {
		t.Fatal(err)
	}
	// The backlog gauge is every message byte after the cursor.
	var after int64
	mf, _ := msgstore.Files(store)
	for _, f := range mf {
		if !cur.Messages.Covers(f) {
			after += f.Size
		}
	}
	if got := unshippedBytes(t, p); got != float64(after) {
		t.Errorf("tapvault_fleet_unshipped_bytes: got %v, want %d", got, after)
	}
	return store, acts, files, records
}

func messageDrops(acts []pipeline.RetentionAction) (n int, records int64) {
	for _, a := range acts {
		if a.IsMessageFile() {
			n++
			records += a.Records
		}
	}
	return n, records
}

// TestRetentionKeepsUnshipped: under max_bytes, a shipped store (a fleet
// cursor exists) keeps every message file the cursor has not passed, while
// segments go as usual; with a cursor past every file, the files go as
// they do in an unshipped store (TestRetentionDropsMessages).
func TestRetentionKeepsUnshipped(t *testing.T) {
	ret := pipeline.RetentionOptions{MaxBytes: 64 << 10, Every: time.Hour}
	store, acts, files, _ := importShipped(t, fleet.Cursor{}, ret)
	if n, _ := messageDrops(acts); n != 0 || files != 0 {
		t.Fatalf("nothing shipped: got %d message files dropped (metric %v), want 0", n, files)
	}
	if len(acts) == 0 {
		t.Fatal("no segment dropped: the limit was not reached, the test proves nothing")
	}
	mf, err := msgstore.Files(store)
	if err != nil || len(mf) < 3 || mf[0].Seq != 1 {
		t.Fatalf("message files: got %d (%v), want all kept from file 1", len(mf), err)
	}

	_, acts, files, _ = importShipped(t, fleet.Cursor{Messages: msgstore.Cursor{Seq: 1 << 40}}, ret)
	if n, _ := messageDrops(acts); n == 0 || files != 0 {
		t.Fatalf("everything shipped: got %d message files dropped, %v counted unshipped; want some dropped, none counted", n, files)
	}
}

// TestRetentionDropsUnshippedAtDiskLimit: at the disk's limit (keep_free)
// unshipped message files go anyway, and are counted.
func TestRetentionDropsUnshippedAtDiskLimit(t *testing.T) {
	const fsSize = 64 << 20
	var store string
	statfs := func(path string) (uint64, uint64, error) {
		var used int64
		for _, sub := range []string{"segments", "messages"} {
			ents, err := os.ReadDir(filepath.Join(path, sub))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return 0, 0, err
			}
			for _, e := range ents {
				if fi, err := e.Info(); err == nil {
					used += fi.Size()
				}
			}
		}
		return fsSize, uint64(max(0, fsSize-used)), nil
	}
	// Keep 99.9% free: 64 KiB of room.
	store, acts, files, records := importShipped(t, fleet.Cursor{}, pipeline.RetentionOptions{KeepFreePercent: 99.9, Every: time.Hour, Statfs: statfs})
	n, recs := messageDrops(acts)
	if n == 0 {
		t.Fatal("no message file dropped at the disk limit")
	}
	if files != float64(n) || records != float64(recs) {
		t.Fatalf("unshipped drops counted: got %v files, %v records; want %d, %d", files, records, n, recs)
	}
	for _, a := range acts {
		if a.IsMessageFile() && a.Reason != pipeline.ReasonKeepFree {
			t.Fatalf("message file dropped for %s, want only keep_free", a.Reason)
		}
	}
	t.Logf("%d unshipped message files (%d records) dropped at the disk limit; store %s", n, recs, store)
}
