package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestFleetHandler: the fleet port serves only requests whose TLS verified
// a client chain, and its ping answers at once while every query slot is
// taken (what keeps the centre from showing a busy sensor as down).
func TestFleetHandler(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{QueueWait: 50 * time.Millisecond, Token: "0123456789abcdef0123"}, false)
	h := e.srv.FleetHandler()
	do := func(path string, verified bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if verified {
			r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := do("/api/v1/stats", false); w.Code != http.StatusForbidden {
		t.Errorf("no verified client chain: got %d, want 403", w.Code)
	}
	// No token on the fleet port: the certificate is the credential.
	if w := do("/api/v1/stats", true); w.Code != http.StatusOK {
		t.Errorf("verified client, no token: got %d %s, want 200", w.Code, w.Body)
	}
	for range cap(e.srv.sem) {
		e.srv.sem <- struct{}{}
	}
	defer func() {
		for range cap(e.srv.sem) {
			<-e.srv.sem
		}
	}()
	start := time.Now()
	w := do(PathFleetPing, true)
	var p FleetPing
	if err := json.Unmarshal(w.Body.Bytes(), &p); w.Code != http.StatusOK || err != nil || p.QueriesRunning != p.MaxQueries || p.MaxQueries != DefaultMaxConcurrent {
		t.Errorf("ping with every slot taken: got %d %s, want 200 with %d of %d running", w.Code, w.Body, DefaultMaxConcurrent, DefaultMaxConcurrent)
	}
	if d := time.Since(start); d > 40*time.Millisecond {
		t.Errorf("ping took %s with the slots taken: it must not wait for one", d)
	}
	if w := do("/api/v1/stats", true); w.Code != http.StatusServiceUnavailable {
		t.Errorf("stats with every slot taken: got %d, want 503", w.Code)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ServeFleet(context.Background(), ln, &tls.Config{}); err == nil {
		t.Error("ServeFleet with a config that does not require client certificates: got no error")
	}
}
