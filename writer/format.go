package writer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"tapvault/block"
	"tapvault/encoding"

	"github.com/klauspost/compress/zstd"
)

// Block record layout (docs/format/block.md has the full diagram). All
// integers are little-endian.
//
//	0     4   5   6     8          16    18  19  20     24      32      40      48
//	+-----+---+---+-----+----------+-----+---+---+------+-------+-------+-------+
//	|magic|ver|flg|hdlen| ref      |queue|sc |rc |count | minTS | maxTS | wire  |
//	+-----+---+---+-----+----------+-----+---+---+------+-------+-------+-------+
//	48        52       56        60       64       68       72
//	+---------+--------+---------+--------+--------+--------+
//	|sumStored|sumRaw  |recStored|recRaw  |sumCRC  |hdrCRC  |
//	+---------+--------+---------+--------+--------+--------+
//	| summary section (sumStored) | records section (recStored) | CRC32C |
//
// hdrCRC covers bytes [0,68) so a header can be trusted (and skipped over)
// without reading the payload; sumCRC covers the stored summary section so
// ReadSummary verifies what it reads; the trailing CRC covers everything
// before it, header included.
const (
	blockMagic      uint32 = 0x4b425654 // "TVBK"
	blockVersion    uint8  = 1          // one records frame
	blockVersion2   uint8  = 2          // records in sub-frames by flow hash, directory in the header extension
	blockHeaderSize        = 72         // the fixed part every header has (version 1)
	// blockHeaderLen is the header length written now: the fixed part and
	// the block ID at offBlockID (hlen 80). The ID is covered by the record
	// CRC, not the header CRC: readers use it only after a full-record read
	// (ReadBlock), or as a hint.
	blockHeaderLen = 80
	maxHeaderSize  = 65535 // a reader accepts longer (future) headers up to this (hlen is a u16)
	crcSize        = 4

	// maxSectionLen bounds the raw and stored length of either section. It
	// bounds what a reader allocates for one block, and the decoder memory.
	maxSectionLen = 256 << 20

	offMagic     = 0
	offVersion   = 4
	offFlags     = 5
	offHdrLen    = 6
	offRef       = 8
	offQueue     = 16
	offSumCodec  = 18
	offRecCodec  = 19
	offCount     = 20
	offMinTS     = 24
	offMaxTS     = 32
	offWire      = 40
	offSumStored = 48
	offSumRaw    = 52
	offRecStored = 56
	offRecRaw    = 60
	offSumCRC    = 64
	offHdrCRC    = 68
	offBlockID   = 72 // u64, in the header extension (hlen >= 80)

	// Version 2: the sub-frame directory, in the header extension.
	offDirCRC    = 80 // u32: CRC32C of bytes [72, 80) and [84, hlen)
	offDirSubs   = 84 // u16: sub-frames
	offDirBits   = 86 // u8: bits per packet in the sub-frame sequence (0, 1, 2, 4 or 8)
	offDirRsv    = 87 // u8: 0
	offDirEntry  = 88 // the entries, then the sequence
	dirEntrySize = 24 // start u32, stored u32, raw u32, count u32, CRC32C u32, codec u8, kind u8, rsv u16
)

// Sub-frame kinds (version 2 directory entries).
const (
	subFlow    uint8 = 0 // packets whose flow hash lies in [start, the next flow sub-frame's start)
	subNonFlow uint8 = 1 // packets without a flow key
)

// Segment file header: 32 bytes, little-endian.
//
//	0     4   6     8       12      16           24      28      32
//	+-----+---+-----+-------+-------+------------+-------+-------+
//	|magic|ver|hdlen|segment|flags  | created ns |  rsv  |CRC32C |
//	+-----+---+-----+-------+-------+------------+-------+-------+
const (
	segMagic      uint32 = 0x47535654 // "TVSG"
	segVersion    uint16 = 1
	segHeaderSize        = 32
)

var castagnoli = encoding.Castagnoli

// CorruptionError reports a block record (or segment header) that fails its
// checks. Offset is the byte offset of the record within the file at Path.
// It is the store's one corruption error, shared with msgstore.
type CorruptionError = encoding.CorruptionError

// errShort means a record runs past the end of its file: a torn tail, or a
// block still being written.
var errShort = errors.New("record extends past end of file")

// blockHeader is the decoded fixed header of a block record.
type blockHeader struct {
	ref       Ref
	version   uint8
	hdrLen    uint16
	queue     uint16
	sumCodec  uint8
	recCodec  uint8
	count     uint32
	minTS     int64
	maxTS     int64
	wire      uint64
	sumStored uint32
	sumRaw    uint32
	recStored uint32
	recRaw    uint32
	sumCRC    uint32
	id        uint64 // block ID (0 when the header has no extension or it was not read)
}

// recordLen is the full on-disk length of the record, trailing CRC included.
func (h *blockHeader) recordLen() int64 {
	return int64(h.hdrLen) + int64(h.sumStored) + int64(h.recStored) + crcSize
}

func (h *blockHeader) meta() BlockMeta {
	// The directory of a version-2 header is stored payload: StoredLen
	// counts it, so StoredLen + blockHeaderLen + crcSize is the record.
	var dir uint32
	if h.hdrLen > blockHeaderLen {
		dir = uint32(h.hdrLen) - blockHeaderLen
	}
	return BlockMeta{
		Ref:       h.ref,
		Queue:     h.queue,
		Codec:     h.recCodec,
		Count:     h.count,
		MinTS:     h.minTS,
		MaxTS:     h.maxTS,
		RawLen:    h.sumRaw + h.recRaw,
		StoredLen: dir + h.sumStored + h.recStored,
		WireBytes: h.wire,
		ID:        h.id,
	}
}

// readBlockID fills h.id from a record buffer holding at least the whole
// header.
func (h *blockHeader) readBlockID(rec []byte) {
	if h.hdrLen >= offBlockID+8 && len(rec) >= offBlockID+8 {
		h.id = binary.LittleEndian.Uint64(rec[offBlockID:])
	}
}

// putBlockHeader writes every header field except the ref and the header
// CRC, which the write goroutine patches in once the offset is known.
func putBlockHeader(b []byte, h *blockHeader) {
	_ = b[blockHeaderLen-1]
	binary.LittleEndian.PutUint32(b[offMagic:], blockMagic)
	b[offVersion] = h.version
	b[offFlags] = 0
	binary.LittleEndian.PutUint16(b[offHdrLen:], h.hdrLen)
	binary.LittleEndian.PutUint64(b[offBlockID:], h.id)
	binary.LittleEndian.PutUint64(b[offRef:], 0)
	binary.LittleEndian.PutUint16(b[offQueue:], h.queue)
	b[offSumCodec] = h.sumCodec
	b[offRecCodec] = h.recCodec
	binary.LittleEndian.PutUint32(b[offCount:], h.count)
	binary.LittleEndian.PutUint64(b[offMinTS:], uint64(h.minTS))
	binary.LittleEndian.PutUint64(b[offMaxTS:], uint64(h.maxTS))
	binary.LittleEndian.PutUint64(b[offWire:], h.wire)
	binary.LittleEndian.PutUint32(b[offSumStored:], h.sumStored)
	binary.LittleEndian.PutUint32(b[offSumRaw:], h.sumRaw)
	binary.LittleEndian.PutUint32(b[offRecStored:], h.recStored)
	binary.LittleEndian.PutUint32(b[offRecRaw:], h.recRaw)
	binary.LittleEndian.PutUint32(b[offSumCRC:], h.sumCRC)
	binary.LittleEndian.PutUint32(b[offHdrCRC:], 0)
}

// sealRecord patches ref into a complete record (header, sections and four
// bytes reserved for the CRC) and fills in the header and record CRCs.
func sealRecord(rec []byte, ref Ref) {
	binary.LittleEndian.PutUint64(rec[offRef:], uint64(ref))
	binary.LittleEndian.PutUint32(rec[offHdrCRC:], crc32.Checksum(rec[:offHdrCRC], castagnoli))
	end := len(rec) - crcSize
	binary.LittleEndian.PutUint32(rec[end:], crc32.Checksum(rec[:end], castagnoli))
}

// blockLayout is the fixed part of the header that encoding checks.
var blockLayout = encoding.Header{What: "block header", Size: blockHeaderSize, Magic: blockMagic, Version: blockVersion,
	OffMagic: offMagic, OffVersion: offVersion, OffCRC: offHdrCRC}

// parseBlockHeader decodes and checks the fixed header at the start of b
// (which must hold at least blockHeaderSize bytes), of version 1 or 2. It
// checks the header CRC and that every field is within bounds, but not the
// sections nor a version-2 directory (parseDir).
func parseBlockHeader(b []byte) (blockHeader, error) {
	var h blockHeader
	lay := blockLayout
	if len(b) > offVersion && b[offVersion] == blockVersion2 {
		lay.Version = blockVersion2
	}
	if err := lay.Check(b); err != nil {
		return h, err
	}
	h.version = lay.Version
	h.hdrLen = binary.LittleEndian.Uint16(b[offHdrLen:])
	minLen := uint16(blockHeaderSize)
	if h.version == blockVersion2 {
		minLen = offDirEntry + dirEntrySize
	}
	if h.hdrLen < minLen || h.hdrLen > maxHeaderSize {
		return h, fmt.Errorf("block header: header length %d out of range", h.hdrLen)
	}
	h.ref = Ref(binary.LittleEndian.Uint64(b[offRef:]))
	h.queue = binary.LittleEndian.Uint16(b[offQueue:])
	h.sumCodec = b[offSumCodec]
	h.recCodec = b[offRecCodec]
	h.count = binary.LittleEndian.Uint32(b[offCount:])
	h.minTS = int64(binary.LittleEndian.Uint64(b[offMinTS:]))
	h.maxTS = int64(binary.LittleEndian.Uint64(b[offMaxTS:]))
	h.wire = binary.LittleEndian.Uint64(b[offWire:])
	h.sumStored = binary.LittleEndian.Uint32(b[offSumStored:])
	h.sumRaw = binary.LittleEndian.Uint32(b[offSumRaw:])
	h.recStored = binary.LittleEndian.Uint32(b[offRecStored:])
	h.recRaw = binary.LittleEndian.Uint32(b[offRecRaw:])
	h.sumCRC = binary.LittleEndian.Uint32(b[offSumCRC:])
	if err := checkSection("summary", h.sumCodec, h.sumStored, h.sumRaw); err != nil {
		return h, err
	}
	if err := checkSection("records", h.recCodec, h.recStored, h.recRaw); err != nil {
		return h, err
	}
	return h, nil
}

func checkSection(name string, codec uint8, stored, raw uint32) error {
	if stored > maxSectionLen || raw > maxSectionLen {
		return fmt.Errorf("block header: %s section %d stored / %d raw bytes exceeds %d", name, stored, raw, maxSectionLen)
	}
	switch codec {
	case CodecRaw:
		if stored != raw {
			return fmt.Errorf("block header: raw %s section stores %d bytes, raw length %d", name, stored, raw)
		}
	case CodecZstd:
	default:
		return fmt.Errorf("block header: %s section has unknown codec %d", name, codec)
	}
	return nil
}

// checkRecordCRC verifies the trailing CRC of a complete record.
func checkRecordCRC(rec []byte) error {
	end := len(rec) - crcSize
	if got, want := binary.LittleEndian.Uint32(rec[end:]), crc32.Checksum(rec[:end], castagnoli); got != want {
		return fmt.Errorf("block crc %#08x, want %#08x", got, want)
	}
	return nil
}

// appendSegmentHeader appends a segment file header.
func appendSegmentHeader(dst []byte, seg uint32, created int64) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, segMagic)
	dst = binary.LittleEndian.AppendUint16(dst, segVersion)
	dst = binary.LittleEndian.AppendUint16(dst, segHeaderSize)
	dst = binary.LittleEndian.AppendUint32(dst, seg)
	dst = binary.LittleEndian.AppendUint32(dst, 0) // flags
	dst = binary.LittleEndian.AppendUint64(dst, uint64(created))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // reserved
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// parseSegmentHeader checks a segment file header and returns its segment
// number and creation time.
func parseSegmentHeader(b []byte) (seg uint32, created int64, err error) {
	if len(b) < segHeaderSize {
		return 0, 0, fmt.Errorf("segment header: %d bytes, want %d", len(b), segHeaderSize)
	}
	if m := binary.LittleEndian.Uint32(b); m != segMagic {
		return 0, 0, fmt.Errorf("segment header: bad magic %#08x", m)
	}
	if got, want := binary.LittleEndian.Uint32(b[28:]), crc32.Checksum(b[:28], castagnoli); got != want {
		return 0, 0, fmt.Errorf("segment header: crc %#08x, want %#08x", got, want)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != segVersion {
		return 0, 0, fmt.Errorf("segment header: unsupported version %d", v)
	}
	if l := binary.LittleEndian.Uint16(b[6:]); l != segHeaderSize {
		return 0, 0, fmt.Errorf("segment header: header length %d, want %d", l, segHeaderSize)
	}
	return binary.LittleEndian.Uint32(b[8:]), int64(binary.LittleEndian.Uint64(b[16:])), nil
}

const segSuffix = ".seg"

// segmentName is the file name of segment n: fixed width, so names sort in
// segment order.
func segmentName(n uint32) string { return fmt.Sprintf("%010d%s", n, segSuffix) }

// parseSegmentName returns the segment number of a file name made by
// segmentName.
func parseSegmentName(name string) (uint32, bool) {
	base, ok := strings.CutSuffix(filepath.Base(name), segSuffix)
	if !ok || len(base) != 10 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}

// The commit marker, Dir/COMMITTED: 24 bytes, little-endian, rewritten in
// place and fdatasync'd after every group commit (before the commit hooks
// run), and once after recovery in Open.
//
//	0      4        8                16       20     24
//	+------+--------+----------------+--------+------+
//	|magic |segment | committed size | CRC32C | rsv  |
//	+------+--------+----------------+--------+------+
//
// It says which bytes are committed: every segment numbered below `segment`
// whole, and segment `segment` up to `committed size`. Recovery never cuts
// those bytes: where they do not hold valid blocks they are damage, kept and
// reported. Only bytes beyond it can be a torn tail. A reader that finds the
// store locked by a live writer also shows nothing beyond it.
const (
	markerMagic uint32 = 0x4d435654 // "TVCM"
	markerSize         = 24
	markerName         = "COMMITTED"
)

func appendMarker(dst []byte, seg uint32, size int64) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, markerMagic)
	dst = binary.LittleEndian.AppendUint32(dst, seg)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(size))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
	return binary.LittleEndian.AppendUint32(dst, 0)
}

func parseMarker(b []byte) (seg uint32, size int64, ok bool) {
	if len(b) < markerSize || binary.LittleEndian.Uint32(b) != markerMagic ||
		binary.LittleEndian.Uint32(b[16:]) != crc32.Checksum(b[:16], castagnoli) {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint32(b[4:]), int64(binary.LittleEndian.Uint64(b[8:])), true
}

// commitMark is the commit marker as read from a store.
type commitMark struct {
	seg  uint32
	size int64
	ok   bool  // a valid marker was read
	err  error // why ok is false: nil when there is no marker at all (absent or empty)
}

// readMarker reads the commit marker of the store in dir. A marker that
// cannot be read or parsed has err set; an absent or empty one (a store
// from before markers, or a crash between creating the file and its first
// write) has neither ok nor err.
func readMarker(dir string) commitMark {
	path := filepath.Join(dir, markerName)
	var b []byte
	var err error
	var seg uint32
	var size int64
	ok := false
	for try := 0; try < 3 && !ok; try++ { // a read may race a live writer's 24-byte rewrite
		b, err = os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist) || (err == nil && len(b) == 0):
			return commitMark{}
		case err != nil:
			return commitMark{err: fmt.Errorf("read commit marker %q: %w", path, err)}
		}
		seg, size, ok = parseMarker(b)
	}
	if !ok {
		return commitMark{err: fmt.Errorf("commit marker %q is damaged: %d bytes, want %d with magic %#08x and a valid crc", path, len(b), markerSize, markerMagic)}
	}
	return commitMark{seg: seg, size: size, ok: true}
}

// wholeSegment is committedEnd's answer for a segment committed as a whole.
const wholeSegment = math.MaxInt64

// committedEnd returns how many bytes of segment n the marker says are
// committed: wholeSegment for a segment before the marker's, the committed
// size for the marker's own, segHeaderSize (nothing) for a later one, and -1
// when there is no readable marker to say.
func (m commitMark) committedEnd(n uint32) int64 {
	switch {
	case !m.ok:
		return -1
	case n < m.seg:
		return wholeSegment
	case n == m.seg:
		return m.size
	}
	return segHeaderSize
}

// buildRecord encodes b as a complete block record in rb.rec: header (ref
// and CRCs left for sealRecord), summary section, records section and room
// for the CRC. With an encoder it writes version 2: the records in
// sub-frames by flow hash, each compressed on its own, and their directory
// in the header. enc nil (the compressor-behind path, which must stay
// cheap) stores both sections raw in version 1. subFrame is the sub-frame
// size (0: block.SubFrameTarget); negative writes version 1, one frame.
func buildRecord(rb *recBuf, b *block.Block, enc *zstd.Encoder, subFrame int) {
	rb.err, rb.incmp = nil, false
	if len(b.Data) > maxSectionLen {
		rb.err = fmt.Errorf("block of %d record bytes exceeds %d", len(b.Data), maxSectionLen)
		return
	}
	rb.sum = block.AppendSummary(rb.sum[:0], &b.Summary)
	if len(rb.sum) > maxSectionLen {
		rb.err = fmt.Errorf("block summary of %d bytes exceeds %d", len(rb.sum), maxSectionLen)
		return
	}
	h := blockHeader{
		version: blockVersion,
		hdrLen:  blockHeaderLen,
		id:      b.ID,
		queue:   b.Queue,
		count:   b.Count,
		minTS:   b.MinTS,
		maxTS:   b.MaxTS,
		wire:    b.Bytes,
		sumRaw:  uint32(len(rb.sum)),
		recRaw:  uint32(len(b.Data)),
	}
	var part *block.Partition
	if subFrame == 0 {
		subFrame = block.SubFrameTarget
	}
	if enc != nil && b.Count > 0 && subFrame > 0 {
		part = partitions.Get().(*block.Partition)
		defer partitions.Put(part)
		if err := part.Build(b.Data, subFrame); err != nil {
			rb.err = fmt.Errorf("block records: %w", err)
			return
		}
		if n := dirLen(len(part.Subs), len(part.Seq)); len(part.Seq) == int(b.Count) && n <= maxHeaderSize {
			h.version, h.hdrLen = blockVersion2, uint16(n)
		}
	}
	rec := grow(rb.rec, int(h.hdrLen))
	rec, h.sumCodec = appendSection(rec, rb.sum, enc)
	h.sumStored = uint32(len(rec) - int(h.hdrLen))
	h.sumCRC = crc32.Checksum(rec[h.hdrLen:], castagnoli)
	start := len(rec)
	if h.version == blockVersion2 {
		rec, h.recCodec = appendSubFrames(rec, part, enc)
	} else {
		rec, h.recCodec = appendSection(rec, b.Data, enc)
	}
	h.recStored = uint32(len(rec) - start)
	rec = append(rec, 0, 0, 0, 0) // CRC, filled by sealRecord
	putBlockHeader(rec, &h)
	if h.version == blockVersion2 {
		putDirCRC(rec)
	}
	rb.rec, rb.h = rec, h
	rb.incmp = enc != nil && h.recCodec == CodecRaw && len(b.Data) > 0
}

// partitions are the compressors' partition buffers: buildRecord runs on
// several goroutines, and a pooled Partition keeps it allocation-free
// without a field in the writer's recBuf.
var partitions = sync.Pool{New: func() any { return new(block.Partition) }}

// seqBits is the width of one entry of the sub-frame sequence for n
// sub-frames.
func seqBits(n int) int {
	switch {
	case n <= 1:
		return 0
	case n <= 2:
		return 1
	case n <= 4:
		return 2
	case n <= 16:
		return 4
	}
	return 8
}

// dirLen is the header length of a version-2 record with nsub sub-frames
// and count packets.
func dirLen(nsub, count int) int {
	return offDirEntry + nsub*dirEntrySize + (count*seqBits(nsub)+7)/8
}

// appendSubFrames appends the sub-frames of part, each compressed on its
// own (or raw when that saves too little), and writes their directory into
// the header extension rec[offDirSubs:hlen]. The records section's codec
// is zstd when any sub-frame is.
func appendSubFrames(rec []byte, part *block.Partition, enc *zstd.Encoder) ([]byte, uint8) {
	codec := CodecRaw
	ent := offDirEntry
	for i := range part.Subs {
		sf := &part.Subs[i]
		start := len(rec)
		var c uint8
		rec, c = appendSection(rec, part.Data[sf.Off:sf.Off+sf.Len], enc)
		if c == CodecZstd {
			codec = CodecZstd
		}
		kind := subFlow
		if sf.NonFlow {
			kind = subNonFlow
		}
		e := rec[ent : ent+dirEntrySize]
		binary.LittleEndian.PutUint32(e[0:], sf.Start)
		binary.LittleEndian.PutUint32(e[4:], uint32(len(rec)-start))
		binary.LittleEndian.PutUint32(e[8:], sf.Len)
		binary.LittleEndian.PutUint32(e[12:], sf.Count)
		binary.LittleEndian.PutUint32(e[16:], crc32.Checksum(rec[start:], castagnoli))
		e[20], e[21], e[22], e[23] = c, kind, 0, 0
		ent += dirEntrySize
	}
	binary.LittleEndian.PutUint16(rec[offDirSubs:], uint16(len(part.Subs)))
	bits := seqBits(len(part.Subs))
	rec[offDirBits], rec[offDirRsv] = uint8(bits), 0
	seq := rec[ent:]
	if bits > 0 {
		clear(seq[:(len(part.Seq)*bits+7)/8])
		per := 8 / bits
		for i, s := range part.Seq {
			seq[i/per] |= s << (uint(i%per) * uint(bits))
		}
	}
	return rec, codec
}

// putDirCRC fills in the directory CRC of a version-2 record whose header
// is otherwise complete: it covers the block ID and the directory, so a
// flow read trusts both without the record CRC.
func putDirCRC(rec []byte) {
	binary.LittleEndian.PutUint32(rec[offDirCRC:], dirCRC(rec))
}

func dirCRC(rec []byte) uint32 {
	hlen := binary.LittleEndian.Uint16(rec[offHdrLen:])
	c := crc32.Update(0, castagnoli, rec[offBlockID:offDirCRC])
	return crc32.Update(c, castagnoli, rec[offDirSubs:hlen])
}

// subEntry is one decoded directory entry.
type subEntry struct {
	start, stored, raw, count, crc uint32
	codec, kind                    uint8
	off                            uint32 // offset of its stored bytes in the records section
	rawOff                         uint32 // offset of its records in the sub-frames decoded back to back
}

// subDir is the decoded directory of a version-2 record.
type subDir struct {
	subs []subEntry
	bits uint
	seq  []byte // borrowed from the record buffer
	n    int    // packets
}

// at returns the sub-frame of packet i.
func (d *subDir) at(i int) uint8 {
	switch d.bits {
	case 0:
		return 0
	case 8:
		return d.seq[i]
	}
	per := 8 / d.bits
	return d.seq[i/int(per)] >> (uint(i%int(per)) * d.bits) & (1<<d.bits - 1)
}

// parseDir decodes and checks the directory of the version-2 record whose
// header (hdrLen bytes at least) is hdr: its CRC, and that its entries
// account for the header's records section and packet count, in order,
// with a sequence that names each sub-frame as many times as it holds
// packets.
func parseDir(hdr []byte, h *blockHeader, d *subDir) error {
	if got, want := binary.LittleEndian.Uint32(hdr[offDirCRC:]), dirCRC(hdr); got != want {
		return fmt.Errorf("sub-frame directory crc %#08x, want %#08x", got, want)
	}
	nsub := int(binary.LittleEndian.Uint16(hdr[offDirSubs:]))
	bits := int(hdr[offDirBits])
	if nsub == 0 || nsub > 256 || bits != seqBits(nsub) || hdr[offDirRsv] != 0 {
		return fmt.Errorf("sub-frame directory: %d sub-frames with %d-bit sequence", nsub, bits)
	}
	if want := dirLen(nsub, int(h.count)); int(h.hdrLen) != want {
		return fmt.Errorf("sub-frame directory: header length %d, %d sub-frames of %d packets need %d", h.hdrLen, nsub, h.count, want)
	}
	d.subs, d.bits, d.n = d.subs[:0], uint(bits), int(h.count)
	var off, rawOff uint64
	var count uint64
	var zstdSeen bool
	for i := 0; i < nsub; i++ {
		e := hdr[offDirEntry+i*dirEntrySize:]
		s := subEntry{
			start:  binary.LittleEndian.Uint32(e[0:]),
			stored: binary.LittleEndian.Uint32(e[4:]),
			raw:    binary.LittleEndian.Uint32(e[8:]),
			count:  binary.LittleEndian.Uint32(e[12:]),
			crc:    binary.LittleEndian.Uint32(e[16:]),
			codec:  e[20],
			kind:   e[21],
			off:    uint32(off),
			rawOff: uint32(rawOff),
		}
		if err := checkSection("sub-frame", s.codec, s.stored, s.raw); err != nil {
			return err
		}
		zstdSeen = zstdSeen || s.codec == CodecZstd
		switch {
		case s.kind == subNonFlow && i != nsub-1:
			return fmt.Errorf("sub-frame directory: non-flow sub-frame %d is not the last", i)
		case s.kind == subFlow && i == 0 && s.start != 0:
			return fmt.Errorf("sub-frame directory: the first sub-frame starts at hash %#x, not 0", s.start)
		case s.kind == subFlow && i > 0 && s.start <= d.subs[i-1].start:
			return fmt.Errorf("sub-frame directory: sub-frame %d starts at hash %#x, not after %#x", i, s.start, d.subs[i-1].start)
		case s.kind > subNonFlow || e[22] != 0 || e[23] != 0:
			return fmt.Errorf("sub-frame directory: entry %d has kind %d, reserved %#x", i, s.kind, e[22:24])
		case s.count == 0 || uint64(s.raw) < block.RecordHeaderSize*uint64(s.count):
			return fmt.Errorf("sub-frame directory: sub-frame %d holds %d packets in %d bytes", i, s.count, s.raw)
		}
		d.subs = append(d.subs, s)
		off += uint64(s.stored)
		rawOff += uint64(s.raw)
		count += uint64(s.count)
	}
	if off != uint64(h.recStored) || rawOff != uint64(h.recRaw) || count != uint64(h.count) {
		return fmt.Errorf("sub-frame directory: sub-frames hold %d stored / %d raw bytes and %d packets, header says %d / %d and %d",
			off, rawOff, count, h.recStored, h.recRaw, h.count)
	}
	if zstdSeen != (h.recCodec == CodecZstd) {
		return fmt.Errorf("sub-frame directory: records codec %d, sub-frames disagree", h.recCodec)
	}
	d.seq = hdr[offDirEntry+nsub*dirEntrySize : h.hdrLen]
	// The sequence names each sub-frame exactly as often as it holds
	// packets (a full read then ends every sub-frame where it should).
	// Counted a byte at a time: this runs for every block a query reads.
	var seen [256]uint32
	switch d.bits {
	case 0:
		seen[0] = uint32(d.n)
	case 8:
		for _, s := range d.seq[:d.n] {
			seen[s]++
		}
	default:
		per := 8 / int(d.bits)
		mask := uint8(1)<<d.bits - 1
		full := d.n / per
		for _, v := range d.seq[:full] {
			for k := 0; k < per; k++ {
				seen[v&mask]++
				v >>= d.bits
			}
		}
		for i := full * per; i < d.n; i++ {
			seen[d.at(i)]++
		}
	}
	for s := nsub; s < 256; s++ {
		if seen[s] != 0 {
			return fmt.Errorf("sub-frame sequence: %d packets in sub-frame %d of %d", seen[s], s, nsub)
		}
	}
	for i := range d.subs {
		if seen[i] != d.subs[i].count {
			return fmt.Errorf("sub-frame sequence: %d packets in sub-frame %d, its entry says %d", seen[i], i, d.subs[i].count)
		}
	}
	return nil
}

// positions appends to ords the positions in the block of the packets of
// sub-frame s, in order.
func (d *subDir) positions(s uint8, ords []uint32) []uint32 {
	switch d.bits {
	case 0:
		for i := 0; i < d.n; i++ {
			ords = append(ords, uint32(i))
		}
		return ords
	case 8:
		for i, v := range d.seq[:d.n] {
			if v == s {
				ords = append(ords, uint32(i))
			}
		}
		return ords
	}
	per := 8 / int(d.bits)
	mask := uint8(1)<<d.bits - 1
	full := d.n / per
	for j, v := range d.seq[:full] {
		for k := 0; k < per; k++ {
			if v&mask == s {
				ords = append(ords, uint32(j*per+k))
			}
			v >>= d.bits
		}
	}
	for i := full * per; i < d.n; i++ {
		if d.at(i) == s {
			ords = append(ords, uint32(i))
		}
	}
	return ords
}

// find returns the flow sub-frame that holds the packets of flow hash h.
func (d *subDir) find(h uint32) int {
	n := len(d.subs)
	if n > 0 && d.subs[n-1].kind == subNonFlow {
		n--
	}
	// The last flow sub-frame whose start is at most h; the first starts at 0.
	i, j := 0, n
	for j-i > 1 {
		m := int(uint(i+j) >> 1)
		if d.subs[m].start <= h {
			i = m
		} else {
			j = m
		}
	}
	if n == 0 {
		return -1
	}
	return i
}

// reassemble puts the records of the sub-frames decoded back to back in
// parts (sub-frame i at subs[i].rawOff) back in block order into dst, for
// the packets of the sub-frames sel selects (all when sel is nil), and
// when sel is not nil appends each packet's ordinal in the block to ords. It
// checks that every selected sub-frame ends exactly after its last record.
func (d *subDir) reassemble(dst, parts []byte, sel *[256]bool, ords []uint32) ([]byte, []uint32, error) {
	var pos [256]uint32
	for i := range d.subs {
		pos[i] = d.subs[i].rawOff
	}
	for i := 0; i < d.n; i++ {
		s := d.at(i)
		if sel != nil && !sel[s] {
			continue
		}
		e := &d.subs[s]
		n, ok := block.RecordLen(parts[pos[s] : e.rawOff+e.raw])
		if !ok {
			return dst, ords, fmt.Errorf("sub-frame %d: packet record %d runs past its end", s, i)
		}
		dst = append(dst, parts[pos[s]:pos[s]+uint32(n)]...)
		pos[s] += uint32(n)
		if sel != nil {
			ords = append(ords, uint32(i))
		}
	}
	for i := range d.subs {
		if (sel == nil || sel[i]) && pos[i] != d.subs[i].rawOff+d.subs[i].raw {
			return dst, ords, fmt.Errorf("sub-frame %d: %d bytes after its %d packet records", i, d.subs[i].rawOff+d.subs[i].raw-pos[i], d.subs[i].count)
		}
	}
	return dst, ords, nil
}

// appendSection appends src to dst zstd-compressed, or raw when enc is nil
// or compression saves too little.
func appendSection(dst, src []byte, enc *zstd.Encoder) ([]byte, uint8) {
	if enc == nil || len(src) == 0 {
		return append(dst, src...), CodecRaw
	}
	start := len(dst)
	dst = enc.EncodeAll(src, dst)
	if (len(dst)-start)*100 > len(src)*incompressiblePct {
		return append(dst[:start], src...), CodecRaw
	}
	return dst, CodecZstd
}
