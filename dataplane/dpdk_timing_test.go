//go:build cgo && !nodpdk

package dataplane

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

var (
	nullOnce sync.Once
	nullP    *Port
	nullErr  error
)

// nullPort opens net_null0 once: it returns full bursts of 64-byte packets
// allocated from our mempool, so Recv is measured without a producer.
func nullPort(tb testing.TB) *Port {
	tb.Helper()
	needEAL(tb)
	nullOnce.Do(func() {
		nullP, nullErr = OpenPort(PortConfig{Name: "net_null0", Mbufs: 8191})
	})
	if nullErr != nil {
		tb.Fatalf("OpenPort(net_null0): %v", nullErr)
	}
	return nullP
}

// pinned runs f on a locked thread pinned to lcore (lcore < 0: not pinned).
func pinned(tb testing.TB, lcore int, f func()) {
	tb.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if lcore >= 0 {
		if err := PinThread(lcore); err != nil {
			tb.Fatalf("PinThread(%d): %v", lcore, err)
		}
		defer UnpinThread()
	}
	f()
}

// TestRecvAllocs proves that a steady-state Recv allocates nothing.
func TestRecvAllocs(t *testing.T) {
	q := nullPort(t).Queue(0)
	var b Burst
	pinned(t, MainLcore(), func() {
		allocs := testing.AllocsPerRun(1000, func() {
			if n, err := q.Recv(&b); n == 0 || err != nil {
				t.Fatalf("Recv: got %d, %v, want a burst", n, err)
			}
		})
		if allocs != 0 {
			t.Errorf("allocs per Recv: got %v, want 0", allocs)
		}
	})
}

// BenchmarkRecv measures one Recv (one burst, one cgo call).
//
// pmd=null: net_null hands out full bursts of 64-byte mbufs from our pool;
// this is the cost of Recv itself plus the PMD's mbuf alloc and our free.
// thread=pinned runs on a thread pinned and registered with PinThread,
// thread=registered on one registered with RegisterThread but free to
// migrate (both use the mempool cache), thread=plain on an unregistered Go
// thread (no cache: every alloc and free goes to the mempool ring).
//
// pmd=ring: a Producer on the worker lcore feeds a net_ring queue; the
// receiver runs on the main lcore. Mpps is then the lesser of producer and
// receiver capacity, with both copying nothing on the receive side.
func BenchmarkRecv(b *testing.B) {
	for _, thread := range []string{"pinned", "registered", "plain"} {
		b.Run("pmd=null/size=64/thread="+thread, func(b *testing.B) {
			q := nullPort(b).Queue(0)
			lc := -1
			if thread == "pinned" {
				lc = MainLcore()
			}
			pinned(b, lc, func() {
				if thread == "registered" {
					if err := RegisterThread(); err != nil {
						b.Fatalf("RegisterThread: %v", err)
					}
					defer UnpinThread()
				}
				var bu Burst
				pkts := 0
				b.ReportAllocs()
				b.SetBytes(64 * MaxBurst)
				b.ResetTimer()
				for range b.N {
					n, err := q.Recv(&bu)
					if err != nil {
						b.Fatalf("Recv: %v", err)
					}
					pkts += n
				}
				b.StopTimer()
				reportRate(b, pkts)
			})
		})
	}
	b.Run("pmd=ring/size=64", func(b *testing.B) {
		benchRing(b, 64)
	})
	b.Run("pmd=ring/size=1500", func(b *testing.B) {
		benchRing(b, 1500)
	})
}

func reportRate(b *testing.B, pkts int) {
	b.ReportMetric(float64(pkts)/float64(b.N), "pkts/op")
	b.ReportMetric(float64(pkts)/b.Elapsed().Seconds()/1e6, "Mpps")
}

func benchRing(b *testing.B, size int) {
	p := ringPort(b)
	frames := ringFrames(256, size)
	txLcore := -1
	if w := WorkerLcores(); len(w) > 0 {
		txLcore = w[0]
	}
	// Enough packets that the receiver never runs dry for long.
	loops := b.N*MaxBurst/len(frames) + 1
	pr, err := NewProducer(p, ringQBench, frames, ProducerOptions{Loops: loops})
	if err != nil {
		b.Fatalf("NewProducer: %v", err)
	}
	prodDone := make(chan error, 1)
	go func() { prodDone <- pr.Run(txLcore) }()
	q := p.Queue(ringQBench)
	var bu Burst
	pkts, empty := 0, 0
	pinned(b, MainLcore(), func() {
		// Wait for the first packets so start-up is not measured.
		for pkts == 0 {
			n, err := q.Recv(&bu)
			if err != nil {
				b.Fatalf("Recv: %v", err)
			}
			pkts = n
		}
		pkts = 0
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			n, err := q.Recv(&bu)
			if err != nil {
				b.Fatalf("Recv: %v", err)
			}
			if n == 0 {
				empty++
			}
			pkts += n
		}
		b.StopTimer()
		reportRate(b, pkts)
		b.ReportMetric(float64(empty)/float64(b.N), "empty/op")
		if full := b.N - empty; full > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(full), "ns/burst")
		}
		b.ReportMetric(float64(pkts*size)/b.Elapsed().Seconds()/1e9*8, "Gbit/s")
		pr.Stop()
		if err := <-prodDone; err != nil {
			b.Fatalf("producer: %v", err)
		}
		b.ReportMetric(float64(pr.Refused())/float64(max(pr.Sent(), 1)), "txretry/pkt")
		b.ReportMetric(float64(pr.NoMbuf()), "txnombuf")
		// Drain the ring so the producer's pool can be freed.
		quiet := time.Now()
		for time.Since(quiet) < 50*time.Millisecond {
			if n, _ := q.Recv(&bu); n > 0 {
				quiet = time.Now()
			}
		}
		q.Recv(&bu)
	})
	if err := pr.Close(); err != nil {
		b.Fatalf("producer Close: %v", err)
	}
}
