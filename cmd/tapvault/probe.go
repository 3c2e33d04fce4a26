package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"tapvault/analytics"
	"tapvault/msgstore"
	"tapvault/pipeline"
	"tapvault/probe"
)

func newProbeCmd() *cobra.Command {
	var (
		cfgPath string
		sensor  string
		once    bool
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "probe --config probes.yaml|fleet.yaml [--sensor NAME] [--once] [--json]",
		Short: "Run synthetic requests (HTTP, DNS, TCP, Redis, PostgreSQL, MySQL) against services, from this location",
		Long: `Probe runs the probes of a configuration on their schedules and prints each
result. Targets must be inside the configuration's allow-list (loopback only
by default): a probe is traffic, and an operator opts in to where it goes.

Run by itself it only times the requests. To have each probe recorded as an
ordinary exchange, with its packets, tagged with the probe's name and the
location, give the same file to the capture that sees the traffic:
tapvault capture ... --probes probes.yaml (docs/probes.md).

The file is a sensor's own (location:, allow:, probes:) or the fleet
configuration, whose locations: section says which sensors stand where and
what each location probes: --sensor (default: the hostname) picks the
location that lists it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfgPath == "" {
				return errors.New("--config FILE is required (docs/probes.md has the format)")
			}
			cfg, err := probe.LoadFor(cfgPath, sensor)
			if err != nil {
				return err
			}
			ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			r := probe.NewRunner(cfg, nil)
			w := cmd.OutOrStdout()
			var mu sync.Mutex
			failed := 0
			show := func(res probe.Result) {
				mu.Lock()
				defer mu.Unlock()
				if res.Err != nil {
					failed++
				}
				printProbeResult(w, res, asJSON)
			}
			if once {
				for i := range cfg.Probes {
					show(r.Once(ctx, &cfg.Probes[i]))
				}
				if failed > 0 {
					return &exitError{code: 1, err: fmt.Errorf("%d of %d probes failed", failed, len(cfg.Probes))}
				}
				return nil
			}
			r.Run(ctx, show)
			return nil
		},
	}
	f := cmd.Flags()
	host, _ := os.Hostname()
	f.StringVar(&cfgPath, "config", "", "probe configuration (YAML): a sensor's own, or the fleet configuration with locations:")
	f.StringVar(&sensor, "sensor", host, "with a fleet configuration: this sensor's name, which picks its location")
	f.BoolVar(&once, "once", false, "run every probe once and exit (non-zero when one fails)")
	f.BoolVar(&asJSON, "json", false, "one JSON object per result")
	return cmd
}

func printProbeResult(w io.Writer, res probe.Result, asJSON bool) {
	msg := ""
	if res.Err != nil {
		msg = res.Err.Error()
	}
	if asJSON {
		json.NewEncoder(w).Encode(map[string]any{"probe": res.Probe, "kind": res.Kind, "location": res.Location,
			"start_ns": res.Start.UnixNano(), "duration_ns": res.Duration.Nanoseconds(), "bytes": res.Bytes, "ok": res.Err == nil, "error": msg})
		return
	}
	status := "ok"
	if res.Err != nil {
		status = "FAIL " + msg
	}
	fmt.Fprintf(w, "%s %-12s %-8s %-10s %9.3fms %6dB %s\n", res.Start.UTC().Format(time.RFC3339Nano), res.Probe, res.Kind, res.Location,
		float64(res.Duration)/1e6, res.Bytes, status)
}

// startCaptureProbes checks the probe configuration at path (none when
// empty) before the capture starts, and runs its probes once the capture's
// pipeline is open (captureStore), their records tagged through it, until
// the returned stop is called.
func startCaptureProbes(path, sensor string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	cfg, err := probe.LoadFor(path, sensor)
	if err != nil {
		return nil, fmt.Errorf("capture: --probes: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for captureStore.Load() == nil {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		runProbes(ctx, cfg, captureStore.Load().p, slog.Default())
	}()
	return func() { cancel(); <-done }, nil
}

// runProbes runs cfg's probes beside a capture, their records tagged
// through p, until ctx ends. Each result is logged (failures at warning
// level).
func runProbes(ctx context.Context, cfg *probe.Config, p *pipeline.Pipeline, log *slog.Logger) {
	tags := probe.NewTags(cfg.Location)
	p.SetRecordTagger(tags.Tag)
	r := probe.NewRunner(cfg, tags)
	log.Info("probes running", "location", cfg.Location, "probes", len(cfg.Probes))
	r.Run(ctx, func(res probe.Result) {
		if res.Err != nil {
			if ctx.Err() != nil {
				return // cut short by the capture's stop, not a failure
			}
			log.Warn("probe failed", "probe", res.Probe, "location", res.Location, "err", res.Err)
			return
		}
		log.Debug("probe", "probe", res.Probe, "location", res.Location, "duration", res.Duration)
	})
}

func newLocationsCmd() *cobra.Command {
	var (
		stores         []string
		from, to, name string
		asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   "locations --data [NAME=]DIR ... [--probe NAME] [--from T] [--to T] [--json]",
		Short: "Compare probe exchanges across locations: slow from every location (the provider) or from some only (their networks)",
		Long: `Locations reads the probe exchanges (records tagged by tapvault capture
--probes) of one or more stores, one per location, and compares their
network round trips: slow (the analytics' slow-network threshold) from every
location means the provider, or the path all share to the service; from some
only, those locations' networks. It prints each location's median and p90,
the verdict, and the IDs of each location's slowest exchanges, for
tapvault query --message ID.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(stores) == 0 {
				return errors.New("--data [NAME=]DIR is required, once per location's store")
			}
			sel, err := parseMsgSel(nil, from, to, false, 0)
			if err != nil {
				return err
			}
			var samples []probe.Sample
			for _, s := range stores {
				loc, dir, ok := strings.Cut(s, "=")
				if !ok {
					loc, dir = "", s
				}
				n, err := probeSamples(cmd.Context(), dir, loc, name, sel.From, sel.To, &samples)
				if err != nil {
					return fmt.Errorf("%s: %w", dir, err)
				}
				if n == 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "tapvault: %s holds no probe exchanges%s in the range\n", dir, map[bool]string{true: " of " + name, false: ""}[name != ""])
				}
			}
			ac := analytics.DefaultConfig()
			v := probe.Decide(samples, probe.VerdictOptions{SlowNetwork: ac.SlowNetwork, SlowServer: ac.SlowServer})
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(v)
			}
			tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "LOCATION\tEXCHANGES\tNET P50\tNET P90\tSERVER P50\tSLOW NET\tSLOWEST")
			for _, l := range v.Locations {
				ids := make([]string, len(l.Worst))
				for i, id := range l.Worst {
					ids[i] = fmt.Sprintf("%016x", id)
				}
				slow := map[bool]string{true: "yes", false: "no"}[l.SlowNet]
				if !l.Judged {
					slow = "too few"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", l.Location, l.N, hopDur(l.NetP50), hopDur(l.NetP90), hopDur(l.SrvP50), slow, strings.Join(ids, " "))
			}
			tw.Flush()
			fmt.Fprintf(w, "verdict: %s\n", v.Text)
			if v.Blame == probe.BlameUnknown {
				return &exitError{code: 1, err: errors.New("no verdict: too few probe exchanges")}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&stores, "data", nil, "a location's store, as NAME=DIR (NAME: the location when its records carry none) or DIR; repeat per location")
	f.StringVar(&name, "probe", "", "only this probe's exchanges")
	f.StringVar(&from, "from", "", "start time (RFC 3339, relative like -15m, or unix ns)")
	f.StringVar(&to, "to", "", "end time (inclusive)")
	f.BoolVar(&asJSON, "json", false, "the verdict as JSON")
	return cmd
}

// probeSamples appends the probe exchanges of the store in dir; loc names
// the location of records that carry none.
func probeSamples(ctx context.Context, dir, loc, name string, from, to int64, out *[]probe.Sample) (int, error) {
	rd, err := msgstore.OpenReader(dir)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	terms := []string{}
	if name != "" {
		terms = append(terms, probe.FieldProbe+"="+strings.ToLower(name)) // the bloom filters skip other frames
	}
	n := 0
	err = rd.Scan(ctx, msgstore.Query{From: from, To: to, Terms: terms}, func(r *analytics.Record) error {
		p, ok := r.Get(probe.FieldProbe)
		if !ok || r.Class == analytics.ClassFlow || (name != "" && p.Str != name) {
			return nil
		}
		l := loc
		if f, ok := r.Get(probe.FieldLocation); ok && f.Str != "" {
			l = f.Str
		}
		if l == "" {
			l = dir
		}
		*out = append(*out, probe.Sample{Location: strings.Clone(l), ID: r.ID, Network: r.Network, Server: r.ServerTime})
		n++
		return nil
	})
	return n, err
}
