package centre

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"tapvault/api"
)

// The centre's UI login: the same protocol as a sensor's UI (api/ui.go,
// docs/ui.md), so app.js logs in to either unchanged. The page and its
// files are public (they hold no data); POST /ui/login exchanges the token
// for a session cookie (HttpOnly, SameSite=Strict, Secure over TLS, 12 h),
// checked for same origin; the cookie then opens GET requests only, as the
// bearer token does.
const (
	pathLogin     = "/ui/login"
	pathLogout    = "/ui/logout"
	sessionCookie = "tapvault_session"
	sessionTTL    = 12 * time.Hour
	maxSessions   = 1024
	maxLoginBody  = 4 << 10
)

// sessionTable maps the SHA-256 of a cookie's value (a memory dump gives
// no usable cookie) to its expiry.
type sessionTable struct {
	mu sync.Mutex
	m  map[[32]byte]time.Time
}

func (st *sessionTable) open(now time.Time) (string, bool) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	val := base64.RawURLEncoding.EncodeToString(raw[:])
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.m == nil {
		st.m = map[[32]byte]time.Time{}
	}
	for k, exp := range st.m {
		if !now.Before(exp) {
			delete(st.m, k)
		}
	}
	if len(st.m) >= maxSessions {
		return "", false
	}
	st.m[sha256.Sum256([]byte(val))] = now.Add(sessionTTL)
	return val, true
}

func (st *sessionTable) valid(val string, now time.Time) bool {
	if val == "" {
		return false
	}
	k := sha256.Sum256([]byte(val))
	st.mu.Lock()
	defer st.mu.Unlock()
	exp, ok := st.m[k]
	if ok && !now.Before(exp) {
		delete(st.m, k)
		ok = false
	}
	return ok
}

func (st *sessionTable) close(val string) {
	st.mu.Lock()
	delete(st.m, sha256.Sum256([]byte(val)))
	st.mu.Unlock()
}

// sessionOK reports whether a GET or HEAD carries a live session cookie.
func (c *Centre) sessionOK(r *http.Request) bool {
	if c.opts.UI == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	ck, err := r.Cookie(sessionCookie)
	return err == nil && c.sessions.valid(ck.Value, c.now())
}

// isPublicUI is what is served before authentication: the page, its
// files, the session state, login and logout.
func (c *Centre) isPublicUI(p string) bool {
	return c.opts.UI != nil && (p == "/" || strings.HasPrefix(p, "/ui/"))
}

func (c *Centre) handleLogin(w http.ResponseWriter, r *http.Request) {
	if err := api.SameOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
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
		writeError(w, http.StatusBadRequest, `want a JSON body {"token": "..."}`)
		return
	}
	if !c.hasTok {
		writeError(w, http.StatusBadRequest, "this centre needs no token")
		return
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(body.Token)))
	if subtle.ConstantTimeCompare(sum[:], c.tokSum[:]) != 1 {
		writeError(w, http.StatusUnauthorized, "invalid token")
		return
	}
	val, ok := c.sessions.open(c.now())
	if !ok {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many sessions (%d); log out elsewhere or wait for them to expire", maxSessions))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: val, Path: "/", MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	writeJSON(w, map[string]bool{"token_required": true, "authenticated": true, "fleet": true})
}

func (c *Centre) handleLogout(w http.ResponseWriter, r *http.Request) {
	if err := api.SameOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.sessions.close(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	writeJSON(w, map[string]bool{"token_required": c.hasTok, "authenticated": false, "fleet": true})
}
