package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

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
			if err := checkStore(data); err != nil {
				return err
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
			return runQuery(cmd, data, req, out, format, count, message, from, to)
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

func runQuery(cmd *cobra.Command, data string, req query.Request, out, format string, count bool, message, from, to string) (err error) {
	st, err := query.OpenStore(data, nil)
	if err != nil {
		return err
	}
	defer st.Close()

	var (
		pw       query.PacketWriter
		bw       *bufio.Writer
		file     *os.File
		devOut   *os.File // -w onto a device or FIFO
		tmp      string
		linkType = -1
	)
	if out != "" {
		var w io.Writer
		if out == "-" {
			w = cmd.OutOrStdout()
		} else if fi, serr := os.Stat(out); serr == nil && !fi.Mode().IsRegular() {
			// A device, FIFO or socket (-w /dev/null, a named pipe to
			// Wireshark): written in place. Renaming a file onto it would
			// replace /dev/null with a regular file.
			if fi.IsDir() {
				return fmt.Errorf("create output: %s is a directory", out)
			}
			if devOut, err = os.OpenFile(out, os.O_WRONLY, 0); err != nil {
				return fmt.Errorf("create output: %w", err)
			}
			defer devOut.Close()
			w = devOut
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
		res.Matched, err = messagePackets(cmd, st, message, write)
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
	if res.Matched == 0 && message == "" && (from != "" || to != "") {
		// Say what the store holds when the range misses it (a relative
		// time on an imported trace).
		if blocks, err := st.Blocks(query.MinTime, query.MaxTime); err == nil {
			if len(blocks) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "the store holds no packets")
			} else {
				lo, hi := blocks[0].MinTS, blocks[0].MaxTS
				for _, b := range blocks {
					lo, hi = min(lo, b.MinTS), max(hi, b.MaxTS)
				}
				noteRange(cmd.ErrOrStderr(), "packets", from, to, req.From, req.To, lo, hi)
			}
		}
	}
	if res.SkippedCorrupt > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %d corrupt blocks were skipped; run tapvault verify --data %s\n", res.SkippedCorrupt, data)
	}
	return nil
}

// messagePackets is the drill-down of query --message (Store.MessagePackets).
func messagePackets(cmd *cobra.Command, st *query.Store, idText string, fn func(p *query.Packet) error) (uint64, error) {
	id, err := query.ParseMessageID(idText)
	if err != nil {
		return 0, fmt.Errorf("--message: %w", err)
	}
	d, err := st.MessagePackets(cmd.Context(), id, fn)
	if err != nil {
		return uint64(d.Found), err
	}
	fmt.Fprintln(cmd.ErrOrStderr(), d.String())
	return uint64(d.Found), nil
}
