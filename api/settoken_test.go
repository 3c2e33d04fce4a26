package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"tapvault/query"
	"testing"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSetTokenSwapsTheToken(t *testing.T) {
	st := &query.Store{}
	srv, err := NewServer(st, ServerOptions{Addr: "127.0.0.1:0", Token: "aaaaaaaaaaaaaaaaaaaa", Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	code := func(tok string) int {
		r := httptest.NewRequest("GET", "/api/v1/nothing", nil)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, r)
		return w.Code
	}
	// 404 means authenticated (the path does not exist); 401 means refused.
	if got := code("aaaaaaaaaaaaaaaaaaaa"); got != http.StatusNotFound {
		t.Fatalf("old token before the swap: got %d, want 404", got)
	}
	if err := srv.SetToken("bbbbbbbbbbbbbbbbbbbb"); err != nil {
		t.Fatal(err)
	}
	if got := code("aaaaaaaaaaaaaaaaaaaa"); got != http.StatusUnauthorized {
		t.Fatalf("old token after the swap: got %d, want 401", got)
	}
	if got := code("bbbbbbbbbbbbbbbbbbbb"); got != http.StatusNotFound {
		t.Fatalf("new token: got %d, want 404", got)
	}
	if err := srv.SetToken("short"); err == nil {
		t.Fatalf("a 5-byte token was accepted")
	}
	if err := srv.SetToken(""); err != nil {
		t.Fatalf("dropping the token on loopback: %v", err)
	}
	if got := code(""); got != http.StatusNotFound {
		t.Fatalf("no token after dropping it: got %d, want 404", got)
	}
	off, err := NewServer(st, ServerOptions{Addr: "0.0.0.0:0", Token: "aaaaaaaaaaaaaaaaaaaa", Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := off.SetToken(""); err == nil {
		t.Fatalf("dropping the token off loopback was accepted")
	}
}
