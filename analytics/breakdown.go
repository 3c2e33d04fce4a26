package analytics

// The time split of one TCP exchange, and its class.
//
// At the capture point, an exchange's latency (the request's last byte to
// the response's last byte, what tshark calls http.time) is the sum of
//
//	network   the round trip between the capture point and the server,
//	          during this exchange
//	server    the rest of the wait before the response's first byte
//	transfer  the response's first byte to its last
//
// each part >= 0. The round trip on the other side of the capture point,
// to the client, is not inside that latency; it is ClientNet. Their sum is
// the path's round trip, whatever the capture point.
//
// The network part comes from the best evidence this exchange offers, in
// this order (Record.NetFrom names it, Record.Confidence grades it):
//
//   - a retransmitted request: the time until the last retransmission
//     passed, plus the round trip (a lost request is the network's time);
//   - the server's bare ACK of the request, when it is prompt: within the
//     connection's round trip plus max(LateAck, RTT/2);
//   - else the connection's round trip: the least of the handshake's (SYN to SYN/ACK),
//     the prompt ACK delays and the response waits seen on it (a min-RTT
//     filter: each is the round trip plus a time of the far end's).
//
// Kernels delay ACKs hoping to piggyback them on data: Linux up to 40 ms
// and more (TCP_ATO_MIN, adapted to the RTT estimate and the data's
// inter-arrival time: 10-44 ms measured on Linux 6 by the ground-truth
// harness) and Windows up to 200 ms, quick-ack aside. So an ACK that rides
// on the response says nothing about the network (the response was late:
// the server was), and a bare ACK that is not prompt but comes within
// 210 ms, with the response later still, is the delayed-ACK timer firing:
// the server had not answered in time (FlagAckTimer). What this misreads:
// a path that slows down after the handshake while the server ACKs at once
// (the handshake and the prompt ACKs of other exchanges show a path that
// is slow throughout). A bare ACK much faster than the handshake's round
// trip contradicts it: the connection is behind NAT, or a middlebox ACKs
// (FlagContradiction, NearNAT; docs/analytics.md, Physics).

import "time"

// Kernel delayed-ACK timers, as the rules use them.
const (
	// delAckMax: a bare ACK later than prompt by up to this, with the
	// response after it, is taken for the timer: Windows' 200 ms (and
	// Linux's TCP_DELACK_MAX), plus jitter.
	delAckMax = 210 * time.Millisecond
	// noBaseAck: with no round trip known, a bare ACK sooner than this is
	// taken for the round trip (sooner than any timer measured).
	noBaseAck = 5 * time.Millisecond
)

// NetSource says which evidence gave an exchange's network part
// (Record.NetFrom).
type NetSource uint8

// Network part sources.
const (
	NetNone      NetSource = iota // no estimate
	NetRetrans                    // the request was retransmitted
	NetBareAck                    // the server's prompt bare ACK of the request
	NetHandshake                  // the handshake's round trip (SYN -> SYN/ACK)
	NetMinAck                     // the least prompt ACK delay seen on the connection
	NetWait                       // capped at the whole wait (the response came sooner than a round trip)
	NetMinWait                    // the least response wait seen on the connection, below its handshake and ACKs
)

var netSourceNames = [...]string{"", "retrans", "bare_ack", "handshake", "min_ack", "wait", "min_wait"}

func (s NetSource) String() string {
	if int(s) < len(netSourceNames) {
		return netSourceNames[s]
	}
	return ""
}

// Confidence grades the split (Record.Confidence).
type Confidence uint8

// Confidences.
const (
	ConfNone   Confidence = iota
	ConfLow               // an estimate a middlebox, a missing handshake or an ambiguous ACK weakens
	ConfMedium            // the connection's round trip, not this exchange's own
	ConfHigh              // this exchange's own evidence (a prompt bare ACK, a retransmission)
)

var confNames = [...]string{"", "low", "medium", "high"}

func (c Confidence) String() string {
	if int(c) < len(confNames) {
		return confNames[c]
	}
	return ""
}

// Position is where the capture point sits on a connection (Record.Near),
// from the handshake's two legs.
type Position uint8

// Positions.
const (
	NearUnknown Position = iota // no handshake seen
	NearClient                  // the client's leg is under half the server's
	NearServer                  // the server's leg is under half the client's
	NearMiddle                  // legs within a factor of 2: a tap in the path
	NearNAT                     // behind NAT: the handshake's round trip far longer than the ACKs'
)

var posNames = [...]string{"", "client", "server", "middle", "nat"}

func (p Position) String() string {
	if int(p) < len(posNames) {
		return posNames[p]
	}
	return ""
}

// Why says why an exchange is cant_tell, or what weakened its split
// (Record.Why).
type Why uint8

// Reasons.
const (
	WhyNone         Why = iota
	WhyNoBaseline       // no handshake and no prompt ACK yet: the round trip is unknown
	WhyAckAmbiguous     // a late bare ACK with no round trip to judge it: the timer or the network
	WhyOverlap          // the response began before the request ended
	WhyUDP              // no TCP signalling to split the time
	WhyMiddlebox        // ACKs faster than the handshake's round trip: behind NAT, or a middlebox ACKing for the server
	WhyNoRequest        // a response with no request
)

var whyNames = [...]string{"", "no_baseline", "ack_ambiguous", "overlap", "udp", "middlebox", "no_request"}

func (w Why) String() string {
	if int(w) < len(whyNames) {
		return whyNames[w]
	}
	return ""
}

// The evidence is kept in the high bits of Record.Flags, so the message
// store's format carries it unchanged (docs/format/messages.md).
const (
	evNetShift  = 16 // 3 bits: NetSource
	evConfShift = 19 // 2 bits: Confidence
	evPosShift  = 21 // 3 bits: Position
	evWhyShift  = 24 // 3 bits: Why
	evMask      = 0x7ff << evNetShift
)

// NetFrom is the evidence that gave the network part.
func (r *Record) NetFrom() NetSource { return NetSource(r.Flags >> evNetShift & 7) }

// Confidence grades the split.
func (r *Record) Confidence() Confidence { return Confidence(r.Flags >> evConfShift & 3) }

// Near is where the capture point sits on the connection.
func (r *Record) Near() Position { return Position(r.Flags >> evPosShift & 7) }

// Why is why the class is cant_tell, or what weakened the split.
func (r *Record) Why() Why { return Why(r.Flags >> evWhyShift & 7) }

// SetEvidence stores the evidence in r.Flags.
func (r *Record) SetEvidence(src NetSource, conf Confidence, near Position, why Why) {
	r.Flags = r.Flags&^evMask | uint32(src&7)<<evNetShift | uint32(conf&3)<<evConfShift |
		uint32(near&7)<<evPosShift | uint32(why&7)<<evWhyShift
}

// position is where the capture point sits on c.
func (c *conn) position() Position {
	srv, cli := c.rttSrvHS(), c.rttCliHS()
	switch {
	case c.contradicted:
		return NearNAT
	case srv < 0 || cli < 0:
		return NearUnknown
	case 2*cli < srv:
		return NearClient
	case 2*srv < cli:
		return NearServer
	}
	return NearMiddle
}

// prompt reports whether an ACK delay d is within the round trip base
// plus max(LateAck, base/2).
func (a *Analyzer) prompt(d, base int64) bool {
	return d <= base+max(int64(a.cfg.LateAck), base/2)
}

// ackTimer reports whether an ACK delay d, against the round trip base, is
// a kernel's delayed-ACK timer rather than the network.
func ackTimer(d, base int64) bool {
	return d-base <= int64(delAckMax)
}

// split fills r's network, server and client-leg parts, its evidence and
// its class, for a TCP exchange with both messages. wait is
// resp.FirstTS - req.LastTS (>= 0).
func (a *Analyzer) split(c *conn, r *Record, req, resp *Message, wait int64) {
	if hs := c.rttSrvHS(); hs >= 0 && wait < hs {
		// A response sooner than the handshake's round trip: the
		// handshake overstated it (a neighbour lookup on the first
		// packets, a slow first hop), and its ACKs are not a middlebox's.
		c.hsInflated = true
	}
	var (
		src  NetSource
		conf Confidence
		why  Why
		net  int64 = -1
	)
	srvHS := c.rttSrvHS()
	if c.hsInflated {
		srvHS = -1
	}
	base := c.baseline() // the handshake's server leg, else the least prompt ACK delay
	baseSrc := NetHandshake
	switch {
	case base >= 0 && base == c.minWait && base != c.rttSrvHS() && base != c.minAck:
		baseSrc = NetMinWait
	case srvHS < 0 || base != c.rttSrvHS():
		baseSrc = NetMinAck
	}
	ackd := int64(-1)
	if req.ackTS != 0 && req.ackTS <= resp.FirstTS && req.ackTS >= req.LastTS {
		ackd = req.ackTS - req.LastTS
		r.ServerAck = req.ackTS
	} else {
		r.ServerAck = 0
	}
	bare := ackd >= 0 && req.ackPkt != resp.firstPkt
	reqRtx := resp.rtx[Client] - req.rtx[Client]
	// The client's ACK of the response carried a D-SACK: it got the
	// response twice, so the server's retransmission of it was spurious
	// (its RTO fired because the client's ACK, or the request carrying
	// it, was lost): the response was not late, and this ACK, sent on the
	// second copy, is no sample of the client's leg.
	dupResp := r.ClientAck != 0 && r.ClientAck == c.dsackTS
	if reqRtx > 0 || c.rtx[Server] != resp.rtx[Server] && !dupResp {
		r.Flags |= FlagRetrans
	}
	if c.zw[Client] != resp.zw[Client] {
		r.Flags |= FlagZeroWindow
	}

	switch {
	case reqRtx > 0 && c.rtxTS[Client] > req.LastTS:
		// The request was lost and sent again: until its last
		// retransmission passed, the time is the network's.
		net, src, conf = c.rtxTS[Client]-req.LastTS+max(base, 0), NetRetrans, ConfHigh
		if bare && ackd > net {
			net = ackd
		}
	case bare && srvHS >= 0 && 2*ackd < srvHS && srvHS-ackd > int64(time.Millisecond):
		// Faster than the handshake's round trip, which physics forbids
		// for the same path: the handshake took a slow path the data does
		// not (behind NAT: the first packets set up the translation; a
		// neighbour lookup), or a middlebox ACKs for the server. The ACK
		// is the data path's round trip as far as the wire shows:
		// flagged, confidence low, and the handshake is not used again.
		c.contradicted, c.hsInflated = true, true
		r.Flags |= FlagContradiction
		net, src, conf, why = ackd, NetBareAck, ConfLow, WhyMiddlebox
		if c.minAck < 0 || ackd < c.minAck {
			c.minAck = ackd
		}
	case bare && (base < 0 && ackd < int64(noBaseAck) || base >= 0 && a.prompt(ackd, base)):
		net, src, conf = ackd, NetBareAck, ConfHigh
	case bare && base >= 0 && ackTimer(ackd, base) && wait > ackd:
		// The delayed-ACK timer fired: the server had not answered.
		r.Flags |= FlagAckTimer
		net, src, conf = base, baseSrc, ConfMedium
	case bare && base >= 0:
		// Late, and not the timer: the network slowed down.
		net, src, conf = ackd, NetBareAck, ConfMedium
	case bare:
		why = WhyAckAmbiguous
	case base >= 0:
		// The ACK rode on the response (or none came first): the round
		// trip is the connection's.
		net, src, conf = base, baseSrc, ConfMedium
	default:
		why = WhyNoBaseline
	}
	if net > wait {
		// The response came sooner than a round trip: the server part is
		// nil and the network part is the wait.
		net, src = wait, NetWait
		if conf > ConfLow {
			conf = ConfLow
		}
	}
	if src == NetBareAck && conf == ConfHigh && (c.minAck < 0 || ackd < c.minAck) {
		c.minAck = ackd // the least prompt ACK delay: the baseline without a handshake
	}

	// The client's leg: its ACK of the response when prompt, else the
	// connection's.
	cbase := c.cliBaseline()
	cnet := int64(-1)
	if r.ClientAck != 0 && r.ClientAck >= resp.LastTS && !dupResp {
		d := r.ClientAck - resp.LastTS
		switch {
		case cbase < 0 && d < int64(noBaseAck), cbase >= 0 && a.prompt(d, cbase):
			cnet = d
			if c.minCliAck < 0 || d < c.minCliAck {
				c.minCliAck = d
			}
		case cbase >= 0 && ackTimer(d, cbase):
			cnet = cbase // the client's delayed-ACK timer
		case cbase >= 0:
			cnet = d // late, not the timer: the client's network
		}
	} else if cbase >= 0 {
		cnet = cbase
	}
	r.ClientNet = cnet
	if base >= 0 && cbase >= 0 {
		r.RTT = base + cbase
	} else {
		r.RTT = -1
	}

	if net >= 0 {
		r.Network, r.ServerTime = net, wait-net
	}
	// A response's wait is the round trip plus the server's time, so the
	// least one seen is a round-trip sample too: after this exchange, so
	// that its own wait does not become its network part.
	if c.minWait < 0 || wait < c.minWait {
		c.minWait = wait
	}
	r.SetEvidence(src, conf, c.position(), why)
	r.Class = a.class(r, net)
}

// class judges a TCP exchange with a response from its parts.
func (a *Analyzer) class(r *Record, net int64) string {
	path := max(net, 0) + max(r.ClientNet, 0)
	slowNet := r.Flags&FlagRetrans != 0 || path >= int64(a.cfg.SlowNetwork)
	if net < 0 {
		switch {
		case r.Flags&FlagRetrans != 0:
			return ClassSlowNet
		case r.RespFirst-r.ReqLast < min(int64(a.cfg.SlowServer), int64(a.cfg.SlowNetwork)) && !slowNet:
			return ClassHealthy // too fast for either part to be slow
		}
		return ClassCantTell
	}
	slowApp := r.ServerTime >= int64(a.cfg.SlowServer)
	switch {
	case slowNet && slowApp:
		if r.ServerTime > path {
			return ClassSlowApp
		}
		return ClassSlowNet
	case slowNet:
		return ClassSlowNet
	case slowApp:
		return ClassSlowApp
	}
	return ClassHealthy
}
