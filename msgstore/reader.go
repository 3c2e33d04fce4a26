package msgstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"

	"tapvault/analytics"
	"tapvault/internal/durable"
)

// ErrNotFound is returned by Get when no record has the ID.
var ErrNotFound = errors.New("message record not found")

// Query selects records for Scan. The zero Query selects every record.
type Query struct {
	// From and To bound the records' times, ns since the Unix epoch; 0
	// leaves that end open. A record matches when the span of its nonzero
	// ReqFirst, ReqLast, RespFirst and RespLast overlaps [From, To]; a
	// record with none of them matches only when both ends are open.
	From, To int64
	// Terms must all be among the record's terms (see analytics.Terms); matched
	// case-insensitively. Frames whose bloom filter lacks one are skipped
	// without decompressing.
	Terms []string
	// AnyTerms, when not empty, are term lists of which a record must have
	// every term of at least one (an expression's alternatives: id A or
	// id B); frames whose bloom filter lacks a term of every list are
	// skipped. Terms, when given too, must match as well.
	AnyTerms [][]string
	// Protos, when not empty, lists the protocols accepted (any of them).
	Protos []string
	// Kind, when not AllRecords, passes only exchanges or only connection
	// records (analytics.IsConnection). The writer keeps the two kinds in
	// frames of their own, so the other kind's frames are skipped unread;
	// a frame written before that holds both, and its records are tested
	// one by one.
	Kind RecordKind
	// NoDetail passes records without their Fields and Packets (empty):
	// a frame's detail section is neither decompressed nor parsed (in a
	// version 1 frame, which has none, they are checked but not decoded).
	// For a caller that reads neither (a latency table by protocol, a
	// diagnosis). Terms, which may name fields, turn it off.
	NoDetail bool
	// Workers, above 1, reads and decodes frames on that many goroutines
	// (scan_parallel.go), each started through Spawn (nil: a plain go
	// statement; a caller that runs its scans at low priority passes its
	// way of starting low-priority goroutines). fn and OnCorrupt still run
	// on the caller's goroutine, one record at a time, in the order of a
	// sequential scan.
	Workers int
	Spawn   func(func())
	// OnCorrupt receives each damaged frame (a *CorruptionError) or file
	// that could not be read; Scan skips the rest of that file and goes on
	// with the next. Nil logs them with slog.Default at Warn level.
	OnCorrupt func(error)
	// Records, when not nil, gives the records a scan decodes into, and
	// each record passed to fn is then fn's to keep (with its Fields and
	// Packets arrays): Scan asks Records for another. For a caller that
	// holds records (the tier linker holds a window of them), it saves a
	// copy of each. Called from the scan's workers: it must be safe for
	// concurrent use. A record from it may hold anything: Scan overwrites
	// every field.
	Records func() *analytics.Record
	// Pos, when not nil, is set to each record's position just before fn
	// is called with it: for ReadAt to read the record again, with its
	// detail, without another scan.
	Pos *Pos
}

// Pos is where a record lies in the store: its file's sequence number,
// its frame's offset in the file, and its index in the frame. A position
// stays valid as long as its file is kept (files are never rewritten;
// retention removes whole files).
type Pos struct {
	File  uint64
	Off   int64
	Index uint32
}

// RecordKind selects exchanges or connection records (Query.Kind).
type RecordKind uint8

const (
	AllRecords  RecordKind = iota
	Exchanges              // request/response exchanges: not analytics.IsConnection
	Connections            // connection records: analytics.IsConnection
)

// skipFlag is the frame flag of the frames a scan of kind k skips (0:
// none).
func (k RecordKind) skipFlag() uint8 {
	switch k {
	case Exchanges:
		return flagConnections
	case Connections:
		return flagExchanges
	}
	return 0
}

// ScanStats count a Reader's frame decisions since OpenReader.
type ScanStats struct {
	Frames       uint64 // frame headers read
	SkippedTime  uint64 // frames skipped by their time range
	SkippedProto uint64 // frames skipped by their protocol bitmap
	SkippedKind  uint64 // frames skipped as holding only the other kind of record (Query.Kind)
	SkippedBloom uint64 // frames skipped by their bloom filter
	Decoded      uint64 // frames read whole (and decompressed when zstd)
	Records      uint64 // records passed to Scan callbacks
	Corrupt      uint64 // damaged frames and unreadable files reported
}

// Reader reads a store's message records. It is safe for concurrent use and
// may run beside a Writer, in this or another process: it sees the frames
// written before it reached each file's end.
type Reader struct {
	dir string // root/messages
	dec *zstd.Decoder

	frames, skipTime, skipProto, skipKind, skipBloom, decoded, records, corrupt atomic.Uint64
}

// OpenReader opens the message store under root. A root without a messages
// directory is a valid, empty store.
func OpenReader(root string) (*Reader, error) {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(maxDataLen),
		zstd.WithDecoderMaxWindow(maxDataLen),
	)
	if err != nil {
		return nil, fmt.Errorf("create zstd decoder: %w", err)
	}
	return &Reader{dir: messagesDir(root), dec: dec}, nil
}

// Close releases the decoder.
func (r *Reader) Close() error {
	r.dec.Close()
	return nil
}

// Stats returns the reader's counters.
func (r *Reader) Stats() ScanStats {
	return ScanStats{
		Frames:       r.frames.Load(),
		SkippedTime:  r.skipTime.Load(),
		SkippedProto: r.skipProto.Load(),
		SkippedKind:  r.skipKind.Load(),
		SkippedBloom: r.skipBloom.Load(),
		Decoded:      r.decoded.Load(),
		Records:      r.records.Load(),
		Corrupt:      r.corrupt.Load(),
	}
}

// plan is a Query prepared for testing frames and records.
type plan struct {
	q          Query
	terms      []string // normalized
	termHashes []uint64
	anyTerms   [][]string // normalized
	anyHashes  [][]uint64
	protoMask  uint64
}

func newPlan(q Query) *plan {
	p := &plan{q: q}
	for _, t := range q.Terms {
		t = analytics.NormalizeTerm(t)
		p.terms = append(p.terms, t)
		p.termHashes = append(p.termHashes, termHash([]byte(t)))
	}
	for _, alt := range q.AnyTerms {
		var ts []string
		var hs []uint64
		for _, t := range alt {
			t = analytics.NormalizeTerm(t)
			ts = append(ts, t)
			hs = append(hs, termHash([]byte(t)))
		}
		p.anyTerms = append(p.anyTerms, ts)
		p.anyHashes = append(p.anyHashes, hs)
	}
	for _, pr := range q.Protos {
		p.protoMask |= protoBit(pr)
	}
	return p
}

func (p *plan) frameInTime(h *frameHeader) bool {
	if p.q.From == 0 && p.q.To == 0 {
		return true
	}
	if h.minTS == 0 && h.maxTS == 0 {
		return false // no record in the frame has a time
	}
	return (p.q.From == 0 || h.maxTS >= p.q.From) && (p.q.To == 0 || h.minTS <= p.q.To)
}

// recordMatches tests r of a frame with flags (which say whether its
// records need a test of their kind).
func (p *plan) recordMatches(r *analytics.Record, tb *analytics.TermBuf, flags uint8) bool {
	if p.q.From != 0 || p.q.To != 0 {
		lo, hi, ok := recordSpan(r)
		if !ok || (p.q.From != 0 && hi < p.q.From) || (p.q.To != 0 && lo > p.q.To) {
			return false
		}
	}
	if len(p.q.Protos) > 0 && !slices.Contains(p.q.Protos, r.Proto) {
		return false
	}
	if p.q.Kind != AllRecords && flags == 0 && analytics.IsConnection(r) != (p.q.Kind == Connections) {
		return false
	}
	if len(p.terms) > 0 || len(p.anyTerms) > 0 {
		tb.Build(r)
		if len(p.terms) > 0 && !tb.Has(p.terms) {
			return false
		}
		if len(p.anyTerms) > 0 {
			return slices.ContainsFunc(p.anyTerms, tb.Has)
		}
	}
	return true
}

// fileEntry is one message file found in a directory listing.
type fileEntry struct {
	seq  uint64
	path string
}

// listFiles returns the message files in dir in sequence order; a missing
// dir has none.
func listFiles(dir string) ([]fileEntry, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list messages dir %q: %w", dir, err)
	}
	var out []fileEntry
	for _, e := range ents {
		if seq, ok := parseFileName(e.Name()); ok && e.Type().IsRegular() {
			out = append(out, fileEntry{seq: seq, path: filepath.Join(dir, e.Name())})
		}
	}
	slices.SortFunc(out, func(a, b fileEntry) int {
		if a.seq < b.seq {
			return -1
		}
		if a.seq > b.seq {
			return 1
		}
		return 0
	})
	return out, nil
}

// frameFile walks the frames of one open file, up to the size it had when
// opened. buf is reused between frames; what next and read return is valid
// until the next call.
type frameFile struct {
	f      *os.File
	path   string
	size   int64
	sealed bool  // the file was sealed when opened: it has no torn tail
	off    int64 // offset of the next frame
	buf    []byte
}

func openFrameFile(path string) (*frameFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat message file %q: %w", path, err)
	}
	return &frameFile{f: f, path: path, size: fi.Size(), sealed: isSealed(fi.Mode())}, nil
}

// tornErr is the error for a torn tail at ff.off: nil in an unsealed file
// (a frame being written, or a crash's tail), a *CorruptionError in a
// sealed one, whose writer wrote and synced every frame before sealing it.
func (ff *frameFile) tornErr() error {
	if !ff.sealed {
		return nil
	}
	if ff.off == 0 {
		return ff.corrupt(fmt.Errorf("sealed file of %d bytes holds no whole frame", ff.size))
	}
	return ff.corrupt(fmt.Errorf("sealed file ends in a partial frame (%d bytes)", ff.size-ff.off))
}

func (ff *frameFile) close() { ff.f.Close() }

func (ff *frameFile) corrupt(err error) error {
	return frameCorrupt(ff.path, ff.off, err)
}

func (ff *frameFile) readAt(n int, off int64) ([]byte, error) {
	if cap(ff.buf) < n {
		ff.buf = make([]byte, n)
	}
	b := ff.buf[:n]
	if _, err := ff.f.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errTorn // the file shrank under us
		}
		return nil, fmt.Errorf("read message file %q at %d: %w", ff.path, off, err)
	}
	return b, nil
}

// next reads the header of the frame at ff.off. It returns io.EOF at the
// end of the file, errTorn for a frame cut short by the end of the file
// (or a zero-filled tail), a *CorruptionError for a damaged header, or
// another error for a failed read.
func (ff *frameFile) next() (frameHeader, error) {
	left := ff.size - ff.off
	if left == 0 {
		return frameHeader{}, io.EOF
	}
	if left < frameHeaderSize {
		return frameHeader{}, errTorn
	}
	b, err := ff.readAt(frameHeaderSize, ff.off)
	if err != nil {
		return frameHeader{}, err
	}
	if allZero(b) {
		return frameHeader{}, errTorn
	}
	h, err := parseFrameHeader(b)
	if err != nil {
		return h, ff.corrupt(err)
	}
	if h.frameLen() > left {
		return h, errTorn
	}
	return h, nil
}

// bloom reads and checks the bloom filter of the frame whose header is h.
func (ff *frameFile) bloom(h *frameHeader) ([]byte, error) {
	b, err := ff.readAt(int(h.bloomLen), ff.off+int64(h.hdrLen))
	if err != nil {
		return nil, err
	}
	if got := crc32.Checksum(b, castagnoli); got != h.bloomCRC {
		return nil, ff.corrupt(fmt.Errorf("bloom crc %#08x, want %#08x", got, h.bloomCRC))
	}
	return b, nil
}

// decodeBufs are the buffers a frame's sections decompress into, kept
// for the next frame.
type decodeBufs struct{ core, det []byte }

// frameRecords reads the records of a decoded frame one by one (next),
// sharing strings through the decoders' strCache.
type frameRecords struct {
	core   decoder // version 1: the whole records; version 2: the cores
	det    decoder // version 2 with detail: the details
	split  bool    // version 2
	detail bool    // decode Fields and Packets (else they are left empty)
}

// next decodes the next record into r (ParseRecord's contract; without
// detail, r.Fields and r.Packets are empty).
func (fr *frameRecords) next(r *analytics.Record) error {
	if err := fr.core.core(r); err != nil {
		return err
	}
	switch {
	case !fr.split:
		return fr.core.detail(r, fr.detail) // checked even when not kept
	case fr.detail:
		return fr.det.detail(r, true)
	}
	r.Fields, r.Packets = r.Fields[:0], r.Packets[:0]
	return nil
}

// left is how many decoded bytes no record took, after the last.
func (fr *frameRecords) left() int { return len(fr.core.rest()) + len(fr.det.rest()) }

// records reads the whole frame, checks its CRC and decodes its data
// section for frameRecords: in a version 2 frame, the detail section only
// with detail. The decoded bytes are in bufs' storage when compressed,
// else in ff.buf; c (nil: none) shares strings.
func (ff *frameFile) records(h *frameHeader, dec *zstd.Decoder, bufs *decodeBufs, detail bool, c *strCache) (frameRecords, error) {
	fr := frameRecords{detail: detail, split: h.version != frameVersion1}
	b, err := ff.readAt(int(h.frameLen()), ff.off)
	if err != nil {
		return fr, err
	}
	end := len(b) - crcSize
	if got, want := binary.LittleEndian.Uint32(b[end:]), crc32.Checksum(b[:end], castagnoli); got != want {
		return fr, ff.corrupt(fmt.Errorf("frame crc %#08x, want %#08x", got, want))
	}
	data := b[int(h.hdrLen)+int(h.bloomLen) : end]
	if !fr.split {
		rows, err := ff.section(h, data, dec, &bufs.core, int(h.raw), "data")
		if err != nil {
			return fr, err
		}
		if len(rows) != int(h.raw) {
			return fr, ff.corrupt(fmt.Errorf("data is %d bytes, header says %d", len(rows), h.raw))
		}
		fr.core = decoder{b: rows, cache: c}
		return fr, nil
	}
	core, err := ff.section(h, data[:h.core], dec, &bufs.core, 0, "core section") // grown by DecodeAll as needed
	if err != nil {
		return fr, err
	}
	fr.core = decoder{b: core, cache: c}
	if !detail {
		if len(core) > int(h.raw) {
			return fr, ff.corrupt(fmt.Errorf("core section is %d bytes, header says %d for both", len(core), h.raw))
		}
		return fr, nil
	}
	det, err := ff.section(h, data[h.core:], dec, &bufs.det, 0, "detail section")
	if err != nil {
		return fr, err
	}
	if len(core)+len(det) != int(h.raw) {
		return fr, ff.corrupt(fmt.Errorf("sections are %d and %d bytes, header says %d", len(core), len(det), h.raw))
	}
	fr.det = decoder{b: det, cache: c}
	return fr, nil
}

// section decodes one stored section of the frame h: b itself when raw,
// else decompressed into *buf (grown to at least size bytes), which keeps
// the storage for the next frame.
func (ff *frameFile) section(h *frameHeader, b []byte, dec *zstd.Decoder, buf *[]byte, size int, what string) ([]byte, error) {
	if h.codec != codecZstd {
		return b, nil
	}
	dst := *buf
	if cap(dst) < size {
		dst = make([]byte, 0, max(size, 0))
	}
	out, err := dec.DecodeAll(b, dst[:0])
	if err != nil {
		return nil, ff.corrupt(fmt.Errorf("decompress %s: %w", what, err))
	}
	*buf = out[:0]
	return out, nil
}

// Scan calls fn for each record matching q, file by file in sequence order
// and frame by frame within a file: each kind of record (exchanges,
// connection records, which the writer keeps in frames of their own) in
// write order. The *Record passed to fn, with its
// Fields and Packets, is reused for the next record: fn must copy what it
// keeps (unless Query.Records gives the records: then each is fn's). A frame cut short at the end of a file (being written, or torn by
// a crash) ends that file quietly. A frame whose bloom filter or data is
// damaged is reported to q.OnCorrupt and skipped (its header gives its
// length); a damaged header is reported and ends that file. Scan goes on
// with the next. Scan
// returns fn's first error, ctx's error (checked before each frame), or an
// error listing the messages directory.
func (r *Reader) Scan(ctx context.Context, q Query, fn func(rec *analytics.Record) error) error {
	files, err := listFiles(r.dir)
	if err != nil {
		return err
	}
	p := newPlan(q)
	report := q.OnCorrupt
	if report == nil {
		report = func(err error) { slog.Warn("msgstore: skipping damaged messages", "err", err) }
	}
	detail := !q.NoDetail || len(p.terms) > 0 || len(p.anyTerms) > 0
	if q.Workers > 1 {
		return r.scanParallel(ctx, files, p, detail, q.Workers, q.Spawn, report, fn)
	}
	s := &scanner{r: r, p: p, fn: fn, detail: detail}
	corrupt := func(err error) error {
		r.corrupt.Add(1)
		report(err)
		return nil
	}
	for _, fe := range files {
		ff, err := openScanFile(fe.path)
		if err == nil && ff != nil {
			err = s.walk(ctx, ff, func(h *frameHeader) error { return s.frame(ff, h) }, corrupt)
			ff.close()
		}
		if err != nil {
			if errors.Is(err, errStop) {
				return s.err
			}
			corrupt(err)
		}
	}
	return nil
}

// errStop wraps the end of a scan by fn or ctx; the cause is in scanner.err.
var errStop = errors.New("scan stopped")

// scanner is a scan's walk over the frames, and in a sequential scan its
// decoding too.
type scanner struct {
	r      *Reader
	p      *plan
	fn     func(*analytics.Record) error
	w      scanWorker
	b      scanBatch
	detail bool // decode Fields and Packets (parseRecord)
	err    error
}

// openScanFile opens a message file for a scan: nil, nil when retention
// dropped it since the listing.
func openScanFile(path string) (*frameFile, error) {
	ff, err := openFrameFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open message file %q: %w", path, err)
	}
	return ff, nil
}

// walk walks the frames of ff in order, checking ctx before each (its
// error goes to s.err, and walk returns errStop). Each header is counted;
// a frame whose header and bloom filter the plan accepts goes to frame.
// The header checked out (its CRC covers the lengths), so a damaged bloom
// filter or data section (a *CorruptionError, from the bloom or from
// frame) costs only that frame: it goes to corrupt, and the walk goes on
// unless corrupt returns an error. walk returns nil at the end of the file
// or at a torn tail of a file not sealed, errStop, or the error that ended
// the file: a damaged header, a failed read, a torn sealed file, or
// frame's or corrupt's other error.
func (s *scanner) walk(ctx context.Context, ff *frameFile, frame func(*frameHeader) error, corrupt func(error) error) error {
	for {
		if err := ctx.Err(); err != nil {
			s.err = err
			return errStop
		}
		h, err := ff.next()
		switch {
		case err == io.EOF && ff.size == 0 && ff.sealed, errors.Is(err, errTorn):
			return ff.tornErr()
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
		s.r.frames.Add(1)
		ok, err := s.frameCandidate(ff, &h)
		if err == nil && ok {
			err = frame(&h)
		}
		if err != nil {
			if !isCorruption(err) {
				return err
			}
			if err := corrupt(err); err != nil {
				return err
			}
		}
		ff.off += h.frameLen()
	}
}

func (s *scanner) frameCandidate(ff *frameFile, h *frameHeader) (bool, error) {
	if !s.p.frameInTime(h) {
		s.r.skipTime.Add(1)
		return false, nil
	}
	if s.p.protoMask != 0 && h.protos&s.p.protoMask == 0 {
		s.r.skipProto.Add(1)
		return false, nil
	}
	if f := s.p.q.Kind.skipFlag(); f != 0 && h.flags == f {
		s.r.skipKind.Add(1)
		return false, nil
	}
	if len(s.p.termHashes) == 0 && len(s.p.anyHashes) == 0 {
		return true, nil
	}
	f, err := ff.bloom(h) // read and checked once for both tests
	if err != nil {
		return false, err
	}
	k := int(h.hashes)
	if !bloomHasAll(f, k, s.p.termHashes) ||
		len(s.p.anyHashes) > 0 && !slices.ContainsFunc(s.p.anyHashes, func(hs []uint64) bool { return bloomHasAll(f, k, hs) }) {
		s.r.skipBloom.Add(1)
		return false, nil
	}
	return true, nil
}

// frame decodes the frame h of ff and passes its matching records to fn.
func (s *scanner) frame(ff *frameFile, h *frameHeader) error {
	s.r.decodeFrame(&s.w, ff, h, &s.b, s.p, s.detail)
	if err := s.r.deliver(&s.b, s.fn, s.p.q.Pos, s.p.q.Records != nil); err != nil {
		s.err = err
		return errStop
	}
	return s.b.err
}

// ReadAt passes to fn, with its detail, each record at ps (positions a
// scan gave through Query.Pos), in store order and each once. The *Record
// passed to fn is reused for the next one: fn must copy what it keeps. A
// position whose file is gone (retention dropped it), or beyond what its
// file holds, is skipped; a damaged frame goes to onCorrupt (nil: logged)
// and its records are skipped. (An offset that is not a frame's start,
// which no scan gives, reads as a damaged frame.) ReadAt returns fn's first error, ctx's
// (checked before each frame), or a failure to read a file.
func (r *Reader) ReadAt(ctx context.Context, ps []Pos, onCorrupt func(error), fn func(*analytics.Record, Pos) error) error {
	if onCorrupt == nil {
		onCorrupt = func(err error) { slog.Warn("msgstore: skipping damaged messages", "err", err) }
	}
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b Pos) int {
		if c := cmp.Compare(a.File, b.File); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Off, b.Off); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	ps = slices.Compact(ps)
	var (
		ff   *frameFile
		bufs decodeBufs
		rec  analytics.Record
	)
	defer func() {
		if ff != nil {
			ff.close()
		}
	}()
	for len(ps) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		// The positions in one frame.
		n := 1
		for n < len(ps) && ps[n].File == ps[0].File && ps[n].Off == ps[0].Off {
			n++
		}
		frame := ps[:n]
		ps = ps[n:]
		if ff == nil || ff.path != filepath.Join(r.dir, fileName(frame[0].File)) {
			if ff != nil {
				ff.close()
			}
			var err error
			if ff, err = openScanFile(filepath.Join(r.dir, fileName(frame[0].File))); err != nil {
				return err
			}
			if ff == nil { // gone: skip its positions
				for len(ps) > 0 && ps[0].File == frame[0].File {
					ps = ps[1:]
				}
				continue
			}
		}
		if frame[0].Off < 0 {
			continue
		}
		ff.off = frame[0].Off
		h, err := ff.next()
		switch {
		case err == io.EOF || errors.Is(err, errTorn):
			continue // not (yet) a whole frame there
		case err != nil:
			if !isCorruption(err) {
				return err
			}
			r.corrupt.Add(1)
			onCorrupt(err)
			continue
		}
		fr, err := ff.records(&h, r.dec, &bufs, true, nil)
		if err != nil {
			if !isCorruption(err) {
				return err
			}
			r.corrupt.Add(1)
			onCorrupt(err)
			continue
		}
		r.decoded.Add(1)
		for i := uint32(0); i < h.count && len(frame) > 0; i++ {
			if err := fr.next(&rec); err != nil {
				r.corrupt.Add(1)
				onCorrupt(ff.corrupt(fmt.Errorf("record %d of %d: %w", i, h.count, err)))
				break
			}
			if frame[0].Index != i {
				continue
			}
			r.records.Add(1)
			if err := fn(&rec, frame[0]); err != nil {
				return err
			}
			frame = frame[1:]
		}
	}
	return nil
}

// Get returns the record with the given ID: the last one written if there
// are several. It returns ErrNotFound if there is none. Damaged frames are
// skipped and logged.
func (r *Reader) Get(ctx context.Context, id uint64) (*analytics.Record, error) {
	var found *analytics.Record
	q := Query{Terms: []string{fmt.Sprintf("id=%016x", id)}}
	err := r.Scan(ctx, q, func(rec *analytics.Record) error {
		if rec.ID == id {
			c := *rec
			c.Fields = slices.Clone(rec.Fields)
			c.Packets = slices.Clone(rec.Packets)
			found = &c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get message record %016x: %w", id, err)
	}
	if found == nil {
		return nil, fmt.Errorf("get message record %016x: %w", id, ErrNotFound)
	}
	return found, nil
}

// FileInfo describes one message file, from its frame headers.
type FileInfo struct {
	Path         string
	Seq          uint64
	Size         int64
	Frames       int
	Records      int64
	MinTS, MaxTS int64 // over the frames with times; 0 if none
	// Sealed: its writer closed it (every frame complete and durable).
	// Live: a Writer has it open now. A file neither sealed nor live was
	// being written when its writer crashed.
	Sealed, Live bool
	// Err is why the header walk stopped early (a *CorruptionError or a
	// read error); a torn tail is not an error in an unsealed file.
	Err error
}

// Files describes the message files under root, in sequence order.
func Files(root string) ([]FileInfo, error) {
	files, err := listFiles(messagesDir(root))
	if err != nil {
		return nil, err
	}
	out := make([]FileInfo, 0, len(files))
	for _, fe := range files {
		fi := FileInfo{Path: fe.path, Seq: fe.seq}
		ff, err := openFrameFile(fe.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			fi.Err = err
			out = append(out, fi)
			continue
		}
		fi.Size, fi.Sealed = ff.size, ff.sealed
		fi.Live = !ff.sealed && heldByWriter(ff.f)
		for {
			h, err := ff.next()
			if err == io.EOF && ff.size == 0 && ff.sealed || errors.Is(err, errTorn) {
				fi.Err = ff.tornErr()
				break
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				fi.Err = err
				break
			}
			fi.Frames++
			fi.Records += int64(h.count)
			if h.minTS != 0 || h.maxTS != 0 {
				if fi.MinTS == 0 && fi.MaxTS == 0 {
					fi.MinTS, fi.MaxTS = h.minTS, h.maxTS
				} else {
					fi.MinTS, fi.MaxTS = min(fi.MinTS, h.minTS), max(fi.MaxTS, h.maxTS)
				}
			}
			ff.off += h.frameLen()
		}
		ff.close()
		out = append(out, fi)
	}
	return out, nil
}

// Size returns the total size of the message files under root (0 when
// there are none or they cannot be listed).
func Size(root string) int64 {
	files, _ := listFiles(messagesDir(root))
	var n int64
	for _, fe := range files {
		if fi, err := os.Stat(fe.path); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// ErrLiveFile is returned by DropFile for a file a Writer has open.
var ErrLiveFile = errors.New("message file is being written")

// DropFile durably removes message file fi (from Files): unlinked, the
// messages directory fsynced. It refuses (ErrLiveFile) a file a Writer has
// open or the newest file (a Writer may just have created it). A file
// already gone is not an error. It is retention's unit of deletion: a whole
// file, never part of one.
func DropFile(root string, fi FileInfo) error {
	files, err := listFiles(messagesDir(root))
	if err != nil {
		return fmt.Errorf("drop message file %q: %w", fi.Path, err)
	}
	if len(files) == 0 || fi.Seq >= files[len(files)-1].seq {
		return fmt.Errorf("drop message file %q: %w", fi.Path, ErrLiveFile)
	}
	f, err := os.Open(fi.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("drop message file %q: %w", fi.Path, err)
	}
	defer f.Close()
	if !tryLock(f) {
		return fmt.Errorf("drop message file %q: %w", fi.Path, ErrLiveFile)
	}
	if err := os.Remove(fi.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("drop message file %q: %w", fi.Path, err)
	}
	if err := durable.SyncDir(messagesDir(root)); err != nil {
		return fmt.Errorf("drop message file %q: sync messages dir: %w", fi.Path, err)
	}
	return nil
}

// LastTime is the time retention ages fi by: its records' newest time, or,
// for a file with none (damaged from its first frame, or records without
// times), when it was last written.
func (fi FileInfo) LastTime() int64 {
	if fi.MaxTS != 0 || fi.Frames > 0 && fi.Err == nil {
		return fi.MaxTS
	}
	st, err := os.Stat(fi.Path)
	if err != nil {
		return 0
	}
	return st.ModTime().UnixNano()
}

// DropBefore removes, oldest first, the message files whose records all end
// before ts (LastTime < ts), never the newest file or one a Writer has open.
// It returns how many files and bytes it removed.
func DropBefore(root string, ts int64) (files int, bytes int64, err error) {
	infos, err := Files(root)
	if err != nil {
		return 0, 0, fmt.Errorf("drop message files before %d: %w", ts, err)
	}
	for _, fi := range infos[:max(len(infos)-1, 0)] {
		if fi.Live || fi.LastTime() >= ts {
			continue
		}
		if err := DropFile(root, fi); errors.Is(err, ErrLiveFile) {
			continue
		} else if err != nil {
			return files, bytes, err
		}
		files++
		bytes += fi.Size
	}
	return files, bytes, nil
}

// Report is what Verify found.
type Report struct {
	Files   int
	Frames  int
	Records int64
	Bytes   int64
	// Corrupt lists damaged frames (each ends the walk of its file) and
	// unreadable files.
	Corrupt []error
	// Torn lists unsealed files that end in a partial frame (or are empty
	// and no writer holds them): the file a Writer is appending to, or one
	// whose writer crashed. Warnings, not errors: every frame before the
	// tail is intact, and the next Writer cuts the tail and seals the file.
	// The same in a sealed file is in Corrupt.
	Torn []*CorruptionError
}

// Verify reads every frame of every message file under root: header, bloom
// and frame CRCs, decompression, every record parsed, and each record's
// times, protocol and terms present in its frame's header and bloom.
func Verify(root string) (Report, error) {
	var rep Report
	files, err := listFiles(messagesDir(root))
	if err != nil {
		return rep, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(maxDataLen), zstd.WithDecoderMaxWindow(maxDataLen))
	if err != nil {
		return rep, fmt.Errorf("create zstd decoder: %w", err)
	}
	defer dec.Close()
	var v verifier
	for _, fe := range files {
		ff, err := openFrameFile(fe.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			rep.Corrupt = append(rep.Corrupt, fmt.Errorf("open message file %q: %w", fe.path, err))
			continue
		}
		rep.Files++
		rep.Bytes += ff.size
		if ff.size == 0 {
			switch {
			case ff.sealed:
				rep.Corrupt = append(rep.Corrupt, ff.tornErr())
			case !heldByWriter(ff.f):
				rep.Torn = append(rep.Torn, frameCorrupt(ff.path, 0,
					errors.New("empty file of a writer that is gone (the next writer removes it)")))
			}
			ff.close()
			continue
		}
		for {
			h, err := ff.next()
			if err == io.EOF {
				break
			}
			if errors.Is(err, errTorn) {
				if terr := ff.tornErr(); terr != nil {
					rep.Corrupt = append(rep.Corrupt, terr)
				} else {
					rep.Torn = append(rep.Torn, frameCorrupt(ff.path, ff.off,
						fmt.Errorf("torn tail of %d bytes", ff.size-ff.off)))
				}
				break
			}
			if err != nil {
				rep.Corrupt = append(rep.Corrupt, err) // the header: nothing after it can be trusted
				break
			}
			if err := v.frame(ff, &h, dec); err != nil {
				// The header checked out, so its length does: this frame
				// only (as Scan skips it).
				rep.Corrupt = append(rep.Corrupt, err)
			} else {
				rep.Frames++
				rep.Records += int64(h.count)
			}
			ff.off += h.frameLen()
		}
		ff.close()
	}
	return rep, nil
}

type verifier struct {
	rec  analytics.Record
	tb   analytics.TermBuf
	bufs decodeBufs
}

func (v *verifier) frame(ff *frameFile, h *frameHeader, dec *zstd.Decoder) error {
	fr, err := ff.records(h, dec, &v.bufs, true, nil)
	if err != nil {
		return err
	}
	// The bloom lies inside the frame just read into ff.buf (data may
	// alias ff.buf too, a later part of it); nothing reads into ff.buf
	// again before this frame is done.
	bloom := ff.buf[h.hdrLen : int(h.hdrLen)+int(h.bloomLen)]
	if got := crc32.Checksum(bloom, castagnoli); got != h.bloomCRC {
		return ff.corrupt(fmt.Errorf("bloom crc %#08x, want %#08x", got, h.bloomCRC))
	}
	for i := uint32(0); i < h.count; i++ {
		if err := fr.next(&v.rec); err != nil {
			return ff.corrupt(fmt.Errorf("record %d of %d: %w", i, h.count, err))
		}
		if lo, hi, ok := recordSpan(&v.rec); ok && (lo < h.minTS || hi > h.maxTS) {
			return ff.corrupt(fmt.Errorf("record %d: times [%d, %d] outside the frame's [%d, %d]", i, lo, hi, h.minTS, h.maxTS))
		}
		if h.protos&protoBit(v.rec.Proto) == 0 {
			return ff.corrupt(fmt.Errorf("record %d: proto %q not in the frame's bitmap", i, v.rec.Proto))
		}
		if conn := analytics.IsConnection(&v.rec); h.flags != 0 && conn != (h.flags == flagConnections) {
			what := "an exchange in a frame of connection records"
			if conn {
				what = "a connection record in a frame of exchanges"
			}
			return ff.corrupt(fmt.Errorf("record %d: %s", i, what))
		}
		v.tb.Build(&v.rec)
		for k := range v.tb.Len() {
			if t := v.tb.Term(k); !bloomHas(bloom, int(h.hashes), termHash(t)) {
				return ff.corrupt(fmt.Errorf("record %d: term %q not in the frame's bloom", i, strings.Clone(string(t))))
			}
		}
	}
	if n := fr.left(); n != 0 {
		return ff.corrupt(fmt.Errorf("%d bytes after the last of %d records", n, h.count))
	}
	return nil
}
