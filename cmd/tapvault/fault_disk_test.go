package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tapvault/msgstore"
	"tapvault/pipeline"
	"tapvault/tracegen"
)

// mountTmpfs mounts a tmpfs of size (e.g. "64m") on a new directory, or
// skips the test when that is not possible.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (CI runs as root): msgstore's TestFaultReserve and pipeline's retention tests cover the parts without it")
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s): a container without CAP_SYS_ADMIN?", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// appTrace writes an application trace (HTTP, DNS, PostgreSQL, Redis).
func appTrace(t *testing.T, path string, packets int) {
	t.Helper()
	if _, err := tracegen.GenerateFile(path, tracegen.Options{Kind: tracegen.KindApp, Packets: packets, Seed: 7, PPS: 100_000}); err != nil {
		t.Fatal(err)
	}
}

// storeBytes is the size of a store's segment and message files.
func storeBytes(t *testing.T, store string) (segs, msgs int64) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(store, "segments"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".seg") {
			segs += fi.Size()
		}
	}
	return segs, msgstore.Size(store)
}

func availBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// checkUnderReserve: on a 64 MiB filesystem whose writers keep 48 MiB
// free (1.5 x the default --index-reserve), segments and records together
// hold at most 16 MiB, plus what the writers write between two statfs
// (250 ms) and the block and frame in flight.
func checkUnderReserve(t *testing.T, segs, msgs int64) {
	t.Helper()
	if segs+msgs > 16<<20+4<<20 {
		t.Fatalf("segments %d B + records %d B: want at most 16 MiB (64 MiB less the 48 MiB reserve) and 4 MiB of slack", segs, msgs)
	}
}

// checkAfterFull runs verify, query, stats and messages on a store a full
// disk cut short: none may die of a signal or panic (tvRC fails the test
// then), verify must pass, and the query must count the committed packets.
func checkAfterFull(t *testing.T, store string, committed uint64) {
	t.Helper()
	if out, errs, rc := tvRC(t, "verify", "--data", store); rc != 0 || !strings.Contains(out, "verify: OK") {
		t.Fatalf("verify: rc %d, want 0\n%s\n%s", rc, out, errs)
	}
	if out, errs, rc := tvRC(t, "query", "--data", store, "--count"); rc != 0 || strings.TrimSpace(out) != strconv.FormatUint(committed, 10) {
		t.Fatalf("query --count: got %q (rc %d), want %d\n%s", strings.TrimSpace(out), rc, committed, errs)
	}
	if out, errs, rc := tvRC(t, "stats", "--data", store); rc != 0 || !strings.Contains(out, "messages") {
		t.Fatalf("stats: rc %d\n%s\n%s", rc, out, errs)
	}
	if out, errs, rc := tvRC(t, "messages", "--data", store, "--limit", "5", "--json"); rc != 0 || strings.Count(out, "\n") != 5 {
		t.Fatalf("messages: rc %d, %d lines, want 5\n%s\n%s", rc, strings.Count(out, "\n"), out, errs)
	}
}

// TestFaultDiskFullAnalyticsImport imports an application trace that more
// than fills a 64 MiB tmpfs, with analytics and the index on and
// --keep-free 30. The message store keeps the writer's reserve as blocks
// do: once the free space is below 1.5 x --index-reserve, frames are
// dropped and counted (records at stage "store"), blocks too (disk full).
// Before, the records were all written whatever the free space (the
// message store knew no reserve); in a capture they went on filling the
// disk until Badger died of SIGBUS (TestFaultDiskFullAnalyticsCapture).
func TestFaultDiskFullAnalyticsImport(t *testing.T) {
	mnt := mountTmpfs(t, "64m")
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	appTrace(t, trace, 600_000) // ~160 MiB of pcap: ~48 MiB of blocks, ~9 MiB of records
	store := filepath.Join(mnt, "store")

	out, errs, rc := tvRC(t, "import", "--data", store, "--keep-free", "30", "--segment-size", "4MiB", trace)
	if rc != 0 {
		t.Fatalf("import: rc %d, want 0\n%s\n%s", rc, out, errs)
	}
	committed := summaryNum(t, out, "store             committed")
	fullBlocks := summaryNum(t, out, "(of which disk full:") // pkts
	storeDrops := summaryNum(t, out, "at the record queue,")
	if fullBlocks == 0 || committed == 0 {
		t.Fatalf("committed %d, disk-full drops %d: want some of each\n%s", committed, fullBlocks, out)
	}
	if storeDrops == 0 {
		t.Fatalf("records dropped at the message store: got 0, want > 0: the records must keep the reserve too\n%s", out)
	}
	// The index's reserve (32 MiB) is intact: the writers stopped at 1.5
	// times it.
	if avail := availBytes(t, mnt); avail < 32<<20 {
		t.Fatalf("free space after the run: %d, want at least the 32 MiB index reserve", avail)
	}
	segs, msgs := storeBytes(t, store)
	t.Logf("committed %d packets (%d B of segments), %d B of message records; %d records dropped at the store, %d packets at the disk",
		committed, segs, msgs, storeDrops, fullBlocks)
	checkUnderReserve(t, segs, msgs)
	checkAfterFull(t, store, committed)
}

// TestFaultRetainBytesMessages: --retain-bytes counts the message records
// with the segments. An application trace whose records alone pass the
// budget is imported with a small budget; what is left (segments and
// message files) stays within it but for the newest segment and message
// file, which are never dropped, and the oldest message files are logged
// as dropped. Before, the budget counted segments only.
func TestFaultRetainBytesMessages(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	appTrace(t, trace, 400_000) // ~32 MiB of blocks, ~6 MiB of records
	store := filepath.Join(dir, "store")
	const budget = 4 << 20
	out, errs, rc := tvRC(t, "import", "--data", store, "--retain-bytes", "4MiB", "--retention-every", "200ms", "--segment-size", "1MiB", trace)
	if rc != 0 {
		t.Fatalf("import: rc %d\n%s\n%s", rc, out, errs)
	}
	acts, err := pipeline.RetentionLog(store)
	if err != nil {
		t.Fatal(err)
	}
	var mfiles int
	for _, a := range acts {
		if a.IsMessageFile() {
			mfiles++
		}
	}
	files, err := msgstore.Files(store)
	if err != nil {
		t.Fatal(err)
	}
	segs, msgs := storeBytes(t, store)
	newest := files[len(files)-1].Size + 1<<20 // the newest message file and segment
	if segs+msgs > budget+newest || mfiles == 0 {
		t.Fatalf("left %d B of segments + %d B of records, budget %d (+%d for the newest files); %d message files dropped, want some",
			segs, msgs, budget, newest, mfiles)
	}
	t.Logf("left %d B of segments + %d B of records in %d files (budget %d); %d retention actions, %d of message files", segs, msgs, len(files), budget, len(acts), mfiles)
	if want := "and " + strconv.Itoa(mfiles) + " message files"; !strings.Contains(out, want) {
		t.Fatalf("summary: want %q in the retention line\n%s", want, out)
	}
	if out, errs, rc := tvRC(t, "verify", "--data", store); rc != 0 {
		t.Fatalf("verify: rc %d\n%s\n%s", rc, out, errs)
	}
}

// TestFaultDiskFullAnalyticsCapture is the defect as reported: a DPDK
// capture of a looping application trace on a 64 MiB tmpfs with
// --keep-free 30. Blocks stop at the writer's reserve, but the analytics go
// on; before, their records filled the filesystem and Badger died of
// SIGBUS flushing a memtable (handleMemTableFlush), and every later query
// or stats too. Now the capture stops cleanly on SIGTERM with the records
// dropped and counted, the index reserve intact, and the store usable.
func TestFaultDiskFullAnalyticsCapture(t *testing.T) {
	needDPDK(t)
	if testing.Short() {
		t.Skip("-short")
	}
	mnt := mountTmpfs(t, "64m")
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	appTrace(t, trace, 20_000) // looped: infinite_rx keeps every packet in an mbuf
	store := filepath.Join(mnt, "store")
	cmd := exec.Command(os.Args[0], "capture", "--listen", "", "--mbufs", "32767", "--keep-free", "30",
		"--eal", "-l 0 --no-pci --no-huge -m 512 --no-shconf --vdev=net_pcap0,rx_pcap="+trace+",infinite_rx=1",
		"--data", store)
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The old code died within ~20 s on this machine class; the records
	// fill 64 MiB in about that time.
	time.Sleep(30 * time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			t.Fatalf("capture died of %v\n%s", ws.Signal(), tail(stderr.String(), 3000))
		}
	}
	if err != nil || strings.Contains(stderr.String(), "fatal error") || strings.Contains(stderr.String(), "panic:") {
		t.Fatalf("capture: %v\n%s", err, tail(stderr.String(), 3000))
	}
	out := stdout.String()
	committed := summaryNum(t, out, "store             committed")
	storeDrops := summaryNum(t, out, "at the record queue,")
	fullPkts := summaryNum(t, out, "(of which disk full:")
	if storeDrops == 0 || fullPkts == 0 {
		t.Fatalf("drops: %d records at the store, %d packets disk full; want both > 0\n%s", storeDrops, fullPkts, out)
	}
	if avail := availBytes(t, mnt); avail < 32<<20 {
		t.Fatalf("free space after the run: %d, want at least the 32 MiB index reserve", avail)
	}
	segs, msgs := storeBytes(t, store)
	t.Logf("committed %d packets (%d B), %d B of records; dropped %d records at the store, %d packets at the disk", committed, segs, msgs, storeDrops, fullPkts)
	checkUnderReserve(t, segs, msgs)
	checkAfterFull(t, store, committed)
	// The stats JSON says the same of the messages as the files.
	js, _, _ := tvRC(t, "stats", "--data", store, "--json")
	var st struct {
		Messages struct{ Bytes int64 } `json:"messages"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil || st.Messages.Bytes != msgs {
		t.Fatalf("stats --json: messages bytes %d (err %v), want %d", st.Messages.Bytes, err, msgs)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// msgFrameOffsets returns the offsets of the frames of a message file,
// walking the headers (docs/format/messages.md).
func msgFrameOffsets(t *testing.T, b []byte) []int {
	t.Helper()
	var offs []int
	for off := 0; off+64 <= len(b); {
		hlen := int(b[off+6]) | int(b[off+7])<<8
		le32 := func(p int) int { return int(b[p]) | int(b[p+1])<<8 | int(b[p+2])<<16 | int(b[p+3])<<24 }
		offs = append(offs, off)
		off += hlen + le32(off+40) + le32(off+48) + 4
	}
	return offs
}

// TestFaultMessageFileDamage damages a sealed message file (its writer
// closed it) in turn: cut to nothing, to less than a frame header, inside
// its last frame; one bit flipped in the first header, in the middle frame
// and in the last frame. Each time verify exits 2 naming the file, and
// messages and stats still answer (with the frames that are whole).
// Before, the cuts passed verify as a torn tail, like a crash's.
func TestFaultMessageFileDamage(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	appTrace(t, trace, 60_000)
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, trace)
	files, err := msgstore.Files(store)
	if err != nil || len(files) != 1 || !files[0].Sealed {
		t.Fatalf("got message files %+v (err %v), want one sealed", files, err)
	}
	path := files[0].Path
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	offs := msgFrameOffsets(t, orig)
	if len(offs) < 3 || len(offs) != files[0].Frames {
		t.Fatalf("got frames at %v, want %d (at least 3)", offs, files[0].Frames)
	}
	last, mid := offs[len(offs)-1], offs[len(offs)/2]
	if out, errs, rc := tvRC(t, "verify", "--data", store); rc != 0 {
		t.Fatalf("verify before damage: rc %d\n%s\n%s", rc, out, errs)
	}
	flip := func(pos int) []byte {
		b := bytes.Clone(orig)
		b[pos] ^= 0x08
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"shorter than a header", orig[:40]},
		{"cut in the last frame", orig[:last+(len(orig)-last)/2]},
		{"first header bit", flip(20)},
		{"middle frame bit", flip(mid + (offs[len(offs)/2+1]-mid)/2)},
		{"last frame bit", flip(len(orig) - 8)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Chmod(path, 0o600)
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, 0o400) // sealed, as the writer left it
			out, errs, rc := tvRC(t, "verify", "--data", store)
			if rc != 2 || !strings.Contains(out+errs, filepath.Base(path)) {
				t.Fatalf("verify: rc %d, want 2 naming %s\n%s\n%s", rc, filepath.Base(path), out, errs)
			}
			if _, errs, rc := tvRC(t, "messages", "--data", store, "--limit", "3"); rc != 0 {
				t.Fatalf("messages: rc %d\n%s", rc, errs)
			}
			if _, errs, rc := tvRC(t, "stats", "--data", store); rc != 0 {
				t.Fatalf("stats: rc %d\n%s", rc, errs)
			}
		})
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, orig, 0o600)
	os.Chmod(path, 0o400)
}
