package pcap

import (
	"errors"
	"math/bits"
)

// MaxSnapLen is libpcap's largest snapshot length. A Reader delivers at most
// this many bytes of a packet: a pcapng packet that is longer is cut to it
// with its original length kept, and a pcap record that claims more is
// corruption, as libpcap treats it. It also bounds the memory a corrupt
// length field can make the reader allocate. Writers default to it.
const MaxSnapLen = 262144

// ErrTruncated is wrapped by Reader.Warning when the file ends inside a
// record.
var ErrTruncated = errors.New("capture file cut short")

// ErrCorrupt is wrapped by the errors of files whose structure is invalid.
var ErrCorrupt = errors.New("corrupt capture file")

// File magic numbers, as read in the file's own byte order.
const (
	magicMicro    = 0xa1b2c3d4
	magicNano     = 0xa1b23c4d
	magicModified = 0xa1b2cd34 // Alexey Kuznetsov's patched libpcap: 24-byte records
	magicNgSHB    = 0x0a0d0d0a // block type of a Section Header Block, a palindrome
	ngByteOrder   = 0x1a2b3c4d // SHB byte-order magic
	ngByteOrderBE = 0x4d3c2b1a // the same, read little-endian from a big-endian file
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
	ngOptUserAppl = 4 // shb_userappl
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
