package query

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// PacketWriter writes packets to a capture file. Data is only read during
// the call. Flush writes out what is buffered; the caller flushes (and syncs,
// and closes) the underlying writer itself.
type PacketWriter interface {
	WritePacket(ts int64, wireLen uint32, linkType uint16, iface uint16, data []byte) error
	Flush() error
}

// ErrMixedLinkTypes is returned (wrapped) by a PcapWriter given a packet of a
// link type other than the file's: a pcap file holds exactly one.
var ErrMixedLinkTypes = errors.New("packets of several link types cannot share one pcap file: use --format pcapng")

// outBufSize is the writers' buffer. Profiled: past about 256 KiB a larger
// buffer no longer changes throughput; 1 MiB matches the block size.
const outBufSize = 1 << 20

// maxPcapSnap is the snaplen used when none is given (libpcap's maximum).
const maxPcapSnap = 262144

var (
	_ PacketWriter = (*PcapWriter)(nil)
	_ PacketWriter = (*PcapngWriter)(nil)
)

// PcapWriter writes classic pcap with nanosecond timestamps (magic
// 0xa1b23c4d, little-endian), which tcpdump, Wireshark and libpcap read
// natively.
//
//	file header (24 B): magic | 2 | 4 | thiszone 0 | sigfigs 0 | snaplen | linktype
//	record: ts sec | ts ns | incl len | orig len | incl len bytes
type PcapWriter struct {
	w        *bufio.Writer
	linkType uint16
	snaplen  uint32
	hdr      [16]byte
}

// NewPcapWriter writes the pcap file header for linkType and returns a
// writer for its packets. Packets longer than snaplen are cut to it (their
// original length is kept); snaplen 0 means 262144.
func NewPcapWriter(w io.Writer, linkType uint16, snaplen uint32) (*PcapWriter, error) {
	if snaplen == 0 {
		snaplen = maxPcapSnap
	}
	p := &PcapWriter{w: bufio.NewWriterSize(w, outBufSize), linkType: linkType, snaplen: snaplen}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b23c4d)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], snaplen)
	binary.LittleEndian.PutUint32(h[20:], uint32(linkType))
	if _, err := p.w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return p, nil
}

// WritePacket appends one packet. iface is ignored: pcap has no interfaces.
// ts must lie within what pcap's unsigned 32-bit seconds can hold
// (1970-2106).
func (p *PcapWriter) WritePacket(ts int64, wireLen uint32, linkType uint16, iface uint16, data []byte) error {
	if linkType != p.linkType {
		return fmt.Errorf("write pcap packet of link type %d into a file of link type %d: %w", linkType, p.linkType, ErrMixedLinkTypes)
	}
	if ts < 0 || ts/1e9 > 0xffffffff {
		return fmt.Errorf("write pcap packet: timestamp %d ns is outside pcap's range (1970 to 2106)", ts)
	}
	if uint64(len(data)) > uint64(p.snaplen) {
		data = data[:p.snaplen]
	}
	incl := uint32(len(data))
	if wireLen < incl {
		wireLen = incl
	}
	h := &p.hdr
	binary.LittleEndian.PutUint32(h[0:], uint32(ts/1e9))
	binary.LittleEndian.PutUint32(h[4:], uint32(ts%1e9))
	binary.LittleEndian.PutUint32(h[8:], incl)
	binary.LittleEndian.PutUint32(h[12:], wireLen)
	if _, err := p.w.Write(h[:]); err != nil {
		return fmt.Errorf("write pcap packet: %w", err)
	}
	if _, err := p.w.Write(data); err != nil {
		return fmt.Errorf("write pcap packet: %w", err)
	}
	return nil
}

// Flush writes buffered packets to the underlying writer.
func (p *PcapWriter) Flush() error {
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("flush pcap: %w", err)
	}
	return nil
}

// pcapng block types and options written.
const (
	ngSHB         = 0x0a0d0d0a
	ngIDB         = 0x00000001
	ngEPB         = 0x00000006
	ngBOM         = 0x1a2b3c4d
	ngOptEnd      = 0
	ngOptTSResol  = 9
	ngOptUserAppl = 4
)

// PcapngWriter writes pcapng (little-endian): one Section Header Block, an
// Interface Description Block with if_tsresol=9 (ns) the first time each
// distinct (link type, interface) pair is seen, and an Enhanced Packet Block
// per packet with its original length.
//
//	EPB: 6 | len | iface id | ts high | ts low | caplen | origlen | data pad4 | len
type PcapngWriter struct {
	w      *bufio.Writer
	ifaces map[uint32]uint32 // linkType<<16 | iface -> IDB number
	// last pair looked up, so runs of one interface skip the map.
	lastKey uint32
	lastID  uint32
	hasLast bool
	hdr     [28]byte
	tail    [8]byte // up to 3 padding bytes, then the trailing length
}

// NewPcapngWriter writes the section header and returns a writer for the
// section's interfaces and packets.
func NewPcapngWriter(w io.Writer) (*PcapngWriter, error) {
	p := &PcapngWriter{w: bufio.NewWriterSize(w, outBufSize), ifaces: make(map[uint32]uint32)}
	const appl = "tapvault"
	optLen := 4 + (len(appl)+3)&^3 + 4
	blen := uint32(28 + optLen)
	b := make([]byte, 0, blen)
	b = binary.LittleEndian.AppendUint32(b, ngSHB)
	b = binary.LittleEndian.AppendUint32(b, blen)
	b = binary.LittleEndian.AppendUint32(b, ngBOM)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint64(b, ^uint64(0)) // section length not given
	b = appendNgOption(b, ngOptUserAppl, []byte(appl))
	b = appendNgOption(b, ngOptEnd, nil)
	b = binary.LittleEndian.AppendUint32(b, blen)
	if _, err := p.w.Write(b); err != nil {
		return nil, fmt.Errorf("write pcapng section header: %w", err)
	}
	return p, nil
}

func appendNgOption(b []byte, code uint16, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, code)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	for i := len(v); i%4 != 0; i++ {
		b = append(b, 0)
	}
	return b
}

// WritePacket appends one packet, describing its interface first if the
// (linkType, iface) pair is new. ts must not be negative.
func (p *PcapngWriter) WritePacket(ts int64, wireLen uint32, linkType uint16, iface uint16, data []byte) error {
	if ts < 0 {
		return fmt.Errorf("write pcapng packet: negative timestamp %d ns", ts)
	}
	key := uint32(linkType)<<16 | uint32(iface)
	id := p.lastID
	if !p.hasLast || key != p.lastKey {
		var ok bool
		id, ok = p.ifaces[key]
		if !ok {
			var err error
			if id, err = p.addInterface(key, linkType); err != nil {
				return err
			}
		}
		p.lastKey, p.lastID, p.hasLast = key, id, true
	}
	if len(data) > maxPcapSnap {
		data = data[:maxPcapSnap]
	}
	incl := uint32(len(data))
	if wireLen < incl {
		wireLen = incl
	}
	pad := (4 - incl%4) % 4
	blen := 32 + incl + pad
	h := &p.hdr
	binary.LittleEndian.PutUint32(h[0:], ngEPB)
	binary.LittleEndian.PutUint32(h[4:], blen)
	binary.LittleEndian.PutUint32(h[8:], id)
	binary.LittleEndian.PutUint32(h[12:], uint32(uint64(ts)>>32))
	binary.LittleEndian.PutUint32(h[16:], uint32(ts))
	binary.LittleEndian.PutUint32(h[20:], incl)
	binary.LittleEndian.PutUint32(h[24:], wireLen)
	if _, err := p.w.Write(h[:]); err != nil {
		return fmt.Errorf("write pcapng packet: %w", err)
	}
	if _, err := p.w.Write(data); err != nil {
		return fmt.Errorf("write pcapng packet: %w", err)
	}
	t := &p.tail
	binary.LittleEndian.PutUint32(t[pad:], blen) // t[:pad] stays zero
	if _, err := p.w.Write(t[:pad+4]); err != nil {
		return fmt.Errorf("write pcapng packet: %w", err)
	}
	return nil
}

// addInterface writes an IDB for a new (linkType, iface) pair.
//
//	IDB: 1 | len | linktype | reserved | snaplen | if_tsresol=9 | end | len
func (p *PcapngWriter) addInterface(key uint32, linkType uint16) (uint32, error) {
	id := uint32(len(p.ifaces))
	const blen = 16 + 8 + 4 + 4 // fixed part, if_tsresol option, end of options, trailer
	var b [blen]byte
	binary.LittleEndian.PutUint32(b[0:], ngIDB)
	binary.LittleEndian.PutUint32(b[4:], blen)
	binary.LittleEndian.PutUint16(b[8:], linkType)
	binary.LittleEndian.PutUint32(b[12:], 0) // snaplen: no limit
	binary.LittleEndian.PutUint16(b[16:], ngOptTSResol)
	binary.LittleEndian.PutUint16(b[18:], 1)
	b[20] = 9 // 10^-9 s; b[21:24] padding, b[24:28] end of options
	binary.LittleEndian.PutUint32(b[28:], blen)
	if _, err := p.w.Write(b[:]); err != nil {
		return 0, fmt.Errorf("write pcapng interface: %w", err)
	}
	p.ifaces[key] = id
	return id, nil
}

// Flush writes buffered blocks to the underlying writer.
func (p *PcapngWriter) Flush() error {
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("flush pcapng: %w", err)
	}
	return nil
}
