package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"tapvault/msgstore"
	"tapvault/pipeline"
	"tapvault/query"
	"tapvault/writer"
)

func newStatsCmd() *cobra.Command {
	var (
		data   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "stats --data DIR",
		Short: "Show what a store holds: time span, packets, bytes raw and stored, segments, message records, retention",
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
			ms, err := messageStats(data)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				return e.Encode(struct {
					query.StoreStats
					Messages  messageSummary             `json:"messages"`
					Retention []pipeline.RetentionAction `json:"retention_actions"`
				}{s, ms, acts})
			}
			if s.Packets == 0 {
				fmt.Fprintf(w, "store %s is empty (%d segments)\n", data, s.Segments)
				return nil
			}
			fmt.Fprintf(w, "time span     %s .. %s (%s)\n",
				time.Unix(0, s.FirstNS).UTC().Format(time.RFC3339Nano), time.Unix(0, s.LastNS).UTC().Format(time.RFC3339Nano),
				time.Duration(s.LastNS-s.FirstNS))
			fmt.Fprintf(w, "packets       %d (%d wire bytes)\n", s.Packets, s.WireBytes)
			// Three byte counts, each named for what it counts: the
			// import summary's "stored" is its own run's block
			// records with headers; verify checks the segment files.
			fmt.Fprintf(w, "bytes         raw %d, compressed payload %d (compression %.2fx)\n", s.RawBytes, s.StoredBytes, s.Ratio)
			fmt.Fprintf(w, "blocks        %d in %d segments (segment files %d bytes, %s)\n", s.Blocks, s.Segments, s.SegmentBytes, humanBytes(s.SegmentBytes))
			for _, d := range s.SegmentDirs {
				free := "free space unknown"
				if n, err := writer.AvailBytes(d.Dir); err == nil {
					free = humanBytes(n) + " free"
				}
				fmt.Fprintf(w, "  in %s: %d segments, %s; %s\n", d.Dir, d.Segments, humanBytes(d.Bytes), free)
			}
			fmt.Fprintf(w, "index         %s (%s)%s\n", s.IndexState, humanBytes(s.IndexBytes), indexNote(s.IndexState))
			if ms.Files > 0 {
				fmt.Fprintf(w, "messages      %d records in %d files (%s)", ms.Records, ms.Files, humanBytes(ms.Bytes))
				if ms.FirstNS != 0 {
					fmt.Fprintf(w, ", %s .. %s", time.Unix(0, ms.FirstNS).UTC().Format(time.RFC3339Nano), time.Unix(0, ms.LastNS).UTC().Format(time.RFC3339Nano))
				}
				fmt.Fprintln(w)
			} else {
				fmt.Fprintf(w, "messages      none (analytics off, or no exchange decoded)\n")
			}
			if len(acts) > 0 {
				var freed int64
				var segs, mfiles int
				var last pipeline.RetentionAction
				for _, a := range acts {
					freed += a.Bytes
					if a.IsMessageFile() {
						mfiles++
					} else {
						segs, last = segs+1, a
					}
				}
				fmt.Fprintf(w, "retention     %d segments and %d message files dropped, %s freed", segs, mfiles, humanBytes(freed))
				if segs > 0 {
					fmt.Fprintf(w, "; the last segment: %d at %s (%s)", last.Segment, last.Time.UTC().Format(time.RFC3339), last.Reason)
				}
				fmt.Fprintf(w, "; oldest data held starts %s\n", time.Unix(0, s.FirstNS).UTC().Format(time.RFC3339Nano))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "store directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// messageSummary is what stats says of the message store.
type messageSummary struct {
	Files   int   `json:"files"`
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
	FirstNS int64 `json:"first_ns"`
	LastNS  int64 `json:"last_ns"`
}

func messageStats(data string) (messageSummary, error) {
	var m messageSummary
	files, err := msgstore.Files(data)
	if err != nil {
		return m, err
	}
	for _, f := range files {
		m.Files++
		m.Records += f.Records
		m.Bytes += f.Size
		if f.MinTS != 0 && (m.FirstNS == 0 || f.MinTS < m.FirstNS) {
			m.FirstNS = f.MinTS
		}
		m.LastNS = max(m.LastNS, f.MaxTS)
	}
	return m, nil
}

// indexNote says what an index state means for the answers.
func indexNote(state string) string {
	switch state {
	case query.IndexCorrupt:
		return ": damaged; queries scan block headers (same answers, slower); tapvault reindex moves it aside and rebuilds it"
	case query.IndexUnclean:
		return ": a writer was killed; queries scan block headers (same answers, slower) until the next capture, import or reindex replays it"
	case query.IndexMissing:
		return ": queries scan block headers; tapvault reindex builds it"
	}
	return ""
}
