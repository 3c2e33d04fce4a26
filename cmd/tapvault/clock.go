package main

import (
	"log/slog"
	"os"
	"time"

	"tapvault/clocklog"
	"tapvault/fleet"
)

// clockLogEvery is how often a capture records its clock's state.
const clockLogEvery = time.Minute

// startClockLog records the capturing clock's state in the store (clocklog)
// now, every minute and when stop is called: comparing two stores' times
// (tapvault hops, the fleet) states its uncertainty from it. A failed write
// is logged once; the capture goes on.
func startClockLog(dir string) (stop func()) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		slog.Warn("clock log: cannot create the store directory; clock state not recorded", "err", err)
		return func() {}
	}
	var id clocklog.Entry
	id.Identity()
	failed := false
	write := func() {
		c := fleet.ReadClock()
		e := id
		e.TS, e.Source, e.Synced, e.ErrorNs, e.MaxErrorNs = time.Now().UnixNano(), c.Source, c.Synced, c.ErrorNs, c.MaxErrorNs
		if err := clocklog.Append(dir, e); err != nil && !failed {
			failed = true
			slog.Warn("clock log: cannot record the clock's state; comparisons with this store will call its clock unknown", "err", err)
		}
	}
	write()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(clockLogEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				write()
				return
			case <-t.C:
				write()
			}
		}
	}()
	return func() { close(done); <-stopped }
}
