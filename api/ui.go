package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"tapvault/query"
)

// The web UI (docs/ui.md), served when ServerOptions.UI holds its assets
// (package web):
//
//	GET  /                 the page (index.html)                   public
//	GET  /ui/{file}        its modules and style sheet             public
//	GET  /ui/session       {"token_required", "authenticated", "metrics"}  public
//	POST /ui/login         {"token": "..."} -> session cookie      public, CSRF-checked
//	POST /ui/logout        drops the session                       public, CSRF-checked
//	GET  /ui/events        store stats as server-sent events       token or cookie
//
// The assets hold no data, so they are served before authentication: a
// browser off loopback needs the page to type its token into. Everything
// else, the API included, takes the bearer token or the session cookie the
// token was exchanged for.
const (
	pathUIPrefix  = "/ui/"
	pathUISession = "/ui/session"
	pathUILogin   = "/ui/login"
	pathUILogout  = "/ui/logout"
	pathUIEvents  = "/ui/events"

	sessionCookie = "tapvault_session"
	// sessionTTL is how long a session lives; the token is asked for again
	// after it.
	sessionTTL = 12 * time.Hour
	// maxSessions bounds the session table: a login past it is refused
	// (503) until sessions expire or log out.
	maxSessions = 1024
	// uiEventsEvery is how often /ui/events sends the store's stats.
	uiEventsEvery = time.Second
	maxLoginBody  = 4 << 10
)

// uiCSP is the Content-Security-Policy of every UI answer: scripts and
// styles only from this origin's files (no inline code, no eval), requests
// only to this origin, no frames, no plugins, no base-URI games.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// sessions is the table of live UI sessions: the SHA-256 of the cookie's
// value (so a dump of memory does not give usable cookies) to the session.
type sessions struct {
	mu sync.Mutex
	m  map[[32]byte]session
}

// session is one logged-in browser. tok is the token state it was opened
// with: a SetToken (SIGHUP) ends every session opened under the old token.
type session struct {
	expires time.Time
	tok     *tokenState
}

func newSessions() *sessions { return &sessions{m: map[[32]byte]session{}} }

// open makes a session under tok and returns the cookie value; false when
// the table is full.
func (ss *sessions) open(tok *tokenState, now time.Time) (string, bool) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	val := base64.RawURLEncoding.EncodeToString(raw[:])
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for k, s := range ss.m {
		if !now.Before(s.expires) {
			delete(ss.m, k)
		}
	}
	if len(ss.m) >= maxSessions {
		return "", false
	}
	ss.m[sha256.Sum256([]byte(val))] = session{expires: now.Add(sessionTTL), tok: tok}
	return val, true
}

// valid reports whether val is a live session opened under tok.
func (ss *sessions) valid(val string, tok *tokenState, now time.Time) bool {
	if val == "" {
		return false
	}
	k := sha256.Sum256([]byte(val))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[k]
	if !ok {
		return false
	}
	if !now.Before(s.expires) || s.tok != tok {
		delete(ss.m, k)
		return false
	}
	return true
}

func (ss *sessions) close(val string) {
	k := sha256.Sum256([]byte(val))
	ss.mu.Lock()
	delete(ss.m, k)
	ss.mu.Unlock()
}

// checkUIHandlers refuses extra handlers on the UI's paths.
func checkUIHandlers(opts ServerOptions) error {
	if opts.UI == nil {
		return nil
	}
	for p := range opts.Handlers {
		if p == "/" || strings.HasPrefix(p, pathUIPrefix) {
			return fmt.Errorf("api: handler path %q: taken by the UI", p)
		}
	}
	if _, err := fs.Stat(opts.UI, "index.html"); err != nil {
		return fmt.Errorf("api: UI assets: %w", err)
	}
	return nil
}

// sessionOK reports whether r carries a live session cookie. Only reads
// (GET, HEAD) may use the cookie: everything the API and the UI serve under
// authentication is a read, and a write would need its own CSRF check.
func (s *Server) sessionOK(r *http.Request) bool {
	if s.opts.UI == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	return s.sessions.valid(c.Value, s.tok.Load(), s.now())
}

// uiPublic serves the UI's public paths (the page, its files, the session
// state, login and logout) and passes everything else to next (the
// authenticated API).
func (s *Server) uiPublic(next http.Handler) http.Handler {
	if s.opts.UI == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == "/":
			uiHeaders(w)
			if r.TLS != nil {
				// Browsers ignore it, with a console error, on plain
				// HTTP off loopback.
				w.Header().Set("Cross-Origin-Opener-Policy", "same-origin")
			}
			s.serveAsset(w, r, "index.html")
		case p == pathUISession:
			uiHeaders(w)
			if !onlyMethod(w, r, http.MethodGet) {
				return
			}
			ts := s.tok.Load()
			_, metrics := s.opts.Handlers["/metrics"]
			s.writeJSON(w, r, map[string]bool{"token_required": ts.has, "authenticated": !ts.has || s.sessionOK(r), "metrics": metrics})
		case p == pathUILogin:
			uiHeaders(w)
			s.handleLogin(w, r)
		case p == pathUILogout:
			uiHeaders(w)
			s.handleLogout(w, r)
		case p == pathUIEvents:
			next.ServeHTTP(w, r) // authenticated: uiPrivate serves it
		case strings.HasPrefix(p, pathUIPrefix):
			uiHeaders(w)
			name := strings.TrimPrefix(p, pathUIPrefix)
			if name == "" || name == "index.html" || !fs.ValidPath(name) || strings.HasPrefix(path.Base(name), ".") {
				writeError(w, r, http.StatusNotFound, fmt.Sprintf("no such UI file %q", p))
				return
			}
			s.serveAsset(w, r, name)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// uiPrivate serves the UI's authenticated paths and passes the rest to
// next (the API's router).
func (s *Server) uiPrivate(next http.Handler) http.Handler {
	if s.opts.UI == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != pathUIEvents {
			next.ServeHTTP(w, r)
			return
		}
		uiHeaders(w)
		if onlyMethod(w, r, http.MethodGet) {
			s.handleEvents(w, r)
		}
	})
}

// uiHeaders sets the security headers of every UI answer.
func uiHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func onlyMethod(w http.ResponseWriter, r *http.Request, m string) bool {
	if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	w.Header().Set("Allow", m)
	writeError(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use %s", r.Method, m))
	return false
}

// serveAsset answers one embedded file. The assets change only with the
// binary, so they are cached no longer than a reload: no-cache makes the
// browser revalidate, and the ETag (a hash of the content) answers 304.
func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	if !onlyMethod(w, r, http.MethodGet) {
		return
	}
	b, err := fs.ReadFile(s.opts.UI, name)
	if err != nil {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("no such UI file %q", "/ui/"+name))
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // not left to the system's mime table
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".svg":
		ct = "image/svg+xml"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	sum := sha256.Sum256(b)
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", `"`+base64.RawURLEncoding.EncodeToString(sum[:12])+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// SameOrigin is the CSRF check of the UI's POSTs: the browser's Origin
// header must name this server (scheme and host), and the body must be
// JSON, which a cross-site HTML form cannot send and a cross-site fetch
// cannot send without a CORS preflight this server never grants. With the
// SameSite=Strict cookie, that is three independent guards. The fleet
// centre's login uses it too.
func SameOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		return errors.New("no Origin header: log in from the page")
	}
	u, err := url.Parse(o)
	if err != nil {
		return fmt.Errorf("bad Origin %q", o)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if u.Scheme != scheme || !strings.EqualFold(u.Host, r.Host) {
		return fmt.Errorf("cross-origin request from %q refused", o)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return fmt.Errorf("cross-site request (Sec-Fetch-Site %s) refused", site)
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return errors.New("the body must be application/json")
	}
	return nil
}

// handleLogin exchanges the token for a session cookie: HttpOnly (scripts
// never see it), SameSite=Strict (no other site's page sends it), Secure
// over TLS, Path=/ and a lifetime of sessionTTL.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !onlyMethod(w, r, http.MethodPost) {
		return
	}
	if err := SameOrigin(r); err != nil {
		writeError(w, r, http.StatusForbidden, err.Error())
		return
	}
	var body struct {
		Token string `json:"token"`
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLoginBody))
	if err == nil {
		err = json.Unmarshal(b, &body)
	}
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "want a JSON body {\"token\": \"...\"}")
		return
	}
	ts := s.tok.Load()
	if !ts.has {
		writeError(w, r, http.StatusBadRequest, "this server needs no token")
		return
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(body.Token)))
	if subtle.ConstantTimeCompare(sum[:], ts.sum[:]) != 1 {
		writeError(w, r, http.StatusUnauthorized, "invalid token")
		return
	}
	val, ok := s.sessions.open(ts, s.now())
	if !ok {
		writeError(w, r, http.StatusServiceUnavailable, fmt.Sprintf("too many sessions (%d); log out elsewhere or wait for them to expire", maxSessions))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: val, Path: "/", MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, Secure: s.tls != nil || r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	s.writeJSON(w, r, map[string]bool{"token_required": true, "authenticated": true})
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if !onlyMethod(w, r, http.MethodPost) {
		return
	}
	if err := SameOrigin(r); err != nil {
		writeError(w, r, http.StatusForbidden, err.Error())
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.close(c.Value)
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.tls != nil || r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	s.writeJSON(w, r, map[string]bool{"token_required": s.tok.Load().has, "authenticated": false})
}

// statsSample is the store's stats as last read for /ui/events, shared by
// every open page: however many are open, the store is read about once per
// uiEventsEvery.
type statsSample struct {
	mu  sync.Mutex
	at  time.Time
	st  query.StoreStats
	err error
}

// get returns the sample, read again (in a query slot) when older than
// uiEventsEvery; ok is false when it is stale and every slot is busy.
func (ss *statsSample) get(s *Server) (st query.StoreStats, ok bool, err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.at.IsZero() && time.Since(ss.at) < uiEventsEvery*9/10 {
		return ss.st, true, ss.err
	}
	select {
	case s.sem <- struct{}{}:
	default:
		return st, false, nil
	}
	ss.st, ss.err = s.store.Stats()
	<-s.sem
	ss.at = time.Now()
	return ss.st, true, ss.err
}

// handleEvents streams the store's stats (the object of /api/v1/stats) as
// server-sent events, one "stats" event a second. The stats are read in a
// query slot taken for that read only, and shared between the pages open
// (statsSample). A busy server skips a tick rather than queue.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	t := time.NewTicker(uiEventsEvery)
	defer t.Stop()
	var buf bytes.Buffer
	for {
		buf.Reset()
		st, ok, err := s.stats.get(s)
		switch {
		case !ok:
			buf.WriteString(": busy\n\n")
		case err != nil:
			fmt.Fprintf(&buf, "event: error\ndata: %s\n\n", jsonString(err.Error()))
		default:
			buf.WriteString("event: stats\ndata: ")
			if err := json.NewEncoder(&buf).Encode(&st); err != nil { // ends in '\n'
				panic("BUG: encode stats: " + err.Error())
			}
			buf.WriteString("\n")
		}
		setWriteDeadline(rc, s.opts.StreamWriteTimeout)
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func jsonString(v string) string {
	b, _ := json.Marshal(v)
	return string(b)
}
