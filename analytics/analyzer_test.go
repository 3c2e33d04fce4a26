package analytics_test

import (
	"fmt"
	"io"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/block"
	"tapvault/dataplane"
	"tapvault/tracegen"
	"tapvault/workers"
)

// frameSource is a dataplane.Source over frames in memory (Ethernet).
type frameSource struct {
	ts     []int64
	frames [][]byte
	i      int
}

func (s *frameSource) Recv(b *dataplane.Burst) (int, error) {
	b.N = 0
	for b.N < len(b.Pkts) && s.i < len(s.frames) {
		f := s.frames[s.i]
		b.Pkts[b.N] = dataplane.Packet{Data: f, TS: s.ts[s.i], WireLen: uint32(len(f)), LinkType: 1}
		b.N++
		s.i++
	}
	if b.N == 0 {
		return 0, io.EOF
	}
	return b.N, nil
}

func (s *frameSource) Close() error { return nil }

// releaseSink accepts and recycles every block.
type releaseSink struct{ blocks atomic.Int64 }

func (s *releaseSink) Submit(b *block.Block) bool { s.blocks.Add(1); b.Release(); return true }

// analyze runs frames through a real worker with an Analyzer and returns
// the records.
func analyze(t testing.TB, src dataplane.Source, cfg analytics.Config) ([]*analytics.Record, *analytics.Analyzer) {
	t.Helper()
	var recs []*analytics.Record
	an := analytics.NewAnalyzer(cfg, func(r *analytics.Record) bool { recs = append(recs, r); return true })
	w := workers.NewWorker(workers.Config{
		Pool:     block.NewPool(4, 1<<20, workers.DefaultMaxBlockFlows),
		Sink:     new(releaseSink),
		Analyzer: an,
		RunID:    7,
	})
	var stop atomic.Bool
	if err := w.Run(src, &stop); err != nil {
		t.Fatal(err)
	}
	return recs, an
}

func genFrames(t testing.TB, opts tracegen.Options) *frameSource {
	t.Helper()
	s := new(frameSource)
	_, err := tracegen.GenerateFrames(opts, func(ts int64, f []byte) error {
		s.ts = append(s.ts, ts)
		s.frames = append(s.frames, append([]byte(nil), f...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var protoName = map[string]string{tracegen.AppHTTP: "http", tracegen.AppDNS: "dns", tracegen.AppPostgres: "postgres", tracegen.AppRedis: "redis"}

// TestAppTrace checks every exchange of the generated app trace against
// its ground truth: the four timestamps to the nanosecond, the server's
// ACK, the class (fast, slow_app, slow_net), bytes and packet counts.
func TestAppTrace(t *testing.T) {
	opts := tracegen.Options{Kind: tracegen.KindApp, Packets: 30000, Seed: 11, PPS: 400}
	truth, err := tracegen.AppGroundTruth(opts)
	if err != nil {
		t.Fatal(err)
	}
	// The generator's fast servers sit up to 20 ms away (plus the client's
	// leg) and its slow-net paths 30 ms more: judge the path at 25 ms.
	cfg := analytics.DefaultConfig()
	cfg.SlowNetwork = 25 * time.Millisecond
	recs, an := analyze(t, genFrames(t, opts), cfg)
	type key struct {
		proto, client, server string
		reqFirst              int64
	}
	got := map[key]*analytics.Record{}
	flows := 0
	for _, r := range recs {
		if r.Proto == "tcp" {
			flows++
			continue
		}
		got[key{r.Proto, r.Client.String(), r.Server.String(), r.ReqFirst}] = r
	}
	if flows == 0 {
		t.Errorf("no tcp connection records")
	}
	classes := map[string]int{}
	bad := 0
	for i, e := range truth {
		p, ok := protoName[e.Proto]
		if !ok {
			t.Fatalf("unknown proto %q", e.Proto)
		}
		r := got[key{p, e.Client.String(), e.Server.String(), e.ReqFirstNS}]
		name := fmt.Sprintf("exchange %d (%s %s %v->%v)", i, e.Proto, e.Class, e.Client, e.Server)
		if r == nil {
			if _, err := analytics.Lookup(p); err != nil {
				continue // decoder not registered (yet)
			}
			if bad++; bad < 10 {
				t.Errorf("%s: no record", name)
			}
			continue
		}
		check := func(what string, got, want int64) {
			if got != want {
				if bad++; bad < 20 {
					t.Errorf("%s: %s = %d, want %d", name, what, got, want)
				}
			}
		}
		check("req_last", r.ReqLast, e.ReqLastNS)
		check("resp_first", r.RespFirst, e.RespFirstNS)
		check("resp_last", r.RespLast, e.RespLastNS)
		check("req_bytes", r.ReqBytes, int64(e.ReqBytes))
		check("resp_bytes", r.RespBytes, int64(e.RespBytes))
		check("req_pkts", int64(r.ReqPkts), int64(e.ReqPackets))
		check("resp_pkts", int64(r.RespPkts), int64(e.RespPackets))
		// The messages' packets, then the ACKs the split looked at: the
		// server's bare ACK (slow-app) and the client's ACK of the response.
		evidence := 0
		if e.Class == tracegen.AppSlowApp && e.Transport == "tcp" {
			evidence++
		}
		if r.ClientAck != 0 {
			evidence++
		}
		check("packets", int64(len(r.Packets)), int64(e.ReqPackets+e.RespPackets+evidence))
		check("server_ack", r.ServerAck, e.ServerAckNS)
		want := map[string]string{tracegen.AppFast: analytics.ClassHealthy, tracegen.AppSlowApp: analytics.ClassSlowApp,
			tracegen.AppSlowNet: analytics.ClassSlowNet, tracegen.AppTier: ""}[e.Class]
		if e.Transport == "udp" {
			want = analytics.ClassCantTell
		} else if e.Class != tracegen.AppTier {
			// The additive split: the generator's server leg and think time.
			check("network", r.Network, e.NetworkNS)
			check("server", r.ServerTime, e.ThinkNS)
			check("sum", r.Network+r.ServerTime+r.Transfer, r.RespLast-r.ReqLast)
		}
		if want != "" && r.Class != want {
			if bad++; bad < 20 {
				t.Errorf("%s: class %s, want %s (network %d rtt %d server %d)", name, r.Class, want, r.Network, r.RTT, r.ServerTime)
			}
		}
		classes[e.Transport+"/"+r.Class]++
		for _, ref := range r.Packets {
			if ref.Block == 0 || ref.Block>>32 != 7 {
				t.Fatalf("%s: ref %+v: want a block of run 7", name, ref)
			}
		}
	}
	t.Logf("%d exchanges, %d records, %d tcp connections; classes %v", len(truth), len(recs), flows, classes)
	st := an.Stats()
	t.Logf("analyzer: exchanges %d unanswered %d gaps %d retrans %d ooo %d", st.Exchanges.Load(), st.Unanswered.Load(), st.Gaps.Load(), st.Retrans.Load(), st.OutOfOrder.Load())
	if st.Gaps.Load() != 0 || st.Retrans.Load() != 0 {
		t.Errorf("a clean trace shows gaps or retransmissions")
	}
	var keys []string
	for k := range classes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range []string{"tcp/healthy", "tcp/slow_app", "tcp/slow_net", "udp/cant_tell"} {
		if classes[k] == 0 {
			t.Errorf("no %s exchange checked (have %v)", k, keys)
		}
	}
}

// BenchmarkWorkerApp is the worker's per-packet cost on the app trace
// (HTTP, DNS, PostgreSQL, Redis, tiers) with the analytics off and on:
// decode, flow, block build, and (on) TCP timing, reassembly, the decoders
// and the records. Records go to a discarding Emit.
func BenchmarkWorkerApp(b *testing.B) {
	benchWorker(b, tracegen.Options{Kind: tracegen.KindApp, Packets: 200000, Seed: 3, PPS: 20000})
}

// BenchmarkWorkerIMIX is the same over IMIX TCP traffic (10k flows, no
// application protocol): the cost of TCP timing and detection alone.
func BenchmarkWorkerIMIX(b *testing.B) {
	benchWorker(b, tracegen.Options{Kind: "imix", Packets: 200000, Flows: 10000, Seed: 3})
}

func benchWorker(b *testing.B, opts tracegen.Options) {
	src := genFrames(b, opts)
	for _, on := range []bool{false, true} {
		name := "analytics=off"
		if on {
			name = "analytics=on"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var pkts int
			var cpu time.Duration // the process's CPU time in w.Run (GC included)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s := &frameSource{ts: src.ts, frames: src.frames}
				cfg := workers.Config{
					Pool: block.NewPool(4, 1<<20, workers.DefaultMaxBlockFlows),
					Sink: new(releaseSink),
				}
				if on {
					cfg.Analyzer = analytics.NewAnalyzer(analytics.DefaultConfig(), func(*analytics.Record) bool { return true })
				}
				w := workers.NewWorker(cfg)
				var stop atomic.Bool
				c0 := cpuTime()
				b.StartTimer()
				if err := w.Run(s, &stop); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
				pkts += len(src.frames)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pkts), "ns/pkt")
			// On a shared machine the wall time includes waiting for a
			// CPU; the CPU time does not.
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(pkts), "cpu-ns/pkt")
		})
	}
}

// cpuTime is the CPU time the process has used (user and system, all
// threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
