package query

import (
	"errors"
	"fmt"
	"io"

	"tapvault/pcap"
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
const maxPcapSnap = pcap.MaxSnapLen

var (
	_ PacketWriter = (*PcapWriter)(nil)
	_ PacketWriter = (*PcapngWriter)(nil)
)

// PcapWriter writes classic pcap with nanosecond timestamps (magic
// 0xa1b23c4d, little-endian), which tcpdump, Wireshark and libpcap read
// natively. The format is pcap.Writer's; PcapWriter refuses packets of a
// second link type.
type PcapWriter struct {
	w *pcap.Writer
}

// NewPcapWriter writes the pcap file header for linkType and returns a
// writer for its packets. Packets longer than snaplen are cut to it (their
// original length is kept); snaplen 0 means 262144.
func NewPcapWriter(w io.Writer, linkType uint16, snaplen uint32) (*PcapWriter, error) {
	pw, err := pcap.NewWriter(w, linkType, snaplen, pcap.WithBufferSize(outBufSize))
	if err != nil {
		return nil, err
	}
	return &PcapWriter{w: pw}, nil
}

// WritePacket appends one packet. iface is ignored: pcap has no interfaces.
// ts must lie within what pcap's unsigned 32-bit seconds can hold
// (1970-2106).
func (p *PcapWriter) WritePacket(ts int64, wireLen uint32, linkType uint16, iface uint16, data []byte) error {
	if lt := p.w.LinkType(); linkType != lt {
		return fmt.Errorf("write pcap packet of link type %d into a file of link type %d: %w", linkType, lt, ErrMixedLinkTypes)
	}
	return p.w.WritePacket(ts, wireLen, data)
}

// Flush writes buffered packets to the underlying writer.
func (p *PcapWriter) Flush() error { return p.w.Flush() }

// PcapngWriter writes pcapng (little-endian, pcap.NgWriter): one Section
// Header Block, an Interface Description Block with if_tsresol=9 (ns) the
// first time each distinct (link type, interface) pair is seen, and an
// Enhanced Packet Block per packet with its original length.
type PcapngWriter struct {
	w      *pcap.NgWriter
	ifaces map[uint32]uint32 // linkType<<16 | iface -> IDB number
	// last pair looked up, so runs of one interface skip the map.
	lastKey uint32
	lastID  uint32
	hasLast bool
}

// NewPcapngWriter writes the section header and returns a writer for the
// section's interfaces and packets.
func NewPcapngWriter(w io.Writer) (*PcapngWriter, error) {
	nw, err := pcap.NewNgWriter(w, pcap.WithBufferSize(outBufSize), pcap.WithUserAppl("tapvault"))
	if err != nil {
		return nil, err
	}
	return &PcapngWriter{w: nw, ifaces: make(map[uint32]uint32)}, nil
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
			if id, err = p.w.AddInterface(linkType, 0); err != nil { // snaplen: no limit
				return err
			}
			p.ifaces[key] = id
		}
		p.lastKey, p.lastID, p.hasLast = key, id, true
	}
	return p.w.WritePacket(ts, wireLen, id, data)
}

// Flush writes buffered blocks to the underlying writer.
func (p *PcapngWriter) Flush() error { return p.w.Flush() }
