package pcap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Reader reads a pcap or pcapng stream packet by packet.
//
// The format is detected from the magic number, never from a file name.
// Classic pcap is read in either byte order with µs or ns timestamps (and the
// rare 0xa1b2cd34 "modified" variant). pcapng is read section by section
// (each section may have its own byte order), with any number of interfaces,
// each with its own link type, if_tsresol and if_tsoffset, and Enhanced,
// Simple and obsolete Packet blocks; every other block type is skipped. A
// Simple Packet Block has no timestamp and gets the previous packet's.
//
// A stream that is cut short inside a record ends with io.EOF like a complete
// one: every packet before the cut is delivered, and Warning then tells where
// it was cut. Structurally corrupt streams (impossible lengths, unknown
// interfaces) end with an error wrapping ErrCorrupt. Either end is sticky:
// every later ReadPacket returns it again.
type Reader struct {
	name string // for error messages
	r    *bufio.Reader
	off  int64 // bytes consumed so far: the offset of the next unread record

	ng      bool             // pcapng rather than pcap
	bo      binary.ByteOrder // byte order of the current file or section
	recHdr  int              // pcap record header size (16, or 24 for 0xa1b2cd34)
	pcapTS  tsConv           // pcap timestamp conversion (µs or ns)
	link    uint16           // pcap link type
	ifaces  []Interface      // every interface seen so far, all sections
	conv    []tsConv         // per entry of ifaces
	secBase int              // index in ifaces of the current section's interface 0
	section int              // current pcapng section number
	scratch []byte           // IDB and SHB bodies, reused
	npkts   int64            // packets delivered so far
	lastTS  int64            // timestamp of the last pcapng packet that had one
	err     error            // sticky end of input or fault
	warn    error            // set when the stream was cut short
}

// Interface describes one capture interface of a file. A pcap file has
// exactly one; a pcapng file has one per Interface Description Block, over all
// its sections, numbered in order of appearance (that number is
// CaptureInfo.Iface).
type Interface struct {
	Section  int    // pcapng section the interface belongs to (0 for pcap)
	LinkType uint16 // pcap LINKTYPE_*
	SnapLen  uint32 // 0 means "no limit" in pcapng
	Name     string // pcapng if_name, "" if absent
	// TSResol is the timestamp resolution as a pcapng if_tsresol byte: the
	// low 7 bits are an exponent, of 10 when the high bit is clear and of 2
	// when it is set (6 = µs, 9 = ns, 0x80|20 = 2^-20 s). pcap files give 6
	// or 9.
	TSResol  uint8
	TSOffset int64 // pcapng if_tsoffset, seconds added to every timestamp
}

// CaptureInfo describes one packet read.
type CaptureInfo struct {
	TS       int64  // nanoseconds since the Unix epoch
	WireLen  uint32 // original length on the wire (>= the captured length)
	LinkType uint16 // pcap LINKTYPE_* of the packet
	Iface    uint16 // interface number: the index in Interfaces (0 for pcap)
}

// readBufSize is the Reader's buffer: record headers are peeked from it.
const readBufSize = 1 << 20

// maxMetaBlock bounds the pcapng blocks whose bodies are read into memory
// (section and interface headers). Larger ones are corrupt.
const maxMetaBlock = 1 << 20

// NewReader reads the file header from r (pcapng: its first Section Header
// Block and the Interface Description Blocks right after it). name is the
// stream's name in error messages, usually its path.
func NewReader(r io.Reader, name string) (*Reader, error) {
	rd := &Reader{name: name, r: bufio.NewReaderSize(r, readBufSize)}
	head, err := rd.r.Peek(4)
	if len(head) < 4 {
		if err == nil || err == io.EOF {
			return nil, fmt.Errorf("open trace %q: not a pcap or pcapng file (only %d bytes)", name, len(head))
		}
		return nil, fmt.Errorf("open trace %q: %w", name, err)
	}
	be := binary.BigEndian.Uint32(head)
	le := binary.LittleEndian.Uint32(head)
	switch {
	case be == magicNgSHB:
		rd.ng = true
		rd.bo = binary.LittleEndian // replaced by the SHB's byte-order magic
		if err := rd.readSHB(); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("open trace %q: pcapng section header cut short: %w", name, ErrTruncated)
			}
			return nil, fmt.Errorf("open trace %q: %w", name, err)
		}
		rd.readLeadingIDBs()
	case isPcapMagic(be):
		rd.bo = binary.BigEndian
		err = rd.readPcapHeader(be)
	case isPcapMagic(le):
		rd.bo = binary.LittleEndian
		err = rd.readPcapHeader(le)
	case head[0] == 0x1f && head[1] == 0x8b:
		return nil, fmt.Errorf("open trace %q: gzip-compressed file: decompress it first (magic 0x%08x)", name, be)
	default:
		return nil, fmt.Errorf("open trace %q: not a pcap or pcapng file (magic 0x%08x)", name, be)
	}
	if err != nil {
		return nil, fmt.Errorf("open trace %q: %w", name, err)
	}
	return rd, nil
}

func isPcapMagic(m uint32) bool {
	return m == magicMicro || m == magicNano || m == magicModified
}

// readPcapHeader reads the 24-byte pcap file header.
func (r *Reader) readPcapHeader(magic uint32) error {
	h, err := r.r.Peek(24)
	if len(h) < 24 {
		if err == io.EOF {
			return fmt.Errorf("pcap file header: %d of 24 bytes: %w", len(h), ErrTruncated)
		}
		return fmt.Errorf("pcap file header: %w", err)
	}
	snaplen := r.bo.Uint32(h[16:])
	link := uint16(r.bo.Uint32(h[20:]) & 0xffff) // the high bits carry the FCS length
	r.link = link
	r.recHdr = 16
	resol := uint8(6)
	switch magic {
	case magicNano:
		resol = 9
	case magicModified:
		r.recHdr = 24
	}
	r.pcapTS = newTSConv(resol, 0)
	r.ifaces = append(r.ifaces, Interface{LinkType: link, SnapLen: snaplen, TSResol: resol})
	r.conv = append(r.conv, r.pcapTS)
	r.discard(24)
	return nil
}

// discard consumes n bytes that are known to be buffered.
func (r *Reader) discard(n int) {
	d, _ := r.r.Discard(n)
	r.off += int64(d)
}

// readFull reads len(p) bytes, counting them.
func (r *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(r.r, p)
	r.off += int64(n)
	return err
}

// skip consumes n bytes of the stream.
func (r *Reader) skip(n int64) error {
	for n > 0 {
		c := n
		if c > 1<<30 {
			c = 1 << 30
		}
		d, err := r.r.Discard(int(c))
		r.off += int64(d)
		n -= int64(d)
		if err != nil {
			if err == io.EOF && n > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// ReadPacket copies the next packet into buf and returns its description and
// data, which is buf[:captured length] (at most MaxSnapLen bytes): it is the
// caller's, as is buf.
//
// When the packet does not fit in buf, ReadPacket returns io.ErrShortBuffer
// and leaves the packet unread, so that a caller filling an arena can start
// a new one; a buf of MaxSnapLen bytes always fits. It returns io.EOF once
// the stream is exhausted (then see Warning), or an error wrapping
// ErrCorrupt for a structurally invalid stream.
func (r *Reader) ReadPacket(buf []byte) (CaptureInfo, []byte, error) {
	if r.err != nil {
		return CaptureInfo{}, nil, r.err
	}
	var ci CaptureInfo
	var data []byte
	var err error
	if r.ng {
		ci, data, err = r.readNg(buf)
	} else {
		ci, data, err = r.readPcap(buf)
	}
	if err != nil {
		if err != io.ErrShortBuffer {
			r.err = err
		}
		return CaptureInfo{}, nil, err
	}
	r.npkts++
	return ci, data, nil
}

// readPcap reads one pcap record.
func (r *Reader) readPcap(buf []byte) (CaptureInfo, []byte, error) {
	h, err := r.r.Peek(r.recHdr)
	if len(h) < r.recHdr {
		return CaptureInfo{}, nil, r.endOfInput(err, len(h), "packet record header")
	}
	sec := uint64(r.bo.Uint32(h[0:]))
	frac := uint64(r.bo.Uint32(h[4:]))
	incl := r.bo.Uint32(h[8:])
	orig := r.bo.Uint32(h[12:])
	if incl > MaxSnapLen {
		return CaptureInfo{}, nil, fmt.Errorf("read trace %q: packet record at offset %d (after %d packets) has captured length %d, more than the maximum %d: %w",
			r.name, r.off, r.npkts, incl, MaxSnapLen, ErrCorrupt)
	}
	if int(incl) > len(buf) {
		return CaptureInfo{}, nil, io.ErrShortBuffer // the record stays buffered
	}
	recOff := r.off
	r.discard(r.recHdr)
	data := buf[:incl:incl]
	if err := r.readFull(data); err != nil {
		r.warnCut(err, recOff, "packet data")
		return CaptureInfo{}, nil, r.eofOr(err)
	}
	if orig < incl {
		orig = incl
	}
	return CaptureInfo{
		TS:       int64(sec*1e9) + int64(frac*r.pcapTS.mul),
		WireLen:  orig,
		LinkType: r.link,
	}, data, nil
}

// endOfInput handles a short peek of a record header: a clean io.EOF when no
// byte of the record was there, a truncation warning otherwise.
func (r *Reader) endOfInput(err error, got int, what string) error {
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	if err != io.EOF {
		return fmt.Errorf("read trace %q at offset %d: %w", r.name, r.off, err)
	}
	if got > 0 {
		r.warnCut(io.ErrUnexpectedEOF, r.off, what)
		r.off += int64(got)
	}
	return io.EOF
}

// warnCut records a truncation found at record offset off.
func (r *Reader) warnCut(err error, off int64, what string) {
	if err != io.EOF && err != io.ErrUnexpectedEOF {
		return
	}
	r.warn = fmt.Errorf("read trace %q: %w at offset %d, inside a %s, after %d packets",
		r.name, ErrTruncated, off, what, r.npkts)
}

// eofOr maps an end of input inside a record to io.EOF (the warning has been
// recorded) and wraps any other error.
func (r *Reader) eofOr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return io.EOF
	}
	return fmt.Errorf("read trace %q at offset %d: %w", r.name, r.off, err)
}

// readNg reads pcapng blocks until one holds a packet.
func (r *Reader) readNg(buf []byte) (CaptureInfo, []byte, error) {
	for {
		h, err := r.r.Peek(8)
		if len(h) < 8 {
			return CaptureInfo{}, nil, r.endOfInput(err, len(h), "pcapng block header")
		}
		typ := r.bo.Uint32(h[0:])
		if binary.BigEndian.Uint32(h) == magicNgSHB {
			if err := r.nextSection(); err != nil {
				return CaptureInfo{}, nil, err
			}
			continue
		}
		blen := r.bo.Uint32(h[4:])
		if blen < 12 || blen%4 != 0 {
			return CaptureInfo{}, nil, r.corrupt("block of type 0x%08x has invalid length %d", typ, blen)
		}
		switch typ {
		case ngBlockEPB, ngBlockPB, ngBlockSPB:
			return r.readNgPacket(buf, typ, blen)
		case ngBlockIDB:
			if err := r.readIDB(blen); err != nil {
				return CaptureInfo{}, nil, err
			}
		default:
			blockOff := r.off
			if err := r.skip(int64(blen)); err != nil {
				r.warnCut(err, blockOff, "pcapng block")
				return CaptureInfo{}, nil, r.eofOr(err)
			}
		}
	}
}

func (r *Reader) corrupt(format string, args ...any) error {
	return fmt.Errorf("read trace %q: at offset %d (after %d packets): %s: %w",
		r.name, r.off, r.npkts, fmt.Sprintf(format, args...), ErrCorrupt)
}

// readNgPacket reads one EPB, SPB or PB of total length blen into buf. It
// returns io.ErrShortBuffer, leaving the block unread, when the packet does
// not fit.
func (r *Reader) readNgPacket(buf []byte, typ, blen uint32) (CaptureInfo, []byte, error) {
	fixed := 28 // type, len, iface, tsHigh, tsLow, caplen, origlen
	if typ == ngBlockSPB {
		fixed = 12 // type, len, origlen
	}
	if int(blen) < fixed+4 {
		return CaptureInfo{}, nil, r.corrupt("packet block of type %d has length %d, less than its fixed %d bytes", typ, blen, fixed+4)
	}
	blockOff := r.off
	h, err := r.r.Peek(fixed)
	if len(h) < fixed {
		if err == io.EOF {
			r.warnCut(io.ErrUnexpectedEOF, blockOff, "pcapng packet block")
			r.off += int64(len(h))
			return CaptureInfo{}, nil, io.EOF
		}
		return CaptureInfo{}, nil, fmt.Errorf("read trace %q at offset %d: %w", r.name, r.off, err)
	}
	room := blen - uint32(fixed) - 4 // bytes for data, padding and options
	var ifc uint32
	var ts uint64
	var caplen, orig uint32
	switch typ {
	case ngBlockEPB:
		ifc = r.bo.Uint32(h[8:])
		ts = uint64(r.bo.Uint32(h[12:]))<<32 | uint64(r.bo.Uint32(h[16:]))
		caplen = r.bo.Uint32(h[20:])
		orig = r.bo.Uint32(h[24:])
	case ngBlockPB:
		ifc = uint32(r.bo.Uint16(h[8:]))
		ts = uint64(r.bo.Uint32(h[12:]))<<32 | uint64(r.bo.Uint32(h[16:]))
		caplen = r.bo.Uint32(h[20:])
		orig = r.bo.Uint32(h[24:])
	case ngBlockSPB:
		ifc = 0
		orig = r.bo.Uint32(h[8:])
		caplen = min(orig, room)
	}
	if caplen > room {
		return CaptureInfo{}, nil, r.corrupt("packet block of length %d holds captured length %d", blen, caplen)
	}
	nIf := len(r.ifaces) - r.secBase
	if int(ifc) >= nIf {
		return CaptureInfo{}, nil, r.corrupt("packet block names interface %d, but the section has %d", ifc, nIf)
	}
	gi := r.secBase + int(ifc)
	if typ == ngBlockSPB {
		if sl := r.ifaces[gi].SnapLen; sl > 0 && caplen > sl {
			caplen = sl
		}
	}
	keep := min(caplen, MaxSnapLen)
	if int(keep) > len(buf) {
		return CaptureInfo{}, nil, io.ErrShortBuffer
	}
	r.discard(fixed)
	data := buf[:keep:keep]
	if err := r.readFull(data); err != nil {
		r.warnCut(err, blockOff, "pcapng packet block")
		return CaptureInfo{}, nil, r.eofOr(err)
	}
	// The rest: any bytes beyond MaxSnapLen, padding, options, trailer.
	rest := int64(room-keep) + 4
	if err := r.skip(rest - 4); err != nil {
		r.warnCut(err, blockOff, "pcapng packet block")
		return CaptureInfo{}, nil, r.eofOr(err)
	}
	if err := r.checkTrailer(blen, blockOff); err != nil {
		return CaptureInfo{}, nil, err
	}
	if orig < caplen {
		orig = caplen
	}
	ci := CaptureInfo{WireLen: orig, LinkType: r.ifaces[gi].LinkType, Iface: uint16(gi)}
	if typ == ngBlockSPB {
		// An SPB carries no timestamp: it gets the previous packet's, so
		// it does not stretch a time range back to 1970.
		ci.TS = r.lastTS
	} else {
		ci.TS = r.conv[gi].ns(ts)
		r.lastTS = ci.TS
	}
	return ci, data, nil
}

// checkTrailer reads a block's trailing length and checks it matches.
func (r *Reader) checkTrailer(blen uint32, blockOff int64) error {
	t, err := r.r.Peek(4)
	if len(t) < 4 {
		if err == io.EOF {
			r.warnCut(io.ErrUnexpectedEOF, blockOff, "pcapng block trailer")
			r.off += int64(len(t))
			return io.EOF
		}
		return fmt.Errorf("read trace %q at offset %d: %w", r.name, r.off, err)
	}
	if tl := r.bo.Uint32(t); tl != blen {
		return r.corrupt("block at offset %d has length %d but trailer says %d", blockOff, blen, tl)
	}
	r.discard(4)
	return nil
}

// readBlock reads a whole block of length blen (at most maxMetaBlock) into
// r.scratch and returns its body (without type, length and trailer).
func (r *Reader) readBlock(blen uint32, what string) ([]byte, error) {
	if blen > maxMetaBlock {
		return nil, r.corrupt("%s of %d bytes is larger than the %d accepted", what, blen, maxMetaBlock)
	}
	if cap(r.scratch) < int(blen) {
		r.scratch = make([]byte, blen)
	}
	blk := r.scratch[:blen]
	blockOff := r.off
	if err := r.readFull(blk); err != nil {
		r.warnCut(err, blockOff, what)
		return nil, r.eofOr(err)
	}
	if tl := r.bo.Uint32(blk[blen-4:]); tl != blen {
		return nil, r.corrupt("%s at offset %d has length %d but trailer says %d", what, blockOff, blen, tl)
	}
	return blk[8 : blen-4], nil
}

// readLeadingIDBs reads the Interface Description Blocks that directly
// follow the first section header, so that Interfaces is complete before the
// first ReadPacket for the usual file. A fault is kept for ReadPacket to
// return.
func (r *Reader) readLeadingIDBs() {
	for {
		h, _ := r.r.Peek(8)
		if len(h) < 8 || r.bo.Uint32(h) != ngBlockIDB {
			return
		}
		blen := r.bo.Uint32(h[4:])
		if blen < 12 || blen%4 != 0 {
			return // ReadPacket reports it
		}
		if err := r.readIDB(blen); err != nil {
			r.err = err
			return
		}
	}
}

// readIDB reads an Interface Description Block.
func (r *Reader) readIDB(blen uint32) error {
	body, err := r.readBlock(blen, "interface description block")
	if err != nil {
		return err
	}
	if len(body) < 8 {
		return r.corrupt("interface description block of %d bytes", blen)
	}
	if len(r.ifaces) >= 1<<16 {
		return r.corrupt("more than %d interfaces", 1<<16)
	}
	fi := Interface{
		Section:  r.section,
		LinkType: r.bo.Uint16(body[0:]),
		SnapLen:  r.bo.Uint32(body[4:]),
		TSResol:  6,
	}
	opts := body[8:]
	for len(opts) >= 4 {
		code := r.bo.Uint16(opts[0:])
		l := int(r.bo.Uint16(opts[2:]))
		opts = opts[4:]
		if code == ngOptEnd {
			break
		}
		if l > len(opts) {
			return r.corrupt("interface option %d of length %d overruns its block", code, l)
		}
		v := opts[:l]
		switch code {
		case ngOptIfName:
			fi.Name = string(v)
		case ngOptTSResol:
			if l >= 1 {
				fi.TSResol = v[0]
			}
		case ngOptTSOffset:
			if l >= 8 {
				fi.TSOffset = int64(r.bo.Uint64(v))
			}
		}
		pad := (l + 3) &^ 3
		if pad > len(opts) {
			pad = len(opts)
		}
		opts = opts[pad:]
	}
	r.ifaces = append(r.ifaces, fi)
	r.conv = append(r.conv, newTSConv(fi.TSResol, fi.TSOffset))
	return nil
}

// nextSection reads a Section Header Block that follows earlier sections.
func (r *Reader) nextSection() error {
	blockOff := r.off
	if err := r.readSHB(); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			r.warnCut(io.ErrUnexpectedEOF, blockOff, "section header block")
			return io.EOF
		}
		if errors.Is(err, ErrCorrupt) {
			return fmt.Errorf("read trace %q: at offset %d (after %d packets): %w", r.name, blockOff, r.npkts, err)
		}
		return fmt.Errorf("read trace %q at offset %d: %w", r.name, blockOff, err)
	}
	r.section++
	return nil
}

// readSHB reads a Section Header Block and adopts its byte order. It resets
// the section's interface numbering; Iface numbers stay unique across
// sections because they index all interfaces seen so far.
//
//	type(4) len(4) byte-order-magic(4) major(2) minor(2) section-len(8) opts len(4)
func (r *Reader) readSHB() error {
	h, err := r.r.Peek(12)
	if len(h) < 12 {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		if err == io.EOF {
			r.off += int64(len(h))
			return io.ErrUnexpectedEOF
		}
		return err
	}
	switch binary.LittleEndian.Uint32(h[8:]) {
	case ngByteOrder:
		r.bo = binary.LittleEndian
	case ngByteOrderBE:
		r.bo = binary.BigEndian
	default:
		return fmt.Errorf("section header block has byte-order magic 0x%08x: %w", binary.BigEndian.Uint32(h[8:]), ErrCorrupt)
	}
	blen := r.bo.Uint32(h[4:])
	if blen < 28 || blen%4 != 0 || blen > maxMetaBlock {
		return fmt.Errorf("section header block has invalid length %d: %w", blen, ErrCorrupt)
	}
	if cap(r.scratch) < int(blen) {
		r.scratch = make([]byte, blen)
	}
	blk := r.scratch[:blen]
	if err := r.readFull(blk); err != nil {
		return err
	}
	if tl := r.bo.Uint32(blk[blen-4:]); tl != blen {
		return fmt.Errorf("section header block has length %d but trailer says %d: %w", blen, tl, ErrCorrupt)
	}
	if major := r.bo.Uint16(blk[12:]); major != 1 {
		return fmt.Errorf("pcapng major version %d is not supported (want 1): %w", major, ErrCorrupt)
	}
	r.secBase = len(r.ifaces)
	return nil
}

// Offset is how many bytes of the stream have been consumed: the offset of
// the next unread record.
func (r *Reader) Offset() int64 { return r.off }

// Interfaces lists the interfaces seen so far, indexed by CaptureInfo.Iface.
// A pcapng file may describe more interfaces later, so the list can grow as
// reading goes on. The returned slice is a copy.
func (r *Reader) Interfaces() []Interface {
	return append([]Interface(nil), r.ifaces...)
}

// Warning reports, once ReadPacket has returned io.EOF, whether the stream
// was cut short inside a record. The error wraps ErrTruncated and says at
// which offset and after how many packets; every packet before the cut was
// delivered. It is nil for a complete stream.
func (r *Reader) Warning() error { return r.warn }
