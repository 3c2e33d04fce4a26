package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
)

// The fleet port (docs/fleet.md, "Enrolment and mutual TLS"): the same API
// a sensor serves to people, on a second listener where the fleet's mutual
// TLS replaces the bearer token. The TLS config (fleet.ServerTLSConfig)
// requires and verifies a client certificate from the fleet CA during the
// handshake, so a client without one never reaches HTTP; the handler checks
// the verified chain again, so a config that forgot to require it fails
// closed. Only the API is served there: no UI, no sessions.

// PathFleetPing is the fleet port's health probe. It takes no query slot,
// so a sensor whose slots are all held by long pulls still answers it at
// once (the centre would otherwise show a busy sensor as down).
const PathFleetPing = "/api/v1/fleet/ping"

// FleetPing is the answer of PathFleetPing.
type FleetPing struct {
	TimeNs         int64 `json:"time_ns"`         // the sensor's clock
	QueriesRunning int   `json:"queries_running"` // query slots taken
	MaxQueries     int   `json:"max_queries"`
}

// FleetHandler returns the API's routes for a listener whose TLS has
// already authenticated the client (RequireAndVerifyClientCert against the
// fleet CA): the request log, and no token check. A request that did not
// come over such a connection is refused.
func (s *Server) FleetHandler() http.Handler {
	return s.logRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			writeError(w, r, http.StatusForbidden, "the fleet port serves only clients with a fleet certificate")
			return
		}
		if r.URL.Path == PathFleetPing && r.Method == http.MethodGet {
			s.writeJSON(w, r, FleetPing{TimeNs: s.now().UnixNano(), QueriesRunning: len(s.sem), MaxQueries: cap(s.sem)})
			return
		}
		s.route(w, r)
	}))
}

// ServeFleet serves FleetHandler on ln (a plain TCP listener; TLS is added
// here) with conf until ctx is done, then closes ln. conf must require and
// verify client certificates; anything else is refused here rather than
// served open.
func (s *Server) ServeFleet(ctx context.Context, ln net.Listener, conf *tls.Config) error {
	if conf == nil || conf.ClientAuth != tls.RequireAndVerifyClientCert || conf.ClientCAs == nil {
		ln.Close()
		return errors.New("api: the fleet port needs a TLS config that requires and verifies client certificates")
	}
	srv := &http.Server{
		Handler:           s.FleetHandler(),
		ReadHeaderTimeout: apiReadHeaderTimeout,
		IdleTimeout:       apiIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, conf)) }()
	s.log.Info("fleet port listening (mutual TLS)", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("api: fleet serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), apiShutdownWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}
