package analytics_test

import (
	"testing"

	"tapvault/analytics"
	"tapvault/tracegen"
)

// TestFaultMaxParsers runs the generated app trace (HTTP, DNS, PostgreSQL,
// Redis connections) with room for 2 parsers at once: the parsers never
// exceed it, the connections beyond it are counted and still timed (their
// tcp records), and fewer exchanges are decoded than with the default
// bound, which decodes every one.
func TestFaultMaxParsers(t *testing.T) {
	opts := tracegen.Options{Kind: tracegen.KindApp, Packets: 20000, Seed: 11, PPS: 400}
	all, anAll := analyze(t, genFrames(t, opts), analytics.DefaultConfig())
	cfg := analytics.DefaultConfig()
	cfg.MaxParsers = 2
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	few, an := analyze(t, genFrames(t, opts), cfg)
	count := func(recs []*analytics.Record) (tcp, ex int) {
		for _, r := range recs {
			if r.Proto == "tcp" {
				tcp++
			} else {
				ex++
			}
		}
		return tcp, ex
	}
	tcpAll, exAll := count(all)
	tcpFew, exFew := count(few)
	st := an.Stats()
	t.Logf("default: %d tcp, %d exchanges; max_parsers 2: %d tcp, %d exchanges, %d connections undecoded", tcpAll, exAll, tcpFew, exFew, st.ParsersFull.Load())
	if anAll.Stats().ParsersFull.Load() != 0 {
		t.Errorf("default bound: %d connections undecoded, want 0", anAll.Stats().ParsersFull.Load())
	}
	if st.ParsersFull.Load() == 0 {
		t.Errorf("max_parsers 2: no connection counted undecoded")
	}
	if n := st.Parsers.Load(); n != 0 {
		t.Errorf("parsers after the run: got %d, want 0 (all closed)", n)
	}
	if tcpFew != tcpAll {
		t.Errorf("tcp records: got %d with max_parsers 2, want %d: every connection is still timed", tcpFew, tcpAll)
	}
	if exFew >= exAll || exFew == 0 {
		t.Errorf("exchanges: got %d with max_parsers 2, want fewer than %d and some", exFew, exAll)
	}
}
