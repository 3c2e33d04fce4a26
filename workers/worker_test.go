package workers

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"tapvault/block"
	"tapvault/dataplane"
	"tapvault/internal/testframe"
	"tapvault/packet"
	"tapvault/pcap"
)

// udpFrame builds an Ethernet/IPv4/UDP frame of size bytes between two
// hosts, its payload filled with fill.
func udpFrame(size int, src, dst [4]byte, sport, dport uint16, fill byte) []byte {
	f := testframe.Frame{
		IPv4:    &testframe.IPv4{Src: netip.AddrFrom4(src), Dst: netip.AddrFrom4(dst)},
		UDP:     &testframe.UDP{SrcPort: sport, DstPort: dport},
		Payload: bytes.Repeat([]byte{fill}, max(size-42, 0)),
	}
	return f.Bytes()
}

// collectSink keeps a copy of every block it is given, then releases it.
type collectSink struct {
	refuse bool
	blocks []collected
}

type collected struct {
	queue        uint16
	count        uint32
	minTS, maxTS int64
	data         []byte
	sum          block.Summary
}

func (s *collectSink) Submit(b *block.Block) bool {
	if s.refuse {
		return false
	}
	c := collected{queue: b.Queue, count: b.Count, minTS: b.MinTS, maxTS: b.MaxTS, data: bytes.Clone(b.Data)}
	c.sum.NonFlow = b.Summary.NonFlow
	c.sum.Flows = append(c.sum.Flows, b.Summary.Flows...)
	s.blocks = append(s.blocks, c)
	b.Release()
	return true
}

type inPkt struct {
	ts   int64
	wire uint32
	data []byte
}

func feed(w *Worker, pkts []inPkt, now int64) {
	var b dataplane.Burst
	for i := 0; i < len(pkts); {
		b.N = 0
		for ; i < len(pkts) && b.N < dataplane.MaxBurst; i++ {
			p := pkts[i]
			b.Pkts[b.N] = dataplane.Packet{Data: p.data, TS: p.ts, WireLen: p.wire, LinkType: pcap.LinkTypeEthernet}
			b.N++
		}
		w.ProcessBurst(&b, now)
	}
}

func TestWorkerStoresEveryPacketAndSummarisesFlows(t *testing.T) {
	sink := &collectSink{}
	pool := block.NewPool(4, 64<<10, 1024)
	w := NewWorker(Config{Queue: 3, Pool: pool, Sink: sink, MaxBlockFlows: 1024})
	rng := rand.New(rand.NewPCG(1, 2))
	var in []inPkt
	for i := 0; i < 5000; i++ {
		h := byte(rng.IntN(20))
		size := 60 + rng.IntN(1400)
		src, dst := [4]byte{10, 0, 0, h}, [4]byte{10, 1, 0, 1}
		sp, dp := uint16(1000+int(h)), uint16(53)
		if rng.IntN(2) == 0 {
			src, dst, sp, dp = dst, src, dp, sp
		}
		in = append(in, inPkt{ts: 1_000_000_000 + int64(i)*1000, wire: uint32(size + 4), data: udpFrame(size, src, dst, sp, dp, byte(i))})
	}
	// an ARP-like non-IP frame
	arp := make([]byte, 60)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	in = append(in, inPkt{ts: 2_000_000_000, wire: 60, data: arp})
	feed(w, in, 0)
	w.Flush()

	st := w.Stats()
	if got := st.Stored.Load(); got != uint64(len(in)) {
		t.Fatalf("stored: got %d, want %d", got, len(in))
	}
	if got := st.DropNoBuffer.Load() + st.DropSink.Load(); got != 0 {
		t.Fatalf("drops: got %d, want 0", got)
	}
	if len(sink.blocks) < 2 {
		t.Fatalf("blocks: got %d, want several (64 KiB seal size)", len(sink.blocks))
	}
	var i int
	var nonFlow uint32
	flowPkts := map[packet.FlowKey]uint32{}
	for bi, b := range sink.blocks {
		if b.queue != 3 {
			t.Fatalf("block %d queue: got %d, want 3", bi, b.queue)
		}
		if len(b.data) > 64<<10 && b.count > 1 {
			t.Fatalf("block %d: %d payload bytes past the 64 KiB seal size with %d packets", bi, len(b.data), b.count)
		}
		rest := b.data
		var n uint32
		for len(rest) > 0 {
			r, next, err := block.NextRecord(rest)
			if err != nil {
				t.Fatalf("block %d record %d: %v", bi, n, err)
			}
			rest = next
			want := in[i]
			if r.TS != want.ts || r.WireLen != want.wire || !bytes.Equal(r.Data, want.data) || r.LinkType != pcap.LinkTypeEthernet {
				t.Fatalf("packet %d: got ts %d wire %d len %d, want ts %d wire %d len %d", i, r.TS, r.WireLen, len(r.Data), want.ts, want.wire, len(want.data))
			}
			if r.TS < b.minTS || r.TS > b.maxTS {
				t.Fatalf("packet %d ts %d outside block range [%d, %d]", i, r.TS, b.minTS, b.maxTS)
			}
			i++
			n++
		}
		if n != b.count {
			t.Fatalf("block %d: %d records, header says %d", bi, n, b.count)
		}
		var sumPkts uint32
		for _, f := range b.sum.Flows {
			sumPkts += f.Pkts[0] + f.Pkts[1]
			flowPkts[f.Key] += f.Pkts[0] + f.Pkts[1]
		}
		if sumPkts+b.sum.NonFlow != b.count {
			t.Fatalf("block %d: summary covers %d packets, block has %d", bi, sumPkts+b.sum.NonFlow, b.count)
		}
		nonFlow += b.sum.NonFlow
	}
	if i != len(in) {
		t.Fatalf("read back %d packets, want %d", i, len(in))
	}
	if nonFlow != 1 {
		t.Fatalf("non-flow packets: got %d, want 1", nonFlow)
	}
	// Both directions of a flow share one key: 20 hosts, 20 flows.
	if len(flowPkts) != 20 {
		t.Fatalf("distinct flows over all blocks: got %d, want 20", len(flowPkts))
	}
	if got := st.FlowsCreated.Load(); got != 20 {
		t.Fatalf("flow table: created %d flows, want 20", got)
	}
}

func TestWorkerSealsByTime(t *testing.T) {
	sink := &collectSink{}
	w := NewWorker(Config{Pool: block.NewPool(2, 1<<20, 64), Sink: sink, SealAfter: time.Second, MaxBlockFlows: 64})
	feed(w, []inPkt{{ts: 1, wire: 64, data: udpFrame(60, [4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2}, 1, 2, 0)}}, 0)
	w.Tick(int64(999 * time.Millisecond))
	if len(sink.blocks) != 0 {
		t.Fatalf("sealed after 999ms: got %d blocks, want 0", len(sink.blocks))
	}
	w.Tick(int64(time.Second))
	if len(sink.blocks) != 1 || sink.blocks[0].count != 1 {
		t.Fatalf("after 1s: got %d blocks, want 1 with 1 packet", len(sink.blocks))
	}
	if got := w.Stats().BlocksTimed.Load(); got != 1 {
		t.Fatalf("timed seals: got %d, want 1", got)
	}
}

func TestWorkerSealsWhenBlockFlowSetIsFull(t *testing.T) {
	sink := &collectSink{}
	w := NewWorker(Config{Pool: block.NewPool(4, 1<<20, 8), Sink: sink, MaxBlockFlows: 8})
	var in []inPkt
	for i := 0; i < 20; i++ {
		in = append(in, inPkt{ts: int64(i), wire: 64, data: udpFrame(60, [4]byte{1, 1, 1, byte(i)}, [4]byte{2, 2, 2, 2}, 1, 2, 0)})
	}
	feed(w, in, 0)
	w.Flush()
	var total uint32
	for _, b := range sink.blocks {
		if len(b.sum.Flows) > 8 {
			t.Fatalf("block summarises %d flows, limit 8", len(b.sum.Flows))
		}
		total += b.count
	}
	if total != 20 || len(sink.blocks) != 3 {
		t.Fatalf("got %d packets in %d blocks, want 20 in 3", total, len(sink.blocks))
	}
}

func TestWorkerCountsDrops(t *testing.T) {
	// One buffer that the sink never returns: the first block fills, is
	// refused (dropped, counted) and recycled; with no buffers at all,
	// packets are dropped for want of one.
	sink := &collectSink{refuse: true}
	w := NewWorker(Config{Pool: block.NewPool(1, 4096, 16), Sink: sink, MaxBlockFlows: 16})
	var in []inPkt
	for i := 0; i < 100; i++ {
		in = append(in, inPkt{ts: int64(i), wire: 1000, data: udpFrame(996, [4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2}, 1, 2, 0)})
	}
	feed(w, in, 0)
	w.Flush()
	st := w.Stats()
	if got := st.DropSink.Load(); got != 100 {
		t.Fatalf("writer-refused drops: got %d, want 100", got)
	}
	if got := st.Stored.Load(); got != 0 {
		t.Fatalf("stored: got %d, want 0", got)
	}
	if got := st.RxPackets.Load(); got != 100 {
		t.Fatalf("received: got %d, want 100", got)
	}

	// A pool whose only block is held elsewhere: every packet finds no buffer.
	pool := block.NewPool(1, 4096, 16)
	held := pool.Get()
	w2 := NewWorker(Config{Pool: pool, Sink: &collectSink{}, MaxBlockFlows: 16})
	feed(w2, in[:10], 0)
	if got := w2.Stats().DropNoBuffer.Load(); got != 10 {
		t.Fatalf("no-buffer drops: got %d, want 10", got)
	}
	// Analytics go on without the disk path: the flow was still tracked.
	if got := w2.Stats().FlowsCreated.Load(); got != 1 {
		t.Fatalf("flows tracked while dropping: got %d, want 1", got)
	}
	held.Release()
}

func TestFlowTableAgainstMap(t *testing.T) {
	ft := NewFlowTable(200, 100)
	model := map[packet.FlowKey]int64{} // key -> last ts
	rng := rand.New(rand.NewPCG(3, 4))
	now := int64(0)
	for step := 0; step < 200000; step++ {
		now++
		var k packet.FlowKey
		k.A[15] = byte(rng.IntN(300))
		k.A[14] = byte(rng.IntN(2))
		k.PortA = uint16(rng.IntN(3))
		h := hashKey(&k)
		e := ft.Lookup(&k, h, now, packet.DirAB)
		_, known := model[k]
		switch {
		case e == nil && known:
			t.Fatalf("step %d: known flow not found", step)
		case e == nil:
			if len(model) < 200 {
				t.Fatalf("step %d: table refused a flow with %d/200 entries", step, len(model))
			}
		default:
			e.LastTS = now
			model[k] = now
		}
		if step%7 == 0 {
			ft.Evict(now, 5, func(e *FlowEntry) {
				if now-model[e.Key] <= 100 {
					t.Fatalf("step %d: evicted a flow idle %d <= 100", step, now-model[e.Key])
				}
				delete(model, e.Key)
			})
		}
		if ft.Stats().Active != len(model) {
			t.Fatalf("step %d: table has %d flows, model %d", step, ft.Stats().Active, len(model))
		}
	}
	seen := 0
	ft.Range(func(e *FlowEntry) {
		if _, ok := model[e.Key]; !ok {
			t.Fatalf("table holds a flow the model does not")
		}
		seen++
	})
	if seen != len(model) {
		t.Fatalf("range saw %d flows, want %d", seen, len(model))
	}
}

// TestClosedTCPFlowsLeaveTheTable: a server taking a new connection every
// second (packet time; the clock hand comes round about every 36) through
// a table of 64 flows with an idle timeout of an hour. Closed connections
// (both FINs, or an RST) go CloseLinger after their last packet, so none
// is refused; an open one still waits for the idle timeout.
func TestClosedTCPFlowsLeaveTheTable(t *testing.T) {
	w := NewWorker(Config{Pool: block.NewPool(4, 1<<20, 4096), Sink: &collectSink{}, MaxFlows: 64, FlowIdle: time.Hour, MaxBlockFlows: 4096})
	cli, srv := netip.AddrFrom4([4]byte{10, 0, 0, 1}), netip.AddrFrom4([4]byte{10, 0, 0, 2})
	seg := func(fromCli bool, port uint16, fl testframe.TCPFlags) []byte {
		f := testframe.Frame{IPv4: &testframe.IPv4{Src: cli, Dst: srv}, TCP: &testframe.TCP{SrcPort: port, DstPort: 80, Flags: fl}}
		if !fromCli {
			f.IPv4.Src, f.IPv4.Dst = srv, cli
			f.TCP.SrcPort, f.TCP.DstPort = 80, port
		}
		return f.Bytes()
	}
	const ms = int64(time.Millisecond)
	ts := int64(1_700_000_000) * 1e9
	var pkts []inPkt
	for i := range 2000 {
		port := uint16(10000 + i)
		ts += 1000 * ms
		pkts = append(pkts, inPkt{ts, 60, seg(true, port, testframe.SYN)}, inPkt{ts + 1, 60, seg(false, port, testframe.SYN|testframe.ACK)})
		if i%2 == 0 {
			pkts = append(pkts, inPkt{ts + 2, 60, seg(true, port, testframe.FIN|testframe.ACK)}, inPkt{ts + 3, 60, seg(false, port, testframe.FIN|testframe.ACK)})
		} else {
			pkts = append(pkts, inPkt{ts + 2, 60, seg(true, port, testframe.RST)})
		}
	}
	// One connection stays open: it must outlive many lingers.
	pkts = append([]inPkt{{ts - 2000*1000*ms - 5, 60, seg(true, 9999, testframe.SYN)}}, pkts...)
	for i := 0; i < len(pkts); i += 32 {
		feed(w, pkts[i:min(i+32, len(pkts))], 0)
		w.Tick(0)
	}
	st := w.flows.Stats()
	if st.Full != 0 {
		t.Fatalf("%d packets found the table full; closed flows must leave after %v", st.Full, CloseLinger)
	}
	found := false
	w.flows.Range(func(e *FlowEntry) { found = found || e.Key.PortA == 9999 || e.Key.PortB == 9999 })
	if !found {
		t.Fatal("the open connection was evicted before its idle timeout")
	}
}
