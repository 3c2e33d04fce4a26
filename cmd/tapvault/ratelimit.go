package main

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// rateLimited is a slog.Handler that lets through at most burst records of
// the same message at warning level or above per period, and then, when the
// period ends, one record saying how many were suppressed. A fault that
// repeats every packet or block (a full disk, a dead peer) therefore costs a
// few lines a minute, not a flood that hides everything else. Records below
// warning pass untouched.
type rateLimited struct {
	next   slog.Handler
	period time.Duration
	burst  int
	now    func() time.Time
	st     *rateState
}

type rateState struct {
	mu   sync.Mutex
	msgs map[string]*rateEntry
}

type rateEntry struct {
	start      time.Time
	n          int // records in this period
	suppressed int
	level      slog.Level
}

func newRateLimited(next slog.Handler, period time.Duration, burst int) *rateLimited {
	return &rateLimited{next: next, period: period, burst: burst, now: time.Now, st: &rateState{msgs: map[string]*rateEntry{}}}
}

func (h *rateLimited) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *rateLimited) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	now := h.now()
	h.st.mu.Lock()
	e := h.st.msgs[r.Message]
	var report int
	if e == nil || now.Sub(e.start) >= h.period {
		if e != nil {
			report = e.suppressed
		}
		e = &rateEntry{start: now, level: r.Level}
		h.st.msgs[r.Message] = e
	}
	e.n++
	pass := e.n <= h.burst
	if !pass {
		e.suppressed++
	}
	h.st.mu.Unlock()
	if report > 0 {
		sr := slog.NewRecord(now, r.Level, r.Message+" (repeated; earlier copies suppressed)", 0)
		sr.AddAttrs(slog.Int("suppressed", report), slog.Duration("period", h.period))
		if err := h.next.Handle(ctx, sr); err != nil {
			return err
		}
	}
	if !pass {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *rateLimited) WithAttrs(as []slog.Attr) slog.Handler {
	return &rateLimited{next: h.next.WithAttrs(as), period: h.period, burst: h.burst, now: h.now, st: h.st}
}

func (h *rateLimited) WithGroup(name string) slog.Handler {
	return &rateLimited{next: h.next.WithGroup(name), period: h.period, burst: h.burst, now: h.now, st: h.st}
}
