package index

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"tapvault/block"
	"tapvault/writer"
)

// imixRing pre-generates n IMIX blocks so that timed loops measure the index,
// not the generator. Replayed blocks get fresh refs and times.
type imixRing struct {
	metas []writer.BlockMeta
	sums  []block.Summary
	bytes []uint64
}

func newIMIXRing(n, nflows int) *imixRing {
	g := newIMIX(1, nflows)
	r := &imixRing{}
	for i := 0; i < n; i++ {
		m, s, b := g.next()
		r.metas = append(r.metas, m)
		r.sums = append(r.sums, block.Summary{Flows: slices.Clone(s.Flows), NonFlow: s.NonFlow})
		r.bytes = append(r.bytes, b)
	}
	return r
}

// block i of the replay: ring entry i%n, moved to ref and time of i.
func (r *imixRing) block(i int) (writer.BlockMeta, *block.Summary) {
	j := i % len(r.metas)
	m := r.metas[j]
	m.Ref = writer.MakeRef(uint32(1+i/2048), uint32(i%2048)*600_000)
	span := m.MaxTS - m.MinTS
	m.MinTS = 1_700_000_000_000_000_000 + int64(i)*span
	m.MaxTS = m.MinTS + span
	return m, &r.sums[j]
}

func cpuNS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkIngest feeds IMIX blocks (10k flows) through the commit hook, as
// the writer does, and reports the whole process's CPU per block (hook,
// batcher, Badger flushes and compactions) as a share of one core at 600
// blocks/s (5 Gbps IMIX in 1 MiB blocks).
func BenchmarkIngest(b *testing.B) {
	ring := newIMIXRing(300, 10_000)
	b.Run("flows=10k", func(b *testing.B) {
		ix := openTest(b, b.TempDir())
		hook := ix.Hook()
		b.ReportAllocs()
		b.SetBytes(int64(ring.bytes[0]))
		cpu0, wall0 := cpuNS(), time.Now()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for ix.queued() >= ix.opts.QueueLen/2 {
				time.Sleep(50 * time.Microsecond)
			}
			m, s := ring.block(i)
			hook(m, s)
		}
		if err := ix.Flush(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu := float64(cpuNS()-cpu0) / float64(b.N)
		b.ReportMetric(cpu, "cpu-ns/block")
		b.ReportMetric(cpu*600/1e9*100, "core%@600blk/s")
		b.ReportMetric(float64(b.N)/time.Since(wall0).Seconds(), "blocks/s")
		st := ix.Stats()
		b.ReportMetric(float64(st.Keys)/float64(b.N), "keys/block")
		if st.QueueDrops != 0 {
			b.Fatalf("got %d queue drops, want 0", st.QueueDrops)
		}
		ix.Close()
	})
}

// BenchmarkIngestPaced hooks IMIX blocks at the 5 Gbps rate, 600 blocks/s,
// and reports the process's CPU share of one core (core%), and that of the
// driver loop alone (driver-core%): the index's share, the difference, has
// a goal of 10%.
// Run it for at least a few groups: -benchtime 10000x takes 17 s.
func BenchmarkIngestPaced(b *testing.B) {
	ring := newIMIXRing(300, 10_000)
	b.Run("flows=10k/rate=600", func(b *testing.B) {
		const every = time.Second / 600
		// The driver's own cost: 600 timed wake-ups a second, as the
		// writer has anyway, without the index.
		cpu0, start := cpuNS(), time.Now()
		for i := 0; i < 600; i++ {
			if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
				time.Sleep(d)
			}
		}
		driver := float64(cpuNS()-cpu0) / float64(time.Since(start)) * 100

		ix := openTest(b, b.TempDir())
		hook := ix.Hook()
		b.ReportAllocs()
		cpu0, start = cpuNS(), time.Now()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
				time.Sleep(d)
			}
			m, s := ring.block(i)
			hook(m, s)
		}
		if err := ix.Flush(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		wall := time.Since(start)
		b.ReportMetric(float64(cpuNS()-cpu0)/float64(wall)*100, "core%")
		b.ReportMetric(driver, "driver-core%")
		b.ReportMetric(float64(ix.Stats().QueueDrops), "drops")
		ix.Close()
	})
}

// BenchmarkHook is the writer goroutine's share: copying one block's flow
// keys into the queue.
func BenchmarkHook(b *testing.B) {
	ring := newIMIXRing(8, 10_000)
	b.Run("flows=10k", func(b *testing.B) {
		ix := openTest(b, b.TempDir())
		defer ix.Close()
		hook := ix.Hook()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			m, s := ring.block(i)
			hook(m, s)
			b.StopTimer()
			if err := ix.drain(); err != nil { // keep the queue from filling
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join(dir, fi.Name()), &st) == nil {
				n += st.Blocks * 512 // allocated, not apparent: Badger preallocates
				return nil
			}
			n += fi.Size()
		}
		return nil
	})
	return n
}

// BenchmarkIndexSize indexes 4096 IMIX blocks (10k flows, about 4 GiB of
// packets) and reports the index size on disk against the packet bytes
// (the sum of the packets' lengths, before block compression).
func BenchmarkIndexSize(b *testing.B) {
	for _, c := range []struct {
		name string
		comp Compression
	}{{"snappy", CompressionSnappy}, {"zstd", CompressionZSTD}, {"none", CompressionNone}} {
		b.Run("flows=10k/blocks=4096/compression="+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				ix, err := Open(Options{Dir: dir, Create: true, Logger: quietLogger(), Compression: c.comp})
				if err != nil {
					b.Fatal(err)
				}
				g := newIMIX(uint64(i+1), 10_000)
				var pkt uint64
				for j := 0; j < 4096; j++ {
					m, s, n := g.next()
					pkt += n
					if err := ix.Add(m, s); err != nil {
						b.Fatal(err)
					}
				}
				if err := ix.Flush(); err != nil {
					b.Fatal(err)
				}
				keys := ix.Stats().Keys
				if err := ix.Close(); err != nil {
					b.Fatal(err)
				}
				size := dirSize(dir)
				b.ReportMetric(float64(size)/float64(pkt)*100, "%-of-packet-bytes")
				b.ReportMetric(float64(size)/4096, "B/block")
				b.ReportMetric(float64(size)/float64(keys), "B/key")
			}
		})
	}
}

// BenchmarkQueryFlow finds one flow over 4096 indexed IMIX blocks (two
// segments of two 2048-block groups; the flow is in about a fifth of the
// blocks). cold empties the cache of resolved groups before each query.
func BenchmarkQueryFlow(b *testing.B) {
	ring := newIMIXRing(300, 10_000)
	ix := openTest(b, b.TempDir())
	defer ix.Close()
	const nblocks = 4096
	for i := 0; i < nblocks; i++ {
		m, s := ring.block(i)
		if err := ix.Add(m, s); err != nil {
			b.Fatal(err)
		}
	}
	if err := ix.Flush(); err != nil {
		b.Fatal(err)
	}
	first, _ := ring.block(0)
	last, _ := ring.block(nblocks - 1)
	flows := ring.sums[0].Flows
	for _, w := range []struct {
		name     string
		from, to int64
		cold     bool
	}{
		{"blocks=4096/all", first.MinTS, last.MaxTS, false},
		{"blocks=4096/all/cold", first.MinTS, last.MaxTS, true},
		{"blocks=4096/last-tenth", last.MaxTS - (last.MaxTS-first.MinTS)/10, last.MaxTS, false},
	} {
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			var refs int
			for i := 0; i < b.N; i++ {
				if w.cold {
					ix.spans.reset() // every group resolved from its block keys
				}
				it := ix.Flow(flows[i%len(flows)].Key, w.from, w.to)
				for it.Next() {
					refs++
				}
				if err := it.Err(); err != nil {
					b.Fatal(err)
				}
				it.Close()
			}
			b.ReportMetric(float64(refs)/float64(b.N), "refs/op")
		})
	}
}

// BenchmarkTimeToQueryable measures, under ingest at full speed, the time
// from the hook call for a block to an iterator returning that block.
func BenchmarkTimeToQueryable(b *testing.B) {
	ring := newIMIXRing(300, 10_000)
	b.Run("flows=10k", func(b *testing.B) {
		ix := openTest(b, b.TempDir())
		defer ix.Close()
		hook := ix.Hook()
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for ix.queued() >= ix.opts.QueueLen/2 {
				time.Sleep(50 * time.Microsecond)
			}
			m, s := ring.block(i)
			k := s.Flows[i%len(s.Flows)].Key
			start := time.Now()
			hook(m, s)
			it := ix.Flow(k, m.MinTS, m.MaxTS)
			if !it.Seek(m.Ref) || it.At() != m.Ref {
				b.Fatalf("block %v not found after its hook", m.Ref)
			}
			lat = append(lat, time.Since(start))
			it.Close()
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-us")
	})
}

func (c *spanCache) reset() {
	c.mu.Lock()
	clear(c.m)
	c.order = c.order[:0]
	c.mu.Unlock()
}
