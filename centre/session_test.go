package centre

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tapvault/fleet"
	"tapvault/web"
)

// noMeta is a ClickHouse with no rows: the login test needs none.
type noMeta struct{}

func (noMeta) QueryFunc(context.Context, string, func([]byte) error) error { return nil }

// TestCentreLogin: with a token, the page is public and everything else
// takes the bearer token or the session cookie the page's login gives;
// login is checked for same origin, the cookie is HttpOnly and
// SameSite=Strict, and logout ends it.
func TestCentreLogin(t *testing.T) {
	dir := t.TempDir()
	ca, err := fleet.InitCA(filepath.Join(dir, "ca"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Enroll(dir, "centre", fleet.IssueOptions{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Sensors: map[string]string{"sensor-a": "127.0.0.1:1"}}
	cfg.ClickHouse.URL = "http://127.0.0.1:1"
	cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA = filepath.Join(dir, "centre.crt"), filepath.Join(dir, "centre.key"), filepath.Join(dir, fleet.CACertFile)
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	const tok = "0123456789abcdef0123"
	if _, err := New(cfg, noMeta{}, Options{Addr: "0.0.0.0:8090", Logger: quiet()}); err == nil {
		t.Error("a non-loopback address without a token: got no error")
	}
	c, err := New(cfg, noMeta{}, Options{Token: tok, UI: web.FS(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(c.Handler())
	defer hs.Close()
	do := func(method, path, body string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, p := range []string{"/", "/ui/app.js", "/ui/fleet.js"} {
		if resp, _ := do("GET", p, "", nil); resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s without a token: got %d, want 200 with a CSP (the page is public)", p, resp.StatusCode)
		}
	}
	if _, b := do("GET", pathSession, "", nil); !strings.Contains(b, `"authenticated":false`) || !strings.Contains(b, `"token_required":true`) || !strings.Contains(b, `"fleet":true`) {
		t.Errorf("session: got %s", b)
	}
	if resp, _ := do("GET", pathSensors, "", nil); resp.StatusCode != 401 {
		t.Errorf("sensors without a token: got %d, want 401", resp.StatusCode)
	}
	// The view across sensors holds packet times: the same rule.
	if resp, _ := do("GET", pathAcross+"?id=00000000000000ff", "", nil); resp.StatusCode != 401 {
		t.Errorf("across without a token: got %d, want 401", resp.StatusCode)
	}
	if resp, _ := do("GET", pathSensors, "", map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != 200 {
		t.Errorf("sensors with the bearer token: got %d, want 200", resp.StatusCode)
	}
	json := map[string]string{"Content-Type": "application/json", "Origin": hs.URL}
	if resp, _ := do("POST", pathLogin, `{"token":"`+tok+`"}`, map[string]string{"Content-Type": "application/json"}); resp.StatusCode != 403 {
		t.Errorf("login without Origin: got %d, want 403", resp.StatusCode)
	}
	if resp, _ := do("POST", pathLogin, `{"token":"`+tok+`"}`, map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}); resp.StatusCode != 403 {
		t.Errorf("login from another origin: got %d, want 403", resp.StatusCode)
	}
	if resp, _ := do("POST", pathLogin, `{"token":"wrong-token-wrong-token"}`, json); resp.StatusCode != 401 {
		t.Errorf("login with a wrong token: got %d, want 401", resp.StatusCode)
	}
	resp, _ := do("POST", pathLogin, `{"token":"`+tok+`"}`, json)
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == sessionCookie {
			ck = k
		}
	}
	if resp.StatusCode != 200 || ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: got %d, cookie %+v, want 200 and an HttpOnly SameSite=Strict cookie", resp.StatusCode, ck)
	}
	withCookie := map[string]string{"Cookie": sessionCookie + "=" + ck.Value}
	if resp, b := do("GET", pathAcross+"?id=00000000000000ff", "", withCookie); resp.StatusCode == 401 || resp.StatusCode == 403 {
		t.Errorf("across with the cookie: got %d %s, past the login", resp.StatusCode, b)
	}
	if resp, _ := do("GET", pathSensors, "", withCookie); resp.StatusCode != 200 {
		t.Errorf("sensors with the session cookie: got %d, want 200", resp.StatusCode)
	}
	if _, b := do("GET", pathSession, "", withCookie); !strings.Contains(b, `"authenticated":true`) {
		t.Errorf("session with the cookie: got %s", b)
	}
	// The cookie opens reads only.
	if resp, _ := do("POST", pathSensors, "", withCookie); resp.StatusCode != 401 {
		t.Errorf("POST with the cookie: got %d, want 401", resp.StatusCode)
	}
	lo := map[string]string{"Content-Type": "application/json", "Origin": hs.URL, "Cookie": sessionCookie + "=" + ck.Value}
	if resp, _ := do("POST", pathLogout, "{}", lo); resp.StatusCode != 200 {
		t.Errorf("logout: got %d", resp.StatusCode)
	}
	if resp, _ := do("GET", pathSensors, "", withCookie); resp.StatusCode != 401 {
		t.Errorf("sensors after logout: got %d, want 401", resp.StatusCode)
	}
}
