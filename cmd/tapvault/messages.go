package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"tapvault/analytics"
	"tapvault/msgquery"
	"tapvault/msgstore"
	"tapvault/query"
	"tapvault/writer"
)

// parseMsgSel reads the selection of messages and latency: the expression
// (none: every record) and --from/--to, as query reads them.
func parseMsgSel(args []string, from, to string, tiers bool, window time.Duration) (query.MessageSel, error) {
	req, err := parseRequest(nil, from, to, 0)
	if err != nil {
		return query.MessageSel{}, err
	}
	sel := query.MessageSel{From: req.From, To: req.To, Tiers: tiers, Window: int64(window)}
	if text := strings.TrimSpace(strings.Join(args, " ")); text != "" {
		if sel.Expr, err = msgquery.Parse(text); err != nil {
			return sel, err
		}
	}
	return sel, nil
}

// checkStore fails, as query does, when dir is not a store: without it a
// mistyped --data reads as a store with no records.
func checkStore(dir string) error {
	r, err := writer.OpenReader(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open store %q: not a tapvault store (no %s)", dir, filepath.Join(dir, "segments"))
	}
	if err != nil {
		return err
	}
	return r.Close()
}

// noteNoMessages explains on w why messages or latency found nothing, when
// the store can say: it holds no message records, or none in the range
// asked for (noteRange).
func noteNoMessages(w io.Writer, data, from, to string, sel query.MessageSel) {
	files, err := msgstore.Files(data)
	if err != nil {
		return
	}
	var (
		recs   int64
		lo, hi int64
	)
	for _, f := range files {
		if f.Records == 0 || (f.MinTS == 0 && f.MaxTS == 0) {
			continue
		}
		if recs == 0 {
			lo, hi = f.MinTS, f.MaxTS
		}
		recs += f.Records
		lo, hi = min(lo, f.MinTS), max(hi, f.MaxTS)
	}
	if recs == 0 {
		fmt.Fprintln(w, "the store holds no message records (captured with --no-analytics? tapvault reanalyze decodes the stored packets)")
		return
	}
	noteRange(w, "records", from, to, sel.From, sel.To, lo, hi)
}

// noteRange says on w, when the time range [fromNS, toNS] (the --from and
// --to given as from and to) misses the span [lo, hi] a store holds, what
// the store holds, and that relative times count from the wall clock:
// on an imported trace -15m silently selects nothing.
func noteRange(w io.Writer, what, from, to string, fromNS, toNS, lo, hi int64) {
	if (from == "" && to == "") || (toNS >= lo && fromNS <= hi) {
		return
	}
	fmt.Fprintf(w, "no %s in [%s, %s]; the store holds %s from %s to %s", what, fmtBound(fromNS), fmtBound(toNS), what, fmtNS(lo), fmtNS(hi))
	var rel []string
	for _, t := range []struct{ flag, v string }{{"--from", from}, {"--to", to}} {
		if query.IsRelative(t.v) {
			rel = append(rel, t.flag+" "+t.v)
		}
	}
	if len(rel) > 0 {
		verb := "counts"
		if len(rel) > 1 {
			verb = "count"
		}
		fmt.Fprintf(w, "; %s %s from the wall clock (now %s), not from the stored trace: give absolute times for an imported or older capture",
			strings.Join(rel, " and "), verb, fmtNS(time.Now().UnixNano()))
	}
	fmt.Fprintln(w)
}

// fmtNS writes a time as the text output does (RFC 3339, UTC, µs).
func fmtNS(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000Z") }

func fmtBound(ns int64) string {
	switch ns {
	case query.MinTime:
		return "the start"
	case query.MaxTime:
		return "the end"
	}
	return fmtNS(ns)
}

func warnCorrupt(ws []error) {
	for _, w := range ws {
		fmt.Fprintf(os.Stderr, "tapvault: warning: skipped part of the message store: %v\n", w)
	}
}

func newMessagesCmd() *cobra.Command {
	var (
		data, from, to string
		jsonOut, tiers bool
		limit          int
		window         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "messages --data DIR [--from T] [--to T] [--json] [--tiers] [--limit N] [EXPR...]",
		Short: "List application exchanges (HTTP, DNS, TLS, Redis, PostgreSQL, MySQL, FIX) and TCP connections",
		Long: `Messages lists the records the in-stream analytics (or tapvault reanalyze)
stored: one per request/response exchange, and one per TCP connection
(proto tcp). EXPR selects them (docs/messages.md), e.g.
  tapvault messages --data store proto http and status '>=' 500
  tapvault messages --data store 'proto dns and qname ~ example.com'
  tapvault messages --data store --json 'latency > 50ms'
--json prints one object per line with times in ns and the refs of every
packet of both messages; tapvault query --message ID -w out.pcap extracts
them. --tiers links each front-end exchange to the database and cache calls
its server made while the client waited (tier_* fields).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" {
				return errors.New("--data DIR is required")
			}
			if limit < 0 {
				return fmt.Errorf("--limit %d: must not be negative", limit)
			}
			sel, err := parseMsgSel(args, from, to, tiers, window)
			if err != nil {
				return err
			}
			if err := checkStore(data); err != nil {
				return err
			}
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			defer out.Flush()
			var (
				buf []byte
				n   int
			)
			errLimit := errors.New("limit")
			ws, err := query.ScanMessages(cmd.Context(), data, sel, func(r *analytics.Record, t *msgquery.Tier) error {
				buf = buf[:0]
				if jsonOut {
					buf = msgquery.AppendJSON(buf, r, t)
				} else {
					buf = msgquery.AppendText(buf, r)
					if t != nil && len(t.Backends) > 0 {
						buf = fmt.Appendf(buf, " tier: before %s backend %s after %s (%d calls)",
							time.Duration(t.Before), time.Duration(t.Backend), time.Duration(t.After), len(t.Backends))
					}
				}
				buf = append(buf, '\n')
				if _, err := out.Write(buf); err != nil {
					return err
				}
				if n++; limit > 0 && n >= limit {
					return errLimit
				}
				return nil
			})
			warnCorrupt(ws)
			if errors.Is(err, errLimit) {
				err = nil
			}
			if err != nil {
				return err
			}
			if err := out.Flush(); err != nil {
				return err
			}
			if !jsonOut {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d records\n", n)
			}
			if n == 0 {
				noteNoMessages(cmd.ErrOrStderr(), data, from, to, sel)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "store directory")
	f.StringVar(&from, "from", "", "start time (RFC 3339, relative like -15m, or unix ns)")
	f.StringVar(&to, "to", "", "end time (inclusive)")
	f.BoolVar(&jsonOut, "json", false, "one JSON object per line (times in ns)")
	f.BoolVar(&tiers, "tiers", false, "link front-end exchanges to their backend calls (tier_* fields)")
	f.DurationVar(&window, "tier-window", 10*time.Second, "longest front-end exchange --tiers can link")
	f.IntVar(&limit, "limit", 0, "stop after N records (0: no limit)")
	return cmd
}

func newLatencyCmd() *cobra.Command {
	var (
		data, from, to, by string
		jsonOut, tiers     bool
		window             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "latency --data DIR [--by proto,server] [--from T] [--to T] [--json] [--tiers] [EXPR...]",
		Short: "Latency percentiles of application exchanges, split into network and server time",
		Long: `Latency groups the stored exchanges (selected by EXPR, as for messages) by
the --by keys (proto, server, server_ip, client_ip, class, method, host,
status, qtype, command, or any field) and prints their count, latency
percentiles (request last packet to response last packet, what Wireshark's
http.time measures), and the network/server split: network is the request's
last packet to the server's ACK of it, server the request's last packet to
the response's first. --tiers adds the front end's own time before and after
its backend calls, and the backend time.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" {
				return errors.New("--data DIR is required")
			}
			sel, err := parseMsgSel(args, from, to, tiers, window)
			if err != nil {
				return err
			}
			keys := strings.Split(by, ",")
			agg, err := msgquery.NewAggregator(keys)
			if err != nil {
				return fmt.Errorf("--by: %w", err)
			}
			if err := checkStore(data); err != nil {
				return err
			}
			ws, err := query.ScanMessages(cmd.Context(), data, sel, func(r *analytics.Record, t *msgquery.Tier) error {
				agg.Add(r)
				agg.AddTier(r, t)
				return nil
			})
			warnCorrupt(ws)
			if err != nil {
				return err
			}
			groups := agg.Groups()
			if len(groups) == 0 {
				noteNoMessages(cmd.ErrOrStderr(), data, from, to, sel)
			}
			w := cmd.OutOrStdout()
			if jsonOut {
				_, err := w.Write(msgquery.AppendGroupsJSON(nil, agg.By(), groups))
				return err
			}
			if len(groups) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no exchanges selected")
				return nil
			}
			return msgquery.WriteTable(w, agg.By(), groups)
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "store directory")
	f.StringVar(&from, "from", "", "start time (RFC 3339, relative like -15m, or unix ns)")
	f.StringVar(&to, "to", "", "end time (inclusive)")
	f.StringVar(&by, "by", "proto,server", "grouping keys, comma-separated")
	f.BoolVar(&jsonOut, "json", false, "one JSON object per group")
	f.BoolVar(&tiers, "tiers", false, "add the tier breakdown of front-end exchanges")
	f.DurationVar(&window, "tier-window", 10*time.Second, "longest front-end exchange --tiers can link")
	return cmd
}
