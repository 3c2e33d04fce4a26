package analytics

import (
	"encoding/binary"
	"time"

	"tapvault/packet"
)

// TCP flag bits (packet.Decoded.TCPFlags).
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// maxTCPWindow is the largest receive window TCP can advertise (65535
// scaled by 2^14, RFC 7323): no sender has more bytes than that beyond what
// its peer acknowledged, so a hole larger than it is not lost data but a
// sequence number from elsewhere (another connection's challenge ACK, a
// stray segment).
const maxTCPWindow = 65535 << 14

// connClosed in FlowEntry.App marks a flow whose connection ended (FIN
// handshake done or RST): its late packets are ignored until a new SYN.
const connClosed = ^uint32(0)

// Sequence-space comparisons (RFC 1982 serial arithmetic).
func seqLT(a, b uint32) bool { return int32(a-b) < 0 }
func seqLE(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool { return int32(a-b) > 0 }

// conn is one analysed connection (or UDP flow).
//
// What every packet reads or writes comes first, in the first 7 of its 10
// cache lines (a conn is 640 bytes, and the slab's chunks are page
// aligned); what records, handshakes and rare events use comes after. On
// IMIX (10k flows, 6 MiB of conns) the first touch of a conn was 7 % of the
// samples (docs/PERFORMANCE.md, issue 14 section 3): the fewer lines a
// packet touches, the fewer such misses.
type conn struct {
	// Hot: every packet.
	idx          uint32 // slot; 0 = free
	gen          uint8  // the slot's generation (FlowEntry.App's high byte)
	refs         uint8  // flow entries using it: 2 for a VLAN-asymmetric pair
	paired       bool   // in Analyzer.pairs
	tcp          bool
	cliDir       uint8 // the FlowKey direction the client sends in
	detected     bool  // content detection was tried
	attn         bool  // on the Analyzer's timer list
	hsInflated   bool  // a response came sooner than the handshake's round trip
	contradicted bool  // an ACK came faster than the handshake's round trip (NearNAT)
	flags        uint32

	parser Parser

	pkts   uint64 // packets seen (numbers packets for the piggyback test)
	npk    [2]uint64
	nby    [2]uint64
	lastTS int64
	lastVT int64 // step-free time of the last packet (idleness)
	ackTS  int64 // the handshake's last ACK (with synTS, synackTS below)

	s    [2]sideState
	open [2][]*Message // begun, not ended

	pendAck []*Message // client messages ended, no server ACK of them yet
	waitAck []pendEx   // exchanges waiting for the client's ACK of the response

	// Cold: opening, handshake, records and rare events.
	dec     *Decoder
	key     packet.FlowKey
	firstTS int64

	synTS, synackTS   int64
	rttSrv, rttCli    int64 // -1 unknown (see baseline)
	minAck, minCliAck int64
	minWait           int64 // the least response wait seen (request's last packet to the response's first), -1: none
	dsackTS           int64 // the client's last ACK with a D-SACK: it got some of the server's bytes twice

	retrans, ooo, dupack, zerowin, rst uint32
	rtx                                [2]uint32 // retransmissions by side (retrans's)
	rtxTS                              [2]int64  // the last one's time
	zw                                 [2]uint32 // zero windows advertised by side
	gapBytes                           uint64

	// q0 is the first array of open (one message a side) and pendAck (two)
	// of a slot's first connection (open): a slot keeps its queues for its
	// next connections, and those of a new slot cost 2-3 small allocations
	// (DNS over UDP opens a slot per query).
	q0 [4]*Message

	_ [8]byte // to 640 bytes, so that every conn starts a cache line (TestConnLayout)
}

type pendEx struct {
	req, resp *Message
	at        int64 // the response's end, step-free (Analyzer.stepFree)
}

// rttSrvHS and rttCliHS are the handshake's two legs at the capture point:
// SYN -> SYN/ACK (towards the server and back) and SYN/ACK -> ACK (towards
// the client and back); -1 when not seen.
func (c *conn) rttSrvHS() int64 {
	if c.synTS != 0 && c.synackTS >= c.synTS {
		return c.synackTS - c.synTS
	}
	return -1
}

func (c *conn) rttCliHS() int64 {
	if c.synackTS != 0 && c.ackTS >= c.synackTS {
		return c.ackTS - c.synackTS
	}
	return -1
}

// baseline is the server-side round trip an ACK delay is judged against:
// the least of the handshake's and the prompt ACK delays seen on the
// connection. Queues, scheduling and a neighbour lookup on the first packets
// only ever add to a round-trip sample, so the least one is the path's (the
// min-RTT filter of Linux's tcp_min_rtt and of BBR). A handshake a response
// beat (hsInflated) overstated the round trip; the least ACK delay is below
// it by then. A response's wait (request's last packet to the response's
// first) is the round trip plus the server's time: a sample too.
func (c *conn) baseline() int64 { return leastRTT(leastRTT(c.rttSrvHS(), c.minAck), c.minWait) }

// cliBaseline is baseline for the client's leg: the handshake's SYN/ACK ->
// ACK and the client's prompt ACKs of responses.
func (c *conn) cliBaseline() int64 { return leastRTT(c.rttCliHS(), c.minCliAck) }

// leastRTT is the baseline from a handshake leg hs and a later sample s
// (the least ACK delay or response wait), each -1 (or, for s, 0) when
// unknown: s when it is below hs by more than max(1 ms, 10 %), else hs. A
// least-of-many sample sits at the low tail of the path's jitter (30 ms
// each way with jitter gave 58.3 ms against 60 ms p50, and the server part
// 1.7 ms too much), so it replaces the handshake only when the handshake
// was held up (9-17 ms handshakes on a 2 ms path, ground truth), not for
// jitter.
func leastRTT(hs, s int64) int64 {
	switch {
	case s <= 0:
		return hs
	case hs < 0:
		return s
	case s < hs-max(int64(time.Millisecond), hs/10):
		return s
	}
	return hs
}

// sideState is one direction of a TCP connection: 8-byte fields first,
// so that it packs into 104 bytes (conn's hot lines).
type sideState struct {
	off       uint64 // stream bytes delivered to the parser (or skipped as a gap)
	maxEndTS  int64  // when maxEnd last advanced (step-free: Analyzer.vt)
	lastAckTS int64  // step-free (Analyzer.vt)
	dupAcks   int

	ooo      []seg // out-of-order segments, by sequence number
	oooBytes int

	lastTS  int64 // packet time of the last delivery
	lastPkt uint64

	base    uint32 // sequence number of stream offset 0
	maxEnd  uint32 // highest sequence end seen (Wireshark's nextseq)
	finSeq  uint32
	lastAck uint32
	lastWin uint16

	init     bool // base is known
	fin      bool
	finAcked bool // the other side ACKed this side's FIN
	ackSeen  bool
	ackIn    bool // an ACK of this side's fell within what the other side was seen to send
}

type seg struct {
	seq  uint32
	data []byte // owned copy
	ts   int64  // packet time
	vt   int64  // step-free packet time (Analyzer.vt): the hole timer's
	ref  PktRef
}

func (s *sideState) next() uint32     { return s.base + uint32(s.off) }
func (s *sideState) buffered() bool   { return len(s.ooo) > 0 }
func (s *sideState) setBase(q uint32) { s.init, s.base, s.off, s.maxEnd = true, q, 0, q }

// oooThreshold is how soon after the highest segment a lower one counts as
// out of order rather than retransmitted: the handshake's round trip
// (SYN -> ACK), or 3 ms, as Wireshark does.
func (c *conn) oooThreshold() int64 {
	if c.synTS != 0 && c.ackTS > c.synTS {
		return c.ackTS - c.synTS
	}
	return 3_000_000
}

// tcpPacket is the TCP part of Packet: handshake, sequence analysis, ACK
// timing, reassembly. It reports whether the connection ended.
func (a *Analyzer) tcpPacket(c *conn, s Side, d *packet.Decoded, opts, payload []byte, segLen int, ts int64, ref PktRef) bool {
	fl := d.TCPFlags
	if s == Client && fl&tcpACK != 0 && len(opts) >= 10 && dsack(opts, d.Ack) {
		c.dsackTS = ts
	}
	ss, os := &c.s[s], &c.s[s.Other()]
	pkt := c.pkts
	// Times compared between packets are step-free (a clock stepped back
	// mid-connection would make them negative); ts, the packet's own
	// time, is what records carry.
	vt := a.vt

	// Handshake.
	if fl&tcpSYN != 0 {
		if fl&tcpACK == 0 {
			// A repeated SYN restarts the clock: the handshake's legs and
			// the out-of-order threshold are timed from the SYN that was
			// answered, as Wireshark's initial RTT is.
			if c.synackTS == 0 {
				c.synTS = ts
			}
		} else if c.synackTS == 0 || c.ackTS == 0 {
			c.synackTS = ts
		}
		if ss.init && ss.base == d.Seq+1 {
			c.retrans++ // a repeated SYN
			a.retx++
		} else if !ss.init || ss.off == 0 {
			ss.setBase(d.Seq + 1)
			ss.maxEndTS = vt
		}
	} else if !ss.init {
		// Mid-stream: this side's stream starts here, unless the other
		// side already ACKed bytes of it the capture never saw; then it
		// starts at that ACK, and those bytes are a hole.
		base := d.Seq
		if os.ackSeen && seqLT(os.lastAck, d.Seq) && d.Seq-os.lastAck < 1<<30 {
			base = os.lastAck
		}
		ss.setBase(base)
		ss.maxEnd, ss.maxEndTS = d.Seq, vt
		if c.synTS == 0 {
			c.flags |= FlagMidstream
		}
	}
	if fl&tcpACK != 0 && s == Client && c.ackTS == 0 && c.synackTS != 0 && os.init && d.Ack == os.base {
		c.ackTS = ts
	}
	if fl&tcpRST != 0 {
		c.rst++
	}
	if d.Window == 0 && fl&(tcpSYN|tcpFIN|tcpRST) == 0 {
		c.zerowin++
		c.zw[s]++
	}

	// Sequence analysis, as Wireshark's tcp.analysis flags.
	end := d.Seq + uint32(segLen)
	if fl&tcpFIN != 0 {
		end++
	}
	if (segLen > 0 || fl&tcpFIN != 0) && fl&tcpSYN == 0 {
		// Wireshark's order: keep-alive, spurious (the other side ACKed
		// the data already), fast retransmission, out of order, then any
		// other segment below the highest seen is a retransmission.
		keepalive := segLen <= 1 && fl&tcpFIN == 0 && d.Seq == ss.maxEnd-1
		notAdv := seqLT(d.Seq, ss.maxEnd)
		if segLen > 1 && d.Seq == ss.maxEnd-1 {
			notAdv = false // new data after a zero-window probe's byte
		}
		if !keepalive {
			switch {
			case segLen > 0 && os.ackSeen && os.lastAck != 0 && seqLE(d.Seq+uint32(segLen), os.lastAck) && seqGT(os.lastAck, ss.base):
				c.retrans++ // spurious: already ACKed
				c.rtx[s]++
				c.rtxTS[s] = ts
				a.retx++
			case notAdv && os.dupAcks >= 2 && os.lastAck == d.Seq && vt-os.lastAckTS < 20_000_000:
				c.retrans++ // fast retransmission
				c.rtx[s]++
				c.rtxTS[s] = ts
				a.retx++
			case notAdv && vt-ss.maxEndTS < c.oooThreshold() && ss.maxEnd != end:
				c.ooo++
				a.ooo++
			case notAdv:
				c.retrans++
				c.rtx[s]++
				c.rtxTS[s] = ts
				a.retx++
			}
		}
		if seqGT(end, ss.maxEnd) {
			ss.maxEnd, ss.maxEndTS = end, vt
		}
	}
	// Duplicate ACKs.
	if fl&tcpACK != 0 {
		if segLen == 0 && fl&(tcpSYN|tcpFIN|tcpRST) == 0 && ss.ackSeen && d.Window != 0 &&
			d.Window == ss.lastWin && d.Ack == ss.lastAck && d.Seq == ss.maxEnd {
			ss.dupAcks++
			c.dupack++
		} else if d.Ack != ss.lastAck {
			ss.dupAcks = 0
		}
		// As Wireshark's lastacktime: the time of the side's last packet
		// (the fast-retransmission test is "within 20 ms of it").
		ss.lastAckTS = vt
		ss.ackSeen, ss.lastAck, ss.lastWin = true, d.Ack, d.Window
		if os.init && seqLE(os.base, d.Ack) && seqLE(d.Ack, os.maxEnd) {
			ss.ackIn = true
		}
	}

	decoding := c.parser != nil || !c.detected
	// The other side's ACK: timing, and data it acknowledges that the
	// capture never saw (a hole to declare).
	if fl&tcpACK != 0 && os.init {
		a.acked(c, s, d.Ack, ts, pkt, ref)
		if decoding && seqGT(d.Ack, os.next()) {
			upto := d.Ack
			if os.fin && seqLT(os.finSeq, upto) {
				upto = os.finSeq
			}
			if len(os.ooo) > 0 && seqLT(os.ooo[0].seq, upto) {
				upto = os.ooo[0].seq
			}
			// Bytes past the highest sequence number the other side was
			// seen to send are known only from this ACK: they count as
			// lost only when this side's ACKs are grounded (one fell
			// within what was seen: a SYN/ACK of the SYN, an ACK of
			// data) and within the largest window. A challenge ACK
			// answering a SYN with another connection's sequence number
			// is neither.
			if seqGT(upto, os.maxEnd) && (!ss.ackIn || upto-os.maxEnd > maxTCPWindow) {
				upto = os.maxEnd
			}
			if seqGT(upto, os.next()) {
				a.fillHole(c, s.Other(), upto, ts, pkt)
			}
		}
	}
	if decoding && segLen > 0 && fl&tcpSYN == 0 {
		a.reassemble(c, s, d.Seq, payload, segLen, ts, pkt, ref)
	}
	if fl&tcpFIN != 0 && !ss.fin {
		ss.fin, ss.finSeq = true, d.Seq+uint32(segLen)
	}
	if fl&tcpACK != 0 && os.fin && seqGT(d.Ack, os.finSeq) {
		os.finAcked = true
	}
	// The end: a RST, or both FINs, each ACKed by the other side.
	done := fl&tcpRST != 0 || ss.finAcked && os.finAcked
	return done
}

// dsack reports whether TCP options opts carry a D-SACK (RFC 2883): a
// first SACK block at or below the cumulative ACK ack, bytes the receiver
// got twice. Only the first block is looked at; a duplicate above the
// cumulative ACK (a first block inside the second) is not reported.
func dsack(opts []byte, ack uint32) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0: // end of options
			return false
		case 1: // NOP
			i++
			continue
		}
		if i+1 >= len(opts) {
			return false
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return false
		}
		if opts[i] == 5 && l >= 10 { // SACK
			return seqLE(binary.BigEndian.Uint32(opts[i+6:]), ack)
		}
		i += l
	}
	return false
}

// acked handles an ACK number from side s: it times the other side's
// messages it covers.
func (a *Analyzer) acked(c *conn, s Side, ack uint32, ts int64, pkt uint64, ref PktRef) {
	if s == Server {
		for len(c.pendAck) > 0 && seqLE(c.pendAck[0].endSeq, ack) {
			m := c.pendAck[0]
			m.ackTS, m.ackPkt, m.ackRef = ts, pkt, ref
			c.pendAck = popFront(c.pendAck)
		}
		return
	}
	for len(c.waitAck) > 0 && seqLE(c.waitAck[0].resp.endSeq, ack) {
		x := c.waitAck[0]
		c.waitAck = popFront(c.waitAck)
		a.emitExchange(c, x.req, x.resp, ts, ref)
	}
}

// reassemble delivers a segment's payload in stream order, buffering it if
// it is ahead of the stream.
func (a *Analyzer) reassemble(c *conn, s Side, seq uint32, payload []byte, segLen int, ts int64, pkt uint64, ref PktRef) {
	ss := &c.s[s]
	end := seq + uint32(segLen)
	next := ss.next()
	if !seqGT(end, next) {
		return // all of it delivered already: a retransmission
	}
	if seqGT(seq, next) && seq-next > maxTCPWindow {
		return // farther ahead than any window: not this stream's bytes
	}
	if seqLT(seq, next) { // overlaps what was delivered: keep the new part
		trim := int(next - seq)
		if trim >= len(payload) {
			payload = nil
		} else {
			payload = payload[trim:]
		}
		segLen -= trim
		seq = next
	}
	if seq == next {
		a.deliverSeg(c, s, payload, segLen, ts, pkt, ref)
		a.drain(c, s, ts, pkt)
		return
	}
	// Ahead of the stream: keep a copy until the hole fills.
	if ss.oooBytes+segLen > a.cfg.MaxConnBuffer || a.buf+segLen > a.cfg.MaxTotalBuffer {
		a.bfull++
		a.insert(ss, seq, payload, ts, ref, segLen)
		a.fillHole(c, s, ss.ooo[0].seq, ts, pkt)
		return
	}
	a.insert(ss, seq, payload, ts, ref, segLen)
	a.wantAttn(c, a.vt)
}

// insert adds a segment to the out-of-order list, in sequence order. A cut
// segment (snaplen) is kept as what was captured; the rest shows as a hole.
func (a *Analyzer) insert(ss *sideState, seq uint32, payload []byte, ts int64, ref PktRef, segLen int) {
	_ = segLen
	sg := seg{seq: seq, data: append([]byte(nil), payload...), ts: ts, vt: a.vt, ref: ref}
	i := len(ss.ooo)
	for i > 0 && seqLT(seq, ss.ooo[i-1].seq) {
		i--
	}
	ss.ooo = append(ss.ooo, seg{})
	copy(ss.ooo[i+1:], ss.ooo[i:])
	ss.ooo[i] = sg
	ss.oooBytes += len(sg.data)
	a.buf += len(sg.data)
}

// deliverSeg delivers an in-order segment; the part a snaplen cut (segLen
// beyond the captured payload) becomes a hole.
func (a *Analyzer) deliverSeg(c *conn, s Side, payload []byte, segLen int, ts int64, pkt uint64, ref PktRef) {
	ss := &c.s[s]
	if len(payload) > 0 {
		a.deliver(c, s, payload, ts, pkt, ref)
	}
	if segLen > len(payload) {
		a.gap(c, s, segLen-len(payload))
	}
	_ = ss
}

// drain delivers buffered segments that the stream has reached.
func (a *Analyzer) drain(c *conn, s Side, ts int64, pkt uint64) {
	ss := &c.s[s]
	for len(ss.ooo) > 0 && c.idx != 0 {
		sg := ss.ooo[0]
		next := ss.next()
		if seqGT(sg.seq, next) {
			return
		}
		ss.ooo = ss.ooo[1:]
		ss.oooBytes -= len(sg.data)
		a.buf -= len(sg.data)
		end := sg.seq + uint32(len(sg.data))
		if !seqGT(end, next) {
			continue
		}
		b := sg.data[int(next-sg.seq):]
		// The bytes became available now: the packet that filled the hole
		// completes them, so they carry its time; the ref is the packet
		// that carried them.
		a.deliver(c, s, b, max(ts, sg.ts), pkt, sg.ref)
	}
}

// fillHole declares the bytes from the stream's position up to upto lost,
// then delivers what was buffered after them.
func (a *Analyzer) fillHole(c *conn, s Side, upto uint32, ts int64, pkt uint64) {
	ss := &c.s[s]
	if n := int64(upto - ss.next()); seqGT(upto, ss.next()) && n > 0 {
		a.gap(c, s, int(n))
	}
	a.drain(c, s, ts, pkt)
}

// gap tells the parser n bytes of side s are lost.
func (a *Analyzer) gap(c *conn, s Side, n int) {
	ss := &c.s[s]
	c.gapBytes += uint64(n)
	a.gapB += uint64(n)
	a.gaps++
	for _, m := range c.open[s] {
		m.Gap = true
	}
	if c.parser != nil {
		a.setCur(c, s, ss.lastTS, ss.lastPkt, PktRef{})
		c.parser.Gap(s, n, a)
	}
	ss.off += uint64(n)
	if c.parser != nil {
		a.checkStopped(c)
	}
}
