package encoding

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Castagnoli is the CRC32C table of every checksum in the store's files
// (SSE4.2 computes it in hardware).
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC returns the CRC32C of b.
func CRC(b []byte) uint32 { return crc32.Checksum(b, Castagnoli) }

// CorruptionError is a record that fails its checks: a bad CRC, a length
// past the end of its file, a field out of range. Readers skip the record
// it names and go on where they can.
type CorruptionError struct {
	Path   string
	Offset int64
	// What names the kind of record for the message: "record" when
	// empty (a segment's block record), "message frame" for msgstore's.
	What string
	Err  error
}

func (e *CorruptionError) Error() string {
	what := e.What
	if what == "" {
		what = "record"
	}
	return fmt.Sprintf("corrupt %s in %q at offset %d: %v", what, e.Path, e.Offset, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// Header is the layout of a fixed record header that starts with a magic
// number, carries a format version, and ends its checked part with its own
// CRC32C (of the bytes before it), as the segment's block records and the
// message files' frames do.
type Header struct {
	What       string // "block header", "frame header": names errors
	Size       int    // fixed size in bytes
	Magic      uint32 // little-endian at OffMagic
	Version    byte   // at OffVersion: the newest version read
	MinVersion byte   // the oldest version still read (0: Version only)
	OffMagic   int
	OffVersion int
	OffCRC     int // the CRC32C of b[:OffCRC], little-endian
}

// Check checks the start of b against h: length, magic, header CRC and
// version, in that order (a bad CRC says more than a bad version).
func (h *Header) Check(b []byte) error {
	if len(b) < h.Size {
		return fmt.Errorf("%s: %d bytes, want %d", h.What, len(b), h.Size)
	}
	if m := binary.LittleEndian.Uint32(b[h.OffMagic:]); m != h.Magic {
		return fmt.Errorf("%s: bad magic %#08x", h.What, m)
	}
	if got, want := binary.LittleEndian.Uint32(b[h.OffCRC:]), CRC(b[:h.OffCRC]); got != want {
		return fmt.Errorf("%s: crc %#08x, want %#08x", h.What, got, want)
	}
	lo := h.MinVersion
	if lo == 0 {
		lo = h.Version
	}
	if v := b[h.OffVersion]; v < lo || v > h.Version {
		return fmt.Errorf("%s: unsupported version %d", h.What, v)
	}
	return nil
}
