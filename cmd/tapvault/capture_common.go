package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"tapvault/api"
	"tapvault/dataplane"
	"tapvault/pipeline"
	"tapvault/query"
	"tapvault/web"
)

// What a DPDK capture (runCapture) and a kernel capture (runIfaceCapture)
// share once their sources are open: the port's counters, the API beside
// the capture, and the signals.

// portPoller reads a port's counters every interval and keeps the last
// reading, for /metrics, the fleet's health reports, the progress line and
// the summary.
type portPoller struct {
	read func() (dataplane.PortStats, error)
	what string // for the warning when a read fails
	done chan struct{}

	mu   sync.Mutex
	last dataplane.PortStats
	ok   bool // a reading was taken
}

// startPortPoller reads every interval until stop, and makes the readings
// the fleet's health reports' (setCapturePort).
func startPortPoller(what string, every time.Duration, read func() (dataplane.PortStats, error)) *portPoller {
	pp := &portPoller{read: read, what: what, done: make(chan struct{})}
	setCapturePort(pp.get)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-pp.done:
				return
			case <-t.C:
				pp.poll()
			}
		}
	}()
	return pp
}

func (pp *portPoller) poll() {
	s, err := pp.read()
	if err != nil {
		slog.Warn("read "+pp.what, "err", err)
		return
	}
	pp.mu.Lock()
	pp.last, pp.ok = s, true
	pp.mu.Unlock()
}

// get returns the last reading, and whether there was one.
func (pp *portPoller) get() (dataplane.PortStats, bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.last, pp.ok
}

// stop ends the periodic reads and takes a last one, for the summary.
func (pp *portPoller) stop() {
	close(pp.done)
	pp.poll()
}

// startCaptureAPI serves the HTTP API (with /metrics and, when configured,
// the fleet's port) beside a capture, on the capture's own index: blocks
// are findable the moment the writer commits them. It never blocks
// capture: it only reads files, with bounded concurrency, and a failure to
// serve is reported while capture goes on. srv is nil when the API is off;
// closeFn releases what it opened (after ctx is cancelled).
func startCaptureAPI(ctx context.Context, o apiOptions, data string, st *store, port pipeline.PortFunc) (srv *api.Server, closeFn func(), err error) {
	fleetLn, serveFleet, err := o.fleet.listen()
	if err != nil {
		return nil, nil, fmt.Errorf("capture: %w", err)
	}
	if fleetLn != nil && o.listen == "" {
		fleetLn.Close()
		return nil, nil, errors.New("capture: --fleet-listen serves the API, which --listen \"\" turns off")
	}
	if o.listen == "" {
		return nil, func() {}, nil
	}
	qs, err := query.OpenStoreWithIndex(data, st.p.Index(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("capture: open store for the API: %w", err)
	}
	// Prometheus /metrics beside the API, behind the same token rule. The
	// collector reads the live counters at scrape time only.
	col := pipeline.NewCollector(st.p, port)
	srv, err = api.NewServer(qs, api.ServerOptions{
		Addr: o.listen, Token: o.token, Logger: slog.Default(),
		CertFile: o.tlsCert, KeyFile: o.tlsKey, UI: web.FS(),
		Handlers: map[string]http.Handler{"/metrics": pipeline.MetricsHandler(pipeline.NewRegistry(col, shipperCollector{}))},
	})
	if err != nil {
		qs.Close()
		return nil, nil, fmt.Errorf("capture: %w", err)
	}
	go func() {
		if err := srv.ListenAndServe(ctx); err != nil {
			slog.Error("HTTP API stopped; capture goes on", "addr", o.listen, "err", err)
		}
	}()
	if fleetLn != nil {
		go serveFleet(ctx, srv)
	}
	return srv, func() { qs.Close() }, nil
}

// watchCaptureSignals makes SIGHUP reload the capture (reloadCapture) and
// SIGINT or SIGTERM drain it. stop stops watching.
func watchCaptureSignals(st *store, srv *api.Server, reload func() (reloaded, error), stopTimeout time.Duration) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		for s := range sigs {
			if s == syscall.SIGHUP {
				reloadCapture(st, srv, reload)
				continue
			}
			slog.Info("signal received: draining", "signal", s.String(), "stop_timeout", stopTimeout)
			st.p.Stop()
			// The pipeline ends its stop within stopTimeout (the index
			// leaves what it has not written to the next start). Should a
			// stage hang past it anyway (a disk that stopped answering),
			// exit rather than be killed by the service manager: what was
			// committed is durable and the next start recovers the rest.
			time.AfterFunc(stopTimeout+stopGrace, func() {
				slog.Error("stop did not finish in time: exiting without the summary; the next start recovers and indexes what is missing",
					"stop_timeout", stopTimeout, "grace", stopGrace)
				os.Exit(1)
			})
			return
		}
	}()
	return func() { signal.Stop(sigs) }
}
