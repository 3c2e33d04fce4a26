package writer

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"tapvault/block"

	"github.com/klauspost/compress/zstd"
)

// Reader reads blocks from a store. It is safe for concurrent use, and safe
// while a Writer appends to the same directory: it never modifies files, and
// at the tail of a segment it stops at the first record that is not whole
// and valid (a torn write, or a block still being written).
type Reader struct {
	dir    string
	segDir string
	log    *slog.Logger
	dec    *zstd.Decoder

	mu      sync.Mutex
	files   map[uint32]*os.File
	dirs    segDirs           // the store's segment directories (segdirs.go)
	where   map[uint32]string // segment -> its directory, when there are several
	missing map[string]bool   // listed directories found missing, warned about once
}

// ReaderOption configures OpenReader.
type ReaderOption func(*Reader)

// WithReaderLogger sets where the reader warns about corrupt records it
// skips. The default is slog.Default().
func WithReaderLogger(l *slog.Logger) ReaderOption { return func(r *Reader) { r.log = l } }

// OpenReader opens the store in dir for reading.
func OpenReader(dir string, opts ...ReaderOption) (*Reader, error) {
	r := &Reader{dir: dir, segDir: segmentsDir(dir), log: slog.Default(), files: make(map[uint32]*os.File)}
	for _, o := range opts {
		o(r)
	}
	var err error
	if r.dirs, err = loadSegDirs(dir); err != nil {
		return nil, fmt.Errorf("open store %q: %w", dir, err)
	}
	fi, err := os.Stat(r.segDir)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open store %q: %q is not a directory", dir, r.segDir)
	}
	r.dec, err = zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(maxSectionLen),
		zstd.WithDecoderMaxWindow(maxSectionLen),
	)
	if err != nil {
		return nil, fmt.Errorf("create zstd decoder: %w", err)
	}
	return r, nil
}

// Close releases the reader's files and decoder.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for n, f := range r.files {
		if err := f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close segment %q: %w", f.Name(), err))
		}
		delete(r.files, n)
	}
	r.dec.Close()
	return errors.Join(errs...)
}

// Segments lists the store's segments in ascending order. A segment whose
// header is damaged is listed with Err set and Created 0 (its blocks are
// still read, by their own checks; Verify reports it).
func (r *Reader) Segments() ([]SegmentInfo, error) {
	r.mu.Lock()
	locs, err := r.listLocked()
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	nums := segNums(locs)
	out := make([]SegmentInfo, 0, len(nums))
	for _, n := range nums {
		si, err := r.segmentInfo(n)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since listed (retention)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, si)
	}
	r.forgetRemoved(nums)
	return out, nil
}

// listLocked lists the segments of every segment directory (re-reading
// the store's list of them, which a writer may have grown) and remembers
// where each is. A listed directory that is missing is warned about once
// and skipped: the other disks' segments are still read. r.mu must be held.
func (r *Reader) listLocked() ([]segLoc, error) {
	if ds, err := loadSegDirs(r.dir); err == nil {
		r.dirs = ds
	}
	return r.listDirsLocked()
}

// listDirsLocked is listLocked without re-reading SEGMENT_DIRS.
func (r *Reader) listDirsLocked() ([]segLoc, error) {
	locs, err := r.dirs.list(true, func(d string, err error) {
		if r.missing == nil {
			r.missing = make(map[string]bool)
		}
		if !r.missing[d] {
			r.missing[d] = true
			r.log.Error("segment directory unreadable: its segments are not read", "dir", d, "err", err)
		}
	})
	if err != nil {
		return nil, err
	}
	r.rememberLocked(locs)
	return locs, nil
}

// rememberLocked keeps where a listing found each segment, when the store
// has several segment directories (with one, every segment is in
// DIR/segments). r.mu must be held.
func (r *Reader) rememberLocked(locs []segLoc) {
	if len(r.dirs) < 2 {
		return
	}
	if r.where == nil {
		r.where = make(map[uint32]string, len(locs))
	}
	clear(r.where)
	for _, l := range locs {
		r.where[l.n] = l.dir
	}
}

// pathLocked is the path of segment n: in the segment directory the last
// listing found it in, else in DIR/segments. r.mu must be held.
func (r *Reader) pathLocked(n uint32) string {
	if d, ok := r.where[n]; ok {
		return filepath.Join(d, segmentName(n))
	}
	return filepath.Join(r.segDir, segmentName(n))
}

// relocateLocked is where segment n is now, for one not found where the
// last listing put it: created since in another segment directory (one the
// store may have gained since this reader listed), or gone. A store with
// segments/ alone is not listed again: its segments have nowhere else to
// be. r.mu must be held.
func (r *Reader) relocateLocked(n uint32) string {
	if ds, err := loadSegDirs(r.dir); err == nil && len(ds) > 1 {
		r.dirs = ds
		r.listDirsLocked() // on failure, where segments were stays
	}
	return r.pathLocked(n)
}

// segPath is pathLocked for callers that do not hold r.mu.
func (r *Reader) segPath(n uint32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pathLocked(n)
}

// forgetRemoved closes the cached files of segments that are no longer in
// the listing nums (removed by retention), so a long-lived reader does not
// keep their disk space. Only segments below the newest listed are
// considered: one created after the listing is not in it but is not gone.
// A read racing the close fails with os.ErrClosed, reported as
// ErrSegmentGone.
func (r *Reader) forgetRemoved(nums []uint32) {
	if len(nums) == 0 {
		return
	}
	newest := nums[len(nums)-1]
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, f := range r.files {
		if _, listed := slices.BinarySearch(nums, n); !listed && n < newest {
			f.Close()
			delete(r.files, n)
		}
	}
}

// goneErr reports a read error on a file closed by forgetRemoved as
// ErrSegmentGone.
func goneErr(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrSegmentGone, err)
	}
	return nil
}

func (r *Reader) segmentInfo(n uint32) (SegmentInfo, error) {
	path := r.segPath(n)
	f, err := os.Open(path)
	if err != nil {
		return SegmentInfo{}, fmt.Errorf("open segment %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return SegmentInfo{}, fmt.Errorf("stat segment %q: %w", path, err)
	}
	si := SegmentInfo{Number: n, Path: path, Size: fi.Size()}
	if si.Created, err = readSegmentHeader(f, path, n); err != nil {
		var ce *CorruptionError
		if !errors.As(err, &ce) {
			return SegmentInfo{}, err
		}
		si.Err = ce
	}
	return si, nil
}

// file returns the open segment file n, opening it on first use.
func (r *Reader) file(n uint32) (*os.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.files[n]; ok {
		return f, nil
	}
	path := r.pathLocked(n)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if p := r.relocateLocked(n); p != path {
			path = p
			f, err = os.Open(path)
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open segment %q: %w: %w", path, ErrSegmentGone, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open segment %q: %w", path, err)
	}
	if _, err := readSegmentHeader(f, path, n); err != nil {
		var ce *CorruptionError
		if !errors.As(err, &ce) {
			f.Close()
			return nil, err
		}
		// Every block carries its own ref and CRCs, so its blocks are
		// still read: a bit flip in 32 bytes must not lose a segment.
		r.log.Warn("segment header damaged: reading its blocks by their own checks", "path", path, "err", ce.Err)
	}
	r.files[n] = f
	return f, nil
}

// ScanSegment calls fn with the header of every block of segment seg, in
// file order, without reading or decompressing payloads. It skips corrupt
// headers (logging a warning) when a valid block follows them, and stops at
// the segment's end or its bad tail (logging a warning where the commit
// marker says the tail is committed: damage, not a torn write). While a writer holds the store it
// stops at the committed end the writer publishes after each group commit,
// so blocks written but not yet synced are not shown. Only header CRCs are
// checked: a corrupt payload shows when the block is read. An error from fn
// stops the scan and is returned.
func (r *Reader) ScanSegment(seg uint32, fn func(BlockMeta) error) error {
	f, err := r.file(seg)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat segment %q: %w", f.Name(), err)
	}
	size := fi.Size()
	if mseg, msize, live := r.committed(); live {
		switch {
		case seg > mseg:
			size = segHeaderSize
		case seg == mseg:
			size = min(size, msize)
		}
	}
	wk := segWalker{f: f, path: f.Name(), seg: seg, size: size}
	tail, tailErr, err := wk.walk(
		func(h *blockHeader, _ []byte) error { return fn(h.meta()) },
		func(ce *CorruptionError) error {
			r.log.Warn("skipping corrupt block record", "path", ce.Path, "offset", ce.Offset, "err", ce.Err)
			return nil
		})
	if err == nil && tail < size {
		// A bad tail is a torn write only past the commit marker.
		if end := readMarker(r.dir).committedEnd(seg); end > tail {
			r.log.Warn("skipping damaged committed bytes at the end of a segment", "path", f.Name(), "offset", tail, "err", tailErr)
		}
	}
	return err
}

// committed returns the commit marker if a writer holds the store (live).
// Without a live writer there is nothing in flight: every whole, valid
// block on disk is what the next Open's recovery keeps, so readers show it.
func (r *Reader) committed() (seg uint32, size int64, live bool) {
	if !writerLive(filepath.Join(r.dir, "LOCK")) {
		return 0, 0, false
	}
	if m := readMarker(r.dir); m.ok {
		return m.seg, m.size, true
	}
	r.log.Warn("store has a live writer but no readable commit marker: showing every valid block", "dir", r.dir)
	return 0, 0, false
}

// BlockBuf holds one block read back, and the buffers reused from read to
// read. A BlockBuf is used by one goroutine at a time; the zero value is
// ready to use.
type BlockBuf struct {
	rec     []byte // the stored record (a flow read: its header)
	sumDec  []byte // decompressed summary, when zstd
	recDec  []byte // decompressed packet records, when zstd (version 2: the sub-frames back to back)
	ordDec  []byte // version 2: the records put back in block order
	stored  []byte // a flow read: the stored sub-frames it read
	summary []byte
	records []byte
	ords    []uint32
	dir     subDir
	sel     [256]bool

	// What the reads into this buffer cost: sub-frames (or whole record
	// sections) decompressed, and their decompressed bytes. Callers reset
	// them as they like.
	Frames   int
	RawBytes int64
}

// Records returns the packet records of the last block read (walk them with
// block.NextRecord). Valid until the next read into b.
func (b *BlockBuf) Records() []byte { return b.records }

// Ordinals returns, after ReadFlow, the position in its block of each packet
// in Records, in order; nil means Records holds the whole block, the i-th
// record being packet i. Valid until the next read into b.
func (b *BlockBuf) Ordinals() []uint32 { return b.ords }

// Summary returns the encoded summary of the last block read (decode it with
// block.ParseSummary). Valid until the next read into b.
func (b *BlockBuf) Summary() []byte { return b.summary }

// readHeader reads and checks the header of the block at ref into buf.rec.
func (r *Reader) readHeader(ref Ref, buf *BlockBuf) (*os.File, blockHeader, error) {
	f, err := r.file(ref.Segment())
	if err != nil {
		return nil, blockHeader{}, err
	}
	off := int64(ref.Offset())
	buf.rec = grow(buf.rec, blockHeaderSize)
	if _, err := f.ReadAt(buf.rec, off); err != nil {
		if gerr := goneErr(err); gerr != nil {
			return f, blockHeader{}, gerr
		}
		return f, blockHeader{}, &CorruptionError{Path: f.Name(), Offset: off, Err: fmt.Errorf("read block header: %w", noEOF(err))}
	}
	h, err := parseBlockHeader(buf.rec)
	if err == nil && h.ref != ref {
		err = fmt.Errorf("block header ref %v, want %v", h.ref, ref)
	}
	if err != nil {
		return f, h, &CorruptionError{Path: f.Name(), Offset: off, Err: err}
	}
	return f, h, nil
}

// RecordEnd returns the offset just past the block record at ref, from its
// header alone (one 72-byte read, the header CRC checked): where the next
// record would start.
func (r *Reader) RecordEnd(ref Ref) (int64, error) {
	var buf BlockBuf
	_, h, err := r.readHeader(ref, &buf)
	if err != nil {
		return 0, err
	}
	return int64(ref.Offset()) + h.recordLen(), nil
}

// ReadBlock reads the block at ref into buf, verifies its CRCs and
// decompresses both sections; then buf.Records and buf.Summary return them.
// A record that fails any check gives a *CorruptionError; a block whose
// segment was removed (retention) gives an error matching ErrSegmentGone.
func (r *Reader) ReadBlock(ref Ref, buf *BlockBuf) (BlockMeta, error) {
	f, h, err := r.readHeader(ref, buf)
	if err != nil {
		return BlockMeta{}, err
	}
	off := int64(ref.Offset())
	corrupt := func(err error) (BlockMeta, error) {
		return BlockMeta{}, &CorruptionError{Path: f.Name(), Offset: off, Err: err}
	}
	n := int(h.recordLen())
	if err := readAfterHeader(f, off, n, buf, "read block record"); err != nil {
		return BlockMeta{}, err
	}
	if err := checkRecordCRC(buf.rec); err != nil {
		return corrupt(err)
	}
	sumEnd := int(h.hdrLen) + int(h.sumStored)
	buf.summary, buf.sumDec, err = r.decodeSection(buf.rec[h.hdrLen:sumEnd], h.sumCodec, h.sumRaw, buf.sumDec)
	if err != nil {
		return corrupt(fmt.Errorf("summary section: %w", err))
	}
	if err := r.decodeRecords(&h, buf.rec, buf, false); err != nil {
		return corrupt(err)
	}
	h.readBlockID(buf.rec)
	return h.meta(), nil
}

// decodeRecords decodes the records section of the whole record rec (whose
// record CRC passed) into buf.records, in block order: version 1 one
// frame, version 2 every sub-frame, put back in order by the sequence.
// checkCRC also checks each sub-frame's CRC (Verify; a full read has the
// record CRC).
func (r *Reader) decodeRecords(h *blockHeader, rec []byte, buf *BlockBuf, checkCRC bool) error {
	sec := rec[int(h.hdrLen)+int(h.sumStored) : len(rec)-crcSize]
	buf.ords = nil
	if h.version != blockVersion2 {
		var err error
		buf.records, buf.recDec, err = r.decodeSection(sec, h.recCodec, h.recRaw, buf.recDec)
		if err != nil {
			return fmt.Errorf("records section: %w", err)
		}
		buf.Frames++
		buf.RawBytes += int64(h.recRaw)
		return nil
	}
	d := &buf.dir
	if err := parseDir(rec, h, d); err != nil {
		return err
	}
	parts := grow(buf.recDec, 0)[:0]
	if cap(parts) < int(h.recRaw) {
		parts = make([]byte, 0, h.recRaw)
	}
	for i := range d.subs {
		e := &d.subs[i]
		stored := sec[e.off : e.off+e.stored]
		var err error
		if parts, err = r.appendSubFrame(parts, stored, e, i, checkCRC); err != nil {
			buf.recDec = parts[:0]
			return err
		}
	}
	buf.recDec = parts[:0]
	buf.Frames += len(d.subs)
	buf.RawBytes += int64(h.recRaw)
	if len(d.subs) == 1 {
		buf.records = parts
		return nil
	}
	out, _, err := d.reassemble(grow(buf.ordDec, 0)[:0], parts, nil, nil)
	buf.ordDec = out[:0]
	if err != nil {
		return err
	}
	buf.records = out
	return nil
}

// appendSubFrame appends the decoded records of sub-frame i (entry e,
// stored bytes stored) to dst.
func (r *Reader) appendSubFrame(dst, stored []byte, e *subEntry, i int, checkCRC bool) ([]byte, error) {
	if checkCRC {
		if got := crc32.Checksum(stored, castagnoli); got != e.crc {
			return dst, fmt.Errorf("sub-frame %d: crc %#08x, want %#08x", i, got, e.crc)
		}
	}
	if e.codec == CodecRaw {
		return append(dst, stored...), nil
	}
	start := len(dst)
	out, err := r.dec.DecodeAll(stored, dst)
	if err != nil {
		return dst, fmt.Errorf("sub-frame %d: zstd: %w", i, err)
	}
	if len(out)-start != int(e.raw) {
		return out[:start], fmt.Errorf("sub-frame %d: decompressed %d bytes, directory says %d", i, len(out)-start, e.raw)
	}
	return out, nil
}

// flowReadAhead is what a flow read reads of a record at first: the fixed
// header and, in one read, the whole directory of a 1 MiB block (about
// 2 KB on IMIX).
const flowReadAhead = 4096

// ReadFlow reads from the block at ref only the packets that may belong to
// the flows whose block.FlowHash is in hashes: in a version-2 block, the
// sub-frames that hold those hashes, read and decompressed alone; a
// version-1 block is read whole (ReadBlock). buf.Records then holds them in
// block order and buf.Ordinals their positions in the block; buf.Summary
// is empty. The caller filters the packets exactly: a sub-frame holds other
// flows too.
//
// A flow read checks the header CRC, the ref, the directory CRC (which
// also covers the block ID), each sub-frame read against its CRC and its
// decompressed length, and the sequence; not the record CRC, which needs
// the whole record.
func (r *Reader) ReadFlow(ref Ref, hashes []uint32, buf *BlockBuf) (BlockMeta, error) {
	f, err := r.file(ref.Segment())
	if err != nil {
		return BlockMeta{}, err
	}
	off := int64(ref.Offset())
	corrupt := func(err error) (BlockMeta, error) {
		return BlockMeta{}, &CorruptionError{Path: f.Name(), Offset: off, Err: err}
	}
	buf.rec = grow(buf.rec, flowReadAhead)
	n, err := f.ReadAt(buf.rec, off)
	if n < blockHeaderSize {
		if gerr := goneErr(err); gerr != nil {
			return BlockMeta{}, gerr
		}
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return corrupt(fmt.Errorf("read block header: %w", noEOF(err)))
	}
	h, err := parseBlockHeader(buf.rec[:n])
	if err == nil && h.ref != ref {
		err = fmt.Errorf("block header ref %v, want %v", h.ref, ref)
	}
	if err != nil {
		return corrupt(err)
	}
	if h.version != blockVersion2 {
		return r.ReadBlock(ref, buf)
	}
	if int(h.hdrLen) > n {
		if cap(buf.rec) < int(h.hdrLen) {
			buf.rec = append(make([]byte, 0, h.hdrLen), buf.rec[:n]...)
		}
		buf.rec = buf.rec[:h.hdrLen]
		if _, err := f.ReadAt(buf.rec[n:], off+int64(n)); err != nil {
			if gerr := goneErr(err); gerr != nil {
				return BlockMeta{}, gerr
			}
			return corrupt(fmt.Errorf("read block header: %w", noEOF(err)))
		}
	}
	hdr := buf.rec[:h.hdrLen]
	d := &buf.dir
	if err := parseDir(hdr, &h, d); err != nil {
		return corrupt(err)
	}
	clear(buf.sel[:])
	nsel := 0
	for _, hash := range hashes {
		if i := d.find(hash); i >= 0 && !buf.sel[i] {
			buf.sel[i] = true
			nsel++
		}
	}
	buf.summary, buf.records, buf.ords = nil, nil, buf.ords[:0]
	h.readBlockID(hdr)
	if nsel == 0 {
		return h.meta(), nil
	}
	// Read the selected sub-frames, adjacent ones in one read, and
	// decode them back to back.
	recOff := off + int64(h.hdrLen) + int64(h.sumStored)
	parts := buf.recDec[:0]
	for i := 0; i < len(d.subs); {
		if !buf.sel[i] {
			i++
			continue
		}
		j := i
		var size int
		for ; j < len(d.subs) && buf.sel[j]; j++ {
			size += int(d.subs[j].stored)
		}
		buf.stored = grow(buf.stored, size)
		if _, err := f.ReadAt(buf.stored, recOff+int64(d.subs[i].off)); err != nil {
			buf.recDec = parts[:0]
			if gerr := goneErr(err); gerr != nil {
				return BlockMeta{}, gerr
			}
			return corrupt(fmt.Errorf("read sub-frames: %w", noEOF(err)))
		}
		for k := i; k < j; k++ {
			e := &d.subs[k]
			// Where the reassembly finds it: after the sub-frames
			// decoded before it.
			e.rawOff = uint32(len(parts))
			rel := e.off - d.subs[i].off
			if parts, err = r.appendSubFrame(parts, buf.stored[rel:rel+e.stored], e, k, true); err != nil {
				buf.recDec = parts[:0]
				return corrupt(err)
			}
			buf.Frames++
			buf.RawBytes += int64(e.raw)
		}
		i = j
	}
	buf.recDec = parts[:0]
	if nsel == 1 {
		// One sub-frame is its packets in block order already.
		s := -1
		for i := range d.subs {
			if buf.sel[i] {
				s = i
			}
		}
		buf.ords = d.positions(uint8(s), buf.ords)
		if err := checkWalk(parts, len(buf.ords)); err != nil {
			return corrupt(fmt.Errorf("sub-frame %d: %w", s, err))
		}
		buf.records = parts
		return h.meta(), nil
	}
	out, ords, err := d.reassemble(grow(buf.ordDec, 0)[:0], parts, &buf.sel, buf.ords)
	buf.ordDec, buf.ords = out[:0], ords
	if err != nil {
		return corrupt(err)
	}
	buf.records = out
	return h.meta(), nil
}

// checkWalk checks that recs is exactly n packet records.
func checkWalk(recs []byte, n int) error {
	for i := 0; i < n; i++ {
		l, ok := block.RecordLen(recs)
		if !ok {
			return fmt.Errorf("packet record %d of %d runs past the end", i, n)
		}
		recs = recs[l:]
	}
	if len(recs) != 0 {
		return fmt.Errorf("%d bytes after its %d packet records", len(recs), n)
	}
	return nil
}

// readAfterHeader makes buf.rec the first n bytes of the block record at off
// in f, keeping the header readHeader already put there and reading the rest.
// A segment removed meanwhile gives ErrSegmentGone; a short or failed read a
// *CorruptionError whose message starts with what.
func readAfterHeader(f *os.File, off int64, n int, buf *BlockBuf, what string) error {
	if cap(buf.rec) < n {
		rec := make([]byte, n)
		copy(rec, buf.rec[:blockHeaderSize])
		buf.rec = rec
	}
	buf.rec = buf.rec[:n]
	if _, err := f.ReadAt(buf.rec[blockHeaderSize:], off+blockHeaderSize); err != nil {
		if gerr := goneErr(err); gerr != nil {
			return gerr
		}
		return &CorruptionError{Path: f.Name(), Offset: off, Err: fmt.Errorf("%s: %w", what, noEOF(err))}
	}
	return nil
}

// ReadSummary reads only the header and summary section of the block at
// ref (verifying the header and summary CRCs), not the packet records:
// buf.Summary returns it, and buf.Records is empty.
func (r *Reader) ReadSummary(ref Ref, buf *BlockBuf) (BlockMeta, error) {
	f, h, err := r.readHeader(ref, buf)
	if err != nil {
		return BlockMeta{}, err
	}
	off := int64(ref.Offset())
	corrupt := func(err error) (BlockMeta, error) {
		return BlockMeta{}, &CorruptionError{Path: f.Name(), Offset: off, Err: err}
	}
	n := int(h.hdrLen) + int(h.sumStored)
	if err := readAfterHeader(f, off, n, buf, "read summary"); err != nil {
		return BlockMeta{}, err
	}
	sum := buf.rec[h.hdrLen:n]
	if got := crc32.Checksum(sum, castagnoli); got != h.sumCRC {
		return corrupt(fmt.Errorf("summary crc %#08x, want %#08x", got, h.sumCRC))
	}
	buf.summary, buf.sumDec, err = r.decodeSection(sum, h.sumCodec, h.sumRaw, buf.sumDec)
	if err != nil {
		return corrupt(fmt.Errorf("summary section: %w", err))
	}
	buf.records = nil
	h.readBlockID(buf.rec)
	return h.meta(), nil
}

// decodeSection returns the raw bytes of a stored section: stored itself
// when raw, otherwise decompressed into scratch (grown as needed, and
// returned for reuse).
func (r *Reader) decodeSection(stored []byte, codec uint8, rawLen uint32, scratch []byte) (out, newScratch []byte, err error) {
	if codec == CodecRaw {
		return stored, scratch, nil
	}
	if cap(scratch) < int(rawLen) {
		scratch = make([]byte, 0, rawLen)
	}
	out, err = r.dec.DecodeAll(stored, scratch[:0])
	if cap(out) > cap(scratch) {
		scratch = out[:0]
	}
	if err != nil {
		return nil, scratch, fmt.Errorf("zstd: %w", err)
	}
	if len(out) != int(rawLen) {
		return nil, scratch, fmt.Errorf("decompressed %d bytes, header says %d", len(out), rawLen)
	}
	return out, scratch, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WalkSummaries calls fn for every committed block with a ref at or after
// from, in ref order, with the block's decoded summary (borrowed until fn
// returns). It reads headers and summary sections only, never packets: the
// reindex path (it has the shape of index.BlockWalker). Corrupt blocks are
// skipped with a warning (the blocks of a segment whose header is damaged
// are walked, by their own checks); an error from fn stops the walk and is
// returned.
func (r *Reader) WalkSummaries(from Ref, fn func(meta BlockMeta, sum *block.Summary) error) error {
	segs, err := r.Segments()
	if err != nil {
		return err
	}
	var buf BlockBuf
	var sum block.Summary
	for _, s := range segs {
		if s.Number < from.Segment() {
			continue
		}
		err := r.ScanSegment(s.Number, func(m BlockMeta) error {
			if m.Ref < from {
				return nil
			}
			if _, err := r.ReadSummary(m.Ref, &buf); err != nil {
				var ce *CorruptionError
				if errors.As(err, &ce) {
					r.log.Warn("skipping corrupt block", "path", ce.Path, "offset", ce.Offset, "err", ce.Err)
					return nil
				}
				return err
			}
			if err := block.ParseSummary(buf.Summary(), &sum); err != nil {
				r.log.Warn("skipping block with a bad summary", "ref", m.Ref, "err", err)
				return nil
			}
			return fn(m, &sum)
		})
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrSegmentGone) {
			continue // removed since listed
		}
		if err != nil {
			return err
		}
	}
	return nil
}
