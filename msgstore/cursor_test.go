package msgstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"tapvault/analytics"
)

// readIDs reads from cur with ReadFrom and returns the IDs passed and the
// new cursor.
func readIDs(t *testing.T, rd *Reader, cur Cursor, max int) ([]uint64, Cursor) {
	t.Helper()
	var ids []uint64
	next, err := rd.ReadFrom(context.Background(), cur, ReadOptions{MaxRecords: max,
		OnCorrupt: func(err error) { t.Errorf("unexpected corruption: %v", err) }},
		func(r *analytics.Record) error { ids = append(ids, r.ID); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return ids, next
}

// TestCursorFollowsWriter reads a store while a writer appends, rolls files
// and closes, in small batches from a cursor that is saved and parsed back
// between calls (as the shipper does across restarts): every record comes
// out once, in write order.
func TestCursorFollowsWriter(t *testing.T) {
	root := t.TempDir()
	recs := httpRecords(1000)
	w := openW(t, root, Options{FrameRecords: 16})
	rd := openR(t, root)
	var got []uint64
	var cur Cursor
	drain := func() {
		for {
			ids, next := readIDs(t, rd, cur, 40)
			c, err := ParseCursor(next.String())
			if err != nil || c != next {
				t.Fatalf("cursor %v round trip: got %v, %v", next, c, err)
			}
			got = append(got, ids...)
			if next == cur {
				if len(ids) != 0 {
					t.Fatalf("records read without the cursor moving (%v)", cur)
				}
				return
			}
			cur = next
		}
	}
	for i, r := range recs {
		if err := w.Append(r); err != nil {
			t.Fatal(err)
		}
		if i%150 == 149 {
			w.Roll()
		}
		if i%37 == 0 {
			drain() // the open frame is not written yet: not read
		}
	}
	drain()
	w.Close()
	drain()
	if len(got) != len(recs) {
		t.Fatalf("got %d records, want %d", len(got), len(recs))
	}
	for i := range got {
		if got[i] != recs[i].ID {
			t.Fatalf("record %d: got id %x, want %x", i, got[i], recs[i].ID)
		}
	}
	files, _ := Files(root)
	if len(files) < 5 {
		t.Fatalf("got %d files, want the rolls to make at least 5", len(files))
	}
	for _, fi := range files {
		if !cur.Covers(fi) {
			t.Errorf("final cursor %v does not cover file %d (%d bytes)", cur, fi.Seq, fi.Size)
		}
	}
	if b, err := BacklogAfter(root, cur); err != nil || b != (Backlog{}) {
		t.Fatalf("backlog after the end: got %+v, %v, want none", b, err)
	}
	if b, _ := BacklogAfter(root, Cursor{}); b.Files != len(files) || b.OldestTS != recs[0].ReqFirst {
		t.Fatalf("backlog from the start: got %+v, want %d files from ts %d", b, len(files), recs[0].ReqFirst)
	}
}

// TestCursorTornAndDropped: a torn tail in the live (newest) file stops the
// read before it; once a newer file exists the torn file is finished and the
// read moves on; a file dropped under the cursor is skipped.
func TestCursorTornAndDropped(t *testing.T) {
	src := t.TempDir()
	recs := httpRecords(60)
	w := openW(t, src, Options{FrameRecords: 20})
	writeAll(t, w, recs)
	w.Close()
	files, _ := Files(src)
	data, _ := os.ReadFile(files[0].Path)
	offs, _ := frameOffsets(t, files[0].Path)

	root := t.TempDir()
	dir := filepath.Join(root, "messages")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, fileName(1)), data[:offs[2]+10], 0o600) // third frame torn
	rd := openR(t, root)
	ids, cur := readIDs(t, rd, Cursor{}, 0)
	if len(ids) != 40 || cur != (Cursor{1, offs[2]}) {
		t.Fatalf("torn live file: got %d records, cursor %v; want 40, 1:%d", len(ids), cur, offs[2])
	}
	// The frame completes (the writer finished its write): read from the cursor.
	os.WriteFile(filepath.Join(dir, fileName(1)), data, 0o600)
	ids, cur = readIDs(t, rd, cur, 0)
	if len(ids) != 20 || ids[0] != recs[40].ID || cur != (Cursor{1, int64(len(data))}) {
		t.Fatalf("completed frame: got %d records, cursor %v; want the last 20, 1:%d", len(ids), cur, len(data))
	}
	// A crashed writer's torn file followed by a newer file: move on.
	os.WriteFile(filepath.Join(dir, fileName(1)), data[:offs[1]+5], 0o600)
	os.WriteFile(filepath.Join(dir, fileName(2)), data, 0o600)
	ids, cur = readIDs(t, rd, Cursor{1, offs[1]}, 0)
	if len(ids) != 60 || cur != (Cursor{2, int64(len(data))}) {
		t.Fatalf("torn file then a newer one: got %d records, cursor %v; want 60, 2:%d", len(ids), cur, len(data))
	}
	// File 2 dropped, 3 written: the cursor in 2 moves to 3.
	os.Remove(filepath.Join(dir, fileName(2)))
	os.WriteFile(filepath.Join(dir, fileName(3)), data[:offs[1]], 0o600)
	ids, cur = readIDs(t, rd, Cursor{2, offs[1]}, 0)
	if len(ids) != 20 || cur != (Cursor{3, offs[1]}) {
		t.Fatalf("dropped file: got %d records, cursor %v; want 20, 3:%d", len(ids), cur, offs[1])
	}
}

// TestCursorFnError: a failing fn leaves the cursor at the start of its frame.
func TestCursorFnError(t *testing.T) {
	root := t.TempDir()
	recs := httpRecords(60)
	w := openW(t, root, Options{FrameRecords: 20})
	writeAll(t, w, recs)
	w.Close()
	rd := openR(t, root)
	boom := errors.New("boom")
	n := 0
	cur, err := rd.ReadFrom(context.Background(), Cursor{}, ReadOptions{}, func(*analytics.Record) error {
		if n++; n == 25 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got err %v, want boom", err)
	}
	ids, _ := readIDs(t, rd, cur, 0)
	if len(ids) != 40 || ids[0] != recs[20].ID {
		t.Fatalf("after the failure: got %d records from %v, want 40 from the second frame", len(ids), cur)
	}
	if _, err := ParseCursor("12"); err == nil {
		t.Fatal("ParseCursor accepted a cursor without an offset")
	}
}
