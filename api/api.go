package api

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
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"tapvault/query"
	"time"
)

// The HTTP API (docs/api.md):
//
//	GET /api/v1/packets?filter=&from=&to=&format=pcap|pcapng&limit=   capture file, streamed
//	GET /api/v1/flows?filter=&from=&to=&limit=                        JSON {"flows": [...], counts}
//	GET /api/v1/stats                                                 JSON StoreStats
//
// Queries only read committed segment files, so they never block capture.
// What keeps them from competing with it for CPU and disk is twofold: bounded
// concurrency (a semaphore of MaxConcurrent slots), and OS priority: Store.Run
// executes each query on its own thread at nice 19 in the idle I/O class
// (priority.go), and a capture that serves the API raises GOMAXPROCS by the
// slots so a descheduled query never holds a scheduler P capture needs.
// Work per query is bounded by limit and by streaming (memory stays at one
// merge plus a 1 MiB output buffer), and it stops when the client goes away.

// API defaults.
const (
	DefaultAPIAddr       = "127.0.0.1:8080"
	DefaultMaxConcurrent = 2
	// DefaultShareScans is ServerOptions.ShareScans' default: a view's
	// requests leave the browser within a few milliseconds of each other.
	DefaultShareScans         = 15 * time.Millisecond
	DefaultQueueWait          = 2 * time.Second
	DefaultStreamWriteTimeout = 30 * time.Second
	// DefaultFlowLimit bounds a flows answer when the request gives no
	// limit: the answer is one JSON document built in memory.
	DefaultFlowLimit = 10000
	// MinTokenLen is the shortest bearer token accepted.
	MinTokenLen = 16

	apiReadHeaderTimeout = 10 * time.Second
	apiIdleTimeout       = 60 * time.Second
	apiShutdownWait      = 5 * time.Second
	// apiFlushEvery is how often a packet stream is pushed to the client
	// even if the output buffer is not full, so a sparse query shows
	// progress (tcpdump -r - prints as it goes).
	apiFlushEvery = time.Second
)

// ServerOptions configure the HTTP API. The zero value of every field means
// its default.
type ServerOptions struct {
	Addr string // listen address; default "127.0.0.1:8080"
	// Token is the bearer token clients must send. It is required when Addr
	// is not a loopback address; when set it is required on loopback too.
	Token string
	// MaxConcurrent bounds the queries running at once; default 2.
	MaxConcurrent int
	// QueueWait is how long a request waits for a query slot before it is
	// answered 503 with Retry-After; default 2 s.
	QueueWait time.Duration
	// ShareScans is how long a message scan waits for others of the
	// store to start before it reads, so that the requests a view makes
	// together read the records once (query.ScanShare); default
	// DefaultShareScans, negative: never shared.
	ShareScans time.Duration
	Logger     *slog.Logger // default slog.Default()
	// CertFile and KeyFile, when both are set, serve the API over TLS
	// (PEM files; TLS 1.2 at least). They are loaded by NewServer, so a
	// bad pair is an error at start, not at the first request.
	CertFile, KeyFile string
	// StreamWriteTimeout is the deadline of every write of a response (a
	// packet stream writes in chunks of up to 1 MiB), so a stalled reader
	// releases its query slot; default 30 s.
	StreamWriteTimeout time.Duration
	// Handlers are extra endpoints served by exact path (e.g. "/metrics"),
	// behind the same token check, request log and GET-only rule as the
	// API's own. A path must start with "/" and must not be one of the
	// API's.
	Handlers map[string]http.Handler
	// UI, when set, holds the web UI's assets (web.FS()): the page is
	// served at / and /ui/ (api/ui.go, docs/ui.md). Nil: no UI, and / is
	// an unknown path like any other.
	UI fs.FS
	// Peers are other capture points' stores on this machine, by name
	// (tapvault serve --peer NAME=DIR), for one exchange across the points
	// (api_across.go); PointName names this server's own store there.
	Peers     map[string]*query.Store
	PointName string
}

// Server serves the HTTP API for a store.
type Server struct {
	store    *query.Store
	opts     ServerOptions
	log      *slog.Logger
	sem      chan struct{}
	share    *query.ScanShare           // message scans that start together read once
	tok      atomic.Pointer[tokenState] // swapped by SetToken (a SIGHUP reload)
	tls      *tls.Config                // nil: plain HTTP
	handler  http.Handler
	now      func() time.Time
	sessions *sessions   // the UI's logins (api/ui.go)
	stats    statsSample // the UI's live stats, shared by its pages
	health   healthRing  // the store's health, sampled (api_health.go)

	mu    sync.Mutex
	bound string
	ready chan struct{} // closed once listening
}

// NewServer checks opts and returns a server for store. It refuses a
// non-loopback Addr without a Token.
func NewServer(store *query.Store, opts ServerOptions) (*Server, error) {
	if store == nil {
		return nil, errors.New("api: no store")
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAPIAddr
	}
	if opts.ShareScans == 0 {
		opts.ShareScans = DefaultShareScans
	}
	if opts.MaxConcurrent == 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.MaxConcurrent < 0 {
		return nil, fmt.Errorf("api: MaxConcurrent %d: must be positive", opts.MaxConcurrent)
	}
	if opts.QueueWait == 0 {
		opts.QueueWait = DefaultQueueWait
	}
	if opts.QueueWait < 0 {
		return nil, fmt.Errorf("api: QueueWait %s: must not be negative", opts.QueueWait)
	}
	if opts.StreamWriteTimeout == 0 {
		opts.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	if opts.StreamWriteTimeout < 0 {
		return nil, fmt.Errorf("api: StreamWriteTimeout %s: must not be negative", opts.StreamWriteTimeout)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := checkToken(opts.Token); err != nil {
		return nil, err
	}
	opts.Handlers = maps.Clone(opts.Handlers) // the caller's map may change later
	for path, h := range opts.Handlers {
		switch {
		case !strings.HasPrefix(path, "/"):
			return nil, fmt.Errorf("api: handler path %q: must start with /", path)
		case path == pathPackets || path == pathFlows || path == pathStats || strings.HasPrefix(path, pathMessages) || path == pathLatency || path == pathDiagnose || isUIAPIPath(path):
			return nil, fmt.Errorf("api: handler path %q: taken by the API", path)
		case h == nil:
			return nil, fmt.Errorf("api: handler path %q: nil handler", path)
		}
	}
	if err := checkUIHandlers(opts); err != nil {
		return nil, err
	}
	var tlsConf *tls.Config
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("api: TLS needs both a certificate and a key file")
	}
	if opts.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("api: load TLS certificate: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	loop, err := isLoopbackAddr(opts.Addr)
	if err != nil {
		return nil, err
	}
	if !loop && opts.Token == "" {
		return nil, fmt.Errorf("api: refusing to listen on %q without a token: packets are sensitive; set a token, or listen on 127.0.0.1", opts.Addr)
	}
	s := &Server{
		store: store,
		opts:  opts,
		log:   opts.Logger,
		sem:   make(chan struct{}, opts.MaxConcurrent),
		share: &query.ScanShare{Gather: max(0, opts.ShareScans)},
		now:   time.Now,
		bound: opts.Addr,
		ready: make(chan struct{}),

		sessions: newSessions(),
	}
	s.tok.Store(newTokenState(opts.Token))
	s.tls = tlsConf
	s.handler = s.logRequests(s.uiPublic(s.authenticate(s.uiPrivate(http.HandlerFunc(s.route)))))
	return s, nil
}

// tokenState is the bearer token in force: its SHA-256, compared in constant
// time whatever the length.
type tokenState struct {
	has bool
	sum [32]byte
}

func newTokenState(tok string) *tokenState {
	return &tokenState{has: tok != "", sum: sha256.Sum256([]byte(tok))}
}

func checkToken(tok string) error {
	if tok == "" {
		return nil
	}
	if len(tok) < MinTokenLen {
		return fmt.Errorf("api: the token is %d bytes; use at least %d (e.g. head -c 32 /dev/urandom | base64)", len(tok), MinTokenLen)
	}
	for _, c := range []byte(tok) {
		if c <= ' ' || c >= 0x7f {
			return errors.New("api: the token must be printable ASCII without spaces")
		}
	}
	return nil
}

// SetToken replaces the bearer token of a running server (a SIGHUP reload):
// requests from then on need the new one. Removing the token is refused when
// the server listens off loopback.
func (s *Server) SetToken(tok string) error {
	if err := checkToken(tok); err != nil {
		return err
	}
	if tok == "" {
		if loop, err := isLoopbackAddr(s.opts.Addr); err != nil || !loop {
			return fmt.Errorf("api: refusing to drop the token while listening on %q", s.opts.Addr)
		}
	}
	s.tok.Store(newTokenState(tok))
	return nil
}

// isLoopbackAddr reports whether a host:port listen address is a loopback
// one. An empty host (all interfaces) and host names other than localhost
// are not: a name may resolve to anything.
func isLoopbackAddr(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("api: listen address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false, nil
	}
	return ip.IsLoopback(), nil
}

// Handler returns the API's handler (authentication and the request log
// included), for mounting in another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Addr returns the address the server listens on once ListenAndServe has
// bound it (the real port when Addr asked for port 0), else Addr as given.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// ListenAndServe serves until ctx is done, then shuts down: it stops
// accepting, cancels running queries (their request contexts derive from
// ctx) and waits a bounded time for responses to end before closing the
// connections. It returns nil after a shutdown caused by ctx.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("api: listen: %w", err)
	}
	// A name such as localhost is checked again on the address it bound.
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() && !s.tok.Load().has {
		ln.Close()
		return fmt.Errorf("api: %q bound the non-loopback address %s and no token is set", s.opts.Addr, ap)
	}
	s.mu.Lock()
	s.bound = ln.Addr().String()
	s.mu.Unlock()
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: apiReadHeaderTimeout,
		// No ReadTimeout: requests have no body, and its deadline would
		// cancel a long download's context. No WriteTimeout: streams set a
		// deadline per write instead.
		IdleTimeout:    apiIdleTimeout,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	stopHealth := s.startHealth(ctx)
	defer stopHealth()
	go func() { errc <- srv.Serve(ln) }()
	close(s.ready)
	s.log.Info("api listening", "addr", s.bound, "tls", s.tls != nil, "token", s.tok.Load().has, "max_concurrent", s.opts.MaxConcurrent)

	select {
	case err := <-errc:
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), apiShutdownWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("api shutdown did not finish in time; closing connections", "wait", apiShutdownWait, "err", err)
		srv.Close()
	}
	<-errc // http.ErrServerClosed
	return nil
}

// statusClientGone is logged (never sent) for a request whose client left
// before any answer: nginx's 499.
const statusClientGone = 499

// reqInfo is what the request log line reports beyond the status.
type reqInfo struct {
	status  int
	packets uint64
	bytes   int64
	err     string
}

type reqInfoKey struct{}

func infoOf(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// logWriter records the status a handler sent. Unwrap lets
// http.ResponseController reach the connection's deadlines and Flush.
type logWriter struct {
	http.ResponseWriter
	ri *reqInfo
}

func (w *logWriter) WriteHeader(code int) {
	if w.ri.status == 0 {
		w.ri.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(b []byte) (int, error) {
	if w.ri.status == 0 {
		w.ri.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.ri.bytes += int64(n)
	return n, err
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs one line per request: never a payload, never the token.
// The filter and times are logged: they are what an operator audits.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		ri := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri))
		defer func() {
			attrs := []any{"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr}
			q := r.URL.Query()
			for _, k := range []string{"filter", "expr", "by", "tiers", "from", "to", "format", "limit"} {
				if v, ok := q[k]; ok {
					attrs = append(attrs, k, strings.Join(v, ","))
				}
			}
			status := ri.status
			if status == 0 {
				status = http.StatusOK
			}
			attrs = append(attrs, "status", status, "duration", s.now().Sub(start).Round(time.Microsecond),
				"packets", ri.packets, "bytes", ri.bytes)
			if ri.err != "" {
				attrs = append(attrs, "err", ri.err)
			}
			s.log.Info("api request", attrs...)
		}()
		next.ServeHTTP(&logWriter{ResponseWriter: w, ri: ri}, r)
	})
}

// authenticate requires the bearer token, when one is set, before anything
// else (so an unauthenticated client learns nothing, not even which paths
// exist).
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts := s.tok.Load()
		if !ts.has || s.sessionOK(r) {
			next.ServeHTTP(w, r)
			return
		}
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tapvault"`)
			writeError(w, r, http.StatusUnauthorized, "a bearer token is required (Authorization: Bearer TOKEN)")
			return
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(sum[:], ts.sum[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tapvault", error="invalid_token"`)
			writeError(w, r, http.StatusUnauthorized, "invalid bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// API paths.
const (
	pathPackets = "/api/v1/packets"
	pathFlows   = "/api/v1/flows"
	pathStats   = "/api/v1/stats"
)

// route dispatches by exact path; it answers unknown paths and methods in
// JSON, which http.ServeMux would answer in plain text.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	var h func(http.ResponseWriter, *http.Request)
	switch r.URL.Path {
	case pathPackets:
		h = s.handlePackets
	case pathFlows:
		h = s.handleFlows
	case pathStats:
		h = s.handleStats
	case pathMessages:
		h = s.handleMessages
	case pathLatency:
		h = s.handleLatency
	case pathDiagnose:
		h = s.handleDiagnose
	default:
		if uh := s.uiAPIRoute(r.URL.Path); uh != nil {
			h = uh
			break
		}
		if r.URL.Path == pathPeers {
			h = s.handlePeers
			break
		}
		if id, ok := messageAcrossID(r.URL.Path); ok {
			h = func(w http.ResponseWriter, r *http.Request) { s.handleAcross(w, r, id) }
			break
		}
		if id, ok := messagePacketsID(r.URL.Path); ok {
			h = func(w http.ResponseWriter, r *http.Request) { s.handleMessagePackets(w, r, id) }
			break
		}
		if extra, ok := s.opts.Handlers[r.URL.Path]; ok {
			h = extra.ServeHTTP
			break
		}
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("no such endpoint %q (have %s, %s, %s, %s, %s, %s/{id}/packets, %s)", r.URL.Path, pathPackets, pathFlows, pathStats, pathMessages, pathLatency, pathMessages, pathDiagnose))
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use GET", r.Method))
		return
	}
	h(w, r)
}

// writeError answers {"error": msg}.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	infoOf(r).err = msg
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Disposition")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeJSON answers v as JSON, within one write deadline.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		writeError(w, r, http.StatusInternalServerError, "encode answer: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	setWriteDeadline(http.NewResponseController(w), s.opts.StreamWriteTimeout)
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// setWriteDeadline moves the connection's write deadline to now+d. A writer
// without deadlines (a test recorder, a server that mounts Handler behind
// something else) is served without one.
func setWriteDeadline(rc *http.ResponseController, d time.Duration) {
	_ = rc.SetWriteDeadline(time.Now().Add(d))
}

// params are a request's checked query parameters.
type params struct {
	req    query.Request
	format string
}

// parseParams checks the query string: only the allowed names, each at most
// once, then filter, times, format and limit. Nothing is read before this
// passes.
func (s *Server) parseParams(r *http.Request, allowed ...string) (params, error) {
	p := params{req: query.Request{From: query.MinTime, To: query.MaxTime}, format: "pcap"}
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return p, err
	}
	for k, v := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok && len(allowed) == 0 {
			return p, fmt.Errorf("unknown parameter %q (this endpoint takes none)", k)
		}
		if !ok {
			return p, fmt.Errorf("unknown parameter %q (this endpoint takes: %s)", k, strings.Join(allowed, ", "))
		}
		if len(v) > 1 {
			return p, fmt.Errorf("parameter %q given %d times", k, len(v))
		}
	}
	get := func(k string) (string, bool) {
		v, ok := q[k]
		if !ok {
			return "", false
		}
		return v[0], true
	}
	if f, ok := get("filter"); ok {
		if p.req.Filter, err = query.ParseFilter(f); err != nil {
			return p, err // a *FilterError: its message carries the caret line
		}
	}
	// Zone-less times are read as UTC: the server's zone means nothing to a
	// remote client.
	now := s.now().UTC()
	if v, ok := get("from"); ok {
		if p.req.From, err = query.ParseTime(v, now); err != nil {
			return p, fmt.Errorf("from: %w", err)
		}
	}
	if v, ok := get("to"); ok {
		if p.req.To, err = query.ParseTime(v, now); err != nil {
			return p, fmt.Errorf("to: %w", err)
		}
	}
	if p.req.From > p.req.To {
		return p, fmt.Errorf("from (%d ns) is after to (%d ns)", p.req.From, p.req.To)
	}
	if v, ok := get("format"); ok {
		if v != "pcap" && v != "pcapng" {
			return p, fmt.Errorf("format %q: want pcap or pcapng", v)
		}
		p.format = v
	}
	if v, ok := get("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, fmt.Errorf("limit %q: want a whole number >= 0 (0: no limit)", v)
		}
		p.req.Limit = n
	}
	return p, nil
}

// parseQuery is url.ParseQuery, but refuses a malformed query string instead
// of keeping the part before the error.
func parseQuery(raw string) (map[string][]string, error) {
	q := map[string][]string{}
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		var err error
		if k, err = unescape(k); err != nil {
			return nil, err
		}
		if v, err = unescape(v); err != nil {
			return nil, err
		}
		q[k] = append(q[k], v)
	}
	return q, nil
}

func unescape(s string) (string, error) {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return "", fmt.Errorf("malformed query string: %w", err)
	}
	return u, nil
}

// acquire takes a query slot, waiting up to QueueWait. When it fails it has
// answered (503), or the client is gone.
func (s *Server) acquire(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	release = func() { <-s.sem }
	select {
	case s.sem <- struct{}{}:
		return release, true
	default:
	}
	t := time.NewTimer(s.opts.QueueWait)
	defer t.Stop()
	select {
	case s.sem <- struct{}{}:
		return release, true
	case <-t.C:
		secs := int((s.opts.QueueWait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		writeError(w, r, http.StatusServiceUnavailable, fmt.Sprintf("busy: %d queries running; retry later", s.opts.MaxConcurrent))
		return nil, false
	case <-r.Context().Done():
		ri := infoOf(r)
		ri.status, ri.err = statusClientGone, "client gone while queued"
		return nil, false
	}
}

// packetStream writes a query's packets to the response. Headers are sent
// with the first packet, so an error before it is still a JSON answer. It is
// the io.Writer under the capture-file writer: every chunk written moves the
// write deadline forward, so a reader that stops reading fails the write
// within StreamWriteTimeout and the query ends.
type packetStream struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	timeout   time.Duration
	format    string
	name      string // download file name
	pw        query.PacketWriter
	linkType  int
	lastFlush time.Time
	sent      bool // the status line is sent: an error can only cut the stream
}

func (ps *packetStream) Write(b []byte) (int, error) {
	setWriteDeadline(ps.rc, ps.timeout)
	if !ps.sent {
		ps.sent = true
		ps.w.WriteHeader(http.StatusOK)
	}
	return ps.w.Write(b)
}

// start sets the headers and writes the file header into the output buffer.
// linkType fixes a pcap file's link type. Nothing reaches the client before
// the buffer first fills or is flushed, so an error within the first 1 MiB
// is still answered with a status and a JSON message.
func (ps *packetStream) start(linkType uint16) error {
	h := ps.w.Header()
	if ps.format == "pcapng" {
		h.Set("Content-Type", "application/x-pcapng")
	} else {
		h.Set("Content-Type", "application/vnd.tcpdump.pcap")
	}
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", ps.name+"."+ps.format))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	var err error
	if ps.format == "pcapng" {
		ps.pw, err = query.NewPcapngWriter(ps)
	} else {
		ps.linkType = int(linkType)
		ps.pw, err = query.NewPcapWriter(ps, linkType, 0) // 0: the maximum snaplen, 262144
	}
	ps.lastFlush = time.Now()
	return err
}

func (ps *packetStream) write(p *query.Packet) error {
	if ps.pw == nil {
		if err := ps.start(p.LinkType); err != nil {
			return err
		}
	}
	if err := ps.pw.WritePacket(p.TS, p.WireLen, p.LinkType, p.Iface, p.Data); err != nil {
		if errors.Is(err, query.ErrMixedLinkTypes) {
			return &mixedLinkError{first: ps.linkType, then: int(p.LinkType)}
		}
		return err
	}
	return nil
}

// mixedLinkError is ErrMixedLinkTypes in the API's words.
type mixedLinkError struct{ first, then int }

func (e *mixedLinkError) Error() string {
	return fmt.Sprintf("the selected packets mix link types (%d, then %d) and a pcap file holds one: use format=pcapng", e.first, e.then)
}

func (e *mixedLinkError) Unwrap() error { return query.ErrMixedLinkTypes }

func (ps *packetStream) flush() error {
	if err := ps.pw.Flush(); err != nil {
		return err
	}
	setWriteDeadline(ps.rc, ps.timeout)
	if err := ps.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	ps.lastFlush = time.Now()
	return nil
}

func (s *Server) handlePackets(w http.ResponseWriter, r *http.Request) {
	p, err := s.parseParams(r, "filter", "from", "to", "format", "limit")
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	ri := infoOf(r)
	ctx := r.Context()
	ps := &packetStream{
		w: w, rc: http.NewResponseController(w), timeout: s.opts.StreamWriteTimeout,
		format: p.format, name: "tapvault-" + s.now().UTC().Format("20060102T150405Z"),
	}
	var n uint64
	res, err := s.run(ctx, p.req, func(pk *query.Packet) error {
		if err := ps.write(pk); err != nil {
			return err
		}
		n++
		if n%256 == 0 && time.Since(ps.lastFlush) >= apiFlushEvery {
			return ps.flush()
		}
		return nil
	})
	ri.packets = n
	if err == nil && ps.pw == nil {
		// No packet: still a valid, empty capture file (Ethernet for pcap).
		err = ps.start(1)
	}
	if err == nil {
		err = ps.flush()
	}
	if res.SkippedCorrupt > 0 {
		s.log.Warn("api query skipped corrupt blocks; run tapvault verify", "blocks", res.SkippedCorrupt)
	}
	if err == nil {
		return
	}
	ri.err = err.Error()
	if !ps.sent {
		switch {
		case ctx.Err() != nil:
			ri.status = statusClientGone // nobody to answer
		case errors.Is(err, query.ErrMixedLinkTypes):
			writeError(w, r, http.StatusUnprocessableEntity, err.Error())
		default:
			writeError(w, r, http.StatusInternalServerError, "query: "+err.Error())
		}
		return
	}
	if ctx.Err() == nil {
		s.log.Error("api packet stream failed after it started; the client gets a cut-short transfer", "err", err)
	}
	// The status is sent: abort the response so the client sees a broken
	// transfer, never a capture file that merely looks complete.
	panic(http.ErrAbortHandler)
}

// run is Store.Run bound to the request's context: it stops when the
// client goes away, whether or not packets match.
func (s *Server) run(ctx context.Context, req query.Request, fn func(p *query.Packet) error) (query.Result, error) {
	return s.store.Run(ctx, req, fn)
}

// FlowsAnswer is the JSON answer of /api/v1/flows.
type FlowsAnswer struct {
	Flows     []query.FlowRecord `json:"flows"`
	Count     int                `json:"count"`     // len(Flows)
	Truncated bool               `json:"truncated"` // more flows matched than limit
	Packets   uint64             `json:"packets"`   // both directions, all flows listed
	Bytes     uint64             `json:"bytes"`
}

func (s *Server) handleFlows(w http.ResponseWriter, r *http.Request) {
	p, err := s.parseParams(r, "filter", "from", "to", "limit")
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if _, ok := r.URL.Query()["limit"]; !ok {
		p.req.Limit = DefaultFlowLimit
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	limit := p.req.Limit
	if limit > 0 && limit < int(^uint(0)>>1) {
		p.req.Limit = limit + 1 // one more tells whether there are more
	}
	flows, err := s.store.Flows(p.req)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "flows: "+err.Error())
		return
	}
	a := FlowsAnswer{Flows: flows}
	if limit > 0 && len(flows) > limit {
		a.Flows, a.Truncated = flows[:limit], true
	}
	if a.Flows == nil {
		a.Flows = []query.FlowRecord{}
	}
	a.Count = len(a.Flows)
	for i := range a.Flows {
		a.Packets += a.Flows[i].PktsAB + a.Flows[i].PktsBA
		a.Bytes += a.Flows[i].BytesAB + a.Flows[i].BytesBA
	}
	infoOf(r).packets = a.Packets
	s.writeJSON(w, r, &a)
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	if _, err := s.parseParams(r); err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	st, err := s.store.Stats()
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "stats: "+err.Error())
		return
	}
	s.writeJSON(w, r, &st)
}
