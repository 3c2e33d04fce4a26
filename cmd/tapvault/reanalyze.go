package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/spf13/cobra"

	"tapvault/analytics"
	"tapvault/block"
	"tapvault/dataplane"
	"tapvault/msgstore"
	"tapvault/pipeline"
	"tapvault/query"
	"tapvault/workers"
	"tapvault/writer"
)

// releaseSink takes the (empty) blocks of a reanalysis worker, which stores
// nothing.
type releaseSink struct{}

func (releaseSink) Submit(b *block.Block) bool { b.Release(); return true }

// reanalyzeReport counts what a reanalysis did.
type reanalyzeReport struct {
	Blocks, Packets          uint64
	Records                  uint64
	New, Same, Differ        map[string]uint64 // by proto
	DifferIDs                []uint64          // the first few
	LegacyBlocks, Unreadable uint64
	Written                  uint64
	ExistingLoaded           int
	From, To                 int64
	Elapsed                  time.Duration
}

func newReanalyzeCmd() *cobra.Command {
	var (
		data, from, to string
		decoders       []string
		maxStatement   int
		slowNetwork    time.Duration
		slowServer     time.Duration
		lateAck        time.Duration
		dryRun         bool
	)
	cmd := &cobra.Command{
		Use:   "reanalyze --data DIR [--from T] [--to T] [--decoder NAME]... [--dry-run]",
		Short: "Run the decoders over stored packets and store their records",
		Long: `Reanalyze reads the stored packets, queue by queue in the order each
worker saw them, runs the in-stream analytics over them exactly as capture
does, and stores the records. A decoder added after a capture serves it this
way. Records already stored (same ID) are not written again: reanalyze
compares them and reports how many are identical, and how many differ (those
keep the stored version; a difference means the decoder changed, or the
packets did: a block lost since, or a range that cuts connections).
--dry-run only compares. Connections cut by --from are analysed from the
middle (flag midstream).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" {
				return errors.New("--data DIR is required")
			}
			if len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q: reanalyze takes no filter (use --from/--to)", args)
			}
			req, err := parseRequest(nil, from, to, 0)
			if err != nil {
				return err
			}
			cfg := analytics.DefaultConfig()
			cfg.Enabled = decoders
			if maxStatement != 0 {
				cfg.MaxStatement = maxStatement
			}
			for _, d := range []struct {
				v   time.Duration
				dst *time.Duration
			}{{slowNetwork, &cfg.SlowNetwork}, {slowServer, &cfg.SlowServer}, {lateAck, &cfg.LateAck}} {
				if d.v != 0 {
					*d.dst = d.v
				}
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			rep, err := runReanalyze(cmd.ErrOrStderr(), data, req.From, req.To, cfg, dryRun)
			if err != nil {
				return err
			}
			printReanalyze(cmd.OutOrStdout(), rep, dryRun)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "store directory")
	f.StringVar(&from, "from", "", "start time (RFC 3339, relative like -15m, or unix ns)")
	f.StringVar(&to, "to", "", "end time (inclusive)")
	f.StringSliceVar(&decoders, "decoder", nil, "decoders to run (repeatable or comma-separated; default all)")
	f.IntVar(&maxStatement, "max-statement", 0, "truncate SQL statements and other free text to this many bytes (default 256)")
	f.BoolVar(&dryRun, "dry-run", false, "compare with the stored records, write nothing")
	f.DurationVar(&slowNetwork, "slow-network", 0, "as capture's --slow-network: the path round trip at which an exchange is slow_net (default 20ms)")
	f.DurationVar(&slowServer, "slow-server", 0, "as capture's --slow-server: the server time at which an exchange is slow_app (default 10ms)")
	f.DurationVar(&lateAck, "late-ack", 0, "as capture's --late-ack (default 5ms)")
	return cmd
}

func recordHash(buf []byte, r *analytics.Record) ([]byte, uint64) {
	buf = msgstore.AppendRecord(buf[:0], r)
	return buf, xxhash.Sum64(buf)
}

func runReanalyze(progress io.Writer, data string, from, to int64, cfg analytics.Config, dryRun bool) (*reanalyzeReport, error) {
	t0 := time.Now()
	rep := &reanalyzeReport{New: map[string]uint64{}, Same: map[string]uint64{}, Differ: map[string]uint64{}, From: from, To: to}
	st, err := query.OpenStore(data, nil)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	metas, err := st.Blocks(from, to)
	if err != nil {
		return nil, err
	}
	// Block IDs give each queue's blocks in the order its worker sealed
	// them (the write order may differ with several compressors).
	type blk struct {
		ref   writer.Ref
		queue uint16
		id    uint64
	}
	var blocks []blk
	var buf writer.BlockBuf
	for _, m := range metas {
		sm, err := st.R.ReadSummary(m.Ref, &buf)
		if err != nil {
			rep.Unreadable++
			fmt.Fprintf(progress, "reanalyze: skipping block %s: %v\n", m.Ref, err)
			continue
		}
		if sm.ID == 0 {
			rep.LegacyBlocks++ // written before block IDs: refs could not name its packets
			continue
		}
		blocks = append(blocks, blk{m.Ref, sm.Queue, sm.ID})
	}
	sort.Slice(blocks, func(i, j int) bool {
		a, b := blocks[i], blocks[j]
		if a.queue != b.queue {
			return a.queue < b.queue
		}
		return a.id < b.id
	})

	// What is stored already, by ID.
	existing := map[uint64]uint64{}
	rd, err := msgstore.OpenReader(data)
	if err != nil {
		return nil, err
	}
	var hb []byte
	err = rd.Scan(context.Background(), msgstore.Query{From: from, To: to, OnCorrupt: func(err error) {
		fmt.Fprintf(progress, "reanalyze: warning: %v\n", err)
	}}, func(r *analytics.Record) error {
		var h uint64
		hb, h = recordHash(hb, r)
		existing[r.ID] = h
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read stored records: %w", err)
	}
	rep.ExistingLoaded = len(existing)

	var ms *msgstore.Writer
	if !dryRun {
		// The capture's reserve: a reanalysis never takes the room a
		// capture's index (Badger, which dies of SIGBUS on a full disk)
		// counts on; below it, writing stops with an error.
		if ms, err = msgstore.OpenWriter(data, msgstore.Options{Reserve: pipeline.DefaultIndexReserve * 3 / 2}); err != nil {
			return nil, err
		}
	}
	var werr error
	emit := func(r *analytics.Record) bool {
		rep.Records++
		var h uint64
		hb, h = recordHash(hb, r)
		if old, ok := existing[r.ID]; ok {
			if old == h {
				rep.Same[r.Proto]++
			} else {
				rep.Differ[r.Proto]++
				if len(rep.DifferIDs) < 10 {
					rep.DifferIDs = append(rep.DifferIDs, r.ID)
				}
			}
			return true
		}
		rep.New[r.Proto]++
		existing[r.ID] = h
		if ms != nil && werr == nil {
			if werr = ms.Append(r); werr == nil {
				rep.Written++
			}
		}
		return true
	}
	last := time.Now()
	var w *workers.Worker
	curQ := -1
	finish := func() {
		if w != nil {
			w.Flush()
			w = nil
		}
	}
	for i, b := range blocks {
		if int(b.queue) != curQ {
			finish()
			curQ = int(b.queue)
			an := analytics.NewAnalyzer(cfg, emit)
			w = workers.NewWorker(workers.Config{
				Queue:    b.queue,
				Pool:     block.NewPool(1, 4096, 16),
				Sink:     releaseSink{},
				Analyzer: an,
			})
		}
		meta, err := st.R.ReadBlock(b.ref, &buf)
		if err != nil {
			rep.Unreadable++
			fmt.Fprintf(progress, "reanalyze: skipping block %s: %v\n", b.ref, err)
			continue
		}
		rep.Blocks++
		p := buf.Records()
		for ord := uint32(0); len(p) > 0; ord++ {
			rec, rest, err := block.NextRecord(p)
			if err != nil {
				fmt.Fprintf(progress, "reanalyze: block %s: %v\n", b.ref, err)
				break
			}
			p = rest
			pkt := dataplane.Packet{Data: rec.Data, TS: rec.TS, WireLen: rec.WireLen, LinkType: rec.LinkType, Iface: rec.Iface}
			w.Reanalyze(&pkt, block.PacketRef{Block: meta.ID, Queue: meta.Queue, Ord: ord})
			rep.Packets++
		}
		if time.Since(last) > 2*time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "reanalyze: %d/%d blocks, %d packets, %d records\n", i+1, len(blocks), rep.Packets, rep.Records)
		}
		if werr != nil {
			break
		}
	}
	finish()
	if ms != nil {
		if err := ms.Close(); err != nil && werr == nil {
			werr = err
		}
	}
	if werr != nil {
		return rep, fmt.Errorf("write records: %w", werr)
	}
	rep.Elapsed = time.Since(t0)
	return rep, nil
}

func printReanalyze(w io.Writer, rep *reanalyzeReport, dryRun bool) {
	protos := map[string]bool{}
	for _, m := range []map[string]uint64{rep.New, rep.Same, rep.Differ} {
		for p := range m {
			protos[p] = true
		}
	}
	var names []string
	for p := range protos {
		names = append(names, p)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "reanalyzed %d blocks, %d packets in %s: %d records\n", rep.Blocks, rep.Packets, rep.Elapsed.Round(time.Millisecond), rep.Records)
	var sb strings.Builder
	for _, p := range names {
		fmt.Fprintf(&sb, "  %-9s new %d, identical to stored %d, differ from stored %d\n", p, rep.New[p], rep.Same[p], rep.Differ[p])
	}
	fmt.Fprint(w, sb.String())
	if dryRun {
		fmt.Fprintf(w, "dry run: nothing written\n")
	} else {
		fmt.Fprintf(w, "written %d new records\n", rep.Written)
	}
	if len(rep.DifferIDs) > 0 {
		fmt.Fprintf(w, "records that differ (stored version kept), e.g.:")
		for _, id := range rep.DifferIDs {
			fmt.Fprintf(w, " %016x", id)
		}
		fmt.Fprintln(w)
	}
	if rep.LegacyBlocks > 0 {
		fmt.Fprintf(w, "skipped %d blocks written before block IDs existed (their packets cannot be named in records)\n", rep.LegacyBlocks)
	}
	if rep.Unreadable > 0 {
		fmt.Fprintf(w, "skipped %d unreadable blocks (run tapvault verify)\n", rep.Unreadable)
	}
}
