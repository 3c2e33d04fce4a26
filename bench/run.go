package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"time"

	"tapvault/dataplane"
	"tapvault/pipeline"
	"tapvault/writer"
)

// RunOptions configure one end-to-end replay through the real dataplane.
type RunOptions struct {
	Port   string // DPDK device: net_ring0 (fed from memory) or net_pcapN (reads its file)
	Frames [][]byte
	Loops  int     // ring: passes over Frames
	PPS    float64 // ring: producer rate; 0 = as fast as possible
	Dir    string  // store directory (must be fresh)

	WorkerLcore   int
	ProducerLcore int
	Store         pipeline.Options
	Logger        *slog.Logger

	// Wrap, if set, wraps the port's receive queue: live ports never end by
	// themselves, and a wrapper decides when the run is over (RunAFPacket).
	Wrap func(dataplane.Source) dataplane.Source

	// RxDesc and Mbufs size the port's RX ring and mempool (0: the
	// dataplane's defaults, 1024 and 8191).
	RxDesc, Mbufs int

	// TxQueue sets up one TX queue beside the RX queue, which the ring
	// path needs to feed itself and net_af_xdp needs in any case (its
	// configure refuses RX and TX queue counts that differ: -EINVAL).
	TxQueue bool

	// During, if set, runs beside the capture (e.g. a query load) from the
	// moment the pipeline is open until the run ends, when ctx is
	// cancelled; Run waits for it to return.
	During func(ctx context.Context, p *pipeline.Pipeline)
}

// Result is what one replay measured.
type Result struct {
	Port     string
	Driver   string
	Sent     uint64 // packets the producer transmitted (ring)
	Retries  uint64 // bursts the ring refused in part (producer retried)
	PortStat dataplane.PortStats
	Report   pipeline.Report
	Producer time.Duration // CPU of the producer thread (ring)
	DiskSize int64
}

// Mpps is the workers' receive rate over the run.
func (r *Result) Mpps() float64 {
	return float64(r.Report.RxPackets) / r.Report.Elapsed.Seconds() / 1e6
}

// Gbps is the workers' receive rate in wire bits.
func (r *Result) Gbps() float64 {
	return float64(r.Report.RxBytes) * 8 / r.Report.Elapsed.Seconds() / 1e9
}

// Drops is every packet lost at any stage.
func (r *Result) Drops() uint64 {
	d := r.PortStat.IMissed + r.PortStat.RxNoMbuf + r.PortStat.IErrors + r.Report.DropNoBuffer + r.Report.DropWriter + r.Report.Writer.PacketsLost
	if r.Report.Index != nil {
		d += r.Report.Index.QueueDrops
	}
	return d
}

// Run replays through opts.Port into a fresh store and reports. EAL must be
// initialised with the device already.
func Run(opts RunOptions) (*Result, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ring := len(opts.Frames) > 0
	pc := dataplane.PortConfig{Name: opts.Port, RxQueues: 1, RxDesc: opts.RxDesc, Mbufs: opts.Mbufs}
	if ring || opts.TxQueue {
		pc.TxQueues = 1
	}
	port, err := dataplane.OpenPort(pc)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.Port, err)
	}
	defer port.Stop()
	so := opts.Store
	so.Dir = opts.Dir
	so.Logger = opts.Logger
	so.Pin = func(int) error { return dataplane.PinThread(opts.WorkerLcore) }
	p, err := pipeline.Open(so, 1)
	if err != nil {
		return nil, err
	}
	res := &Result{Port: opts.Port, Driver: port.Driver()}

	src := port.Source(0)
	if opts.Wrap != nil {
		src = opts.Wrap(src)
	}
	var prodErr chan error
	if ring {
		loops := max(opts.Loops, 1)
		total := uint64(len(opts.Frames)) * uint64(loops)
		prod, err := dataplane.NewProducer(port, 0, opts.Frames, dataplane.ProducerOptions{Loops: loops, PPS: opts.PPS})
		if err != nil {
			return nil, err
		}
		prodErr = make(chan error, 1)
		go func() {
			// Run pins this thread; exiting locked makes Go discard it
			// rather than reuse a pinned, DPDK-registered thread.
			runtime.LockOSThread()
			c0 := pipeline.ThreadCPU()
			err := prod.Run(opts.ProducerLcore)
			res.Producer = pipeline.ThreadCPU() - c0
			res.Sent, res.Retries = prod.Sent(), prod.Refused()
			prodErr <- err
		}()
		// The ring never ends by itself: stop once every sent packet
		// has been received (or the producer failed).
		src = &countedSource{Source: src, want: total, prodErr: prodErr}
	}
	var duringDone chan struct{}
	cancelDuring := func() {}
	if opts.During != nil {
		var dctx context.Context
		dctx, cancelDuring = context.WithCancel(context.Background())
		duringDone = make(chan struct{})
		go func() {
			defer close(duringDone)
			opts.During(dctx, p)
		}()
	}
	rep, err := p.Run([]dataplane.Source{src})
	cancelDuring()
	if duringDone != nil {
		<-duringDone
	}
	if ring {
		if perr := <-prodErr; perr != nil && err == nil {
			err = fmt.Errorf("producer: %w", perr)
		}
	}
	res.Report = rep
	res.PortStat, _ = port.Stats()
	res.DiskSize, _ = writer.DirSize(opts.Dir)
	return res, err
}

// countedSource ends a never-ending source once want packets have arrived,
// or when the producer has finished and nothing more arrives.
type countedSource struct {
	dataplane.Source
	want, got uint64
	prodErr   chan error
	prodDone  bool
	idleSince time.Time
}

func (c *countedSource) Recv(b *dataplane.Burst) (int, error) {
	if c.got >= c.want {
		b.N = 0
		return 0, io.EOF
	}
	n, err := c.Source.Recv(b)
	c.got += uint64(n)
	if n > 0 || err != nil {
		c.idleSince = time.Time{}
		return n, err
	}
	if !c.prodDone {
		select {
		case e := <-c.prodErr:
			c.prodDone = true
			c.prodErr <- e // leave it for Run
		default:
			return 0, nil
		}
	}
	// Producer done, ring empty: whatever is missing was refused by the
	// ring; wait a little for stragglers, then end.
	if c.idleSince.IsZero() {
		c.idleSince = time.Now()
	} else if time.Since(c.idleSince) > 500*time.Millisecond {
		return 0, io.EOF
	}
	return 0, nil
}

// WriteReport prints a result the way docs/PERFORMANCE.md quotes it.
func WriteReport(w io.Writer, name string, r *Result) {
	rep := &r.Report
	fmt.Fprintf(w, "%s (%s)\n", name, r.Driver)
	fmt.Fprintf(w, "  received      %d pkts, %d bytes in %s: %.3f Mpps, %.3f Gbps\n",
		rep.RxPackets, rep.RxBytes, rep.Elapsed.Round(time.Millisecond), r.Mpps(), r.Gbps())
	if r.Sent > 0 {
		fmt.Fprintf(w, "  producer      sent %d (ring-full retries %d), CPU %s\n", r.Sent, r.Retries, r.Producer.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "  drops         port imissed %d rx_nombuf %d ierrors %d; no block buffer %d; writer queue %d; total %d\n",
		r.PortStat.IMissed, r.PortStat.RxNoMbuf, r.PortStat.IErrors, rep.DropNoBuffer, rep.DropWriter, r.Drops())
	ws := rep.Writer
	ratio := 0.0
	if ws.StoredBytes > 0 {
		ratio = float64(ws.RawBytes) / float64(ws.StoredBytes)
	}
	fmt.Fprintf(w, "  stored        %d pkts, %d blocks, raw %d B -> stored %d B (%.2fx), on disk %d B; raw blocks: incompressible %d, compressor behind %d\n",
		ws.PacketsCommitted, ws.BlocksCommitted, ws.RawBytes, ws.StoredBytes, ratio, r.DiskSize, ws.RawIncompressible, ws.RawBehind)
	var wcpu time.Duration
	for _, c := range rep.WorkerCPU {
		wcpu += c
	}
	rest := rep.ProcessCPU - wcpu - r.Producer
	el := rep.Elapsed.Seconds()
	if rep.Index != nil {
		t := rep.TimeToQueryable
		fmt.Fprintf(w, "  index         %d blocks, %d B (%.2f%% of stored), queue drops %d; time to queryable p50 %s p99 %s max %s\n",
			rep.Index.Blocks, rep.IndexBytes, 100*float64(rep.IndexBytes)/float64(max(ws.StoredBytes, 1)), rep.Index.QueueDrops,
			t.P50.Round(time.Microsecond), t.P99.Round(time.Microsecond), t.Max.Round(time.Microsecond))
	}
	if a := rep.Analytics; a != nil {
		fmt.Fprintf(w, "  analytics     %d records (%d exchanges, %d connections), %d B stored; records dropped: queue %d, store %d; tcp stream bytes unseen %d\n",
			a.Records, a.Exchanges, a.Conns, a.MessageBytes, a.DropQueue, a.DropStore, a.GapBytes)
	} else {
		fmt.Fprintf(w, "  analytics     off\n")
	}
	var idx time.Duration
	if rep.Index != nil {
		idx = rep.Index.BatchTime
	}
	fmt.Fprintf(w, "  CPU           worker (rx+decode+flow+build) %s (%.0f%% of a core); producer %s; compress %s, write %s (+fsync waits %s), index %s; all but worker and producer %s (%.0f%% of a core); process %s\n",
		wcpu.Round(time.Millisecond), 100*wcpu.Seconds()/el, r.Producer.Round(time.Millisecond),
		time.Duration(ws.CompressNanos).Round(time.Millisecond), time.Duration(ws.WriteNanos).Round(time.Millisecond),
		time.Duration(ws.FsyncNanos).Round(time.Millisecond), idx.Round(time.Millisecond),
		rest.Round(time.Millisecond), 100*rest.Seconds()/el, rep.ProcessCPU.Round(time.Millisecond))
}
