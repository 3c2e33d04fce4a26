package writer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"tapvault/block"
)

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Segments  []SegmentReport
	Blocks    int    // valid blocks
	Packets   uint64 // packets in valid blocks
	BadBlocks int    // bad block records, all segments
	// BadHeaders counts segments whose header is damaged. Their blocks are
	// still checked (and read by queries): each carries its own ref and
	// CRCs.
	BadHeaders int
	Bytes      int64 // segment bytes checked

	// The commit marker as read before the walk: segments before
	// MarkerSegment are committed whole, MarkerSegment up to MarkerSize.
	MarkerSegment uint32
	MarkerSize    int64
	// MarkerErr says why the marker could not be used: it is damaged,
	// missing from a store that has segments, or names segments that are
	// gone. Without it a bad tail cannot be told from damage.
	MarkerErr error
}

// OK reports whether no damage was found. Bytes past the commit marker at
// the end of the last segment (TailBytes) are not damage: they are what a
// crash mid-write, or a writer still appending, leaves.
func (r *VerifyReport) OK() bool {
	return r.BadBlocks == 0 && r.BadHeaders == 0 && r.MarkerErr == nil
}

// SegmentReport is what Verify found in one segment.
type SegmentReport struct {
	Number    uint32
	Path      string
	Size      int64
	Blocks    int
	Packets   uint64
	WireBytes uint64
	// HeaderErr says why the segment header is bad (nil if sound).
	HeaderErr *CorruptionError
	// Bad names every bad block record by offset, one entry a record, as
	// the index knows them, so a full query skips as many blocks as there
	// are entries. Committed bytes cut off the end of the file are one
	// entry.
	Bad []*CorruptionError
	// TailBytes counts bytes after the last valid block of the last
	// segment, beyond the commit marker, that do not form a valid block:
	// never committed, cut by the next open for writing. Such bytes
	// anywhere else are in Bad.
	TailBytes int64
}

// Verify checks every block of the store in dir: header, summary and record
// CRCs, decompression of both sections, a walk of the packet records with
// block.NextRecord against the header's count, timestamps and wire bytes,
// and the summary's parse and packet count. Bytes that the commit marker
// says are committed but that hold no valid block are damage, as is bad
// data anywhere but past the marker at the end of the last segment. It
// never modifies the store and may run while a writer appends (what the
// writer commits after the marker was read counts as not yet committed).
// progress, if not nil, is called after each block with bytes done and
// total. The error is for failures to read the store at all; damage goes
// in the report.
func Verify(dir string, progress func(done, total int64)) (VerifyReport, error) {
	var rep VerifyReport
	r, err := OpenReader(dir)
	if err != nil {
		return rep, err
	}
	defer r.Close()
	mark := readMarker(dir)
	// Strict: a segment directory that cannot be read (a disk not
	// mounted) is an error here, not a warning as for queries.
	locs, err := r.dirs.list(false, nil)
	if err != nil {
		return rep, err
	}
	r.mu.Lock()
	r.rememberLocked(locs)
	r.mu.Unlock()
	nums := segNums(locs)
	var last uint32
	if len(nums) > 0 {
		last = nums[len(nums)-1]
	}
	switch {
	case mark.err != nil:
		rep.MarkerErr = mark.err
	case !mark.ok && len(nums) > 0:
		rep.MarkerErr = fmt.Errorf("commit marker %q is missing (deleted, or a store written before markers; the next open for writing writes one)", filepath.Join(dir, markerName))
	case mark.ok && mark.seg > last && mark.seg > 0:
		rep.MarkerErr = fmt.Errorf("the commit marker names segment %d, the newest segment is %d: committed segments are missing", mark.seg, last)
	}
	rep.MarkerSegment, rep.MarkerSize = mark.seg, mark.size
	var total int64
	sizes := make([]int64, len(nums))
	for i := range nums {
		fi, err := os.Stat(locs[i].path())
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
		end := mark.committedEnd(n)
		if end < 0 && n != last {
			end = wholeSegment // no marker: sealed segments are committed whole
		}
		sr, err := v.segment(n, end, func(off int64) {
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
		if sr.HeaderErr != nil {
			rep.BadHeaders++
		}
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
	buf    BlockBuf
	sum    block.Summary
	part   block.Partition // its decoder, for the flow hash of each packet
}

// segment checks segment n, of which the commit marker says the first end
// bytes are committed (wholeSegment: all of it; -1: the marker cannot say).
func (v *verifier) segment(n uint32, end int64, progress func(off int64)) (SegmentReport, error) {
	path := v.r.segPath(n)
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
		if !errors.As(err, &ce) {
			return sr, err
		}
		sr.HeaderErr = ce // the blocks after it are checked all the same
	}
	wk := segWalker{f: f, path: path, seg: n, size: fi.Size(), full: true}
	// A bad region is reported once the walk knows where it ends: one
	// entry for each block record it held (badRecords).
	var bad *CorruptionError
	flush := func(to int64) {
		if bad == nil {
			return
		}
		for i, off := range wk.badRecords(bad.Offset, to) {
			ce := bad
			if i > 0 {
				ce = &CorruptionError{Path: path, Offset: off, Err: fmt.Errorf("block in the damaged region that starts at %d", bad.Offset)}
			}
			sr.Bad = append(sr.Bad, ce)
		}
		bad = nil
	}
	tail, tailErr, err := wk.walk(
		func(h *blockHeader, rec []byte) error {
			off := int64(h.ref.Offset())
			flush(off)
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
			bad = ce
			return nil
		})
	if err != nil {
		return sr, err
	}
	flush(tail)
	switch {
	case end < 0: // the last segment of a store without a readable marker
		sr.TailBytes = sr.Size - tail
	case tail < end && tail < sr.Size:
		bad = &CorruptionError{Path: path, Offset: tail, Err: fmt.Errorf("committed bytes [%d, %d) hold no valid block: %w", tail, min(end, sr.Size), tailErr)}
		if end != wholeSegment && end > sr.Size {
			bad.Err = fmt.Errorf("%w; the file ends %d bytes short of the committed size %d", bad.Err, end-sr.Size, end)
		}
		flush(min(end, sr.Size))
		sr.TailBytes = max(0, sr.Size-end)
	case tail < end && end != wholeSegment: // tail == size: a clean end short of the committed size
		sr.Bad = append(sr.Bad, &CorruptionError{Path: path, Offset: tail,
			Err: fmt.Errorf("the file ends at %d, %d bytes short of the committed size %d", tail, end-tail, end)})
	default:
		sr.TailBytes = sr.Size - tail
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
	if err := v.r.decodeRecords(h, rec, &v.buf, true); err != nil {
		return err
	}
	recs := v.buf.records
	var count uint32
	var wire uint64
	for p := recs; len(p) > 0; count++ {
		var r block.Record
		r, p, err = block.NextRecord(p)
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
	if h.version == blockVersion2 {
		if err := v.partition(); err != nil {
			return err
		}
	}
	if wire != h.wire {
		return fmt.Errorf("packet records hold %d wire bytes, header says %d", wire, h.wire)
	}
	if err := block.ParseSummary(sum, &v.sum); err != nil {
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

// partition checks that every packet of the version-2 block just decoded
// into v.buf lies in the sub-frame a flow read looks in: a flow sub-frame's
// packets have flow hashes in its range, the non-flow sub-frame's have no
// flow key. (decodeRecords already checked the directory, the sub-frame
// CRCs and lengths, and that the sequence accounts for every packet.)
func (v *verifier) partition() error {
	d := &v.buf.dir
	recs := v.buf.records
	for i := 0; len(recs) > 0; i++ {
		r, rest, err := block.NextRecord(recs)
		if err != nil {
			return fmt.Errorf("packet record %d: %w", i, err)
		}
		recs = rest
		s := int(d.at(i))
		e := &d.subs[s]
		hash, ok := v.part.PacketHash(&r)
		switch {
		case e.kind == subNonFlow && ok:
			return fmt.Errorf("packet %d has flow hash %#08x but lies in the non-flow sub-frame %d", i, hash, s)
		case e.kind == subFlow && !ok:
			return fmt.Errorf("packet %d has no flow key but lies in flow sub-frame %d", i, s)
		case e.kind == subFlow && d.find(hash) != s:
			return fmt.Errorf("packet %d has flow hash %#08x, outside its sub-frame %d (from %#08x)", i, hash, s, e.start)
		}
	}
	return nil
}
