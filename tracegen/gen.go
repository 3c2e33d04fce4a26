package tracegen

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"

	"tapvault/pcap"
)

// Options describe a generated trace. The same options always give the
// same bytes, on any machine and Go version: the generator uses its own
// random number generator (xoshiro256**), not math/rand.
type Options struct {
	// Kind is the traffic:
	//   - "udp64": 64-byte Ethernet/IPv4/UDP frames over many flows, one
	//     direction each. 64 bytes is what is captured and also the wire
	//     length: the frame without its 4-byte FCS, as pcap holds it.
	//   - "imix": frames of 64, 594 and 1518 bytes in a 7:4:1 ratio over
	//     TCP flows, about 1 in 5 of them IPv6. Each flow starts with a
	//     3-way handshake, then carries data with increasing seq/ack and
	//     pure ACKs. A third of the flows carry text-like (compressible)
	//     payload, the rest random (TLS-like) bytes.
	//   - "mixed": imix, plus UDP DNS queries and answers, ICMP echo
	//     request/reply, ARP, other UDP, fragmented IPv4 datagrams, IPv6
	//     with a Hop-by-Hop or Destination Options header; with VLAN-tagged
	//     and QinQ flows always on.
	Kind    string
	Packets int   // frames to generate
	Flows   int   // TCP (imix, mixed) or UDP (udp64) flows; 0 means 4096 for udp64, 10000 otherwise
	Seed    int64 // different seeds give different traces
	StartNS int64 // first timestamp in Unix ns; 0 means 2024-01-01T00:00:00Z
	// PPS spaces the timestamps 1/PPS apart (0 means 1e6). Timestamps are
	// not a rate limit: generation always runs as fast as it can.
	PPS float64
	// VLANs tags about one flow in five with an 802.1Q tag and about one
	// in thirty with two (QinQ: 802.1ad outer, 802.1Q inner).
	VLANs bool
	// Active, if set (and below Flows), keeps only that many flows active
	// at a time: a window sliding over the flows from the first packet to
	// the last, so each flow lives for about Active/Flows of the trace, as
	// real flows come and go. 0 keeps every flow active throughout (the
	// worst case for an index: every flow in every part of the trace).
	Active int
}

// Stats is what a generator produced.
type Stats struct {
	Packets int64
	Bytes   int64 // frame bytes; every frame is captured whole (captured = wire length)
	Flows   int   // distinct flows (5-tuples) that sent at least one packet; ARP counts none
}

// Trace kinds.
const (
	KindUDP64 = "udp64"
	KindIMIX  = "imix"
	KindMixed = "mixed"
)

// defaultStartNS is 2024-01-01T00:00:00Z.
const defaultStartNS = 1704067200 * 1e9

// maxFrame bounds every generated frame (1518 + two VLAN tags).
const maxFrame = 1536

// Generate writes a pcap trace (nanosecond timestamps, Ethernet) of opts to
// w, buffered, and returns what it wrote.
func Generate(w io.Writer, opts Options) (Stats, error) {
	pw, err := pcap.NewWriter(w, pcap.LinkTypeEthernet, 65535, pcap.WithBufferSize(1<<20))
	if err != nil {
		return Stats{}, fmt.Errorf("generate trace: %w", err)
	}
	st, err := GenerateFrames(opts, func(ts int64, frame []byte) error {
		return pw.WritePacket(ts, uint32(len(frame)), frame)
	})
	if err != nil {
		return st, fmt.Errorf("generate trace: %w", err)
	}
	if err := pw.Flush(); err != nil {
		return st, fmt.Errorf("generate trace: %w", err)
	}
	return st, nil
}

// GenerateFile writes the trace of opts to a new pcap file at path.
func GenerateFile(path string, opts Options) (Stats, error) {
	f, err := os.Create(path)
	if err != nil {
		return Stats{}, fmt.Errorf("generate trace: %w", err)
	}
	st, err := Generate(f, opts)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("generate trace %q: %w", path, cerr)
	}
	if err != nil {
		os.Remove(path)
		return st, err
	}
	return st, nil
}

// GenerateFrames produces the frames Generate writes, in the same order with
// the same timestamps, and calls fn for each. frame is borrowed: it is valid
// only during the call. An error from fn stops generation and is returned.
func GenerateFrames(opts Options, fn func(ts int64, frame []byte) error) (Stats, error) {
	if opts.Kind == KindApp {
		return generateApp(opts, fn) // app.go
	}
	g, err := newGenerator(opts)
	if err != nil {
		return Stats{}, err
	}
	step := 1e9 / g.opts.PPS
	for i := 0; i < g.opts.Packets; i++ {
		g.emitted = i
		frame := g.next()
		ts := g.opts.StartNS + int64(float64(i)*step)
		g.stats.Packets++
		g.stats.Bytes += int64(len(frame))
		if err := fn(ts, frame); err != nil {
			return g.stats, err
		}
	}
	return g.stats, nil
}

// rng is xoshiro256** seeded through splitmix64: small, fast, and fixed
// forever, so traces stay reproducible.
type rng struct{ s [4]uint64 }

func newRNG(seed int64) rng {
	var r rng
	x := uint64(seed)
	for i := range r.s {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		r.s[i] = z ^ z>>31
	}
	return r
}

func (r *rng) next() uint64 {
	s := &r.s
	res := rotl(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = rotl(s[3], 45)
	return res
}

func rotl(x uint64, k uint) uint64 { return x<<k | x>>(64-k) }

// intn returns a number in [0, n) (n > 0), with negligible bias.
func (r *rng) intn(n int) int { return int((r.next() >> 32) * uint64(n) >> 32) }

// fill writes random bytes into b.
func (r *rng) fill(b []byte) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, r.next())
		b = b[8:]
	}
	if len(b) > 0 {
		v := r.next()
		for i := range b {
			b[i] = byte(v >> (8 * i))
		}
	}
}

// Flow kinds.
const (
	flowTCP4 uint8 = iota
	flowTCP6
	flowUDP4
	flowDNS
	flowICMP
	flowFrag
	flowUDP6Ext
)

// flow is one conversation's fixed addressing and its TCP state.
type flow struct {
	started    bool
	kind       uint8
	text       bool // text-like payload rather than random
	tags       uint8
	vlan       uint16 // outer tag's VLAN id when tags > 0
	vlan2      uint16 // inner tag's VLAN id when tags == 2
	cmac, smac [6]byte
	cip, sip   [16]byte // IPv4 in the first 4 bytes
	cport      uint16
	sport      uint16
	state      uint8 // TCP: 0 SYN next, 1 SYN-ACK next, 2 ACK next, 3 established
	cseq, sseq uint32
	ipid       uint16
	seq        uint16 // ICMP sequence / DNS id
}

// generator holds the state of one trace.
type generator struct {
	opts  Options
	r     rng
	stats Stats

	tcp     []flow // Flows of them (udp64: the UDP flows)
	emitted int    // frames emitted so far (for Options.Active)
	aux     []flow // mixed: DNS, ICMP, UDP, fragment and IPv6 extension flows
	hosts   int    // ARP hosts

	text []byte // text-like payload source

	buf  [maxFrame]byte
	pend [4][maxFrame]byte // frames of a multi-frame event still to emit
	plen [4]int
	np   int // pending frames
	pi   int // next pending frame
}

func newGenerator(opts Options) (*generator, error) {
	switch opts.Kind {
	case KindUDP64, KindIMIX, KindMixed:
	default:
		return nil, fmt.Errorf("generate trace: unknown kind %q (want udp64, imix or mixed)", opts.Kind)
	}
	if opts.Packets < 0 || opts.Flows < 0 || opts.Active < 0 {
		return nil, fmt.Errorf("generate trace: packets (%d), flows (%d) and active flows (%d) must not be negative", opts.Packets, opts.Flows, opts.Active)
	}
	if opts.PPS < 0 || math.IsNaN(opts.PPS) || math.IsInf(opts.PPS, 0) {
		return nil, fmt.Errorf("generate trace: invalid packet rate %v", opts.PPS)
	}
	if opts.Flows == 0 {
		opts.Flows = 10000
		if opts.Kind == KindUDP64 {
			opts.Flows = 4096
		}
	}
	if opts.Flows > 1<<24 {
		return nil, fmt.Errorf("generate trace: %d flows is more than the %d supported", opts.Flows, 1<<24)
	}
	if opts.PPS == 0 {
		opts.PPS = 1e6
	}
	if opts.StartNS == 0 {
		opts.StartNS = defaultStartNS
	}
	if opts.Kind == KindMixed {
		opts.VLANs = true
	}
	g := &generator{opts: opts, r: newRNG(opts.Seed)}
	g.tcp = make([]flow, opts.Flows)
	if opts.Kind == KindMixed {
		g.aux = make([]flow, min(opts.Flows/4+16, 4096))
		g.hosts = 254
	}
	g.text = buildText(&g.r)
	return g, nil
}

// next returns the next frame, borrowed until the following call.
func (g *generator) next() []byte {
	if g.pi < g.np {
		i := g.pi
		g.pi++
		return g.pend[i][:g.plen[i]]
	}
	g.np, g.pi = 0, 0
	switch g.opts.Kind {
	case KindUDP64:
		return g.udp64()
	case KindIMIX:
		return g.tcpPacket(g.buf[:])
	}
	// mixed
	switch u := g.r.intn(100); {
	case u < 70:
		return g.tcpPacket(g.buf[:])
	case u < 78:
		g.dnsPair()
	case u < 82:
		g.icmpPair()
	case u < 84:
		g.arpPair()
	case u < 87:
		g.fragments()
	case u < 90:
		return g.udp6Ext(g.buf[:])
	default:
		return g.udpOther(g.buf[:])
	}
	g.pi = 1
	return g.pend[0][:g.plen[0]]
}

// pick chooses a flow index: half the packets go to the hottest tenth of the
// flows, like the elephants of real traffic.
func (g *generator) pick(n int) int {
	if a := g.opts.Active; a > 0 && a < n && n == len(g.tcp) {
		// The window of active flows slides from flow 0 to n-a over the
		// trace; within it, the same hot/cold choice as below.
		base := int(int64(g.emitted) * int64(n-a) / int64(max(g.opts.Packets, 1)))
		return base + g.pickIn(a)
	}
	return g.pickIn(n)
}

func (g *generator) pickIn(n int) int {
	if hot := n / 10; hot > 0 && g.r.next()&1 == 0 {
		return g.r.intn(hot)
	}
	return g.r.intn(n)
}

// start fills in a flow's addressing the first time it is used. Client
// addresses are unique per flow index, so every flow is a distinct 5-tuple.
func (g *generator) start(f *flow, idx int, kind uint8) {
	r := &g.r
	f.started = true
	f.kind = kind
	g.stats.Flows++
	f.text = r.intn(3) == 0 // TCP: decided by the port below
	if g.opts.VLANs {
		switch u := r.intn(100); {
		case u < 3:
			f.tags, f.vlan, f.vlan2 = 2, uint16(1000+r.intn(4)), uint16(100+10*r.intn(8))
		case u < 20:
			f.tags, f.vlan = 1, uint16(100+10*r.intn(8))
		}
	}
	f.cmac = [6]byte{0x02, 0x00, byte(kind), byte(idx >> 16), byte(idx >> 8), byte(idx)}
	f.smac = [6]byte{0x02, 0xaa, 0x00, 0x00, 0x00, byte(1 + r.intn(4))}
	srv := byte(1 + r.intn(200))
	if kind == flowTCP6 || kind == flowUDP6Ext {
		// fd00:<kind>::<idx> to 2001:db8::<srv>
		f.cip = [16]byte{0xfd, 0x00, 0, kind, 12: byte(idx >> 24), 13: byte(idx >> 16), 14: byte(idx >> 8), 15: byte(idx)}
		f.sip = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: srv}
	} else {
		// 10.x.y.z (x.y.z = the flow index; each kind of aux flow has
		// its own /8) to one of 200 servers in a documentation /24.
		net := byte(10)
		if g.aux != nil && kind != flowTCP4 {
			net = 100 + kind // aux flows of mixed traces: own index space
		}
		f.cip = [16]byte{net, byte(idx >> 16), byte(idx >> 8), byte(idx)}
		f.sip = [16]byte{198, 51, 100, srv}
		if kind == flowTCP4 && r.intn(2) == 0 {
			f.sip = [16]byte{203, 0, 113, srv}
		}
	}
	f.cport = uint16(1024 + r.intn(64000))
	switch kind {
	case flowTCP4, flowTCP6:
		// Plain-text protocols (a third of the flows) carry text-like
		// payload; TLS and SSH carry random bytes.
		f.sport = [...]uint16{443, 443, 443, 443, 443, 443, 22, 80, 8080, 80, 5432, 6379}[r.intn(12)]
		f.text = f.sport != 443 && f.sport != 22
	case flowDNS:
		f.sport = 53
		f.sip = [16]byte{198, 51, 100, byte(53 + r.intn(2))}
	case flowUDP4, flowFrag, flowUDP6Ext:
		f.sport = [...]uint16{443, 4789, 5060, 123, 9000}[r.intn(5)]
	}
	f.cseq = uint32(r.next())
	f.sseq = uint32(r.next())
	f.ipid = uint16(r.next())
}

// l2 writes the Ethernet header (and tags) and returns its length.
func l2(b []byte, dst, src *[6]byte, f *flow, etype uint16) int {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	o := 12
	switch f.tags {
	case 2:
		binary.BigEndian.PutUint16(b[o:], 0x88a8)
		binary.BigEndian.PutUint16(b[o+2:], f.vlan)
		binary.BigEndian.PutUint16(b[o+4:], 0x8100)
		binary.BigEndian.PutUint16(b[o+6:], f.vlan2)
		o += 8
	case 1:
		binary.BigEndian.PutUint16(b[o:], 0x8100)
		binary.BigEndian.PutUint16(b[o+2:], f.vlan)
		o += 4
	}
	binary.BigEndian.PutUint16(b[o:], etype)
	return o + 2
}

func l2Len(f *flow) int { return 14 + 4*int(f.tags) }

// ipv4 writes a 20-byte IPv4 header with its checksum.
func ipv4(b []byte, src, dst *[16]byte, proto uint8, totalLen int, id uint16, frag uint16) {
	b[0] = 0x45
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:], uint16(totalLen))
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = 64
	b[9] = proto
	b[10], b[11] = 0, 0
	copy(b[12:16], src[:4])
	copy(b[16:20], dst[:4])
	binary.BigEndian.PutUint16(b[10:], fold(sum16(b[:20], 0)))
}

// ipv6 writes a 40-byte IPv6 header.
func ipv6(b []byte, src, dst *[16]byte, next uint8, payloadLen int, flowLabel uint32) {
	binary.BigEndian.PutUint32(b[0:], 6<<28|flowLabel&0xfffff)
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	b[6] = next
	b[7] = 64
	copy(b[8:24], src[:])
	copy(b[24:40], dst[:])
}

// pseudo is the checksum sum of the TCP/UDP pseudo-header.
func pseudo(v6 bool, src, dst *[16]byte, proto uint8, l4Len int) uint64 {
	if v6 {
		return sum16(src[:], sum16(dst[:], uint64(l4Len)+uint64(proto)))
	}
	return sum16(src[:4], sum16(dst[:4], uint64(l4Len)+uint64(proto)))
}

// sum16 adds b as big-endian 16-bit words to s. Adding 32-bit words instead
// gives the same one's-complement sum once folded, at half the loads.
func sum16(b []byte, s uint64) uint64 {
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		s += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// fold folds a sum to 16 bits and complements it: the Internet checksum.
func fold(s uint64) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// payload fills b with the flow's kind of bytes.
func (g *generator) payload(b []byte, text bool) {
	if !text {
		g.r.fill(b)
		return
	}
	for len(b) > 0 {
		off := g.r.intn(len(g.text) - maxFrame)
		b = b[copy(b, g.text[off:off+min(len(b), maxFrame)]):]
	}
}

// IMIX size classes, as frame lengths.
var imixSizes = [3]int{64, 594, 1518}

// tcpPacket writes the next packet of a random TCP flow into b.
func (g *generator) tcpPacket(b []byte) []byte {
	i := g.pick(len(g.tcp))
	f := &g.tcp[i]
	if !f.started {
		kind := flowTCP4
		if g.r.intn(5) == 0 {
			kind = flowTCP6
		}
		g.start(f, i, kind)
	}
	v6 := f.kind == flowTCP6
	var flags uint8
	var fromClient bool
	var opts []byte
	plen := 0
	pad := 0
	hdrs := l2Len(f) + 20 + 20
	if v6 {
		hdrs = l2Len(f) + 40 + 20
	}
	switch f.state {
	case 0:
		flags, fromClient, opts = 0x02, true, synOpts[:]
	case 1:
		flags, fromClient, opts = 0x12, false, synOpts[:]
	case 2:
		flags, fromClient = 0x10, true
	default:
		fromClient = g.r.intn(4) == 0 // mostly downloads
		flags = 0x10
		switch u := g.r.intn(12); {
		case u < 7:
			if g.r.intn(2) == 0 {
				fromClient = !fromClient // the receiver's pure ACK
			} else {
				flags |= 0x08
				plen = max(imixSizes[0]-hdrs, 1)
			}
		case u < 11:
			flags |= 0x08
			plen = imixSizes[1] - hdrs
		default:
			plen = imixSizes[2] - hdrs
		}
	}
	thl := 20 + len(opts)
	if plen == 0 {
		// Handshake and pure ACK frames are padded to 64 bytes, as the
		// small class of IMIX (real NICs pad to 60).
		pad = max(0, imixSizes[0]-(hdrs+len(opts)))
	}
	var src, dst *[16]byte
	var smac, dmac *[6]byte
	var sport, dport uint16
	var seq, ack uint32
	if fromClient {
		src, dst, smac, dmac, sport, dport = &f.cip, &f.sip, &f.cmac, &f.smac, f.cport, f.sport
		seq, ack = f.cseq, f.sseq
	} else {
		src, dst, smac, dmac, sport, dport = &f.sip, &f.cip, &f.smac, &f.cmac, f.sport, f.cport
		seq, ack = f.sseq, f.cseq
	}
	switch f.state {
	case 0:
		ack = 0
		f.cseq++
		f.state = 1
	case 1:
		f.sseq++
		f.state = 2
	case 2:
		f.state = 3
	}
	et := uint16(0x0800)
	if v6 {
		et = 0x86dd
	}
	o := l2(b, dmac, smac, f, et)
	l4Len := thl + plen
	if v6 {
		ipv6(b[o:], src, dst, 6, l4Len, uint32(f.cport))
		o += 40
	} else {
		f.ipid++
		ipv4(b[o:], src, dst, 6, 20+l4Len, f.ipid, 0x4000) // DF
		o += 20
	}
	t := b[o:]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = byte(thl/4) << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 64240)
	t[16], t[17], t[18], t[19] = 0, 0, 0, 0
	copy(t[20:], opts)
	g.payload(t[thl:thl+plen], f.text)
	if plen > 0 {
		if fromClient {
			f.cseq += uint32(plen)
		} else {
			f.sseq += uint32(plen)
		}
	}
	cs := fold(sum16(t[:l4Len], pseudo(v6, src, dst, 6, l4Len)))
	binary.BigEndian.PutUint16(t[16:], cs)
	end := o + l4Len
	clear(b[end : end+pad])
	return b[:end+pad]
}

// synOpts: MSS 1460, NOP, window scale 7.
var synOpts = [8]byte{2, 4, 0x05, 0xb4, 1, 3, 3, 7}

// udp writes a UDP header and checksum over the payload already at u[8:].
func udpHeader(u []byte, v6 bool, src, dst *[16]byte, sport, dport uint16, l4Len int) {
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(l4Len))
	u[6], u[7] = 0, 0
	cs := fold(sum16(u[:l4Len], pseudo(v6, src, dst, 17, l4Len)))
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], cs)
}

// udp64 writes a 64-byte Ethernet/IPv4/UDP frame of a random flow.
func (g *generator) udp64() []byte {
	i := g.pick(len(g.tcp))
	f := &g.tcp[i]
	if !f.started {
		g.start(f, i, flowUDP4)
	}
	b := g.buf[:]
	o := l2(b, &f.smac, &f.cmac, f, 0x0800)
	l4Len := 64 - o - 20
	f.ipid++
	ipv4(b[o:], &f.cip, &f.sip, 17, 20+l4Len, f.ipid, 0)
	u := b[o+20:]
	binary.BigEndian.PutUint16(u[8:], f.ipid) // a per-flow sequence number
	g.r.fill(u[10:l4Len])
	udpHeader(u, false, &f.cip, &f.sip, f.cport, f.sport, l4Len)
	return b[:64]
}

// auxFlow returns a started flow of the given kind from the aux pool. The
// pool is split in equal parts, one per kind.
func (g *generator) auxFlow(kind uint8) *flow {
	const kinds = 5 // flowUDP4 .. flowUDP6Ext
	part := len(g.aux) / kinds
	i := part*int(kind-flowUDP4) + g.pick(part)
	f := &g.aux[i]
	if !f.started {
		g.start(f, i, kind)
	}
	return f
}

// pendBuf returns the next pending frame buffer.
func (g *generator) pendBuf(n int) []byte {
	g.np = n + 1
	return g.pend[n][:]
}

// dnsNames are the query names of DNS pairs.
var dnsNames = []string{"www.example.com", "api.example.net", "cdn.example.org", "mail.example.com", "login.example.net", "static.example.org"}

// dnsPair queues a DNS A query and its answer.
func (g *generator) dnsPair() {
	f := g.auxFlow(flowDNS)
	f.seq++
	// The question: the name as labels, type A, class IN.
	var q [64]byte
	name := dnsNames[g.r.intn(len(dnsNames))]
	n := 0
	for len(name) > 0 {
		l := 0
		for l < len(name) && name[l] != '.' {
			l++
		}
		q[n] = byte(l)
		n += 1 + copy(q[n+1:], name[:l])
		name = name[min(l+1, len(name)):]
	}
	q[n] = 0
	binary.BigEndian.PutUint32(q[n+1:], 0x00010001)
	qlen := n + 5
	addr := 0xc0000200 | uint32(g.r.intn(256)) // 192.0.2.x
	for resp := 0; resp < 2; resp++ {
		b := g.pendBuf(resp)
		src, dst, smac, dmac, sport, dport := &f.cip, &f.sip, &f.cmac, &f.smac, f.cport, f.sport
		flags, an := uint16(0x0100), uint16(0) // query, recursion desired
		if resp == 1 {
			src, dst, smac, dmac, sport, dport = &f.sip, &f.cip, &f.smac, &f.cmac, f.sport, f.cport
			flags, an = 0x8180, 1 // response, recursion available, no error
		}
		o := l2(b, dmac, smac, f, 0x0800)
		d := b[o+28:]
		binary.BigEndian.PutUint16(d[0:], f.seq)
		binary.BigEndian.PutUint16(d[2:], flags)
		binary.BigEndian.PutUint16(d[4:], 1)
		binary.BigEndian.PutUint16(d[6:], an)
		binary.BigEndian.PutUint32(d[8:], 0)
		m := 12 + copy(d[12:], q[:qlen])
		if resp == 1 {
			binary.BigEndian.PutUint16(d[m:], 0xc00c) // pointer to the question's name
			binary.BigEndian.PutUint32(d[m+2:], 0x00010001)
			binary.BigEndian.PutUint32(d[m+6:], 300) // TTL
			binary.BigEndian.PutUint16(d[m+10:], 4)
			binary.BigEndian.PutUint32(d[m+12:], addr)
			m += 16
		}
		l4Len := 8 + m
		f.ipid++
		ipv4(b[o:], src, dst, 17, 20+l4Len, f.ipid, 0)
		udpHeader(b[o+20:], false, src, dst, sport, dport, l4Len)
		g.plen[resp] = o + 20 + l4Len
	}
}

// icmpPair queues an ICMP echo request and its reply (ping's 56 data bytes).
func (g *generator) icmpPair() {
	f := g.auxFlow(flowICMP)
	f.seq++
	for rep := 0; rep < 2; rep++ {
		b := g.pendBuf(rep)
		src, dst, smac, dmac := &f.cip, &f.sip, &f.cmac, &f.smac
		typ := byte(8)
		if rep == 1 {
			src, dst, smac, dmac, typ = &f.sip, &f.cip, &f.smac, &f.cmac, 0
		}
		o := l2(b, dmac, smac, f, 0x0800)
		f.ipid++
		ipv4(b[o:], src, dst, 1, 20+64, f.ipid, 0)
		c := b[o+20 : o+20+64]
		c[0], c[1], c[2], c[3] = typ, 0, 0, 0
		binary.BigEndian.PutUint16(c[4:], f.cport) // identifier
		binary.BigEndian.PutUint16(c[6:], f.seq)
		binary.BigEndian.PutUint64(c[8:], uint64(f.seq)*1000003)
		for i := 16; i < 64; i++ {
			c[i] = byte(i - 8) // ping's 0x08, 0x09, ... pattern
		}
		binary.BigEndian.PutUint16(c[2:], fold(sum16(c, 0)))
		g.plen[rep] = o + 20 + 64
	}
}

// arpPair queues an ARP request (broadcast) and its reply, padded to 60.
func (g *generator) arpPair() {
	a := byte(1 + g.r.intn(g.hosts))
	t := byte(1 + g.r.intn(g.hosts))
	var none flow
	for rep := 0; rep < 2; rep++ {
		b := g.pendBuf(rep)
		smac := [6]byte{0x02, 0x00, 0xa0, 0, 0, a}
		tmac := [6]byte{0x02, 0x00, 0xa0, 0, 0, t}
		dst := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		spa := [4]byte{192, 168, 1, a}
		tpa := [4]byte{192, 168, 1, t}
		op := uint16(1)
		if rep == 1 {
			smac, tmac, spa, tpa, dst, op = tmac, smac, tpa, spa, smac, 2
		}
		o := l2(b, &dst, &smac, &none, 0x0806)
		p := b[o:]
		binary.BigEndian.PutUint16(p[0:], 1)
		binary.BigEndian.PutUint16(p[2:], 0x0800)
		p[4], p[5] = 6, 4
		binary.BigEndian.PutUint16(p[6:], op)
		copy(p[8:], smac[:])
		copy(p[14:], spa[:])
		if rep == 1 {
			copy(p[18:], tmac[:])
		} else {
			clear(p[18:24])
		}
		copy(p[24:], tpa[:])
		clear(p[28:46]) // padding to 60
		g.plen[rep] = 60
	}
}

// fragments queues a UDP datagram of 1.6-4 KB cut into IPv4 fragments of
// at most 1480 data bytes.
func (g *generator) fragments() {
	f := g.auxFlow(flowFrag)
	var dgram [4096]byte
	l4Len := 1600 + g.r.intn(4000-1600)
	g.payload(dgram[8:l4Len], f.text)
	udpHeader(dgram[:], false, &f.cip, &f.sip, f.cport, f.sport, l4Len)
	f.ipid++
	for off, n := 0, 0; off < l4Len && n < len(g.pend); n++ {
		chunk := min(1480, l4Len-off)
		mf := uint16(0)
		if off+chunk < l4Len {
			mf = 0x2000
		}
		b := g.pendBuf(n)
		o := l2(b, &f.smac, &f.cmac, f, 0x0800)
		ipv4(b[o:], &f.cip, &f.sip, 17, 20+chunk, f.ipid, mf|uint16(off/8))
		copy(b[o+20:], dgram[off:off+chunk])
		g.plen[n] = o + 20 + chunk
		off += chunk
	}
}

// udp6Ext writes an IPv6 UDP packet behind a Hop-by-Hop or Destination
// Options header (8 bytes: next header, length 0, PadN).
func (g *generator) udp6Ext(b []byte) []byte {
	f := g.auxFlow(flowUDP6Ext)
	o := l2(b, &f.smac, &f.cmac, f, 0x86dd)
	ext := uint8(0) // Hop-by-Hop
	if g.r.intn(2) == 0 {
		ext = 60 // Destination Options
	}
	plen := 40 + g.r.intn(400)
	l4Len := 8 + plen
	ipv6(b[o:], &f.cip, &f.sip, ext, 8+l4Len, uint32(f.cport))
	e := b[o+40:]
	e[0], e[1], e[2], e[3] = 17, 0, 1, 4 // next: UDP; PadN of 4
	clear(e[4:8])
	u := e[8:]
	g.payload(u[8:l4Len], f.text)
	udpHeader(u, true, &f.cip, &f.sip, f.cport, f.sport, l4Len)
	return b[:o+48+l4Len]
}

// udpOther writes an IPv4 UDP packet of 60-1392 bytes (QUIC-like when the
// payload is random).
func (g *generator) udpOther(b []byte) []byte {
	f := g.auxFlow(flowUDP4)
	fromClient := g.r.intn(2) == 0
	src, dst, smac, dmac, sport, dport := &f.cip, &f.sip, &f.cmac, &f.smac, f.cport, f.sport
	if !fromClient {
		src, dst, smac, dmac, sport, dport = &f.sip, &f.cip, &f.smac, &f.cmac, f.sport, f.cport
	}
	o := l2(b, dmac, smac, f, 0x0800)
	l4Len := 8 + 18 + g.r.intn(1350-18)
	u := b[o+20:]
	g.payload(u[8:l4Len], f.text)
	f.ipid++
	ipv4(b[o:], src, dst, 17, 20+l4Len, f.ipid, 0)
	udpHeader(u, false, src, dst, sport, dport, l4Len)
	return b[:o+20+l4Len]
}

// textWords make up the text-like payload: HTTP, JSON and log lines.
var textWords = []string{
	"GET", "POST", "/api/v1/items", "/index.html", "HTTP/1.1", "200", "OK", "Host:", "example.com",
	"Content-Type:", "application/json", "text/html;", "charset=utf-8", "Accept-Encoding:", "gzip,",
	"User-Agent:", "Mozilla/5.0", "Cache-Control:", "max-age=3600", "{\"id\":", "\"name\":", "\"value\":",
	"\"status\":", "\"ok\"", "true,", "false,", "null,", "[", "]", "},", "INFO", "WARN", "request", "completed",
	"in", "ms", "user", "session", "token", "the", "of", "and", "to", "a", "SELECT", "FROM", "WHERE", "orders",
}

// buildText makes 256 KiB of text-like bytes: lines of words and numbers,
// which compress several times, as HTTP and logs do.
func buildText(r *rng) []byte {
	const size = 256 << 10
	t := make([]byte, 0, size+64)
	for len(t) < size {
		n := 4 + r.intn(12)
		for i := 0; i < n; i++ {
			if r.intn(5) == 0 {
				t = fmt.Appendf(t, "%d ", r.intn(100000))
			} else {
				t = append(t, textWords[r.intn(len(textWords))]...)
				t = append(t, ' ')
			}
		}
		t = append(t, '\r', '\n')
	}
	return t[:size]
}
