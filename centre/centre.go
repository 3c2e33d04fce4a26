package centre

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"tapvault/fleet"
)

// Metadata is the centre's seam to ClickHouse: run a SELECT and call fn with
// each row of its JSONEachRow answer (line valid until fn returns).
// *fleet.Client implements it; tests may put a fault in front of it.
type Metadata interface {
	QueryFunc(ctx context.Context, sql string, fn func(line []byte) error) error
}

var _ Metadata = (*fleet.Client)(nil)

// Options configure the centre's HTTP side.
type Options struct {
	// Addr is the listen address; default Config.Listen, else
	// DefaultAddr (loopback).
	Addr string
	// Token is the bearer token people send. Required off loopback; when
	// set it is required on loopback too (as tapvault serve).
	Token  string
	Logger *slog.Logger
	// UI, when set, holds the web UI's assets (web.FS()): the fleet view
	// is served at /, with the token login of a sensor's UI when a token
	// is set (session.go).
	UI fs.FS
}

// Centre serves the fleet.
type Centre struct {
	cfg     *Config
	meta    Metadata
	db      string
	opts    Options
	log     *slog.Logger
	sensors []*sensor // sorted by name
	byName  map[string]*sensor
	tokSum  [32]byte
	hasTok  bool
	handler http.Handler
	now     func() time.Time
	health  healthCache
	// sessions are the UI's logins (session.go).
	sessions sessionTable

	mu    sync.Mutex
	bound string
}

// New builds a centre from cfg over meta. It loads the centre's fleet
// certificate (a bad pair fails here, not at the first pull) and refuses a
// non-loopback address without a token.
func New(cfg *Config, meta Metadata, opts Options) (*Centre, error) {
	if opts.Addr == "" {
		opts.Addr = cfg.Listen
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Token != "" && len(opts.Token) < 16 {
		return nil, fmt.Errorf("centre: the token is %d bytes; use at least 16", len(opts.Token))
	}
	loop, err := isLoopback(opts.Addr)
	if err != nil {
		return nil, err
	}
	if !loop && opts.Token == "" {
		return nil, fmt.Errorf("centre: refusing to listen on %q without a token: packets are sensitive; set a token, or listen on 127.0.0.1", opts.Addr)
	}
	tlsConf, err := fleet.ClientTLSConfig(cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA, fleet.WithCRL(cfg.TLS.CRL))
	if err != nil {
		return nil, fmt.Errorf("centre: %w", err)
	}
	c := &Centre{
		cfg: cfg, meta: meta, db: cfg.ClickHouse.Database, opts: opts, log: opts.Logger,
		byName: map[string]*sensor{}, now: time.Now, bound: opts.Addr,
	}
	if opts.Token != "" {
		c.hasTok, c.tokSum = true, sha256.Sum256([]byte(opts.Token))
	}
	for _, name := range cfg.sensorNames() {
		s := newSensor(name, cfg.Sensors[name], fleet.ForSensor(tlsConf, name), cfg.ProbeTimeout)
		c.sensors = append(c.sensors, s)
		c.byName[name] = s
	}
	c.handler = c.logRequests(c.authenticate(http.HandlerFunc(c.route)))
	return c, nil
}

// Handler is the centre's HTTP handler (authentication included).
func (c *Centre) Handler() http.Handler { return c.handler }

// Addr is the bound address once listening.
func (c *Centre) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bound
}

// ListenAndServe probes the sensors and serves until ctx is done.
func (c *Centre) ListenAndServe(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", c.opts.Addr)
	if err != nil {
		return fmt.Errorf("centre: listen: %w", err)
	}
	c.mu.Lock()
	c.bound = ln.Addr().String()
	c.mu.Unlock()
	stop := c.StartProbes(ctx)
	defer stop()
	srv := &http.Server{
		Handler:           c.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	c.log.Info("fleet centre listening", "addr", c.bound, "sensors", len(c.sensors), "token", c.hasTok)
	if ready != nil {
		ready(c.bound)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("centre: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("centre: listen address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback(), nil
}

// Centre paths. The drill-down and the packet query keep the sensor API's
// paths, so a client of one sensor works against the centre.
const (
	pathSensors   = "/api/v1/fleet/sensors"
	pathExchanges = "/api/v1/fleet/exchanges"
	pathLatency   = "/api/v1/fleet/latency"
	pathTransit   = "/api/v1/fleet/transit"
	pathPackets   = "/api/v1/packets"
	pathMessages  = "/api/v1/messages/"
	pathMetrics   = "/metrics"
	pathSession   = "/ui/session"
)

func (c *Centre) route(w http.ResponseWriter, r *http.Request) {
	if c.opts.UI != nil && r.Method == http.MethodPost && (r.URL.Path == pathLogin || r.URL.Path == pathLogout) {
		setUIHeaders(w)
		if r.URL.Path == pathLogin {
			c.handleLogin(w, r)
		} else {
			c.handleLogout(w, r)
		}
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use GET", r.Method))
		return
	}
	p := r.URL.Path
	switch {
	case p == pathSensors:
		c.handleSensors(w, r)
	case p == pathExchanges:
		c.handleExchanges(w, r)
	case p == pathLatency:
		c.handleLatency(w, r)
	case p == pathTransit:
		c.handleTransit(w, r)
	case p == pathLocations:
		c.handleLocations(w, r)
	case p == pathAcross:
		c.handleAcross(w, r)
	case p == pathPackets:
		c.handlePackets(w, r)
	case p == pathMetrics:
		c.handleMetrics(w, r)
	case strings.HasPrefix(p, pathMessages) && strings.HasSuffix(p, "/packets"):
		c.handleDrillDown(w, r, strings.TrimSuffix(strings.TrimPrefix(p, pathMessages), "/packets"))
	case c.opts.UI != nil && (p == "/" || p == pathSession || strings.HasPrefix(p, "/ui/")):
		c.serveUI(w, r)
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %q (have %s, %s, %s, %s, %s, %s, %s{id}/packets?sensor=, %s)",
			p, pathSensors, pathExchanges, pathLatency, pathTransit, pathAcross, pathPackets, pathMessages, pathMetrics))
	}
}

// authenticate requires the bearer token, or a UI session's cookie, when a
// token is set; the UI's page, files and login are public (they hold no
// data).
func (c *Centre) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.hasTok || c.isPublicUI(r.URL.Path) || c.sessionOK(r) {
			next.ServeHTTP(w, r)
			return
		}
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], c.tokSum[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tapvault-centre"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required (Authorization: Bearer TOKEN), or a session from the page's login")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs one line per request: path and parameters (what an
// operator audits), never a payload or the token.
func (c *Centre) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			c.log.Info("centre request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery, "remote", r.RemoteAddr,
				"status", sw.status, "bytes", sw.bytes, "duration", time.Since(start).Round(time.Microsecond))
		}()
		next.ServeHTTP(sw, r)
	})
}

// writeError answers {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeErrorMissing(w, status, msg, nil)
}

// writeErrorMissing answers {"error": msg, "missing": [...]}.
func writeErrorMissing(w http.ResponseWriter, status int, msg string, missing []string) {
	v := struct {
		Error   string   `json:"error"`
		Missing []string `json:"missing,omitempty"`
	}{msg, missing}
	b, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Disposition")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeJSON(w http.ResponseWriter, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		writeError(w, http.StatusInternalServerError, "encode answer: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// metaError answers a ClickHouse failure: the metadata store is down or
// refused the statement. 503 for a connection failure, so a client retries.
func (c *Centre) metaError(w http.ResponseWriter, err error) {
	c.log.Warn("centre: metadata query failed", "err", err)
	status := http.StatusBadGateway
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || fleet.Retryable(err) {
		status = http.StatusServiceUnavailable
	}
	writeError(w, status, "the metadata store (ClickHouse) did not answer: "+err.Error())
}

// sensorTransport dials a sensor's fleet port with the centre's
// certificate, checking the sensor's against its name. There is no
// response-header timeout: a sensor sends its headers with the first
// packets it finds, which for a sparse filter over a large store may take
// long; the caller's context (the client leaving) ends a pull, and probes
// have their own overall timeout. The TLS dial is the fleet's
// (fleet.DialTLSContext): a sensor revoked while a connection to it is
// open (the probes keep one alive) is cut off, not only refused at the
// next handshake.
func sensorTransport(conf *tls.Config) *http.Transport {
	return &http.Transport{
		TLSClientConfig:     conf,
		DialTLSContext:      fleet.DialTLSContext(conf, &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}, 5*time.Second),
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     60 * time.Second,
	}
}
