package writer

import (
	"errors"
	"tapvault/block"
	"testing"
)

func TestWalkSummaries(t *testing.T) {
	dir := t.TempDir()
	pool := block.NewPool(4, 8<<10, 16)
	wants, metas := storeBlocks(t, Options{Dir: dir, SegmentSize: 5 * (8 << 10), QueueLen: 4}, pool, 15, 8<<10,
		func(int) int { return payloadRandom })
	if metas[len(metas)-1].Ref.Segment() < 3 {
		t.Fatalf("want at least 3 segments, last ref %v", metas[len(metas)-1].Ref)
	}
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, from := range []int{0, 1, 7, 14} {
		var got []BlockMeta
		err := r.WalkSummaries(metas[from].Ref, func(m BlockMeta, s *block.Summary) error {
			if enc := block.AppendSummary(nil, s); string(enc) != string(wants[m.MinTS].summary) {
				t.Fatalf("from %d: summary of %v differs", from, m.Ref)
			}
			got = append(got, m)
			return nil
		})
		if err != nil {
			t.Fatalf("from %d: WalkSummaries: %v", from, err)
		}
		if len(got) != len(metas)-from {
			t.Fatalf("from %d: got %d blocks, want %d", from, len(got), len(metas)-from)
		}
		for i, m := range got {
			if m != metas[from+i] {
				t.Fatalf("from %d: block %d got %+v, want %+v", from, i, m, metas[from+i])
			}
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := r.WalkSummaries(0, func(BlockMeta, *block.Summary) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("WalkSummaries stopping: got %v after %d calls, want stop after 1", err, n)
	}
}
