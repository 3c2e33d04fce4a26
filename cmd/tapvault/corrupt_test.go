package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"tapvault/writer"
)

// TestCorruptBlockIsNamedAndSkipped damages bytes in the middle of a
// segment: verify names the bad block and fails with status 2; queries skip
// that block with a warning and return every other packet.
func TestCorruptBlockIsNamedAndSkipped(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 20000)
	store := filepath.Join(dir, "store")
	tv(t, false, "import", "--data", store, "--block-size", "64KiB", trace)
	seg := filepath.Join(store, "segments", "0000000001.seg")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	mid := len(b) / 2
	for i := mid; i < mid+16; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "verify", "--data", store)
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("verify of a damaged store: err %v, want exit status 2\n%s", err, out)
	}
	m := regexp.MustCompile(`bad block at segment 1 offset (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("verify does not name the bad block:\n%s", out)
	}
	off, _ := strconv.Atoi(string(m[1]))
	if off > mid || off < mid-(1<<20) {
		t.Fatalf("verify names offset %d, the damage is at %d", off, mid)
	}

	cnt, stderr := tv(t, false, "query", "--data", store, "--count")
	n, _ := strconv.Atoi(strings.TrimSpace(cnt))
	if n <= 0 || n >= 20000 {
		t.Fatalf("count with one bad block: got %d, want most of 20000", n)
	}
	if !strings.Contains(stderr, "corrupt") {
		t.Fatalf("query gave no warning about the skipped block:\n%s", stderr)
	}
	// Everything else comes back: the packets before and after the bad
	// block are a prefix and a suffix of the trace.
	exported := filepath.Join(dir, "out.pcap")
	tv(t, false, "query", "--data", store, "-w", exported)
	got, want := readAll(t, exported), readAll(t, trace)
	if len(got) != n {
		t.Fatalf("exported %d packets, counted %d", len(got), n)
	}
	i := 0
	for i < len(got) && string(got[i].data) == string(want[i].data) {
		i++
	}
	lost := len(want) - len(got)
	samePackets(t, got[i:], want[i+lost:], 1, false)
	if lost <= 0 || lost > 1000 {
		t.Fatalf("lost %d packets to one 64 KiB block", lost)
	}
	// Without the index (a header scan finds the blocks) the answer is the
	// same.
	if err := os.RemoveAll(filepath.Join(store, "index")); err != nil {
		t.Fatal(err)
	}
	if cnt2, _ := tv(t, false, "query", "--data", store, "--count"); strings.TrimSpace(cnt2) != strconv.Itoa(n) {
		t.Fatalf("count without the index: got %s, with it %d", strings.TrimSpace(cnt2), n)
	}
}

// newestBlocks returns the blocks of the store's newest segment, in file
// order.
func newestBlocks(t *testing.T, store string) []writer.BlockMeta {
	t.Helper()
	r, err := writer.OpenReader(store)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	segs, err := r.Segments()
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments: %v, %v", segs, err)
	}
	var out []writer.BlockMeta
	if err := r.ScanSegment(segs[len(segs)-1].Number, func(m writer.BlockMeta) error { out = append(out, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) < 4 {
		t.Fatalf("newest segment has %d blocks, want 4 or more", len(out))
	}
	return out
}

func countOf(t *testing.T, store string) (int, string) {
	t.Helper()
	out, stderr := tv(t, false, "query", "--data", store, "--count")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("query --count: %q", out)
	}
	return n, stderr
}

// TestFaultCommittedBlocksNeverCut damages committed blocks at the end of
// the newest segment of a finished store, where a crash would leave a torn
// tail. Verify must call it damage (exit 2) and name the blocks, as many
// as a query skips with a warning, and the next import must keep them:
// afterwards the store holds every packet but the damaged blocks'. Before,
// verify said OK ("bytes after the last complete block") and the next
// import cut the damaged block off as a torn tail; and verify counted a bad
// region across two blocks as one bad block while queries skipped two.
func TestFaultCommittedBlocksNeverCut(t *testing.T) {
	cases := []struct {
		name   string
		damage func(blocks []writer.BlockMeta) (from, to int64, bad []writer.BlockMeta)
	}{
		{"last block payload", func(b []writer.BlockMeta) (int64, int64, []writer.BlockMeta) {
			last := b[len(b)-1]
			off := int64(last.Ref.Offset()) + 200
			return off, off + 1, b[len(b)-1:]
		}},
		{"last block header", func(b []writer.BlockMeta) (int64, int64, []writer.BlockMeta) {
			off := int64(b[len(b)-1].Ref.Offset()) + 20
			return off, off + 1, b[len(b)-1:]
		}},
		{"across the last two blocks", func(b []writer.BlockMeta) (int64, int64, []writer.BlockMeta) {
			off := int64(b[len(b)-1].Ref.Offset())
			return off - 8, off + 8, b[len(b)-2:]
		}},
		{"across two middle blocks", func(b []writer.BlockMeta) (int64, int64, []writer.BlockMeta) {
			off := int64(b[2].Ref.Offset())
			return off - 8, off + 8, b[1:3]
		}},
	}
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 20000)
	more := filepath.Join(dir, "more.pcap")
	genTrace(t, more, "imix", 1000)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "store")
			tv(t, false, "import", "--data", store, "--block-size", "64KiB", trace)
			blocks := newestBlocks(t, store)
			from, to, bad := c.damage(blocks)
			lost := 0
			for _, m := range bad {
				lost += int(m.Count)
			}
			seg := filepath.Join(store, "segments", fmt.Sprintf("%010d.seg", bad[0].Ref.Segment()))
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			for i := from; i < to; i++ {
				b[i] ^= 0x10
			}
			if err := os.WriteFile(seg, b, 0o600); err != nil {
				t.Fatal(err)
			}

			checkVerify := func(when string) {
				t.Helper()
				out, _, code := tvRC(t, "verify", "--data", store)
				if code != 2 || !strings.Contains(out, fmt.Sprintf("%d BAD blocks", len(bad))) {
					t.Fatalf("%s: verify: exit %d, want 2 and %d BAD blocks\n%s", when, code, len(bad), out)
				}
				for _, m := range bad {
					if want := fmt.Sprintf("bad block at segment %d offset %d:", m.Ref.Segment(), m.Ref.Offset()); !strings.Contains(out, want) {
						t.Fatalf("%s: verify does not name %q:\n%s", when, want, out)
					}
				}
			}
			checkVerify("before reopening")
			n, stderr := countOf(t, store)
			if n != 20000-lost {
				t.Fatalf("count: got %d, want %d (all but the damaged blocks' %d)", n, 20000-lost, lost)
			}
			if want := fmt.Sprintf("warning: %d corrupt blocks were skipped", len(bad)); !strings.Contains(stderr, want) {
				t.Fatalf("query: want %q, as many as verify names:\n%s", want, stderr)
			}

			_, logs := tv(t, false, "import", "--data", store, "--block-size", "64KiB", more)
			if strings.Contains(logs, "cutting torn tail") {
				t.Fatalf("import cut committed bytes as a torn tail:\n%s", logs)
			}
			if n, _ := countOf(t, store); n != 20000-lost+1000 {
				t.Fatalf("count after the next import: got %d, want %d", n, 20000-lost+1000)
			}
			checkVerify("after the next import")
		})
	}
}
