package msgstore

import (
	"context"
	"os"
	"reflect"
	"sync"
	"testing"

	"tapvault/analytics"
)

// TestScanPosReadAt: a scan without detail (sequential and parallel) gives
// each record's position through Query.Pos; ReadAt reads the records at
// some of them back whole (fields and refs), once each, in store order;
// positions in a file retention removed, past a file's end or between
// frames are skipped or reported, never misread.
func TestScanPosReadAt(t *testing.T) {
	root := t.TempDir()
	recs := mixedRecords(21, 1500)
	w := openW(t, root, Options{FrameRecords: 50, FileBytes: 64 << 10})
	writeAll(t, w, recs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	byID := map[uint64]*analytics.Record{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	files, _ := Files(root)
	if len(files) < 3 {
		t.Fatalf("%d files: the test wants several", len(files))
	}
	rd := openR(t, root)
	for _, workers := range []int{1, 3} {
		var pos Pos
		var ps []Pos
		var ids []uint64
		err := rd.Scan(context.Background(), Query{NoDetail: true, Kind: Exchanges, Workers: workers, Pos: &pos}, func(r *analytics.Record) error {
			if len(r.Fields) != 0 {
				t.Fatalf("record %016x: fields without detail", r.ID)
			}
			if len(ids)%7 == 0 {
				ps = append(ps, pos)
			}
			ids = append(ids, r.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for i, id := range ids {
			if i%7 == 0 {
				want = append(want, id)
			}
		}
		// Backwards and twice: ReadAt orders them and reads each once.
		in := append([]Pos(nil), ps...)
		for i, j := 0, len(in)-1; i < j; i, j = i+1, j-1 {
			in[i], in[j] = in[j], in[i]
		}
		in = append(in, ps[:5]...)
		var got []uint64
		err = rd.ReadAt(context.Background(), in, func(err error) { t.Errorf("corruption: %v", err) }, func(r *analytics.Record, p Pos) error {
			if !equalRecords(r, byID[r.ID]) {
				t.Fatalf("workers %d: at %+v got %+v, want %+v", workers, p, r, byID[r.ID])
			}
			got = append(got, r.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || len(want) < 100 {
			t.Fatalf("workers %d: read %d records back, want %d", workers, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("workers %d: record %d read back is %016x, want %016x (store order)", workers, i, got[i], want[i])
			}
		}
		if workers == 1 {
			// Retention drops the first file: its positions are skipped.
			if err := os.Chmod(files[0].Path, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(files[0].Path); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, p := range ps {
				if p.File != files[0].Seq {
					n++
				}
			}
			bogus := []Pos{{File: files[1].Seq, Off: 1 << 40}, {File: files[1].Seq, Off: 3}, {File: 1 << 30}}
			var bad []error
			got = got[:0]
			err = rd.ReadAt(context.Background(), append(ps, bogus...), func(err error) { bad = append(bad, err) }, func(r *analytics.Record, p Pos) error {
				got = append(got, r.ID)
				return nil
			})
			if err != nil || len(got) != n || n == len(ps) || len(bad) != 1 {
				t.Fatalf("after retention: %v, %d records (want %d), reports %v (want the frame at offset 3)", err, len(got), n, bad)
			}
		}
	}
}

// TestScanRecordsOwned: with Query.Records, each record passed to fn is
// fn's: kept without a copy, none is overwritten by the rest of the scan
// (sequential and parallel, with and without detail), and the records
// come from Records.
func TestScanRecordsOwned(t *testing.T) {
	root := t.TempDir()
	recs := mixedRecords(31, 700)
	w := openW(t, root, Options{FrameRecords: 40})
	writeAll(t, w, recs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rd := openR(t, root)
	for _, q := range []Query{{}, {Workers: 3}, {NoDetail: true, Workers: 2}, {Kind: Connections}} {
		var mu sync.Mutex
		given := map[*analytics.Record]bool{}
		q.Records = func() *analytics.Record {
			r := &analytics.Record{Class: "left over", Fields: make([]analytics.Field, 3)}
			mu.Lock()
			given[r] = true
			mu.Unlock()
			return r
		}
		var kept []*analytics.Record
		if err := rd.Scan(context.Background(), q, func(r *analytics.Record) error {
			mu.Lock()
			ok := given[r]
			mu.Unlock()
			if !ok {
				t.Fatalf("%+v: a record Records did not give", q)
			}
			kept = append(kept, r)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want, _ := scanAllOnce(t, rd, Query{NoDetail: q.NoDetail, Kind: q.Kind})
		if len(kept) != len(want) || len(want) == 0 {
			t.Fatalf("%+v: kept %d records, want %d", q, len(kept), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(emptyNil(kept[i]), emptyNil(want[i])) {
				t.Fatalf("%+v: record %d kept as %+v, want %+v", q, i, kept[i], want[i])
			}
		}
	}
}
