package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"tapvault/pipeline"
	"tapvault/query"
)

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
			s, err := st.Stats()
			if err != nil {
				return err
			}
			acts, err := pipeline.RetentionLog(data)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				return e.Encode(struct {
					query.StoreStats
					Retention []pipeline.RetentionAction `json:"retention_actions"`
				}{s, acts})
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
			fmt.Fprintf(w, "blocks        %d in %d segments (%s on disk)\n", s.Blocks, s.Segments, humanBytes(s.SegmentBytes))
			fmt.Fprintf(w, "index         %s (%s)\n", s.IndexState, humanBytes(s.IndexBytes))
			if len(acts) > 0 {
				var freed int64
				for _, a := range acts {
					freed += a.Bytes
				}
				last := acts[len(acts)-1]
				fmt.Fprintf(w, "retention     %d segments dropped, %s freed; the last: segment %d at %s (%s); oldest data held starts %s\n",
					len(acts), humanBytes(freed), last.Segment, last.Time.UTC().Format(time.RFC3339), last.Reason,
					time.Unix(0, s.FirstNS).UTC().Format(time.RFC3339Nano))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "store directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
