package pipeline

import (
	"slices"
	"sync"
	"time"
)

// latencies collects durations (ns) from any goroutine. It keeps the first
// maxSamples exactly, which at one sample per block covers about 1 TB of
// 1 MiB blocks, and counts the rest.
type latencies struct {
	mu      sync.Mutex
	samples []int64
	n       int
}

const maxSamples = 1 << 20

func (l *latencies) add(ns int64) {
	l.mu.Lock()
	l.n++
	if len(l.samples) < maxSamples {
		l.samples = append(l.samples, ns)
	}
	l.mu.Unlock()
}

// LatencySummary is a distribution of latencies.
type LatencySummary struct {
	Count         int
	P50, P99, Max time.Duration
}

func (l *latencies) summary() LatencySummary {
	l.mu.Lock()
	s := slices.Clone(l.samples)
	n := l.n
	l.mu.Unlock()
	if len(s) == 0 {
		return LatencySummary{Count: n}
	}
	slices.Sort(s)
	q := func(p float64) time.Duration { return time.Duration(s[min(len(s)-1, int(p*float64(len(s))))]) }
	return LatencySummary{Count: n, P50: q(0.50), P99: q(0.99), Max: time.Duration(s[len(s)-1])}
}
