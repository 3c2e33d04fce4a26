// Command tapvault captures, stores, indexes and queries packets.
//
// Subcommands: capture (DPDK), import (pcap/pcapng files), query, verify,
// stats, bench. Run `tapvault help` for the list.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	// Everything tapvault creates may hold packets: files 0600, directories
	// 0700, including what libraries create (Badger's tables would be 0644
	// under the usual umask).
	syscall.Umask(0o077)
	root := &cobra.Command{
		Use:           "tapvault",
		Short:         "Full packet capture on DPDK, stored compressed and indexed, with in-stream analytics",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var (
		verbose bool
		cpuProf string
		memProf string
	)
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log debug messages")
	root.PersistentFlags().StringVar(&cpuProf, "cpuprofile", "", "write a CPU profile (pprof) of the command to FILE")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentFlags().StringVar(&memProf, "memprofile", "", "write an allocation profile (pprof) of the command to FILE when it ends")
	_ = root.PersistentFlags().MarkHidden("memprofile")
	root.PersistentPostRun = func(*cobra.Command, []string) {
		pprof.StopCPUProfile()
		if memProf != "" {
			if f, err := os.Create(memProf); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}
	}
	root.PersistentPreRun = func(*cobra.Command, []string) {
		if cpuProf != "" {
			if f, err := os.Create(cpuProf); err == nil {
				pprof.StartCPUProfile(f)
			}
		}
		level := slog.LevelInfo
		if verbose {
			level = slog.LevelDebug
		}
		// Repeated warnings and errors are rate limited (3 a minute per
		// message, then a count), so a persistent fault cannot flood the log.
		slog.SetDefault(slog.New(newRateLimited(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}), time.Minute, 3)))
	}
	root.AddCommand(
		newCaptureCmd(),
		newImportCmd(),
		newQueryCmd(),
		newVerifyCmd(),
		newStatsCmd(),
		newFlowsCmd(),
		newServeCmd(),
		newReindexCmd(),
		newMessagesCmd(),
		newLatencyCmd(),
		newDiagnoseCmd(),
		newReanalyzeCmd(),
		newBenchCmd(),
		newHopsCmd(),
		newProbeCmd(),
		newLocationsCmd(),
		newFleetCmd(),
	)
	if err := root.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "tapvault: %v\n", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}
