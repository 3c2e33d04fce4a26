package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"tapvault/query"
)

// storeStats is what `tapvault stats` reports.
type storeStats struct {
	FirstNS     int64   `json:"first_ns"`
	LastNS      int64   `json:"last_ns"`
	Packets     uint64  `json:"packets"`
	WireBytes   uint64  `json:"wire_bytes"`
	RawBytes    uint64  `json:"raw_bytes"`
	StoredBytes uint64  `json:"stored_bytes"`
	Ratio       float64 `json:"compression_ratio"`
	Blocks      int     `json:"blocks"`
	Segments    int     `json:"segments"`
	SegmentSize int64   `json:"segment_bytes"`
}

func collectStats(st *query.Store) (storeStats, error) {
	var s storeStats
	segs, err := st.R.Segments()
	if err != nil {
		return s, err
	}
	s.Segments = len(segs)
	for _, seg := range segs {
		s.SegmentSize += seg.Size
	}
	blocks, err := st.Blocks(query.MinTime, query.MaxTime)
	if err != nil {
		return s, err
	}
	s.Blocks = len(blocks)
	for i, b := range blocks {
		if i == 0 || b.MinTS < s.FirstNS {
			s.FirstNS = b.MinTS
		}
		if i == 0 || b.MaxTS > s.LastNS {
			s.LastNS = b.MaxTS
		}
		s.Packets += uint64(b.Count)
		s.WireBytes += b.WireBytes
		s.RawBytes += uint64(b.RawLen)
		s.StoredBytes += uint64(b.StoredLen)
	}
	if s.StoredBytes > 0 {
		s.Ratio = float64(s.RawBytes) / float64(s.StoredBytes)
	}
	return s, nil
}

func newStatsCmd() *cobra.Command {
	var (
		data   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "stats --data DIR",
		Short: "Show what a store holds: time span, packets, bytes raw and stored, segments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if data == "" {
				return errors.New("--data DIR is required")
			}
			st, err := query.OpenStore(data, nil)
			if err != nil {
				return err
			}
			defer st.Close()
			s, err := collectStats(st)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				return e.Encode(s)
			}
			if s.Packets == 0 {
				fmt.Fprintf(w, "store %s is empty (%d segments)\n", data, s.Segments)
				return nil
			}
			fmt.Fprintf(w, "time span     %s .. %s (%s)\n",
				time.Unix(0, s.FirstNS).UTC().Format(time.RFC3339Nano), time.Unix(0, s.LastNS).UTC().Format(time.RFC3339Nano),
				time.Duration(s.LastNS-s.FirstNS))
			fmt.Fprintf(w, "packets       %d (%d wire bytes)\n", s.Packets, s.WireBytes)
			fmt.Fprintf(w, "bytes         raw %d, stored %d (compression %.2fx)\n", s.RawBytes, s.StoredBytes, s.Ratio)
			fmt.Fprintf(w, "blocks        %d in %d segments (%s on disk)\n", s.Blocks, s.Segments, humanBytes(s.SegmentSize))
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "store directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
