package query

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tapvault/block"
	"tapvault/index"
	"tapvault/packet"
	"tapvault/pcap"
	"tapvault/tracegen"
	"tapvault/writer"
)

// flowStoreOpts is the flow-query store: 1M interleaved IMIX
// packets over 10k flows, each flow spanning the whole trace (about 100
// packets in about 95 of the 357 blocks).
var flowStoreOpts = tracegen.Options{Kind: tracegen.KindIMIX, Packets: 1_000_000, Flows: 10_000, Seed: 1}

var (
	flowStoreOnce sync.Once
	flowStoreDir  string
	flowStoreErr  error
)

// buildFlowStore writes the frames of opts into a new store in dir, in
// 1 MiB blocks with summaries as a worker builds them, every block
// compressed (at most 2 in flight, so none takes the compressor-behind raw
// path), and indexes it as `tapvault reindex` does.
func buildFlowStore(dir string, opts tracegen.Options) error {
	var committed atomic.Int64
	w, err := writer.Open(writer.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		CommitHook: func(writer.BlockMeta, *block.Summary) { committed.Add(1) }})
	if err != nil {
		return err
	}
	pool := block.NewPool(4, block.DefaultSize, block.DefaultMaxFlows)
	var (
		dec       packet.Decoder
		d         packet.Decoded
		b         *block.Block
		idx       = map[packet.FlowKey]int{}
		submitted int64
		i         int64
	)
	submit := func() error {
		for submitted-committed.Load() >= 2 {
			time.Sleep(200 * time.Microsecond)
		}
		if !w.Submit(b) {
			return fmt.Errorf("submit refused")
		}
		submitted++
		b = nil
		return nil
	}
	start := opts.StartNS
	if start == 0 {
		start = 1704067200 * 1e9
	}
	_, err = tracegen.GenerateFrames(opts, func(ts int64, f []byte) error {
		if b != nil && len(b.Data)+block.RecordHeaderSize+len(f) > block.DefaultSize {
			if err := submit(); err != nil {
				return err
			}
		}
		for b == nil {
			if b = pool.Get(); b == nil {
				time.Sleep(100 * time.Microsecond)
			}
			clear(idx)
		}
		i++
		b.Data = binary.LittleEndian.AppendUint64(b.Data, uint64(ts))
		b.Data = binary.LittleEndian.AppendUint32(b.Data, uint32(len(f)))
		b.Data = binary.LittleEndian.AppendUint32(b.Data, uint32(len(f)))
		b.Data = binary.LittleEndian.AppendUint16(b.Data, pcap.LinkTypeEthernet)
		b.Data = binary.LittleEndian.AppendUint16(b.Data, 0)
		b.Data = append(b.Data, f...)
		if b.Count == 0 || ts < b.MinTS {
			b.MinTS = ts
		}
		if b.Count == 0 || ts > b.MaxTS {
			b.MaxTS = ts
		}
		b.Count++
		b.Bytes += uint64(len(f))
		dec.Decode(f, pcap.LinkTypeEthernet, &d)
		k, dir, ok := packet.FlowKeyOf(&d)
		if !ok {
			b.Summary.NonFlow++
			return nil
		}
		x, in := idx[k]
		if !in {
			x = len(b.Summary.Flows)
			idx[k] = x
			b.Summary.Flows = append(b.Summary.Flows, block.FlowStat{Key: k, FirstTS: ts, LastTS: ts, FirstDir: dir})
		}
		st := &b.Summary.Flows[x]
		st.Pkts[dir]++
		st.Bytes[dir] += uint64(len(f))
		st.LastTS, st.FirstTS = max(st.LastTS, ts), min(st.FirstTS, ts)
		return nil
	})
	if err == nil && b != nil && b.Count > 0 {
		err = submit()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	r, err := writer.OpenReader(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	ix, err := index.Open(index.Options{Dir: index.DirOf(dir), Create: true})
	if err != nil {
		return err
	}
	err = ix.CatchUp(func(from writer.Ref, fn func(writer.BlockMeta, *block.Summary) error) error {
		return r.WalkSummaries(from, fn)
	})
	if cerr := ix.Close(); err == nil {
		err = cerr
	}
	return err
}

// flowStore returns the store the flow benchmarks read: TAPVAULT_FLOW_STORE
// if set (a store made by the CLI, or by another build of this benchmark),
// else one built once per run with buildFlowStore.
func flowStore(b *testing.B) string {
	if d := os.Getenv("TAPVAULT_FLOW_STORE"); d != "" {
		return d
	}
	flowStoreOnce.Do(func() {
		flowStoreDir, flowStoreErr = os.MkdirTemp("", "flowstore-")
		if flowStoreErr == nil {
			flowStoreErr = buildFlowStore(flowStoreDir, flowStoreOpts)
		}
	})
	if flowStoreErr != nil {
		b.Fatal(flowStoreErr)
	}
	return flowStoreDir
}

// firstTCPFlow is the flow of the first TCP packet of opts's trace.
func firstTCPFlow(opts tracegen.Options) (packet.FlowKey, error) {
	var (
		dec packet.Decoder
		d   packet.Decoded
		k   packet.FlowKey
	)
	stop := fmt.Errorf("found")
	o := opts
	o.Packets = 1000
	_, err := tracegen.GenerateFrames(o, func(_ int64, f []byte) error {
		dec.Decode(f, pcap.LinkTypeEthernet, &d)
		if kk, _, ok := packet.FlowKeyOf(&d); ok && kk.Proto == 6 {
			k = kk
			return stop
		}
		return nil
	})
	if err != stop {
		return k, fmt.Errorf("no TCP flow in the first 1000 packets: %v", err)
	}
	return k, nil
}

// BenchmarkQueryFlowStore is one flow out of the 1M-packet interleaved
// IMIX store, read through an open Store (index open, as a server holds
// it): the "reading the store directly" figure. The filter is
// TAPVAULT_FLOW_EXPR, or the trace's first TCP flow ("flow A <> B", no
// protocol, as the CLI is used).
func BenchmarkQueryFlowStore(b *testing.B) {
	dir := flowStore(b)
	expr := os.Getenv("TAPVAULT_FLOW_EXPR")
	if expr == "" {
		k, err := firstTCPFlow(flowStoreOpts)
		if err != nil {
			b.Fatal(err)
		}
		a, bb := netip.AddrFrom16(k.A).Unmap(), netip.AddrFrom16(k.B).Unmap()
		expr = fmt.Sprintf("flow %s <> %s", netip.AddrPortFrom(a, k.PortA), netip.AddrPortFrom(bb, k.PortB))
	}
	b.Logf("store %s, filter %q", dir, expr)
	f, err := ParseFilter(expr)
	if err != nil {
		b.Fatal(err)
	}
	st, err := OpenStore(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var res Result
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err = st.Run(context.Background(), Request{From: MinTime, To: MaxTime, Filter: f}, func(*Packet) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if res.Matched == 0 {
		b.Fatalf("%q matched nothing", expr)
	}
	b.ReportMetric(float64(res.Matched), "packets")
	b.ReportMetric(float64(res.Blocks), "blocks")
}
