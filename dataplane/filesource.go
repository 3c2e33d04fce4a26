package dataplane

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
)

// FileSource reads a pcap or pcapng capture file as a Source, for import.
//
// The format is detected from the file's magic number, never from its name.
// Classic pcap is read in either byte order with µs or ns timestamps (and the
// rare 0xa1b2cd34 "modified" variant). pcapng is read section by section
// (each section may have its own byte order), with any number of interfaces,
// each with its own link type, if_tsresol and if_tsoffset, and Enhanced,
// Simple and obsolete Packet blocks; every other block type is skipped. A
// Simple Packet Block has no timestamp and gets the previous packet's.
//
// Reading allocates nothing per packet: record headers are peeked from a
// bufio.Reader, and packet bytes are read straight into an arena owned by the
// FileSource, which Recv reuses.
//
// A file that is cut short inside a record ends with io.EOF like a complete
// one: every packet before the cut is delivered, and Warning then tells where
// the file was cut. Structurally corrupt files (impossible lengths, unknown
// interfaces) end with an error wrapping ErrCorrupt.
type FileSource struct {
	path string
	c    io.Closer // the file; nil for in-memory input
	r    *bufio.Reader
	size int64
	off  int64 // bytes consumed so far: the offset of the next unread record

	ng       bool             // pcapng rather than pcap
	bo       binary.ByteOrder // byte order of the current file or section
	recHdr   int              // pcap record header size (16, or 24 for 0xa1b2cd34)
	pcapTS   tsConv           // pcap timestamp conversion (µs or ns)
	pcapLink uint16
	ifaces   []FileInterface // every interface seen so far, all sections
	conv     []tsConv        // per entry of ifaces
	secBase  int             // index in ifaces of the current section's interface 0
	section  int             // current pcapng section number
	arena    []byte          // packet bytes of the current burst; len(arena) is fixed
	scratch  []byte          // IDB and SHB bodies, reused
	npkts    int64           // packets delivered so far
	lastTS   int64           // timestamp of the last pcapng packet that had one
	err      error           // sticky: returned once the packets before it are delivered
	warn     error           // set when the file was cut short
	closed   bool
}

var _ Source = (*FileSource)(nil)

// FileInterface describes one capture interface of a file. A pcap file has
// exactly one; a pcapng file has one per Interface Description Block, over all
// its sections, numbered in order of appearance (that number is Packet.Iface).
type FileInterface struct {
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

// MaxFilePacket is the largest captured length FileSource delivers. It equals
// workers.MaxPacketSize (dataplane must not import workers, which is
// downstream of it): a pcapng packet that is longer is cut to this length
// with its original length kept, and a pcap record that claims more is
// treated as corruption, as libpcap does. It also bounds the memory a corrupt
// length field can make the reader allocate.
const MaxFilePacket = 262144

// maxMetaBlock bounds the pcapng blocks whose bodies are read into memory
// (section and interface headers). Larger ones are corrupt.
const maxMetaBlock = 1 << 20

// arenaSize is the packet arena of one burst. It holds at least one packet of
// MaxFilePacket bytes, so a burst always makes progress; a burst ends early
// when the next packet would not fit.
const arenaSize = 1 << 20

// ErrTruncated is wrapped by Warning when the file ends inside a record.
var ErrTruncated = errors.New("capture file cut short")

// ErrCorrupt is wrapped by the errors of files whose structure is invalid.
var ErrCorrupt = errors.New("corrupt capture file")

const (
	magicPcapMicro    = 0xa1b2c3d4
	magicPcapNano     = 0xa1b23c4d
	magicPcapModified = 0xa1b2cd34 // Alexey Kuznetsov's patched libpcap: 24-byte records
	magicNgSHB        = 0x0a0d0d0a
	ngByteOrderMagic  = 0x1a2b3c4d
)

// pcapng block types.
const (
	ngBlockIDB = 0x00000001
	ngBlockPB  = 0x00000002 // obsolete Packet Block
	ngBlockSPB = 0x00000003
	ngBlockEPB = 0x00000006
)

// pcapng option codes.
const (
	ngOptEnd      = 0
	ngOptIfName   = 2
	ngOptTSResol  = 9
	ngOptTSOffset = 14
)

// tsConv turns a file's timestamp units into nanoseconds with integer
// arithmetic only: units*mul, units/div, or units*1e9>>shift.
type tsConv struct {
	mul   uint64 // when > 0: ns = units * mul
	div   uint64 // when > 0: ns = units / div
	shift uint   // otherwise: ns = units * 1e9 >> shift (binary resolutions)
	off   int64  // ns added (if_tsoffset)
}

// newTSConv builds the conversion for a pcapng if_tsresol byte.
func newTSConv(resol uint8, offsetSec int64) tsConv {
	c := tsConv{off: offsetSec * 1e9}
	e := uint(resol & 0x7f)
	switch {
	case resol&0x80 != 0:
		c.shift = e
	case e <= 9:
		c.mul = pow10(9 - e)
	case e-9 <= 19:
		c.div = pow10(e - 9)
	default:
		// Units finer than 1e-28 s: every timestamp is below 1 ns.
		c.div = 0
		c.mul = 0
		c.shift = 128
	}
	return c
}

func pow10(n uint) uint64 {
	p := uint64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

// ns converts a timestamp in the interface's units to Unix nanoseconds.
func (c *tsConv) ns(units uint64) int64 {
	switch {
	case c.mul > 0:
		return int64(units*c.mul) + c.off
	case c.div > 0:
		return int64(units/c.div) + c.off
	}
	hi, lo := bits.Mul64(units, 1e9)
	var v uint64
	switch {
	case c.shift == 0:
		v = lo
	case c.shift < 64:
		v = lo>>c.shift | hi<<(64-c.shift)
	case c.shift < 128:
		v = hi >> (c.shift - 64)
	}
	return int64(v) + c.off
}

// OpenFile opens the pcap or pcapng file at path and reads its file header
// (pcapng: its first Section Header Block).
func OpenFile(path string) (*FileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open trace %q: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open trace %q: %w", path, err)
	}
	s, err := newFileSource(path, f, st.Size(), f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// newFileSource reads the file header from r, which holds size bytes. c, if
// not nil, is closed by Close.
func newFileSource(path string, r io.Reader, size int64, c io.Closer) (*FileSource, error) {
	s := &FileSource{
		path:  path,
		c:     c,
		r:     bufio.NewReaderSize(r, 1<<20),
		size:  size,
		arena: make([]byte, arenaSize),
	}
	head, err := s.r.Peek(4)
	if len(head) < 4 {
		if err == nil || err == io.EOF {
			return nil, fmt.Errorf("open trace %q: not a pcap or pcapng file (only %d bytes)", path, len(head))
		}
		return nil, fmt.Errorf("open trace %q: %w", path, err)
	}
	be := binary.BigEndian.Uint32(head)
	le := binary.LittleEndian.Uint32(head)
	switch {
	case be == magicNgSHB:
		s.ng = true
		s.bo = binary.LittleEndian // replaced by the SHB's byte-order magic
		if err := s.readSHB(); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("open trace %q: pcapng section header cut short: %w", path, ErrTruncated)
			}
			return nil, fmt.Errorf("open trace %q: %w", path, err)
		}
		s.readLeadingIDBs()
	case isPcapMagic(be):
		s.bo = binary.BigEndian
		err = s.readPcapHeader(be)
	case isPcapMagic(le):
		s.bo = binary.LittleEndian
		err = s.readPcapHeader(le)
	case head[0] == 0x1f && head[1] == 0x8b:
		return nil, fmt.Errorf("open trace %q: gzip-compressed file: decompress it first (magic 0x%08x)", path, be)
	default:
		return nil, fmt.Errorf("open trace %q: not a pcap or pcapng file (magic 0x%08x)", path, be)
	}
	if err != nil {
		return nil, fmt.Errorf("open trace %q: %w", path, err)
	}
	return s, nil
}

func isPcapMagic(m uint32) bool {
	return m == magicPcapMicro || m == magicPcapNano || m == magicPcapModified
}

// readPcapHeader reads the 24-byte pcap file header.
//
//	0      4     6     8        12       16       20
//	+------+-----+-----+--------+--------+--------+
//	|magic |major|minor|thiszone|sigfigs |snaplen |linktype(+FCS bits)
//	+------+-----+-----+--------+--------+--------+
func (s *FileSource) readPcapHeader(magic uint32) error {
	h, err := s.r.Peek(24)
	if len(h) < 24 {
		if err == io.EOF {
			return fmt.Errorf("pcap file header: %d of 24 bytes: %w", len(h), ErrTruncated)
		}
		return fmt.Errorf("pcap file header: %w", err)
	}
	snaplen := s.bo.Uint32(h[16:])
	link := uint16(s.bo.Uint32(h[20:]) & 0xffff) // the high bits carry the FCS length
	s.pcapLink = link
	s.recHdr = 16
	resol := uint8(6)
	switch magic {
	case magicPcapNano:
		resol = 9
	case magicPcapModified:
		s.recHdr = 24
	}
	s.pcapTS = newTSConv(resol, 0)
	s.ifaces = append(s.ifaces, FileInterface{LinkType: link, SnapLen: snaplen, TSResol: resol})
	s.conv = append(s.conv, s.pcapTS)
	s.discard(24)
	return nil
}

// discard consumes n bytes that are known to be buffered.
func (s *FileSource) discard(n int) {
	d, _ := s.r.Discard(n)
	s.off += int64(d)
}

// readFull reads len(p) bytes, counting them.
func (s *FileSource) readFull(p []byte) error {
	n, err := io.ReadFull(s.r, p)
	s.off += int64(n)
	return err
}

// skip consumes n bytes of the stream.
func (s *FileSource) skip(n int64) error {
	for n > 0 {
		c := n
		if c > 1<<30 {
			c = 1 << 30
		}
		d, err := s.r.Discard(int(c))
		s.off += int64(d)
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

// Recv fills b with up to MaxBurst packets. Packet data is copied into an
// arena owned by s: it is valid until the next Recv or Close. Recv returns
// io.EOF once the file is exhausted (then see Warning), or an error wrapping
// ErrCorrupt for a structurally invalid file, after the packets before the
// fault have been delivered.
func (s *FileSource) Recv(b *Burst) (int, error) {
	b.N = 0
	if s.closed {
		return 0, fmt.Errorf("read trace %q: source closed", s.path)
	}
	if s.err != nil {
		return 0, s.err
	}
	var n int
	var err error
	if s.ng {
		n, err = s.recvNg(b)
	} else {
		n, err = s.recvPcap(b)
	}
	b.N = n
	s.npkts += int64(n)
	if err != nil {
		s.err = err
		if n > 0 {
			return n, nil
		}
		return 0, err
	}
	return n, nil
}

// recvPcap reads pcap records:
//
//	0       4        8        12       16
//	+-------+--------+--------+--------+---------------+
//	|ts sec |ts frac |incl len|orig len| incl len bytes |
//	+-------+--------+--------+--------+---------------+
func (s *FileSource) recvPcap(b *Burst) (int, error) {
	used := 0
	n := 0
	for n < MaxBurst {
		h, err := s.r.Peek(s.recHdr)
		if len(h) < s.recHdr {
			return n, s.endOfInput(err, len(h), "packet record header", n)
		}
		sec := uint64(s.bo.Uint32(h[0:]))
		frac := uint64(s.bo.Uint32(h[4:]))
		incl := s.bo.Uint32(h[8:])
		orig := s.bo.Uint32(h[12:])
		if incl > MaxFilePacket {
			return n, fmt.Errorf("read trace %q: packet record at offset %d (after %d packets) has captured length %d, more than the maximum %d: %w",
				s.path, s.off, s.npkts+int64(n), incl, MaxFilePacket, ErrCorrupt)
		}
		if used+int(incl) > len(s.arena) {
			break // the record stays buffered for the next burst
		}
		recOff := s.off
		s.discard(s.recHdr)
		data := s.arena[used : used+int(incl) : used+int(incl)]
		if err := s.readFull(data); err != nil {
			s.warnCut(err, recOff, "packet data", n)
			return n, s.eofOr(err)
		}
		used += int(incl)
		if orig < incl {
			orig = incl
		}
		p := &b.Pkts[n]
		p.Data = data
		p.TS = int64(sec*1e9) + int64(frac*s.pcapTS.mul)
		p.WireLen = orig
		p.LinkType = s.pcapLink
		p.Iface = 0
		n++
	}
	return n, nil
}

// endOfInput handles a short peek of a record header: a clean io.EOF when no
// byte of the record was there, a truncation warning otherwise.
func (s *FileSource) endOfInput(err error, got int, what string, n int) error {
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	if err != io.EOF {
		return fmt.Errorf("read trace %q at offset %d: %w", s.path, s.off, err)
	}
	if got > 0 {
		s.warnCut(io.ErrUnexpectedEOF, s.off, what, n)
		s.off += int64(got)
	}
	return io.EOF
}

// warnCut records a truncation found at record offset off. n is the number of
// packets of the current burst already delivered.
func (s *FileSource) warnCut(err error, off int64, what string, n int) {
	if err != io.EOF && err != io.ErrUnexpectedEOF {
		return
	}
	s.warn = fmt.Errorf("read trace %q: %w at offset %d, inside a %s, after %d packets",
		s.path, ErrTruncated, off, what, s.npkts+int64(n))
}

// eofOr maps an end of input inside a record to io.EOF (the warning has been
// recorded) and wraps any other error.
func (s *FileSource) eofOr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return io.EOF
	}
	return fmt.Errorf("read trace %q at offset %d: %w", s.path, s.off, err)
}

// recvNg reads pcapng blocks until the burst is full or the file ends.
//
//	0      4      8                       len-4  len
//	+------+------+-----------------------+------+
//	| type | len  | body                  | len  |
//	+------+------+-----------------------+------+
//
// EPB body: iface(4) tsHigh(4) tsLow(4) caplen(4) origlen(4) data pad opts.
// SPB body: origlen(4) data pad. PB body: iface(2) drops(2) then as EPB.
func (s *FileSource) recvNg(b *Burst) (int, error) {
	used := 0
	n := 0
	for n < MaxBurst {
		h, err := s.r.Peek(8)
		if len(h) < 8 {
			return n, s.endOfInput(err, len(h), "pcapng block header", n)
		}
		typ := s.bo.Uint32(h[0:])
		if binary.BigEndian.Uint32(h) == magicNgSHB {
			if err := s.nextSection(n); err != nil {
				return n, err
			}
			continue
		}
		blen := s.bo.Uint32(h[4:])
		if blen < 12 || blen%4 != 0 {
			return n, s.corrupt(n, "block of type 0x%08x has invalid length %d", typ, blen)
		}
		switch typ {
		case ngBlockEPB, ngBlockPB, ngBlockSPB:
			ok, err := s.readNgPacket(b, n, &used, typ, blen)
			if err != nil {
				return n, err
			}
			if !ok {
				return n, nil // arena full: the block stays buffered
			}
			n++
		case ngBlockIDB:
			if err := s.readIDB(blen, n); err != nil {
				return n, err
			}
		default:
			blockOff := s.off
			if err := s.skip(int64(blen)); err != nil {
				s.warnCut(err, blockOff, "pcapng block", n)
				return n, s.eofOr(err)
			}
		}
	}
	return n, nil
}

func (s *FileSource) corrupt(n int, format string, args ...any) error {
	return fmt.Errorf("read trace %q: at offset %d (after %d packets): %s: %w",
		s.path, s.off, s.npkts+int64(n), fmt.Sprintf(format, args...), ErrCorrupt)
}

// readNgPacket reads one EPB, SPB or PB of total length blen into packet n of
// b. It returns false, leaving the block unread, when the packet does not fit
// in what is left of the arena.
func (s *FileSource) readNgPacket(b *Burst, n int, used *int, typ, blen uint32) (bool, error) {
	fixed := 28 // type, len, iface, tsHigh, tsLow, caplen, origlen
	if typ == ngBlockSPB {
		fixed = 12 // type, len, origlen
	}
	if int(blen) < fixed+4 {
		return false, s.corrupt(n, "packet block of type %d has length %d, less than its fixed %d bytes", typ, blen, fixed+4)
	}
	blockOff := s.off
	h, err := s.r.Peek(fixed)
	if len(h) < fixed {
		if err == io.EOF {
			s.warnCut(io.ErrUnexpectedEOF, blockOff, "pcapng packet block", n)
			s.off += int64(len(h))
			return false, io.EOF
		}
		return false, fmt.Errorf("read trace %q at offset %d: %w", s.path, s.off, err)
	}
	room := blen - uint32(fixed) - 4 // bytes for data, padding and options
	var ifc uint32
	var ts uint64
	var caplen, orig uint32
	switch typ {
	case ngBlockEPB:
		ifc = s.bo.Uint32(h[8:])
		ts = uint64(s.bo.Uint32(h[12:]))<<32 | uint64(s.bo.Uint32(h[16:]))
		caplen = s.bo.Uint32(h[20:])
		orig = s.bo.Uint32(h[24:])
	case ngBlockPB:
		ifc = uint32(s.bo.Uint16(h[8:]))
		ts = uint64(s.bo.Uint32(h[12:]))<<32 | uint64(s.bo.Uint32(h[16:]))
		caplen = s.bo.Uint32(h[20:])
		orig = s.bo.Uint32(h[24:])
	case ngBlockSPB:
		ifc = 0
		orig = s.bo.Uint32(h[8:])
		caplen = min(orig, room)
	}
	if caplen > room {
		return false, s.corrupt(n, "packet block of length %d holds captured length %d", blen, caplen)
	}
	nIf := len(s.ifaces) - s.secBase
	if int(ifc) >= nIf {
		return false, s.corrupt(n, "packet block names interface %d, but the section has %d", ifc, nIf)
	}
	gi := s.secBase + int(ifc)
	if typ == ngBlockSPB {
		if sl := s.ifaces[gi].SnapLen; sl > 0 && caplen > sl {
			caplen = sl
		}
	}
	keep := min(caplen, MaxFilePacket)
	if *used+int(keep) > len(s.arena) {
		return false, nil
	}
	s.discard(fixed)
	data := s.arena[*used : *used+int(keep) : *used+int(keep)]
	if err := s.readFull(data); err != nil {
		s.warnCut(err, blockOff, "pcapng packet block", n)
		return false, s.eofOr(err)
	}
	*used += int(keep)
	// The rest: any bytes beyond MaxFilePacket, padding, options, trailer.
	rest := int64(room-keep) + 4
	if err := s.skip(rest - 4); err != nil {
		s.warnCut(err, blockOff, "pcapng packet block", n)
		return false, s.eofOr(err)
	}
	if err := s.checkTrailer(blen, blockOff, n); err != nil {
		return false, err
	}
	if orig < caplen {
		orig = caplen
	}
	p := &b.Pkts[n]
	p.Data = data
	if typ == ngBlockSPB {
		// An SPB carries no timestamp: it gets the previous packet's, so
		// it does not stretch a block's time range back to 1970.
		p.TS = s.lastTS
	} else {
		p.TS = s.conv[gi].ns(ts)
		s.lastTS = p.TS
	}
	p.WireLen = orig
	p.LinkType = s.ifaces[gi].LinkType
	p.Iface = uint16(gi)
	return true, nil
}

// checkTrailer reads a block's trailing length and checks it matches.
func (s *FileSource) checkTrailer(blen uint32, blockOff int64, n int) error {
	t, err := s.r.Peek(4)
	if len(t) < 4 {
		if err == io.EOF {
			s.warnCut(io.ErrUnexpectedEOF, blockOff, "pcapng block trailer", n)
			s.off += int64(len(t))
			return io.EOF
		}
		return fmt.Errorf("read trace %q at offset %d: %w", s.path, s.off, err)
	}
	if tl := s.bo.Uint32(t); tl != blen {
		return s.corrupt(n, "block at offset %d has length %d but trailer says %d", blockOff, blen, tl)
	}
	s.discard(4)
	return nil
}

// readBlock reads a whole block of length blen (at most maxMetaBlock) into
// s.scratch and returns its body (without type, length and trailer).
func (s *FileSource) readBlock(blen uint32, what string, n int) ([]byte, error) {
	if blen > maxMetaBlock {
		return nil, s.corrupt(n, "%s of %d bytes is larger than the %d accepted", what, blen, maxMetaBlock)
	}
	if cap(s.scratch) < int(blen) {
		s.scratch = make([]byte, blen)
	}
	blk := s.scratch[:blen]
	blockOff := s.off
	if err := s.readFull(blk); err != nil {
		s.warnCut(err, blockOff, what, n)
		return nil, s.eofOr(err)
	}
	if tl := s.bo.Uint32(blk[blen-4:]); tl != blen {
		return nil, s.corrupt(n, "%s at offset %d has length %d but trailer says %d", what, blockOff, blen, tl)
	}
	return blk[8 : blen-4], nil
}

// readLeadingIDBs reads the Interface Description Blocks that directly
// follow the first section header, so that Interfaces is complete before the
// first Recv for the usual file. A fault is kept for Recv to return, after
// the (no) packets before it.
func (s *FileSource) readLeadingIDBs() {
	for {
		h, _ := s.r.Peek(8)
		if len(h) < 8 || s.bo.Uint32(h) != ngBlockIDB {
			return
		}
		blen := s.bo.Uint32(h[4:])
		if blen < 12 || blen%4 != 0 {
			return // Recv reports it
		}
		if err := s.readIDB(blen, 0); err != nil {
			s.err = err
			return
		}
	}
}

// readIDB reads an Interface Description Block.
//
//	body: linktype(2) reserved(2) snaplen(4) options
func (s *FileSource) readIDB(blen uint32, n int) error {
	body, err := s.readBlock(blen, "interface description block", n)
	if err != nil {
		return err
	}
	if len(body) < 8 {
		return s.corrupt(n, "interface description block of %d bytes", blen)
	}
	if len(s.ifaces) >= 1<<16 {
		return s.corrupt(n, "more than %d interfaces", 1<<16)
	}
	fi := FileInterface{
		Section:  s.section,
		LinkType: s.bo.Uint16(body[0:]),
		SnapLen:  s.bo.Uint32(body[4:]),
		TSResol:  6,
	}
	opts := body[8:]
	for len(opts) >= 4 {
		code := s.bo.Uint16(opts[0:])
		l := int(s.bo.Uint16(opts[2:]))
		opts = opts[4:]
		if code == ngOptEnd {
			break
		}
		if l > len(opts) {
			return s.corrupt(n, "interface option %d of length %d overruns its block", code, l)
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
				fi.TSOffset = int64(s.bo.Uint64(v))
			}
		}
		pad := (l + 3) &^ 3
		if pad > len(opts) {
			pad = len(opts)
		}
		opts = opts[pad:]
	}
	s.ifaces = append(s.ifaces, fi)
	s.conv = append(s.conv, newTSConv(fi.TSResol, fi.TSOffset))
	return nil
}

// nextSection reads a Section Header Block that follows earlier sections.
func (s *FileSource) nextSection(n int) error {
	blockOff := s.off
	if err := s.readSHB(); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			s.warnCut(io.ErrUnexpectedEOF, blockOff, "section header block", n)
			return io.EOF
		}
		if errors.Is(err, ErrCorrupt) {
			return fmt.Errorf("read trace %q: at offset %d (after %d packets): %w", s.path, blockOff, s.npkts+int64(n), err)
		}
		return fmt.Errorf("read trace %q at offset %d: %w", s.path, blockOff, err)
	}
	s.section++
	return nil
}

// readSHB reads a Section Header Block and adopts its byte order. It resets
// the section's interface numbering; Iface numbers stay unique across
// sections because they index all interfaces seen so far.
//
//	type(4) len(4) byte-order-magic(4) major(2) minor(2) section-len(8) opts len(4)
func (s *FileSource) readSHB() error {
	h, err := s.r.Peek(12)
	if len(h) < 12 {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		if err == io.EOF {
			s.off += int64(len(h))
			return io.ErrUnexpectedEOF
		}
		return err
	}
	switch binary.LittleEndian.Uint32(h[8:]) {
	case ngByteOrderMagic:
		s.bo = binary.LittleEndian
	case 0x4d3c2b1a:
		s.bo = binary.BigEndian
	default:
		return fmt.Errorf("section header block has byte-order magic 0x%08x: %w", binary.BigEndian.Uint32(h[8:]), ErrCorrupt)
	}
	blen := s.bo.Uint32(h[4:])
	if blen < 28 || blen%4 != 0 || blen > maxMetaBlock {
		return fmt.Errorf("section header block has invalid length %d: %w", blen, ErrCorrupt)
	}
	if cap(s.scratch) < int(blen) {
		s.scratch = make([]byte, blen)
	}
	blk := s.scratch[:blen]
	if err := s.readFull(blk); err != nil {
		return err
	}
	if tl := s.bo.Uint32(blk[blen-4:]); tl != blen {
		return fmt.Errorf("section header block has length %d but trailer says %d: %w", blen, tl, ErrCorrupt)
	}
	if major := s.bo.Uint16(blk[12:]); major != 1 {
		return fmt.Errorf("pcapng major version %d is not supported (want 1): %w", major, ErrCorrupt)
	}
	s.secBase = len(s.ifaces)
	return nil
}

// Close releases the file. Packets of the last burst become invalid.
func (s *FileSource) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.arena = nil
	if s.c == nil {
		return nil
	}
	if err := s.c.Close(); err != nil {
		return fmt.Errorf("close trace %q: %w", s.path, err)
	}
	return nil
}

// Size is the file's size in bytes when it was opened.
func (s *FileSource) Size() int64 { return s.size }

// Offset is how many bytes of the file have been consumed, for progress
// display: Offset()/Size() is the fraction read.
func (s *FileSource) Offset() int64 { return s.off }

// Interfaces lists the interfaces seen so far, indexed by Packet.Iface. A
// pcapng file may describe more interfaces later, so the list can grow as
// Recv goes on. The returned slice is a copy.
func (s *FileSource) Interfaces() []FileInterface {
	return append([]FileInterface(nil), s.ifaces...)
}

// Warning reports, once Recv has returned io.EOF, whether the file was cut
// short inside a record. The error wraps ErrTruncated and says at which
// offset and after how many packets; every packet before the cut was
// delivered. It is nil for a complete file.
func (s *FileSource) Warning() error { return s.warn }
