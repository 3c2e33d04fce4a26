package groundtruth

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// nsForward joins two network namespaces at layer 4: it accepts TCP
// connections on an address inside one namespace and joins each to a new
// connection to an address inside another. A scenario uses it as the
// management network between a sensor's namespace and services in the
// root namespace (ClickHouse, which listens on loopback only; a centre that
// dials a sensor's fleet port), without routes or addresses that the
// sensor's capture interface would see. Bytes pass unchanged, so TLS runs
// end to end through it; a failed dial closes the accepted connection, as
// a refused connection would look to the client.
type nsForward struct {
	ln    net.Listener
	dns   string
	daddr string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// newNSForward listens on laddr inside namespace lns ("" is the caller's)
// and forwards to daddr, dialled inside namespace dns.
func newNSForward(lns, laddr, dns, daddr string) (*nsForward, error) {
	f := &nsForward{dns: dns, daddr: daddr, conns: map[net.Conn]struct{}{}}
	// The listening socket belongs to lns for its whole life (inNS).
	if err := inNS(lns, func() (err error) { f.ln, err = net.Listen("tcp4", laddr); return err }); err != nil {
		return nil, fmt.Errorf("forward %s/%s -> %s/%s: %w", lns, laddr, dns, daddr, err)
	}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// Addr is the listening address.
func (f *nsForward) Addr() string { return f.ln.Addr().String() }

func (f *nsForward) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *nsForward) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *nsForward) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(c)
			var d net.Conn
			if err := inNS(f.dns, func() (err error) { d, err = net.DialTimeout("tcp4", f.daddr, 5*time.Second); return err }); err != nil {
				return
			}
			if !f.track(d) {
				return
			}
			defer f.untrack(d)
			done := make(chan struct{}, 2)
			pump := func(dst, src net.Conn) {
				io.Copy(dst, src)
				// Half-close where possible so a request-then-EOF client
				// still gets its answer; the other pump ends the pair.
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				done <- struct{}{}
			}
			go pump(d, c)
			go pump(c, d)
			<-done
			<-done
		}()
	}
}

// Close stops listening, cuts every forwarded connection and waits for
// the goroutines.
func (f *nsForward) Close() {
	f.mu.Lock()
	f.closed = true
	f.ln.Close()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
