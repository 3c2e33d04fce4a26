package encoding

import (
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
