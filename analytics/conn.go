package analytics

import "tapvault/packet"

// The connection table: a slab of connections addressed by FlowEntry.App
// (slot and generation), opened and closed here, and the pairing of the two
// directions of a TCP connection captured on different VLANs.

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
	*c = conn{idx: idx, gen: c.gen + 1, refs: 1, key: e.Key, tcp: tcp, dec: dec, rttSrv: -1, rttCli: -1, minAck: -1, minCliAck: -1, minWait: -1,
		open: c.open, pendAck: c.pendAck, waitAck: c.waitAck} // the slot's emptied queues, kept by closeConn
	if c.open[0] == nil {
		c.open[0], c.open[1], c.pendAck = c.q0[0:0:1], c.q0[1:1:2], c.q0[2:2:4]
	}
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
		a.emitExchange(c, x.req, x.resp, 0, PktRef{})
	}
	c.waitAck = c.waitAck[:0]
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
	// The generation tells stale FlowEntry.App values apart. The queues'
	// arrays stay with the slot, emptied, for its next connection: three
	// to four allocations a connection fewer.
	*c = conn{gen: c.gen, open: [2][]*Message{reuseQueue(c.open[0]), reuseQueue(c.open[1])},
		pendAck: reuseQueue(c.pendAck), waitAck: reuseQueue(c.waitAck)}
}

// reuseQueue empties q for the slot's next connection, dropping what it
// pointed to; a queue grown past 16 is let go.
func reuseQueue[T any](q []T) []T {
	if cap(q) > 16 {
		return nil
	}
	clear(q[:cap(q)])
	return q[:0]
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
