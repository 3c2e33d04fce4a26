// Package clocklog keeps, in a store, the state of the clock that stamped
// its packets: DIR/clock.log, one JSON line per reading (at the capture's
// start, every minute, at its stop). Comparing two stores' times (hops,
// the fleet) needs it: two captures on one host share one clock, and
// between hosts the uncertainty is the sum of both clocks' errors.
//
// A store without the file (an import of someone else's capture) has an
// unknown clock: a comparison with it states that, not a figure.
//
// It must not: block a capture on the file (a failed write is logged by the
// caller and the capture goes on), or rewrite lines (append only).
package clocklog

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FileName is the log's name in a store.
const FileName = "clock.log"

// Entry is one reading of the capturing host's clock.
type Entry struct {
	TS     int64  `json:"ts_ns"`   // when read, by the clock itself
	Host   string `json:"host"`    // hostname
	BootID string `json:"boot_id"` // /proc/sys/kernel/random/boot_id: one clock per boot of one host
	Source string `json:"source"`  // ptp, ntp, unsynchronised, unknown
	Synced bool   `json:"synced"`
	// ErrorNs and MaxErrorNs are the kernel's estimated and maximum error
	// (adjtimex esterror and maxerror).
	ErrorNs    int64 `json:"error_ns"`
	MaxErrorNs int64 `json:"max_error_ns"`
}

// Identity fills the host and boot ID of e from this machine.
func (e *Entry) Identity() {
	e.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		e.BootID = strings.TrimSpace(string(b))
	}
}

// Append adds e to dir's clock log, synced.
func Append(dir string, e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Read returns dir's clock log, oldest first; nil without one. A torn last
// line (a crash mid-append) is skipped.
func Read(dir string) ([]Entry, error) {
	f, err := os.Open(filepath.Join(dir, FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Entry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.TS > 0 {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// Pair is what two stores' clock logs say about comparing their times.
type Pair struct {
	Known bool // both stores have readings
	// OneClock: both were stamped by the same host in the same boot.
	OneClock bool
	// Uncertainty is the sum of both clocks' largest estimated errors over
	// the readings (0 for one clock); an unsynchronised clock's is its
	// maximum error.
	Uncertainty time.Duration
	Why         string
}

// Compare states the uncertainty of comparing times of stores a and b.
func Compare(a, b []Entry) Pair {
	if len(a) == 0 || len(b) == 0 {
		return Pair{Why: "a store has no clock log (an import, or a capture older than the log): the clocks' agreement is unknown"}
	}
	ids := func(es []Entry) map[string]bool {
		m := map[string]bool{}
		for _, e := range es {
			m[e.Host+"/"+e.BootID] = true
		}
		return m
	}
	ia, ib := ids(a), ids(b)
	if len(ia) == 1 && len(ib) == 1 && a[0].BootID != "" {
		for k := range ia {
			if ib[k] {
				return Pair{Known: true, OneClock: true, Why: "one clock: both stamped by " + a[0].Host + " in one boot"}
			}
		}
	}
	worst := func(es []Entry) (int64, string) {
		var w int64
		src := ""
		for _, e := range es {
			v := e.ErrorNs
			if !e.Synced {
				v = e.MaxErrorNs
			}
			if v > w || src == "" {
				w, src = v, e.Source
			}
		}
		return w, src
	}
	wa, sa := worst(a)
	wb, sb := worst(b)
	u := time.Duration(wa + wb)
	return Pair{Known: true, Uncertainty: u,
		Why: fmt.Sprintf("two clocks: %s (%s, error up to %v) and %s (%s, up to %v)", a[0].Host, sa, time.Duration(wa), b[0].Host, sb, time.Duration(wb))}
}
