package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"time"

	"tapvault/index"
	"tapvault/packet"
	"tapvault/pcap"
	"tapvault/pipeline"
	"tapvault/query"
)

// queryLoad runs n concurrent query loops against a capture's live store
// while it runs: a flow, a host and a time range, each stopping after a
// bounded number of packets as an interactive user's query would. It records
// each query's latency by kind.
type queryLoad struct {
	n     int
	limit int
	flows []packet.FlowKey
	hosts [][16]byte

	mu       sync.Mutex
	lat      map[string][]time.Duration
	errs     int
	firstErr error
}

func newQueryLoad(n, limit int, frames [][]byte) *queryLoad {
	ql := &queryLoad{n: n, limit: limit, lat: map[string][]time.Duration{}}
	var (
		dec packet.Decoder
		d   packet.Decoded
		k   packet.FlowKey
	)
	seen := map[packet.FlowKey]bool{}
	for _, f := range frames {
		dec.Decode(f, pcap.LinkTypeEthernet, &d)
		if _, ok := packet.FlowKeyInto(&k, &d); ok && !seen[k] && k.Proto == 6 {
			seen[k] = true
			ql.flows = append(ql.flows, k)
			ql.hosts = append(ql.hosts, k.A)
			if len(ql.flows) == 64 {
				break
			}
		}
	}
	return ql
}

func (ql *queryLoad) run(ctx context.Context, p *pipeline.Pipeline, dir string) {
	st, err := query.OpenStoreWithIndex(dir, p.Index(), nil)
	if err != nil {
		ql.mu.Lock()
		ql.errs++
		ql.mu.Unlock()
		return
	}
	defer st.Close()
	// Start once the store holds something: queries of an empty store
	// would only measure how fast nothing is found.
	for ctx.Err() == nil {
		if ix := p.Index(); ix == nil || p.Writer().Stats().BlocksCommitted > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for g := 0; g < ql.n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ctx.Err() == nil; i++ {
				kind, expr := ql.pick(i)
				f, err := query.ParseFilter(expr)
				if err != nil {
					panic("BUG: bench query filter: " + err.Error())
				}
				t0 := time.Now()
				_, err = st.Run(ctx, query.Request{From: query.MinTime, To: query.MaxTime, Filter: f, Limit: ql.limit}, func(*query.Packet) error { return nil })
				el := time.Since(t0)
				if errors.Is(err, index.ErrClosed) {
					return // the capture ended and closed its index
				}
				ql.mu.Lock()
				if err != nil && ctx.Err() == nil {
					ql.errs++
					if ql.firstErr == nil {
						ql.firstErr = fmt.Errorf("%s query %q: %w", kind, expr, err)
					}
				} else if err == nil {
					ql.lat[kind] = append(ql.lat[kind], el)
				}
				ql.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func (ql *queryLoad) pick(i int) (kind, expr string) {
	if len(ql.flows) == 0 {
		return "time", ""
	}
	k := ql.flows[i%len(ql.flows)]
	switch i % 3 {
	case 0:
		a, b := netip.AddrFrom16(k.A).Unmap(), netip.AddrFrom16(k.B).Unmap()
		return "flow", fmt.Sprintf("flow %s <> %s", netip.AddrPortFrom(a, k.PortA), netip.AddrPortFrom(b, k.PortB))
	case 1:
		return "host", "host " + netip.AddrFrom16(ql.hosts[i%len(ql.hosts)]).Unmap().String()
	}
	return "time", ""
}

// summary formats p50/p99 per kind.
func (ql *queryLoad) summary() string {
	ql.mu.Lock()
	defer ql.mu.Unlock()
	s := fmt.Sprintf("%d concurrent queries (each stops after %d packets):", ql.n, ql.limit)
	for _, kind := range []string{"flow", "host", "time"} {
		l := slices.Clone(ql.lat[kind])
		if len(l) == 0 {
			continue
		}
		slices.Sort(l)
		q := func(p float64) time.Duration { return l[min(len(l)-1, int(p*float64(len(l))))] }
		s += fmt.Sprintf(" %s n=%d p50 %s p99 %s;", kind, len(l), q(0.5).Round(time.Microsecond), q(0.99).Round(time.Microsecond))
	}
	if ql.errs > 0 {
		s += fmt.Sprintf(" %d errors, the first: %v", ql.errs, ql.firstErr)
	}
	return s
}

// summaryIf is summary, or "" for a nil load.
func (ql *queryLoad) summaryIf() string {
	if ql == nil {
		return ""
	}
	return ql.summary()
}

// cliQueryLoad runs n concurrent loops of `tapvault query --count --limit`
// processes against a capture's live store, as an operator's shell loops
// would: each process starts, finds the store held by the capture, scans
// block headers (it cannot open the capture's index) and reads the blocks
// its filter needs. Latencies are recorded per kind in load.
type cliQueryLoad struct {
	n    int
	exe  string
	load *queryLoad
}

func (c *cliQueryLoad) run(ctx context.Context, p *pipeline.Pipeline, dir string) {
	for ctx.Err() == nil && p.Writer().Stats().BlocksCommitted == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	ql := c.load
	var wg sync.WaitGroup
	for g := 0; g < c.n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ctx.Err() == nil; i++ {
				kind, expr := ql.pick(i)
				args := []string{"query", "--data", dir, "--count", "--limit", strconv.Itoa(ql.limit)}
				if expr != "" {
					args = append(args, expr)
				}
				t0 := time.Now()
				out, err := exec.CommandContext(ctx, c.exe, args...).CombinedOutput()
				el := time.Since(t0)
				ql.mu.Lock()
				switch {
				case ctx.Err() != nil:
				case err != nil:
					ql.errs++
					if ql.firstErr == nil {
						ql.firstErr = fmt.Errorf("%s query process %q: %w: %s", kind, expr, err, bytes.TrimSpace(out))
					}
				default:
					ql.lat[kind] = append(ql.lat[kind], el)
				}
				ql.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// summaryIf is the load's summary, or "" for a nil load.
func (c *cliQueryLoad) summaryIf() string {
	if c == nil {
		return ""
	}
	return "query processes: " + c.load.summary()
}
