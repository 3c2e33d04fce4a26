package writer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"tapvault/workers"
)

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Segments  []SegmentReport
	Blocks    int    // valid blocks
	Packets   uint64 // packets in valid blocks
	BadBlocks int    // corrupt records, all segments
	Bytes     int64  // segment bytes checked
}

// OK reports whether no corruption was found. A torn tail in the last
// segment (TailBytes) is not corruption: it is what a crash mid-write, or a
// writer still appending, leaves.
func (r *VerifyReport) OK() bool { return r.BadBlocks == 0 }

// SegmentReport is what Verify found in one segment.
type SegmentReport struct {
	Number    uint32
	Path      string
	Size      int64
	Blocks    int
	Packets   uint64
	WireBytes uint64
	Bad       []*CorruptionError // every bad record, by offset
	// TailBytes counts bytes after the last valid block of the last
	// segment that do not form a valid block. In an older segment such
	// bytes are reported in Bad instead.
	TailBytes int64
}

// Verify checks every block of the store in dir: header, summary and record
// CRCs, decompression of both sections, a walk of the packet records with
// workers.NextRecord against the header's count, timestamps and wire bytes,
// and the summary's parse and packet count. It never modifies the store and
// may run while a writer appends. progress, if not nil, is called after each
// block with bytes done and total. The error is for failures to read the
// store at all; corruption goes in the report.
func Verify(dir string, progress func(done, total int64)) (VerifyReport, error) {
	var rep VerifyReport
	r, err := OpenReader(dir)
	if err != nil {
		return rep, err
	}
	defer r.Close()
	nums, err := listSegments(r.segDir)
	if err != nil {
		return rep, err
	}
	var total int64
	sizes := make([]int64, len(nums))
	for i, n := range nums {
		fi, err := os.Stat(segPath(r.segDir, n))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return rep, fmt.Errorf("stat segment: %w", err)
		}
		if err == nil {
			sizes[i] = fi.Size()
			total += fi.Size()
		}
	}
	v := verifier{r: r}
	var done int64
	for i, n := range nums {
		sr, err := v.segment(n, i == len(nums)-1, func(off int64) {
			if progress != nil {
				progress(done+off, total)
			}
		})
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by retention since listed
		}
		if err != nil {
			return rep, err
		}
		done += sizes[i]
		rep.Segments = append(rep.Segments, sr)
		rep.Blocks += sr.Blocks
		rep.Packets += sr.Packets
		rep.BadBlocks += len(sr.Bad)
		rep.Bytes += sr.Size
	}
	if progress != nil {
		progress(done, total)
	}
	return rep, nil
}

// verifier holds the buffers reused across blocks.
type verifier struct {
	r      *Reader
	sumDec []byte
	recDec []byte
	sum    workers.Summary
}

func (v *verifier) segment(n uint32, last bool, progress func(off int64)) (SegmentReport, error) {
	path := segPath(v.r.segDir, n)
	sr := SegmentReport{Number: n, Path: path}
	f, err := os.Open(path)
	if err != nil {
		return sr, fmt.Errorf("open segment %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sr, fmt.Errorf("stat segment %q: %w", path, err)
	}
	sr.Size = fi.Size()
	if _, err := readSegmentHeader(f, path, n); err != nil {
		var ce *CorruptionError
		if errors.As(err, &ce) {
			sr.Bad = append(sr.Bad, ce)
			return sr, nil
		}
		return sr, err
	}
	wk := segWalker{f: f, path: path, seg: n, size: fi.Size(), full: true}
	tail, tailErr, err := wk.walk(
		func(h *blockHeader, rec []byte) error {
			off := int64(h.ref.Offset())
			if err := v.block(h, rec); err != nil {
				sr.Bad = append(sr.Bad, &CorruptionError{Path: path, Offset: off, Err: err})
			} else {
				sr.Blocks++
				sr.Packets += uint64(h.count)
				sr.WireBytes += h.wire
			}
			progress(off + h.recordLen())
			return nil
		},
		func(ce *CorruptionError) error {
			sr.Bad = append(sr.Bad, ce)
			return nil
		})
	if err != nil {
		return sr, err
	}
	if tail < sr.Size {
		if last {
			sr.TailBytes = sr.Size - tail
		} else {
			sr.Bad = append(sr.Bad, &CorruptionError{Path: path, Offset: tail,
				Err: fmt.Errorf("torn tail of %d bytes in a sealed segment: %w", sr.Size-tail, tailErr)})
		}
	}
	return sr, nil
}

// block checks the contents of one record whose CRCs already passed.
func (v *verifier) block(h *blockHeader, rec []byte) error {
	sumEnd := int(h.hdrLen) + int(h.sumStored)
	sum, sumDec, err := v.r.decodeSection(rec[h.hdrLen:sumEnd], h.sumCodec, h.sumRaw, v.sumDec)
	v.sumDec = sumDec
	if err != nil {
		return fmt.Errorf("summary section: %w", err)
	}
	recs, recDec, err := v.r.decodeSection(rec[sumEnd:len(rec)-crcSize], h.recCodec, h.recRaw, v.recDec)
	v.recDec = recDec
	if err != nil {
		return fmt.Errorf("records section: %w", err)
	}
	var count uint32
	var wire uint64
	for p := recs; len(p) > 0; count++ {
		var r workers.Record
		r, p, err = workers.NextRecord(p)
		if err != nil {
			return fmt.Errorf("packet record %d: %w", count, err)
		}
		if r.TS < h.minTS || r.TS > h.maxTS {
			return fmt.Errorf("packet record %d: timestamp %d outside the block's [%d, %d]", count, r.TS, h.minTS, h.maxTS)
		}
		wire += uint64(r.WireLen)
	}
	if count != h.count {
		return fmt.Errorf("%d packet records, header says %d", count, h.count)
	}
	if wire != h.wire {
		return fmt.Errorf("packet records hold %d wire bytes, header says %d", wire, h.wire)
	}
	if err := workers.ParseSummary(sum, &v.sum); err != nil {
		return err
	}
	n := uint64(v.sum.NonFlow)
	for i := range v.sum.Flows {
		n += uint64(v.sum.Flows[i].Pkts[0]) + uint64(v.sum.Flows[i].Pkts[1])
	}
	if n != uint64(h.count) {
		return fmt.Errorf("summary accounts for %d packets, header says %d", n, h.count)
	}
	return nil
}

func segPath(segDir string, n uint32) string { return filepath.Join(segDir, segmentName(n)) }
