package query

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"tapvault/tracegen"
	"tapvault/writer"
)

// faultReader serves blocks through r, failing some as corrupt, as gone
// (retention) or with a plain error, and sleeping a little at random so
// that read-ahead workers finish out of order.
type faultReader struct {
	r                  BlockReader
	corrupt, gone, bad map[writer.Ref]bool
	rnd                *rand.Rand
}

func (f *faultReader) ReadBlock(ref writer.Ref, buf *writer.BlockBuf) (writer.BlockMeta, error) {
	if f.rnd != nil && f.rnd.IntN(3) == 0 {
		time.Sleep(time.Duration(f.rnd.IntN(300)) * time.Microsecond)
	}
	switch {
	case f.corrupt[ref]:
		return writer.BlockMeta{}, &writer.CorruptionError{Path: "x", Err: errors.New("injected")}
	case f.gone[ref]:
		return writer.BlockMeta{}, fmt.Errorf("injected: %w", writer.ErrSegmentGone)
	case f.bad[ref]:
		return writer.BlockMeta{}, errors.New("injected read error")
	}
	return f.r.ReadBlock(ref, buf)
}

// TestMergeAhead: a merge that reads blocks ahead on workers returns what
// the plain merge returns (packets, order, ordinals, counts, skips and
// errors), for any number of workers and depth, time windows, a stop
// midway and a failing block; and its workers are gone when it returns.
func TestMergeAhead(t *testing.T) {
	dir := t.TempDir()
	writeTraceStore(t, dir, tracegen.Options{Kind: tracegen.KindMixed, Packets: 40000, Flows: 500, Seed: 3},
		func(i int) int64 { return 1e18 + int64(i%8000/2)*1000 - int64(i/8000)*7 })
	st, err := OpenStore(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, err := st.Blocks(MinTime, MaxTime)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 8 {
		t.Fatalf("%d blocks: want at least 8", len(all))
	}
	SortBlocks(all)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	type run struct {
		pkts []gotPacket
		st   MergeStats
		err  string
	}
	collect := func(stopAt int) (func(p *Packet) error, *run) {
		out := &run{}
		return func(p *Packet) error {
			out.pkts = append(out.pkts, gotPacket{ref: p.Ref, ord: p.Ordinal, ts: p.TS, data: bytes.Clone(p.Data)})
			if stopAt > 0 && len(out.pkts) == stopAt {
				return ErrStop
			}
			return nil
		}, out
	}
	mid := (all[0].MinTS + all[len(all)-1].MaxTS) / 2
	for _, tc := range []struct {
		name               string
		from, to           int64
		stopAt             int
		corrupt, gone, bad []int // block positions
	}{
		{name: "all", from: MinTime, to: MaxTime},
		{name: "window", from: mid - 2e6, to: mid + 2e6},
		{name: "skips", from: MinTime, to: MaxTime, corrupt: []int{1, 5}, gone: []int{2, 3}},
		{name: "stop", from: MinTime, to: MaxTime, stopAt: 7777},
		{name: "error", from: MinTime, to: MaxTime, bad: []int{4}},
	} {
		mark := func(pos []int) map[writer.Ref]bool {
			m := map[writer.Ref]bool{}
			for _, p := range pos {
				m[all[p].Ref] = true
			}
			return m
		}
		fr := func(rnd *rand.Rand) *faultReader {
			return &faultReader{r: st.R, corrupt: mark(tc.corrupt), gone: mark(tc.gone), bad: mark(tc.bad), rnd: rnd}
		}
		fn, want := collect(tc.stopAt)
		want.st, err = Merge(fr(nil), append([]writer.BlockMeta(nil), all...), tc.from, tc.to, quiet, fn)
		if err != nil {
			want.err = err.Error()
		}
		if len(want.pkts) == 0 {
			t.Fatalf("%s: the plain merge returned no packet", tc.name)
		}
		for _, workers := range []int{1, 2, 4} {
			for _, depth := range []int{1, 3, 8} {
				before := runtime.NumGoroutine()
				seed := uint64(workers*10 + depth)
				fn, got := collect(tc.stopAt)
				opts := MergeOptions{Workers: workers, Depth: depth, NewReader: func() BlockReader { return fr(rand.New(rand.NewPCG(seed, 1))) }}
				got.st, err = MergeAhead(opts, append([]writer.BlockMeta(nil), all...), tc.from, tc.to, quiet, fn)
				if err != nil {
					got.err = err.Error()
				}
				name := fmt.Sprintf("%s/workers=%d/depth=%d", tc.name, workers, depth)
				if got.err != want.err {
					t.Fatalf("%s: error %q, want %q", name, got.err, want.err)
				}
				if len(got.pkts) != len(want.pkts) {
					t.Fatalf("%s: %d packets, want %d", name, len(got.pkts), len(want.pkts))
				}
				for i := range got.pkts {
					g, w := got.pkts[i], want.pkts[i]
					if g.ref != w.ref || g.ord != w.ord || g.ts != w.ts || !bytes.Equal(g.data, w.data) {
						t.Fatalf("%s: packet %d is %v/%d at %d, want %v/%d at %d", name, i, g.ref, g.ord, g.ts, w.ref, w.ord, w.ts)
					}
				}
				gs, ws := got.st, want.st
				if tc.stopAt == 0 && tc.bad == nil && (gs.Blocks != ws.Blocks || gs.Packets != ws.Packets || gs.SkippedCorrupt != ws.SkippedCorrupt || gs.SkippedGone != ws.SkippedGone) {
					t.Fatalf("%s: stats %+v, want %+v", name, gs, ws)
				}
				if gs.Packets != ws.Packets {
					t.Fatalf("%s: %d packets counted, want %d", name, gs.Packets, ws.Packets)
				}
				for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > before; {
					if time.Now().After(deadline) {
						t.Fatalf("%s: %d goroutines after the merge, %d before: a read-ahead worker is left", name, runtime.NumGoroutine(), before)
					}
					time.Sleep(time.Millisecond)
				}
			}
		}
	}
}
