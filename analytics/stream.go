package analytics

// The Stream the Analyzer is to the parser of the current connection:
// attaching a parser (by port or content), delivering in-order bytes, and
// the messages it begins, ends, discards and pairs into exchanges.

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
	c.parser = a.newParser(dec)
	if !c.tcp {
		if u, ok := c.parser.(interface{ SetUDP() }); ok {
			u.SetUDP()
		}
	}
}

// reusable is a parser that can be put back into the state its decoder's
// New gives, for the next connection: New's allocation (with up to 3.7 KB
// zeroed, Redis's) then happens once per spare parser, not per connection.
type reusable interface {
	Parser
	reset() // to the state New(cfg) gives, with the cfg it was made with
}

// maxSpare bounds the spare parsers kept per decoder.
const maxSpare = 64

// newParser returns a spare parser of dec, reset, or a new one.
func (a *Analyzer) newParser(dec *Decoder) Parser {
	if sp := a.spare[dec]; len(sp) > 0 {
		p := sp[len(sp)-1]
		sp[len(sp)-1] = nil
		a.spare[dec] = sp[:len(sp)-1]
		p.reset() // here, not when put back: with the configuration now in force
		return p
	}
	p := dec.New(&a.cfg)
	if u, ok := p.(usesText); ok {
		u.useText(&a.text)
	}
	return p
}

// spareParser keeps the closed parser p of dec for a later connection.
func (a *Analyzer) spareParser(dec *Decoder, p Parser) {
	r, ok := p.(reusable)
	if !ok || dec == nil || len(a.spare[dec]) >= maxSpare {
		return
	}
	if a.spare == nil {
		a.spare = make(map[*Decoder][]reusable)
	}
	a.spare[dec] = append(a.spare[dec], r)
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
	a.spareParser(c.dec, c.parser)
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
	m.rtx, m.zw = c.rtx, c.zw
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
	if resp != nil && resp.Side == Client {
		// A client message as the response (a one-sided record of a
		// client message, or a server's request answered by the client):
		// there is no client ACK of it to wait for, and it must not stay
		// on the ACK watch after it is freed.
		a.dropPendAck(c, resp)
		a.emitExchange(c, req, resp, 0, PktRef{})
		return
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
	a.emitExchange(c, req, resp, 0, PktRef{})
}
