package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"tapvault/query"
)

func newFlowsCmd() *cobra.Command {
	var (
		data, from, to string
		asJSON         bool
		limit          int
	)
	cmd := &cobra.Command{
		Use:   "flows --data DIR [--from T] [--to T] [--json] [--limit N] [FILTER...]",
		Short: "List flows: 5-tuple, VLAN, Community-ID, first/last time, packets and bytes each way",
		Long: `Flows lists the flows held in the blocks of the time range, from the blocks'
summaries (no packet is read). A is the endpoint that sent the first packet
seen. The filter selects flows that have at least one matching packet
direction; packet-level details (flags, fragments) are not in a summary.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" {
				return errors.New("--data DIR is required")
			}
			req, err := parseRequest(args, from, to, limit)
			if err != nil {
				return err
			}
			st, err := query.OpenStore(data, nil)
			if err != nil {
				return err
			}
			defer st.Close()
			flows, err := st.Flows(req)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				e := json.NewEncoder(w)
				for i := range flows {
					if err := e.Encode(&flows[i]); err != nil {
						return err
					}
				}
				return nil
			}
			for i := range flows {
				fmt.Fprintln(w, flows[i].String())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "store directory")
	f.StringVar(&from, "from", "", "start time (RFC 3339, relative like -15m, or unix ns)")
	f.StringVar(&to, "to", "", "end time (inclusive)")
	f.BoolVar(&asJSON, "json", false, "one JSON object per line")
	f.IntVar(&limit, "limit", 0, "at most N flows (0: all)")
	return cmd
}

// parseRequest checks the filter and times the user typed, before any data is
// read.
func parseRequest(args []string, from, to string, limit int) (query.Request, error) {
	flt, err := query.ParseFilter(strings.Join(args, " "))
	if err != nil {
		return query.Request{}, err
	}
	now := time.Now()
	req := query.Request{From: query.MinTime, To: query.MaxTime, Filter: flt, Limit: limit}
	if from != "" {
		if req.From, err = query.ParseTime(from, now); err != nil {
			return req, fmt.Errorf("--from: %w", err)
		}
	}
	if to != "" {
		if req.To, err = query.ParseTime(to, now); err != nil {
			return req, fmt.Errorf("--to: %w", err)
		}
	}
	if req.From > req.To {
		return req, errors.New("--from is after --to")
	}
	if limit < 0 {
		return req, fmt.Errorf("--limit %d: must not be negative", limit)
	}
	return req, nil
}
