package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"tapvault/analytics"
	"tapvault/msgstore"
	"tapvault/query"
)

func newQueryCmd() *cobra.Command {
	var (
		data, from, to, out, format string
		message                     string
		count                       bool
		limit                       int
	)
	cmd := &cobra.Command{
		Use:   "query --data DIR [--from T] [--to T] [-w FILE|-] [--format pcap|pcapng] [--count] [--limit N] [FILTER...]",
		Short: "Read stored packets back, in time order, as pcap/pcapng or a count",
		Long: `Query selects stored packets by time and filter and writes them in time
order (merged across queues), with nanosecond timestamps and original wire
lengths. FILTER is tcpdump-like (see docs/filters.md), e.g.
  tapvault query --data store -w out.pcap host 10.0.0.1 and tcp port 80
  tapvault query --data store -w - udp | tcpdump -r -
Times (--from/--to) take RFC 3339, a relative time like -15m, or unix ns.
A pcap file holds one link type: if the selected packets mix link types,
use --format pcapng (the output file is then removed and the error says so).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" {
				return errors.New("--data DIR is required")
			}
			if message != "" && (len(args) > 0 || from != "" || to != "") {
				return errors.New("--message selects the packets itself: give no filter, --from or --to with it")
			}
			// Everything the user typed is checked before any data is read.
			req, err := parseRequest(args, from, to, limit)
			if err != nil {
				return err
			}
			if !count && out == "" {
				return errors.New("say what to produce: -w FILE (or -w - for stdout) and/or --count")
			}
			if format == "" {
				format = "pcap"
				if strings.HasSuffix(out, ".pcapng") {
					format = "pcapng"
				}
			}
			if format != "pcap" && format != "pcapng" {
				return fmt.Errorf("--format %q: want pcap or pcapng", format)
			}
			return runQuery(cmd, data, req, out, format, count, message)
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "store directory")
	f.StringVar(&from, "from", "", "start time (RFC 3339, relative like -15m, or unix ns)")
	f.StringVar(&to, "to", "", "end time (inclusive)")
	f.StringVarP(&out, "write", "w", "", "write packets to FILE, or - for stdout")
	f.StringVar(&format, "format", "", "pcap or pcapng (default: pcapng for a .pcapng file, else pcap)")
	f.BoolVar(&count, "count", false, "print the number of matching packets")
	f.IntVar(&limit, "limit", 0, "stop after N packets (0: no limit)")
	f.StringVar(&message, "message", "", "drill down: the packets of both messages of the record with this ID (from tapvault messages)")
	return cmd
}

func runQuery(cmd *cobra.Command, data string, req query.Request, out, format string, count bool, message string) (err error) {
	st, err := query.OpenStore(data, nil)
	if err != nil {
		return err
	}
	defer st.Close()

	var (
		pw       query.PacketWriter
		bw       *bufio.Writer
		file     *os.File
		tmp      string
		linkType = -1
	)
	if out != "" {
		var w io.Writer
		if out == "-" {
			w = cmd.OutOrStdout()
		} else {
			// Write beside the target and rename on success, so a failed
			// query never leaves a half file under the asked-for name.
			file, err = os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
			if err != nil {
				return fmt.Errorf("create output: %w", err)
			}
			tmp = file.Name()
			defer func() {
				if tmp != "" {
					file.Close()
					os.Remove(tmp)
				}
			}()
			w = file
		}
		bw = bufio.NewWriterSize(w, 1<<20)
		if format == "pcapng" {
			if pw, err = query.NewPcapngWriter(bw); err != nil {
				return err
			}
		}
	}
	var res query.Result
	write := func(p *query.Packet) error {
		if bw == nil {
			return nil
		}
		if pw == nil { // pcap: the first packet fixes the link type
			linkType = int(p.LinkType)
			var err error
			if pw, err = query.NewPcapWriter(bw, p.LinkType, 262144); err != nil {
				return err
			}
		}
		if err := pw.WritePacket(p.TS, p.WireLen, p.LinkType, p.Iface, p.Data); err != nil {
			if errors.Is(err, query.ErrMixedLinkTypes) {
				return fmt.Errorf("the selected packets mix link types (%d, then %d) and a pcap file holds one: use --format pcapng", linkType, p.LinkType)
			}
			return err
		}
		return nil
	}
	if message != "" {
		res.Matched, err = messagePackets(cmd, st, data, message, write)
	} else {
		res, err = st.Run(cmd.Context(), req, write)
	}
	if err != nil {
		return err
	}
	if bw != nil {
		if pw == nil && format == "pcap" {
			// No packets: still write a valid, empty pcap (Ethernet).
			if pw, err = query.NewPcapWriter(bw, 1, 262144); err != nil {
				return err
			}
		}
		if err := pw.Flush(); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		if file != nil {
			if err := file.Sync(); err != nil {
				return fmt.Errorf("sync output: %w", err)
			}
			if err := file.Close(); err != nil {
				return fmt.Errorf("close output: %w", err)
			}
			if err := os.Rename(tmp, out); err != nil {
				return fmt.Errorf("rename output: %w", err)
			}
			tmp = ""
		}
	}
	slog.Debug("query plan", "index", st.IndexState, "blocks_from_index", res.Plan.FromIndex, "blocks_unindexed", res.Plan.Unindexed,
		"blocks_read", res.Blocks, "packets_visited", res.Packets, "matched", res.Matched)
	if count {
		w := cmd.OutOrStdout()
		if out == "-" { // stdout carries the packets
			w = cmd.ErrOrStderr()
		}
		fmt.Fprintln(w, res.Matched)
	}
	if res.SkippedCorrupt > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %d corrupt blocks were skipped; run tapvault verify --data %s\n", res.SkippedCorrupt, data)
	}
	return nil
}

// messagePackets is the drill-down of query --message: the stored packets
// of both messages of one record, in time order. A tcp connection record
// (which lists no packets) gives its connection's packets over its life.
func messagePackets(cmd *cobra.Command, st *query.Store, data, idText string, fn func(p *query.Packet) error) (uint64, error) {
	id, err := parseMessageID(idText)
	if err != nil {
		return 0, err
	}
	rd, err := msgstore.OpenReader(data)
	if err != nil {
		return 0, err
	}
	r, err := rd.Get(cmd.Context(), id)
	if err != nil {
		return 0, fmt.Errorf("message %s: %w", idText, err)
	}
	from, to := recordSpan(r)
	if r.Proto == "tcp" || len(r.Packets) == 0 {
		c, s := r.Client, r.Server
		expr := fmt.Sprintf("host %s and host %s and port %d and port %d", c.Addr().Unmap(), s.Addr().Unmap(), c.Port(), s.Port())
		if r.Transport == 17 {
			expr = "udp and " + expr
		} else {
			expr = "tcp and " + expr
		}
		flt, err := query.ParseFilter(expr)
		if err != nil {
			return 0, fmt.Errorf("message %s: %w", idText, err)
		}
		res, err := st.Run(cmd.Context(), query.Request{From: from, To: to, Filter: flt}, fn)
		fmt.Fprintf(cmd.ErrOrStderr(), "message %016x (%s %s -> %s): %d packets of the connection\n", r.ID, r.Proto, r.Client, r.Server, res.Matched)
		return res.Matched, err
	}
	res, err := st.Packets(cmd.Context(), r.Packets, from, to, fn)
	if err != nil {
		return uint64(res.Found), err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "message %016x (%s %s -> %s): %d of %d packets", r.ID, r.Proto, r.Client, r.Server, res.Found, res.Wanted)
	if res.NotSaved > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "; %d were never stored (dropped at capture)", res.NotSaved)
	}
	if res.Missing > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "; %d are no longer in the store (retention, or a block lost or corrupt)", res.Missing)
	}
	if r.Flags&analytics.FlagRefsCut != 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "; the record lists only its first %d packets", len(r.Packets))
	}
	fmt.Fprintln(cmd.ErrOrStderr())
	return uint64(res.Found), nil
}

// parseMessageID reads a record ID: 16 hex digits, as messages prints it.
func parseMessageID(s string) (uint64, error) {
	t := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "0x")
	if len(t) == 0 || len(t) > 16 {
		return 0, fmt.Errorf("--message %q: want the 16 hex digits of a record ID", s)
	}
	id, err := strconv.ParseUint(t, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("--message %q: want the 16 hex digits of a record ID", s)
	}
	return id, nil
}

// recordSpan is the time range a record's packets lie in.
func recordSpan(r *analytics.Record) (from, to int64) {
	from, to = query.MaxTime, query.MinTime
	for _, t := range []int64{r.ReqFirst, r.ReqLast, r.RespFirst, r.RespLast} {
		if t == 0 {
			continue
		}
		from, to = min(from, t), max(to, t)
	}
	if from > to {
		return query.MinTime, query.MaxTime
	}
	return from, to
}
