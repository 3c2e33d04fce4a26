package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tapvault/index"
)

// tvRC runs tapvault with args and returns stdout, stderr and the exit
// status, failing the test if the process panicked or died of a signal.
func tvRC(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	out, errOut, rc, _ := tvPID(t, args...)
	return out, errOut, rc
}

// tvPID is tvRC that also returns the process's pid.
func tvPID(t *testing.T, args ...string) (string, string, int, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	rc := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("tapvault %s: killed by %v\nstderr:\n%s", strings.Join(args, " "), ws.Signal(), errb.String())
		}
		rc = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if s := errb.String(); strings.Contains(s, "panic:") || strings.Contains(s, "goroutine ") {
		t.Fatalf("tapvault %s panicked (rc %d):\n%s", strings.Join(args, " "), rc, s)
	}
	return out.String(), errb.String(), rc, cmd.Process.Pid
}

// faultStore imports a generated trace into a store of several segments
// and returns it with the query counts it must answer, taken with the
// index moved away (so from a header scan).
func faultStore(t *testing.T, packets int, blockSize string) (store string, want map[string]string) {
	t.Helper()
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "mixed", packets)
	store = filepath.Join(dir, "store")
	tv(t, false, "import", "--no-analytics", "--data", store, "--block-size", blockSize, "--segment-size", "1MiB", trace)
	ixDir := index.DirOf(store)
	if err := os.Rename(ixDir, ixDir+".away"); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{}
	for _, f := range faultFilters {
		out, _ := tv(t, false, append([]string{"query", "--data", store, "--count"}, f...)...)
		want[strings.Join(f, " ")] = strings.TrimSpace(out)
	}
	if err := os.Rename(ixDir+".away", ixDir); err != nil {
		t.Fatal(err)
	}
	return store, want
}

var faultFilters = [][]string{nil, {"tcp"}, {"udp", "and", "port", "53"}}

// checkAnswers runs every filter on store and compares with want. It returns
// the stderr of the first query.
func checkAnswers(t *testing.T, store string, want map[string]string, what string) string {
	t.Helper()
	var first string
	for i, f := range faultFilters {
		out, errs, rc := tvRC(t, append([]string{"query", "--data", store, "--count"}, f...)...)
		if i == 0 {
			first = errs
		}
		k := strings.Join(f, " ")
		if rc != 0 || strings.TrimSpace(out) != want[k] {
			t.Fatalf("%s: query --count %q: got %q (rc %d), want %s, as with no index\nstderr:\n%s", what, k, strings.TrimSpace(out), rc, want[k], errs)
		}
	}
	return first
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
}

// TestFaultIndexFileDamage damages each file of a store's index in turn (cut
// to 0, 1, half and all but one byte; one bit flipped at the start, middle
// and end) and runs the commands on it. Before the fix, any cut .sst made
// query, stats and reindex panic in Badger's table.initIndex (in a goroutine
// of Badger's, past any recover), a table with a bad block checksum was
// skipped by Badger with its keys, and verify said nothing. Now: no command
// panics; queries give the answer of a store with no index, saying the index
// is damaged when it is; verify exits 2 for a damaged MANIFEST or table; a
// plain reindex leaves an index that answers the same and verifies.
func TestFaultIndexFileDamage(t *testing.T) {
	base, want := faultStore(t, 20000, "64KiB")
	entries, err := os.ReadDir(index.DirOf(base))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != "LOCK" {
			files = append(files, e.Name())
		}
	}
	for _, class := range []string{"MANIFEST", ".sst", ".vlog", "KEYREGISTRY", "DISCARD"} {
		found := false
		for _, f := range files {
			found = found || strings.HasSuffix(f, class)
		}
		if !found {
			t.Fatalf("index has no %s file: %v", class, files)
		}
	}
	work := t.TempDir()
	n := 0
	for _, name := range files {
		fi, err := os.Stat(filepath.Join(index.DirOf(base), name))
		if err != nil {
			t.Fatal(err)
		}
		size := fi.Size()
		type damage struct {
			what string
			do   func(b []byte) []byte
		}
		cases := []damage{
			{"cut to 0", func(b []byte) []byte { return b[:0] }},
			{"cut to 1", func(b []byte) []byte { return b[:1] }},
			{"cut to half", func(b []byte) []byte { return b[:len(b)/2] }},
			{"cut by 1", func(b []byte) []byte { return b[:len(b)-1] }},
		}
		for _, at := range []int64{0, size / 2, size - 1} {
			cases = append(cases, damage{fmt.Sprintf("bit flip at %d", at), func(b []byte) []byte { b[at] ^= 0x10; return b }})
		}
		for _, c := range cases {
			n++
			what := name + " " + c.what
			store := filepath.Join(work, fmt.Sprint(n))
			copyDir(t, base, store)
			p := filepath.Join(index.DirOf(store), name)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, c.do(b), 0o600); err != nil {
				t.Fatal(err)
			}
			errs := checkAnswers(t, store, want, what)
			structural := strings.HasSuffix(name, ".sst") || name == "MANIFEST"
			if structural && !strings.Contains(errs, "the index is damaged: scanning block headers") {
				t.Errorf("%s: query stderr does not say the index is damaged:\n%s", what, errs)
			}
			if _, _, rc := tvRC(t, "stats", "--data", store); rc != 0 {
				t.Errorf("%s: stats rc %d, want 0", what, rc)
			}
			vout, _, rc := tvRC(t, "verify", "--data", store)
			if structural && (rc != 2 || !strings.Contains(vout, "verify index: DAMAGED")) {
				t.Errorf("%s: verify rc %d, want 2 and 'verify index: DAMAGED':\n%s", what, rc, vout)
			}
			if !structural && rc != 0 && rc != 2 {
				t.Errorf("%s: verify rc %d, want 0 or 2", what, rc)
			}
			if out, errs, rc := tvRC(t, "reindex", "--data", store); rc != 0 {
				t.Fatalf("%s: reindex rc %d\n%s\n%s", what, rc, out, errs)
			} else if structural && !strings.Contains(out, "the index is damaged") {
				t.Errorf("%s: reindex did not say it moved a damaged index aside:\n%s", what, out)
			}
			checkAnswers(t, store, want, what+", after reindex")
			if st, _, _ := tvRC(t, "stats", "--data", store); !strings.Contains(st, "index         ok") {
				t.Errorf("%s: after reindex, stats:\n%s", what, st)
			}
			if vout, _, rc := tvRC(t, "verify", "--data", store); rc != 0 || !strings.Contains(vout, "verify index: OK") {
				t.Errorf("%s: after reindex, verify rc %d:\n%s", what, rc, vout)
			}
			os.RemoveAll(store)
		}
	}
	t.Logf("%d damaged copies of a %d-file index: no panic, every answer as with no index", n, len(files))
}

// TestFaultIndexUnclean is the state a kill -9 of any writer leaves: Badger's
// write-ahead log (*.mem) still there. The copy is taken while an Index holds
// the store open for writing, so its log is on disk as a killed process
// leaves it. Before, every read-only command said "index corrupt" until a
// writer opened the store; now they say "not closed cleanly", answer from a
// header scan, verify exits 0, and a plain reindex replays it.
func TestFaultIndexUnclean(t *testing.T) {
	base, want := faultStore(t, 20000, "64KiB")
	ix, err := index.Open(index.Options{Dir: index.DirOf(base)})
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "store")
	copyDir(t, base, store)
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	if mem, _ := filepath.Glob(filepath.Join(index.DirOf(store), "*.mem")); len(mem) == 0 {
		t.Fatal("the copy has no write-ahead log: not the state a kill leaves")
	}
	errs := checkAnswers(t, store, want, "unclean")
	if !strings.Contains(errs, "not closed cleanly") || strings.Contains(errs, "damaged") || strings.Contains(errs, "corrupt") {
		t.Errorf("query stderr: want 'not closed cleanly', not damage:\n%s", errs)
	}
	if st, _, _ := tvRC(t, "stats", "--data", store); !strings.Contains(st, "index         not closed cleanly") {
		t.Errorf("stats:\n%s", st)
	}
	if vout, _, rc := tvRC(t, "verify", "--data", store); rc != 0 || !strings.Contains(vout, "verify index: not closed cleanly") {
		t.Errorf("verify rc %d, want 0 and 'not closed cleanly':\n%s", rc, vout)
	}
	tv(t, false, "reindex", "--data", store)
	checkAnswers(t, store, want, "after reindex")
	if st, _, _ := tvRC(t, "stats", "--data", store); !strings.Contains(st, "index         ok") {
		t.Errorf("after reindex, stats:\n%s", st)
	}
}

// TestFaultReindexKill9 kills `reindex --full` at several moments. Each kill
// used to leave an index.old-* directory for good. Now queries answer as
// with no index after every kill, and the next plain reindex removes the
// leftovers and leaves an index that verifies.
func TestFaultReindexKill9(t *testing.T) {
	store, want := faultStore(t, 60000, "4KiB")
	t0 := time.Now()
	tv(t, false, "reindex", "--full", "--data", store)
	full := time.Since(t0)
	for i, frac := range []float64{0, 0.05, 0.15, 0.3, 0.5} {
		before, _ := filepath.Glob(index.DirOf(store) + ".old-*")
		cmd := exec.Command(os.Args[0], "reindex", "--full", "--data", store)
		cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// From the moment the old index is moved aside: the process
		// start is slow and uneven on a loaded machine.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if now, _ := filepath.Glob(index.DirOf(store) + ".old-*"); len(now) > len(before) {
				break
			}
		}
		time.Sleep(time.Duration(frac * float64(full)))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		checkAnswers(t, store, want, fmt.Sprintf("kill %d at %.0f%% of a %s reindex", i, 100*frac, full.Round(time.Millisecond)))
	}
	olds, _ := filepath.Glob(index.DirOf(store) + ".old-*")
	t.Logf("a full reindex takes %s; %d index.old-* left by 5 kills", full.Round(time.Millisecond), len(olds))
	if len(olds) == 0 {
		t.Fatalf("no kill landed inside a reindex: the test checked nothing")
	}
	out, _ := tv(t, false, "reindex", "--data", store)
	if olds, _ := filepath.Glob(index.DirOf(store) + ".old-*"); len(olds) > 0 {
		t.Errorf("after a plain reindex, leftovers remain: %v\n%s", olds, out)
	}
	checkAnswers(t, store, want, "after reindex")
	if vout, _, rc := tvRC(t, "verify", "--data", store); rc != 0 || !strings.Contains(vout, "verify index: OK") {
		t.Errorf("verify rc %d:\n%s", rc, vout)
	}
}

// TestFaultReindexPrunesStale gives a store the index of another store with
// the same segment numbers: every block key names a block the segment does
// not hold, as after an older writer cut damaged committed bytes and wrote
// new blocks over them. The index then answered a fraction of the packets,
// and only `reindex --full` repaired it; now verify says so (exit 2) and a
// plain reindex removes the stale entries.
func TestFaultReindexPrunesStale(t *testing.T) {
	store, want := faultStore(t, 20000, "64KiB")
	dir := t.TempDir()
	trace := filepath.Join(dir, "other.pcap")
	genTrace(t, trace, "imix", 5000)
	other := filepath.Join(dir, "other")
	tv(t, false, "import", "--no-analytics", "--data", other, "--block-size", "16KiB", trace)
	if err := os.RemoveAll(index.DirOf(store)); err != nil {
		t.Fatal(err)
	}
	copyDir(t, index.DirOf(other), index.DirOf(store))
	if vout, _, rc := tvRC(t, "verify", "--data", store); rc != 2 || !strings.Contains(vout, "entries in") {
		t.Errorf("verify with stale entries: rc %d, want 2 naming them:\n%s", rc, vout)
	}
	out, _ := tv(t, false, "reindex", "--data", store)
	if !strings.Contains(out, "index entries named blocks the segment no longer holds") {
		t.Errorf("reindex did not report stale entries:\n%s", out)
	}
	checkAnswers(t, store, want, "after a plain reindex")
	if vout, _, rc := tvRC(t, "verify", "--data", store); rc != 0 || !strings.Contains(vout, "verify index: OK") {
		t.Errorf("verify after reindex: rc %d:\n%s", rc, vout)
	}
}

// TestFaultIndexFullDiskReadOnly fills a 64 MiB tmpfs through an import
// with --index-reserve 0, which dies of SIGBUS in Badger and leaves its
// sparse write-ahead log (32 MiB apparent) on a filesystem with no free
// page. Query and stats then died of SIGBUS too, opening the index read-only:
// on tmpfs even reading a hole needs a page. Now a read-only open sees the log
// and scans block headers without mapping anything of Badger's.
func TestFaultIndexFullDiskReadOnly(t *testing.T) {
	mnt := mountTmpfs(t, "64m")
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 400_000) // ~144 MiB of pcap
	store := filepath.Join(mnt, "store")
	cmd := exec.Command(os.Args[0], "import", "--no-analytics", "--index-reserve", "0", "--data", store, trace)
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	ierr := cmd.Run()
	// Whatever the import did, leave no free page.
	if f, err := os.Create(filepath.Join(mnt, "filler")); err == nil {
		buf := make([]byte, 1<<16)
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
		f.Close()
	}
	mem, _ := filepath.Glob(filepath.Join(index.DirOf(store), "*.mem"))
	t.Logf("import: %v; write-ahead logs left: %d", ierr, len(mem))
	out, errs, rc := tvRC(t, "query", "--data", store, "--count")
	got := strings.TrimSpace(out)
	if rc != 0 || got == "" || got == "0" {
		t.Fatalf("query --count on a full disk: rc %d, %q\n%s", rc, got, errs)
	}
	if len(mem) > 0 && !strings.Contains(errs, "not closed cleanly") {
		t.Errorf("query stderr does not say the index was not closed cleanly:\n%s", errs)
	}
	if _, errs, rc := tvRC(t, "stats", "--data", store); rc != 0 {
		t.Errorf("stats rc %d:\n%s", rc, errs)
	}
	ixDir := index.DirOf(store)
	if err := os.Rename(ixDir, ixDir+".away"); err != nil {
		t.Fatal(err)
	}
	if scan, _ := tv(t, false, "query", "--data", store, "--count"); strings.TrimSpace(scan) != got {
		t.Errorf("query --count: %s with the index there, %s with none", got, strings.TrimSpace(scan))
	}
}
