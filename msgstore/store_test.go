package msgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tapvault/analytics"
)

const t0 = int64(1_700_000_000_000_000_000)

func openW(t testing.TB, root string, o Options) *Writer {
	t.Helper()
	w, err := OpenWriter(root, o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func openR(t testing.TB, root string) *Reader {
	t.Helper()
	r, err := OpenReader(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func writeAll(t testing.TB, w *Writer, recs []*analytics.Record) {
	t.Helper()
	for _, r := range recs {
		if err := w.Append(r); err != nil {
			t.Fatal(err)
		}
	}
}

func cloneRecord(r *analytics.Record) *analytics.Record {
	c := *r
	c.Fields = slices.Clone(r.Fields)
	c.Packets = slices.Clone(r.Packets)
	return &c
}

// scanAll returns the records q selects, and the errors reported as corrupt.
// A sequential query is also run in parallel (Workers 3), which must give
// the same records and reports in the same order: every test that reads
// through scanAll checks both.
func scanAll(t testing.TB, rd *Reader, q Query) ([]*analytics.Record, []error) {
	t.Helper()
	out, bad := scanAllOnce(t, rd, q)
	if q.Workers <= 1 {
		q.Workers = 3
		// A reader of its own, so that rd's stats count one scan.
		prd := openR(t, filepath.Dir(rd.dir))
		pout, pbad := scanAllOnce(t, prd, q)
		if len(pout) != len(out) {
			t.Fatalf("parallel scan: %d records, sequential %d", len(pout), len(out))
		}
		for i := range out {
			if !reflect.DeepEqual(emptyNil(pout[i]), emptyNil(out[i])) {
				t.Fatalf("parallel scan: record %d is %+v, sequential %+v", i, pout[i], out[i])
			}
		}
		if fmt.Sprint(pbad) != fmt.Sprint(bad) {
			t.Fatalf("parallel scan reported %v, sequential %v", pbad, bad)
		}
	}
	return out, bad
}

// emptyNil is r with empty Fields and Packets nil, for reflect.DeepEqual.
func emptyNil(r *analytics.Record) *analytics.Record {
	c := *r
	if len(c.Fields) == 0 {
		c.Fields = nil
	}
	if len(c.Packets) == 0 {
		c.Packets = nil
	}
	return &c
}

func scanAllOnce(t testing.TB, rd *Reader, q Query) ([]*analytics.Record, []error) {
	t.Helper()
	var out []*analytics.Record
	var bad []error
	q.OnCorrupt = func(err error) { bad = append(bad, err) }
	err := rd.Scan(context.Background(), q, func(r *analytics.Record) error {
		out = append(out, cloneRecord(r))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, bad
}

func httpRecords(n int) []*analytics.Record {
	recs := make([]*analytics.Record, n)
	for i := range recs {
		recs[i] = httpRecord(i, t0+int64(i)*1_000_000)
	}
	return recs
}

// sameRecords wants got to hold want's records, each kind (exchanges,
// connection records) in want's order: the writer keeps the kinds in
// frames of their own, so a scan interleaves them frame by frame.
func sameRecords(t *testing.T, got, want []*analytics.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	got, want = byKind(got), byKind(want)
	for i := range got {
		if !equalRecords(got[i], want[i]) {
			t.Fatalf("record %d:\ngot  %+v\nwant %+v", i, *got[i], *want[i])
		}
	}
}

// byKind is recs, exchanges first, each kind in recs' order.
func byKind(recs []*analytics.Record) []*analytics.Record {
	out := slices.Clone(recs)
	slices.SortStableFunc(out, func(a, b *analytics.Record) int {
		return cmp.Compare(b2i(analytics.IsConnection(a)), b2i(analytics.IsConnection(b)))
	})
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// framesFor is how many frames of at most per records the writer makes of
// recs written at once: each kind fills frames of its own.
func framesFor(recs []*analytics.Record, per int) uint64 {
	var conn int
	for _, r := range recs {
		if analytics.IsConnection(r) {
			conn++
		}
	}
	return uint64((len(recs)-conn+per-1)/per + (conn+per-1)/per)
}

func TestWriteScanRoundTrip(t *testing.T) {
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	var recs []*analytics.Record
	for i := 0; i < 3000; i++ {
		if i%3 == 0 {
			recs = append(recs, randRecord(rng))
		} else {
			recs = append(recs, httpRecord(i, t0+int64(i)*1000))
		}
	}
	w := openW(t, root, Options{FrameRecords: 100})
	writeAll(t, w, recs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	frames := framesFor(recs, 100)
	if st.Records != 3000 || st.Frames != frames || frames < 31 || st.Files != 1 || st.Dropped != 0 {
		t.Fatalf("got stats %+v, want 3000 records in %d frames (of two kinds), 1 file", st, frames)
	}
	got, bad := scanAll(t, openR(t, root), Query{})
	if len(bad) != 0 {
		t.Fatalf("got corruption %v", bad)
	}
	sameRecords(t, got, recs)
	rep, err := Verify(root)
	if err != nil || len(rep.Corrupt) != 0 || len(rep.Torn) != 0 || rep.Records != 3000 || uint64(rep.Frames) != frames {
		t.Fatalf("got verify %+v (err %v), want 3000 clean records", rep, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "messages")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("got messages dir %v (err %v), want mode 0700", fi.Mode(), err)
	}
	files, _ := Files(root)
	if fi, err := os.Stat(files[0].Path); err != nil || fi.Mode().Perm() != 0o400 {
		t.Fatalf("got file mode %v (err %v), want 0400 (sealed)", fi.Mode(), err)
	}
}

func TestEmptyStore(t *testing.T) {
	root := t.TempDir()
	got, bad := scanAll(t, openR(t, root), Query{})
	if len(got) != 0 || len(bad) != 0 {
		t.Fatalf("got %d records, %v", len(got), bad)
	}
	if _, err := openR(t, root).Get(context.Background(), 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	if fs, err := Files(root); err != nil || len(fs) != 0 || Size(root) != 0 {
		t.Fatalf("got files %v err %v", fs, err)
	}
}

func TestBloomPruning(t *testing.T) {
	root := t.TempDir()
	recs := httpRecords(5000)
	w := openW(t, root, Options{FrameRecords: 250})
	writeAll(t, w, recs)
	w.Close()

	rd := openR(t, root)
	got, _ := scanAll(t, rd, Query{Terms: []string{"host=nowhere.example.org"}})
	st := rd.Stats()
	if len(got) != 0 || st.Decoded != 0 || st.SkippedBloom != 20 {
		t.Fatalf("absent term: got %d records, stats %+v; want 0 decoded, 20 skipped by bloom", len(got), st)
	}

	// A path term present in every 1000th record: frames 0, 4, 8, ... hold it.
	rd = openR(t, root)
	got, _ = scanAll(t, rd, Query{Terms: []string{"PATH=/api/v1/items/7?page=2", "method=get"}})
	var want []*analytics.Record
	for i, r := range recs {
		if i%1000 == 7 {
			want = append(want, r)
		}
	}
	sameRecords(t, got, want)
	if st := rd.Stats(); st.Decoded > 6 {
		t.Fatalf("got %d frames decoded, want about 5 (stats %+v)", st.Decoded, st)
	}

	// Alternatives (id A or id B): each frame that may hold either is read,
	// the others skipped by their bloom filters.
	rd = openR(t, root)
	got, _ = scanAll(t, rd, Query{AnyTerms: [][]string{{fmt.Sprintf("id=%016x", recs[10].ID)}, {fmt.Sprintf("ID=%016X", recs[4321].ID), "method=get"}}})
	sameRecords(t, got, []*analytics.Record{recs[10], recs[4321]})
	if st := rd.Stats(); st.Decoded > 3 || st.SkippedBloom < 17 {
		t.Fatalf("alternatives: got %d frames decoded, %d skipped by bloom; want 2 (a false positive aside) and the other 18 skipped", st.Decoded, st.SkippedBloom)
	}
	// With Terms as well, both must hold.
	got, _ = scanAll(t, openR(t, root), Query{Terms: []string{"status=404"}, AnyTerms: [][]string{{fmt.Sprintf("id=%016x", recs[10].ID)}, {fmt.Sprintf("id=%016x", recs[4321].ID)}}})
	var want404 []*analytics.Record
	for _, r := range []*analytics.Record{recs[10], recs[4321]} {
		for _, f := range r.Fields {
			if f.Key == "status" && f.Int == 404 {
				want404 = append(want404, r)
			}
		}
	}
	sameRecords(t, got, want404)

	// Integer fields, endpoint terms.
	for _, tc := range []struct {
		term string
		n    int
	}{
		{"status=404", 715}, {"status=200", 4285}, {"server=192.0.2.80", 5000}, {"server=192.0.2.80:80", 5000},
		{"ip=10.1.0.5", 1}, {"client=10.1.0.5", 1}, {"port=80", 5000}, {"proto=http", 5000}, {"class=slow_app", 5000},
		{"host=www.example.com", 5000}, {"ip=192.0.2.80", 5000}, {"host=192.0.2.80", 0},
		{fmt.Sprintf("id=%016x", recs[4321].ID), 1},
	} {
		got, _ := scanAll(t, openR(t, root), Query{Terms: []string{tc.term}})
		if len(got) != tc.n {
			t.Errorf("term %q: got %d records, want %d", tc.term, len(got), tc.n)
		}
	}
}

func TestTerms(t *testing.T) {
	r := httpRecord(5, t0)
	r.ID = 0xab
	r.Client = netipMust("[2001:db8::1]:51000")
	got := analytics.Terms(r, nil)
	want := []string{"id=00000000000000ab", "proto=http", "class=slow_app",
		"client=2001:db8::1", "ip=2001:db8::1", "server=192.0.2.80", "server=192.0.2.80:80", "ip=192.0.2.80",
		"port=51000", "port=80", "method=get", "host=www.example.com", "path=/api/v1/items/5?page=2",
		"status=200", "user_agent=mozilla/5.0 (x11; linux x86_64) firefox/128.0", "content_type=application/json",
		"resp_len=18000", "version=http/1.1"}
	if !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestTimeAndProtoFilter(t *testing.T) {
	root := t.TempDir()
	var recs []*analytics.Record
	for i := 0; i < 4000; i++ {
		r := httpRecord(i, t0+int64(i)*1_000_000_000) // one per second, each ~4 ms long
		switch i % 4 {
		case 1:
			r.Proto = "dns"
		case 2: // only a response side
			r.ReqFirst, r.ReqLast = 0, 0
		case 3: // only a request side
			r.RespFirst, r.RespLast = 0, 0
		}
		recs = append(recs, r)
	}
	timeless := &analytics.Record{ID: 77, Proto: "tcp"}
	recs = append(recs, timeless)
	w := openW(t, root, Options{FrameRecords: 200})
	writeAll(t, w, recs)
	w.Close()

	from, to := t0+1000*1_000_000_000+2_000_000, t0+1999*1_000_000_000
	rd := openR(t, root)
	got, _ := scanAll(t, rd, Query{From: from, To: to})
	var want []*analytics.Record
	for _, r := range recs {
		if lo, hi, ok := recordSpan(r); ok && hi >= from && lo <= to {
			want = append(want, r)
		}
	}
	sameRecords(t, got, want)
	if len(want) < 990 || len(want) > 1001 {
		t.Fatalf("test bug: %d records in range", len(want))
	}
	if st := rd.Stats(); st.SkippedTime < 14 || st.Decoded > 7 {
		t.Fatalf("got stats %+v, want >= 14 frames skipped by time, <= 7 decoded", st)
	}

	got, _ = scanAll(t, openR(t, root), Query{Protos: []string{"dns"}, To: t0 + 99*1_000_000_000})
	if len(got) != 25 {
		t.Fatalf("dns in the first 100 s: got %d records, want 25", len(got))
	}
	got, _ = scanAll(t, openR(t, root), Query{Protos: []string{"tcp"}})
	if len(got) != 1 || got[0].ID != 77 {
		t.Fatalf("timeless tcp record: got %d records, want 1", len(got))
	}
	got, _ = scanAll(t, openR(t, root), Query{Protos: []string{"tcp"}, From: 1})
	if len(got) != 0 {
		t.Fatalf("timeless record with a bounded query: got %d records, want 0", len(got))
	}
}

func TestGet(t *testing.T) {
	root := t.TempDir()
	recs := httpRecords(3000)
	w := openW(t, root, Options{FrameRecords: 100, FileBytes: 20 << 10})
	writeAll(t, w, recs)
	again := cloneRecord(recs[10])
	again.Class = analytics.ClassFast
	writeAll(t, w, []*analytics.Record{again})
	w.Close()
	rd := openR(t, root)
	got, err := rd.Get(context.Background(), recs[2500].ID)
	if err != nil || !equalRecords(got, recs[2500]) {
		t.Fatalf("got %+v, %v; want record 2500", got, err)
	}
	got, err = rd.Get(context.Background(), recs[10].ID)
	if err != nil || got.Class != analytics.ClassFast {
		t.Fatalf("duplicate ID: got %+v, %v; want the last written", got, err)
	}
	if _, err := rd.Get(context.Background(), 12345); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func TestRollFiles(t *testing.T) {
	root := t.TempDir()
	recs := httpRecords(5000)
	w := openW(t, root, Options{FrameRecords: 100, FileBytes: 32 << 10})
	writeAll(t, w, recs)
	w.Close()
	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for i, f := range files {
		n += f.Records
		if f.Err != nil || f.Size > 32<<10 || (i > 0 && f.Seq != files[i-1].Seq+1) {
			t.Fatalf("file %d: %+v", i, f)
		}
		if i > 0 && (f.MinTS <= files[i-1].MinTS || f.MaxTS <= files[i-1].MaxTS) {
			t.Fatalf("file %d spans [%d, %d], not after the previous [%d, %d]", i, f.MinTS, f.MaxTS, files[i-1].MinTS, files[i-1].MaxTS)
		}
	}
	if len(files) < 5 || n != 5000 || int(w.Stats().Files) != len(files) {
		t.Fatalf("got %d files with %d records (stats %+v), want >= 5 files with 5000", len(files), n, w.Stats())
	}
	if got, _ := scanAll(t, openR(t, root), Query{}); len(got) != 5000 {
		t.Fatalf("got %d records, want 5000", len(got))
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	if Size(root) != total {
		t.Fatalf("got Size %d, want %d", Size(root), total)
	}

	// A new writer starts a new file after the last.
	w = openW(t, root, Options{})
	writeAll(t, w, recs[:10])
	w.Close()
	files2, _ := Files(root)
	if len(files2) != len(files)+1 || files2[len(files2)-1].Seq != files[len(files)-1].Seq+1 || files2[len(files2)-1].Records != 10 {
		t.Fatalf("reopen: got %d files, last %+v", len(files2), files2[len(files2)-1])
	}
}

// frameOffsets returns the start offsets of the frames of a file and its size.
func frameOffsets(t *testing.T, path string) ([]int64, int64) {
	t.Helper()
	ff, err := openFrameFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.close()
	var offs []int64
	for {
		h, err := ff.next()
		if err != nil {
			break
		}
		offs = append(offs, ff.off)
		ff.off += h.frameLen()
	}
	return offs, ff.size
}

func TestCrashTruncate(t *testing.T) {
	src := t.TempDir()
	recs := httpRecords(60)
	w := openW(t, src, Options{FrameRecords: 20})
	writeAll(t, w, recs)
	w.Close()
	files, _ := Files(src)
	data, err := os.ReadFile(files[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	offs, size := frameOffsets(t, files[0].Path)
	if len(offs) != 3 {
		t.Fatalf("got %d frames, want 3", len(offs))
	}
	root := t.TempDir()
	dir := filepath.Join(root, "messages")
	os.MkdirAll(dir, 0o700)
	rd := openR(t, root)
	for _, newer := range []bool{false, true} {
		if newer { // the torn file is no longer the newest (the writer restarted)
			os.WriteFile(filepath.Join(dir, fileName(2)), nil, 0o600)
		}
		for cut := offs[2]; cut < size; cut++ {
			if err := os.WriteFile(filepath.Join(dir, fileName(1)), data[:cut], 0o600); err != nil {
				t.Fatal(err)
			}
			got, bad := scanAll(t, rd, Query{})
			if len(bad) != 0 {
				t.Fatalf("cut at %d: got corruption %v", cut, bad)
			}
			sameRecords(t, got, recs[:40])
			rep, err := Verify(root)
			wantTorn := 0
			if cut > offs[2] {
				wantTorn++
			}
			if newer { // an empty unsealed file no writer holds: a warning too
				wantTorn++
			}
			if err != nil || len(rep.Corrupt) != 0 || rep.Records != 40 || len(rep.Torn) != wantTorn {
				t.Fatalf("cut at %d: got report %+v, err %v", cut, rep, err)
			}
		}
	}
	// A zero-filled tail (size on disk, data lost) is a torn tail too.
	zeroed := append(slices.Clone(data[:offs[2]]), make([]byte, size-offs[2])...)
	os.WriteFile(filepath.Join(dir, fileName(1)), zeroed, 0o600)
	if got, bad := scanAll(t, rd, Query{}); len(bad) != 0 || len(got) != 40 {
		t.Fatalf("zero tail: got %d records, corruption %v", len(got), bad)
	}
}

func TestCorruptMiddle(t *testing.T) {
	root := t.TempDir()
	recs := httpRecords(400)
	w := openW(t, root, Options{FrameRecords: 50, FileBytes: 8 << 10})
	writeAll(t, w, recs)
	w.Close()
	files, _ := Files(root)
	if len(files) < 2 || files[0].Frames < 3 {
		t.Fatalf("test needs >= 2 files, >= 3 frames in the first: %+v", files)
	}
	offs, size := frameOffsets(t, files[0].Path)
	end1 := size // end of the second frame
	if len(offs) > 2 {
		end1 = offs[2]
	}
	perFrame := 50
	for _, tc := range []struct {
		name string
		pos  int64 // byte to flip, relative to the second frame
	}{
		{"header", 10}, {"bloom", frameHeaderSize + 3}, {"data", end1 - offs[1] - 20}, {"crc", end1 - offs[1] - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, _ := os.ReadFile(files[0].Path)
			orig := slices.Clone(data)
			defer os.WriteFile(files[0].Path, orig, 0o600)
			data[offs[1]+tc.pos] ^= 0x40
			os.WriteFile(files[0].Path, data, 0o600)

			// The bloom is only read for a term query: use one every frame has.
			got, bad := scanAll(t, openR(t, root), Query{Terms: []string{"proto=http"}})
			// A damaged header ends its file (its lengths cannot be
			// trusted); damage after it costs only that frame.
			want := append(slices.Clone(recs[:perFrame]), recs[2*perFrame:]...)
			if tc.name == "header" {
				want = append(slices.Clone(recs[:perFrame]), recs[files[0].Records:]...)
			}
			sameRecords(t, got, want)
			var ce *CorruptionError
			if len(bad) != 1 || !errors.As(bad[0], &ce) || ce.Path != files[0].Path || ce.Offset != offs[1] {
				t.Fatalf("got corruption %v, want one at %s:%d", bad, files[0].Path, offs[1])
			}
			rep, err := Verify(root)
			if err != nil || len(rep.Corrupt) != 1 || !errors.As(rep.Corrupt[0], &ce) || ce.Path != files[0].Path || ce.Offset != offs[1] {
				t.Fatalf("got verify %+v, err %v", rep, err)
			}
		})
	}
}

func TestConcurrentReader(t *testing.T) {
	root := t.TempDir()
	recs := httpRecords(20000)
	w := openW(t, root, Options{FrameRecords: 64, FileBytes: 64 << 10})
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done.Store(true)
		for i, r := range recs {
			if err := w.Append(r); err != nil {
				t.Error(err)
				return
			}
			if i%37 == 0 {
				if err := w.Flush(); err != nil {
					t.Error(err)
					return
				}
			}
		}
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	}()
	rd := openR(t, root)
	last, scans := 0, 0
	for {
		finished := done.Load()
		n := 0
		err := rd.Scan(context.Background(), Query{OnCorrupt: func(err error) { t.Errorf("scan %d: %v", scans, err) }},
			func(r *analytics.Record) error {
				if r.ID != recs[n].ID {
					return fmt.Errorf("record %d: got id %016x, want %016x", n, r.ID, recs[n].ID)
				}
				n++
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if n < last {
			t.Fatalf("scan %d saw %d records, fewer than the %d before", scans, n, last)
		}
		last = n
		scans++
		if finished {
			break
		}
	}
	wg.Wait()
	if last != len(recs) {
		t.Fatalf("final scan: got %d records, want %d", last, len(recs))
	}
	t.Logf("%d scans", scans)
}

func TestDiskFull(t *testing.T) {
	for _, truncFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("truncateFails=%v", truncFails), func(t *testing.T) {
			root := t.TempDir()
			var full atomic.Bool
			o := Options{
				FrameRecords: 10,
				Logger:       slog.New(slog.DiscardHandler),
				write: func(f *os.File, b []byte) (int, error) {
					if full.Load() { // a partial write, then ENOSPC
						n, _ := f.Write(b[:len(b)/2])
						return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
					}
					return f.Write(b)
				},
			}
			if truncFails {
				o.truncate = func(*os.File, int64) error { return syscall.EIO }
			}
			w := openW(t, root, o)
			recs := httpRecords(100)
			writeAll(t, w, recs[:30])
			full.Store(true)
			var errs int
			for _, r := range recs[30:55] {
				if err := w.Append(r); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("got %v, want ENOSPC", err)
					}
					errs++
				}
			}
			if err := w.Flush(); err == nil || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("flush: got %v, want ENOSPC", err)
			}
			full.Store(false)
			writeAll(t, w, recs[55:])
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			st := w.Stats()
			if errs != 2 || st.WriteErrors != 3 || st.Dropped != 25 || st.Records != 75 {
				t.Fatalf("got %d append errors, stats %+v; want 2, 3 write errors, 25 dropped, 75 records", errs, st)
			}
			got, bad := scanAll(t, openR(t, root), Query{})
			want := append(slices.Clone(recs[:30]), recs[55:]...)
			sameRecords(t, got, want)
			rep, _ := Verify(root)
			wantFiles, wantTorn := 1, 0
			if truncFails {
				// The first failed frame leaves its file torn (unsealed);
				// the files of the next two held only a partial frame and
				// are removed when the writer moves on.
				wantFiles, wantTorn = 2, 1
			}
			if len(bad) != 0 || len(rep.Corrupt) != 0 || rep.Files != wantFiles || len(rep.Torn) != wantTorn {
				t.Fatalf("got corruption %v, report %+v; want %d files, %d torn", bad, rep, wantFiles, wantTorn)
			}
		})
	}
}

func TestDropBefore(t *testing.T) {
	root := t.TempDir()
	recs := httpRecords(2000) // 1 ms apart
	w := openW(t, root, Options{FrameRecords: 100, FileBytes: 4 << 10})
	writeAll(t, w, recs)
	w.Close()
	files, _ := Files(root)
	cut := recs[1000].ReqFirst
	var wantN int
	var wantBytes int64
	for _, f := range files[:len(files)-1] {
		if f.MaxTS < cut {
			wantN++
			wantBytes += f.Size
		}
	}
	n, bytes, err := DropBefore(root, cut)
	if err != nil || n != wantN || bytes != wantBytes || n < 2 {
		t.Fatalf("got %d files %d bytes (err %v), want %d files %d bytes", n, bytes, err, wantN, wantBytes)
	}
	got, _ := scanAll(t, openR(t, root), Query{})
	if len(got) == 0 || got[0].ReqFirst > cut || got[len(got)-1].ID != recs[1999].ID {
		t.Fatalf("after drop: %d records, first at %d (cut %d)", len(got), got[0].ReqFirst, cut)
	}
	// Never the newest file, even when everything is old.
	n, _, _ = DropBefore(root, t0+1e15)
	left, _ := Files(root)
	if len(left) != 1 || left[0].Seq != files[len(files)-1].Seq {
		t.Fatalf("got %d files left (dropped %d), want the newest", len(left), n)
	}
}

func TestScanStops(t *testing.T) {
	for _, workers := range []int{0, 2} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) { testScanStops(t, workers) })
	}
}

func testScanStops(t *testing.T, workers int) {
	root := t.TempDir()
	w := openW(t, root, Options{FrameRecords: 10, FileBytes: 4 << 10})
	writeAll(t, w, httpRecords(100))
	w.Close()
	rd := openR(t, root)
	stop := errors.New("enough")
	n := 0
	err := rd.Scan(context.Background(), Query{Workers: workers}, func(*analytics.Record) error {
		if n++; n == 15 {
			return stop
		}
		return nil
	})
	if err != stop || n != 15 {
		t.Fatalf("got %v after %d records, want the callback's error after 15", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	err = rd.Scan(ctx, Query{Workers: workers}, func(*analytics.Record) error {
		if n++; n == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 10 {
		t.Fatalf("got %v after %d records, want context.Canceled after the frame (10)", err, n)
	}
}

func TestAppendRejects(t *testing.T) {
	w := openW(t, t.TempDir(), Options{})
	defer w.Close()
	r := httpRecord(1, t0)
	r.Packets = make([]analytics.PktRef, MaxRefs+1)
	if err := w.Append(r); err == nil || w.Stats().Rejected != 1 {
		t.Fatalf("got %v, stats %+v; want a rejection", err, w.Stats())
	}
}

func FuzzReadFrame(f *testing.F) {
	root := f.TempDir()
	w, _ := OpenWriter(root, Options{FrameRecords: 3})
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 7; i++ {
		w.Append(randRecord(rng))
	}
	w.Append(httpRecord(1, t0))
	w.Close()
	files, _ := Files(root)
	good, _ := os.ReadFile(files[0].Path)
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add([]byte("TVMR"))
	// A version 1 file (records as rows), as older stores hold.
	root1 := f.TempDir()
	w1, err := OpenWriter(root1, Options{FrameRecords: 3})
	if err != nil {
		f.Fatal(err)
	}
	w1.rows = true
	for i := 0; i < 5; i++ {
		w1.Append(randRecord(rng))
	}
	w1.Append(httpRecord(2, t0))
	w1.Close()
	files1, _ := Files(root1)
	old, _ := os.ReadFile(files1[0].Path)
	f.Add(old)
	f.Fuzz(func(t *testing.T, b []byte) {
		root := t.TempDir()
		dir := filepath.Join(root, "messages")
		os.Mkdir(dir, 0o700)
		os.WriteFile(filepath.Join(dir, fileName(1)), b, 0o600)
		os.WriteFile(filepath.Join(dir, fileName(2)), b, 0o600)
		rd, err := OpenReader(root)
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, q := range []Query{{}, {Terms: []string{"proto=http"}}, {From: t0, Protos: []string{"http"}}, {NoDetail: true, Kind: Exchanges}, {Kind: Connections, Workers: 2}} {
			q.OnCorrupt = func(error) {}
			if err := rd.Scan(ctx, q, func(*analytics.Record) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Verify(root); err != nil {
			t.Fatal(err)
		}
		Files(root)
	})
}
