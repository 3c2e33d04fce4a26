package msgstore

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// sealedStore writes 60 records in frames of 20 to one sealed file and
// returns the file, its bytes and its frame offsets.
func sealedStore(t *testing.T) (root, path string, data []byte, offs []int64) {
	t.Helper()
	root = t.TempDir()
	w := openW(t, root, Options{FrameRecords: 20})
	writeAll(t, w, httpRecords(60))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := Files(root)
	if len(files) != 1 || !files[0].Sealed {
		t.Fatalf("got files %+v, want one sealed", files)
	}
	path = files[0].Path
	data, _ = os.ReadFile(path)
	offs, _ = frameOffsets(t, path)
	if len(offs) != 3 {
		t.Fatalf("got %d frames, want 3", len(offs))
	}
	return root, path, data, offs
}

// rewrite replaces a (sealed, read-only) file's content keeping its mode.
func rewrite(t *testing.T, path string, b []byte) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

// TestFaultVerifySealedTruncated: a sealed file (its writer closed it)
// shorter than a frame header, empty, or cut inside its last frame is
// damage, not a torn tail: Verify lists it in Corrupt (tapvault verify
// exits 2), and Scan reports it; the whole frames before the cut still
// read. The same cut in an unsealed file (being written or crashed) stays a
// warning.
func TestFaultVerifySealedTruncated(t *testing.T) {
	root, path, data, offs := sealedStore(t)
	for _, tc := range []struct {
		name        string
		size        int64
		wantRecords int64
	}{
		{"empty", 0, 0},
		{"shorter than a header", 30, 0},
		{"header only", frameHeaderSize, 0},
		{"in the last frame", offs[2] + (int64(len(data))-offs[2])/2, 40},
		{"last byte", int64(len(data)) - 1, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer rewrite(t, path, data)
			rewrite(t, path, data[:tc.size])
			rep, err := Verify(root)
			if err != nil || len(rep.Corrupt) != 1 || len(rep.Torn) != 0 || rep.Records != tc.wantRecords {
				t.Fatalf("sealed: got report %+v (err %v), want 1 corrupt, %d records", rep, err, tc.wantRecords)
			}
			var ce *CorruptionError
			if !errors.As(rep.Corrupt[0], &ce) || ce.Path != path {
				t.Fatalf("got %v, want a CorruptionError naming %s", rep.Corrupt[0], path)
			}
			got, bad := scanAll(t, openR(t, root), Query{})
			if len(bad) != 1 || int64(len(got)) != tc.wantRecords {
				t.Fatalf("scan: got %d records, corruption %v; want %d records, 1 report", len(got), bad, tc.wantRecords)
			}
			files, _ := Files(root)
			if files[0].Err == nil {
				t.Fatalf("Files: got no error for %+v", files[0])
			}

			// Unsealed (a writer crashed while writing it): a warning.
			os.Chmod(path, 0o600)
			defer os.Chmod(path, sealedMode)
			rep, err = Verify(root)
			if err != nil || len(rep.Corrupt) != 0 || len(rep.Torn) != 1 || rep.Records != tc.wantRecords {
				t.Fatalf("unsealed: got report %+v (err %v), want 1 torn, %d records", rep, err, tc.wantRecords)
			}
		})
	}
}

// TestFaultVerifyBitFlips: a flipped bit in the header, the middle or the
// last frame of a sealed file is reported; the other frames still count.
func TestFaultVerifyBitFlips(t *testing.T) {
	root, path, data, offs := sealedStore(t)
	for _, tc := range []struct {
		name        string
		pos         int64
		wantRecords int64
	}{
		{"first header", 9, 0}, // a damaged header ends its file's walk
		{"middle frame data", offs[1] + (offs[2]-offs[1])/2, 40},
		{"middle frame crc", offs[2] - 1, 40},
		{"last frame header", offs[2] + 20, 40},
		{"last frame data", int64(len(data)) - 10, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer rewrite(t, path, data)
			b := slices.Clone(data)
			b[tc.pos] ^= 0x10
			rewrite(t, path, b)
			rep, err := Verify(root)
			if err != nil || len(rep.Corrupt) != 1 || rep.Records != tc.wantRecords {
				t.Fatalf("got report %+v (err %v), want 1 corrupt, %d records", rep, err, tc.wantRecords)
			}
		})
	}
}

// TestFaultRecoverCrashedFile: the next writer cuts the torn tail a crash
// left in a file no writer holds, seals it and removes an empty one; a
// file a live writer holds is left alone.
func TestFaultRecoverCrashedFile(t *testing.T) {
	root := t.TempDir()
	recs := httpRecords(60)
	live := openW(t, root, Options{FrameRecords: 20})
	writeAll(t, live, recs[:20]) // file 1: held by a live writer

	crashed := openW(t, root, Options{FrameRecords: 20}) // file 2
	writeAll(t, crashed, recs[20:60])
	p2 := crashed.path
	// A crash: the process dies with a half-written frame and no Close.
	full, _ := os.ReadFile(p2)
	os.WriteFile(p2, append(full, full[:50]...), 0o600)
	crashed.f.Close() // releases its lock, as the kernel does at exit
	crashed.f = nil
	empty := filepath.Join(root, "messages", fileName(3))
	os.WriteFile(empty, nil, 0o600) // created just before a crash

	rep, _ := Verify(root)
	if len(rep.Corrupt) != 0 || len(rep.Torn) != 2 {
		t.Fatalf("before recovery: got %+v, want the torn tail and the empty file as warnings", rep)
	}
	next := openW(t, root, Options{Logger: slog.New(slog.DiscardHandler)}) // file 4
	if got := next.Stats().Recovered; got != 2 {
		t.Fatalf("got %d recovered, want 2", got)
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty file: got %v, want removed", err)
	}
	files, _ := Files(root)
	if len(files) != 3 || files[0].Sealed || !files[0].Live || !files[1].Sealed || files[1].Size != int64(len(full)) || files[1].Records != 40 || !files[2].Live {
		t.Fatalf("got files %+v, want 1 live, 2 sealed and cut back to %d bytes, 4 live", files, len(full))
	}
	live.Close()
	next.Close()
	rep, _ = Verify(root)
	if len(rep.Corrupt) != 0 || len(rep.Torn) != 0 || rep.Records != 60 || rep.Files != 2 {
		t.Fatalf("after: got %+v, want 60 records in 2 clean files", rep)
	}
}

// TestFaultReserve: below Options.Reserve the writer writes no frame: the
// records are dropped and counted, and it stores again once space is back.
func TestFaultReserve(t *testing.T) {
	root := t.TempDir()
	var avail int64 = 100 << 20
	w := openW(t, root, Options{
		FrameRecords: 10,
		Reserve:      50 << 20,
		Avail:        func(string) (int64, error) { return avail, nil },
		Logger:       slog.New(slog.DiscardHandler),
	})
	recs := httpRecords(40)
	writeAll(t, w, recs[:10])
	avail = 10 << 20
	w.availAt = time.Time{} // the next frame asks again
	var errs int
	for _, r := range recs[10:30] {
		if err := w.Append(r); err != nil {
			if !errors.Is(err, ErrReserve) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("got %v, want ErrReserve", err)
			}
			errs++
		}
	}
	avail = 100 << 20
	w.availAt = time.Time{}
	writeAll(t, w, recs[30:])
	w.Close()
	st := w.Stats()
	if errs != 2 || st.Dropped != 20 || st.ReserveDropped != 20 || st.Records != 20 || st.WriteErrors != 0 {
		t.Fatalf("got %d errors, stats %+v; want 2 errors, 20 dropped below the reserve, 20 stored", errs, st)
	}
	got, _ := scanAll(t, openR(t, root), Query{})
	sameRecords(t, got, append(slices.Clone(recs[:10]), recs[30:]...))
}

// TestRollAndDropFile: Roll starts a new file at the next frame; DropFile
// refuses the newest file and one a writer holds, and removes the others.
func TestRollAndDropFile(t *testing.T) {
	root := t.TempDir()
	other := openW(t, root, Options{FrameRecords: 10}) // file 1, held
	w := openW(t, root, Options{FrameRecords: 10})     // file 2
	recs := httpRecords(30)
	writeAll(t, other, recs[:10])
	writeAll(t, w, recs[10:20])
	w.Roll()
	writeAll(t, w, recs[20:30]) // file 3
	files, _ := Files(root)
	if len(files) != 3 || !files[1].Sealed || files[1].Records != 10 {
		t.Fatalf("got files %+v, want file 2 sealed by the roll", files)
	}
	if err := DropFile(root, files[0]); !errors.Is(err, ErrLiveFile) {
		t.Fatalf("drop a held file: got %v, want ErrLiveFile", err)
	}
	if err := DropFile(root, files[2]); !errors.Is(err, ErrLiveFile) {
		t.Fatalf("drop the newest file: got %v, want ErrLiveFile", err)
	}
	if err := DropFile(root, files[1]); err != nil {
		t.Fatal(err)
	}
	other.Close()
	w.Close()
	got, _ := scanAll(t, openR(t, root), Query{})
	sameRecords(t, got, append(slices.Clone(recs[:10]), recs[20:]...))
}
