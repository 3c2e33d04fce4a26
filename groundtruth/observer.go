package groundtruth

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Observer is the ground truth of the server part: it watches the server's
// own interface (S's br0) through a packet socket with kernel receive
// timestamps (SO_TIMESTAMPNS), and times every request/response by the
// simplest rule there is: the last request segment (or datagram) of the
// client, then the first response segment of the server after it. Next to
// the server no network lies between the two, so that gap is the server's
// time as the network sees it, its own scheduling and response writing
// included, which its logs leave out (postgres on a loaded machine answers
// up to 15 ms after the duration it logs).
//
// It shares nothing with the analytics: no reassembly, no ACK logic, no
// tapvault timestamps. It only keeps the exchanges whose request carries
// one of the cases' markers (pairer), so the clients' handshakes and
// warm-up queries are not among them.
type Observer struct {
	fd   int
	stop atomic.Bool
	done chan struct{}

	mu sync.Mutex
	p  pairer // values: kernel receive times, unix ns
}

// WireExchange is one exchange as the kernel timestamped it next to the
// server.
type WireExchange struct {
	ReqLast, RespFirst time.Time
}

// Server is the server's time: first response segment − last request
// segment.
func (w WireExchange) Server() time.Duration { return w.RespFirst.Sub(w.ReqLast) }

// pairer pairs the timed requests with their responses, by the simplest
// rule there is: a request is a client's segment or datagram carrying a
// marker to a server port (below 10000; the clients' ports are ephemeral),
// and the segments of the same flow after it until the answer; the answer
// is the server's first segment or datagram with payload after it. It
// remembers a value per request (its last segment's) and per answer (its
// first's), per server ip:port, in order.
type pairer struct {
	flows map[string]*pairFlow // by "client>server"
	pairs map[string][][2]int64
}

type pairFlow struct {
	req     int64
	waiting bool
	next    uint32 // TCP: the sequence number after the highest request byte seen
	seen    bool
	ansNext uint32 // TCP: the same for the server's bytes
	ansSeen bool
}

// markers identify the timed requests (see cases.go's clients).
var markers = [][]byte{[]byte("/sleep?"), []byte("/front?"), []byte("DEBUG"), []byte("pg_sleep"), []byte("SLEEP("), []byte("\x02gt\x04test")}

func (p *pairer) frame(seg segment, v int64) {
	src, dst, payload := seg.src, seg.dst, seg.payload
	if len(payload) == 0 {
		return
	}
	if p.flows == nil {
		p.flows, p.pairs = map[string]*pairFlow{}, map[string][][2]int64{}
	}
	if fl := p.flows[dst+">"+src]; fl != nil {
		// The server's side of a timed flow. A retransmitted answer (no
		// byte beyond those seen; the loss case's server resends its
		// last answer when the request carrying the client's ACK of it
		// is dropped) is not the answer to the request now waiting.
		if seg.tcp {
			end := seg.seq + uint32(len(payload))
			if fl.ansSeen && int32(end-fl.ansNext) <= 0 {
				return
			}
			fl.ansNext, fl.ansSeen = end, true
		}
		if fl.waiting {
			p.pairs[src] = append(p.pairs[src], [2]int64{fl.req, v})
			fl.waiting = false
		}
		return
	}
	if _, port, _ := strings.Cut(dst, ":"); len(port) > 4 {
		return // not to a server port
	}
	marked := false
	for _, m := range markers {
		if bytes.Contains(payload, m) {
			marked = true
			break
		}
	}
	fl := p.flows[src+">"+dst]
	if fl == nil {
		if !marked {
			return
		}
		fl = &pairFlow{}
		p.flows[src+">"+dst] = fl
	}
	if seg.tcp {
		// A retransmission (no byte beyond those seen) is not a new
		// request, nor the end of one: the first copy counts.
		end := seg.seq + uint32(len(payload))
		if fl.seen && int32(end-fl.next) <= 0 {
			return
		}
		fl.next, fl.seen = end, true
	}
	if marked || fl.waiting { // a request's later segments move its end
		fl.req, fl.waiting = v, true
	}
}

// take returns and forgets the pairs of server.
func (p *pairer) take(server string) [][2]int64 {
	v := p.pairs[server]
	delete(p.pairs, server)
	return v
}

func (p *pairer) reset() { p.flows, p.pairs = nil, nil }

// NewObserver starts watching interface iface of namespace ns; servers are
// the ip:port of the servers whose exchanges it times.
func NewObserver(ns, iface string) (*Observer, error) {
	o := &Observer{fd: -1, done: make(chan struct{})}
	err := inNS(ns, func() error {
		fd, err := openPacketSocket(iface)
		if err != nil {
			return err
		}
		o.fd = fd
		// The frames sent on iface count too: they are the responses.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 0); err != nil {
			return fmt.Errorf("observer: %w", err)
		}
		return nil
	})
	if err != nil {
		if o.fd >= 0 {
			unix.Close(o.fd)
		}
		return nil, err
	}
	go o.loop()
	return o, nil
}

func (o *Observer) loop() {
	defer close(o.done)
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	for !o.stop.Load() {
		n, oobn, _, _, err := unix.Recvmsg(o.fd, buf, oob, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		o.frame(buf[:n], kernelTime(oob[:oobn]))
	}
}

// frame times one frame.
func (o *Observer) frame(f []byte, at time.Time) {
	seg, ok := transportPayload(f)
	if !ok {
		return
	}
	o.mu.Lock()
	o.p.frame(seg, at.UnixNano())
	o.mu.Unlock()
}

// segment is what the pairer needs of a frame.
type segment struct {
	src, dst string // ip:port
	payload  []byte
	tcp      bool
	seq      uint32 // TCP only
}

// transportPayload reads the endpoints and payload of an Ethernet/IPv4
// TCP or UDP frame.
func transportPayload(f []byte) (seg segment, ok bool) {
	if len(f) < 14+20 || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
		return
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[0]>>4 != 4 || ihl < 20 || total > len(ip) || total < ihl+8 {
		return
	}
	l4 := ip[ihl:total]
	hdr := 8
	switch ip[9] {
	case unix.IPPROTO_TCP:
		if len(l4) < 20 {
			return
		}
		hdr = int(l4[12]>>4) * 4
		seg.tcp, seg.seq = true, binary.BigEndian.Uint32(l4[4:])
	case unix.IPPROTO_UDP:
	default:
		return
	}
	if hdr < 8 || hdr > len(l4) {
		return
	}
	seg.src = fmt.Sprintf("%d.%d.%d.%d:%d", ip[12], ip[13], ip[14], ip[15], binary.BigEndian.Uint16(l4[0:]))
	seg.dst = fmt.Sprintf("%d.%d.%d.%d:%d", ip[16], ip[17], ip[18], ip[19], binary.BigEndian.Uint16(l4[2:]))
	seg.payload = l4[hdr:]
	return seg, true
}

// Take returns, in order, the exchanges with server (ip:port) seen since the
// last Take or Reset, and forgets them.
func (o *Observer) Take(server string) []WireExchange {
	o.mu.Lock()
	defer o.mu.Unlock()
	var w []WireExchange
	for _, p := range o.p.take(server) {
		w = append(w, WireExchange{ReqLast: time.Unix(0, p[0]), RespFirst: time.Unix(0, p[1])})
	}
	return w
}

// Reset forgets everything seen.
func (o *Observer) Reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.p.reset()
}

// Close stops the observer.
func (o *Observer) Close() {
	o.stop.Store(true)
	<-o.done
	unix.Close(o.fd)
}
