package msgstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"

	"tapvault/analytics"
)

// Record encoding (one analytics.Record; docs/format/messages.md has the
// table). Integers are uvarints or zig-zag varints, strings a uvarint
// length then the bytes. In order:
//
//	id          8 bytes little-endian (a hash: a varint would be longer)
//	proto       string
//	transport   1 byte
//	vlan        uvarint
//	client      addrport (below)
//	server      addrport
//	times       1 byte presence mask, bit i set when time i != 0, for
//	            ReqFirst, ReqLast, RespFirst, RespLast, ServerAck,
//	            ClientAck; then for each present time a varint: the first
//	            absolute, the others as the delta from the previous
//	            present one
//	durations   5 varints: Network, ServerTime, Transfer, ClientNet, RTT
//	class       string
//	bytes       2 varints: ReqBytes, RespBytes
//	pkts        2 varints: ReqPkts, RespPkts
//	flags       uvarint
//	fields      uvarint count, then per field: key string, 1 byte kind
//	            (bit 0 IsInt, bit 1 Str present, bit 2 Int present), the
//	            string if present, the varint if present
//	packets     uvarint count, then per ref: varint Block delta from the
//	            previous ref's Block (the first from 0), uvarint Queue,
//	            varint Ord delta from the previous ref's Ord (first from 0)
//
// addrport: 1 byte kind (0 no address, 4 IPv4, 6 IPv6, 7 IPv6 with zone),
// the 4 or 16 address bytes, the zone string for kind 7, then the port as
// 2 bytes little-endian (also for kind 0, so even an AddrPort with an
// invalid address and a port round-trips).

// Limits a parser enforces, so a damaged or hostile record cannot make it
// allocate without bound. The writer refuses records beyond them.
const (
	MaxStringLen = 1 << 20 // bytes in any one string (proto, class, key, value)
	MaxFields    = 1 << 16 // fields per record
	MaxRefs      = 1 << 20 // packet refs per record
)

const (
	addrNone   = 0
	addr4      = 4
	addr6      = 6
	addr6Zone  = 7
	fieldInt   = 1 << 0
	fieldHasS  = 1 << 1
	fieldHasI  = 1 << 2
	fieldKinds = fieldInt | fieldHasS | fieldHasI
)

// errTruncated means the bytes end inside a record.
var errTruncated = errors.New("record truncated")

// AppendRecord appends the binary encoding of r to dst and returns the
// extended slice. It does not check the limits (see checkRecord); it never
// fails.
func AppendRecord(dst []byte, r *analytics.Record) []byte {
	return appendDetail(appendCore(dst, r), r)
}

// appendCore appends the core of r's encoding (AppendRecord): everything
// up to and including Flags.
func appendCore(dst []byte, r *analytics.Record) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, r.ID)
	dst = appendString(dst, r.Proto)
	dst = append(dst, r.Transport)
	dst = binary.AppendUvarint(dst, uint64(r.VLAN))
	dst = appendAddrPort(dst, r.Client)
	dst = appendAddrPort(dst, r.Server)

	times := [6]int64{r.ReqFirst, r.ReqLast, r.RespFirst, r.RespLast, r.ServerAck, r.ClientAck}
	var mask byte
	for i, t := range times {
		if t != 0 {
			mask |= 1 << i
		}
	}
	dst = append(dst, mask)
	var prev int64
	for _, t := range times {
		if t != 0 {
			dst = binary.AppendVarint(dst, t-prev) // wraps for extreme values; the parser wraps back
			prev = t
		}
	}

	dst = binary.AppendVarint(dst, r.Network)
	dst = binary.AppendVarint(dst, r.ServerTime)
	dst = binary.AppendVarint(dst, r.Transfer)
	dst = binary.AppendVarint(dst, r.ClientNet)
	dst = binary.AppendVarint(dst, r.RTT)
	dst = appendString(dst, r.Class)
	dst = binary.AppendVarint(dst, r.ReqBytes)
	dst = binary.AppendVarint(dst, r.RespBytes)
	dst = binary.AppendVarint(dst, int64(r.ReqPkts))
	dst = binary.AppendVarint(dst, int64(r.RespPkts))
	dst = binary.AppendUvarint(dst, uint64(r.Flags))
	return dst
}

// appendDetail appends the detail of r's encoding (AppendRecord): its
// Fields and Packets.
func appendDetail(dst []byte, r *analytics.Record) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(r.Fields)))
	for i := range r.Fields {
		f := &r.Fields[i]
		dst = appendString(dst, f.Key)
		var kind byte
		if f.IsInt {
			kind |= fieldInt
		}
		if f.Str != "" {
			kind |= fieldHasS
		}
		if f.Int != 0 {
			kind |= fieldHasI
		}
		dst = append(dst, kind)
		if f.Str != "" {
			dst = appendString(dst, f.Str)
		}
		if f.Int != 0 {
			dst = binary.AppendVarint(dst, f.Int)
		}
	}

	dst = binary.AppendUvarint(dst, uint64(len(r.Packets)))
	var prevBlock uint64
	var prevOrd uint32
	for _, p := range r.Packets {
		dst = binary.AppendVarint(dst, int64(p.Block-prevBlock))
		dst = binary.AppendUvarint(dst, uint64(p.Queue))
		dst = binary.AppendVarint(dst, int64(p.Ord)-int64(prevOrd))
		prevBlock, prevOrd = p.Block, p.Ord
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendAddrPort(dst []byte, ap netip.AddrPort) []byte {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		dst = append(dst, addrNone)
	case a.Is4():
		b := a.As4()
		dst = append(dst, addr4)
		dst = append(dst, b[:]...)
	default:
		b := a.As16()
		if z := a.Zone(); z != "" {
			dst = append(dst, addr6Zone)
			dst = append(dst, b[:]...)
			dst = appendString(dst, z)
		} else {
			dst = append(dst, addr6)
			dst = append(dst, b[:]...)
		}
	}
	return binary.LittleEndian.AppendUint16(dst, ap.Port())
}

// checkRecord reports whether r is within the limits a parser accepts.
func checkRecord(r *analytics.Record) error {
	if len(r.Proto) > MaxStringLen || len(r.Class) > MaxStringLen || len(r.Client.Addr().Zone()) > MaxStringLen ||
		len(r.Server.Addr().Zone()) > MaxStringLen {
		return fmt.Errorf("record %016x: string longer than %d bytes", r.ID, MaxStringLen)
	}
	if len(r.Fields) > MaxFields {
		return fmt.Errorf("record %016x: %d fields, limit %d", r.ID, len(r.Fields), MaxFields)
	}
	for i := range r.Fields {
		if len(r.Fields[i].Key) > MaxStringLen || len(r.Fields[i].Str) > MaxStringLen {
			return fmt.Errorf("record %016x: field %d longer than %d bytes", r.ID, i, MaxStringLen)
		}
	}
	if len(r.Packets) > MaxRefs {
		return fmt.Errorf("record %016x: %d packet refs, limit %d", r.ID, len(r.Packets), MaxRefs)
	}
	return nil
}

// decoder walks an encoded record: b from offset p. The first error
// sticks (and empties what is left); later reads return zero values, so
// parseRecord checks err once per section. Reads advance an offset rather
// than reslicing b, and one-byte varints (lengths, kinds, counts, small
// durations: most of them) take a branch-only fast path: a scan's records
// are a row of varints, and this loop is most of its time.
type decoder struct {
	b     []byte
	p     int
	err   error
	cache *strCache // nil: allocate every string not interned
}

// strCache maps recently parsed strings to one shared copy, so a scan over
// many records with the same host names, user agents and keys allocates
// each once. Owned by one scan; bounded by maxEntries (cleared when full).
type strCache struct {
	m map[string]string
	// recent is a direct-mapped front for short strings: records repeat
	// the same protocols, classes and field keys, and comparing with the
	// last string in a slot costs less than hashing for the maps (the two
	// map lookups were 40 % of reading 1.8M records for a latency table).
	recent [recentSlots]string
}

const recentSlots = 128

// recentSlot picks a string's slot in strCache.recent from its length and
// its first and last bytes.
func recentSlot(b []byte) int {
	return (len(b)*31 + int(b[0])*7 + int(b[len(b)-1])) & (recentSlots - 1)
}

const (
	strCacheEntries = 4096
	strCacheMaxLen  = 128 // longer strings (statements, long paths) are rarely repeated
)

func (c *strCache) get(b []byte) string {
	if s, ok := c.m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(b) <= strCacheMaxLen {
		if c.m == nil {
			c.m = make(map[string]string)
		} else if len(c.m) >= strCacheEntries {
			clear(c.m)
		}
		c.m[s] = s
	}
	return s
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b, d.p = nil, 0
}

// rest is what is left after the reads so far.
func (d *decoder) rest() []byte { return d.b[d.p:] }

func (d *decoder) byte1() byte {
	if d.p >= len(d.b) {
		d.fail(errTruncated)
		return 0
	}
	c := d.b[d.p]
	d.p++
	return c
}

func (d *decoder) bytesN(n int) []byte {
	if n > len(d.b)-d.p {
		d.fail(errTruncated)
		return nil
	}
	p := d.b[d.p : d.p+n : d.p+n]
	d.p += n
	return p
}

func (d *decoder) uvarint() uint64 {
	if d.p < len(d.b) {
		if c := d.b[d.p]; c < 0x80 {
			d.p++
			return uint64(c)
		}
	}
	return d.uvarintSlow()
}

func (d *decoder) uvarintSlow() uint64 {
	v, n := binary.Uvarint(d.b[d.p:])
	if n <= 0 {
		if n == 0 {
			d.fail(errTruncated)
		} else {
			d.fail(errors.New("uvarint overflows 64 bits"))
		}
		return 0
	}
	d.p += n
	return v
}

func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// bounded reads a uvarint that must be at most max.
func (d *decoder) bounded(what string, max uint64) int {
	v := d.uvarint()
	if v > max {
		d.fail(fmt.Errorf("%s %d exceeds %d", what, v, max))
		return 0
	}
	return int(v)
}

// int32v reads a varint that must fit an int32.
func (d *decoder) int32v(what string) int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail(fmt.Errorf("%s %d out of int32 range", what, v))
		return 0
	}
	return int32(v)
}

// rawString returns the next string's bytes, aliasing d.b.
func (d *decoder) rawString(what string) []byte {
	n := d.uvarint()
	if n > MaxStringLen {
		d.fail(fmt.Errorf("%s length %d exceeds %d", what, n, MaxStringLen))
		return nil
	}
	return d.bytesN(int(n))
}

func (d *decoder) str(what string) string {
	b := d.rawString(what)
	c := d.cache
	if c != nil && len(b) > 0 && len(b) <= 32 {
		i := recentSlot(b)
		if r := c.recent[i]; r == string(b) { // no allocation for the comparison
			return r
		}
		s := d.intern(b)
		c.recent[i] = s
		return s
	}
	return d.intern(b)
}

func (d *decoder) intern(b []byte) string {
	if s, ok := analytics.Intern(b); ok {
		return s
	}
	if d.cache == nil {
		return string(b)
	}
	return d.cache.get(b)
}

func (d *decoder) addrPort(what string) netip.AddrPort {
	var a netip.Addr
	switch k := d.byte1(); k {
	case addrNone:
	case addr4:
		if b := d.bytesN(4); b != nil {
			a = netip.AddrFrom4([4]byte(b))
		}
	case addr6, addr6Zone:
		if b := d.bytesN(16); b != nil {
			a = netip.AddrFrom16([16]byte(b))
		}
		if k == addr6Zone {
			z := d.rawString(what + " zone")
			if len(z) == 0 {
				d.fail(fmt.Errorf("%s: empty zone", what))
			}
			a = a.WithZone(string(z))
		}
	default:
		d.fail(fmt.Errorf("%s: unknown address kind %d", what, k))
	}
	var port uint16
	if b := d.bytesN(2); b != nil {
		port = binary.LittleEndian.Uint16(b)
	}
	return netip.AddrPortFrom(a, port)
}

// ParseRecord decodes one record from the start of b into r and returns the
// bytes after it. It overwrites every field of r and reuses r.Fields and
// r.Packets (truncated to length 0), so a caller parsing many records into
// one Record allocates only for strings that are not interned; anything the
// caller kept from r's slices is overwritten. r's strings never alias b.
// On error r holds a partial record and rest is nil. It never panics.
func ParseRecord(b []byte, r *analytics.Record) (rest []byte, err error) {
	return parseRecord(b, r, nil, true)
}

// parseRecord is ParseRecord sharing strings through c (nil: none), and
// without detail leaving r.Fields and r.Packets empty (decoder.detail).
func parseRecord(b []byte, r *analytics.Record, c *strCache, detail bool) (rest []byte, err error) {
	d := decoder{b: b, cache: c}
	if err := d.core(r); err != nil {
		return nil, err
	}
	if err := d.detail(r, detail); err != nil {
		return nil, err
	}
	return d.rest(), nil
}

// core decodes the core of a record into r: everything but its Fields and
// Packets.
func (d *decoder) core(r *analytics.Record) error {
	if id := d.bytesN(8); id != nil {
		r.ID = binary.LittleEndian.Uint64(id)
	}
	r.Proto = d.str("proto")
	r.Transport = d.byte1()
	r.VLAN = uint16(d.bounded("vlan", math.MaxUint16))
	r.Client = d.addrPort("client")
	r.Server = d.addrPort("server")
	if d.err != nil {
		return fmt.Errorf("parse record: %w", d.err)
	}

	mask := d.byte1()
	if mask>>6 != 0 {
		d.fail(fmt.Errorf("time mask %#02x has unknown bits", mask))
	}
	var times [6]int64
	var prev int64
	for i := range times {
		if mask&(1<<i) != 0 {
			t := prev + d.varint()
			if t == 0 {
				d.fail(fmt.Errorf("time %d present but zero", i))
			}
			times[i], prev = t, t
		}
	}
	r.ReqFirst, r.ReqLast, r.RespFirst, r.RespLast, r.ServerAck, r.ClientAck =
		times[0], times[1], times[2], times[3], times[4], times[5]

	r.Network = d.varint()
	r.ServerTime = d.varint()
	r.Transfer = d.varint()
	r.ClientNet = d.varint()
	r.RTT = d.varint()
	r.Class = d.str("class")
	r.ReqBytes = d.varint()
	r.RespBytes = d.varint()
	r.ReqPkts = d.int32v("request packets")
	r.RespPkts = d.int32v("response packets")
	r.Flags = uint32(d.bounded("flags", math.MaxUint32))
	if d.err != nil {
		return fmt.Errorf("parse record %016x: %w", r.ID, d.err)
	}
	return nil
}

// detail decodes the detail of the record r (whose core came before):
// its Fields and Packets. Without keep it checks them as it would decode
// them but leaves r.Fields and r.Packets empty: their strings and refs are
// most of the work of a scan that reads neither (Query.NoDetail).
func (d *decoder) detail(r *analytics.Record, keep bool) error {
	// Each field takes at least 2 bytes: bound the count by what is left
	// before growing the slice.
	nf := d.bounded("field count", MaxFields)
	if nf > (len(d.b)-d.p)/2 {
		d.fail(fmt.Errorf("field count %d: %w", nf, errTruncated))
		nf = 0
	}
	r.Fields = r.Fields[:0]
	for i := 0; i < nf && d.err == nil; i++ {
		var f analytics.Field
		if keep {
			f.Key = d.str("field key")
		} else {
			d.rawString("field key")
		}
		kind := d.byte1()
		if kind&^fieldKinds != 0 {
			d.fail(fmt.Errorf("field %d: unknown kind %#02x", i, kind))
			break
		}
		f.IsInt = kind&fieldInt != 0
		if kind&fieldHasS != 0 {
			var n int
			if keep {
				f.Str = d.str("field value")
				n = len(f.Str)
			} else {
				n = len(d.rawString("field value"))
			}
			if n == 0 && d.err == nil {
				d.fail(fmt.Errorf("field %d: empty string marked present", i))
			}
		}
		if kind&fieldHasI != 0 {
			if f.Int = d.varint(); f.Int == 0 && d.err == nil {
				d.fail(fmt.Errorf("field %d: zero integer marked present", i))
			}
		}
		if keep {
			r.Fields = append(r.Fields, f)
		}
	}
	if d.err != nil {
		return fmt.Errorf("parse record %016x: fields: %w", r.ID, d.err)
	}

	// Each ref takes at least 3 bytes.
	np := d.bounded("packet ref count", MaxRefs)
	if d.err != nil {
		return fmt.Errorf("parse record %016x: packet refs: %w", r.ID, d.err)
	}
	if np > (len(d.b)-d.p)/3 {
		return fmt.Errorf("parse record %016x: packet ref count %d: %w", r.ID, np, errTruncated)
	}
	r.Packets = r.Packets[:0]
	var prevBlock uint64
	var prevOrd uint32
	for i := 0; i < np; i++ {
		p := analytics.PktRef{Block: prevBlock + uint64(d.varint())}
		p.Queue = uint16(d.bounded("queue", math.MaxUint16))
		ord := int64(prevOrd) + d.varint()
		if ord < 0 || ord > math.MaxUint32 {
			d.fail(fmt.Errorf("packet ref %d: ordinal %d out of range", i, ord))
		}
		if d.err != nil {
			return fmt.Errorf("parse record %016x: packet refs: %w", r.ID, d.err)
		}
		p.Ord = uint32(ord)
		if keep {
			r.Packets = append(r.Packets, p)
		}
		prevBlock, prevOrd = p.Block, p.Ord
	}
	return nil
}
