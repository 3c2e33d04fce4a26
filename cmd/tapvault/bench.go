package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"tapvault/bench"
	"tapvault/dataplane"
	"tapvault/pipeline"
)

func addGenFlags(cmd *cobra.Command, o *bench.GenOptions) {
	f := cmd.Flags()
	f.StringVar(&o.Kind, "kind", "imix", "traffic: udp64, imix (7:4:1 of 64/594/1518 B over TCP flows), mixed")
	f.IntVar(&o.Packets, "packets", 1_000_000, "packets to generate")
	f.IntVar(&o.Flows, "flows", 10_000, "flows")
	f.Int64Var(&o.Seed, "seed", 1, "seed: the same options give the same bytes")
	f.Float64Var(&o.PPS, "pps", 1_000_000, "packet rate the timestamps are spaced for")
}

func newBenchCmd() *cobra.Command {
	var (
		gen     bench.GenOptions
		sources string
		loops   int
		data    string
		keep    bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Replay a generated trace through DPDK (net_ring, net_pcap) at maximum speed into a store, and report",
		Long: `Bench generates a trace, then replays it through the real dataplane at
maximum speed: from memory through net_ring (a producer thread transmits into
the ring, the worker receives), and from the file through net_pcap. Each run
goes into a fresh store and reports Mpps, Gbps, drops per stage, stored
bytes, compression ratio and CPU per stage.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srcs := strings.Split(sources, ",")
			for _, s := range srcs {
				if s != "ring" && s != "pcap" {
					return fmt.Errorf("--sources: unknown source %q (want ring, pcap)", s)
				}
			}
			return runBench(cmd, gen, srcs, loops, data, keep)
		},
	}
	addGenFlags(cmd, &gen)
	f := cmd.Flags()
	f.StringVar(&sources, "sources", "ring,pcap", "replay paths to run, in order")
	f.IntVar(&loops, "loops", 3, "passes over the trace on the ring path")
	f.StringVar(&data, "data", "", "directory for the trace and stores (default: a temporary one, removed)")
	f.BoolVar(&keep, "keep", false, "keep the trace and stores")

	var out string
	genCmd := &cobra.Command{
		Use:   "gen -o FILE",
		Short: "Write a reproducible generated trace (pcap, ns timestamps)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("-o FILE is required")
			}
			t0 := time.Now()
			st, err := bench.GenerateFile(out, gen)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d packets, %d bytes, %d flows in %s\n", out, st.Packets, st.Bytes, st.Flows, time.Since(t0).Round(time.Millisecond))
			return nil
		},
	}
	addGenFlags(genCmd, &gen)
	genCmd.Flags().StringVarP(&out, "out", "o", "", "output pcap file")
	cmd.AddCommand(genCmd)
	return cmd
}

func runBench(cmd *cobra.Command, gen bench.GenOptions, srcs []string, loops int, data string, keep bool) error {
	w := cmd.OutOrStdout()
	if data == "" {
		d, err := os.MkdirTemp("", "tapvault-bench-")
		if err != nil {
			return err
		}
		data = d
		if !keep {
			defer os.RemoveAll(d)
		}
	} else if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	trace := filepath.Join(data, "trace.pcap")
	t0 := time.Now()
	gs, err := bench.GenerateFile(trace, gen)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "trace: %s, %d packets, %d bytes, %d flows (generated in %s)\n", gen.Kind, gs.Packets, gs.Bytes, gs.Flows, time.Since(t0).Round(time.Millisecond))

	var frames [][]byte
	if slices.Contains(srcs, "ring") {
		_, err := bench.GenerateFrames(gen, func(_ int64, f []byte) error {
			frames = append(frames, append([]byte(nil), f...))
			return nil
		})
		if err != nil {
			return err
		}
	}
	args := ealArgs(fmt.Sprintf("-l 0-1 --no-pci --vdev=net_ring0 --vdev=net_pcap0,rx_pcap=%s", trace))
	if err := dataplane.InitEAL(args); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	worker := dataplane.MainLcore()
	if l := dataplane.WorkerLcores(); len(l) > 0 {
		worker = l[0]
	}
	fmt.Fprintf(w, "machine: %d CPUs; EAL %s; worker on lcore %d, producer on lcore %d\n", nCPU(), strings.Join(args, " "), worker, dataplane.MainLcore())
	for _, s := range srcs {
		opts := bench.RunOptions{
			Dir:           filepath.Join(data, "store-"+s),
			WorkerLcore:   worker,
			ProducerLcore: dataplane.MainLcore(),
			Store:         pipeline.Options{},
			Logger:        slog.Default(),
		}
		name := ""
		switch s {
		case "ring":
			opts.Port, opts.Frames, opts.Loops = "net_ring0", frames, loops
			name = fmt.Sprintf("net_ring, %d x %d frames from memory", loops, len(frames))
		case "pcap":
			opts.Port = "net_pcap0"
			name = "net_pcap, the trace file"
		}
		res, err := bench.Run(opts)
		if err != nil {
			return fmt.Errorf("bench %s: %w", s, err)
		}
		bench.WriteReport(w, name, res)
	}
	return nil
}

func nCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nprocessor") + 1
}
