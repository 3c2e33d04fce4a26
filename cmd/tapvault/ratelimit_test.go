package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRateLimitedLogs(t *testing.T) {
	var buf bytes.Buffer
	h := newRateLimited(slog.NewTextHandler(&buf, nil), time.Minute, 3)
	clock := time.Unix(1000, 0)
	h.now = func() time.Time { return clock }
	log := slog.New(h).With("component", "writer")
	for i := 0; i < 100; i++ {
		log.Error("write segment failed", "i", i)
		log.Info("progress", "i", i) // below warning: never limited
	}
	log.Warn("another message")
	if got := strings.Count(buf.String(), "write segment failed"); got != 3 {
		t.Fatalf("within a period: got %d copies, want the burst of 3", got)
	}
	if got := strings.Count(buf.String(), "msg=progress"); got != 100 {
		t.Fatalf("info records: got %d, want all 100", got)
	}
	if !strings.Contains(buf.String(), "another message") {
		t.Fatalf("a different message was suppressed too")
	}
	buf.Reset()
	clock = clock.Add(61 * time.Second)
	log.Error("write segment failed", "i", 100)
	out := buf.String()
	if !strings.Contains(out, "suppressed=97") || !strings.Contains(out, "component=writer") {
		t.Fatalf("after the period: want a line with suppressed=97 keeping the attrs, got:\n%s", out)
	}
	if got := strings.Count(out, "write segment failed"); got != 2 {
		t.Fatalf("after the period: got %d lines, want the summary and the new record", got)
	}
}
