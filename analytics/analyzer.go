package analytics

import (
	"hash/maphash"
	"math"
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
	ParserStops atomic.Uint64              // reserved: parsers that gave up on a connection
	Parsers     atomic.Int64               // parsers (decoded connections) now
	ParsersFull atomic.Uint64              // connections left undecoded (timed only): MaxParsers reached
	Defragged   atomic.Uint64              // UDP datagrams reassembled from IP fragments (defrag.go)
	FragDropped [FragReasons]atomic.Uint64 // IP fragments not analysed, by reason (FragReasonNames)
	FragHeld    atomic.Int64               // fragment bytes held for reassembly now

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
	spare  map[*Decoder][]reusable   // closed parsers, for the next connections (newParser)
	text   textCache                 // the parsers' recent field texts
	reload atomic.Pointer[Config]    // a new configuration, applied by the next Tick
	clk    packet.Clock              // packet time without its steps back: the timers'
	vt     int64                     // the current packet's time in clk
	rawTS  int64                     // the latest packet's own time
	due    int64                     // no timer is due before this step-free time
	buf    int                       // out-of-order bytes buffered, all conns
	frag   defragger                 // UDP datagrams being reassembled from IP fragments
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
	a.text.seed = maphash.MakeSeed()
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
	if d.Flags&packet.FlagFragment != 0 && a.defrag(p, d, e, dir, ref) {
		return // held for reassembly (defrag.go)
	}
	tcp := d.Flags&packet.FlagTCP != 0
	udp := d.Flags&packet.FlagUDP != 0
	if (!tcp && !udp) || d.Flags&packet.FlagFragment != 0 && d.Flags&packet.FlagFirstFrag == 0 {
		return
	}
	c := a.connFor(p, d, e, dir, tcp)
	if c == nil {
		return
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
		var opts []byte // TCP options
		if d.L4Off >= 0 && d.PayloadOff > d.L4Off+20 && int(d.PayloadOff) <= len(p.Data) {
			opts = p.Data[d.L4Off+20 : d.PayloadOff]
		}
		if a.tcpPacket(c, s, d, opts, payload, segLen, p.TS, ref) {
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

// connFor finds or opens the connection of p (nil: not analysed).
func (a *Analyzer) connFor(p *dataplane.Packet, d *packet.Decoded, e *packet.Flow, dir uint8, tcp bool) *conn {
	if e == nil {
		a.nfull++
		return nil
	}
	syn := tcp && d.TCPFlags&(tcpSYN|tcpACK) == tcpSYN
	if e.App == connClosed {
		if !syn {
			return nil // a late packet of a connection that ended
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
				return nil
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
			return nil
		}
		c.firstTS = p.TS
	}
	return c
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
	a.frag.flush()
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
	a.publishFrag(st)
}
