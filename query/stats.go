package query

import (
	"path/filepath"
	"sync/atomic"

	"tapvault/index"
	"tapvault/writer"
)

// StoreStats is what a store holds.
type StoreStats struct {
	FirstNS      int64   `json:"first_ns"`
	LastNS       int64   `json:"last_ns"`
	Packets      uint64  `json:"packets"`
	WireBytes    uint64  `json:"wire_bytes"`
	RawBytes     uint64  `json:"raw_bytes"`    // uncompressed block payloads
	StoredBytes  uint64  `json:"stored_bytes"` // block payloads on disk
	Ratio        float64 `json:"compression_ratio"`
	Blocks       int     `json:"blocks"`
	Segments     int     `json:"segments"`
	SegmentBytes int64   `json:"segment_bytes"` // segment files on disk
	IndexBytes   int64   `json:"index_bytes"`   // index on disk, 0 without one
	IndexState   string  `json:"index_state"`   // "ok", "missing", "behind", ...
	// SegmentDirs are the directories the segments are in, when there
	// are several (one per disk: docs/format/segment.md).
	SegmentDirs []SegmentDirStats `json:"segment_dirs,omitempty"`
}

// SegmentDirStats is one segment directory's share of the store.
type SegmentDirStats struct {
	Dir      string `json:"dir"`
	Segments int    `json:"segments"`
	Bytes    int64  `json:"bytes"`
}

// Stats adds up the block headers of the whole store.
func (s *Store) Stats() (StoreStats, error) {
	var st StoreStats
	segs, err := s.R.Segments()
	if err != nil {
		return st, err
	}
	st.Segments = len(segs)
	for _, seg := range segs {
		st.SegmentBytes += seg.Size
	}
	if dirs, err := writer.SegmentDirs(s.Dir); err == nil && len(dirs) > 1 {
		for _, d := range dirs {
			ds := SegmentDirStats{Dir: d}
			for _, seg := range segs {
				if filepath.Dir(seg.Path) == d {
					ds.Segments++
					ds.Bytes += seg.Size
				}
			}
			st.SegmentDirs = append(st.SegmentDirs, ds)
		}
	}
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	listed := make(map[uint32]bool, len(segs))
	first := true
	for i, seg := range segs {
		listed[seg.Number] = true
		// Only the newest segment can still grow: a writer appends to
		// nothing else, so the others' totals are kept, checked against
		// their size (a segment cut by recovery is the newest anyway).
		t, ok := s.sealed[seg.Number]
		if !ok || t.size != seg.Size {
			var whole bool
			if t, whole, err = s.segmentTotals(seg); err != nil {
				return st, err
			}
			if whole && i < len(segs)-1 {
				if s.sealed == nil {
					s.sealed = make(map[uint32]segTotals)
				}
				s.sealed[seg.Number] = t
			}
		}
		if t.blocks == 0 {
			continue
		}
		st.Blocks += t.blocks
		st.Packets += t.packets
		st.WireBytes += t.wire
		st.RawBytes += t.raw
		st.StoredBytes += t.stored
		if first || t.minTS < st.FirstNS {
			st.FirstNS = t.minTS
		}
		if first || t.maxTS > st.LastNS {
			st.LastNS = t.maxTS
		}
		first = false
	}
	for n := range s.sealed {
		if !listed[n] {
			delete(s.sealed, n) // dropped by retention
		}
	}
	if st.StoredBytes > 0 {
		st.Ratio = float64(st.RawBytes) / float64(st.StoredBytes)
	}
	st.IndexState = s.IndexState
	if s.Ix != nil {
		lsm, vlog := s.Ix.Size()
		st.IndexBytes = lsm + vlog
	} else {
		// Allocated, not apparent, size: a killed writer leaves a
		// sparse 2 GiB value log.
		lsm, vlog := index.DiskSize(index.DirOf(s.Dir))
		st.IndexBytes = lsm + vlog
	}
	return st, nil
}

// segTotals are the block totals of one segment.
type segTotals struct {
	size                       int64 // the segment file's size when read
	blocks                     int
	packets, wire, raw, stored uint64
	minTS, maxTS               int64
}

// segmentTotals adds up the block headers of one segment, as Blocks lists
// them. whole is false when the walk stopped short (a corrupt block: read
// again next time, as Blocks does, so the warning is not lost).
func (s *Store) segmentTotals(seg writer.SegmentInfo) (t segTotals, whole bool, err error) {
	t.size = seg.Size
	whole, gone, err := s.walkSegment(seg.Number, func(m writer.BlockMeta) {
		if t.blocks == 0 || m.MinTS < t.minTS {
			t.minTS = m.MinTS
		}
		if t.blocks == 0 || m.MaxTS > t.maxTS {
			t.maxTS = m.MaxTS
		}
		t.blocks++
		t.packets += uint64(m.Count)
		t.wire += m.WireBytes
		t.raw += uint64(m.RawLen)
		t.stored += uint64(m.StoredLen)
	})
	switch {
	case err != nil:
		return t, false, err
	case gone:
		return segTotals{}, false, nil // removed by retention since listed
	case whole:
		statsScans.Add(1)
	}
	return t, whole, nil
}

// statsScans counts the segments Stats read whole (tests).
var statsScans atomic.Int64
