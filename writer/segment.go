package writer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"tapvault/internal/durable"
)

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Number  uint32
	Path    string
	Size    int64 // bytes on disk when listed (the open segment grows)
	Created int64 // creation time, ns since the Unix epoch, from the header
	Err     error // why the header is unreadable, nil if sound (then Created is 0)
}

const tmpSuffix = ".tmp"

func segmentsDir(dir string) string { return filepath.Join(dir, "segments") }

// listSegments returns the segment numbers found in segDir, ascending.
func listSegments(segDir string) ([]uint32, error) {
	ents, err := os.ReadDir(segDir)
	if err != nil {
		return nil, fmt.Errorf("list segments in %q: %w", segDir, err)
	}
	var nums []uint32
	for _, e := range ents {
		if n, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

// readSegmentHeader reads and checks the header of an open segment file.
func readSegmentHeader(f io.ReaderAt, path string, want uint32) (created int64, err error) {
	var hdr [segHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, &CorruptionError{Path: path, Offset: 0, Err: fmt.Errorf("segment header: %w", err)}
	}
	seg, created, err := parseSegmentHeader(hdr[:])
	if err != nil {
		return 0, &CorruptionError{Path: path, Offset: 0, Err: err}
	}
	if seg != want {
		return 0, &CorruptionError{Path: path, Offset: 0, Err: fmt.Errorf("segment header names segment %d, file name %d", seg, want)}
	}
	return created, nil
}

// segWalker walks the block records of one segment file from the first block
// to the end of the file. In full mode it reads every record and checks its
// CRCs; otherwise it reads headers only (checking the header CRC), so a
// corrupt payload goes unnoticed until the block is read.
//
// A record that fails its checks is skipped over by looking for the next
// valid record: its header CRC must hold and its ref must name its own
// segment and offset, which a stray magic inside packet data practically
// never does. A bad region with no valid record after it is the tail: a torn
// write, or a block that is still being written.
type segWalker struct {
	f    io.ReaderAt
	path string
	seg  uint32
	size int64
	full bool

	hdr   [blockHeaderSize]byte
	rec   []byte // last full record read (full mode); reused
	chunk []byte // resync scan buffer; reused
}

// check validates the record at off. In full mode w.rec holds the record
// afterwards.
func (w *segWalker) check(off int64) (blockHeader, error) {
	if off+blockHeaderSize > w.size {
		return blockHeader{}, errShort
	}
	if _, err := w.f.ReadAt(w.hdr[:], off); err != nil {
		return blockHeader{}, fmt.Errorf("read block header: %w", err)
	}
	h, err := parseBlockHeader(w.hdr[:])
	if err != nil {
		return h, err
	}
	if want := MakeRef(w.seg, uint32(off)); h.ref != want {
		return h, fmt.Errorf("block header ref %v, want %v", h.ref, want)
	}
	n := h.recordLen()
	if off+n > w.size {
		return h, errShort
	}
	if !w.full {
		return h, nil
	}
	w.rec = grow(w.rec, int(n))
	if _, err := w.f.ReadAt(w.rec, off); err != nil {
		return h, fmt.Errorf("read block record: %w", err)
	}
	if err := checkRecordCRC(w.rec); err != nil {
		return h, err
	}
	sum := w.rec[h.hdrLen : int(h.hdrLen)+int(h.sumStored)]
	if got := crc32.Checksum(sum, castagnoli); got != h.sumCRC {
		return h, fmt.Errorf("summary crc %#08x, want %#08x", got, h.sumCRC)
	}
	h.readBlockID(w.rec)
	return h, nil
}

// resync returns the offset of the first valid record at or after from.
func (w *segWalker) resync(from int64) (int64, bool) {
	return w.scan(from, w.size, func(cand int64) bool { _, err := w.check(cand); return err == nil })
}

// scan returns the first offset in [from, to) holding the block magic for
// which ok holds.
func (w *segWalker) scan(from, to int64, ok func(int64) bool) (int64, bool) {
	const chunkSize = 1 << 20
	if w.chunk == nil {
		w.chunk = make([]byte, chunkSize)
	}
	var magic [4]byte
	binary.LittleEndian.PutUint32(magic[:], blockMagic)
	for pos := from; pos < to && pos+blockHeaderSize <= w.size; {
		n, err := w.f.ReadAt(w.chunk, pos)
		if n < len(magic) {
			return 0, false
		}
		buf := w.chunk[:n]
		for i := 0; ; {
			j := bytes.Index(buf[i:], magic[:])
			if j < 0 {
				break
			}
			cand := pos + int64(i+j)
			if cand >= to {
				return 0, false
			}
			if ok(cand) {
				return cand, true
			}
			i += j + 1
		}
		if err != nil { // io.EOF: the last chunk was scanned
			return 0, false
		}
		pos += int64(n - len(magic) + 1) // overlap, so a magic across chunks is seen
	}
	return 0, false
}

// headerAt reads the block header at off and says whether it is sound (its
// CRC holds and its ref names its own segment and offset), whatever the
// payload after it.
func (w *segWalker) headerAt(off int64) (blockHeader, bool) {
	if off+blockHeaderSize > w.size {
		return blockHeader{}, false
	}
	if _, err := w.f.ReadAt(w.hdr[:], off); err != nil {
		return blockHeader{}, false
	}
	h, err := parseBlockHeader(w.hdr[:])
	return h, err == nil && h.ref == MakeRef(w.seg, uint32(off))
}

// badRecords returns the offsets of the block records that a bad region
// [from, to) held, as the index would know them: from itself, where a sound
// header there says the next record begins, and every sound header found
// further on. A record whose header is damaged is found only at the start
// of the region or where the sound header before it says it begins, so
// two damaged headers in a row count as one record.
func (w *segWalker) badRecords(from, to int64) []int64 {
	var offs []int64
	for pos := from; pos < to; {
		offs = append(offs, pos)
		if h, ok := w.headerAt(pos); ok {
			pos += h.recordLen()
			if pos+blockHeaderSize > w.size {
				break // nothing of a record can follow
			}
			continue
		}
		next, ok := w.scan(pos+1, to, func(cand int64) bool { _, ok := w.headerAt(cand); return ok })
		if !ok {
			break
		}
		pos = next
	}
	return offs
}

// walk calls onBlock for every valid record (rec is the whole record in full
// mode, nil otherwise; borrowed until onBlock returns) and onCorrupt for
// every bad region followed by a valid record. It returns where the tail
// begins (w.size if the file ends cleanly) and why the record there failed.
func (w *segWalker) walk(onBlock func(h *blockHeader, rec []byte) error, onCorrupt func(*CorruptionError) error) (tail int64, tailErr error, err error) {
	off := int64(segHeaderSize)
	for off < w.size {
		h, cerr := w.check(off)
		if cerr == nil {
			var rec []byte
			if w.full {
				rec = w.rec
			}
			if err := onBlock(&h, rec); err != nil {
				return off, nil, err
			}
			off += h.recordLen()
			continue
		}
		// Cheap case first: the header is sound, only the payload is bad,
		// so the next record starts where this one says it ends.
		next, ok := int64(0), false
		if h.ref == MakeRef(w.seg, uint32(off)) && off+h.recordLen() < w.size {
			if _, err := w.check(off + h.recordLen()); err == nil {
				next, ok = off+h.recordLen(), true
			}
		}
		if !ok {
			next, ok = w.resync(off + 1)
		}
		if !ok {
			return off, cerr, nil
		}
		if err := onCorrupt(&CorruptionError{Path: w.path, Offset: off, Err: fmt.Errorf("%w (%d bytes skipped)", cerr, next-off)}); err != nil {
			return off, cerr, err
		}
		off = next
	}
	return w.size, nil, nil
}

// grow returns b resized to n bytes, reallocating only when cap is short.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// createSegment durably creates segment seg in segDir: the header is written
// to a temporary file, fsynced, renamed into place and the directory
// fsynced, so a segment file either does not exist or has a whole header.
// The returned file is open for appending at offset segHeaderSize.
func createSegment(segDir string, seg uint32, created int64) (*os.File, string, error) {
	path := filepath.Join(segDir, segmentName(seg))
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("create segment %q: %w", tmp, err)
	}
	fail := func(err error) (*os.File, string, error) {
		f.Close()
		os.Remove(tmp)
		return nil, "", err
	}
	if _, err := f.Write(appendSegmentHeader(nil, seg, created)); err != nil {
		return fail(fmt.Errorf("write segment header %q: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("sync segment %q: %w", tmp, err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("rename segment %q: %w", tmp, err))
	}
	if err := durable.SyncDir(segDir); err != nil {
		f.Close()
		return nil, "", err
	}
	return f, path, nil
}

// removeTempSegments deletes segment files left half-created by a crash.
func removeTempSegments(segDir string) error {
	ents, err := os.ReadDir(segDir)
	if err != nil {
		return fmt.Errorf("list segments in %q: %w", segDir, err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), segSuffix+tmpSuffix) {
			p := filepath.Join(segDir, e.Name())
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("remove temporary segment %q: %w", p, err)
			}
		}
	}
	return nil
}
