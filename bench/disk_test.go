package bench

import (
	"os"
	"strings"
	"testing"
)

// TestMeasureDisk measures 8 MiB in a temporary directory: every figure is
// positive (or, where the filesystem refuses O_DIRECT, the error says so),
// the ratio divides by them, and no scratch file is left behind.
func TestMeasureDisk(t *testing.T) {
	dir := t.TempDir()
	ds := MeasureDisk(dir, 8<<20-1)
	if ds.Bytes != 8<<20 || ds.Err != "" || ds.BufferedSync <= 0 {
		t.Fatalf("got %+v, want 8 MiB and a buffered figure", ds)
	}
	if ds.DirectErr == "" && (ds.Direct <= 0 || ds.DirectSync <= 0) {
		t.Fatalf("got %+v, want both O_DIRECT figures or why not", ds)
	}
	if ds.DirectErr != "" {
		t.Logf("no O_DIRECT here: %s", ds.DirectErr)
	} else if d, s := ds.Ratio(ds.Direct / 2); d != 0.5 || s <= 0 {
		t.Fatalf("Ratio(half of Direct): got %v, %v, want 0.5 and > 0", d, s)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 0 {
		t.Fatalf("directory after: %v, %v; want empty", ents, err)
	}
	if s := ds.String(); !strings.Contains(s, "O_DIRECT") {
		t.Fatalf("String: %q", s)
	}
	var none DiskSpeed
	if d, s := none.Ratio(1); d != 0 || s != 0 {
		t.Fatalf("Ratio without figures: got %v, %v, want 0, 0", d, s)
	}
}

// TestWriteMarkdownDisk: the disk section gives the three figures and each
// run's stored rate as a ratio of the O_DIRECT ones.
func TestWriteMarkdownDisk(t *testing.T) {
	r := &Report{
		Runs: []RunSummary{{Name: "imix", Elapsed: 2e9, StoredBytes: 1600e6}},
		Disk: &DiskSpeed{Dir: "/data", Bytes: 1 << 30, Direct: 1000e6, DirectSync: 500e6, BufferedSync: 400e6},
	}
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## Disk", "Measured in this run in /data, 1.0 GiB.",
		"| `dd bs=1M oflag=direct` (no sync: a write cache counts) | 1000 |",
		"| `dd bs=1M oflag=direct conv=fdatasync` | 500 |",
		"| `dd bs=1M conv=fdatasync` | 400 |",
		"| imix | 800 | 0.80 | 1.60 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
	r.Disk = nil
	b.Reset()
	if err := r.WriteMarkdown(&b); err != nil || strings.Contains(b.String(), "## Disk") {
		t.Fatalf("no disk measured: got a disk section or %v", err)
	}
}
