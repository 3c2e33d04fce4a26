package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"tapvault/block"
	"tapvault/index"
	"tapvault/writer"
)

func newReindexCmd() *cobra.Command {
	var (
		data string
		full bool
	)
	cmd := &cobra.Command{
		Use:   "reindex --data DIR [--full]",
		Short: "Rebuild the index from the segments when it is lost, damaged or behind",
		Long: `Reindex brings a store's index up to date from the block summaries in its
segments (no packet data is read). An index that is behind is caught up; a
missing one is built; a damaged one is moved aside (DIR/index.corrupt-TIME,
kept for a post-mortem) and rebuilt; one left unclean by a killed writer is
replayed and caught up. Entries of blocks the segments no longer hold as
indexed (damaged or rewritten since) are removed and their segment indexed
again. --full rebuilds from scratch whatever its state: the old index is
kept as DIR/index.old-TIME until the new one is complete; what a killed
reindex leaves behind is used or removed by the next one. It must not run
beside a capture on the same store (the capture keeps its own index).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if data == "" {
				return errors.New("--data DIR is required")
			}
			if _, err := os.Stat(data); err != nil {
				return fmt.Errorf("reindex: %w", err)
			}
			return reindex(cmd.OutOrStdout(), cmd.ErrOrStderr(), data, full)
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "store directory")
	cmd.Flags().BoolVar(&full, "full", false, "rebuild from scratch (the old index is moved aside, and removed once the new one is complete)")
	return cmd
}

// asideName is dir.kind-TIME, or dir.kind-TIME-N when that exists already.
func asideName(dir, kind string) string {
	base := fmt.Sprintf("%s.%s-%d", dir, kind, time.Now().Unix())
	name := base
	for n := 2; ; n++ {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, n)
	}
}

func reindex(stdout, stderr io.Writer, data string, full bool) error {
	dir := index.DirOf(data)
	_, statErr := os.Stat(dir)
	exists := statErr == nil
	if exists && index.InUse(dir) {
		return fmt.Errorf("reindex: the index %s is in use (a capture, import, serve or query on this store)", dir)
	}
	// Old indexes a killed `reindex --full` left beside the store. Each
	// is complete as of its run: the newest is used again when the
	// index itself is gone (the run was killed between the move and the
	// new index's creation); the rest go once this run is complete.
	leftovers, _ := filepath.Glob(dir + ".old-*")
	sort.Slice(leftovers, func(i, j int) bool { return asideStamp(leftovers[i]) < asideStamp(leftovers[j]) })
	if !exists && !full && len(leftovers) > 0 {
		last := leftovers[len(leftovers)-1]
		if err := os.Rename(last, dir); err != nil {
			return fmt.Errorf("reindex: reuse %s: %w", last, err)
		}
		fmt.Fprintf(stdout, "reindex: using %s, left by a killed reindex --full, as the index\n", last)
		leftovers = leftovers[:len(leftovers)-1]
	}
	old := ""
	if full && exists {
		// Kept until the new index is complete: queries meanwhile
		// scan block headers past the new index's (absent) watermark.
		old = asideName(dir, "old")
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("reindex: move old index aside: %w", err)
		}
	}
	ix, err := index.Open(index.Options{Dir: dir, Create: true})
	if errors.Is(err, index.ErrCorrupt) {
		aside := asideName(dir, "corrupt")
		fmt.Fprintf(stdout, "reindex: the index is damaged (%v): moved to %s, rebuilding it from the segments\n", err, aside)
		if rerr := os.Rename(dir, aside); rerr != nil {
			return fmt.Errorf("reindex: %w", rerr)
		}
		ix, err = index.Open(index.Options{Dir: dir, Create: true})
	}
	if err != nil {
		return fmt.Errorf("reindex: %w (is a capture or serve using this store?)", err)
	}
	r, err := writer.OpenReader(data)
	if err != nil {
		ix.Close()
		return err
	}
	defer r.Close()
	pruned, err := ix.Prune(r.ScanSegment, r.WalkSummaries)
	if err != nil {
		ix.Close()
		return fmt.Errorf("reindex: %w", err)
	}
	for _, p := range pruned {
		fmt.Fprintf(stdout, "reindex: segment %d: %d index entries named blocks the segment no longer holds as indexed (damaged or rewritten): removed, segment indexed again\n", p.Segment, p.Stale)
	}
	before := ix.Stats().Blocks
	t0 := time.Now()
	var blocks, packets uint64
	stop := startProgress(stderr, func() string {
		return fmt.Sprintf("reindex: %d blocks indexed", ix.Stats().Blocks-before)
	})
	err = ix.CatchUp(func(from writer.Ref, fn func(writer.BlockMeta, *block.Summary) error) error {
		return r.WalkSummaries(from, func(m writer.BlockMeta, s *block.Summary) error {
			blocks++
			packets += uint64(m.Count)
			return fn(m, s)
		})
	})
	stop()
	if cerr := ix.Close(); err == nil {
		err = cerr
	}
	lsm, vlog := index.DiskSize(dir) // closed: the write-ahead log is flushed
	if err != nil {
		return fmt.Errorf("reindex: %w", err)
	}
	if old != "" {
		leftovers = append(leftovers, old)
	}
	for _, o := range leftovers {
		if err := os.RemoveAll(o); err != nil {
			return fmt.Errorf("reindex: remove the old index %s: %w", o, err)
		}
		if o != old {
			fmt.Fprintf(stdout, "reindex: removed %s, left by a killed reindex --full\n", o)
		}
	}
	fmt.Fprintf(stdout, "reindex: walked %d blocks (%d packets) in %s; index is %s\n",
		blocks, packets, time.Since(t0).Round(time.Millisecond), humanBytes(lsm+vlog))
	return nil
}

// asideStamp is the TIME of dir.kind-TIME[-N], for ordering.
func asideStamp(name string) string {
	_, t, _ := strings.Cut(filepath.Base(name), "-")
	h, n, _ := strings.Cut(t, "-")
	return fmt.Sprintf("%020s-%010s", h, n)
}

// verifyIndex is verify's check of the index: it opens it read-only (every
// table's checksums, as any open does) and compares its block keys with
// the segments' block headers, printing one verdict line. It changes
// nothing. damaged is true for an index that a query would refuse
// (damaged files) or that names blocks the segments do not hold as indexed;
// both are repaired by a plain reindex.
func verifyIndex(w io.Writer, data string) (damaged bool, err error) {
	dir := index.DirOf(data)
	ix, err := index.Open(index.Options{Dir: dir, ReadOnly: true, VerifyAll: true})
	switch {
	case errors.Is(err, index.ErrMissing):
		fmt.Fprintf(w, "verify index: none (queries scan block headers; tapvault reindex builds it)\n")
		return false, nil
	case errors.Is(err, index.ErrBusy):
		fmt.Fprintf(w, "verify index: in use by a running capture or import: not checked\n")
		return false, nil
	case errors.Is(err, index.ErrUnclean):
		if cerr := index.CheckFiles(dir); cerr != nil {
			fmt.Fprintf(w, "verify index: DAMAGED: %v (queries scan block headers instead; tapvault reindex moves it aside and rebuilds it)\n", cerr)
			return true, nil
		}
		fmt.Fprintf(w, "verify index: not closed cleanly (a writer was killed): its tables are intact, and the next capture, import or reindex replays its log; queries scan block headers until then\n")
		return false, nil
	case err != nil:
		fmt.Fprintf(w, "verify index: DAMAGED: %v (queries scan block headers instead; tapvault reindex moves it aside and rebuilds it)\n", err)
		return true, nil
	}
	defer ix.Close()
	r, err := writer.OpenReader(data)
	if err != nil {
		return false, err
	}
	defer r.Close()
	stale, err := ix.Stale(r.ScanSegment)
	if err != nil {
		return false, err
	}
	if len(stale) > 0 {
		n := 0
		for _, p := range stale {
			n += p.Stale
		}
		fmt.Fprintf(w, "verify index: DAMAGED: %d entries in %d segments name blocks the segments do not hold as indexed (damaged or rewritten since); tapvault reindex removes them\n", n, len(stale))
		return true, nil
	}
	st := ix.Stats()
	fmt.Fprintf(w, "verify index: OK: every table's checksums match, every block entry matches its block header (watermark %v, %d holes)\n", st.Watermark, st.Holes)
	return false, nil
}
