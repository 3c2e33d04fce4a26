package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"tapvault/msgquery"
	"tapvault/query"
)

func newDiagnoseCmd() *cobra.Command {
	var (
		data, from, to, server string
		jsonOut                bool
		slowNetwork            time.Duration
		slowServer             time.Duration
		minCount               int
		window                 time.Duration
	)
	cmd := &cobra.Command{
		Use:   "diagnose --data DIR [--from T] [--to T] [--server S] [--json]",
		Short: "Say where the time goes: the server, its side of the network, some clients' networks, or the database",
		Long: `Diagnose reads the stored exchange records of the window, compares
servers and clients, and says in plain sentences where the time goes
(docs/analytics.md, "Diagnose"):
  - a server that is slow while its ACKs are prompt: the application, or
    what it waits on (with the tier view when backend calls are seen);
  - slow round trips from every client network: the server's side of the
    network (its hosting provider);
  - slow round trips from a few client networks (/24, /48): theirs, named;
  - a front end's wait split by its database calls: before, in, after.
Each statement carries its numbers and the IDs of the slowest and a median
exchange behind it; tapvault query --message ID -w x.pcap gives their
packets. A server needs --min-count exchanges with a time split before
anything is said about it; below that the answer is "not enough data".
--server selects servers (10.0.0.5, 10.0.0.5:80, 10.0.0.0/24); a selected
front end keeps its backend calls.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if data == "" {
				return errors.New("--data DIR is required")
			}
			if minCount < 1 {
				return fmt.Errorf("--min-count %d: must be at least 1", minCount)
			}
			if slowNetwork < 0 || slowServer < 0 {
				return errors.New("--slow-network and --slow-server must not be negative")
			}
			if window <= 0 || window > time.Hour {
				return fmt.Errorf("--tier-window %s: want a duration up to 1h", window)
			}
			sel, err := parseMsgSel(nil, from, to, true, window)
			if err != nil {
				return err
			}
			srv, err := msgquery.ParseServerSel(server)
			if err != nil {
				return fmt.Errorf("--server: %w", err)
			}
			if err := checkStore(data); err != nil {
				return err
			}
			opts := msgquery.DiagnoseOptions{SlowNetwork: int64(slowNetwork), SlowServer: int64(slowServer), MinCount: minCount, Server: srv}
			d, ws, err := query.Diagnose(cmd.Context(), data, sel.From, sel.To, sel.Window, opts)
			warnCorrupt(ws)
			if err != nil {
				return err
			}
			if d.Exchanges == 0 {
				noteNoMessages(cmd.ErrOrStderr(), data, from, to, sel)
			}
			if jsonOut {
				_, err = cmd.OutOrStdout().Write(msgquery.AppendDiagnosisJSON(nil, d))
				return err
			}
			return msgquery.WriteDiagnosis(cmd.OutOrStdout(), d, data)
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "store directory")
	f.StringVar(&from, "from", "", "start time (RFC 3339, relative like -15m, or unix ns)")
	f.StringVar(&to, "to", "", "end time (inclusive)")
	f.StringVar(&server, "server", "", "only these servers: an address, address:port or prefix")
	f.BoolVar(&jsonOut, "json", false, "one JSON object: findings, their numbers and examples, per-server figures")
	f.DurationVar(&slowNetwork, "slow-network", 0, "a path round trip (both legs) at or over this is slow (default 20ms, as capture's)")
	f.DurationVar(&slowServer, "slow-server", 0, "a server part at or over this is slow (default 10ms, as capture's)")
	f.IntVar(&minCount, "min-count", msgquery.DefaultMinCount, "exchanges with a time split a server needs before anything is said about it")
	f.DurationVar(&window, "tier-window", 10*time.Second, "longest front-end exchange the tier linker can link")
	return cmd
}
