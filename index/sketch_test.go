package index

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/FastFilter/xorfilter"
	"github.com/dgraph-io/badger/v4"

	"tapvault/block"
	"tapvault/packet"
	"tapvault/writer"
)

// singleFlowBlocks makes blocks of flows seen once each (a scan: new
// client addresses and ports every packet), the load sketches are for.
func singleFlowBlocks(rng *rand.Rand, nblocks, perBlock int) ([]testBlock, []packet.FlowKey) {
	var (
		out []testBlock
		pop []packet.FlowKey
		ts  = int64(1_000_000)
		off uint32
	)
	for b := range nblocks {
		tb := testBlock{meta: writer.BlockMeta{Ref: writer.MakeRef(1, off), Count: uint32(perBlock), MinTS: ts, MaxTS: ts + 1000,
			RawLen: 1 << 20, StoredLen: 1 << 20, Codec: writer.CodecZstd}}
		off += 1<<20 + 64
		ts += 900
		for i := range perBlock {
			k := packet.FlowKey{IPVer: 4, Proto: protoUDP,
				A:     v4(10, byte(b), byte(i>>8), byte(i)),
				B:     v4(192, 0, 2, byte(rng.IntN(4))),
				PortA: uint16(1024 + rng.IntN(60000)), PortB: 53}
			if i%7 == 0 {
				k.Proto = protoTCP
				k.PortB = 443
				k.VLAN = 10
			}
			pop = append(pop, k)
			tb.sum.Flows = append(tb.sum.Flows, block.FlowStat{Key: k, Pkts: [2]uint32{1, 0}})
		}
		out = append(out, tb)
	}
	return out, pop
}

// TestSketchGroups: a group of single-packet flows is written as sketches,
// and every query's answer holds every block brute force finds (no block
// is missed), with few others: false positives of about 1/256 a block for
// a query on one value, every block for a range.
func TestSketchGroups(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	blocks, pop := singleFlowBlocks(rng, 40, 3000)
	dir := t.TempDir()
	ix := openTestOpts(t, Options{Dir: dir, Create: true, Logger: quietLogger()})
	for i := range blocks {
		if err := ix.Add(blocks[i].meta, &blocks[i].sum); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	st := ix.Stats()
	if st.Sketched == 0 || st.Sketched != st.Groups {
		t.Fatalf("sketched groups: got %d of %d, want all", st.Sketched, st.Groups)
	}
	check := func(ix *Index, state string) {
		t.Helper()
		extra, asked := 0, 0
		from, to := blocks[0].meta.MinTS, blocks[len(blocks)-1].meta.MaxTS
		for q := range 300 {
			f := pop[rng.IntN(len(pop))]
			var (
				it   Iterator
				pred func(k *packet.FlowKey) bool
			)
			switch q % 6 {
			case 0:
				it, pred = ix.Flow(f, from, to), func(k *packet.FlowKey) bool { return *k == f }
			case 5:
				it, pred = ix.FlowAnyVLAN(f, from, to), func(k *packet.FlowKey) bool {
					return k.A == f.A && k.B == f.B && k.PortA == f.PortA && k.PortB == f.PortB && k.Proto == f.Proto && k.IPVer == f.IPVer
				}
			case 1:
				it, pred = ix.Host(f.A, from, to), func(k *packet.FlowKey) bool { return k.A == f.A || k.B == f.A }
			case 2:
				it, pred = ix.Port(f.Proto, f.PortA, from, to), func(k *packet.FlowKey) bool {
					return k.Proto == f.Proto && (k.PortA == f.PortA || k.PortB == f.PortA)
				}
			case 3:
				it, pred = ix.VLAN(10, from, to), func(k *packet.FlowKey) bool { return k.VLAN == 10 }
			case 4:
				// A time range inside the store: the blocks outside it
				// are left out whatever their sketch says.
				a := blocks[10].meta.MinTS
				b := blocks[20].meta.MaxTS
				it, pred = ix.Host(f.A, a, b), func(k *packet.FlowKey) bool { return k.A == f.A || k.B == f.A }
				got := drain(t, it)
				want := expect(blocks, pred, a, b)
				subset(t, state, "blocks in the range", got, expect(blocks, nil, a, b))
				extra += subset(t, state, "host in a range", want, got)
				asked++
				continue
			}
			got := drain(t, it)
			want := expect(blocks, pred, from, to)
			extra += subset(t, state, "query", want, got)
			asked++
		}
		// 300 queries over 40 blocks at 1/256: about 47 false blocks.
		if extra > 150 {
			t.Fatalf("%s: %d blocks more than brute force over %d queries, want about %d", state, extra, asked, asked*len(blocks)/256)
		}
		// A range keeps every sketched block in time.
		p := netip.MustParsePrefix("10.3.0.0/16")
		got := drain(t, ix.Net(p, from, to))
		if len(got) != len(blocks) {
			t.Fatalf("%s: net %v: got %d blocks, want all %d of the sketched groups", state, p, len(got), len(blocks))
		}
	}
	check(ix, "written")
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(Options{Dir: dir, ReadOnly: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	check(ro, "read-only")
}

// subset fails unless got holds every ref of want, and returns how many
// more it has.
func subset(t *testing.T, state, what string, want, got []writer.Ref) int {
	t.Helper()
	in := map[writer.Ref]bool{}
	for _, r := range got {
		in[r] = true
	}
	for _, r := range want {
		if !in[r] {
			t.Fatalf("%s: %s: block %v missing: got %v, want at least %v", state, what, r, trim(got), trim(want))
		}
	}
	return len(got) - len(want)
}

// TestSketchValueDamage: a sketch value cut or with a damaged header is an
// error, never a panic in Contains.
func TestSketchValueDamage(t *testing.T) {
	var b sketchBuilder
	blocks, _ := singleFlowBlocks(rand.New(rand.NewPCG(1, 2)), 1, 500)
	g := &group{}
	g.add(blocks[0].meta, 0, flowKeys(blocks[0].sum.Flows), 0)
	vals, err := b.build(g)
	if err != nil {
		t.Fatal(err)
	}
	v := vals[0]
	if _, err := parseSketch(v); err != nil {
		t.Fatalf("good value: %v", err)
	}
	for _, cut := range []int{0, 1, sketchHeaderSize - 1, sketchHeaderSize, len(v) / 2, len(v) - 1} {
		if _, err := parseSketch(v[:cut]); err == nil {
			t.Fatalf("value cut at %d of %d: parsed", cut, len(v))
		}
	}
	for i := 0; i < sketchHeaderSize; i++ {
		for bit := range 8 {
			d := append([]byte(nil), v...)
			d[i] ^= 1 << bit
			s, err := parseSketch(d)
			if err != nil {
				continue
			}
			for h := range uint64(2000) {
				s.has(h * 0x9E3779B97F4A7C15) // must not panic
			}
		}
	}
}

func flowKeys(fs []block.FlowStat) []packet.FlowKey {
	out := make([]packet.FlowKey, len(fs))
	for i := range fs {
		out[i] = fs[i].Key
	}
	return out
}

// TestSketchQueriesSuperset: every query kind of the exact tests (flows,
// any VLAN, hosts, networks, ports, port ranges, VLANs, intersections) on
// synthetic blocks of a few KB, which are sketched at the default
// threshold, in memory and written: never a block missed.
func TestSketchQueriesSuperset(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	pop := genFlows(rng, 3000)
	blocks := genBlocks(rng, genConfig{segs: 2, perSeg: 300, flows: 3000, flowsPerBlock: 20, firstSeg: 1, startTS: 1_000_000}, pop)
	ix := openTestOpts(t, Options{Dir: t.TempDir(), Create: true, Logger: quietLogger()})
	defer ix.Close()
	for i := range blocks {
		if err := ix.Add(blocks[i].meta, &blocks[i].sum); err != nil {
			t.Fatal(err)
		}
	}
	run := func(state string) {
		eachQuery(t, rng, ix, blocks, pop, func(name string, from, to int64, got, want []writer.Ref) {
			subset(t, state, name, want, got)
			subset(t, state, name+" in time", got, expect(blocks, nil, from, to))
		})
	}
	run("in memory")
	if err := ix.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := ix.Stats(); st.Sketched == 0 {
		t.Fatalf("no group sketched: %+v", st)
	}
	run("written")
}

// TestFormatVersion2: an index of the version before sketches is read as
// it is, and marked version 3 when opened for writing, so that an older
// tapvault takes it for another format rather than miss sketched blocks.
func TestFormatVersion2(t *testing.T) {
	dir := t.TempDir()
	ix := openTest(t, dir)
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	marker := func() []byte {
		t.Helper()
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var got []byte
		db.View(func(txn *badger.Txn) error {
			return scanPrefix(txn, []byte{kindFormat}, func(k []byte) error { got = append([]byte(nil), k...); return nil })
		})
		return got
	}
	// Make it a version 2 index.
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(appendFormatKey(nil)); err != nil {
			return err
		}
		return txn.Set(appendFormatKeyVersion(nil, formatVersionNoSketch), nil)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	ro, err := Open(Options{Dir: dir, ReadOnly: true, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("read-only open of a version 2 index: %v", err)
	}
	ro.Close()
	if got, want := marker(), appendFormatKeyVersion(nil, formatVersionNoSketch); string(got) != string(want) {
		t.Fatalf("after a read-only open: marker %x, want %x (unchanged)", got, want)
	}
	ix, err = Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open of a version 2 index: %v", err)
	}
	ix.Close()
	if got, want := marker(), appendFormatKey(nil); string(got) != string(want) {
		t.Fatalf("after a read-write open: marker %x, want %x", got, want)
	}
}

// TestSketchCountLength: a count length that is not a multiple of the
// segment length lets Contains read past the fingerprints: refused.
func TestSketchCountLength(t *testing.T) {
	v := appendSketch(nil, &xorfilter.BinaryFuse8{SegmentLength: 4, SegmentLengthMask: 3, SegmentCountLength: 5, Fingerprints: make([]uint8, 13)})
	if _, err := parseSketch(v); err == nil {
		t.Fatal("count length 5 with segment length 4: parsed")
	}
	// A count length of 0: the first position is 0 and the last 3 segment
	// lengths on (found by FuzzParseSketch).
	v = appendSketch(nil, &xorfilter.BinaryFuse8{SegmentLength: 64, SegmentLengthMask: 63, Fingerprints: make([]uint8, 128)})
	if _, err := parseSketch(v); err == nil {
		t.Fatal("count length 0: parsed")
	}
}

// FuzzParseSketch: any value either fails to parse or answers every hash
// without a panic (a damaged index never crashes a query).
func FuzzParseSketch(f *testing.F) {
	var b sketchBuilder
	blocks, _ := singleFlowBlocks(rand.New(rand.NewPCG(3, 4)), 1, 50)
	g := &group{}
	g.add(blocks[0].meta, 0, flowKeys(blocks[0].sum.Flows), 0)
	vals, err := b.build(g)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(vals[0])
	f.Add(vals[0][:sketchHeaderSize])
	f.Add([]byte{sketchVersion})
	f.Fuzz(func(t *testing.T, v []byte) {
		s, err := parseSketch(v)
		if err != nil {
			return
		}
		for h := range uint64(512) {
			s.has(h * 0x9E3779B97F4A7C15)
		}
	})
}
