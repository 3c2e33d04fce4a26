package tracegen

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
)

// KindApp is the application trace: HTTP/1.1, DNS, PostgreSQL and Redis
// conversations with real handshakes, ACKs and known timings, for the
// in-stream analytics. AppGroundTruth lists what each exchange is.
//
// The trace models one capture point next to the clients (and, for the
// tier conversations, next to the front end F, which sees both of its legs).
// Conversations start at exponential intervals of mean appMeanPackets/PPS,
// so the packet rate is about PPS; within a conversation the timing is
// real: round trips, server think time, client think time. Frames from all
// conversations are merged by timestamp, so timestamps never decrease.
// Flows and VLANs do not apply: frames are untagged IPv4. Client endpoints
// are 997 hosts in 10.1.0.0/16 with ports from 20000 up.
//
// Mix of conversations (each drawn from the seed):
//
//	35% HTTP/1.1 to port 80: 1-4 keep-alive requests (GET 3/4, POST 1/4)
//	22% DNS over UDP: an A query, half the time an AAAA query 15 µs later
//	 3% DNS over TCP: one query with the 2-byte length prefix
//	14% PostgreSQL: startup, then 1-4 simple queries, Terminate
//	14% Redis (RESP2): 1-6 commands
//	12% tier: an HTTP front end F (port 8080) that answers each request
//	    only after 1-2 calls to its PostgreSQL or Redis backend
//
// Server behaviour (class) per conversation, and per backend connection of
// a tier: in every run of 20 consecutive such conversations exactly 14 are
// fast, 3 slow-app and 3 slow-net, in an order shuffled by the seed. With
// N = the round trip from the capture point to the server and back
// (AppExchange.NetworkNS) and T = the server's think time:
//
//	fast      ACK piggybacked on the response:  ack = resp = req + N + T    (T 0.1-3 ms; Redis 20-200 µs)
//	slow-app  bare ACK, payload 40 ms later:    ack = req + N, resp = ack + 40 ms
//	slow-net  the ACK is 30 ms late, with data: ack = resp = req + N + 30 ms + T
//
// N is 0.5-20 ms for the clients' servers (so a fast answer always comes
// before a slow-net one could), 150-800 µs from F to its backend. UDP DNS
// has the same three timings without the ACK.
const KindApp = "app"

// Exchange classes (AppExchange.Class).
const (
	AppFast    = "fast"     // response after a short think time, ACK piggybacked on it
	AppSlowApp = "slow-app" // bare ACK after the round trip, response 40 ms after the ACK
	AppSlowNet = "slow-net" // the path to the server 30 ms slower, from the handshake on
	AppTier    = "tier"     // a front end's answer, waiting on its backend exchanges
)

// Exchange protocols (AppExchange.Proto).
const (
	AppHTTP     = "http"
	AppDNS      = "dns"
	AppPostgres = "postgres"
	AppRedis    = "redis"
)

// Timing constants of the app trace.
const (
	appSlowAppNS   = 40_000_000 // slow-app: response this long after the bare ACK
	appSlowNetNS   = 30_000_000 // slow-net: extra round trip of the server's leg (handshake included)
	appMSS         = 1460       // payload bytes per TCP segment
	appSegGapNS    = 12_000     // between back-to-back full segments (1 Gbit/s)
	appMeanPackets = 16         // about the mean frames per conversation (measured: TestAppRate)
)

// AppExchange is one request and its response in an app trace: the ground
// truth that analytics are checked against. Times are Unix ns timestamps of
// frames in the trace.
type AppExchange struct {
	Proto     string         // AppHTTP, AppDNS, AppPostgres or AppRedis
	Transport string         // "tcp" or "udp"
	Client    netip.AddrPort // the side that sent the request (for a backend exchange: F)
	Server    netip.AddrPort
	Class     string // AppFast, AppSlowApp, AppSlowNet or AppTier (front end of a tier)

	ReqFirstNS  int64 // first packet carrying request bytes
	ReqLastNS   int64 // packet carrying the request's last byte
	RespFirstNS int64 // first packet carrying response bytes
	RespLastNS  int64 // packet carrying the response's last byte
	// ServerAckNS is the first packet from the server whose ACK number
	// covers the whole request: a bare ACK for slow-app, else the first
	// response packet. 0 over UDP.
	ServerAckNS int64
	ReqPackets  int // packets carrying request bytes
	RespPackets int // packets carrying response bytes
	ReqBytes    int // request bytes (TCP or UDP payload; DNS over TCP includes the length prefix)
	RespBytes   int

	// NetworkNS + ThinkNS = RespFirstNS - ReqLastNS. NetworkNS is the round
	// trip to the server as seen at the capture point, including the
	// slow-net delay; ThinkNS the server's own time (40 ms for slow-app,
	// SelfNS+BackendNS for a tier front end, whose NetworkNS is 0: the
	// capture point is next to F).
	NetworkNS int64
	ThinkNS   int64

	// Key fields; zero when they do not apply.
	Method  string // HTTP
	Host    string // HTTP Host header
	Path    string // HTTP request target
	Status  int    // HTTP status code
	Chunked bool   // HTTP response uses chunked transfer coding
	QName   string // DNS question name, without the final dot
	QType   uint16 // DNS question type: 1 (A) or 28 (AAAA)
	RCode   int    // DNS response code: 0 NOERROR, 3 NXDOMAIN
	DNSID   uint16 // DNS message ID
	// Command is the Redis command name (upper case), or for PostgreSQL
	// "startup" (StartupMessage -> ReadyForQuery) or "query" ('Q').
	Command   string
	SQL       string // PostgreSQL query text
	ErrorCode string // PostgreSQL SQLSTATE, or Redis error prefix (ERR, WRONGTYPE)

	// Tier links, as indexes into the slice AppGroundTruth returns. Frontend
	// is -1 unless the exchange was made by F for that front-end request.
	Frontend  int
	Backends  []int // front end: its backend exchanges, in time order
	BackendNS int64 // front end: sum over Backends of RespLastNS-ReqFirstNS
	SelfNS    int64 // front end: RespFirstNS-ReqLastNS-BackendNS, F's own time
}

// ResponseNS is the time from the request's last packet to the response's
// first: what the client waits at the capture point.
func (e *AppExchange) ResponseNS() int64 { return e.RespFirstNS - e.ReqLastNS }

// AppGroundTruth returns the exchanges of the app trace of opts whose every
// packet is in the trace (the first opts.Packets frames), in the order
// their conversations start. It generates the trace without writing it.
func AppGroundTruth(opts Options) ([]AppExchange, error) {
	a, err := newAppGen(opts)
	if err != nil {
		return nil, err
	}
	a.keep = true
	if err := a.run(nil); err != nil {
		return nil, err
	}
	idx := make([]int, len(a.exs))
	var out []AppExchange
	for i := range a.exs {
		idx[i] = -1
		if a.complete[i] {
			idx[i] = len(out)
			out = append(out, a.exs[i])
		}
	}
	for i := range out {
		e := &out[i]
		if e.Frontend >= 0 {
			e.Frontend = idx[e.Frontend]
		}
		bs := e.Backends
		e.Backends = nil
		for _, b := range bs {
			if idx[b] >= 0 {
				e.Backends = append(e.Backends, idx[b])
			}
		}
	}
	return out, nil
}

// generateApp is GenerateFrames for KindApp.
func generateApp(opts Options, fn func(ts int64, frame []byte) error) (Stats, error) {
	a, err := newAppGen(opts)
	if err != nil {
		return Stats{}, err
	}
	err = a.run(fn)
	return a.stats, err
}

// Server behaviours, indexes into appClassNames.
const (
	appFast uint8 = iota
	appSlowApp
	appSlowNet
	appTier
)

var appClassNames = [...]string{AppFast, AppSlowApp, AppSlowNet, AppTier}

// appPkt is one frame of a conversation, serialised only when emitted.
type appPkt struct {
	ts         int64
	seq, ack   uint32
	off, n     int32 // payload: conv.data[off:off+n]
	done       int32 // the exchange this packet completes, or -1
	conn       uint8 // index in conv.conns
	flags      uint8 // TCP flags; 0 over UDP
	fromClient bool
}

// appConv is a conversation: its connections and all its frames, sorted by
// time, built in one go when it starts.
type appConv struct {
	id    uint64
	conns []flow
	pkts  []appPkt
	data  []byte
	pos   int // next frame to emit
}

// appSide is a connection with its timing at the capture point.
type appSide struct {
	conn  int
	srv   int64 // from a client packet to the server's answer, without think time
	cli   int64 // from a server packet to the client's answer
	class uint8
}

// appGen generates an app trace.
type appGen struct {
	opts  Options
	r     rng
	stats Stats
	text  []byte

	keep     bool // collect ground truth
	exs      []AppExchange
	complete []bool
	scratch  AppExchange // written to when not keeping

	heap      []*appConv // active conversations by (next frame ts, id)
	free      []*appConv
	nextStart int64
	meanGap   float64 // ns between conversation starts
	nconv     uint64
	nclient   uint64 // client endpoints handed out
	nfront    uint64 // F's backend connections opened
	classes   [20]uint8
	classPos  int

	buf [maxFrame]byte
}

func newAppGen(opts Options) (*appGen, error) {
	if opts.Packets < 0 {
		return nil, fmt.Errorf("generate trace: packets (%d) must not be negative", opts.Packets)
	}
	if opts.PPS < 0 || math.IsNaN(opts.PPS) || math.IsInf(opts.PPS, 0) {
		return nil, fmt.Errorf("generate trace: invalid packet rate %v", opts.PPS)
	}
	if opts.PPS == 0 {
		opts.PPS = 1e6
	}
	if opts.StartNS == 0 {
		opts.StartNS = defaultStartNS
	}
	a := &appGen{opts: opts, r: newRNG(opts.Seed)}
	a.text = buildText(&a.r)
	a.nextStart = opts.StartNS
	a.meanGap = appMeanPackets * 1e9 / opts.PPS
	a.classPos = len(a.classes)
	return a, nil
}

// run emits opts.Packets frames to fn (nil: none are built).
func (a *appGen) run(fn func(ts int64, frame []byte) error) error {
	for a.stats.Packets < int64(a.opts.Packets) {
		for len(a.heap) == 0 || a.nextStart <= a.heap[0].pkts[a.heap[0].pos].ts {
			a.push(a.build(a.nextStart))
			gap := -math.Log(1-float64(a.r.next()>>11)/(1<<53)) * a.meanGap
			a.nextStart += 1 + int64(gap)
		}
		c := a.heap[0]
		p := &c.pkts[c.pos]
		f := &c.conns[p.conn]
		if !f.started {
			f.started = true
			a.stats.Flows++
		}
		a.stats.Packets++
		if fn != nil {
			frame := a.frame(c, p)
			a.stats.Bytes += int64(len(frame))
			if err := fn(p.ts, frame); err != nil {
				return err
			}
		}
		if p.done >= 0 {
			a.complete[p.done] = true
		}
		c.pos++
		if c.pos == len(c.pkts) {
			a.pop()
			a.free = append(a.free, c)
		} else {
			a.down(0)
		}
	}
	return nil
}

func (a *appGen) less(i, j int) bool {
	x, y := a.heap[i], a.heap[j]
	tx, ty := x.pkts[x.pos].ts, y.pkts[y.pos].ts
	return tx < ty || tx == ty && x.id < y.id
}

func (a *appGen) push(c *appConv) {
	a.heap = append(a.heap, c)
	for i := len(a.heap) - 1; i > 0; {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a.heap[i], a.heap[p] = a.heap[p], a.heap[i]
		i = p
	}
}

func (a *appGen) pop() {
	n := len(a.heap) - 1
	a.heap[0] = a.heap[n]
	a.heap[n] = nil
	a.heap = a.heap[:n]
	a.down(0)
}

func (a *appGen) down(i int) {
	n := len(a.heap)
	for {
		m := i
		if l := 2*i + 1; l < n && a.less(l, m) {
			m = l
		}
		if r := 2*i + 2; r < n && a.less(r, m) {
			m = r
		}
		if m == i {
			return
		}
		a.heap[i], a.heap[m] = a.heap[m], a.heap[i]
		i = m
	}
}

// build makes the conversation starting at t.
func (a *appGen) build(t int64) *appConv {
	var c *appConv
	if n := len(a.free); n > 0 {
		c = a.free[n-1]
		a.free = a.free[:n-1]
		c.conns, c.pkts, c.data, c.pos = c.conns[:0], c.pkts[:0], c.data[:0], 0
	} else {
		c = &appConv{}
	}
	c.id = a.nconv
	a.nconv++
	switch u := a.r.intn(100); {
	case u < 35:
		a.httpConv(c, t)
	case u < 57:
		a.dnsUDPConv(c, t)
	case u < 60:
		a.dnsTCPConv(c, t)
	case u < 74:
		a.pgConv(c, t)
	case u < 88:
		a.redisConv(c, t)
	default:
		a.tierConv(c, t)
	}
	// Frames were made in causal order per connection; a client's ACK may
	// be timed after the server's next segment, so sort (stably: equal
	// times keep their causal order).
	slices.SortStableFunc(c.pkts, func(x, y appPkt) int { return cmp.Compare(x.ts, y.ts) })
	return c
}

// between returns a uniform time in [lo, hi] ns.
func (a *appGen) between(lo, hi int64) int64 { return lo + int64(a.r.intn(int(hi-lo+1))) }

// nextClass deals the server behaviours from shuffled decks of 20.
func (a *appGen) nextClass() uint8 {
	if a.classPos == len(a.classes) {
		for i := range a.classes {
			switch {
			case i < 14:
				a.classes[i] = appFast
			case i < 17:
				a.classes[i] = appSlowApp
			default:
				a.classes[i] = appSlowNet
			}
		}
		for i := len(a.classes) - 1; i > 0; i-- {
			j := a.r.intn(i + 1)
			a.classes[i], a.classes[j] = a.classes[j], a.classes[i]
		}
		a.classPos = 0
	}
	a.classPos++
	return a.classes[a.classPos-1]
}

// clientSide returns a new client endpoint: 997 hosts in 10.1.0.0/16, each
// with ports from 20000 up, so no 5-tuple repeats in the first 39.88M.
func (a *appGen) clientEnd() ([4]byte, uint16) {
	n := a.nclient
	a.nclient++
	h := n%997 + 1
	return [4]byte{10, 1, byte(h >> 8), byte(h)}, uint16(20000 + (n/997)%40000)
}

// conn adds a connection to c and returns its index.
func (a *appGen) conn(c *appConv, cip, sip [4]byte, cport, sport uint16, udp bool) int {
	var f flow
	f.kind = flowTCP4
	if udp {
		f.kind = flowUDP4
	}
	copy(f.cip[:], cip[:])
	copy(f.sip[:], sip[:])
	f.cmac = [6]byte{0x02, 0x00, cip[0], cip[1], cip[2], cip[3]}
	f.smac = [6]byte{0x02, 0x01, sip[0], sip[1], sip[2], sip[3]}
	f.cport, f.sport = cport, sport
	f.cseq, f.sseq = uint32(a.r.next()), uint32(a.r.next())
	f.ipid = uint16(a.r.next())
	c.conns = append(c.conns, f)
	return len(c.conns) - 1
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpPSH = 0x08
	tcpACK = 0x10
)

// pkt appends a frame carrying c.data[off:off+n] and advances the
// connection's sequence numbers. It returns the frame's index in c.pkts.
func (a *appGen) pkt(c *appConv, ci int, ts int64, fromClient bool, flags uint8, off, n int) int {
	f := &c.conns[ci]
	p := appPkt{ts: ts, off: int32(off), n: int32(n), done: -1, conn: uint8(ci), flags: flags, fromClient: fromClient}
	if f.kind == flowTCP4 {
		adv := uint32(n)
		if flags&(tcpSYN|tcpFIN) != 0 {
			adv++
		}
		if fromClient {
			p.seq, p.ack = f.cseq, f.sseq
			f.cseq += adv
		} else {
			p.seq, p.ack = f.sseq, f.cseq
			f.sseq += adv
		}
		if flags&tcpACK == 0 {
			p.ack = 0
		}
	}
	c.pkts = append(c.pkts, p)
	return len(c.pkts) - 1
}

// handshake makes the 3-way handshake starting at t and returns when the
// client sends its first data.
func (a *appGen) handshake(c *appConv, s *appSide, t int64) int64 {
	if s.class == appSlowNet {
		// A slow path is slow for every packet, the handshake's too: a
		// late ACK riding on the response alone says the server was
		// slow (issue 11).
		s.srv += appSlowNetNS
	}
	a.pkt(c, s.conn, t, true, tcpSYN, 0, 0)
	t += s.srv
	a.pkt(c, s.conn, t, false, tcpSYN|tcpACK, 0, 0)
	t += s.cli
	a.pkt(c, s.conn, t, true, tcpACK, 0, 0)
	return t + a.between(5_000, 50_000)
}

// close makes the client's FIN at t, the server's FIN/ACK and the last ACK.
func (a *appGen) close(c *appConv, s *appSide, t int64) int64 {
	a.pkt(c, s.conn, t, true, tcpFIN|tcpACK, 0, 0)
	t += s.srv
	a.pkt(c, s.conn, t, false, tcpFIN|tcpACK, 0, 0)
	t += s.cli
	a.pkt(c, s.conn, t, true, tcpACK, 0, 0)
	return t
}

// ex returns exchange i (valid until the next newEx), or a scratch one.
func (a *appGen) ex(i int) *AppExchange {
	if i < 0 {
		return &a.scratch
	}
	return &a.exs[i]
}

// newEx starts an exchange on connection ci of c and returns its index (-1
// when not keeping ground truth).
func (a *appGen) newEx(c *appConv, s *appSide, proto string) int {
	if !a.keep {
		return -1
	}
	f := &c.conns[s.conn]
	tr := "tcp"
	if f.kind == flowUDP4 {
		tr = "udp"
	}
	a.exs = append(a.exs, AppExchange{
		Proto:     proto,
		Transport: tr,
		Client:    netip.AddrPortFrom(netip.AddrFrom4([4]byte(f.cip[:4])), f.cport),
		Server:    netip.AddrPortFrom(netip.AddrFrom4([4]byte(f.sip[:4])), f.sport),
		Class:     appClassNames[s.class],
		Frontend:  -1,
	})
	a.complete = append(a.complete, false)
	return len(a.exs) - 1
}

// segments sends c.data[off:end] from one side starting at t, in segments
// of at most appMSS. When the server sends, the client ACKs every second
// segment and the last one. It returns the times of the first and last
// segments, their count, and the last one's index.
func (a *appGen) segments(c *appConv, s *appSide, fromClient bool, t int64, off, end int) (first, last int64, n, li int) {
	first = t
	for o := off; o < end; n++ {
		seg := min(appMSS, end-o)
		flags := uint8(tcpACK)
		if o+seg == end {
			flags |= tcpPSH
		}
		last = t
		li = a.pkt(c, s.conn, t, fromClient, flags, o, seg)
		o += seg
		if !fromClient && (n%2 == 1 || o == end) {
			a.pkt(c, s.conn, t+s.cli, true, tcpACK, 0, 0)
		}
		t += appSegGapNS
	}
	return first, last, n, li
}

// request sends the request c.data[off:end] at t, over TCP or UDP, and
// returns the time of its last packet.
func (a *appGen) request(c *appConv, s *appSide, t int64, off, end, exi int) int64 {
	e := a.ex(exi)
	var first, last int64
	var n int
	if c.conns[s.conn].kind == flowUDP4 {
		a.pkt(c, s.conn, t, true, 0, off, end-off)
		first, last, n = t, t, 1
	} else {
		first, last, n, _ = a.segments(c, s, true, t, off, end)
	}
	e.ReqFirstNS, e.ReqLastNS, e.ReqPackets, e.ReqBytes = first, last, n, end-off
	return last
}

// respond answers the request that ended at reqLast with c.data[off:end],
// after think ns of server time, as the connection's class says. It
// returns when the client acts next (after its ACK of the response).
func (a *appGen) respond(c *appConv, s *appSide, reqLast, think int64, off, end, exi int) int64 {
	e := a.ex(exi)
	udp := c.conns[s.conn].kind == flowUDP4
	var at int64
	switch s.class {
	case appFast:
		e.NetworkNS, e.ThinkNS = s.srv, think
	case appSlowNet:
		e.NetworkNS, e.ThinkNS = s.srv, think // handshake slowed s.srv
		if udp {
			e.NetworkNS += appSlowNetNS
		}
	case appSlowApp:
		e.NetworkNS, e.ThinkNS = s.srv, appSlowAppNS
		if !udp {
			at = reqLast + s.srv
			a.pkt(c, s.conn, at, false, tcpACK, 0, 0)
		}
	default:
		panic("BUG: respond to a tier front end")
	}
	return a.respondAt(c, s, reqLast+e.NetworkNS+e.ThinkNS, at, off, end, exi)
}

// respondAt sends the response c.data[off:end] at t; ack is the time of an
// earlier bare ACK, or 0 when the first response packet carries it.
func (a *appGen) respondAt(c *appConv, s *appSide, t, ack int64, off, end, exi int) int64 {
	e := a.ex(exi)
	var first, last int64
	var n, li int
	if c.conns[s.conn].kind == flowUDP4 {
		li = a.pkt(c, s.conn, t, false, 0, off, end-off)
		first, last, n = t, t, 1
	} else {
		first, last, n, li = a.segments(c, s, false, t, off, end)
		if ack == 0 {
			ack = first
		}
		e.ServerAckNS = ack
	}
	c.pkts[li].done = int32(exi)
	e.RespFirstNS, e.RespLastNS, e.RespPackets, e.RespBytes = first, last, n, end-off
	return last + s.cli
}

// keepStr returns b as a string when keeping ground truth.
func (a *appGen) keepStr(b []byte) string {
	if !a.keep {
		return ""
	}
	return string(b)
}

// appendText appends n bytes of text-like payload.
func (a *appGen) appendText(b []byte, n int) []byte {
	for n > 0 {
		k := min(n, maxFrame)
		off := a.r.intn(len(a.text) - k)
		b = append(b, a.text[off:off+k]...)
		n -= k
	}
	return b
}

// --- HTTP ---

var appHTTPHosts = [...]string{"www.example.com", "api.example.net", "shop.example.org", "static.example.com", "news.example.net"}

var appGETPaths = [...]string{"/", "/index.html", "/static/app.js", "/static/style.css", "/api/v1/items/", "/api/v1/users/", "/missing/"}

// httpConv is a client's keep-alive connection to a web server.
func (a *appGen) httpConv(c *appConv, t int64) {
	hi := a.r.intn(len(appHTTPHosts))
	cip, cport := a.clientEnd()
	ci := a.conn(c, cip, [4]byte{198, 51, 100, byte(10 + hi)}, cport, 80, false)
	s := appSide{conn: ci, srv: a.between(500_000, 20_000_000), cli: a.between(15_000, 60_000), class: a.nextClass()}
	t = a.handshake(c, &s, t)
	for n := 1 + a.r.intn(4); n > 0; n-- {
		exi := a.newEx(c, &s, AppHTTP)
		reqLast, status := a.httpRequest(c, &s, t, appHTTPHosts[hi], exi)
		off := len(c.data)
		c.data = a.appendHTTPResponse(c.data, status, exi)
		t = a.respond(c, &s, reqLast, a.between(100_000, 3_000_000), off, len(c.data), exi)
		t += a.between(500_000, 20_000_000) // client think
	}
	a.close(c, &s, t)
}

// httpRequest sends a GET or POST at t and returns the time of its last
// packet and the status the server will answer.
func (a *appGen) httpRequest(c *appConv, s *appSide, t int64, host string, exi int) (int64, int) {
	off := len(c.data)
	b := c.data
	method := "GET"
	var pathStart, pathEnd, status int
	if a.r.intn(4) == 0 {
		method = "POST"
		b = append(b, "POST "...)
		pathStart = len(b) - off
		b = append(b, "/api/v1/orders"...)
		pathEnd = len(b) - off
		body := 60 + a.r.intn(340)
		if a.r.intn(8) == 0 {
			body = 2000 + a.r.intn(2000) // a request of 2-3 segments
		}
		b = append(b, " HTTP/1.1\r\nHost: "...)
		b = append(b, host...)
		b = append(b, "\r\nUser-Agent: tapvault-gen/1\r\nContent-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(body), 10)
		b = append(b, "\r\n\r\n{\"order\":\""...)
		b = a.appendText(b, body-12)
		b = append(b, "\"}"...)
		status = 201
	} else {
		p := appGETPaths[a.r.intn(len(appGETPaths))]
		b = append(b, "GET "...)
		pathStart = len(b) - off
		b = append(b, p...)
		if p[len(p)-1] == '/' && len(p) > 1 {
			b = strconv.AppendInt(b, int64(a.r.intn(100000)), 10)
		}
		pathEnd = len(b) - off
		b = append(b, " HTTP/1.1\r\nHost: "...)
		b = append(b, host...)
		b = append(b, "\r\nUser-Agent: tapvault-gen/1\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n"...)
		status = 200
		if p == "/missing/" {
			status = 404
		}
	}
	if status != 404 && a.r.intn(12) == 0 {
		status = 500
	}
	c.data = b
	e := a.ex(exi)
	e.Method, e.Host, e.Path, e.Status = method, host, a.keepStr(b[off+pathStart:off+pathEnd]), status
	return a.request(c, s, t, off, len(c.data), exi), status
}

// appendHTTPResponse appends a response with the given status: a short
// body for errors; else 200-1200 bytes (70%), 1.5-6 KB (20%) or 10-30 KB
// (10%), with Content-Length or, one time in five, chunked.
func (a *appGen) appendHTTPResponse(b []byte, status, exi int) []byte {
	var reason string
	var size int
	switch status {
	case 200:
		reason = "OK"
		switch u := a.r.intn(10); {
		case u < 7:
			size = 200 + a.r.intn(1000)
		case u < 9:
			size = 1500 + a.r.intn(4500)
		default:
			size = 10000 + a.r.intn(20000)
		}
	case 201:
		reason, size = "Created", 20+a.r.intn(60)
	case 404:
		reason, size = "Not Found", 150
	case 500:
		reason, size = "Internal Server Error", 60
	}
	chunked := status == 200 && a.r.intn(5) == 0
	a.ex(exi).Chunked = chunked
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, reason...)
	b = append(b, "\r\nServer: nginx/1.24.0\r\nContent-Type: text/html; charset=utf-8\r\nConnection: keep-alive\r\n"...)
	if !chunked {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(size), 10)
		b = append(b, "\r\n\r\n"...)
		return a.appendText(b, size)
	}
	b = append(b, "Transfer-Encoding: chunked\r\n\r\n"...)
	for size > 0 {
		n := min(size, 1+a.r.intn(4096))
		b = strconv.AppendInt(b, int64(n), 16)
		b = append(b, "\r\n"...)
		b = a.appendText(b, n)
		b = append(b, "\r\n"...)
		size -= n
	}
	return append(b, "0\r\n\r\n"...)
}

// --- DNS ---

var appDNSNames = [...]string{"www.example.com", "api.example.net", "cdn.example.org", "mail.example.com", "login.example.net", "static.example.org", "img.example.com", "ws.example.net"}

var appNXNames = [...]string{"nosuch.example.com", "wpad.example.net", "typo.exmaple.org"}

// appendDNS appends a query (resp false) or its response for name/qtype.
// A response to a name that exists has 1-2 answers.
func (a *appGen) appendDNS(b []byte, id uint16, name string, qtype uint16, resp bool, rcode int) []byte {
	flags, an := uint16(0x0100), 0
	if resp {
		flags = 0x8180 | uint16(rcode)
		if rcode == 0 {
			an = 1 + a.r.intn(2)
		}
	}
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(an))
	b = binary.BigEndian.AppendUint32(b, 0)
	for len(name) > 0 {
		l := 0
		for l < len(name) && name[l] != '.' {
			l++
		}
		b = append(b, byte(l))
		b = append(b, name[:l]...)
		name = name[min(l+1, len(name)):]
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, 1)
	for i := 0; i < an; i++ {
		b = binary.BigEndian.AppendUint16(b, 0xc00c) // the question's name
		b = binary.BigEndian.AppendUint16(b, qtype)
		b = binary.BigEndian.AppendUint16(b, 1)
		b = binary.BigEndian.AppendUint32(b, 300)
		if qtype == 28 {
			b = binary.BigEndian.AppendUint16(b, 16)
			b = append(b, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(1+a.r.intn(250)))
		} else {
			b = binary.BigEndian.AppendUint16(b, 4)
			b = append(b, 192, 0, 2, byte(1+a.r.intn(250)))
		}
	}
	return b
}

// dnsQuestion picks a name (1 in 10 does not exist) and a DNS ID.
func (a *appGen) dnsQuestion() (name string, rcode int, id uint16) {
	if a.r.intn(10) == 0 {
		return appNXNames[a.r.intn(len(appNXNames))], 3, uint16(a.r.next())
	}
	return appDNSNames[a.r.intn(len(appDNSNames))], 0, uint16(a.r.next())
}

func (a *appGen) dnsSide(ci int) appSide {
	return appSide{conn: ci, srv: a.between(500_000, 20_000_000), cli: a.between(15_000, 60_000), class: a.nextClass()}
}

// dnsUDPConv is an A query, and half the time an AAAA query for the same
// name 15 µs later (as getaddrinfo sends them), with their answers.
func (a *appGen) dnsUDPConv(c *appConv, t int64) {
	cip, cport := a.clientEnd()
	ci := a.conn(c, cip, [4]byte{198, 51, 100, 53}, cport, 53, true)
	s := a.dnsSide(ci)
	name, rcode, id := a.dnsQuestion()
	types := 1 + a.r.intn(2)
	for i := 0; i < types; i++ {
		qtype := uint16(1)
		if i == 1 {
			qtype, id = 28, id+1
		}
		exi := a.newEx(c, &s, AppDNS)
		e := a.ex(exi)
		e.QName, e.QType, e.RCode, e.DNSID = name, qtype, rcode, id
		off := len(c.data)
		c.data = a.appendDNS(c.data, id, name, qtype, false, 0)
		qt := t + int64(i)*15_000
		a.request(c, &s, qt, off, len(c.data), exi)
		off = len(c.data)
		c.data = a.appendDNS(c.data, id, name, qtype, true, rcode)
		a.respond(c, &s, qt, a.between(100_000, 3_000_000), off, len(c.data), exi)
	}
}

// dnsTCPConv is one A or AAAA query over TCP (2-byte length prefix).
func (a *appGen) dnsTCPConv(c *appConv, t int64) {
	cip, cport := a.clientEnd()
	ci := a.conn(c, cip, [4]byte{198, 51, 100, 53}, cport, 53, false)
	s := a.dnsSide(ci)
	t = a.handshake(c, &s, t)
	name, rcode, id := a.dnsQuestion()
	qtype := uint16(1)
	if a.r.intn(2) == 0 {
		qtype = 28
	}
	exi := a.newEx(c, &s, AppDNS)
	e := a.ex(exi)
	e.QName, e.QType, e.RCode, e.DNSID = name, qtype, rcode, id
	var reqLast int64
	for resp := 0; resp < 2; resp++ {
		off := len(c.data)
		c.data = append(c.data, 0, 0)
		c.data = a.appendDNS(c.data, id, name, qtype, resp == 1, rcode)
		binary.BigEndian.PutUint16(c.data[off:], uint16(len(c.data)-off-2))
		if resp == 0 {
			reqLast = a.request(c, &s, t, off, len(c.data), exi)
		} else {
			t = a.respond(c, &s, reqLast, a.between(100_000, 3_000_000), off, len(c.data), exi)
		}
	}
	a.close(c, &s, t+a.between(100_000, 1_000_000))
}

// --- PostgreSQL ---

// appSQL is a query, the columns of its result (none for a command) and,
// for errors, the SQLSTATE and message.
type appSQL struct {
	sql      string
	cols     []string
	tag      string // CommandComplete tag ("SELECT" gets the row count)
	many     bool   // 0-100 rows (several segments), else 1
	sqlstate string
	msg      string
}

var appSQLs = [...]appSQL{
	{sql: "SELECT id, name, price FROM products WHERE id = $1", cols: []string{"id", "name", "price"}, tag: "SELECT"},
	{sql: "SELECT id, status, total FROM orders WHERE customer_id = $1 ORDER BY id DESC LIMIT 100", cols: []string{"id", "status", "total"}, tag: "SELECT", many: true},
	{sql: "SELECT count(*) FROM sessions WHERE user_id = $1", cols: []string{"count"}, tag: "SELECT"},
	{sql: "INSERT INTO events (kind, payload) VALUES ('click', '{\"x\":$1}')", tag: "INSERT 0 1"},
	{sql: "UPDATE carts SET updated_at = now() WHERE id = $1", tag: "UPDATE 1"},
	{sql: "SELECT * FROM order_itemz WHERE order_id = $1", sqlstate: "42P01", msg: "relation \"order_itemz\" does not exist"},
	{sql: "INSERT INTO users (id, email) VALUES ($1, 'dup@example.com')", sqlstate: "23505", msg: "duplicate key value violates unique constraint \"users_email_key\""},
}

// pgMsg appends a message header (type, length to be patched) and returns
// the length's offset.
func pgMsg(b []byte, typ byte) ([]byte, int) {
	b = append(b, typ, 0, 0, 0, 0)
	return b, len(b) - 4
}

func pgEnd(b []byte, at int) []byte {
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at))
	return b
}

// pgStartup is the StartupMessage and its answer on connection s; it
// returns when the client may send.
func (a *appGen) pgStartup(c *appConv, s *appSide, t int64) int64 {
	exi := a.newEx(c, s, AppPostgres)
	a.ex(exi).Command = "startup"
	off := len(c.data)
	b := append(c.data, 0, 0, 0, 0, 0, 3, 0, 0)
	b = append(b, "user\x00app\x00database\x00shop\x00application_name\x00tapvault-gen\x00\x00"...)
	c.data = pgEnd(b, off)
	reqLast := a.request(c, s, t, off, len(c.data), exi)
	off = len(c.data)
	b, at := pgMsg(c.data, 'R')
	b = pgEnd(binary.BigEndian.AppendUint32(b, 0), at) // AuthenticationOk
	for _, kv := range [...]string{"server_version\x0016.2\x00", "client_encoding\x00UTF8\x00", "TimeZone\x00UTC\x00"} {
		b, at = pgMsg(b, 'S')
		b = pgEnd(append(b, kv...), at)
	}
	b, at = pgMsg(b, 'K')
	b = binary.BigEndian.AppendUint32(b, uint32(1000+a.r.intn(60000)))
	b = pgEnd(binary.BigEndian.AppendUint32(b, uint32(a.r.next())), at)
	b, at = pgMsg(b, 'Z')
	c.data = pgEnd(append(b, 'I'), at)
	return a.respond(c, s, reqLast, a.between(300_000, 3_000_000), off, len(c.data), exi)
}

// pgQuery sends a simple query at t and returns when its request ends; the
// response is appended to c.data from the returned offset.
func (a *appGen) pgQuery(c *appConv, s *appSide, t int64, exi int) (reqLast int64, respOff int) {
	q := &appSQLs[a.r.intn(len(appSQLs))]
	if a.r.intn(3) != 0 && q.sqlstate != "" {
		q = &appSQLs[0] // errors: about 1 query in 10
	}
	off := len(c.data)
	b, at := pgMsg(c.data, 'Q')
	sqlOff := len(b)
	var ab [20]byte
	arg := strconv.AppendInt(ab[:0], int64(1+a.r.intn(99999)), 10)
	for i := 0; i < len(q.sql); i++ {
		if q.sql[i] == '$' && i+1 < len(q.sql) && q.sql[i+1] == '1' {
			b = append(b, arg...)
			i++
			continue
		}
		b = append(b, q.sql[i])
	}
	sqlEnd := len(b)
	c.data = pgEnd(append(b, 0), at)
	e := a.ex(exi)
	e.Command, e.SQL, e.ErrorCode = "query", a.keepStr(c.data[sqlOff:sqlEnd]), q.sqlstate
	reqLast = a.request(c, s, t, off, len(c.data), exi)

	respOff = len(c.data)
	b = c.data
	switch {
	case q.sqlstate != "":
		b, at = pgMsg(b, 'E')
		b = append(b, "SERROR\x00VERROR\x00C"...)
		b = append(b, q.sqlstate...)
		b = append(b, "\x00M"...)
		b = append(b, q.msg...)
		b = append(b, "\x00\x00"...)
		b = pgEnd(b, at)
	case q.cols == nil:
		b, at = pgMsg(b, 'C')
		b = pgEnd(append(append(b, q.tag...), 0), at)
	default:
		b, at = pgMsg(b, 'T')
		b = binary.BigEndian.AppendUint16(b, uint16(len(q.cols)))
		for i, col := range q.cols {
			b = append(append(b, col...), 0)
			b = binary.BigEndian.AppendUint32(b, 16384)       // table OID
			b = binary.BigEndian.AppendUint16(b, uint16(i+1)) // column number
			typ, size := uint32(23), uint16(4)                // int4
			if i > 0 {
				typ, size = 25, 0xffff // text
			}
			b = binary.BigEndian.AppendUint32(b, typ)
			b = binary.BigEndian.AppendUint16(b, size)
			b = binary.BigEndian.AppendUint32(b, 0xffffffff) // typmod -1
			b = binary.BigEndian.AppendUint16(b, 0)          // text format
		}
		b = pgEnd(b, at)
		rows := 1
		if q.many {
			rows = a.r.intn(101)
		}
		for r := 0; r < rows; r++ {
			b, at = pgMsg(b, 'D')
			b = binary.BigEndian.AppendUint16(b, uint16(len(q.cols)))
			for i := range q.cols {
				vl := len(b)
				b = append(b, 0, 0, 0, 0)
				if i == 0 {
					b = strconv.AppendInt(b, int64(1+a.r.intn(1000000)), 10)
				} else {
					b = a.appendText(b, 4+a.r.intn(20))
				}
				binary.BigEndian.PutUint32(b[vl:], uint32(len(b)-vl-4))
			}
			b = pgEnd(b, at)
		}
		b, at = pgMsg(b, 'C')
		b = append(b, "SELECT "...)
		b = pgEnd(append(strconv.AppendInt(b, int64(rows), 10), 0), at)
	}
	b, at = pgMsg(b, 'Z')
	c.data = pgEnd(append(b, 'I'), at)
	return reqLast, respOff
}

// pgTerminate sends Terminate ('X') at t: no exchange, no answer.
func (a *appGen) pgTerminate(c *appConv, s *appSide, t int64) int64 {
	off := len(c.data)
	b, at := pgMsg(c.data, 'X')
	c.data = pgEnd(b, at)
	a.segments(c, s, true, t, off, len(c.data))
	return t + a.between(10_000, 50_000)
}

// pgConv is a client's session with a PostgreSQL server.
func (a *appGen) pgConv(c *appConv, t int64) {
	cip, cport := a.clientEnd()
	ci := a.conn(c, cip, [4]byte{198, 51, 100, 20}, cport, 5432, false)
	s := appSide{conn: ci, srv: a.between(500_000, 20_000_000), cli: a.between(15_000, 60_000), class: a.nextClass()}
	t = a.handshake(c, &s, t)
	t = a.pgStartup(c, &s, t)
	for n := 1 + a.r.intn(4); n > 0; n-- {
		t += a.between(200_000, 5_000_000)
		exi := a.newEx(c, &s, AppPostgres)
		reqLast, off := a.pgQuery(c, &s, t, exi)
		t = a.respond(c, &s, reqLast, a.between(100_000, 3_000_000), off, len(c.data), exi)
	}
	t = a.pgTerminate(c, &s, t+a.between(100_000, 1_000_000))
	a.close(c, &s, t)
}

// --- Redis ---

// appendBulk appends a RESP bulk string.
func appendBulk[T string | []byte](b []byte, s T) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, "\r\n"...)
	b = append(b, s...)
	return append(b, "\r\n"...)
}

// redisCommand sends one command at t; the reply is appended to c.data from
// the returned offset.
func (a *appGen) redisCommand(c *appConv, s *appSide, t int64, exi int) (reqLast int64, respOff int) {
	var key [24]byte
	k := append(key[:0], "user:"...)
	k = strconv.AppendInt(k, int64(a.r.intn(100000)), 10)
	var cmd, errCode string
	u := a.r.intn(20)
	off := len(c.data)
	b := c.data
	switch {
	case u < 6:
		cmd = "GET"
		b = append(b, "*2\r\n"...)
	case u < 10:
		cmd = "SET"
		b = append(b, "*3\r\n"...)
	case u < 13:
		cmd = "HGETALL"
		b = append(b, "*2\r\n"...)
	case u < 15:
		cmd = "INCR"
		b = append(b, "*2\r\n"...)
		k = append(key[:0], "hits:"...)
		k = strconv.AppendInt(k, int64(a.r.intn(1000)), 10)
	case u < 17:
		cmd = "LRANGE"
		b = append(b, "*4\r\n"...)
	case u < 19:
		cmd, errCode = "INCR", "WRONGTYPE" // on a hash
		b = append(b, "*2\r\n"...)
	default:
		cmd, errCode = "GETT", "ERR" // a typo
		b = append(b, "*2\r\n"...)
	}
	b = appendBulk(b, cmd)
	b = appendBulk(b, k)
	switch cmd {
	case "SET":
		n := 8 + a.r.intn(200)
		b = append(b, '$')
		b = append(strconv.AppendInt(b, int64(n), 10), "\r\n"...)
		b = append(a.appendText(b, n), "\r\n"...)
	case "LRANGE":
		b = appendBulk(b, "0")
		b = appendBulk(b, "9")
	}
	c.data = b
	e := a.ex(exi)
	e.Command, e.ErrorCode = cmd, errCode
	reqLast = a.request(c, s, t, off, len(c.data), exi)

	respOff = len(c.data)
	b = c.data
	switch {
	case errCode == "WRONGTYPE":
		b = append(b, "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"...)
	case errCode == "ERR":
		b = append(b, "-ERR unknown command 'GETT', with args beginning with: 'user'\r\n"...)
	case cmd == "SET":
		b = append(b, "+OK\r\n"...)
	case cmd == "INCR":
		b = append(b, ':')
		b = append(strconv.AppendInt(b, int64(1+a.r.intn(100000)), 10), "\r\n"...)
	case cmd == "GET":
		if a.r.intn(5) == 0 {
			b = append(b, "$-1\r\n"...) // a miss
			break
		}
		n := 20 + a.r.intn(2000) // some replies span two segments
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, "\r\n"...)
		b = append(a.appendText(b, n), "\r\n"...)
	default: // HGETALL: field/value pairs; LRANGE: elements
		n := 2 * (1 + a.r.intn(6))
		b = append(b, '*')
		b = append(strconv.AppendInt(b, int64(n), 10), "\r\n"...)
		for i := 0; i < n; i++ {
			l := 3 + a.r.intn(30)
			b = append(b, '$')
			b = append(strconv.AppendInt(b, int64(l), 10), "\r\n"...)
			b = append(a.appendText(b, l), "\r\n"...)
		}
	}
	c.data = b
	return reqLast, respOff
}

// redisConv is a client's connection to a Redis server.
func (a *appGen) redisConv(c *appConv, t int64) {
	cip, cport := a.clientEnd()
	ci := a.conn(c, cip, [4]byte{198, 51, 100, 30}, cport, 6379, false)
	s := appSide{conn: ci, srv: a.between(500_000, 20_000_000), cli: a.between(15_000, 60_000), class: a.nextClass()}
	t = a.handshake(c, &s, t)
	for n := 1 + a.r.intn(6); n > 0; n-- {
		exi := a.newEx(c, &s, AppRedis)
		reqLast, off := a.redisCommand(c, &s, t, exi)
		t = a.respond(c, &s, reqLast, a.between(20_000, 200_000), off, len(c.data), exi)
		t += a.between(200_000, 5_000_000)
	}
	a.close(c, &s, t)
}

// --- Tier ---

// tierConv is a client talking to the front end F (203.0.113.80:8080),
// captured next to F. F first opens a connection to its backend, PostgreSQL
// (10.10.1.20:5432) or Redis (10.10.1.30:6379), like a pool would; then the
// client connects and sends 1-3 requests; for each, F waits 100-800 µs,
// makes 1-2 backend calls (about 100-300 µs apart) and answers about
// 100-600 µs after the last backend reply. F closes the backend connection after the
// client closes.
func (a *appGen) tierConv(c *appConv, t int64) {
	fip := [4]byte{203, 0, 113, 80}
	pg := a.r.intn(2) == 0
	bip, bport := [4]byte{10, 10, 1, 30}, uint16(6379)
	if pg {
		bip, bport = [4]byte{10, 10, 1, 20}, 5432
	}
	fport := uint16(10000 + a.nfront%55536) // F's ephemeral ports, reused after 55536 connections
	a.nfront++
	bi := a.conn(c, fip, bip, fport, bport, false)
	bs := appSide{conn: bi, srv: a.between(150_000, 800_000), cli: a.between(10_000, 30_000), class: a.nextClass()}
	t = a.handshake(c, &bs, t)
	if pg {
		t = a.pgStartup(c, &bs, t)
	}
	cip, cport := a.clientEnd()
	fi := a.conn(c, cip, fip, cport, 8080, false)
	fs := appSide{conn: fi, srv: a.between(20_000, 60_000), cli: a.between(1_000_000, 20_000_000), class: appTier}
	t = a.handshake(c, &fs, t+a.between(100_000, 2_000_000))
	for n := 1 + a.r.intn(3); n > 0; n-- {
		fe := a.newEx(c, &fs, AppHTTP)
		off := len(c.data)
		b := append(c.data, "GET /api/v1/cart/"...)
		ps := len("GET ")
		b = strconv.AppendInt(b, int64(a.r.intn(100000)), 10)
		pe := len(b) - off
		b = append(b, " HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: tapvault-gen/1\r\nAccept: application/json\r\n\r\n"...)
		c.data = b
		e := a.ex(fe)
		e.Method, e.Host, e.Path, e.Status = "GET", "shop.example.com", a.keepStr(c.data[off+ps:off+pe]), 200
		reqLast := a.request(c, &fs, t, off, len(c.data), fe)

		bt := reqLast + a.between(100_000, 800_000)
		var backendNS int64
		for k := 1 + a.r.intn(2); k > 0; k-- {
			var be, boff int
			var bLast int64
			if pg {
				be = a.newEx(c, &bs, AppPostgres)
				bLast, boff = a.pgQuery(c, &bs, bt, be)
			} else {
				be = a.newEx(c, &bs, AppRedis)
				bLast, boff = a.redisCommand(c, &bs, bt, be)
			}
			bt = a.respond(c, &bs, bLast, a.between(50_000, 2_000_000), boff, len(c.data), be)
			x := a.ex(be)
			backendNS += x.RespLastNS - x.ReqFirstNS
			if a.keep {
				x.Frontend = fe
				a.ex(fe).Backends = append(a.ex(fe).Backends, be)
			}
			bt += a.between(100_000, 300_000)
		}
		off = len(c.data)
		c.data = a.appendHTTPResponse(c.data, 200, fe)
		respAt := bt + a.between(0, 300_000)
		t = a.respondAt(c, &fs, respAt, 0, off, len(c.data), fe)
		e = a.ex(fe)
		e.ThinkNS = respAt - reqLast
		e.BackendNS, e.SelfNS = backendNS, e.ThinkNS-backendNS
		t += a.between(1_000_000, 20_000_000) // client think
	}
	t = a.close(c, &fs, t)
	t += a.between(50_000, 500_000)
	if pg {
		t = a.pgTerminate(c, &bs, t)
	}
	a.close(c, &bs, t)
}

// frame serialises p into the generator's buffer, borrowed until the next
// call. It uses no randomness, so ground truth can skip it.
func (a *appGen) frame(c *appConv, p *appPkt) []byte {
	f := &c.conns[p.conn]
	src, dst, smac, dmac, sport, dport := &f.cip, &f.sip, &f.cmac, &f.smac, f.cport, f.sport
	if !p.fromClient {
		src, dst, smac, dmac, sport, dport = &f.sip, &f.cip, &f.smac, &f.cmac, f.sport, f.cport
	}
	b := a.buf[:]
	o := l2(b, dmac, smac, f, 0x0800)
	pl := c.data[p.off : p.off+p.n]
	f.ipid++
	var end int
	if f.kind == flowUDP4 {
		l4 := 8 + len(pl)
		ipv4(b[o:], src, dst, 17, 20+l4, f.ipid, 0)
		copy(b[o+28:], pl)
		udpHeader(b[o+20:], false, src, dst, sport, dport, l4)
		end = o + 20 + l4
	} else {
		var opts []byte
		if p.flags&tcpSYN != 0 {
			opts = synOpts[:]
		}
		thl := 20 + len(opts)
		l4 := thl + len(pl)
		ipv4(b[o:], src, dst, 6, 20+l4, f.ipid, 0x4000)
		t := b[o+20:]
		binary.BigEndian.PutUint16(t[0:], sport)
		binary.BigEndian.PutUint16(t[2:], dport)
		binary.BigEndian.PutUint32(t[4:], p.seq)
		binary.BigEndian.PutUint32(t[8:], p.ack)
		t[12] = byte(thl/4) << 4
		t[13] = p.flags
		binary.BigEndian.PutUint16(t[14:], 64240)
		t[16], t[17], t[18], t[19] = 0, 0, 0, 0
		copy(t[20:], opts)
		copy(t[thl:], pl)
		binary.BigEndian.PutUint16(t[16:], fold(sum16(t[:l4], pseudo(false, src, dst, 6, l4))))
		end = o + 20 + l4
	}
	if end < 60 { // Ethernet minimum, without the FCS
		clear(b[end:60])
		end = 60
	}
	return b[:end]
}
