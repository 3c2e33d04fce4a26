package dataplane

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// This file is pure Go: it works out, before a net_pcap port starts, how
// many packets each replay queue will deliver and how large the largest is.
// RxQueue uses the count to return io.EOF at the end of a replay, and
// OpenPort uses the size to give mbufs enough data room.

// vdevArgs returns the devargs of the --vdev whose device name is name, as
// key/value pairs in order, or ok=false when args hold no such --vdev.
// Both "--vdev=X" and "--vdev X" forms are understood.
func vdevArgs(args []string, name string) (kv [][2]string, ok bool) {
	for _, d := range allVdevs(args) {
		if d.name == name {
			return d.kv, true
		}
	}
	return nil, false
}

// pcapRxFiles returns the rx_pcap files of a net_pcap vdev, in queue order
// (the PMD makes one RX queue per rx_pcap argument).
func pcapRxFiles(kv [][2]string) []string {
	var files []string
	for _, p := range kv {
		if p[0] == "rx_pcap" {
			files = append(files, p[1])
		}
	}
	return files
}

// captureInfo is what a capture file holds, as far as replay cares.
type captureInfo struct {
	Packets   int64  // records libpcap will return
	MaxCapLen uint32 // largest captured length
}

// errReplayFormat reports a file that is neither pcap nor pcapng.
var errReplayFormat = errors.New("not a pcap or pcapng file")

// countCapture walks the record headers of a pcap or pcapng file without
// reading payloads. A file cut short in its last record counts the records
// before it, as libpcap does.
func countCapture(path string) (captureInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return captureInfo{}, fmt.Errorf("count capture %q: %w", path, err)
	}
	defer f.Close()
	info, err := countCaptureFrom(f)
	if err != nil {
		return info, fmt.Errorf("count capture %q: %w", path, err)
	}
	return info, nil
}

// countCaptureFrom counts the packets of a pcap or pcapng stream.
func countCaptureFrom(rd io.Reader) (captureInfo, error) {
	r := bufio.NewReaderSize(rd, 64<<10)
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return captureInfo{}, fmt.Errorf("read magic: %w", err)
	}
	switch binary.LittleEndian.Uint32(magic[:]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		return countPcap(r, binary.LittleEndian)
	case 0xd4c3b2a1, 0x4d3cb2a1:
		return countPcap(r, binary.BigEndian)
	case 0x0a0d0d0a:
		return countPcapng(r)
	}
	return captureInfo{}, errReplayFormat
}

// countPcap walks classic pcap records after the 4-byte magic.
func countPcap(r *bufio.Reader, bo binary.ByteOrder) (captureInfo, error) {
	var info captureInfo
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
func countPcapng(r *bufio.Reader) (captureInfo, error) {
	var info captureInfo
	var bo binary.ByteOrder = binary.LittleEndian
	blockType := uint32(0x0a0d0d0a)
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
		if blockType == 0x0a0d0d0a {
			// The byte-order magic follows the length; read it to learn
			// how to read the length itself.
			var bom [4]byte
			if _, err := io.ReadFull(r, bom[:]); err != nil {
				return info, nil
			}
			switch binary.LittleEndian.Uint32(bom[:]) {
			case 0x1a2b3c4d:
				bo = binary.LittleEndian
			case 0x4d3c2b1a:
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
		case 6, 2: // enhanced packet block, obsolete packet block
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
		case 3: // simple packet block: captured length is implied
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
