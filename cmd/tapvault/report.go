package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"tapvault/dataplane"
	"tapvault/pipeline"
)

// printReport writes the end-of-run summary: what each stage received,
// stored and dropped, and what it cost on disk.
func printReport(w io.Writer, r pipeline.Report, port *dataplane.PortStats) {
	secs := r.Elapsed.Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	fmt.Fprintf(w, "elapsed           %s\n", r.Elapsed.Round(time.Millisecond))
	if port != nil {
		fmt.Fprintf(w, "port              received %d pkts %d bytes; dropped: imissed %d, ierrors %d, rx_nombuf %d\n",
			port.IPackets, port.IBytes, port.IMissed, port.IErrors, port.RxNoMbuf)
	}
	fmt.Fprintf(w, "workers           received %d pkts %d bytes (%.3f Mpps, %.3f Gbps)\n",
		r.RxPackets, r.RxBytes, float64(r.RxPackets)/secs/1e6, float64(r.RxBytes)*8/secs/1e9)
	fmt.Fprintf(w, "                  dropped: no free block buffer %d, writer queue full %d; cut to max size %d; kept but malformed %d, truncated in a header %d; flows %d\n",
		r.DropNoBuffer, r.DropWriter, r.Cut, r.Malformed, r.Truncated, r.Flows)
	// What the memory bounds shed (docs/config.md, "Memory"): no packet
	// is lost to them.
	var ixShed, ixStop uint64
	if ix := r.Index; ix != nil {
		ixShed, ixStop = ix.QueueDrops, ix.StopShed
	}
	var undecoded, recShed uint64
	if a := r.Analytics; a != nil {
		undecoded, recShed = a.ParsersFull, a.DropQueue
	}
	fmt.Fprintf(w, "memory bounds     shed: flow table full %d pkts (stored, not tracked); index queue %d blocks, stop deadline %d blocks (indexed later from the segments); %d connections timed not decoded; %d records at the record queue\n",
		r.FlowsFull, ixShed, ixStop, undecoded, recShed)
	ws := r.Writer
	ratio := 0.0
	if ws.StoredBytes > 0 {
		ratio = float64(ws.RawBytes) / float64(ws.StoredBytes)
	}
	fmt.Fprintf(w, "store             committed %d pkts in %d blocks (%d sealed by time); raw %d bytes, stored %d bytes (this run's block records, headers included), compression %.2fx\n",
		ws.PacketsCommitted, ws.BlocksCommitted, r.BlocksTimed, ws.RawBytes, ws.StoredBytes, ratio)
	fmt.Fprintf(w, "                  stored raw: incompressible %d, compressor behind %d; write errors %d; fsyncs %d\n",
		ws.RawIncompressible, ws.RawBehind, ws.WriteErrors, ws.Fsyncs)
	if ws.PacketsLost > 0 {
		fmt.Fprintf(w, "                  dropped at the disk: %d pkts in %d blocks not written (of which disk full: %d pkts in %d blocks)\n",
			ws.PacketsLost, ws.BlocksLost, ws.DiskFullPackets, ws.DiskFullBlocks)
	}
	if ix := r.Index; ix != nil {
		// The index covers the whole store, this run's blocks and those
		// of earlier runs: compared with this run's bytes it was
		// 17092% after a small import into a large store. Below
		// 64 MiB of segments Badger's fixed cost (~15 KiB and up) makes
		// a percentage meaningless.
		share := "too small a store for a meaningful share"
		if r.SegmentBytes >= 64<<20 {
			share = fmt.Sprintf("%.2f%%", 100*float64(r.IndexBytes)/float64(r.SegmentBytes))
		}
		fmt.Fprintf(w, "index             %d blocks indexed (%d keys, %s writing); the whole store's index is %s on disk for %s of segment files (%s); dropped at the index queue %d (indexed from the segments: before an import exits, at the next start of a capture)\n",
			ix.Blocks, ix.Keys, ix.BatchTime.Round(time.Millisecond), humanBytes(r.IndexBytes), humanBytes(r.SegmentBytes), share, ix.QueueDrops)
		if t := r.TimeToQueryable; t.Count > 0 {
			fmt.Fprintf(w, "time to queryable first packet of a block to indexed: p50 %s, p99 %s, max %s over %d blocks\n",
				t.P50.Round(time.Microsecond), t.P99.Round(time.Microsecond), t.Max.Round(time.Microsecond), t.Count)
		}
	} else {
		fmt.Fprintf(w, "index             none (run tapvault reindex)\n")
	}
	if r.RetentionDrops > 0 || r.RetentionMessageFiles > 0 {
		fmt.Fprintf(w, "retention         dropped %d oldest segments and %d message files, %s freed (DIR/retention.log)\n",
			r.RetentionDrops, r.RetentionMessageFiles, humanBytes(r.RetentionBytes+r.RetentionMessageBytes))
	}
	if a := r.Analytics; a != nil {
		fmt.Fprintf(w, "analytics         %d records (%d exchanges, %d unanswered, %d connections), %d stored in %s; dropped: %d at the record queue, %d at the message store\n",
			a.Records, a.Exchanges, a.Unanswered, a.Conns, a.Stored, humanBytes(a.MessageBytes), a.DropQueue, a.DropStore)
		fmt.Fprintf(w, "tcp               %d retransmissions, %d out of order, %d stream bytes never seen, %d reassembly-limit holes, %d packets of untracked connections\n",
			a.Retrans, a.OutOfOrder, a.GapBytes, a.BufferFull, a.ConnsFull)
		if a.Defragged > 0 || a.FragDropped > 0 {
			fmt.Fprintf(w, "ip fragments      %d udp datagrams reassembled, %d fragments dropped (tapvault_analytics_fragments_dropped_total by reason)\n",
				a.Defragged, a.FragDropped)
		}
	} else {
		fmt.Fprintf(w, "analytics         off (tapvault reanalyze can run the decoders over the stored packets)\n")
	}
	fmt.Fprintf(w, "total             %d packets stored, %d dropped\n", ws.PacketsCommitted, dropsOf(r, port).total())
}

// drops are the packets a run dropped, by where: everything the summary's
// total counts, so that the live progress line agrees with it.
type drops struct {
	port     uint64 // at the NIC: imissed, rx_nombuf, ierrors
	noBuffer uint64 // no free block buffer
	writer   uint64 // writer queue full
	disk     uint64 // in blocks the writer could not write
	diskFull uint64 // of disk: because the disk was full
}

func dropsOf(r pipeline.Report, port *dataplane.PortStats) drops {
	d := drops{noBuffer: r.DropNoBuffer, writer: r.DropWriter, disk: r.Writer.PacketsLost, diskFull: r.Writer.DiskFullPackets}
	if port != nil {
		d.port = port.IMissed + port.RxNoMbuf + port.IErrors
	}
	return d
}

func (d drops) total() uint64 { return d.port + d.noBuffer + d.writer + d.disk }

// String is "N dropped", followed by the non-zero causes.
func (d drops) String() string {
	s := fmt.Sprintf("%d dropped", d.total())
	var causes []string
	add := func(n uint64, what string) {
		if n > 0 {
			causes = append(causes, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(d.port, "at the port")
	add(d.noBuffer, "no free buffer")
	add(d.writer, "writer queue full")
	if d.diskFull > 0 {
		add(d.disk, fmt.Sprintf("at the disk (%d disk full)", d.diskFull))
	} else {
		add(d.disk, "at the disk")
	}
	if len(causes) > 0 {
		s += " (" + strings.Join(causes, ", ") + ")"
	}
	return s
}

// progressLine is the live line of capture and import: received, stored
// (committed, as the summary counts it) and every drop the summary counts.
// port is nil when there is none or it has not been read yet.
func progressLine(what string, r pipeline.Report, port *dataplane.PortStats) string {
	return fmt.Sprintf("%s: %d packets received, %d stored, %s", what, r.RxPackets, r.Writer.PacketsCommitted, dropsOf(r, port))
}
