package chtest

import (
	"strings"
	"testing"
)

// TestStartStopStart checks the life cycle the outage tests rely on: data
// written before a stop is there after the restart, on the same URL, and the
// server refuses connections while stopped.
func TestStartStopStart(t *testing.T) {
	s := Start(t)
	if got := strings.TrimSpace(s.Query("SELECT 1")); got != "1" {
		t.Fatalf("SELECT 1: got %q, want 1", got)
	}
	s.Query("CREATE TABLE t (x UInt64) ENGINE = MergeTree ORDER BY x")
	s.Query("INSERT INTO t VALUES (1), (2), (3)")
	url := s.URL
	s.Stop()
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	if _, err := s.query("SELECT 1"); err == nil {
		t.Fatal("stopped server answered SELECT 1")
	}
	s.Start()
	if s.URL != url {
		t.Fatalf("URL after restart: got %s, want %s", s.URL, url)
	}
	if got := strings.TrimSpace(s.Query("SELECT count() FROM t")); got != "3" {
		t.Fatalf("rows after restart: got %s, want 3", got)
	}
}
