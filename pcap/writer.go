package pcap

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Resolution is a timestamp resolution, as a pcapng if_tsresol byte.
type Resolution uint8

// The resolutions a Writer or NgWriter writes.
const (
	Microsecond Resolution = 6
	Nanosecond  Resolution = 9
)

// WriterOption configures a Writer or an NgWriter.
type WriterOption func(*writerConfig)

type writerConfig struct {
	bo       binary.ByteOrder
	resol    Resolution
	bufSize  int
	userAppl string
}

func newWriterConfig(opts []WriterOption) writerConfig {
	c := writerConfig{bo: binary.LittleEndian, resol: Nanosecond, bufSize: 64 << 10}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithByteOrder sets the byte order of the file (default little-endian).
// Readers accept both.
func WithByteOrder(bo binary.ByteOrder) WriterOption {
	return func(c *writerConfig) { c.bo = bo }
}

// WithResolution sets the timestamp resolution (default Nanosecond). A
// Microsecond file drops the nanoseconds of every timestamp.
func WithResolution(r Resolution) WriterOption {
	return func(c *writerConfig) { c.resol = r }
}

// WithBufferSize sets the size of the writer's buffer (default 64 KiB).
func WithBufferSize(n int) WriterOption {
	return func(c *writerConfig) { c.bufSize = n }
}

// WithUserAppl names the writing application in the pcapng section header
// (shb_userappl). A Writer ignores it: pcap has no room for it.
func WithUserAppl(name string) WriterOption {
	return func(c *writerConfig) { c.userAppl = name }
}

// Writer writes classic pcap: magic 0xa1b23c4d (ns) or 0xa1b2c3d4 (µs),
// version 2.4, one link type. tcpdump, Wireshark and libpcap read both.
//
// It buffers; Flush writes out what is buffered, and the caller flushes (and
// syncs, and closes) the underlying writer itself.
type Writer struct {
	w        *bufio.Writer
	bo       binary.ByteOrder
	nano     bool
	linkType uint16
	snaplen  uint32
	hdr      [16]byte
}

// NewWriter writes the pcap file header for linkType and returns a writer
// for its packets. Packets longer than snaplen are cut to it (their original
// length is kept); snaplen 0 means MaxSnapLen.
func NewWriter(w io.Writer, linkType uint16, snaplen uint32, opts ...WriterOption) (*Writer, error) {
	c := newWriterConfig(opts)
	if snaplen == 0 {
		snaplen = MaxSnapLen
	}
	p := &Writer{w: bufio.NewWriterSize(w, c.bufSize), bo: c.bo, nano: c.resol != Microsecond, linkType: linkType, snaplen: snaplen}
	magic := uint32(magicNano)
	if !p.nano {
		magic = magicMicro
	}
	var h [24]byte
	p.bo.PutUint32(h[0:], magic)
	p.bo.PutUint16(h[4:], 2)
	p.bo.PutUint16(h[6:], 4)
	p.bo.PutUint32(h[16:], snaplen)
	p.bo.PutUint32(h[20:], uint32(linkType))
	if _, err := p.w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return p, nil
}

// LinkType is the file's link type: every packet written has it.
func (p *Writer) LinkType() uint16 { return p.linkType }

// WritePacket appends one packet of the file's link type. ts is in
// nanoseconds since the Unix epoch and must lie within what pcap's unsigned
// 32-bit seconds can hold (1970-2106). wireLen below len(data) is raised to
// it. data is only read during the call.
func (p *Writer) WritePacket(ts int64, wireLen uint32, data []byte) error {
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
	frac := uint32(ts % 1e9)
	if !p.nano {
		frac /= 1e3
	}
	h := &p.hdr
	p.bo.PutUint32(h[0:], uint32(ts/1e9))
	p.bo.PutUint32(h[4:], frac)
	p.bo.PutUint32(h[8:], incl)
	p.bo.PutUint32(h[12:], wireLen)
	if _, err := p.w.Write(h[:]); err != nil {
		return fmt.Errorf("write pcap packet: %w", err)
	}
	if _, err := p.w.Write(data); err != nil {
		return fmt.Errorf("write pcap packet: %w", err)
	}
	return nil
}

// Flush writes buffered packets to the underlying writer.
func (p *Writer) Flush() error {
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("flush pcap: %w", err)
	}
	return nil
}

// NgWriter writes one pcapng section: a Section Header Block, an Interface
// Description Block per AddInterface (with if_tsresol), and an Enhanced
// Packet Block per packet with its original length.
//
//	IDB: 1 | len | linktype | reserved | snaplen | if_tsresol | end | len
//	EPB: 6 | len | iface id | ts high | ts low | caplen | origlen | data pad4 | len
//
// It buffers; Flush writes out what is buffered, and the caller flushes (and
// syncs, and closes) the underlying writer itself.
type NgWriter struct {
	w       *bufio.Writer
	bo      binary.ByteOrder
	resol   Resolution
	nIfaces uint32
	hdr     [28]byte
	tail    [8]byte // up to 3 padding bytes, then the trailing length
}

// NewNgWriter writes the section header and returns a writer for the
// section's interfaces and packets.
func NewNgWriter(w io.Writer, opts ...WriterOption) (*NgWriter, error) {
	c := newWriterConfig(opts)
	p := &NgWriter{w: bufio.NewWriterSize(w, c.bufSize), bo: c.bo, resol: c.resol}
	optLen := 4 // end of options
	if c.userAppl != "" {
		optLen += 4 + (len(c.userAppl)+3)&^3
	}
	blen := uint32(28 + optLen)
	b := make([]byte, blen)
	p.bo.PutUint32(b[0:], magicNgSHB)
	p.bo.PutUint32(b[4:], blen)
	p.bo.PutUint32(b[8:], ngByteOrder)
	p.bo.PutUint16(b[12:], 1)
	p.bo.PutUint16(b[14:], 0)
	p.bo.PutUint64(b[16:], ^uint64(0)) // section length not given
	o := 24
	if c.userAppl != "" {
		o = p.putOption(b, o, ngOptUserAppl, c.userAppl)
	}
	o = p.putOption(b, o, ngOptEnd, "") // b[o:] is the trailer
	p.bo.PutUint32(b[o:], blen)
	if _, err := p.w.Write(b); err != nil {
		return nil, fmt.Errorf("write pcapng section header: %w", err)
	}
	return p, nil
}

// putOption writes one option at b[o:], padded to 4 bytes, and returns the
// offset past it.
func (p *NgWriter) putOption(b []byte, o int, code uint16, v string) int {
	p.bo.PutUint16(b[o:], code)
	p.bo.PutUint16(b[o+2:], uint16(len(v)))
	copy(b[o+4:], v) // the padding stays zero
	return o + 4 + (len(v)+3)&^3
}

// AddInterface writes an Interface Description Block and returns its number
// within the section, for WritePacket. snaplen 0 means "no limit".
func (p *NgWriter) AddInterface(linkType uint16, snaplen uint32) (uint32, error) {
	return p.AddNamedInterface(linkType, snaplen, "")
}

// AddNamedInterface is AddInterface with an if_name option (name "" writes
// none), which Wireshark shows per packet: the fleet centre names each
// sensor's interface after the sensor.
func (p *NgWriter) AddNamedInterface(linkType uint16, snaplen uint32, name string) (uint32, error) {
	if len(name) > 0xffff {
		return 0, fmt.Errorf("write pcapng interface: name of %d bytes is too long", len(name))
	}
	blen := 16 + 8 + 4 + 4 // fixed part, if_tsresol option, end of options, trailer
	if name != "" {
		blen += 4 + (len(name)+3)&^3
	}
	b := make([]byte, blen)
	p.bo.PutUint32(b[0:], ngBlockIDB)
	p.bo.PutUint32(b[4:], uint32(blen))
	p.bo.PutUint16(b[8:], linkType)
	p.bo.PutUint32(b[12:], snaplen)
	p.bo.PutUint16(b[16:], ngOptTSResol)
	p.bo.PutUint16(b[18:], 1)
	b[20] = byte(p.resol) // b[21:24] padding
	o := 24
	if name != "" {
		o = p.putOption(b, o, ngOptIfName, name)
	}
	o = p.putOption(b, o, ngOptEnd, "")
	p.bo.PutUint32(b[o:], uint32(blen))
	if _, err := p.w.Write(b); err != nil {
		return 0, fmt.Errorf("write pcapng interface: %w", err)
	}
	id := p.nIfaces
	p.nIfaces++
	return id, nil
}

// WritePacket appends one packet of interface iface (a number AddInterface
// returned). ts is in nanoseconds since the Unix epoch and must not be
// negative. Packets longer than MaxSnapLen are cut to it; wireLen below the
// captured length is raised to it. data is only read during the call.
func (p *NgWriter) WritePacket(ts int64, wireLen uint32, iface uint32, data []byte) error {
	if ts < 0 {
		return fmt.Errorf("write pcapng packet: negative timestamp %d ns", ts)
	}
	if iface >= p.nIfaces {
		return fmt.Errorf("write pcapng packet: interface %d was not added (%d were)", iface, p.nIfaces)
	}
	if len(data) > MaxSnapLen {
		data = data[:MaxSnapLen]
	}
	incl := uint32(len(data))
	if wireLen < incl {
		wireLen = incl
	}
	units := uint64(ts)
	if p.resol == Microsecond {
		units /= 1e3
	}
	pad := (4 - incl%4) % 4
	blen := 32 + incl + pad
	h := &p.hdr
	p.bo.PutUint32(h[0:], ngBlockEPB)
	p.bo.PutUint32(h[4:], blen)
	p.bo.PutUint32(h[8:], iface)
	p.bo.PutUint32(h[12:], uint32(units>>32))
	p.bo.PutUint32(h[16:], uint32(units))
	p.bo.PutUint32(h[20:], incl)
	p.bo.PutUint32(h[24:], wireLen)
	if _, err := p.w.Write(h[:]); err != nil {
		return fmt.Errorf("write pcapng packet: %w", err)
	}
	if _, err := p.w.Write(data); err != nil {
		return fmt.Errorf("write pcapng packet: %w", err)
	}
	t := &p.tail
	p.bo.PutUint32(t[pad:], blen) // t[:pad] stays zero
	if _, err := p.w.Write(t[:pad+4]); err != nil {
		return fmt.Errorf("write pcapng packet: %w", err)
	}
	return nil
}

// Flush writes buffered blocks to the underlying writer.
func (p *NgWriter) Flush() error {
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("flush pcapng: %w", err)
	}
	return nil
}
