package pcap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Counts is what a capture holds, as far as a replay cares.
type Counts struct {
	Packets   int64  // records libpcap will return
	MaxCapLen uint32 // largest captured length
}

// ErrFormat is returned by Count for a stream that is neither pcap nor
// pcapng.
var ErrFormat = errors.New("not a pcap or pcapng file")

// Count walks the record headers of a pcap or pcapng stream without reading
// payloads, counting the packets as libpcap will return them: a stream cut
// short in its last record counts the records before it, and no length is
// checked beyond what walking needs. Reader is the strict reader; Count only
// answers "how many, and how large" before a replay starts. The modified
// (0xa1b2cd34) pcap variant is not recognised.
func Count(rd io.Reader) (Counts, error) {
	r := bufio.NewReaderSize(rd, 64<<10)
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return Counts{}, fmt.Errorf("read magic: %w", err)
	}
	switch m := binary.LittleEndian.Uint32(magic[:]); {
	case m == magicMicro || m == magicNano:
		return countPcap(r, binary.LittleEndian)
	case m == swap32(magicMicro) || m == swap32(magicNano):
		return countPcap(r, binary.BigEndian)
	case m == magicNgSHB:
		return countPcapng(r)
	}
	return Counts{}, ErrFormat
}

func swap32(v uint32) uint32 {
	return v>>24 | v>>8&0xff00 | v<<8&0xff0000 | v<<24
}

// countPcap walks classic pcap records after the 4-byte magic.
func countPcap(r *bufio.Reader, bo binary.ByteOrder) (Counts, error) {
	var info Counts
	if _, err := r.Discard(20); err != nil {
		return info, fmt.Errorf("read file header: %w", err)
	}
	var h [16]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return info, nil // EOF, or a header cut short: libpcap stops here too
		}
		capLen := bo.Uint32(h[8:12])
		if n, err := r.Discard(int(capLen)); err != nil || n != int(capLen) {
			return info, nil
		}
		info.Packets++
		info.MaxCapLen = max(info.MaxCapLen, capLen)
	}
}

// countPcapng walks pcapng blocks after the first block type (already read)
// and counts enhanced, simple and obsolete packet blocks.
func countPcapng(r *bufio.Reader) (Counts, error) {
	var info Counts
	var bo binary.ByteOrder = binary.LittleEndian
	blockType := uint32(magicNgSHB)
	var h [8]byte
	first := true
	for {
		if !first {
			if _, err := io.ReadFull(r, h[:4]); err != nil {
				return info, nil
			}
			blockType = bo.Uint32(h[:4])
		}
		first = false
		if _, err := io.ReadFull(r, h[4:8]); err != nil {
			return info, nil
		}
		if blockType == magicNgSHB {
			// The byte-order magic follows the length; read it to learn
			// how to read the length itself.
			var bom [4]byte
			if _, err := io.ReadFull(r, bom[:]); err != nil {
				return info, nil
			}
			switch binary.LittleEndian.Uint32(bom[:]) {
			case ngByteOrder:
				bo = binary.LittleEndian
			case ngByteOrderBE:
				bo = binary.BigEndian
			default:
				return info, fmt.Errorf("section header: bad byte-order magic %x", bom)
			}
			blen := bo.Uint32(h[4:8])
			if blen < 28 || blen%4 != 0 {
				return info, fmt.Errorf("section header: bad length %d", blen)
			}
			if _, err := r.Discard(int(blen) - 12); err != nil {
				return info, nil
			}
			continue
		}
		blen := bo.Uint32(h[4:8])
		if blen < 12 || blen%4 != 0 {
			return info, fmt.Errorf("block type %#x: bad length %d", blockType, blen)
		}
		body := int(blen) - 12
		var capLen uint32
		counted := false
		switch blockType {
		case ngBlockEPB, ngBlockPB:
			var b [20]byte
			if body < 20 {
				return info, fmt.Errorf("packet block: length %d too short", blen)
			}
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return info, nil
			}
			body -= 20
			capLen = bo.Uint32(b[12:16])
			counted = true
		case ngBlockSPB: // captured length is implied
			var b [4]byte
			if body < 4 {
				return info, fmt.Errorf("simple packet block: length %d too short", blen)
			}
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return info, nil
			}
			body -= 4
			capLen = min(bo.Uint32(b[:]), uint32(body))
			counted = true
		}
		if n, err := r.Discard(body + 4); err != nil || n != body+4 {
			return info, nil
		}
		if counted {
			info.Packets++
			info.MaxCapLen = max(info.MaxCapLen, capLen)
		}
	}
}
