package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"tapvault/index"
	"tapvault/workers"
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
missing one is built; a damaged one is moved aside (DIR/index.corrupt-TIME)
and rebuilt. --full rebuilds from scratch whatever its state. It must not
run beside a capture on the same store (the capture keeps its own index).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if data == "" {
				return errors.New("--data DIR is required")
			}
			if _, err := os.Stat(data); err != nil {
				return fmt.Errorf("reindex: %w", err)
			}
			dir := index.DirOf(data)
			stamp := time.Now().Unix()
			old := ""
			if full {
				if _, err := os.Stat(dir); err == nil {
					// Kept until the new index is complete.
					old = fmt.Sprintf("%s.old-%d", dir, stamp)
					if err := os.Rename(dir, old); err != nil {
						return fmt.Errorf("reindex: move old index aside: %w", err)
					}
				}
			}
			ix, err := index.Open(index.Options{Dir: dir, Create: true})
			if errors.Is(err, index.ErrCorrupt) {
				aside := fmt.Sprintf("%s.corrupt-%d", dir, stamp)
				fmt.Fprintf(cmd.OutOrStdout(), "index is damaged (%v): moved to %s, rebuilding\n", err, aside)
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
			before := ix.Stats().Blocks
			t0 := time.Now()
			var blocks, packets uint64
			stop := startProgress(cmd.ErrOrStderr(), func() string {
				return fmt.Sprintf("reindex: %d blocks indexed", ix.Stats().Blocks-before)
			})
			err = ix.CatchUp(func(from writer.Ref, fn func(writer.BlockMeta, *workers.Summary) error) error {
				return r.WalkSummaries(from, func(m writer.BlockMeta, s *workers.Summary) error {
					blocks++
					packets += uint64(m.Count)
					return fn(m, s)
				})
			})
			stop()
			lsm, vlog := ix.Size()
			if cerr := ix.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("reindex: %w", err)
			}
			if old != "" {
				if err := os.RemoveAll(old); err != nil {
					return fmt.Errorf("reindex: remove the old index %s: %w", old, err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reindex: walked %d blocks (%d packets) in %s; index is %s\n",
				blocks, packets, time.Since(t0).Round(time.Millisecond), humanBytes(lsm+vlog))
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "store directory")
	cmd.Flags().BoolVar(&full, "full", false, "rebuild from scratch (the old index is moved aside)")
	return cmd
}
