package index

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"

	"tapvault/block"
	"tapvault/packet"
	"tapvault/writer"
)

// testBlock is one synthetic committed block.
type testBlock struct {
	meta writer.BlockMeta
	sum  block.Summary
}

type genConfig struct {
	segs, perSeg  int // segments and blocks per segment
	flows         int // distinct flows in the population
	flowsPerBlock int
	firstSeg      uint32
	startTS       int64
}

func v4(a, b, c, d byte) [16]byte {
	return netip.AddrFrom4([4]byte{a, b, c, d}).As16()
}

// genFlows makes a population of flows: a few servers, many clients, mixed
// protocols and VLANs.
func genFlows(rng *rand.Rand, n int) []packet.FlowKey {
	flows := make([]packet.FlowKey, n)
	protos := []uint8{protoTCP, protoTCP, protoTCP, protoUDP, protoUDP, protoSCTP, 1}
	servicePorts := []uint16{22, 53, 80, 443, 8080, 5060}
	for i := range flows {
		k := &flows[i]
		k.A = v4(10, 0, byte(rng.IntN(4)), byte(rng.IntN(250)))
		if rng.IntN(10) == 0 {
			k.B = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(rng.IntN(50))}).As16()
			k.IPVer = 6
		} else {
			k.B = v4(192, 168, byte(rng.IntN(2)), byte(rng.IntN(100)))
			k.IPVer = 4
		}
		k.Proto = protos[rng.IntN(len(protos))]
		k.PortA = uint16(1024 + rng.IntN(64000))
		k.PortB = servicePorts[rng.IntN(len(servicePorts))]
		switch rng.IntN(4) {
		case 0:
			k.VLAN = uint16(10 + rng.IntN(3))
		case 1:
			k.VLAN, k.VLAN2 = 100, uint16(200+rng.IntN(2))
		}
		if i%5 == 4 { // the same 5-tuple on another VLAN stack
			*k = flows[i-1]
			k.VLAN, k.VLAN2 = k.VLAN+1, 0
		}
	}
	return flows
}

// genBlocks makes blocks in ref order. Each segment's block offsets grow by
// a random stored length; times grow with a little overlap between blocks.
func genBlocks(rng *rand.Rand, c genConfig, pop []packet.FlowKey) []testBlock {
	var out []testBlock
	ts := c.startTS
	for s := 0; s < c.segs; s++ {
		off := uint32(0)
		for b := 0; b < c.perSeg; b++ {
			var tb testBlock
			span := int64(1 + rng.IntN(1000))
			tb.meta = writer.BlockMeta{
				Ref:       writer.MakeRef(c.firstSeg+uint32(s), off),
				Count:     uint32(100 + rng.IntN(2000)),
				MinTS:     ts,
				MaxTS:     ts + span,
				RawLen:    1 << 20,
				StoredLen: uint32(1000 + rng.IntN(5000)),
				WireBytes: uint64(rng.IntN(1 << 20)),
				Queue:     uint16(rng.IntN(4)),
				Codec:     writer.CodecZstd,
			}
			off += tb.meta.StoredLen + 64
			ts += int64(rng.IntN(800)) // next block may start before this one ends
			seen := make(map[int]bool)
			n := 1 + rng.IntN(c.flowsPerBlock)
			for len(tb.sum.Flows) < n {
				i := rng.IntN(len(pop))
				if seen[i] {
					continue
				}
				seen[i] = true
				tb.sum.Flows = append(tb.sum.Flows, block.FlowStat{Key: pop[i], Pkts: [2]uint32{1, 1}})
			}
			tb.sum.NonFlow = uint32(rng.IntN(3))
			out = append(out, tb)
		}
	}
	return out
}

// expect is the brute-force answer: refs of blocks overlapping [from, to]
// with a flow pred selects (any block if pred is nil).
func expect(blocks []testBlock, pred func(k *packet.FlowKey) bool, from, to int64) []writer.Ref {
	var out []writer.Ref
	for i := range blocks {
		b := &blocks[i]
		if b.meta.MinTS > to || b.meta.MaxTS < from {
			continue
		}
		if pred == nil {
			out = append(out, b.meta.Ref)
			continue
		}
		for j := range b.sum.Flows {
			if pred(&b.sum.Flows[j].Key) {
				out = append(out, b.meta.Ref)
				break
			}
		}
	}
	return sortUnique(out)
}

// drain collects an iterator, checking order, and closes it.
func drain(t testing.TB, it Iterator) []writer.Ref {
	t.Helper()
	var out []writer.Ref
	for it.Next() {
		r := it.At()
		if len(out) > 0 && r <= out[len(out)-1] {
			t.Fatalf("iterator not ascending: got %v after %v", r, out[len(out)-1])
		}
		out = append(out, r)
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterator: %v", err)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("close iterator: %v", err)
	}
	return out
}

func equalRefs(a, b []writer.Ref) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openTest opens an index whose groups are all exact keys, for the tests
// that compare answers with brute force exactly (sketch_test.go has the
// sketches: synthetic blocks of a few KB would be sketched).
func openTest(t testing.TB, dir string) *Index {
	t.Helper()
	return openTestOpts(t, Options{Dir: dir, Create: true, Logger: quietLogger(), SketchAbove: -1})
}

func openTestOpts(t testing.TB, opts Options) *Index {
	t.Helper()
	ix, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return ix
}

// walker serves blocks to CatchUp as the store's reader would.
func walker(blocks []testBlock) BlockWalker {
	return func(from writer.Ref, fn func(writer.BlockMeta, *block.Summary) error) error {
		for i := range blocks {
			if blocks[i].meta.Ref < from {
				continue
			}
			if err := fn(blocks[i].meta, &blocks[i].sum); err != nil {
				return err
			}
		}
		return nil
	}
}

// hookPaced hands blocks to the hook no faster than the batcher takes them,
// as a writer at line rate does (600 blocks/s), so no block is dropped.
func hookPaced(ix *Index, blocks []testBlock) {
	hook := ix.Hook()
	for i := range blocks {
		for ix.queued() >= ix.opts.QueueLen/2 {
			runtime.Gosched()
		}
		hook(blocks[i].meta, &blocks[i].sum)
	}
}

func (ix *Index) queued() int {
	ix.pmu.Lock()
	defer ix.pmu.Unlock()
	return len(ix.pending)
}
