package index

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestFaultQueueBytesAndStopDeadline floods the hook with blocks of many
// flows: the queue never holds more than QueueBytes (the blocks beyond are
// holes, counted); a deadline already past at Close leaves everything still
// queued or grouped unwritten and counted (StopShed) instead of writing it;
// and the next Open's CatchUp indexes every block, so queries see them all.
func TestFaultQueueBytesAndStopDeadline(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	pop := genFlows(rng, 20000)
	blocks := genBlocks(rng, genConfig{segs: 1, perSeg: 200, flows: len(pop), flowsPerBlock: 4000}, pop)

	const qb = 256 << 10 // a few blocks of up to 4000 flows (44 B each)
	ix, err := Open(Options{Dir: dir, Create: true, Logger: quietLogger(), QueueBytes: qb, MaxGroupAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.CatchUp(walker(nil)); err != nil {
		t.Fatal(err)
	}
	hook := ix.Hook()
	for i := range blocks {
		hook(blocks[i].meta, &blocks[i].sum)
		if st := ix.Stats(); st.QueueBytes > qb {
			t.Fatalf("queue holds %d bytes, bound %d", st.QueueBytes, qb)
		}
	}
	st := ix.Stats()
	if st.QueueDrops == 0 {
		t.Errorf("queue drops: got 0, want > 0 (200 blocks of up to 4000 flows into %d bytes)", qb)
	}
	// A stop: its deadline for writing has passed (pipeline.Stop sets it
	// at 3/4 of the stop timeout); Close gets the rest.
	t0 := time.Now()
	ix.SetDeadline(t0)
	if err := ix.CloseBy(t0.Add(10 * time.Second)); err != nil {
		t.Fatalf("CloseBy: %v", err)
	}
	st = ix.Stats()
	t.Logf("queue drops %d, left at the deadline %d, indexed %d of %d, close took %s", st.QueueDrops, st.StopShed, st.Blocks, len(blocks), time.Since(t0))
	if st.StopShed == 0 {
		t.Errorf("StopShed: got 0, want the blocks still queued or grouped at the deadline")
	}
	if st.Blocks+st.StopShed > uint64(len(blocks)) || st.Blocks == uint64(len(blocks)) {
		t.Errorf("indexed %d + left %d of %d blocks", st.Blocks, st.StopShed, len(blocks))
	}

	// The next start: everything is indexed, the holes are gone.
	ix = openTest(t, dir)
	defer ix.Close()
	if len(ix.Missing()) == 0 && ix.Watermark() == blocks[len(blocks)-1].meta.Ref {
		t.Errorf("reopened before catch-up: nothing missing, the deadline left no work")
	}
	if err := ix.CatchUp(walker(blocks)); err != nil {
		t.Fatal(err)
	}
	if m := ix.Missing(); len(m) > 0 {
		t.Errorf("after CatchUp: %d blocks still missing", len(m))
	}
	if wm, last := ix.Watermark(), blocks[len(blocks)-1].meta.Ref; wm != last {
		t.Errorf("watermark after CatchUp: got %v, want %v", wm, last)
	}
	it := ix.Time(blocks[0].meta.MinTS, blocks[len(blocks)-1].meta.MaxTS)
	if got, want := drain(t, it), expect(blocks, nil, blocks[0].meta.MinTS, blocks[len(blocks)-1].meta.MaxTS); !equalRefs(got, want) {
		t.Errorf("blocks selected after the next start: got %d, want %d", len(got), len(want))
	}
}
