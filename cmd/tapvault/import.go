package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"tapvault/dataplane"
	"tapvault/pipeline"
)

func newImportCmd() *cobra.Command {
	var so storeOptions
	cmd := &cobra.Command{
		Use:   "import --data DIR FILE...",
		Short: "Import pcap/pcapng files into a store (pure Go, no DPDK needed)",
		Long: `Import feeds capture files through the same workers and writer as live
capture, so imported and captured data are alike. It reads pcap (either byte
order, µs or ns) and pcapng (several interfaces and link types). A file cut
short inside a packet keeps everything before the cut, with a warning.
Files are imported in the order given, through one worker, so stored packets
keep the files' order exactly.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := so.check(); err != nil {
				return err
			}
			return runImport(cmd.ErrOrStderr(), cmd.OutOrStdout(), so, args)
		},
	}
	so.addFlags(cmd)
	// An import compresses every block: no packet is at stake, and a
	// smaller store with flow sub-frames beats a faster import.
	so.compressWait = true
	cmd.Flags().Lookup("compress-wait").DefValue = "true"
	return cmd
}

// chainSource reads files one after the other as one Source, so one worker
// sees them in order.
type chainSource struct {
	paths []string
	i     int
	cur   *dataplane.FileSource
	done  atomic.Int64 // bytes of files already finished
	pkts  atomic.Uint64
	mu    sync.Mutex // guards cur for the progress reader
	warns []error
}

var _ dataplane.Source = (*chainSource)(nil)

func (c *chainSource) Recv(b *dataplane.Burst) (int, error) {
	for {
		if c.cur == nil {
			if c.i >= len(c.paths) {
				b.N = 0
				return 0, io.EOF
			}
			f, err := dataplane.OpenFile(c.paths[c.i])
			if err != nil {
				return 0, err
			}
			c.mu.Lock()
			c.cur = f
			c.mu.Unlock()
		}
		n, err := c.cur.Recv(b)
		c.pkts.Add(uint64(n))
		if errors.Is(err, io.EOF) {
			if w := c.cur.Warning(); w != nil {
				c.warns = append(c.warns, fmt.Errorf("%s: %w", c.paths[c.i], w))
				slog.Warn("capture file cut short; kept what precedes the cut", "file", c.paths[c.i], "err", w)
			}
			if n > 0 {
				// Deliver this burst; the next call moves on. The file's
				// arena must stay valid until then, so close it later.
				return n, nil
			}
			c.mu.Lock()
			c.done.Add(c.cur.Size())
			cerr := c.cur.Close()
			c.cur = nil
			c.mu.Unlock()
			c.i++
			if cerr != nil {
				return 0, cerr
			}
			continue
		}
		if err != nil {
			return n, fmt.Errorf("read %s: %w", c.paths[c.i], err)
		}
		return n, nil
	}
}

func (c *chainSource) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		err := c.cur.Close()
		c.cur = nil
		return err
	}
	return nil
}

// progress returns bytes read so far.
func (c *chainSource) progress() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.done.Load()
	if c.cur != nil {
		n += c.cur.Offset()
	}
	return n
}

func runImport(stderr, stdout io.Writer, so storeOptions, paths []string) error {
	var total int64
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		if st.IsDir() {
			return fmt.Errorf("import: %s is a directory, want a pcap or pcapng file", p)
		}
		total += st.Size()
	}
	// Open every file once up front so a bad file is reported before anything
	// is written.
	for _, p := range paths {
		f, err := dataplane.OpenFile(p)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		f.Close()
	}
	st, err := openStore(so, 1, nil, true)
	if err != nil {
		return err
	}
	defer st.close()
	src := &chainSource{paths: paths}
	stopProgress := startProgress(stderr, func() string {
		done := src.progress()
		r := st.p.Live()
		pct := 100.0
		if total > 0 {
			pct = 100 * float64(done) / float64(total)
		}
		return fmt.Sprintf("import: %5.1f%% of %s, %d packets, %d stored, %s", pct, humanBytes(total), r.RxPackets, r.Writer.PacketsCommitted, dropsOf(r, nil))
	})
	rep, err := st.p.Run([]dataplane.Source{src})
	stopProgress()
	if ierr := st.finish(); ierr != nil && err == nil {
		err = ierr
	}
	printReport(stdout, rep, nil)
	for _, w := range src.warns {
		fmt.Fprintf(stdout, "warning           %v\n", w)
	}
	return err
}

// startProgress prints line() to w every second until the returned func is
// called. On a terminal it rewrites one line; otherwise it prints a line
// every 5 s so logs stay short.
func startProgress(w io.Writer, line func() string) func() {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	every := 5 * time.Second
	if tty {
		every = time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprintf(w, "\r%s\n", line())
				}
				return
			case <-t.C:
				if tty {
					fmt.Fprintf(w, "\r%s", line())
				} else {
					fmt.Fprintln(w, line())
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

var _ = pipeline.Report{}
