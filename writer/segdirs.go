package writer

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"tapvault/internal/durable"
)

// A store keeps its segments in one or more directories, one per disk as
// n2disk and stenographer do: DIR/segments always, and the directories
// listed in DIR/SEGMENT_DIRS. Segment numbers are the store's, unique
// across all of them, and a segment lives whole in one directory, so a
// Ref (segment, offset) still names one place and the commit marker, the
// index and recovery know nothing of directories. The writer creates each
// new segment in the next of the directories it was given (round robin,
// skipping one without room for a segment), so blocks spread over the
// disks a segment at a time. docs/format/segment.md has the layout.

// segDirsName is the file, in the store directory, that lists the store's
// segment directories besides DIR/segments: absolute paths, one a line.
const segDirsName = "SEGMENT_DIRS"

// ownerName is the file, in each listed segment directory, that holds the
// absolute path of the store it belongs to, so two stores never share one
// (their segment numbers would collide).
const ownerName = "TAPVAULT_STORE"

// segDirs are a store's segment directories: DIR/segments first, then the
// listed ones in their order.
type segDirs []string

// loadSegDirs reads the store's segment directories. A store without
// SEGMENT_DIRS has only DIR/segments.
func loadSegDirs(dir string) (segDirs, error) {
	ds := segDirs{segmentsDir(dir)}
	b, err := os.ReadFile(filepath.Join(dir, segDirsName))
	if errors.Is(err, os.ErrNotExist) {
		return ds, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read segment directories: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !filepath.IsAbs(line) {
			return nil, fmt.Errorf("%s: %q is not an absolute path", filepath.Join(dir, segDirsName), line)
		}
		if p := filepath.Clean(line); !slices.Contains(ds, p) {
			ds = append(ds, p)
		}
	}
	return ds, nil
}

// segLoc is one segment file found in a listing.
type segLoc struct {
	n   uint32
	dir string
}

func (l segLoc) path() string { return filepath.Join(l.dir, segmentName(l.n)) }

// list returns every segment in the directories, by number. A number found
// in two directories is an error: the store is damaged (files copied by
// hand), and reading either could return the wrong blocks. A listed
// directory that is missing (a disk not mounted) is an error too, unless
// lenient, when it is passed to missing and skipped: readers show what
// the other disks hold; the writer refuses to start.
func (ds segDirs) list(lenient bool, missing func(dir string, err error)) ([]segLoc, error) {
	var out []segLoc
	for i, d := range ds {
		ents, err := os.ReadDir(d)
		if err != nil {
			if i > 0 && lenient && missing != nil {
				missing(d, err)
				continue
			}
			return nil, fmt.Errorf("list segments in %q: %w", d, err)
		}
		for _, e := range ents {
			if n, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
				out = append(out, segLoc{n: n, dir: d})
			}
		}
	}
	slices.SortFunc(out, func(a, b segLoc) int { return cmp.Compare(a.n, b.n) })
	for i := 1; i < len(out); i++ {
		if out[i].n == out[i-1].n {
			return nil, &CorruptionError{Path: out[i].path(), Err: fmt.Errorf(
				"segment %d is in two segment directories (%q and %q): remove the copy that is not the store's", out[i].n, out[i-1].dir, out[i].dir)}
		}
	}
	return out, nil
}

func segNums(locs []segLoc) []uint32 {
	nums := make([]uint32, len(locs))
	for i, l := range locs {
		nums[i] = l.n
	}
	return nums
}

// SegmentDirs returns the segment directories of the store in dir:
// DIR/segments, then those in DIR/SEGMENT_DIRS.
func SegmentDirs(dir string) ([]string, error) { return loadSegDirs(dir) }

// SegmentBytes is the total size of the store's segment files, in every
// segment directory. A listed directory that cannot be read is an error.
func SegmentBytes(dir string) (int64, error) {
	ds, err := loadSegDirs(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, d := range ds {
		n, err := DirSize(d)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// setupSegDirs prepares the segment directories a writer is given (want;
// empty: DIR/segments only) and records them in DIR/SEGMENT_DIRS, which
// keeps every directory it listed before: one dropped from the
// configuration may still hold segments, which readers must go on
// finding. Each directory is created if missing (0700) and claimed for
// this store (TAPVAULT_STORE); one that another store claimed, or a
// recorded one that is missing, is an error: a disk not mounted must not
// make its segments vanish from queries and retention without a word.
// It returns all the store's directories and those new segments go to.
func setupSegDirs(dir string, want []string) (all segDirs, active []string, err error) {
	all, err = loadSegDirs(dir)
	if err != nil {
		return nil, nil, err
	}
	absStore, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, err
	}
	own := segmentsDir(dir)
	absOwn := filepath.Join(absStore, "segments")
	changed := false
	for _, w := range want {
		p, err := filepath.Abs(w)
		if err != nil {
			return nil, nil, fmt.Errorf("segment directory %q: %w", w, err)
		}
		if p == absOwn || sameDir(p, absOwn) {
			active = append(active, own) // segments/ itself, maybe through a symlink
			continue
		}
		if slices.Contains(active, p) {
			continue
		}
		if p == absStore || strings.HasPrefix(absStore, p+string(filepath.Separator)) {
			return nil, nil, fmt.Errorf("segment directory %q: the store directory %q or one of its parents: give a directory of its own", w, dir)
		}
		active = append(active, p)
		if !slices.Contains(all, p) {
			all = append(all, p)
			changed = true
		}
	}
	if len(active) == 0 {
		active = []string{own}
	}
	for _, d := range all[1:] {
		if !slices.Contains(active, d) {
			if _, err := os.Stat(d); err != nil {
				return nil, nil, fmt.Errorf("segment directory %q, listed in %s: %w (mount it, or give up its segments by removing its line)", d, filepath.Join(dir, segDirsName), err)
			}
		}
	}
	for _, d := range active {
		if d == own {
			continue
		}
		if err := claimSegDir(d, absStore); err != nil {
			return nil, nil, err
		}
	}
	if changed {
		var b strings.Builder
		b.WriteString("# segment directories of this store besides segments/ (tapvault writes this file; see docs/format/segment.md)\n")
		for _, d := range all[1:] {
			b.WriteString(d)
			b.WriteByte('\n')
		}
		if err := durable.WriteFile(filepath.Join(dir, segDirsName), []byte(b.String())); err != nil {
			return nil, nil, err
		}
	}
	return all, active, nil
}

// claimSegDir creates segment directory d if missing and marks it as the
// store's, refusing one another store has marked.
func claimSegDir(d, store string) error {
	if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create segment directory %q: %w", d, err)
		}
		// Its name must survive a crash, as a segment's does.
		if err := durable.SyncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(filepath.Join(d, ownerName))
	switch {
	case err == nil:
		if got := strings.TrimSpace(string(b)); got != store {
			return fmt.Errorf("segment directory %q belongs to the store %q (its %s), not %q: give each store directories of its own (if that store was moved here, write its new path into %s)", d, got, ownerName, store, filepath.Join(d, ownerName))
		}
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("segment directory %q: %w", d, err)
	}
	ents, err := os.ReadDir(d)
	if err != nil {
		return fmt.Errorf("segment directory %q: %w", d, err)
	}
	for _, e := range ents {
		if _, ok := parseSegmentName(e.Name()); ok {
			return fmt.Errorf("segment directory %q already holds segments of no known store (%s): give an empty directory", d, e.Name())
		}
	}
	return durable.WriteFile(filepath.Join(d, ownerName), []byte(store+"\n"))
}

// sameDir says whether a and b are the same directory (one may be a
// symlink to the other); false if either cannot be read.
func sameDir(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
