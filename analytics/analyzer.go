package analytics

import (
	"math"
	"net/netip"
	"sync/atomic"

	"tapvault/dataplane"
	"tapvault/packet"
)

// Stats are one Analyzer's counters. The worker's goroutine writes them
// (once per Tick for the batched ones); any goroutine may read them.
type Stats struct {
	_ [64]byte

	Conns       atomic.Int64  // connections analysed now
	ConnsTotal  atomic.Uint64 // connections ever analysed
	ConnsFull   atomic.Uint64 // packets of connections not analysed: MaxConns reached or flow table full
	Records     atomic.Uint64 // records emitted (exchanges and tcp connection records)
	RecordsDrop atomic.Uint64 // records the output refused (record queue full): counted, lost
	Exchanges   atomic.Uint64 // exchanges with a response
	Unanswered  atomic.Uint64 // requests without one
	GapBytes    atomic.Uint64 // stream bytes lost (not captured, or beyond the reassembly limits)
	Gaps        atomic.Uint64 // holes declared
	BufferFull  atomic.Uint64 // holes declared because a reassembly limit was reached
	Buffered    atomic.Int64  // out-of-order bytes held now
	Retrans     atomic.Uint64
	OutOfOrder  atomic.Uint64
	ParserStops atomic.Uint64 // reserved: parsers that gave up on a connection
	Parsers     atomic.Int64  // parsers (decoded connections) now
	ParsersFull atomic.Uint64 // connections left undecoded (timed only): MaxParsers reached

	_ [64]byte
}

// Emit receives each record the Analyzer produces. It must not block: it
// returns false when it cannot take the record (which is then counted as
// dropped). The record is the receiver's from then on.
type Emit func(*Record) bool

// Analyzer is the in-stream analytics of one worker: it implements
// workers.Analyzer. Not safe for concurrent use.
type Analyzer struct {
	cfg   Config
	out   Emit
	dec   []*Decoder // enabled decoders
	tcpBy map[uint16]*Decoder
	udpBy map[uint16]*Decoder

	conns connSlab // slot 0 unused: FlowEntry.App == 0 means none
	free  []uint32 // free slots
	live  int

	attn   []uint32                  // conns with something waiting on a timer
	pairs  map[packet.FlowKey]uint32 // VLAN-free key -> one-sided TCP conn (see join)
	msgs   []*Message                // free messages, reused with their slices
	reload atomic.Pointer[Config]    // a new configuration, applied by the next Tick
	clk    packet.Clock              // packet time without its steps back: the timers'
	vt     int64                     // the current packet's time in clk
	rawTS  int64                     // the latest packet's own time
	due    int64                     // no timer is due before this step-free time
	buf    int                       // out-of-order bytes buffered, all conns
	nparse int                       // conns with a parser (bounded by MaxParsers)
	pfull  uint64
	stats  Stats
	retx   uint64 // batched counters, published by Tick
	ooo    uint64
	gapB   uint64
	gaps   uint64
	bfull  uint64
	nfull  uint64
	recs   uint64
	drops  uint64
	exch   uint64
	unans  uint64
	ctotal uint64

	// The Stream context of the parser call in progress.
	cur     *conn
	curSide Side
	curTS   int64
	curPkt  uint64
	curRef  PktRef
	curOff  uint64 // stream offset of the current chunk's first byte
}

var _ Stream = (*Analyzer)(nil)

// NewAnalyzer returns an Analyzer that sends its records to out. cfg must
// be valid (Config.Validate).
func NewAnalyzer(cfg Config, out Emit) *Analyzer {
	a := &Analyzer{out: out, due: math.MaxInt64}
	a.configure(cfg)
	a.conns.add() // slot 0
	return a
}

// Reload replaces the configuration (decoders, port map, limits) of a
// running analyzer: safe from any goroutine, applied by the worker at its
// next Tick. Connections already being decoded keep their decoder; new
// ones follow the new configuration. cfg must be valid.
func (a *Analyzer) Reload(cfg Config) { a.reload.Store(&cfg) }

// configure applies cfg (from the worker's goroutine).
func (a *Analyzer) configure(cfg Config) {
	a.cfg = cfg
	a.dec = a.dec[:0]
	a.tcpBy, a.udpBy = map[uint16]*Decoder{}, map[uint16]*Decoder{}
	for _, d := range registry {
		if len(cfg.Enabled) > 0 && !contains(cfg.Enabled, d.Name) {
			continue
		}
		a.dec = append(a.dec, d)
		for _, p := range d.Ports {
			if d.TCP {
				a.tcpBy[p] = d
			}
			if d.UDP && d.UDPPorts == nil {
				a.udpBy[p] = d
			}
		}
		if d.UDP {
			for _, p := range d.UDPPorts {
				a.udpBy[p] = d
			}
		}
	}
	for p, n := range cfg.PortMap {
		if n == "" {
			delete(a.tcpBy, p)
			delete(a.udpBy, p)
			continue
		}
		d, err := Lookup(n)
		if err != nil {
			continue // Validate reports it
		}
		if d.TCP {
			a.tcpBy[p] = d
		}
		if d.UDP {
			a.udpBy[p] = d
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Stats returns the live counters.
func (a *Analyzer) Stats() *Stats { return &a.stats }

// Packet implements workers.Analyzer.
func (a *Analyzer) Packet(p *dataplane.Packet, d *packet.Decoded, e *packet.Flow, dir uint8, ref PktRef) {
	a.vt, a.rawTS = a.clk.At(p.TS), p.TS
	if a.vt > a.due {
		a.runTimers()
	}
	tcp := d.Flags&packet.FlagTCP != 0
	udp := d.Flags&packet.FlagUDP != 0
	if (!tcp && !udp) || d.Flags&packet.FlagFragment != 0 && d.Flags&packet.FlagFirstFrag == 0 {
		return
	}
	if e == nil {
		a.nfull++
		return
	}
	syn := tcp && d.TCPFlags&(tcpSYN|tcpACK) == tcpSYN
	if e.App == connClosed {
		if !syn {
			return // a late packet of a connection that ended
		}
		e.App = 0
	}
	var c *conn
	if e.App != 0 {
		c = a.connOf(e.App)
		if c == nil {
			// Its connection ended through the other direction's flow
			// entry (a VLAN-asymmetric pair): like connClosed.
			if !syn {
				e.App = connClosed
				return
			}
			e.App = 0
		}
	}
	if c != nil && c.refs == 1 && a.vt-c.lastVT > idleConn {
		// Idle longer than the flow table's eviction: it ended, whether or
		// not the table's clock hand has reached its flow yet (which
		// depends on how often the worker ticks), so that a reanalysis
		// ends it alike. A VLAN-asymmetric pair (refs 2) is left to the
		// table.
		a.closeConn(c, "idle")
		e.App = 0
		c = nil
	}
	if c != nil {
		if syn && c.s[Client].init && c.s[Client].base != d.Seq+1 && (c.npk[Client] > 1 || c.npk[Server] > 0) {
			// A new connection on the same ports.
			a.closeConn(c, "reused")
			e.App = 0
			c = nil
		}
	}
	if c == nil {
		if tcp {
			c = a.join(e, d, dir)
		}
		if c == nil {
			c = a.open(e, d, dir, tcp)
		}
		if c == nil {
			return
		}
		c.firstTS = p.TS
	}
	var payload []byte
	if d.PayloadOff >= 0 && d.PayloadLen > 0 && int(d.PayloadOff)+int(d.PayloadLen) <= len(p.Data) {
		payload = p.Data[d.PayloadOff : d.PayloadOff+d.PayloadLen]
	}
	s := Server
	if dir == c.cliDir {
		s = Client
	}
	c.pkts++
	c.lastTS, c.lastVT = p.TS, a.vt
	if c.paired && c.npk[s] == 0 && c.npk[s.Other()] > 0 {
		a.unpair(c) // both directions seen on one flow: nothing to join
	}
	c.npk[s]++
	c.nby[s] += uint64(p.WireLen)
	if tcp {
		// A snaplen cut inside the payload: the segment is longer than
		// what was captured, and the rest is a hole.
		segLen := len(payload)
		if cut := int(p.WireLen) - len(p.Data); cut > 0 && d.PayloadOff >= 0 {
			segLen += cut
		}
		if a.tcpPacket(c, s, d, payload, segLen, p.TS, ref) {
			how := "fin"
			if d.TCPFlags&tcpRST != 0 {
				how = "rst"
			}
			a.closeConn(c, how)
			e.App = connClosed
		}
	} else if c.parser != nil && len(payload) > 0 {
		a.deliver(c, s, payload, p.TS, c.pkts, ref)
	}
}

// open starts analysing the flow of e, or returns nil when it will not be.
func (a *Analyzer) open(e *packet.Flow, d *packet.Decoded, dir uint8, tcp bool) *conn {
	var dec *Decoder
	var srvDir uint8 = 2 // unknown
	by := a.udpBy
	if tcp {
		by = a.tcpBy
	}
	if x, ok := by[d.DstPort]; ok {
		dec, srvDir = x, 1-dir
	} else if x, ok := by[d.SrcPort]; ok {
		dec, srvDir = x, dir
	}
	if !tcp && dec == nil {
		return nil // UDP is analysed only for a decoder
	}
	if a.live >= a.cfg.MaxConns {
		a.nfull++
		return nil
	}
	var idx uint32
	if n := len(a.free); n > 0 {
		idx = a.free[n-1]
		a.free = a.free[:n-1]
	} else {
		idx = a.conns.add()
	}
	a.live++
	a.ctotal++
	c := a.conns.at(idx)
	*c = conn{idx: idx, gen: c.gen + 1, refs: 1, key: e.Key, tcp: tcp, dec: dec, rttSrv: -1, rttCli: -1}
	e.App = c.ref()
	if tcp {
		a.pair(c)
	}
	// Sides: the SYN's sender is the client; else the decoder's port is
	// the server; else the higher port is the client's.
	switch {
	case tcp && d.TCPFlags&0x12 == 0x02: // SYN without ACK
		c.cliDir = dir
	case tcp && d.TCPFlags&0x12 == 0x12: // SYN/ACK: the receiver is the client
		c.cliDir = 1 - dir
	default:
		// Without a handshake the sides come from the ports. For UDP that
		// is the normal way (the decoder's well-known port is the
		// server's), not a guess, unless neither port is a decoder's.
		if tcp || srvDir == 2 {
			c.flags |= FlagSidesGuessed
		}
		if tcp {
			c.flags |= FlagMidstream
		}
		switch {
		case srvDir < 2:
			c.cliDir = 1 - srvDir
		case d.SrcPort > d.DstPort:
			c.cliDir = dir
		default:
			c.cliDir = 1 - dir
		}
	}
	if dec != nil {
		a.startParser(c, dec)
	}
	return c
}

func (a *Analyzer) startParser(c *conn, dec *Decoder) {
	c.dec = dec
	if a.nparse >= a.cfg.MaxParsers {
		// The parsers' buffers are bounded per connection (MaxHeader,
		// MaxPending); this bounds them in total. The connection is
		// still timed (its tcp record), only not decoded.
		a.pfull++
		c.detected = true // nor by content
		return
	}
	a.nparse++
	c.parser = dec.New(&a.cfg)
	if !c.tcp {
		if u, ok := c.parser.(interface{ SetUDP() }); ok {
			u.SetUDP()
		}
	}
}

// detect runs content detection on the first payload of a connection that
// matched no decoder by port.
func (a *Analyzer) detect(c *conn, s Side, b []byte) {
	c.detected = true
	if !a.cfg.ContentDetect {
		return
	}
	for _, d := range a.dec {
		if d.Detect != nil && d.TCP == c.tcp && d.Detect(s, b) {
			a.startParser(c, d)
			return
		}
	}
}

// FlowEnd implements workers.Analyzer: the flow went idle.
func (a *Analyzer) FlowEnd(e *packet.Flow) {
	if e.App == 0 || e.App == connClosed {
		e.App = 0
		return
	}
	c := a.connOf(e.App)
	e.App = 0
	if c == nil {
		return // ended through the other direction's entry
	}
	if c.refs > 1 {
		c.refs-- // the other direction's entry still uses it
		return
	}
	a.closeConn(c, "idle")
}

// idleConn is how long a connection may be silent (step-free packet time)
// before it ends "idle": the flow table's eviction (packet.DefaultFlowIdle).
const idleConn = int64(packet.DefaultFlowIdle)

// Flush implements workers.Analyzer: end every connection ("idle" for one
// silent longer than idleConn, as the flow table would have evicted it).
func (a *Analyzer) Flush() {
	for i := uint32(1); i < a.conns.n; i++ {
		if c := a.conns.at(i); c.idx != 0 {
			how := "end"
			if a.clk.Now()-c.lastVT > idleConn {
				how = "idle"
			}
			a.closeConn(c, how)
		}
	}
	a.Tick(a.clk.Now())
}

// Tick implements workers.Analyzer: a new configuration, then counters.
// The timers do not run here but when a packet finds them due (Packet): the
// analyzer's step-free clock moves only with packets, and timers run at a
// packet whatever the worker's ticks, so a reanalysis, which ticks every 32
// packets, makes what the in-stream run made with its bursts.
func (a *Analyzer) Tick(now int64) {
	_ = now
	if c := a.reload.Swap(nil); c != nil {
		a.configure(*c)
	}
	a.publish()
}

// runTimers runs the timers of the connections waiting on one, before the
// current packet (a.vt): a packet later than a wait's end finds it over.
func (a *Analyzer) runTimers() {
	wait := int64(a.cfg.AckWait)
	due := int64(math.MaxInt64)
	keep := a.attn[:0]
	for _, i := range a.attn {
		c := a.conns.at(i)
		if c.idx != i || !c.attn {
			continue
		}
		a.timers(c)
		if c.attn = len(c.waitAck) > 0 || c.s[0].buffered() || c.s[1].buffered(); c.attn {
			keep = append(keep, i)
			if len(c.waitAck) > 0 {
				due = min(due, c.waitAck[0].at+wait)
			}
			for s := range c.s {
				if c.s[s].buffered() {
					due = min(due, c.s[s].ooo[0].vt+wait)
				}
			}
		}
	}
	a.attn, a.due = keep, due
}

func (a *Analyzer) publish() {
	st := &a.stats
	add := func(c *atomic.Uint64, v *uint64) {
		if *v != 0 {
			c.Add(*v)
			*v = 0
		}
	}
	add(&st.Retrans, &a.retx)
	add(&st.OutOfOrder, &a.ooo)
	add(&st.GapBytes, &a.gapB)
	add(&st.Gaps, &a.gaps)
	add(&st.BufferFull, &a.bfull)
	add(&st.ConnsFull, &a.nfull)
	add(&st.ParsersFull, &a.pfull)
	st.Parsers.Store(int64(a.nparse))
	add(&st.Records, &a.recs)
	add(&st.RecordsDrop, &a.drops)
	add(&st.Exchanges, &a.exch)
	add(&st.Unanswered, &a.unans)
	add(&st.ConnsTotal, &a.ctotal)
	st.Conns.Store(int64(a.live))
	st.Buffered.Store(int64(a.buf))
}

// wantAttn puts c on the timer list for a wait that began at at (step-free).
func (a *Analyzer) wantAttn(c *conn, at int64) {
	a.due = min(a.due, at+int64(a.cfg.AckWait))
	if !c.attn {
		c.attn = true
		a.attn = append(a.attn, c.idx)
	}
}

// timers emits exchanges that waited too long for the client's ACK and
// declares holes that waited too long to be filled. The waits are judged
// on the step-free clock, so a clock stepped back (or a file older than the
// one before it) neither ends them at once nor holds them for years; a
// hole declared here is filled at the latest packet's own time.
func (a *Analyzer) timers(c *conn) {
	wait := int64(a.cfg.AckWait)
	now := a.vt
	for len(c.waitAck) > 0 && now-c.waitAck[0].at > wait {
		x := c.waitAck[0]
		c.waitAck = popFront(c.waitAck)
		a.emitExchange(c, x.req, x.resp, 0)
	}
	for s := Client; s <= Server; s++ {
		ss := &c.s[s]
		if ss.buffered() && now-ss.ooo[0].vt > wait {
			a.fillHole(c, s, ss.ooo[0].seq, a.rawTS, c.pkts)
		}
	}
}

// stepFree returns the step-free time of ts, a time of the current
// packet's connection no later than the current packet: ts on the clock's
// current offset, but never after the current packet (ts may predate a
// step back).
func (a *Analyzer) stepFree(ts int64) int64 {
	return min(ts+a.clk.Offset(), a.vt)
}

// closeConn ends a connection: the parser's Close, pending exchanges, the
// tcp record, and the slot goes back.
func (a *Analyzer) closeConn(c *conn, how string) {
	if c.idx == 0 {
		return
	}
	if c.tcp {
		// Whatever is still buffered past a hole is delivered after it.
		for s := Client; s <= Server; s++ {
			if c.s[s].buffered() {
				a.fillHole(c, s, c.s[s].ooo[0].seq, c.lastTS, c.pkts)
			}
		}
	}
	if c.parser != nil {
		a.closeParser(c)
	}
	for _, x := range c.waitAck {
		a.emitExchange(c, x.req, x.resp, 0)
	}
	c.waitAck = nil
	if c.tcp {
		a.emitFlow(c, how)
	}
	for s := range c.s {
		a.buf -= c.s[s].oooBytes
	}
	if c.paired {
		a.unpair(c)
	}
	a.cur = nil
	a.live--
	a.free = append(a.free, c.idx)
	*c = conn{gen: c.gen} // the generation tells stale FlowEntry.App values apart
}

// emit hands r to the output.
func (a *Analyzer) emit(r *Record) {
	r.SetID()
	a.recs++
	if !a.out(r) {
		a.drops++
	}
}

// emitFlow emits the "tcp" record of a connection.
func (a *Analyzer) emitFlow(c *conn, how string) {
	r := &Record{Proto: "tcp", Transport: 6, Class: ClassFlow, Flags: c.flags}
	a.endpoints(c, r)
	r.ReqFirst, r.RespLast = c.firstTS, c.lastTS
	r.Network, r.ServerTime, r.Transfer, r.ClientNet, r.RTT = -1, -1, -1, -1, c.rttSrv
	r.ReqBytes, r.RespBytes = int64(c.nby[Client]), int64(c.nby[Server])
	r.ReqPkts, r.RespPkts = int32(c.npk[Client]), int32(c.npk[Server])
	f := make([]Field, 0, 12)
	if c.synTS != 0 {
		f = append(f, Field{Key: "syn_ns", Int: c.synTS, IsInt: true})
	}
	f = append(f,
		Field{Key: "hs_server_ns", Int: c.rttSrvHS(), IsInt: true},
		Field{Key: "hs_client_ns", Int: c.rttCliHS(), IsInt: true},
		Field{Key: "retrans", Int: int64(c.retrans), IsInt: true},
		Field{Key: "ooo", Int: int64(c.ooo), IsInt: true},
		Field{Key: "dupack", Int: int64(c.dupack), IsInt: true},
		Field{Key: "zerowin", Int: int64(c.zerowin), IsInt: true},
		Field{Key: "rst", Int: int64(c.rst), IsInt: true},
		Field{Key: "gap_bytes", Int: int64(c.gapBytes), IsInt: true},
		Field{Key: "close", Str: how},
	)
	if c.dec != nil {
		f = append(f, Field{Key: "app", Str: c.dec.Name})
	}
	r.Fields = f
	a.emit(r)
}

func (a *Analyzer) endpoints(c *conn, r *Record) {
	k := &c.key
	ca, cb := netip.AddrFrom16(k.A).Unmap(), netip.AddrFrom16(k.B).Unmap()
	if c.cliDir == packet.DirAB {
		r.Client, r.Server = netip.AddrPortFrom(ca, k.PortA), netip.AddrPortFrom(cb, k.PortB)
	} else {
		r.Client, r.Server = netip.AddrPortFrom(cb, k.PortB), netip.AddrPortFrom(ca, k.PortA)
	}
	r.VLAN = k.VLAN
}

// --- Stream, for the parser of the current connection ---

func (a *Analyzer) setCur(c *conn, s Side, ts int64, pkt uint64, ref PktRef) {
	a.cur, a.curSide, a.curTS, a.curPkt, a.curRef = c, s, ts, pkt, ref
	a.curOff = c.s[s].off
}

// deliver gives the parser the next in-order bytes of side s.
func (a *Analyzer) deliver(c *conn, s Side, b []byte, ts int64, pkt uint64, ref PktRef) {
	if c.parser == nil && !c.detected {
		a.detect(c, s, b)
	}
	if c.parser == nil {
		c.s[s].off += uint64(len(b))
		return
	}
	for _, m := range c.open[s] {
		a.addRef(m, ref)
	}
	a.setCur(c, s, ts, pkt, ref)
	c.parser.Data(s, b, a)
	ss := &c.s[s]
	ss.off += uint64(len(b))
	ss.lastTS, ss.lastPkt = ts, pkt
	a.checkStopped(c)
}

// stopper is implemented by parsers that can give up on a connection (not
// their protocol after all, a protocol switch, lost sync).
type stopper interface{ Stopped() bool }

// checkStopped detaches a parser that gave up: it is closed (reporting
// what it holds) and the connection's payload is no longer reassembled,
// which is most of the analytics' per-packet cost.
func (a *Analyzer) checkStopped(c *conn) {
	sp, ok := c.parser.(stopper)
	if !ok || !sp.Stopped() {
		return
	}
	a.closeParser(c)
	c.pendAck = c.pendAck[:0]
	c.detected = true // no second detection on this connection
	for s := Client; s <= Server; s++ {
		ss := &c.s[s]
		a.buf -= ss.oooBytes
		ss.ooo, ss.oooBytes = nil, 0
	}
}

// closeParser ends c's parser: its Close reports what it holds, and the
// messages it began and never ended go back to the free list.
func (a *Analyzer) closeParser(c *conn) {
	a.setCur(c, Client, c.lastTS, c.pkts, PktRef{})
	c.parser.Close(a)
	for s := range c.open {
		for _, m := range c.open[s] {
			a.freeMessage(m)
		}
		c.open[s] = c.open[s][:0]
	}
	c.parser = nil
	a.nparse--
}

func (a *Analyzer) addRef(m *Message, ref PktRef) {
	if n := len(m.Pkts); n > 0 && m.Pkts[n-1] == ref {
		return
	}
	if len(m.Pkts) > a.cfg.MaxRefs {
		return // one past the limit marks the cut
	}
	m.Pkts = append(m.Pkts, ref)
}

// Begin implements Stream.
func (a *Analyzer) Begin(s Side, off int) *Message {
	c := a.cur
	m := a.newMessage()
	m.Side, m.FirstTS, m.firstPkt = s, a.curTS, a.curPkt
	if c == nil {
		return m
	}
	if off < 0 {
		off = 0
	}
	m.startOff = a.curOff + uint64(off)
	m.Pkts = append(m.Pkts, a.curRef)
	c.open[s] = append(c.open[s], m)
	return m
}

// End implements Stream.
func (a *Analyzer) End(m *Message, off int) {
	c := a.cur
	if m.Ended || c == nil {
		return
	}
	m.Ended = true
	ss := &c.s[m.Side]
	if off < 0 || m.Side != a.curSide {
		m.endOff = ss.off
		m.LastTS, m.lastPkt = ss.lastTS, ss.lastPkt
		if m.LastTS == 0 {
			m.LastTS, m.lastPkt = a.curTS, a.curPkt
		}
	} else {
		m.endOff = a.curOff + uint64(off)
		m.LastTS, m.lastPkt = a.curTS, a.curPkt
	}
	if m.endOff < m.startOff {
		m.endOff = m.startOff
	}
	m.Bytes = int64(m.endOff - m.startOff)
	a.dropOpen(c, m)
	if c.tcp && m.Side == Client {
		m.endSeq = ss.base + uint32(m.endOff)
		if len(c.pendAck) < a.cfg.MaxPending {
			c.pendAck = append(c.pendAck, m)
		}
	}
}

func (a *Analyzer) dropOpen(c *conn, m *Message) {
	o := c.open[m.Side]
	for i, x := range o {
		if x == m {
			copy(o[i:], o[i+1:])
			c.open[m.Side] = o[:len(o)-1]
			return
		}
	}
}

func (a *Analyzer) dropPendAck(c *conn, m *Message) {
	for i, x := range c.pendAck {
		if x == m {
			c.pendAck = append(c.pendAck[:i], c.pendAck[i+1:]...)
			return
		}
	}
}

// popFront removes the first element of a short queue in place, keeping
// its capacity (re-slicing from the front would lose it and reallocate).
func popFront[T any](q []T) []T {
	copy(q, q[1:])
	var zero T
	q[len(q)-1] = zero
	return q[:len(q)-1]
}

// Discard implements Stream.
func (a *Analyzer) Discard(m *Message) {
	if c := a.cur; c != nil {
		a.dropOpen(c, m)
		a.dropPendAck(c, m)
	}
	a.freeMessage(m)
}

// newMessage takes a message from the free list: messages are per
// exchange, and reusing them (with their Pkts and Fields) keeps the
// allocations per exchange to the record's own.
func (a *Analyzer) newMessage() *Message {
	if n := len(a.msgs); n > 0 {
		m := a.msgs[n-1]
		a.msgs = a.msgs[:n-1]
		m.freed = false
		return m
	}
	return &Message{Pkts: make([]PktRef, 0, 4), Fields: make([]Field, 0, 8)}
}

// freeMessage returns m to the free list. The parser handed it over
// (Exchange, Discard) and must not touch it again; it is cleared so that a
// parser that does sees an empty message, not another exchange's.
func (a *Analyzer) freeMessage(m *Message) {
	if m == nil || m.freed || len(a.msgs) >= 4096 {
		return // a second Discard of one message must not list it twice
	}
	if cap(m.Pkts) > 256 {
		m.Pkts = nil // do not keep a big response's refs alive
	}
	*m = Message{Pkts: m.Pkts[:0], Fields: clearFields(m.Fields), freed: true}
	a.msgs = append(a.msgs, m)
}

func clearFields(f []Field) []Field {
	clear(f)
	return f[:0]
}

// TS implements Stream.
func (a *Analyzer) TS() int64 { return a.curTS }

// Config implements Stream.
func (a *Analyzer) Config() *Config { return &a.cfg }

// Exchange implements Stream.
func (a *Analyzer) Exchange(req, resp *Message) {
	c := a.cur
	if c == nil || req == nil && resp == nil {
		return
	}
	if req != nil {
		a.dropPendAck(c, req)
	}
	if c.tcp && resp != nil && resp.Ended {
		// Wait for the client's ACK of the response (the client side's
		// network delay), at most AckWait.
		resp.endSeq = c.s[Server].base + uint32(resp.endOff)
		if len(c.waitAck) < a.cfg.MaxPending {
			at := a.stepFree(resp.LastTS)
			c.waitAck = append(c.waitAck, pendEx{req, resp, at})
			a.wantAttn(c, at)
			return
		}
	}
	a.emitExchange(c, req, resp, 0)
}

// emitExchange builds and emits the record of one exchange.
func (a *Analyzer) emitExchange(c *conn, req, resp *Message, clientAck int64) {
	r := &Record{Proto: c.dec.Name, Transport: 17, Flags: c.flags}
	if c.tcp {
		r.Transport = 6
	}
	a.endpoints(c, r)
	r.Network, r.ServerTime, r.Transfer, r.ClientNet, r.RTT = -1, -1, -1, -1, -1
	n := 0
	if req != nil {
		n += len(req.Pkts)
	}
	if resp != nil {
		n += len(resp.Pkts)
	}
	refs := make([]PktRef, 0, min(n, a.cfg.MaxRefs))
	nf := 0
	if req != nil {
		nf += len(req.Fields)
	}
	if resp != nil {
		nf += len(resp.Fields)
	}
	fields := make([]Field, 0, nf)
	if req != nil {
		r.ReqFirst, r.ReqLast, r.ReqBytes = req.FirstTS, req.LastTS, req.Bytes
		r.ReqPkts = int32(min(len(req.Pkts), a.cfg.MaxRefs))
		refs = appendRefs(refs, req.Pkts, a.cfg.MaxRefs, &r.Flags)
		fields = append(fields, req.Fields...)
		if req.Gap {
			r.Flags |= FlagGap
		}
		r.ServerAck = req.ackTS
	} else {
		r.Flags |= FlagNoRequest
	}
	if resp != nil {
		r.RespFirst, r.RespLast, r.RespBytes = resp.FirstTS, resp.LastTS, resp.Bytes
		r.RespPkts = int32(min(len(resp.Pkts), a.cfg.MaxRefs))
		refs = appendRefs(refs, resp.Pkts, a.cfg.MaxRefs, &r.Flags)
		for _, f := range resp.Fields {
			fields = setField(fields, f)
		}
		if resp.Gap {
			r.Flags |= FlagGap
		}
		r.Transfer = resp.LastTS - resp.FirstTS
	}
	r.Fields, r.Packets = fields, refs
	r.ClientAck = clientAck
	defer a.freeMessage(req)
	defer a.freeMessage(resp)
	switch {
	case req == nil:
		r.Class = ClassUnknown
	case resp == nil:
		r.Class = ClassNoResponse
		a.unans++
	default:
		a.exch++
		r.ServerTime = resp.FirstTS - req.LastTS
		if !c.tcp {
			r.Class = ClassUDP
			break
		}
		r.RTT = c.baseline()
		if clientAck != 0 {
			r.ClientNet = clientAck - resp.LastTS
		}
		if req.ackTS == 0 || req.ackTS > resp.FirstTS {
			// No ACK of the request before (or with) the response: the
			// split is unknown.
			r.ServerAck = 0
			r.Class = ClassUnknown
			break
		}
		r.Network = req.ackTS - req.LastTS
		piggy := req.ackPkt == resp.firstPkt
		// Which end the capture point is nearer: the shorter handshake
		// leg. Next to the client, a late server ACK is the network's
		// (the founding rule); next to the server, the server's ACK
		// delay is the server's own, and a late client ACK of the
		// response is the network's.
		near := c.nearEnd()
		switch {
		case near != Server && a.late(r.Network, r.RTT):
			r.Class = ClassSlowNet
		case near != Client && r.ClientNet >= 0 && a.late(r.ClientNet, c.cliBaseline()):
			r.Class = ClassSlowNet
		case !piggy && resp.FirstTS-req.ackTS > int64(a.cfg.LateAck):
			r.Class = ClassSlowApp
		case near == Server && piggy && a.late(r.ServerTime, max(r.RTT, 0)):
			r.Class = ClassSlowApp // answered late, ACK and data together
		default:
			r.Class = ClassFast
		}
		// The least ACK delay seen is the baseline when there was no
		// handshake.
		if c.minAck < 0 || r.Network < c.minAck {
			c.minAck = r.Network
		}
		if r.ClientNet >= 0 && (c.minCliAck < 0 || r.ClientNet < c.minCliAck) {
			c.minCliAck = r.ClientNet
		}
	}
	a.emit(r)
}

// late reports whether an ACK delay d is late against the baseline round
// trip base (-1 unknown: never late).
func (a *Analyzer) late(d, base int64) bool {
	if base < 0 || d < 0 {
		return false
	}
	return d > base+max(int64(a.cfg.LateAck), base/2)
}

func appendRefs(dst, src []PktRef, max int, flags *uint32) []PktRef {
	for _, r := range src {
		if len(dst) >= max {
			*flags |= FlagRefsCut
			return dst
		}
		dst = append(dst, r)
	}
	return dst
}

// setField sets f in fs, replacing a field with the same key.
func setField(fs []Field, f Field) []Field {
	for i := range fs {
		if fs[i].Key == f.Key {
			fs[i] = f
			return fs
		}
	}
	return append(fs, f)
}

// connSlab holds the connections in fixed chunks, so that growing it never
// copies (or moves) a connection: a *conn stays valid while its slot is.
type connSlab struct {
	chunks [][]conn
	n      uint32
}

const connChunk = 1024

func (s *connSlab) at(i uint32) *conn { return &s.chunks[i/connChunk][i%connChunk] }

// add appends a zero connection and returns its slot.
func (s *connSlab) add() uint32 {
	if int(s.n/connChunk) == len(s.chunks) {
		s.chunks = append(s.chunks, make([]conn, connChunk))
	}
	s.n++
	return s.n - 1
}

// FlowEntry.App holds a connection's slot in its low 24 bits and the
// slot's generation in the high 8, so an entry whose connection ended and
// whose slot was reused (through another entry: see join) is told apart.
const (
	appSlotBits = 24
	appSlotMask = 1<<appSlotBits - 1
)

// ref is c's FlowEntry.App value.
func (c *conn) ref() uint32 { return c.idx | uint32(c.gen)<<appSlotBits }

// connOf returns the live connection an App value names, or nil when it
// ended (its slot is free or holds another connection).
func (a *Analyzer) connOf(app uint32) *conn {
	i := app & appSlotMask
	if i == 0 || i >= a.conns.n {
		return nil
	}
	c := a.conns.at(i)
	if c.idx != i || c.gen != uint8(app>>appSlotBits) {
		return nil
	}
	return c
}

// vlanFree is k without its VLAN tags.
func vlanFree(k *packet.FlowKey) packet.FlowKey {
	v := *k
	v.VLAN, v.VLAN2 = 0, 0
	return v
}

// pair registers a new TCP connection, until it has seen both directions,
// so that the other direction can join it when it arrives on another VLAN
// (a capture where the two directions are tagged differently: they are
// two flows, one connection).
func (a *Analyzer) pair(c *conn) {
	if a.pairs == nil {
		a.pairs = map[packet.FlowKey]uint32{}
	}
	vk := vlanFree(&c.key)
	if _, taken := a.pairs[vk]; taken {
		return
	}
	a.pairs[vk] = c.idx
	c.paired = true
}

func (a *Analyzer) unpair(c *conn) {
	vk := vlanFree(&c.key)
	if a.pairs[vk] == c.idx {
		delete(a.pairs, vk)
	}
	c.paired = false
}

// join attaches the flow of e to a one-sided connection of the same
// addresses and ports on another VLAN, when e's packet is that
// connection's missing direction and its ACK fits the sequence numbers the
// connection has seen. It returns the connection, or nil.
func (a *Analyzer) join(e *packet.Flow, d *packet.Decoded, dir uint8) *conn {
	if len(a.pairs) == 0 {
		return nil
	}
	vk := vlanFree(&e.Key)
	i, ok := a.pairs[vk]
	if !ok {
		return nil
	}
	c := a.conns.at(i)
	if c.idx != i || c.key == e.Key || c.refs > 1 {
		return nil
	}
	s := Server
	if dir == c.cliDir {
		s = Client
	}
	os := &c.s[s.Other()]
	if c.npk[s] != 0 || !os.init || d.TCPFlags&tcpACK == 0 || !seqLE(os.base-1, d.Ack) || !seqLE(d.Ack, os.maxEnd+1) {
		return nil
	}
	c.refs++
	e.App = c.ref()
	a.unpair(c)
	return c
}
