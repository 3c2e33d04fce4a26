package msgstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strconv"
	"strings"

	"tapvault/encoding"
)

// Frame layout (docs/format/messages.md has the full diagram). All integers
// are little-endian.
//
//	0     4   5   6     8      12  13  14    16      24      32        40
//	+-----+---+---+-----+------+---+---+-----+-------+-------+---------+
//	|magic|ver|cdc|hdlen|count | k |flg| rsv | minTS | maxTS | protos  |
//	+-----+---+---+-----+------+---+---+-----+-------+-------+---------+
//	40        44        48       52       56       60       64
//	+---------+---------+--------+--------+--------+--------+
//	|bloomLen |bloomCRC |stored  |raw     |  core  |hdrCRC  |
//	+---------+---------+--------+--------+--------+--------+
//	| bloom (bloomLen) | data (stored) | CRC32C |
//
// hdrCRC covers bytes [0,60) and bloomCRC the bloom, so a reader trusts a
// header and its bloom (and skips the frame) without reading the data; the
// trailing CRC covers everything before it.
//
// In version 2 the data section is two sections back to back, each
// compressed on its own: the records' cores (core bytes stored), then
// their details (the rest; record.go). A scan without detail decompresses
// and parses only the first. In version 1 (core 0) it is one section of
// whole records.
const (
	frameMagic      uint32 = 0x524d5654 // "TVMR"
	frameVersion    uint8  = 2          // what the writer writes; readers read 1 too
	frameVersion1   uint8  = 1          // records as rows: each one's core, then its detail
	frameHeaderSize        = 64
	maxHeaderSize          = 4096 // a reader accepts longer (future) headers up to this
	crcSize                = 4

	// maxDataLen bounds the stored and raw data section. The writer seals a
	// frame at FrameBytes raw (at most maxFrameBytes), and refuses a record
	// longer than maxRecordLen, so no frame it writes comes near this.
	maxDataLen    = 64 << 20
	maxFrameBytes = 16 << 20
	maxRecordLen  = 32 << 20
	maxCount      = 1 << 24

	// Frame flags (flg). A frame holds only exchanges or only connection
	// records (analytics.IsConnection), so a scan of one kind skips the
	// other's frames unread. Frames written before the flags hold both
	// kinds and carry neither.
	flagExchanges   uint8 = 1 << 0
	flagConnections uint8 = 1 << 1
	knownFlags            = flagExchanges | flagConnections

	codecRaw  uint8 = 0
	codecZstd uint8 = 1

	// A section is stored raw when zstd saves less than 5 %.
	incompressiblePct = 95

	offMagic    = 0
	offVersion  = 4
	offCodec    = 5
	offHdrLen   = 6
	offCount    = 8
	offHashes   = 12
	offFlags    = 13
	offMinTS    = 16
	offMaxTS    = 24
	offProtos   = 32
	offBloomLen = 40
	offBloomCRC = 44
	offStored   = 48
	offRaw      = 52
	offCore     = 56
	offHdrCRC   = 60
)

var castagnoli = encoding.Castagnoli

// CorruptionError reports a frame that fails its checks (What is "message
// frame"). Offset is the byte offset of the frame within the file at Path.
// It is the store's one corruption error, shared with writer.
type CorruptionError = encoding.CorruptionError

// frameCorrupt is the CorruptionError of the frame at off in path.
func frameCorrupt(path string, off int64, err error) *CorruptionError {
	return &CorruptionError{Path: path, Offset: off, What: "message frame", Err: err}
}

// errTorn means a frame runs past the end of its file, or the file ends in
// zeros where a header should be: a frame being written, or the torn tail a
// crash left. Not corruption.
var errTorn = errors.New("frame extends past end of file")

// frameHeader is the decoded fixed header of a frame.
type frameHeader struct {
	version  uint8
	hdrLen   uint16
	codec    uint8
	hashes   uint8
	flags    uint8
	count    uint32
	minTS    int64
	maxTS    int64
	protos   uint64
	bloomLen uint32
	bloomCRC uint32
	stored   uint32
	raw      uint32
	core     uint32 // version 2: stored bytes of the core section
}

// frameLen is the full on-disk length of the frame, trailing CRC included.
func (h *frameHeader) frameLen() int64 {
	return int64(h.hdrLen) + int64(h.bloomLen) + int64(h.stored) + crcSize
}

// putFrameHeader writes h at the start of b (frameHeaderSize bytes),
// header CRC included: a version 2 header, or version 1 with v1.
func putFrameHeader(b []byte, h *frameHeader, v1 bool) {
	_ = b[frameHeaderSize-1]
	clear(b[:frameHeaderSize])
	binary.LittleEndian.PutUint32(b[offMagic:], frameMagic)
	b[offVersion] = frameVersion
	if v1 {
		b[offVersion] = frameVersion1
	}
	b[offCodec] = h.codec
	binary.LittleEndian.PutUint16(b[offHdrLen:], frameHeaderSize)
	binary.LittleEndian.PutUint32(b[offCount:], h.count)
	b[offHashes] = h.hashes
	b[offFlags] = h.flags
	binary.LittleEndian.PutUint64(b[offMinTS:], uint64(h.minTS))
	binary.LittleEndian.PutUint64(b[offMaxTS:], uint64(h.maxTS))
	binary.LittleEndian.PutUint64(b[offProtos:], h.protos)
	binary.LittleEndian.PutUint32(b[offBloomLen:], h.bloomLen)
	binary.LittleEndian.PutUint32(b[offBloomCRC:], h.bloomCRC)
	binary.LittleEndian.PutUint32(b[offStored:], h.stored)
	binary.LittleEndian.PutUint32(b[offRaw:], h.raw)
	binary.LittleEndian.PutUint32(b[offCore:], h.core)
	binary.LittleEndian.PutUint32(b[offHdrCRC:], crc32.Checksum(b[:offHdrCRC], castagnoli))
}

// parseFrameHeader decodes and checks the fixed header at the start of b
// (at least frameHeaderSize bytes): header CRC and field bounds, not the

// frameLayout is the fixed part of the header that encoding checks.
var frameLayout = encoding.Header{What: "frame header", Size: frameHeaderSize, Magic: frameMagic, Version: frameVersion, MinVersion: frameVersion1,
	OffMagic: offMagic, OffVersion: offVersion, OffCRC: offHdrCRC}

// bloom or the data.
func parseFrameHeader(b []byte) (frameHeader, error) {
	var h frameHeader
	if err := frameLayout.Check(b); err != nil {
		return h, err
	}
	h.version = b[offVersion]
	h.hdrLen = binary.LittleEndian.Uint16(b[offHdrLen:])
	if h.hdrLen < frameHeaderSize || h.hdrLen > maxHeaderSize {
		return h, fmt.Errorf("frame header: header length %d out of range", h.hdrLen)
	}
	h.codec = b[offCodec]
	h.count = binary.LittleEndian.Uint32(b[offCount:])
	h.hashes = b[offHashes]
	h.flags = b[offFlags]
	h.minTS = int64(binary.LittleEndian.Uint64(b[offMinTS:]))
	h.maxTS = int64(binary.LittleEndian.Uint64(b[offMaxTS:]))
	h.protos = binary.LittleEndian.Uint64(b[offProtos:])
	h.bloomLen = binary.LittleEndian.Uint32(b[offBloomLen:])
	h.bloomCRC = binary.LittleEndian.Uint32(b[offBloomCRC:])
	h.stored = binary.LittleEndian.Uint32(b[offStored:])
	h.raw = binary.LittleEndian.Uint32(b[offRaw:])
	h.core = binary.LittleEndian.Uint32(b[offCore:])
	switch {
	case h.version == frameVersion1 && h.core != 0:
		return h, fmt.Errorf("frame header: version 1 with a core section of %d bytes", h.core)
	case h.core > h.stored:
		return h, fmt.Errorf("frame header: core section of %d bytes in %d stored", h.core, h.stored)
	case h.count > maxCount:
		return h, fmt.Errorf("frame header: %d records exceeds %d", h.count, maxCount)
	case h.flags&^knownFlags != 0 || h.flags == knownFlags:
		return h, fmt.Errorf("frame header: flags %#02x", h.flags)
	case h.hashes == 0 || h.hashes > 32:
		return h, fmt.Errorf("frame header: %d bloom hashes out of range", h.hashes)
	case h.bloomLen > maxBloomBytes:
		return h, fmt.Errorf("frame header: bloom of %d bytes exceeds %d", h.bloomLen, maxBloomBytes)
	case h.stored > maxDataLen || h.raw > maxDataLen:
		return h, fmt.Errorf("frame header: data %d stored / %d raw bytes exceeds %d", h.stored, h.raw, maxDataLen)
	case h.minTS > h.maxTS:
		return h, fmt.Errorf("frame header: min time %d after max time %d", h.minTS, h.maxTS)
	}
	switch h.codec {
	case codecRaw:
		if h.stored != h.raw {
			return h, fmt.Errorf("frame header: raw data stores %d bytes, raw length %d", h.stored, h.raw)
		}
	case codecZstd:
	default:
		return h, fmt.Errorf("frame header: unknown codec %d", h.codec)
	}
	return h, nil
}

// allZero reports whether b holds only zero bytes (the tail a crash can
// leave when the file size reached the disk before the data).
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

const (
	messagesDirName = "messages"
	fileSuffix      = ".msg"
)

// messagesDir is where a store root keeps its message files.
func messagesDir(root string) string { return filepath.Join(root, messagesDirName) }

// fileName is the name of message file seq: fixed width, so names sort in
// sequence order.
func fileName(seq uint64) string { return fmt.Sprintf("%010d%s", seq, fileSuffix) }

// parseFileName returns the sequence number of a name made by fileName.
func parseFileName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(filepath.Base(name), fileSuffix)
	if !ok || len(base) != 10 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}
