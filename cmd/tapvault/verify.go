package main

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/spf13/cobra"

	"tapvault/msgstore"
	"tapvault/writer"
)

func newVerifyCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "verify --data DIR",
		Short: "Check every stored block (checksums, decompression, packet records, summaries) and every message frame",
		Long: `Verify reads every block of every segment and checks its CRC32C, that it
decompresses, that its packet records and summary parse and agree with its
header. Bytes the commit marker (COMMITTED) says are committed but that hold
no valid block are damage; only bytes past it, at the end of the newest
segment, are a torn write. It names each bad block (segment and offset) and
exits with status 2 if any is bad or the commit marker is damaged or
missing. It also checks the index (its files, and that its block entries
match the block headers) and exits with status 2 if it is damaged. It never
modifies the store.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if data == "" {
				return errors.New("--data DIR is required")
			}
			var done, total atomic.Int64
			stop := startProgress(cmd.ErrOrStderr(), func() string {
				pct := 100.0
				if t := total.Load(); t > 0 {
					pct = 100 * float64(done.Load()) / float64(t)
				}
				return fmt.Sprintf("verify: %5.1f%% of %s", pct, humanBytes(total.Load()))
			})
			rep, err := writer.Verify(data, func(d, t int64) { done.Store(d); total.Store(t) })
			stop()
			if err != nil {
				return err
			}
			printVerify(cmd.OutOrStdout(), &rep)
			// The message records: every frame's CRCs and records.
			mrep, err := msgstore.Verify(data)
			if err != nil {
				return err
			}
			printVerifyMessages(cmd.OutOrStdout(), &mrep)
			ixDamaged, err := verifyIndex(cmd.OutOrStdout(), data) // reindex.go
			if err != nil {
				return err
			}
			switch {
			case rep.MarkerErr != nil:
				return &exitError{code: 2, err: fmt.Errorf("verify: %d bad blocks, and %w", rep.BadBlocks, rep.MarkerErr)}
			case rep.BadHeaders > 0:
				return &exitError{code: 2, err: fmt.Errorf("verify: %d bad blocks, %d damaged segment headers", rep.BadBlocks, rep.BadHeaders)}
			case !rep.OK():
				return &exitError{code: 2, err: fmt.Errorf("verify: %d bad blocks", rep.BadBlocks)}
			case len(mrep.Corrupt) > 0:
				return &exitError{code: 2, err: fmt.Errorf("verify: %d damaged message frames or files", len(mrep.Corrupt))}
			case ixDamaged:
				return &exitError{code: 2, err: errors.New("verify: the index is damaged (tapvault reindex repairs it)")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "store directory")
	return cmd
}

func printVerify(w io.Writer, rep *writer.VerifyReport) {
	for _, s := range rep.Segments {
		status := "ok"
		if len(s.Bad) > 0 {
			status = fmt.Sprintf("%d BAD blocks", len(s.Bad))
		}
		switch {
		case s.HeaderErr != nil && len(s.Bad) > 0:
			status = "BAD segment header, " + status
		case s.HeaderErr != nil:
			status = "BAD segment header"
		}
		fmt.Fprintf(w, "segment %010d  %s  %d blocks, %d packets, %d bytes: %s\n", s.Number, s.Path, s.Blocks, s.Packets, s.Size, status)
		if s.HeaderErr != nil {
			fmt.Fprintf(w, "  bad segment header: %v (its blocks are read by their own checks)\n", s.HeaderErr.Err)
		}
		for _, b := range s.Bad {
			fmt.Fprintf(w, "  bad block at segment %d offset %d: %v\n", s.Number, b.Offset, b.Err)
		}
		switch {
		case s.TailBytes > 0 && rep.MarkerErr != nil:
			fmt.Fprintf(w, "  %d bytes after the last complete block: with no usable commit marker they cannot be told from damage (the next open for writing keeps them)\n", s.TailBytes)
		case s.TailBytes > 0:
			fmt.Fprintf(w, "  %d bytes after the last complete block, past the commit marker (a write in progress or torn by a crash; cut on the next open for writing)\n", s.TailBytes)
		}
	}
	if rep.MarkerErr != nil {
		fmt.Fprintf(w, "  bad commit marker: %v\n", rep.MarkerErr)
	}
	verdict := "OK"
	if !rep.OK() {
		verdict = "DAMAGED"
	}
	headers := ""
	if rep.BadHeaders > 0 {
		headers = fmt.Sprintf(", %d damaged segment headers", rep.BadHeaders)
	}
	fmt.Fprintf(w, "verify: %s: %d segments, %d blocks, %d packets, %d bytes checked, %d bad blocks%s\n",
		verdict, len(rep.Segments), rep.Blocks, rep.Packets, rep.Bytes, rep.BadBlocks, headers)
}

func printVerifyMessages(w io.Writer, rep *msgstore.Report) {
	if rep.Files == 0 {
		return
	}
	for _, e := range rep.Corrupt {
		fmt.Fprintf(w, "  bad message frame: %v\n", e)
	}
	for _, e := range rep.Torn {
		fmt.Fprintf(w, "  message file %s ends in a partial frame at offset %d (a write in progress or torn by a crash; the frames before it are intact)\n", e.Path, e.Offset)
	}
	verdict := "OK"
	if len(rep.Corrupt) > 0 {
		verdict = "DAMAGED"
	}
	fmt.Fprintf(w, "verify messages: %s: %d files, %d frames, %d records, %d bytes checked, %d damaged\n",
		verdict, rep.Files, rep.Frames, rep.Records, rep.Bytes, len(rep.Corrupt))
}
