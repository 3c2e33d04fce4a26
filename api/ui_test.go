package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"tapvault/query"
	"testing"
	"testing/fstest"
	"time"
)

var uiFS = fstest.MapFS{
	"index.html": {Data: []byte("<!doctype html><title>t</title>")},
	"app.js":     {Data: []byte("export {};")},
	".hidden":    {Data: []byte("x")},
}

const uiToken = "uuuuuuuuuuuuuuuuuuuu"

func newUIServer(t *testing.T, token string) *Server {
	t.Helper()
	srv, err := NewServer(&query.Store{}, ServerOptions{Addr: "127.0.0.1:0", Token: token, Logger: quietLog(), UI: uiFS})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

type uiReq struct {
	method, path, body string
	hdr                map[string]string
	cookie             *http.Cookie
}

func (s *Server) do(q uiReq) *httptest.ResponseRecorder {
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	r := httptest.NewRequest(q.method, "http://tv.example:8080"+q.path, body)
	for k, v := range q.hdr {
		r.Header.Set(k, v)
	}
	if q.cookie != nil {
		r.AddCookie(q.cookie)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w
}

var loginHdr = map[string]string{"Origin": "http://tv.example:8080", "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}

func login(t *testing.T, s *Server, tok string) (*httptest.ResponseRecorder, *http.Cookie) {
	t.Helper()
	w := s.do(uiReq{method: "POST", path: "/ui/login", body: `{"token":"` + tok + `"}`, hdr: loginHdr})
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			return w, c
		}
	}
	return w, nil
}

func TestUIWithoutAssetsIsTheAPIAsBefore(t *testing.T) {
	srv, err := NewServer(&query.Store{}, ServerOptions{Addr: "127.0.0.1:0", Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/ui/app.js", "/ui/session"} {
		if w := srv.do(uiReq{method: "GET", path: p}); w.Code != http.StatusNotFound {
			t.Errorf("GET %s without UI: got %d, want 404", p, w.Code)
		}
	}
	if _, err := NewServer(&query.Store{}, ServerOptions{Addr: "127.0.0.1:0", UI: uiFS, Handlers: map[string]http.Handler{"/ui/x": http.NotFoundHandler()}}); err == nil {
		t.Errorf("a handler on /ui/x was accepted beside the UI")
	}
	if _, err := NewServer(&query.Store{}, ServerOptions{Addr: "127.0.0.1:0", UI: fstest.MapFS{}}); err == nil {
		t.Errorf("UI assets without index.html were accepted")
	}
}

func TestUIAssetsAndHeaders(t *testing.T) {
	srv := newUIServer(t, uiToken)
	for _, c := range []struct {
		path string
		code int
		ct   string
	}{
		{"/", 200, "text/html; charset=utf-8"},
		{"/ui/app.js", 200, "text/javascript; charset=utf-8"},
		{"/ui/index.html", 404, ""},
		{"/ui/.hidden", 404, ""},
		{"/ui/../api/v1/stats", 404, ""},
		{"/ui/nothing.js", 404, ""},
	} {
		w := srv.do(uiReq{method: "GET", path: c.path})
		if w.Code != c.code {
			t.Errorf("GET %s (token set, none sent): got %d, want %d", c.path, w.Code, c.code)
			continue
		}
		h := w.Result().Header
		if c.ct != "" && h.Get("Content-Type") != c.ct {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, h.Get("Content-Type"), c.ct)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q", c.path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: frame %q nosniff %q", c.path, h.Get("X-Frame-Options"), h.Get("X-Content-Type-Options"))
		}
	}
	if w := srv.do(uiReq{method: "POST", path: "/"}); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: got %d, want 405", w.Code)
	}
}

func TestUILoginCookieAndCSRF(t *testing.T) {
	srv := newUIServer(t, uiToken)
	// No token, no data: the API and the events refuse.
	for _, p := range []string{"/api/v1/stats", "/ui/events", "/api/v1/messages"} {
		if w := srv.do(uiReq{method: "GET", path: p}); w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s without token or cookie: got %d, want 401", p, w.Code)
		}
	}
	if w := srv.do(uiReq{method: "GET", path: "/ui/session"}); !strings.Contains(w.Body.String(), `"authenticated":false`) || !strings.Contains(w.Body.String(), `"token_required":true`) {
		t.Errorf("session before login: %s", w.Body.String())
	}
	// A bad token is refused and gets no cookie.
	if w, c := login(t, srv, "wrongwrongwrongwrong"); w.Code != http.StatusUnauthorized || c != nil {
		t.Errorf("bad token: got %d, cookie %v; want 401 and none", w.Code, c)
	}
	// CSRF: the login needs this origin and a JSON body.
	for name, hdr := range map[string]map[string]string{
		"no Origin":       {"Content-Type": "application/json"},
		"other origin":    {"Origin": "http://evil.example", "Content-Type": "application/json"},
		"other scheme":    {"Origin": "https://tv.example:8080", "Content-Type": "application/json"},
		"cross-site":      {"Origin": "http://tv.example:8080", "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
		"form body":       {"Origin": "http://tv.example:8080", "Content-Type": "application/x-www-form-urlencoded"},
		"text/plain body": {"Origin": "http://tv.example:8080", "Content-Type": "text/plain"},
	} {
		w := srv.do(uiReq{method: "POST", path: "/ui/login", body: `{"token":"` + uiToken + `"}`, hdr: hdr})
		if w.Code != http.StatusForbidden || len(w.Result().Cookies()) != 0 {
			t.Errorf("login with %s: got %d, %d cookies; want 403 and none", name, w.Code, len(w.Result().Cookies()))
		}
	}
	if w := srv.do(uiReq{method: "GET", path: "/ui/login"}); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /ui/login: got %d, want 405", w.Code)
	}
	w, c := login(t, srv, uiToken)
	if w.Code != http.StatusOK || c == nil {
		t.Fatalf("good token: got %d, cookie %v; want 200 and a session cookie", w.Code, c)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.MaxAge != int(sessionTTL/time.Second) || len(c.Value) < 40 {
		t.Errorf("cookie: HttpOnly %v SameSite %v Path %q Secure %v MaxAge %d len %d; want true Strict / false (plain HTTP) %d >= 40",
			c.HttpOnly, c.SameSite, c.Path, c.Secure, c.MaxAge, len(c.Value), int(sessionTTL/time.Second))
	}
	// The cookie opens the API for reads, not for other methods.
	if w := srv.do(uiReq{method: "GET", path: "/api/v1/nothing", cookie: c}); w.Code != http.StatusNotFound {
		t.Errorf("GET with the cookie: got %d, want 404 (authenticated, unknown path)", w.Code)
	}
	if w := srv.do(uiReq{method: "POST", path: "/api/v1/nothing", cookie: c}); w.Code != http.StatusUnauthorized {
		t.Errorf("POST with the cookie: got %d, want 401 (the cookie is for reads)", w.Code)
	}
	forged := &http.Cookie{Name: sessionCookie, Value: strings.Repeat("A", len(c.Value))}
	if w := srv.do(uiReq{method: "GET", path: "/api/v1/nothing", cookie: forged}); w.Code != http.StatusUnauthorized {
		t.Errorf("GET with a forged cookie: got %d, want 401", w.Code)
	}
	if w := srv.do(uiReq{method: "GET", path: "/ui/session", cookie: c}); !strings.Contains(w.Body.String(), `"authenticated":true`) {
		t.Errorf("session after login: %s", w.Body.String())
	}
	// Logout ends the session (and is CSRF-checked too).
	if w := srv.do(uiReq{method: "POST", path: "/ui/logout", body: "{}", cookie: c, hdr: map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"}}); w.Code != http.StatusForbidden {
		t.Errorf("cross-origin logout: got %d, want 403", w.Code)
	}
	if w := srv.do(uiReq{method: "POST", path: "/ui/logout", body: "{}", cookie: c, hdr: loginHdr}); w.Code != http.StatusOK {
		t.Errorf("logout: got %d", w.Code)
	}
	if w := srv.do(uiReq{method: "GET", path: "/api/v1/nothing", cookie: c}); w.Code != http.StatusUnauthorized {
		t.Errorf("GET after logout: got %d, want 401", w.Code)
	}
	// A new token (SIGHUP) ends the sessions opened under the old one.
	_, c = login(t, srv, uiToken)
	if err := srv.SetToken("vvvvvvvvvvvvvvvvvvvv"); err != nil {
		t.Fatal(err)
	}
	if w := srv.do(uiReq{method: "GET", path: "/api/v1/nothing", cookie: c}); w.Code != http.StatusUnauthorized {
		t.Errorf("GET with a session of the old token: got %d, want 401", w.Code)
	}
	// Sessions expire.
	_, c = login(t, srv, "vvvvvvvvvvvvvvvvvvvv")
	srv.now = func() time.Time { return time.Now().Add(sessionTTL + time.Minute) }
	if w := srv.do(uiReq{method: "GET", path: "/api/v1/nothing", cookie: c}); w.Code != http.StatusUnauthorized {
		t.Errorf("GET with an expired session: got %d, want 401", w.Code)
	}
}

func TestUINoTokenOnLoopback(t *testing.T) {
	srv := newUIServer(t, "")
	if w := srv.do(uiReq{method: "GET", path: "/ui/session"}); !strings.Contains(w.Body.String(), `"authenticated":true`) || !strings.Contains(w.Body.String(), `"token_required":false`) {
		t.Errorf("session without a token: %s", w.Body.String())
	}
	if w, _ := login(t, srv, uiToken); w.Code != http.StatusBadRequest {
		t.Errorf("login where no token is set: got %d, want 400", w.Code)
	}
}

func TestUICookieSecureOverTLS(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	srv, err := NewServer(&query.Store{}, ServerOptions{Addr: "127.0.0.1:0", Token: uiToken, CertFile: certFile, KeyFile: keyFile, Logger: quietLog(), UI: uiFS})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "https://tv.example:8080/ui/login", strings.NewReader(`{"token":"`+uiToken+`"}`))
	r.Header.Set("Origin", "https://tv.example:8080")
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, r)
	cs := w.Result().Cookies()
	if w.Code != http.StatusOK || len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login over TLS: got %d, cookies %v; want 200 and one Secure HttpOnly SameSite=Strict cookie", w.Code, cs)
	}
}

// TestUIEvents reads the live stats stream: its events carry the store's
// stats, the same object /api/v1/stats answers, and pages share one read.
func TestUIEvents(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{UI: uiFS}, false)
	_, want := e.get(t, "/api/v1/stats", nil)
	read := func() string {
		resp, err := http.Get(e.hs.URL + "/ui/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
			t.Fatalf("events: status %d, Content-Type %q", resp.StatusCode, ct)
		}
		var got strings.Builder
		buf := make([]byte, 4096)
		for !strings.Contains(got.String(), "\n\n") {
			n, err := resp.Body.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				t.Fatalf("events: %v after %q", err, got.String())
			}
		}
		return got.String()
	}
	ev := read()
	if wantEv := "event: stats\ndata: " + string(want) + "\n"; ev != wantEv {
		t.Errorf("first event:\n%q\nwant\n%q", ev, wantEv)
	}
	// A second page within the second gets the same sample.
	sampled := func() time.Time {
		e.srv.stats.mu.Lock()
		defer e.srv.stats.mu.Unlock()
		return e.srv.stats.at
	}
	before := sampled()
	read()
	if sampled() != before {
		t.Errorf("a second page read the store again within %s", uiEventsEvery)
	}
}
