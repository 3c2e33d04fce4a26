package fleet

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadClock checks ReadClock against the kernel's own answer, read
// here the same read-only way: the source follows STA_UNSYNC, and the
// errors are the kernel's µs in ns.
func TestReadClock(t *testing.T) {
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil {
		t.Skipf("adjtimex: %v", err)
	}
	cs := ReadClock()
	unsynced := tx.Status&unix.STA_UNSYNC != 0
	switch {
	case unsynced && (cs.Synced || cs.Source != ClockUnsync):
		t.Fatalf("STA_UNSYNC set: got %+v, want unsynchronised", cs)
	case !unsynced && cs.Synced && cs.Source != ClockNTP && cs.Source != ClockPTP:
		t.Fatalf("synchronised: got source %q, want ntp or ptp", cs.Source)
	}
	if cs.MaxErrorNs <= 0 || cs.MaxErrorNs%1000 != 0 || cs.ErrorNs < 0 {
		t.Fatalf("errors: got %d / %d ns, want positive whole µs", cs.ErrorNs, cs.MaxErrorNs)
	}
	t.Logf("clock: %+v", cs)
}
