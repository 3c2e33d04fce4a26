package analytics

import (
	"encoding/binary"
	"unsafe"

	"tapvault/dataplane"
	"tapvault/packet"
)

// IP reassembly for the analytics. Storage never sees it: every fragment is
// stored as it came. The analyzer holds the fragments of a UDP datagram
// until it is whole, then gives the datagram to its connection as one
// packet timed at the fragment that completed it (as tshark's dns.time is),
// whose messages list every fragment's ref.
//
// A first fragment carries the UDP header and so the ports; later ones do
// not, and the worker's flow table puts them in a port-less flow of their
// own (packet.FlowKeyOf). So datagrams are keyed here by (VLAN, src, dst,
// protocol, IP identification), and a datagram's connection is the one
// its first fragment found through its flow, remembered by its generation-
// checked ref (conn.ref), so a connection that ends meanwhile is noticed.
//
// Bounds (Config): FragMaxDatagrams datagrams in flight and FragMaxBytes of
// their buffers per worker; beyond either the oldest datagram is dropped.
// A datagram not whole FragTimeout (step-free packet time) after its first
// fragment seen is dropped when the next fragment arrives or at Flush: the
// expiry depends on the packets alone, not on the worker's ticks, so a
// reanalysis drops what the capture dropped.
//
// Overlaps: a fragment that overlaps another one of its datagram is an
// attack (RFC 5722 requires it for IPv6; Linux does it for IPv4 too): the
// datagram is dropped with all its fragments, and those that come later.
// An exact duplicate (same offset, length and bytes, e.g. a packet captured
// twice) is taken once, and its ref is listed.
//
// Every fragment dropped is counted by reason (Stats.FragDropped). The
// fragments of datagrams whose first fragment's flow is not analysed (no
// UDP decoder on its ports) are not drops: they are let go silently, like
// the unfragmented packets of such flows.

// Reasons a fragment is dropped (indexes of Stats.FragDropped).
const (
	FragIncomplete = iota // its datagram was not whole within FragTimeout, or at the end
	FragOverlap           // its datagram had conflicting overlapping fragments
	FragLimit             // FragMaxDatagrams or FragMaxBytes reached: its datagram, the oldest, was dropped
	FragMalformed         // bad fragment lengths or offsets, a UDP header cut across fragments or a bad UDP length
	FragTruncated         // its datagram had a fragment cut by the snaplen: it cannot be whole (a cut first fragment is analysed alone)
	FragReasons
)

// FragReasonNames are the metric labels of the reasons.
var FragReasonNames = [FragReasons]string{"incomplete", "overlap", "limit", "malformed", "truncated"}

// fragMaxPieces bounds the fragments of one datagram (64 KiB over the
// IPv4 minimum MTU of 68 is 1.4k fragments; no real path makes more than
// ~120, from a 576-byte MTU): beyond it the datagram is malformed.
const fragMaxPieces = 256

// fragOverhead bounds one datagram's bookkeeping besides its buffer: the
// struct, its map entry, and its pieces and refs at fragMaxPieces.
const fragOverhead = int64(unsafe.Sizeof(fragDgram{})) + 64 +
	fragMaxPieces*int64(unsafe.Sizeof(fragPiece{})+unsafe.Sizeof(PktRef{}))

// fragMaxLen is the largest datagram: the IP length fields' limit.
const fragMaxLen = 65535

type fragKey struct {
	src, dst [16]byte
	id       uint32
	vlan     uint16
	proto    uint8
	ver      uint8
}

type fragPiece struct{ off, end int }

type fragDgram struct {
	key        fragKey
	born       int64 // step-free time of its first fragment seen
	prev, next *fragDgram

	buf    []byte      // the datagram from its UDP header on, as far as known
	pieces []fragPiece // received ranges, sorted by offset, disjoint
	got    int         // bytes the pieces cover
	total  int         // the datagram's length, -1 until its last fragment
	refs   []PktRef    // every fragment, in arrival order
	wire   uint64      // wire bytes of its fragments
	first  bool        // its first fragment was seen
	conn   uint32      // its connection's ref (conn.ref), 0 if none
	side   Side
	// dead is set once the datagram will not be analysed: drop+1 counts
	// each later fragment under that reason; fragIgnore lets them go.
	dead int8
}

const fragIgnore = -1

// defragger holds the datagrams being reassembled, oldest first.
type defragger struct {
	m          map[fragKey]*fragDgram
	head, tail *fragDgram
	n          int // datagrams held (dead ones included: they bound the map)
	bytes      int // buffer bytes held
	done       uint64
	drops      [FragReasons]uint64 // batched, published by Tick
}

// defrag takes a UDP fragment into reassembly, and reports whether it did
// (false: not UDP, or reassembly is off; Packet goes on as before, which
// analyses a first fragment as a short datagram).
func (a *Analyzer) defrag(p *dataplane.Packet, d *packet.Decoded, e *packet.Flow, dir uint8, ref PktRef) bool {
	if d.Proto != protoUDP {
		return false
	}
	f := &a.frag
	if a.cfg.FragMaxDatagrams <= 0 {
		f.flush() // turned off by a Reload
		return false
	}
	if f.m == nil {
		f.m = map[fragKey]*fragDgram{}
	}
	f.expire(a.vt, a.cfg.FragTimeout.Nanoseconds())
	k := fragKey{src: d.Src, dst: d.Dst, id: d.FragID, proto: d.Proto, ver: d.IPVer}
	if d.NVLAN > 0 {
		k.vlan = d.VLANs[0]
	}
	g := f.m[k]
	if g == nil {
		for f.n >= a.cfg.FragMaxDatagrams {
			f.drop(f.head, FragLimit)
		}
		g = &fragDgram{key: k, born: a.vt, total: -1}
		f.m[k] = g
		f.push(g)
	}
	start, end, more, ok := fragSpan(p.Data, d)
	off, n := int(d.FragOff), end-start
	if g.dead != 0 {
		if g.dead > 0 {
			f.drops[g.dead-1]++
			return true
		}
		if !ok {
			return true
		}
		// Not analysed: let it go once all of it went by.
		g.got += n
		if !more {
			g.total = off + n
		}
		if g.total >= 0 && g.got >= g.total {
			f.unlink(g)
		}
		return true
	}
	switch {
	case !ok || n <= 0 || more && n%8 != 0 || off+n > fragMaxLen || len(g.pieces) >= fragMaxPieces,
		g.total >= 0 && (off+n > g.total || !more && off+n != g.total),
		!more && len(g.pieces) > 0 && g.pieces[len(g.pieces)-1].end > off+n:
		f.kill(g, 1, FragMalformed)
		return true
	case end > len(p.Data):
		// Cut by the snaplen: the datagram cannot be whole. A first
		// fragment is analysed as a short datagram, as without
		// reassembly (and as tshark dissects one it cannot reassemble).
		if off == 0 {
			f.kill(g, 0, FragTruncated)
			return false
		}
		f.kill(g, 1, FragTruncated)
		return true
	}
	g.refs = append(g.refs, ref)
	g.wire += uint64(p.WireLen)
	switch f.insert(g, p.Data[start:end], off) {
	case fragDup:
		return true
	case fragConflict:
		f.kill(g, 0, FragOverlap)
		return true
	}
	if !more {
		g.total = off + n
	}
	if off == 0 {
		g.first = true
		if d.Flags&packet.FlagUDP == 0 {
			// The UDP header does not fit in the first fragment: a
			// tiny-fragment attack (RFC 1858), or no UDP at all.
			f.kill(g, 0, FragMalformed)
			return true
		}
		c := a.connFor(p, d, e, dir, false)
		if c == nil {
			f.ignore(g)
			if g.total >= 0 && g.got >= g.total {
				f.unlink(g) // all of it went by
			}
			return true
		}
		g.conn, g.side = c.ref(), Server
		if dir == c.cliDir {
			g.side = Client
		}
	}
	// The oldest others go first; g alone fits (Validate).
	for x := f.head; x != nil && f.bytes > a.cfg.FragMaxBytes; {
		next := x.next
		if x != g {
			f.drop(x, FragLimit)
		}
		x = next
	}
	if g.first && g.total >= 0 && g.got == g.total {
		f.unlink(g)
		f.done++
		a.defragged(g, p.TS)
		f.release(g)
	}
	return true
}

// defragged gives a whole datagram to its connection, as Packet gives one
// unfragmented: at ts, the time of the fragment that completed it.
func (a *Analyzer) defragged(g *fragDgram, ts int64) {
	c := a.connOf(g.conn)
	if c == nil {
		// Its connection ended between its first and last fragment.
		a.frag.drops[FragIncomplete] += uint64(len(g.refs))
		return
	}
	n := g.total
	switch u := int(binary.BigEndian.Uint16(g.buf[4:])); {
	case u == 0: // jumbogram or offload: the IP length rules
	case u < 8 || u > n:
		a.frag.drops[FragMalformed] += uint64(len(g.refs))
		return
	default:
		n = u
	}
	s, k := g.side, uint64(len(g.refs))
	c.pkts += k
	c.lastTS, c.lastVT = ts, a.vt
	c.npk[s] += k
	c.nby[s] += g.wire
	if b := g.buf[8:n]; c.parser != nil && len(b) > 0 {
		a.deliverFrags(c, s, b, ts, c.pkts, g.refs)
	}
}

// deliverFrags is deliver for a reassembled datagram: its messages list
// every fragment's ref (refs, in arrival order), not only the current
// packet's.
func (a *Analyzer) deliverFrags(c *conn, s Side, b []byte, ts int64, pkt uint64, refs []PktRef) {
	if c.parser == nil && !c.detected {
		a.detect(c, s, b)
	}
	if c.parser == nil {
		c.s[s].off += uint64(len(b))
		return
	}
	for _, m := range c.open[s] {
		for _, r := range refs {
			a.addRef(m, r)
		}
	}
	a.setCur(c, s, ts, pkt, refs[0])
	c.parser.Data(s, b, &fragStream{a, refs[1:]})
	ss := &c.s[s]
	ss.off += uint64(len(b))
	ss.lastTS, ss.lastPkt = ts, pkt
	a.checkStopped(c)
}

// fragStream is the Stream a parser sees for a reassembled datagram: the
// Analyzer's, except that a message begun in it lists every fragment's
// ref (Begin gives it the first one's).
type fragStream struct {
	*Analyzer
	more []PktRef
}

// Begin implements Stream.
func (fs *fragStream) Begin(s Side, off int) *Message {
	m := fs.Analyzer.Begin(s, off)
	if fs.cur != nil {
		for _, r := range fs.more {
			fs.addRef(m, r)
		}
	}
	return m
}

var _ Stream = (*fragStream)(nil)

const (
	fragNew = iota
	fragDup
	fragConflict
)

// insert places the bytes b at off in g, keeping its pieces sorted and
// disjoint: a new range, an exact duplicate, or a conflicting overlap.
func (f *defragger) insert(g *fragDgram, b []byte, off int) int {
	end := off + len(b)
	i := 0
	for i < len(g.pieces) && g.pieces[i].end <= off {
		i++
	}
	if i < len(g.pieces) && g.pieces[i].off < end {
		q := g.pieces[i]
		if q.off == off && q.end == end && string(g.buf[off:end]) == string(b) {
			return fragDup
		}
		return fragConflict
	}
	if end > len(g.buf) {
		size := end
		if g.total > size {
			size = g.total
		}
		f.bytes -= cap(g.buf)
		nb := make([]byte, size)
		copy(nb, g.buf)
		g.buf = nb
		f.bytes += cap(g.buf)
	}
	copy(g.buf[off:], b)
	g.pieces = append(g.pieces, fragPiece{})
	copy(g.pieces[i+1:], g.pieces[i:])
	g.pieces[i] = fragPiece{off, end}
	g.got += len(b)
	return fragNew
}

// kill drops g for why: the fragments it holds, extra more (the current
// one, when it is not among them), and every later one are counted.
func (f *defragger) kill(g *fragDgram, extra int, why int) {
	f.drops[why] += uint64(len(g.refs) + extra)
	f.release(g)
	g.dead = int8(why + 1)
}

// ignore lets g go without counting: its flow is not analysed. Its later
// fragments are let go too.
func (f *defragger) ignore(g *fragDgram) {
	f.release(g)
	g.dead = fragIgnore
}

func (f *defragger) release(g *fragDgram) {
	f.bytes -= cap(g.buf)
	g.buf, g.pieces, g.refs = nil, nil, nil
}

// drop removes g, counting its fragments under why unless it was already
// dead.
func (f *defragger) drop(g *fragDgram, why int) {
	if g.dead == 0 {
		f.drops[why] += uint64(len(g.refs))
	}
	f.release(g)
	f.unlink(g)
}

// expire drops the datagrams older than timeout (step-free ns) at now.
func (f *defragger) expire(now, timeout int64) {
	for f.head != nil && now-f.head.born > timeout {
		f.drop(f.head, FragIncomplete)
	}
}

func (f *defragger) push(g *fragDgram) {
	g.prev = f.tail
	if f.tail != nil {
		f.tail.next = g
	} else {
		f.head = g
	}
	f.tail = g
	f.n++
}

func (f *defragger) unlink(g *fragDgram) {
	if g.prev != nil {
		g.prev.next = g.next
	} else {
		f.head = g.next
	}
	if g.next != nil {
		g.next.prev = g.prev
	} else {
		f.tail = g.prev
	}
	g.prev, g.next = nil, nil
	f.n--
	delete(f.m, g.key)
}

// flush drops every datagram still held (the end of a run).
func (f *defragger) flush() {
	for f.head != nil {
		f.drop(f.head, FragIncomplete)
	}
}

// fragSpan finds the fragment's data in data: [start, end) where end is
// where the datagram ends on the wire (it may lie beyond what was
// captured), and whether more fragments follow. ok is false when the
// headers do not say.
func fragSpan(data []byte, d *packet.Decoded) (start, end int, more, ok bool) {
	l3 := int(d.L3Off)
	if l3 < 0 {
		return 0, 0, false, false
	}
	if d.IPVer == 4 {
		if len(data) < l3+20 {
			return 0, 0, false, false
		}
		h := data[l3:]
		start = l3 + int(h[0]&0x0f)*4
		end = l3 + int(binary.BigEndian.Uint16(h[2:]))
		more = h[6]&0x20 != 0
		return start, end, more, end >= start
	}
	if len(data) < l3+40 {
		return 0, 0, false, false
	}
	end = l3 + 40 + int(binary.BigEndian.Uint16(data[l3+4:]))
	if d.Flags&packet.FlagFirstFrag == 0 {
		// The decoder stops right after a non-first fragment's header.
		start = int(d.PayloadOff)
		if start < l3+48 || start > len(data) {
			return 0, 0, false, false
		}
		return start, end, data[start-5]&1 != 0, end >= start
	}
	// A first fragment: walk the extension headers up to the fragment
	// header (the decoder walked on, to the UDP header).
	nh, p := data[l3+6], l3+40
	for {
		if p+8 > len(data) || p+8 > end {
			return 0, 0, false, false
		}
		switch nh {
		case protoIPv6Frag:
			return p + 8, end, true, end >= p+8
		case 0, 43, 60: // hop-by-hop, routing, destination options
			nh, p = data[p], p+(int(data[p+1])+1)*8
		case 51: // AH
			nh, p = data[p], p+(int(data[p+1])+2)*4
		default:
			return 0, 0, false, false
		}
	}
}

const (
	protoUDP      = 17
	protoIPv6Frag = 44
)

// publishFrag adds the batched counters to st.
func (a *Analyzer) publishFrag(st *Stats) {
	f := &a.frag
	if f.done != 0 {
		st.Defragged.Add(f.done)
		f.done = 0
	}
	for i, v := range f.drops {
		if v != 0 {
			st.FragDropped[i].Add(v)
			f.drops[i] = 0
		}
	}
	st.FragHeld.Store(int64(f.bytes))
}
