package query

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"tapvault/analytics"
	"tapvault/workers"
	"tapvault/writer"
)

// RefSlack widens the time range searched for a record's blocks: a block's
// [MinTS, MaxTS] holds every packet in it, so the record's own time range
// is enough; the slack only covers a record whose times are rounded.
const RefSlack = 1_000_000 // 1 ms

// RefResult says how a drill-down went.
type RefResult struct {
	Wanted   int // refs asked for
	Found    int // packets returned
	NotSaved int // refs with block 0: the packet was never stored (no block buffer)
	Missing  int // refs to blocks not found (refused by the writer, lost, dropped by retention, corrupt)
	Blocks   int // blocks read
}

// Packets calls fn for the stored packets that refs name (the packets of a
// message record), in time order (ties in ref order). The blocks are found
// among those overlapping [from, to] (the record's time range), through the
// index when there is one, and identified by the block ID in their header.
// Packets that cannot be found are counted, not an error: a drill-down
// returns everything that is still there.
func (s *Store) Packets(ctx context.Context, refs []analytics.PktRef, from, to int64, fn func(p *Packet) error) (res RefResult, err error) {
	runLowPriority(func() { res, err = s.packets(ctx, refs, from, to, fn) })
	return res, err
}

type blockKey struct {
	id    uint64
	queue uint16
}

func (s *Store) packets(ctx context.Context, refs []analytics.PktRef, from, to int64, fn func(p *Packet) error) (RefResult, error) {
	res := RefResult{Wanted: len(refs)}
	want := map[blockKey]map[uint32]int{} // ordinal -> position in refs
	queues := map[uint16]bool{}
	for i, r := range refs {
		if r.Block == 0 {
			res.NotSaved++
			continue
		}
		k := blockKey{r.Block, r.Queue}
		if want[k] == nil {
			want[k] = map[uint32]int{}
		}
		if _, dup := want[k][r.Ord]; !dup {
			want[k][r.Ord] = i
		}
		queues[r.Queue] = true
	}
	if len(want) == 0 {
		return res, nil
	}
	blocks, _, err := s.plannedBlocks(Request{From: from - RefSlack, To: to + RefSlack})
	if err != nil {
		return res, err
	}
	type hit struct {
		pos int
		p   Packet
	}
	var hits []hit
	var buf writer.BlockBuf
	found := map[blockKey]bool{}
	for _, m := range blocks {
		if !queues[m.Queue] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		meta, err := s.R.ReadBlock(m.Ref, &buf)
		if err != nil {
			var ce *writer.CorruptionError
			if errors.As(err, &ce) || errors.Is(err, writer.ErrSegmentGone) {
				s.Log.Warn("drill-down: skipping a block that cannot be read", "block", m.Ref, "err", err)
				continue
			}
			return res, fmt.Errorf("read block %s: %w", m.Ref, err)
		}
		k := blockKey{meta.ID, meta.Queue}
		ords := want[k]
		if ords == nil || found[k] {
			continue
		}
		found[k] = true
		res.Blocks++
		p := buf.Records()
		for ord := uint32(0); len(p) > 0; ord++ {
			rec, rest, err := workers.NextRecord(p)
			if err != nil {
				s.Log.Warn("drill-down: bad packet record", "block", m.Ref, "err", err)
				break
			}
			p = rest
			if pos, ok := ords[ord]; ok {
				data := append([]byte(nil), rec.Data...)
				rec.Data = data
				hits = append(hits, hit{pos: pos, p: Packet{Record: rec, Ref: m.Ref, Ordinal: ord}})
			}
		}
	}
	for k, ords := range want {
		if !found[k] {
			res.Missing += len(ords)
		}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if hits[i].p.TS != hits[j].p.TS {
			return hits[i].p.TS < hits[j].p.TS
		}
		return hits[i].pos < hits[j].pos
	})
	for i := range hits {
		if err := fn(&hits[i].p); err != nil {
			return res, err
		}
		res.Found++
	}
	return res, nil
}
