package index

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"tapvault/block"
	"tapvault/writer"
)

// SegmentScanner calls fn with the header of every block segment seg holds,
// in file order, skipping damaged ones (writer.Reader.ScanSegment).
type SegmentScanner func(seg uint32, fn func(writer.BlockMeta) error) error

// Pruned says what Prune removed from one segment.
type Pruned struct {
	Segment uint32
	Stale   int // block keys naming a block the segment does not hold
}

// errSegmentDone stops a walk at the end of the segment being re-indexed.
var errSegmentDone = errors.New("segment done")

// Prune removes the entries of blocks the store no longer holds as indexed,
// and indexes their segments again: a block key whose block is gone, or
// whose header is damaged, or where another block now lies (a store whose
// damaged committed bytes an older writer cut and wrote over). Such a key
// makes a query trust the wrong time range for its block and miss it.
//
// Block headers are compared, not summaries: scan reads 80 bytes a block.
// A segment with a stale key is dropped (DropSegment) and its blocks added
// again from walk. Before that the watermark is lowered below the segment
// and persisted, so a process killed in between leaves an index whose
// queries scan that segment and what follows it, and whose next CatchUp
// indexes them again; once the segment is back it is raised again.
//
// Call it before CatchUp, with nothing else writing.
func (ix *Index) Prune(scan SegmentScanner, walk BlockWalker) ([]Pruned, error) {
	if ix.opts.ReadOnly {
		return nil, fmt.Errorf("index prune: %w", ErrReadOnly)
	}
	var out []Pruned
	for _, seg := range ix.indexedSegments() {
		stale, err := ix.staleKeys(seg, scan)
		if err != nil {
			return out, err
		}
		if stale == 0 {
			continue
		}
		if err := ix.reindexSegment(seg, walk); err != nil {
			return out, fmt.Errorf("index prune segment %d: %w", seg, err)
		}
		out = append(out, Pruned{Segment: seg, Stale: stale})
	}
	return out, nil
}

// staleKeys counts the block keys of seg that do not match a block header
// of the segment.
func (ix *Index) staleKeys(seg uint32, scan SegmentScanner) (int, error) {
	have := make(map[writer.Ref]writer.BlockMeta)
	err := scan(seg, func(m writer.BlockMeta) error {
		have[m.Ref] = m
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, writer.ErrSegmentGone) {
		return 0, fmt.Errorf("index prune: scan segment %d: %w", seg, err)
	}
	stale := 0
	prefix := appendDataPrefix(nil, seg, kindBlock)
	err = ix.db.View(func(txn *badger.Txn) error {
		return scanPrefix(txn, prefix, func(k []byte) error {
			e, err := parseBlockKey(k)
			if err != nil {
				stale++ // unreadable: gone with the segment's keys
				return nil
			}
			m, ok := have[e.Meta.Ref]
			if !ok || m.MinTS != e.Meta.MinTS || m.MaxTS != e.Meta.MaxTS || m.Count != e.Meta.Count || m.StoredLen != e.Meta.StoredLen {
				stale++
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("index prune: read block keys of segment %d: %w", seg, err)
	}
	return stale, nil
}

// reindexSegment drops seg's keys and adds its blocks again, with the
// watermark kept below it while it is incomplete.
func (ix *Index) reindexSegment(seg uint32, walk BlockWalker) error {
	first := writer.MakeRef(seg, 0)
	ix.wmu.Lock()
	origWM, origHas := ix.wm, ix.hasWM
	lowered := origHas && origWM >= first
	if lowered {
		if seg == 0 {
			ix.hasWM = false
		} else {
			ix.wm = writer.MakeRef(seg-1, ^uint32(0))
		}
		if err := ix.persistWatermark(); err != nil {
			ix.wm, ix.hasWM = origWM, origHas
			ix.wmu.Unlock()
			return err
		}
	}
	ix.wmu.Unlock()
	if err := ix.DropSegment(seg, nil); err != nil {
		return err
	}
	err := walk(first, func(m writer.BlockMeta, s *block.Summary) error {
		if m.Ref.Segment() != seg {
			return errSegmentDone
		}
		return ix.Add(m, s)
	})
	if err != nil && !errors.Is(err, errSegmentDone) {
		return err
	}
	if err := ix.Flush(); err != nil {
		return err
	}
	if lowered {
		ix.wmu.Lock()
		if !ix.hasWM || ix.wm < origWM {
			ix.wm, ix.hasWM = origWM, true
		}
		err = ix.persistWatermark()
		ix.wmu.Unlock()
	}
	return err
}

// Stale counts, per segment, the block keys that do not match a block
// header of the segment (what Prune would remove). It only reads, and works
// on a ReadOnly index.
func (ix *Index) Stale(scan SegmentScanner) ([]Pruned, error) {
	var out []Pruned
	for _, seg := range ix.indexedSegments() {
		n, err := ix.staleKeys(seg, scan)
		if err != nil {
			return out, err
		}
		if n > 0 {
			out = append(out, Pruned{Segment: seg, Stale: n})
		}
	}
	return out, nil
}

// indexedSegments lists the segments the index holds keys of, ascending.
func (ix *Index) indexedSegments() []uint32 {
	ix.gmu.RLock()
	segs := make([]uint32, 0, len(ix.segs))
	for s := range ix.segs {
		segs = append(segs, s)
	}
	ix.gmu.RUnlock()
	slices.Sort(segs)
	return segs
}
