package fleet

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Clock sources a sensor reports (issue 15 §3).
const (
	ClockPTP     = "ptp"            // a PTP hardware clock disciplines the system clock (phc2sys)
	ClockNTP     = "ntp"            // the kernel says the clock is synchronised (chrony, ntpd, timesyncd)
	ClockUnsync  = "unsynchronised" // the kernel's STA_UNSYNC is set: no time reference
	ClockUnknown = "unknown"        // adjtimex failed
)

// ClockState is the system clock's synchronisation as the kernel reports it
// (adjtimex(2)), read without changing anything.
type ClockState struct {
	Source string
	Synced bool
	// ErrorNs is the kernel's estimated error (esterror), MaxErrorNs its
	// maximum error (maxerror), both µs in the kernel, here ns. A daemon
	// that disciplines the clock keeps them current; unsynchronised, the
	// maximum error grows until the kernel caps it at 16 s.
	ErrorNs, MaxErrorNs int64
}

// ReadClock returns the clock state. The PTP test is best effort: a
// /dev/ptp* device exists and a phc2sys process runs.
func ReadClock() ClockState {
	var tx unix.Timex // Modes 0: read only
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return ClockState{Source: ClockUnknown}
	}
	cs := ClockState{
		ErrorNs:    int64(tx.Esterror) * 1000,
		MaxErrorNs: int64(tx.Maxerror) * 1000,
		Synced:     tx.Status&unix.STA_UNSYNC == 0 && state != unix.TIME_ERROR,
	}
	switch {
	case !cs.Synced:
		cs.Source = ClockUnsync
	case ptpDisciplined():
		cs.Source = ClockPTP
	default:
		cs.Source = ClockNTP
	}
	return cs
}

func ptpDisciplined() bool {
	if m, _ := filepath.Glob("/dev/ptp*"); len(m) == 0 {
		return false
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "phc2sys" {
			return true
		}
	}
	return false
}
