package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"tapvault/fleet"
	"tapvault/pipeline"
)

// fleetSubcommands are the subcommands of `tapvault fleet`, by name. Other
// files add theirs in an init function (fleet_enroll.go: enroll), so the
// dispatcher need not change.
var fleetSubcommands = map[string]func() *cobra.Command{
	"init": newFleetInitCmd,
	"ship": newFleetShipCmd,
}

func newFleetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Ship a sensor's metadata to ClickHouse, and manage the fleet (docs/fleet.md)",
		Long: `A fleet is several sensors (tapvault captures) whose packets stay where
they were captured while their metadata (message records, flow summaries,
health) goes to a shared ClickHouse, where the centre queries it.

  tapvault fleet init --clickhouse http://ch:8123                 # create the schema (idempotent)
  tapvault fleet ship --data store --sensor s1 --clickhouse http://ch:8123 [--follow]
  tapvault capture ... --fleet-clickhouse http://ch:8123 [--sensor s1]   # ship while capturing`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	names := make([]string, 0, len(fleetSubcommands))
	for n := range fleetSubcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cmd.AddCommand(fleetSubcommands[n]())
	}
	return cmd
}

func newFleetInitCmd() *cobra.Command {
	var url, db, cluster string
	cmd := &cobra.Command{
		Use:   "init --clickhouse URL [--database tapvault] [--cluster NAME]",
		Short: "Create the fleet's database and tables in ClickHouse, or bring them up to date",
		Long: `Init creates the database and applies the schema migrations this tapvault
carries (fleet/migrations) that the database does not have yet, recording
each in schema_migrations. Running it again applies nothing and says so.

With --cluster NAME (a cluster in the server's <remote_servers>), run it
on every node: each table is created as NAME_local, holding that node's
shard, and under its usual name as a Distributed table over all of them,
sharded by sensor (docs/fleet.md, "Sharded layout").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := fleet.NewClient(url, db)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			res, err := fleet.MigrateSharded(ctx, c, db, cluster)
			if err != nil {
				if fleet.Retryable(err) {
					return fmt.Errorf("fleet init: is ClickHouse's HTTP interface at %s? %w", redactURL(url), err)
				}
				return fmt.Errorf("fleet init: %w", err)
			}
			out := cmd.OutOrStdout()
			if res.CreatedDatabase {
				fmt.Fprintf(out, "created database %s\n", db)
			}
			for _, m := range res.Applied {
				fmt.Fprintf(out, "applied migration %s\n", m)
			}
			if len(res.Applied) == 0 {
				fmt.Fprintf(out, "database %s is up to date (%d migrations: %s)\n", db, len(res.Present), strings.Join(res.Present, ", "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "clickhouse", "", "ClickHouse HTTP interface, http://[USER:PASSWORD@]HOST:8123 (required)")
	f.StringVar(&db, "database", fleet.DefaultDatabase, "ClickHouse database")
	f.StringVar(&cluster, "cluster", "", "sharded layout: local tables plus Distributed tables over this cluster (run on every node)")
	cmd.MarkFlagRequired("clickhouse")
	return cmd
}

func newFleetShipCmd() *cobra.Command {
	var (
		dir    string
		follow bool
		so     fleetShipOptions
	)
	cmd := &cobra.Command{
		Use:   "ship --data DIR --sensor NAME --clickhouse URL [--follow]",
		Short: "Ship a store's message records, flow summaries and health to ClickHouse",
		Long: `Ship sends what the store under DIR holds and ClickHouse does not yet have,
from the cursor in DIR/fleet/cursor, at least once (re-shipped rows replace
themselves). Without --follow it stops when it has caught up; with it, it
keeps shipping what a capture appends until interrupted. While ClickHouse
is unreachable it retries with backoff; the store is the buffer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("fleet ship: --data is required")
			}
			if _, err := os.Stat(dir); err != nil {
				return fmt.Errorf("fleet ship: %w", err)
			}
			if so.url == "" {
				return errors.New("fleet ship: --clickhouse is required")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			sh, err := so.open(ctx, dir, nil)
			if err != nil {
				return fmt.Errorf("fleet ship: %w", err)
			}
			defer sh.Close()
			start := time.Now()
			if err := sh.Run(ctx, follow); err != nil {
				return fmt.Errorf("fleet ship: %w", err)
			}
			st := sh.Stats()
			fmt.Fprintf(cmd.OutOrStdout(), "shipped %d records and %d flow rows in %d batches to %s as sensor %q in %s; cursor %v; %d failed attempts\n",
				st.Records, st.FlowRows, st.Batches, so.db, so.sensor, time.Since(start).Round(time.Millisecond), st.Cursor.Messages, st.Errors)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "data", "", "store directory (required)")
	f.BoolVar(&follow, "follow", false, "keep shipping what is appended until interrupted")
	so.flags(f, "clickhouse")
	return cmd
}

// fleetShipOptions are the flags that make a process ship a store: `fleet
// ship`'s, and capture's (--fleet-clickhouse).
type fleetShipOptions struct {
	url, db, sensor string
	batch           int
	noFlows         bool
}

func (o *fleetShipOptions) flags(f *pflag.FlagSet, urlFlag string) {
	f.StringVar(&o.url, urlFlag, "", "ClickHouse HTTP interface to ship to, http://[USER:PASSWORD@]HOST:8123")
	host, _ := os.Hostname()
	f.StringVar(&o.sensor, "sensor", host, "this sensor's name in the fleet")
	f.StringVar(&o.db, "fleet-database", fleet.DefaultDatabase, "ClickHouse database of the fleet")
	f.IntVar(&o.batch, "fleet-batch", 20000, "most records per INSERT")
	f.BoolVar(&o.noFlows, "fleet-no-flows", false, "do not ship flow summaries (flow_blocks)")
}

// open makes a shipper of the store in dir, after checking that the schema
// is there (a missing schema is an error to fix, not to retry forever; an
// unreachable server is only warned about: the shipper retries).
func (o *fleetShipOptions) open(ctx context.Context, dir string, health func() map[string]float64) (*fleet.Shipper, error) {
	if o.sensor == "" {
		return nil, errors.New("--sensor is required (the hostname is unknown)")
	}
	c, err := fleet.NewClient(o.url, o.db)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = fleet.CheckSchema(cctx, c, o.db)
	cancel()
	var ce *fleet.Error
	if errors.As(err, &ce) {
		return nil, err
	}
	if err != nil {
		slog.Warn("fleet: ClickHouse unreachable; shipping will retry", "url", redactURL(o.url), "err", err)
	}
	return fleet.NewShipper(fleet.Options{Dir: dir, Sensor: o.sensor, Client: c, BatchRecords: o.batch, NoFlows: o.noFlows, Health: health})
}

// captureStore is the store the capture opened, for the health reports of
// the shipper that runs beside it (openStore sets it).
var captureStore atomic.Pointer[store]

// capturePort reads the capture's NIC (or socket) counters, for the health
// reports: imissed and the other drops before the pipeline, which only the
// port knows. Set by the capture before its store opens.
var capturePort atomic.Pointer[pipeline.PortFunc]

func setCapturePort(f pipeline.PortFunc) { capturePort.Store(&f) }

var healthReg struct {
	mu   sync.Mutex
	port *pipeline.PortFunc
	st   *store
	reg  *prometheus.Registry
}

// healthKeepLabels are the labels a health row name keeps; others (queue,
// worker) are summed over.
var healthKeepLabels = map[string]bool{"stage": true, "cause": true, "reason": true}

// captureHealth returns the capture pipeline's drop, error and volume
// counters, flattened to name{label=value}, for the fleet's sensor_health
// table, the port's (NIC or socket) counters included: imissed and the
// other drops before the pipeline.
func captureHealth() map[string]float64 {
	st := captureStore.Load()
	if st == nil {
		return nil
	}
	// One collector per store: it tails the retention log from where it
	// was made.
	healthReg.mu.Lock()
	pf := capturePort.Load() // set after the store opens: a report between gets none
	if healthReg.st != st || healthReg.port != pf {
		reg := prometheus.NewRegistry()
		var port pipeline.PortFunc
		if pf != nil {
			port = *pf
		}
		if err := reg.Register(pipeline.NewCollector(st.p, port)); err != nil {
			healthReg.mu.Unlock()
			return nil
		}
		healthReg.st, healthReg.reg, healthReg.port = st, reg, pf
	}
	reg := healthReg.reg
	healthReg.mu.Unlock()
	mfs, _ := reg.Gather()
	out := map[string]float64{}
	for _, mf := range mfs {
		name := strings.TrimPrefix(mf.GetName(), "tapvault_")
		if !healthMetric(name) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			default:
				continue
			}
			var ls []string
			for _, lp := range m.GetLabel() {
				if healthKeepLabels[lp.GetName()] {
					ls = append(ls, lp.GetName()+"="+lp.GetValue())
				}
			}
			k := name
			if len(ls) > 0 {
				k += "{" + strings.Join(ls, ",") + "}"
			}
			out[k] += v
		}
	}
	return out
}

func healthMetric(name string) bool {
	for _, s := range []string{"dropped", "lost", "rejected", "errors", "holes", "index_lag", "rx_packets_total", "rx_bytes_total",
		"stored_packets_total", "analytics_records_total", "filesystem_avail", "fleet_"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// startCaptureShipping ships the capture's store while it captures, when
// --fleet-clickhouse is set. stop ends it and waits (the cursor is durable
// after each batch; what is left ships at the next start).
func startCaptureShipping(o fleetShipOptions, dir string) (stop func(), err error) {
	if o.url == "" {
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	sh, err := o.open(ctx, dir, captureHealth)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("capture: ship to the fleet: %w", err)
	}
	captureShipper.Store(sh)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := sh.Run(ctx, true); err != nil {
			slog.Error("fleet: shipping stopped; capture goes on", "err", err)
		}
	}()
	slog.Info("shipping to the fleet", "clickhouse", redactURL(o.url), "database", o.db, "sensor", o.sensor)
	return func() {
		cancel()
		<-done
		// What the capture wrote last: ship it now if ClickHouse answers
		// within a few seconds, else it ships at the next start.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sh.Run(ctx, false)
		sh.Close()
	}, nil
}

// captureShipper is the shipper running beside the capture, for /metrics
// (its health queue: reports waiting, reports dropped).
var captureShipper atomic.Pointer[fleet.Shipper]

// shipperCollector exposes captureShipper's metrics on the capture's
// /metrics; nothing while the capture does not ship.
type shipperCollector struct{}

func (shipperCollector) Describe(ch chan<- *prometheus.Desc) {
	// Unchecked: the series exist only while a shipper does.
}

func (shipperCollector) Collect(ch chan<- prometheus.Metric) {
	if sh := captureShipper.Load(); sh != nil {
		sh.Collect(ch)
	}
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
