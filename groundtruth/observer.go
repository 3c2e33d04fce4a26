package groundtruth

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
// one of the cases' markers, so the clients' handshakes and warm-up queries
// are not among them.
type Observer struct {
	fd   int
	stop atomic.Bool
	done chan struct{}

	mu    sync.Mutex
	flows map[string]*obsFlow       // by "client>server"
	pairs map[string][]WireExchange // by server ip:port, in order
}

// WireExchange is one exchange as the kernel timestamped it next to the
// server.
type WireExchange struct {
	ReqLast, RespFirst time.Time
}

// Server is the server's time: first response segment − last request
// segment.
func (w WireExchange) Server() time.Duration { return w.RespFirst.Sub(w.ReqLast) }

type obsFlow struct {
	reqLast time.Time // the last marked request segment not yet answered
	waiting bool
}

// markers identify the timed requests (see cases.go's clients).
var markers = [][]byte{[]byte("/sleep?"), []byte("/front?"), []byte("DEBUG"), []byte("pg_sleep"), []byte("SLEEP("), []byte("\x02gt\x04test")}

// NewObserver starts watching interface iface of namespace ns; servers are
// the ip:port of the servers whose exchanges it times.
func NewObserver(ns, iface string) (*Observer, error) {
	o := &Observer{fd: -1, done: make(chan struct{}), flows: map[string]*obsFlow{}, pairs: map[string][]WireExchange{}}
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
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
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
		at := time.Now()
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
					ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
					at = time.Unix(ts.Sec, ts.Nsec)
				}
			}
		}
		o.frame(buf[:n], at)
	}
}

// frame times one frame: a marked request from a client (to a port below
// 10000: the servers'), or a response from a server.
func (o *Observer) frame(f []byte, at time.Time) {
	src, dst, payload, ok := transportPayload(f)
	if !ok || len(payload) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if fl := o.flows[dst+">"+src]; fl != nil && fl.waiting {
		// The server's first response segment after the request.
		o.pairs[src] = append(o.pairs[src], WireExchange{ReqLast: fl.reqLast, RespFirst: at})
		fl.waiting = false
		return
	}
	marked := false
	for _, m := range markers {
		if bytes.Contains(payload, m) {
			marked = true
			break
		}
	}
	fl := o.flows[src+">"+dst]
	if fl == nil {
		if !marked {
			return
		}
		fl = &obsFlow{}
		o.flows[src+">"+dst] = fl
	}
	if marked || fl.waiting { // a request's later segments move its end
		fl.reqLast, fl.waiting = at, true
	}
}

// transportPayload reads the endpoints and payload of an Ethernet/IPv4
// TCP or UDP frame.
func transportPayload(f []byte) (src, dst string, payload []byte, ok bool) {
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
	case unix.IPPROTO_UDP:
	default:
		return
	}
	if hdr < 8 || hdr > len(l4) {
		return
	}
	src = fmt.Sprintf("%d.%d.%d.%d:%d", ip[12], ip[13], ip[14], ip[15], binary.BigEndian.Uint16(l4[0:]))
	dst = fmt.Sprintf("%d.%d.%d.%d:%d", ip[16], ip[17], ip[18], ip[19], binary.BigEndian.Uint16(l4[2:]))
	return src, dst, l4[hdr:], true
}

// Take returns, in order, the exchanges with server (ip:port) seen since the
// last Take or Reset, and forgets them.
func (o *Observer) Take(server string) []WireExchange {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.pairs[server]
	delete(o.pairs, server)
	return p
}

// Reset forgets everything seen.
func (o *Observer) Reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flows = map[string]*obsFlow{}
	o.pairs = map[string][]WireExchange{}
}

// Close stops the observer.
func (o *Observer) Close() {
	o.stop.Store(true)
	<-o.done
	unix.Close(o.fd)
}
