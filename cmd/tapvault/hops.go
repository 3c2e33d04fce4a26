package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"tapvault/clocklog"
	"tapvault/hops"
	"tapvault/query"
)

func newHopsCmd() *cobra.Command {
	var (
		a, b, from, to, filterB string
		nameA, nameB            string
		asJSON, exchanges       bool
		maxDelay, uncertainty   time.Duration
		maxPackets              int
	)
	cmd := &cobra.Command{
		Use:   "hops --a DIR --b DIR [--from T] [--to T] [--exchanges] [--json] [FILTER...]",
		Short: "Time between two capture points: one-way delay per flow direction, and each exchange's network time per hop",
		Long: `Hops matches the packets two capture points both stored (two stores, A and B)
by the bytes a path does not rewrite (IPv4 ID, TCP sequence, ACK and flags,
the payload's length and first 64 bytes), so the match survives a NAT between
the points, and reports the one-way delay between the points per flow and
direction as A saw it: packets, min, p10, median, p90, max.

With --exchanges it attributes each exchange's network time to hops: client
<-> A (A's record's client leg), A <-> B (the request's delay one way plus the
response's the other) and B <-> server (B's record's server leg).

The FILTER selects A's packets; --filter-b selects B's (addresses differ
across a NAT, so A's filter is not applied at B). Both stores must have been
stamped by clocks whose error is known: --uncertainty is the pair's (the sum
of both; 0 when one host's clock stamped both, as for two captures on one
machine); figures below it are flagged "<unc", not given as figures.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if a == "" || b == "" {
				return errors.New("--a DIR and --b DIR are required: the stores of the two capture points")
			}
			if uncertainty < 0 || maxDelay < 0 {
				return errors.New("--uncertainty and --max-delay must not be negative")
			}
			reqA, err := parseRequest(args, from, to, 0)
			if err != nil {
				return err
			}
			reqB, err := parseRequest(strings.Fields(filterB), from, to, 0)
			if err != nil {
				return fmt.Errorf("--filter-b: %w", err)
			}
			// B's packets may lag A's (or lead them) by up to the largest
			// delay that counts.
			md := maxDelay
			if md == 0 {
				md = hops.DefaultMaxDelay
			}
			if reqB.From != query.MinTime {
				reqB.From -= md.Nanoseconds()
			}
			if reqB.To != query.MaxTime {
				reqB.To += md.Nanoseconds()
			}
			// The pair's clocks, from the stores' clock logs unless given.
			ea, err := clocklog.Read(a)
			if err != nil {
				return fmt.Errorf("%s: %w", a, err)
			}
			eb, err := clocklog.Read(b)
			if err != nil {
				return fmt.Errorf("%s: %w", b, err)
			}
			clock := clocklog.Compare(ea, eb)
			if cmd.Flags().Changed("uncertainty") {
				clock = clocklog.Pair{Known: true, Uncertainty: uncertainty, Why: "given by --uncertainty"}
			}
			m := hops.NewMatcher(hops.Options{MaxDelay: maxDelay, Uncertainty: clock.Uncertainty, MaxPackets: maxPackets})
			ctx := cmd.Context()
			for _, s := range []struct {
				p   hops.Point
				dir string
				req query.Request
			}{{hops.A, a, reqA}, {hops.B, b, reqB}} {
				if _, err := m.AddStore(ctx, s.p, s.dir, s.req, nil); err != nil {
					return fmt.Errorf("%s: %w", s.dir, err)
				}
			}
			w := cmd.OutOrStdout()
			if exchanges {
				var from, to int64
				if reqA.From != query.MinTime {
					from = reqA.From
				}
				if reqA.To != query.MaxTime {
					to = reqA.To
				}
				ra, err := hops.Records(ctx, a, from, to)
				if err != nil {
					return fmt.Errorf("%s: %w", a, err)
				}
				rb, err := hops.Records(ctx, b, 0, 0)
				if err != nil {
					return fmt.Errorf("%s: %w", b, err)
				}
				return printHopExchanges(w, m.Exchanges(ra, rb), nameA, nameB, asJSON)
			}
			return printHops(w, m.Report(), clock, nameA, nameB, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&a, "a", "", "store of capture point A")
	f.StringVar(&b, "b", "", "store of capture point B")
	f.StringVar(&nameA, "name-a", "A", "name of point A in the output")
	f.StringVar(&nameB, "name-b", "B", "name of point B in the output")
	f.StringVar(&from, "from", "", "start time (RFC 3339, relative like -15m, or unix ns)")
	f.StringVar(&to, "to", "", "end time (inclusive)")
	f.StringVar(&filterB, "filter-b", "", "filter for B's packets (default: all)")
	f.BoolVar(&exchanges, "exchanges", false, "per exchange: network time per hop")
	f.BoolVar(&asJSON, "json", false, "one JSON object per line, times in ns")
	f.DurationVar(&maxDelay, "max-delay", 0, "largest one-way delay that counts as the same packet (default 2s)")
	f.DurationVar(&uncertainty, "uncertainty", 0, "the pair's clock uncertainty; figures below it are flagged")
	f.IntVar(&maxPackets, "max-packets", 0, "most packets kept per point (default 5000000)")
	return cmd
}

// hopDur formats ns as milliseconds with µs precision, "-" for unknown.
func hopDur(ns int64) string {
	if ns < 0 {
		return "-"
	}
	return fmt.Sprintf("%.3fms", float64(ns)/1e6)
}

func printHops(w io.Writer, r *hops.Report, clock clocklog.Pair, nameA, nameB string, asJSON bool) error {
	name := func(p hops.Point) string {
		if p == hops.A {
			return nameA + ">" + nameB
		}
		return nameB + ">" + nameA
	}
	if asJSON {
		e := json.NewEncoder(w)
		for _, d := range r.Directions {
			if err := e.Encode(map[string]any{
				"flow_" + strings.ToLower(nameA): d.AFlow.String(), "flow_" + strings.ToLower(nameB): d.BFlow.String(),
				"direction": name(d.From), "packets": d.Delay.N,
				"min_ns": d.Delay.Min, "p10_ns": d.Delay.P10, "median_ns": d.Delay.Median, "p90_ns": d.Delay.P90, "max_ns": d.Delay.Max,
				"below_uncertainty": d.BelowUncertainty,
			}); err != nil {
				return err
			}
		}
		return e.Encode(map[string]any{"summary": true, "packets_a": r.Packets[0], "packets_b": r.Packets[1], "matched": r.Matched,
			"ambiguous": r.Ambiguous, "uncertainty_ns": r.Uncertainty.Nanoseconds(), "clock_known": clock.Known, "clock": clock.Why,
			"median_ab_ns": r.Total[0].Median, "median_ba_ns": r.Total[1].Median})
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "FLOW AT %s\tAT %s\tDIRECTION\tPACKETS\tMIN\tP10\tMEDIAN\tP90\tMAX\n", nameA, nameB)
	unc := r.Uncertainty.Nanoseconds()
	med := func(s hops.Stats) string {
		if s.Median < unc {
			return "<unc"
		}
		return hopDur(s.Median)
	}
	for _, d := range r.Directions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", d.AFlow, d.BFlow, name(d.From), d.Delay.N,
			hopDur(d.Delay.Min), hopDur(d.Delay.P10), med(d.Delay), hopDur(d.Delay.P90), hopDur(d.Delay.Max))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d packets at %s, %d at %s; %d matched (%d ambiguous keys left out); median %s %s, %s %s\n",
		r.Packets[0], nameA, r.Packets[1], nameB, r.Matched, r.Ambiguous,
		name(hops.A), med(r.Total[0]), name(hops.B), med(r.Total[1]))
	if clock.Known {
		fmt.Fprintf(w, "clocks: %s; uncertainty %v (figures below it shown as <unc)\n", clock.Why, clock.Uncertainty)
	} else {
		fmt.Fprintf(w, "clocks: %s; the figures assume they agree (--uncertainty D states how far they may not)\n", clock.Why)
	}
	if r.Matched == 0 {
		return &exitError{code: 1, err: errors.New("no packet was seen at both points: are the stores of the same traffic and time?")}
	}
	return nil
}

func printHopExchanges(w io.Writer, xs []hops.Exchange, nameA, nameB string, asJSON bool) error {
	if asJSON {
		e := json.NewEncoder(w)
		for _, x := range xs {
			if err := e.Encode(map[string]any{
				"id": fmt.Sprintf("%016x", x.ID), "id_" + strings.ToLower(nameB): fmt.Sprintf("%016x", x.BID),
				"client_a_ns": x.ClientA, "a_b_ns": x.AB, "b_server_ns": x.BServer,
				"req_delay_ns": x.Req.Median, "resp_delay_ns": x.Resp.Median, "reversed": x.Reversed,
				"below_uncertainty": x.BelowUncertainty,
			}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "ID AT %s\tID AT %s\tCLIENT<>%s\t%s<>%s\t%s<>SERVER\tREQ ONE-WAY\tRESP ONE-WAY\n", nameA, nameB, nameA, nameA, nameB, nameB)
	for _, x := range xs {
		bid, ab := "-", hopDur(x.AB)
		if x.BID != 0 {
			bid = fmt.Sprintf("%016x", x.BID)
		}
		if x.BelowUncertainty {
			ab = "<unc"
		}
		fmt.Fprintf(tw, "%016x\t%s\t%s\t%s\t%s\t%s\t%s\n", x.ID, bid, hopDur(x.ClientA), ab, hopDur(x.BServer), hopDur(x.Req.Median), hopDur(x.Resp.Median))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(xs) == 0 {
		return &exitError{code: 1, err: errors.New("no exchange had packets seen at both points")}
	}
	return nil
}

// openPeers opens serve's --peer NAME=DIR stores.
func openPeers(specs []string, own string, log *slog.Logger) (map[string]*query.Store, func(), error) {
	peers := map[string]*query.Store{}
	closeAll := func() {
		for _, st := range peers {
			st.Close()
		}
	}
	for _, sp := range specs {
		name, dir, ok := strings.Cut(sp, "=")
		if !ok || name == "" || dir == "" {
			closeAll()
			return nil, nil, fmt.Errorf("--peer %q: want NAME=DIR", sp)
		}
		if _, dup := peers[name]; dup {
			closeAll()
			return nil, nil, fmt.Errorf("--peer %q: two peers named %q", sp, name)
		}
		if filepath.Clean(dir) == filepath.Clean(own) {
			closeAll()
			return nil, nil, fmt.Errorf("--peer %q: that is the --data store itself", sp)
		}
		st, err := query.OpenStore(dir, log)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("--peer %s: %w", name, err)
		}
		peers[name] = st
	}
	return peers, closeAll, nil
}
