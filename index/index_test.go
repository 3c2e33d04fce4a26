package index

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"tapvault/block"
	"tapvault/packet"
	"tapvault/writer"
)

// query is one query kind, run against the index and against brute force.
type query struct {
	name string
	run  func(ix *Index, from, to int64) Iterator
	pred func(k *packet.FlowKey) bool // nil: time only
}

func randomQueries(rng *rand.Rand, pop []packet.FlowKey) []query {
	f := pop[rng.IntN(len(pop))]
	h := pop[rng.IntN(len(pop))].B
	port := pop[rng.IntN(len(pop))].PortB
	lo := uint16(1024 + rng.IntN(60000))
	hi := lo + uint16(rng.IntN(3000))
	net4 := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(4)), 0}), 24)
	net6 := netip.MustParsePrefix("2001:db8::/120")
	inNet := func(p netip.Prefix) func(k *packet.FlowKey) bool {
		return func(k *packet.FlowKey) bool {
			return p.Contains(netip.AddrFrom16(k.A).Unmap()) || p.Contains(netip.AddrFrom16(k.B).Unmap())
		}
	}
	ported := func(p uint8, lo, hi uint16) func(k *packet.FlowKey) bool {
		return func(k *packet.FlowKey) bool {
			if p == 0 && !portProto(k.Proto) || p != 0 && k.Proto != p {
				return false
			}
			return k.PortA >= lo && k.PortA <= hi || k.PortB >= lo && k.PortB <= hi
		}
	}
	return []query{
		{"time", func(ix *Index, a, b int64) Iterator { return ix.Time(a, b) }, nil},
		{"flow", func(ix *Index, a, b int64) Iterator { return ix.Flow(f, a, b) },
			func(k *packet.FlowKey) bool { return *k == f }},
		{"flow-any-vlan", func(ix *Index, a, b int64) Iterator { return ix.FlowAnyVLAN(f, a, b) },
			func(k *packet.FlowKey) bool {
				return k.A == f.A && k.B == f.B && k.PortA == f.PortA && k.PortB == f.PortB && k.Proto == f.Proto && k.IPVer == f.IPVer
			}},
		{"host", func(ix *Index, a, b int64) Iterator { return ix.Host(h, a, b) },
			func(k *packet.FlowKey) bool { return k.A == h || k.B == h }},
		{"net4", func(ix *Index, a, b int64) Iterator { return ix.Net(net4, a, b) }, inNet(net4)},
		{"net6", func(ix *Index, a, b int64) Iterator { return ix.Net(net6, a, b) }, inNet(net6)},
		{"port-tcp", func(ix *Index, a, b int64) Iterator { return ix.Port(protoTCP, port, a, b) }, ported(protoTCP, port, port)},
		{"port-any", func(ix *Index, a, b int64) Iterator { return ix.Port(0, port, a, b) }, ported(0, port, port)},
		{"port-range", func(ix *Index, a, b int64) Iterator { return ix.PortRange(0, lo, hi, a, b) }, ported(0, lo, hi)},
		{"port-range-udp", func(ix *Index, a, b int64) Iterator { return ix.PortRange(protoUDP, lo, hi, a, b) }, ported(protoUDP, lo, hi)},
		{"vlan", func(ix *Index, a, b int64) Iterator { return ix.VLAN(100, a, b) },
			func(k *packet.FlowKey) bool { return k.VLAN == 100 || k.VLAN2 == 100 }},
		{"vlan-inner", func(ix *Index, a, b int64) Iterator { return ix.VLAN(201, a, b) },
			func(k *packet.FlowKey) bool { return k.VLAN == 201 || k.VLAN2 == 201 }},
		{"host-and-port", func(ix *Index, a, b int64) Iterator {
			return Intersect(ix.Host(h, a, b), ix.Port(0, port, a, b))
		}, func(k *packet.FlowKey) bool {
			return (k.A == h || k.B == h) && portProto(k.Proto) && (k.PortA == port || k.PortB == port)
		}},
	}
}

// checkQueries compares random queries on ix with brute force over blocks.
// host-and-port is an intersection of blocks, not of flows, so its brute
// force intersects the two block sets.
func checkQueries(t *testing.T, rng *rand.Rand, ix *Index, blocks []testBlock, pop []packet.FlowKey, state string) {
	t.Helper()
	eachQuery(t, rng, ix, blocks, pop, func(name string, from, to int64, got, want []writer.Ref) {
		if !equalRefs(got, want) {
			t.Fatalf("%s: %s [%d, %d]: got %d refs %v, want %d refs %v", state, name, from, to, len(got), trim(got), len(want), trim(want))
		}
	})
}

// eachQuery runs 8 rounds of randomQueries on ix over random time ranges
// (the first the whole store) and calls check with each answer and its
// brute force.
func eachQuery(t *testing.T, rng *rand.Rand, ix *Index, blocks []testBlock, pop []packet.FlowKey, check func(name string, from, to int64, got, want []writer.Ref)) {
	t.Helper()
	first, last := blocks[0].meta.MinTS, blocks[len(blocks)-1].meta.MaxTS
	for round := 0; round < 8; round++ {
		from := first + rng.Int64N(last-first+1)
		to := from + rng.Int64N(last-from+1)
		if round == 0 {
			from, to = first-1, last+1
		}
		qs := randomQueries(rng, pop)
		for _, q := range qs {
			var want []writer.Ref
			if q.name == "host-and-port" {
				want = intersectRefs(expect(blocks, qs[3].pred, from, to), expect(blocks, qs[7].pred, from, to))
			} else {
				want = expect(blocks, q.pred, from, to)
			}
			check(q.name, from, to, drain(t, q.run(ix, from, to)), want)
		}
	}
}

func intersectRefs(a, b []writer.Ref) []writer.Ref {
	var out []writer.Ref
	in := map[writer.Ref]bool{}
	for _, r := range b {
		in[r] = true
	}
	for _, r := range a {
		if in[r] {
			out = append(out, r)
		}
	}
	return out
}

func trim(r []writer.Ref) []writer.Ref {
	if len(r) > 10 {
		return r[:10]
	}
	return r
}

func TestQueriesMatchBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	pop := genFlows(rng, 300)
	blocks := genBlocks(rng, genConfig{segs: 4, perSeg: GroupBlocks + 40, flows: 300, flowsPerBlock: 20, firstSeg: 1, startTS: 1_000_000}, pop)
	dir := t.TempDir()
	ix := openTest(t, dir)
	if err := ix.CatchUp(walker(nil)); err != nil {
		t.Fatal(err)
	}
	// Half through the hook, half with Add.
	half := len(blocks) / 2
	hookPaced(ix, blocks[:half])
	// The rest with Add, two segments interleaved as two writers would.
	var a, b []testBlock
	for _, tb := range blocks[half:] {
		if tb.meta.Ref.Segment() == blocks[len(blocks)-1].meta.Ref.Segment() {
			b = append(b, tb)
		} else {
			a = append(a, tb)
		}
	}
	for len(a)+len(b) > 0 {
		var next testBlock
		if len(b) == 0 || len(a) > 0 && rng.IntN(2) == 0 {
			next, a = a[0], a[1:]
		} else {
			next, b = b[0], b[1:]
		}
		if err := ix.Add(next.meta, &next.sum); err != nil {
			t.Fatal(err)
		}
	}
	// Mixed state: some queued, some in open groups, some written.
	checkQueries(t, rng, ix, blocks, pop, "before flush")
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	if s := ix.Stats(); s.Lag != 0 || s.Blocks != uint64(len(blocks)) {
		t.Fatalf("after flush: got lag %d, %d blocks indexed, want 0 and %d", s.Lag, s.Blocks, len(blocks))
	}
	checkQueries(t, rng, ix, blocks, pop, "after flush")
	for _, b := range blocks[:50] {
		m, ok := ix.Meta(b.meta.Ref)
		if !ok || m != b.meta {
			t.Fatalf("meta %v: got %+v %v, want %+v", b.meta.Ref, m, ok, b.meta)
		}
	}
	if _, ok := ix.Meta(writer.MakeRef(99, 1)); ok {
		t.Fatalf("meta of an unknown block: got ok, want not found")
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	// Read-only, as queries open it: several at once, nothing written.
	ro, err := Open(Options{Dir: dir, ReadOnly: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ro2, err := Open(Options{Dir: dir, ReadOnly: true, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("second read-only open: %v", err)
	}
	checkQueries(t, rng, ro, blocks, pop, "read-only")
	if err := ro.Add(blocks[0].meta, &blocks[0].sum); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("add on a read-only index: got %v, want ErrReadOnly", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatalf("close read-only: %v", err)
	}
	if err := ro2.Close(); err != nil {
		t.Fatalf("close read-only: %v", err)
	}

	ix, err = Open(Options{Dir: dir, Logger: quietLogger(), SketchAbove: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	checkQueries(t, rng, ix, blocks, pop, "after reopen")
	if got, want := ix.Watermark(), blocks[len(blocks)-1].meta.Ref; got != want {
		t.Fatalf("watermark after reopen: got %v, want %v", got, want)
	}
}

func TestTimeOverlapEdges(t *testing.T) {
	ix := openTest(t, t.TempDir())
	defer ix.Close()
	blocks := []testBlock{
		{meta: writer.BlockMeta{Ref: writer.MakeRef(1, 0), MinTS: 100, MaxTS: 200}},
		{meta: writer.BlockMeta{Ref: writer.MakeRef(1, 10), MinTS: 150, MaxTS: 150}},
		{meta: writer.BlockMeta{Ref: writer.MakeRef(1, 20), MinTS: 201, MaxTS: 300}},
		{meta: writer.BlockMeta{Ref: writer.MakeRef(2, 0), MinTS: -50, MaxTS: 1000}}, // spans all
	}
	cases := []struct {
		from, to int64
		want     []writer.Ref
	}{
		{200, 200, []writer.Ref{blocks[0].meta.Ref, blocks[3].meta.Ref}},
		{201, 201, []writer.Ref{blocks[2].meta.Ref, blocks[3].meta.Ref}},
		{0, 99, []writer.Ref{blocks[3].meta.Ref}},
		{150, 150, []writer.Ref{blocks[0].meta.Ref, blocks[1].meta.Ref, blocks[3].meta.Ref}},
		{300, 300, []writer.Ref{blocks[2].meta.Ref, blocks[3].meta.Ref}},
		{1001, 2000, nil},
		{-100, -51, nil},
	}
	for _, state := range []string{"memory", "disk"} {
		if state == "memory" {
			for i := range blocks {
				if err := ix.Add(blocks[i].meta, &blocks[i].sum); err != nil {
					t.Fatal(err)
				}
			}
		} else if err := ix.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			if got := drain(t, ix.Time(c.from, c.to)); !equalRefs(got, c.want) {
				t.Fatalf("%s: time [%d, %d]: got %v, want %v", state, c.from, c.to, got, c.want)
			}
		}
	}
}

// allKeys lists every key in the database.
func allKeys(t *testing.T, ix *Index) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := ix.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out[string(it.Item().KeyCopy(nil))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// keySegment is the segment a key belongs to, or -1 for keys of no segment.
func keySegment(k []byte) int64 {
	switch k[0] {
	case kindData, kindSegment:
		return int64(binary.BigEndian.Uint32(k[1:]))
	case kindMissing:
		return int64(writer.Ref(be64(k[1:])).Segment())
	}
	return -1
}

func be64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

func TestDropSegmentWhileWriting(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	pop := genFlows(rng, 200)
	old := genBlocks(rng, genConfig{segs: 3, perSeg: 300, flowsPerBlock: 30, firstSeg: 1, startTS: 1000}, pop)
	fresh := genBlocks(rng, genConfig{segs: 2, perSeg: 400, flowsPerBlock: 30, firstSeg: 4, startTS: 10_000_000}, pop)
	ix := openTest(t, t.TempDir())
	defer ix.Close()
	for i := range old {
		if err := ix.Add(old[i].meta, &old[i].sum); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	before := allKeys(t, ix)
	checkQueries(t, rng, ix, old, pop, "before drop") // fills the span cache

	// Keep writing segments 4 and 5 through the hook while segment 2 goes.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		hookPaced(ix, fresh)
	}()
	seg2 := old[300:600]
	err := ix.DropSegment(2, func(fn func(writer.BlockMeta, *block.Summary) error) error {
		for i := range seg2 {
			if err := fn(seg2[i].meta, &seg2[i].sum); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	if d := ix.Stats().QueueDrops; d != 0 {
		// The queue is 256 deep and the batcher keeps up here; a drop would
		// make the comparison below meaningless.
		t.Fatalf("got %d queue drops, want 0", d)
	}
	after := allKeys(t, ix)
	for k := range before {
		seg := keySegment([]byte(k))
		if seg == -2 {
			t.Fatalf("unparsable key %x", k)
		}
		if seg == 2 && after[k] {
			t.Fatalf("key %q of segment 2 survived the drop", k[:1])
		}
		if seg != 2 && seg != -1 && !after[k] {
			t.Fatalf("key %q of segment %d lost by the drop of segment 2", k[:1], seg)
		}
	}
	var freshKeys int
	for k := range after {
		if s := keySegment([]byte(k)); s == 2 {
			t.Fatalf("key %q of segment 2 present after the drop", k[:1])
		} else if s >= 4 {
			freshKeys++
		}
	}
	if freshKeys == 0 {
		t.Fatalf("got no keys for the segments written during the drop, want some")
	}
	// Queries agree with the blocks that remain.
	remain := append(append(append([]testBlock(nil), old[:300]...), old[600:]...), fresh...)
	checkQueries(t, rng, ix, remain, pop, "after drop")
}

func TestOpenMissingAndCorrupt(t *testing.T) {
	root := t.TempDir()
	missing := filepath.Join(root, "none")
	if _, err := Open(Options{Dir: missing, Logger: quietLogger()}); !errors.Is(err, ErrMissing) {
		t.Fatalf("missing dir: got %v, want ErrMissing", err)
	}
	empty := filepath.Join(root, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: empty, Logger: quietLogger()}); !errors.Is(err, ErrMissing) {
		t.Fatalf("empty dir: got %v, want ErrMissing", err)
	}

	garbage := filepath.Join(root, "garbage")
	if err := os.Mkdir(garbage, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(garbage, badger.ManifestFilename), []byte("not a manifest at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Options{Dir: garbage, Logger: quietLogger()})
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Dir != garbage {
		t.Fatalf("garbage manifest: got %v, want a *CorruptError for %s", err, garbage)
	}

	// A Badger database that is not an index (no format marker).
	foreign := filepath.Join(root, "foreign")
	db, err := badger.Open(badger.DefaultOptions(foreign).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("hello"), []byte("world")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(Options{Dir: foreign, Logger: quietLogger()}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("foreign badger db: got %v, want ErrCorrupt", err)
	}

	// A held directory is busy, not corrupt: neither a second writer nor a
	// reader gets in while a writer holds it.
	held := filepath.Join(root, "held")
	ix0, err := Open(Options{Dir: held, Create: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		_, err := Open(Options{Dir: held, ReadOnly: ro, Logger: quietLogger()})
		if !errors.Is(err, ErrBusy) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("held dir, read-only %v: got %v, want ErrBusy and not ErrCorrupt", ro, err)
		}
	}
	ix0.Close()

	// Create makes a new one, which then opens without Create.
	fresh := filepath.Join(root, "fresh")
	ix, err := Open(Options{Dir: fresh, Create: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
	ix, err = Open(Options{Dir: fresh, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	ix.Close()
}

func TestDropsWatermarkCatchUp(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	pop := genFlows(rng, 100)
	blocks := genBlocks(rng, genConfig{segs: 2, perSeg: 100, flowsPerBlock: 10, firstSeg: 1, startTS: 5000}, pop)
	dir := t.TempDir()
	ix, err := Open(Options{Dir: dir, Create: true, QueueLen: 4, Logger: quietLogger(), SketchAbove: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.CatchUp(walker(nil)); err != nil {
		t.Fatal(err)
	}
	hook := ix.Hook()
	hookPaced(ix, blocks[:40])
	// Stall the batcher so the queue fills: blocks 40..59 see a full queue
	// from the 5th on.
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	ix.gmu.Lock()
	for i := 40; i < 60; i++ {
		hook(blocks[i].meta, &blocks[i].sum)
	}
	ix.gmu.Unlock()
	hookPaced(ix, blocks[60:])
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	s := ix.Stats()
	if s.QueueDrops != 16 || s.Holes != 16 {
		t.Fatalf("got %d drops, %d holes, want 16 and 16", s.QueueDrops, s.Holes)
	}
	missing := ix.Missing()
	for i, r := range missing {
		if want := blocks[44+i].meta.Ref; r != want {
			t.Fatalf("missing[%d]: got %v, want %v", i, r, want)
		}
	}
	if got, want := ix.Watermark(), blocks[43].meta.Ref; got != want {
		t.Fatalf("watermark with holes: got %v, want %v", got, want)
	}
	// The dropped blocks are not findable yet.
	got := drain(t, ix.Time(blocks[0].meta.MinTS, blocks[len(blocks)-1].meta.MaxTS))
	if len(got) != len(blocks)-16 {
		t.Fatalf("time query with holes: got %d blocks, want %d", len(got), len(blocks)-16)
	}

	// A restart keeps the holes and the watermark.
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ix, err = Open(Options{Dir: dir, Logger: quietLogger(), SketchAbove: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if got, want := ix.Watermark(), blocks[43].meta.Ref; got != want {
		t.Fatalf("watermark after reopen: got %v, want %v", got, want)
	}
	if got := len(ix.Missing()); got != 16 {
		t.Fatalf("holes after reopen: got %d, want 16", got)
	}
	if err := ix.CatchUp(walker(blocks)); err != nil {
		t.Fatal(err)
	}
	s = ix.Stats()
	if s.Holes != 0 || s.Lag != 0 {
		t.Fatalf("after catch-up: got %d holes, lag %d, want 0 and 0", s.Holes, s.Lag)
	}
	if got, want := ix.Watermark(), blocks[len(blocks)-1].meta.Ref; got != want {
		t.Fatalf("watermark after catch-up: got %v, want %v", got, want)
	}
	checkQueries(t, rng, ix, blocks, pop, "after catch-up")
	var keys int
	err = ix.db.View(func(txn *badger.Txn) error {
		return scanPrefix(txn, []byte{kindMissing}, func([]byte) error { keys++; return nil })
	})
	if err != nil || keys != 0 {
		t.Fatalf("hole markers after catch-up: got %d (%v), want 0", keys, err)
	}
}

// TestCrashReaddGeneration indexes the same blocks twice, as a restart after
// a crash does for the blocks past the watermark, grouped differently: the
// second grouping gets a new generation and answers stay exact.
func TestCrashReaddGeneration(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	pop := genFlows(rng, 50)
	blocks := genBlocks(rng, genConfig{segs: 1, perSeg: 60, flowsPerBlock: 8, firstSeg: 3, startTS: 1}, pop)
	ix := openTest(t, t.TempDir())
	defer ix.Close()
	for i := range blocks[:20] {
		if err := ix.Add(blocks[i].meta, &blocks[i].sum); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	// Again from block 0, now as one group of 60: the member at position k
	// of group (block 0, gen 1) differs from gen 0 only past 20.
	for i := range blocks {
		if err := ix.Add(blocks[i].meta, &blocks[i].sum); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	checkQueries(t, rng, ix, blocks, pop, "after re-add")
	var gens = map[uint8]bool{}
	err := ix.db.View(func(txn *badger.Txn) error {
		return scanPrefix(txn, appendBlockPrefix(nil, blocks[0].meta.Ref), func(k []byte) error {
			e, err := parseBlockKey(k)
			gens[e.Group.Gen] = true
			return err
		})
	})
	if err != nil || len(gens) != 2 {
		t.Fatalf("generations at the first block: got %v (%v), want 0 and 1", gens, err)
	}
}

// TestQueryableAtOnce checks that a block is found by every iterator kind as
// soon as the hook returns, while the batcher is busy.
func TestQueryableAtOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	pop := genFlows(rng, 500)
	blocks := genBlocks(rng, genConfig{segs: 2, perSeg: 300, flowsPerBlock: 100, firstSeg: 1, startTS: 1}, pop)
	ix := openTest(t, t.TempDir())
	defer ix.Close()
	for i := range blocks {
		b := &blocks[i]
		hookPaced(ix, blocks[i:i+1])
		f := b.sum.Flows[rng.IntN(len(b.sum.Flows))].Key
		it := Intersect(ix.Flow(f, b.meta.MinTS, b.meta.MaxTS), ix.Host(f.A, b.meta.MinTS, b.meta.MaxTS), ix.Time(b.meta.MaxTS, b.meta.MaxTS))
		if !it.Seek(b.meta.Ref) || it.At() != b.meta.Ref {
			t.Fatalf("block %d (%v) not found right after its hook", i, b.meta.Ref)
		}
		it.Close()
	}
}
