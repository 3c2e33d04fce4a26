package query

import (
	"path/filepath"

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
	blocks, err := s.Blocks(MinTime, MaxTime)
	if err != nil {
		return st, err
	}
	st.Blocks = len(blocks)
	for i, b := range blocks {
		if i == 0 || b.MinTS < st.FirstNS {
			st.FirstNS = b.MinTS
		}
		if i == 0 || b.MaxTS > st.LastNS {
			st.LastNS = b.MaxTS
		}
		st.Packets += uint64(b.Count)
		st.WireBytes += b.WireBytes
		st.RawBytes += uint64(b.RawLen)
		st.StoredBytes += uint64(b.StoredLen)
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
