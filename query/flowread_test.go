package query

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"tapvault/block"
	"tapvault/index"
	"tapvault/packet"
	"tapvault/pcap"
	"tapvault/tracegen"
	"tapvault/writer"
)

// writeTraceStore writes the frames of opts into a new store in dir, in
// 1 MiB blocks built as a worker builds them, with timestamps tsOf(i), and
// returns the distinct flow keys seen.
func writeTraceStore(t testing.TB, dir string, opts tracegen.Options, tsOf func(int) int64) []packet.FlowKey {
	t.Helper()
	w, err := writer.Open(writer.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	pool := block.NewPool(4, block.DefaultSize, block.DefaultMaxFlows)
	var (
		dec  packet.Decoder
		d    packet.Decoded
		b    *block.Block
		idx  map[packet.FlowKey]int
		keys []packet.FlowKey
		seen = map[packet.FlowKey]bool{}
		i    int
	)
	submit := func() {
		if b != nil && b.Count > 0 && !w.Submit(b) {
			t.Fatal("Submit: got false")
		}
		b = nil
	}
	_, err = tracegen.GenerateFrames(opts, func(_ int64, f []byte) error {
		if b != nil && len(b.Data)+block.RecordHeaderSize+len(f) > block.DefaultSize {
			submit()
		}
		for b == nil {
			if b = pool.Get(); b == nil {
				time.Sleep(100 * time.Microsecond)
			}
			idx = map[packet.FlowKey]int{}
		}
		ts := tsOf(i)
		i++
		b.Data = appendRec(b.Data, ts, f)
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
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
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
	if err != nil {
		t.Fatal(err)
	}
	submit()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// flowExpr is the filter for flow k.
func flowExpr(k packet.FlowKey, proto bool) string {
	a, b := netip.AddrFrom16(k.A), netip.AddrFrom16(k.B)
	if k.IPVer == 4 {
		a, b = a.Unmap(), b.Unmap()
	}
	e := fmt.Sprintf("flow %s <> %s", netip.AddrPortFrom(a, k.PortA), netip.AddrPortFrom(b, k.PortB))
	if proto {
		e = planProto(k.Proto) + " " + e
	}
	return e
}

type gotPacket struct {
	ref  writer.Ref
	ord  uint32
	ts   int64
	data []byte
}

// A flow query, which reads only the sub-frames holding the flow, returns
// exactly what filtering every packet of every block returns: the same
// packets, times, order and ordinals. The store has equal timestamps and
// time stepping back inside blocks.
func TestFlowQueryReadsSubFrames(t *testing.T) {
	dir := t.TempDir()
	keys := writeTraceStore(t, dir, tracegen.Options{Kind: tracegen.KindMixed, Packets: 30000, Flows: 2000, Seed: 8},
		func(i int) int64 { return 1e18 + int64(i%5000/2)*1000 - int64(i/5000)*7 })
	st, err := OpenStore(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	blocks, err := st.Blocks(MinTime, MaxTime)
	if err != nil {
		t.Fatal(err)
	}
	full := func(f *Filter) []gotPacket {
		var out []gotPacket
		var dec packet.Decoder
		var d packet.Decoded
		bl := append([]writer.BlockMeta(nil), blocks...)
		ms, err := Merge(st.R, bl, MinTime, MaxTime, nil, func(p *Packet) error {
			dec.Decode(p.Data, p.LinkType, &d)
			if f.Match(&d) {
				out = append(out, gotPacket{p.Ref, p.Ordinal, p.TS, bytes.Clone(p.Data)})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if ms.Frames < len(blocks) {
			t.Fatalf("full read: %d frames decompressed for %d blocks", ms.Frames, len(blocks))
		}
		return out
	}
	checked := 0
	for i, k := range keys {
		if i%97 != 0 || (k.Proto != 6 && k.Proto != 17) || k.PortA == 0 || k.PortB == 0 {
			continue
		}
		for _, proto := range []bool{true, false} {
			expr := flowExpr(k, proto)
			f, err := ParseFilter(expr)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := f.Plan().FlowHashes(); !ok {
				t.Fatalf("%q: plan %v names no flow hashes", expr, f.Plan())
			}
			want := full(f)
			var got []gotPacket
			res, err := st.Run(context.Background(), Request{From: MinTime, To: MaxTime, Filter: f}, func(p *Packet) error {
				got = append(got, gotPacket{p.Ref, p.Ordinal, p.TS, bytes.Clone(p.Data)})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				t.Fatalf("%q: no packets in the full read", expr)
			}
			if len(got) != len(want) {
				t.Fatalf("%q: %d packets, the full read has %d", expr, len(got), len(want))
			}
			for j := range got {
				if got[j].ref != want[j].ref || got[j].ord != want[j].ord || got[j].ts != want[j].ts || !bytes.Equal(got[j].data, want[j].data) {
					for x := range min(len(got), 6) {
						t.Logf("got %v/%d %d %x want %v/%d %d %x", got[x].ref, got[x].ord, got[x].ts, got[x].data[:8], want[x].ref, want[x].ord, want[x].ts, want[x].data[:8])
					}
					t.Fatalf("%q: packet %d is %v/%d at %d, the full read's %v/%d at %d", expr, j, got[j].ref, got[j].ord, got[j].ts, want[j].ref, want[j].ord, want[j].ts)
				}
			}
			// It decompressed a small part of each block it read.
			if res.RawBytes*4 > int64(res.Blocks)*block.DefaultSize {
				t.Fatalf("%q: decompressed %d bytes from %d blocks (%d frames): more than a quarter of each", expr, res.RawBytes, res.Blocks, res.Frames)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d flows", checked)
	}
}

// Plans name flow hashes only when every matching packet lies in the named
// flows.
func TestPlanFlowHashes(t *testing.T) {
	for _, c := range []struct {
		expr string
		n    int // hashes, -1 for none
	}{
		{"tcp flow 10.0.0.1:1 <> 10.0.0.2:2", 1},
		{"flow 10.0.0.1:1 <> 10.0.0.2:2", 1}, // tcp, udp and sctp: the hash leaves the protocol out
		{"tcp flow 10.0.0.1:1 <> 10.0.0.2:2 or tcp flow 10.0.0.1:1 <> 10.0.0.3:2", 2},
		{"tcp flow 10.0.0.1:1 <> 10.0.0.2:2 and not vlan 5", 1},
		{"tcp flow 10.0.0.1:1 <> 10.0.0.2:2 or udp flow 10.0.0.1:1 <> 10.0.0.2:2", 1},
		{"tcp flow 10.0.0.1:1 <> 10.0.0.2:2 or host 10.0.0.3", -1},
		{"host 10.0.0.1 and port 1", -1},
		{"flow 10.0.0.1 <> 10.0.0.2", -1},
		{"not tcp flow 10.0.0.1:1 <> 10.0.0.2:2", -1},
	} {
		f, err := ParseFilter(c.expr)
		if err != nil {
			t.Fatal(err)
		}
		h, ok := f.Plan().FlowHashes()
		if n := len(h); (c.n < 0 && ok) || (c.n >= 0 && (!ok || n != c.n)) {
			t.Errorf("%q: FlowHashes %v %v, want %d", c.expr, h, ok, c.n)
		}
	}
}

// indexStore indexes the first n blocks of the store in dir (n < 0: all),
// as reindex does.
func indexStore(t *testing.T, dir string, n int) {
	t.Helper()
	r, err := writer.OpenReader(dir, writer.WithReaderLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ix, err := index.Open(index.Options{Dir: index.DirOf(dir), Create: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	err = ix.CatchUp(func(from writer.Ref, fn func(writer.BlockMeta, *block.Summary) error) error {
		err := r.WalkSummaries(from, func(m writer.BlockMeta, s *block.Summary) error {
			if n == 0 {
				return stop
			}
			n--
			return fn(m, s)
		})
		if errors.Is(err, stop) {
			return nil
		}
		return err
	})
	if cerr := ix.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// flowQueryMatchesFullRead runs the query for expr and checks it against
// filtering every packet of every block; it returns the query's result.
func flowQueryMatchesFullRead(t *testing.T, st *Store, expr string) Result {
	t.Helper()
	f, err := ParseFilter(expr)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := st.Blocks(MinTime, MaxTime)
	if err != nil {
		t.Fatal(err)
	}
	var want, got []gotPacket
	var dec packet.Decoder
	var d packet.Decoded
	if _, err := Merge(st.R, blocks, MinTime, MaxTime, nil, func(p *Packet) error {
		if dec.Decode(p.Data, p.LinkType, &d); f.Match(&d) {
			want = append(want, gotPacket{p.Ref, p.Ordinal, p.TS, bytes.Clone(p.Data)})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res, err := st.Run(context.Background(), Request{From: MinTime, To: MaxTime, Filter: f}, func(p *Packet) error {
		got = append(got, gotPacket{p.Ref, p.Ordinal, p.TS, bytes.Clone(p.Data)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("%q: %d packets, the full read has %d", expr, len(got), len(want))
	}
	for j := range got {
		if got[j].ref != want[j].ref || got[j].ord != want[j].ord || got[j].ts != want[j].ts || !bytes.Equal(got[j].data, want[j].data) {
			t.Fatalf("%q: packet %d differs from the full read's", expr, j)
		}
	}
	return res
}

// Blocks written after the index's watermark are found by the header scan,
// in the watermark's segment and in later ones, and a watermark at the
// segment's last block skips the scan: the answer is the full read's
// either way.
func TestFlowQueryIndexWatermark(t *testing.T) {
	opts := tracegen.Options{Kind: tracegen.KindIMIX, Packets: 12000, Flows: 30, Seed: 21}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		name      string
		indexed   int // blocks indexed; -1 all
		more      bool
		unindexed bool
	}{
		{"all indexed", -1, false, false},
		{"watermark mid-segment", 2, false, true},
		{"later segment", -1, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			keys := writeTraceStore(t, dir, opts, func(i int) int64 { return 1e18 + int64(i)*1000 })
			indexStore(t, dir, c.indexed)
			if c.more { // the same flows again, later, in a new segment
				writeTraceStore(t, dir, opts, func(i int) int64 { return 2e18 + int64(i)*1000 })
			}
			st, err := OpenStore(dir, quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			res := flowQueryMatchesFullRead(t, st, flowExpr(keys[0], true))
			if !res.Plan.Indexed || (res.Plan.Unindexed > 0) != c.unindexed || res.Plan.FromIndex == 0 {
				t.Fatalf("plan %+v, want unindexed blocks: %v", res.Plan, c.unindexed)
			}
		})
	}
}

// A filter that selects by host, net or port without naming a flow reads,
// of each block, the sub-frames of the flows its summary lists that the
// plan accepts (summaryFlowReader), and returns exactly what filtering
// every packet of every block returns; one whose plan may match non-IP
// packets (a VLAN term) reads blocks with such packets whole. The store is
// a mixed trace (TCP, UDP, ICMP, ARP and other non-flow packets).
func TestSummaryFlowReadMatchesFullRead(t *testing.T) {
	dir := t.TempDir()
	keys := writeTraceStore(t, dir, tracegen.Options{Kind: tracegen.KindMixed, Packets: 30000, Flows: 2000, Seed: 11},
		func(i int) int64 { return 1e18 + int64(i)*1000 })
	st, err := OpenStore(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var exprs []string
	for i, k := range keys {
		if i%211 != 0 || k.PortA == 0 || k.PortB == 0 || (k.Proto != 6 && k.Proto != 17) {
			continue
		}
		a, b := netip.AddrFrom16(k.A), netip.AddrFrom16(k.B)
		if k.IPVer == 4 {
			a, b = a.Unmap(), b.Unmap()
		}
		exprs = append(exprs,
			fmt.Sprintf("host %s and port %d", a, k.PortA),
			fmt.Sprintf("host %s", b),
			fmt.Sprintf("%s port %d and host %s", planProto(k.Proto), k.PortB, a),
			fmt.Sprintf("host %s or host %s", a, b),
			fmt.Sprintf("host %s and not port 1", a),
		)
		if k.IPVer == 4 {
			exprs = append(exprs, fmt.Sprintf("net %s and port %d", netip.PrefixFrom(a, 24).Masked(), k.PortA))
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("only %d expressions", len(exprs))
	}
	var partial int
	for _, expr := range exprs {
		res := flowQueryMatchesFullRead(t, st, expr)
		if res.RawBytes*2 < int64(res.Blocks)*block.DefaultSize {
			partial++
		}
	}
	// Most of them read less than half of each block they opened.
	if partial*2 < len(exprs) {
		t.Fatalf("%d of %d queries read less than half of their blocks", partial, len(exprs))
	}
}
