package analytics_test

import (
	"net/netip"
	"testing"

	"tapvault/analytics"
	"tapvault/internal/testframe"
)

// tcpConv builds the frames of one TCP conversation with chosen times.
type tcpConv struct {
	t            testing.TB
	src          *frameSource
	cseq, sseq   uint32
	cli, srv     netip.Addr
	cport, sport uint16
	sack         [][2]uint32 // SACK blocks for the next packet only
}

func (c *tcpConv) pkt(ts int64, fromClient bool, syn, ack, psh, fin bool, payload string) {
	c.t.Helper()
	var fl testframe.TCPFlags
	for _, f := range []struct {
		set  bool
		flag testframe.TCPFlags
	}{{syn, testframe.SYN}, {ack, testframe.ACK}, {psh, testframe.PSH}, {fin, testframe.FIN}} {
		if f.set {
			fl |= f.flag
		}
	}
	ip := &testframe.IPv4{Src: c.cli, Dst: c.srv}
	tcp := &testframe.TCP{SrcPort: c.cport, DstPort: c.sport, Seq: c.cseq, Ack: c.sseq, Flags: fl, Window: 64240, SACK: c.sack}
	c.sack = nil
	if !fromClient {
		ip.Src, ip.Dst = c.srv, c.cli
		tcp.SrcPort, tcp.DstPort = c.sport, c.cport
		tcp.Seq, tcp.Ack = c.sseq, c.cseq
	}
	fr := testframe.Frame{IPv4: ip, TCP: tcp, Payload: []byte(payload)}
	c.src.ts = append(c.src.ts, ts)
	c.src.frames = append(c.src.frames, fr.Bytes())
	n := uint32(len(payload))
	if syn || fin {
		n++
	}
	if fromClient {
		c.cseq += n
	} else {
		c.sseq += n
	}
}

const ms = 1_000_000

// exchange is a handshake, one HTTP request and its response, with the
// server's ACK of the request at ack (0: on the response), the response at
// resp, and the client's ACK of the response at cack, all relative to the
// request at 100 ms. hsSrv and hsCli are the handshake's legs as the
// capture point sees them.
func exchange(t testing.TB, src *frameSource, port uint16, hsSrv, hsCli, ack, resp, cack int64) {
	c := &tcpConv{t: t, src: src, cseq: 1000, sseq: 5000, cli: netip.AddrFrom4([4]byte{10, 0, 0, 1}), srv: netip.AddrFrom4([4]byte{10, 0, 0, 2}), cport: port, sport: 80}
	base := int64(1_700_000_000) * 1_000_000_000
	c.pkt(base, true, true, false, false, false, "")
	c.pkt(base+hsSrv, false, true, true, false, false, "")
	c.pkt(base+hsSrv+hsCli, true, false, true, false, false, "")
	req := base + 100*ms
	c.pkt(req, true, false, true, true, false, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if ack != 0 {
		c.pkt(req+ack, false, false, true, false, false, "")
	}
	c.pkt(req+resp, false, false, true, true, false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	c.pkt(req+cack, true, false, true, false, false, "")
}

// TestClassesByCapturePoint checks the additive split and the class from
// both ends, with the kernels' delayed ACKs. Next to the client (the
// server's handshake leg is the long one) the network part is the server's
// round trip: its prompt bare ACK, else the handshake's; an ACK riding on
// a late response, or a bare ACK at the delayed-ACK timer, says the server
// was slow. Next to the server (the client's leg is the long one) the
// network part is nearly nil, and the client's leg (its ACK of the
// response, unless that is its delayed-ACK timer) carries the path.
func TestClassesByCapturePoint(t *testing.T) {
	const us = 1000
	cases := []struct {
		name                          string
		hsSrv, hsCli, ack, resp, cack int64
		want                          string
		network, server, clientNet    int64
		from                          analytics.NetSource
		near                          analytics.Position
		flags                         uint32
	}{
		{"client side, fast", 10 * ms, 50 * us, 0, 11 * ms, 11*ms + 50*us, analytics.ClassHealthy, 10 * ms, 1 * ms, 50 * us, analytics.NetHandshake, analytics.NearClient, 0},
		{"client side, bare ACK then payload 40 ms later", 10 * ms, 50 * us, 10 * ms, 50 * ms, 50*ms + 50*us, analytics.ClassSlowApp, 10 * ms, 40 * ms, 50 * us, analytics.NetBareAck, analytics.NearClient, 0},
		// The PostgreSQL COMMIT of issue 11: the ACK rode on a response
		// 31 ms late. The server was slow, not the network.
		{"client side, ACK rides on a response 31 ms late", 10 * ms, 50 * us, 0, 41 * ms, 41*ms + 50*us, analytics.ClassSlowApp, 10 * ms, 31 * ms, 50 * us, analytics.NetHandshake, analytics.NearClient, 0},
		{"client side, bare ACK at the delayed-ACK timer", 10 * ms, 50 * us, 50 * ms, 300 * ms, 300*ms + 50*us, analytics.ClassSlowApp, 10 * ms, 290 * ms, 50 * us, analytics.NetHandshake, analytics.NearClient, analytics.FlagAckTimer},
		{"client side, bare ACK 250 ms late (no timer waits so long), then the response", 10 * ms, 50 * us, 260 * ms, 261 * ms, 261*ms + 50*us, analytics.ClassSlowNet, 260 * ms, 1 * ms, 50 * us, analytics.NetBareAck, analytics.NearClient, 0},
		{"client side, bare ACK 9 ms late, then the response: a timer", 15 * ms, 50 * us, 24 * ms, 25 * ms, 25*ms + 50*us, analytics.ClassSlowApp, 15 * ms, 10 * ms, 50 * us, analytics.NetHandshake, analytics.NearClient, analytics.FlagAckTimer},
		{"client side, bare ACK 15 ms late, then the response: the timer", 10 * ms, 50 * us, 25 * ms, 26 * ms, 26*ms + 50*us, analytics.ClassSlowApp, 10 * ms, 16 * ms, 50 * us, analytics.NetHandshake, analytics.NearClient, analytics.FlagAckTimer},
		{"client side, slow path from the handshake on", 60 * ms, 50 * us, 0, 61 * ms, 61*ms + 50*us, analytics.ClassSlowNet, 60 * ms, 1 * ms, 50 * us, analytics.NetHandshake, analytics.NearClient, 0},
		// http_zeek_bro.org.pcap: a middlebox ACKs at once though the
		// handshake took 78 ms: that ACK is not the network's round trip.
		{"client side, ACK faster than the handshake", 78 * ms, 50 * us, 268 * us, 100 * ms, 100*ms + 50*us, analytics.ClassSlowApp, 268 * us, 99732 * us, 50 * us, analytics.NetBareAck, analytics.NearNAT, analytics.FlagContradiction},
		// A handshake slowed by a neighbour lookup through a slow first
		// hop: the response beats it, so it overstated the round trip and
		// the prompt bare ACK is the server's, not a middlebox's.
		{"client side, handshake slower than the response", 40 * ms, 50 * us, 2 * ms, 30 * ms, 30*ms + 50*us, analytics.ClassSlowApp, 2 * ms, 28 * ms, 50 * us, analytics.NetBareAck, analytics.NearClient, 0},
		{"server side, fast", 50 * us, 10 * ms, 0, 1 * ms, 11 * ms, analytics.ClassHealthy, 50 * us, 950 * us, 10 * ms, analytics.NetHandshake, analytics.NearServer, 0},
		{"server side, answers 40 ms late", 50 * us, 10 * ms, 0, 40 * ms, 50 * ms, analytics.ClassSlowApp, 50 * us, 39950 * us, 10 * ms, analytics.NetHandshake, analytics.NearServer, 0},
		{"server side, bare ACK then payload 40 ms later", 50 * us, 10 * ms, 60 * us, 40 * ms, 50 * ms, analytics.ClassSlowApp, 60 * us, 39940 * us, 10 * ms, analytics.NetBareAck, analytics.NearServer, 0},
		{"server side, client ACK 300 ms late (beyond any timer)", 50 * us, 10 * ms, 0, 1 * ms, 311 * ms, analytics.ClassSlowNet, 50 * us, 950 * us, 310 * ms, analytics.NetHandshake, analytics.NearServer, 0},
		{"server side, client ACK 30 ms late: its delayed-ACK timer", 50 * us, 10 * ms, 0, 1 * ms, 41 * ms, analytics.ClassHealthy, 50 * us, 950 * us, 10 * ms, analytics.NetHandshake, analytics.NearServer, 0},
		{"server side, client ACK at its delayed-ACK timer", 50 * us, 10 * ms, 0, 1 * ms, 51 * ms, analytics.ClassHealthy, 50 * us, 950 * us, 10 * ms, analytics.NetHandshake, analytics.NearServer, 0},
		{"middle, both legs 15 ms, server 40 ms", 15 * ms, 15 * ms, 0, 55 * ms, 70 * ms, analytics.ClassSlowApp, 15 * ms, 40 * ms, 15 * ms, analytics.NetHandshake, analytics.NearMiddle, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := new(frameSource)
			exchange(t, src, uint16(40000+i), tc.hsSrv, tc.hsCli, tc.ack, tc.resp, tc.cack)
			recs, _ := analyze(t, src, analytics.DefaultConfig())
			var got *analytics.Record
			for _, r := range recs {
				if r.Proto == "http" {
					got = r
				}
			}
			if got == nil {
				t.Fatalf("no http record among %d", len(recs))
			}
			checkSplit(t, got)
			if got.Class != tc.want || got.Network != tc.network || got.ServerTime != tc.server || got.ClientNet != tc.clientNet {
				t.Fatalf("class %s network %d server %d client_net %d, want %s %d %d %d", got.Class, got.Network, got.ServerTime, got.ClientNet, tc.want, tc.network, tc.server, tc.clientNet)
			}
			if got.NetFrom() != tc.from || got.Near() != tc.near {
				t.Errorf("evidence %s near %s, want %s near %s", got.NetFrom(), got.Near(), tc.from, tc.near)
			}
			if extra := analytics.FlagAckTimer | analytics.FlagContradiction | analytics.FlagRetrans; got.Flags&extra != tc.flags {
				t.Errorf("flags %#x, want %#x of %#x", got.Flags&extra, tc.flags, extra)
			}
		})
	}
}

// checkSplit checks that a TCP exchange's parts add up to its latency and
// none is negative.
func checkSplit(t *testing.T, r *analytics.Record) {
	t.Helper()
	if r.Network < 0 || r.ServerTime < 0 || r.Transfer < 0 {
		t.Fatalf("a part is unknown or negative: network %d server %d transfer %d", r.Network, r.ServerTime, r.Transfer)
	}
	if lat := r.RespLast - r.ReqLast; r.Network+r.ServerTime+r.Transfer != lat {
		t.Fatalf("network %d + server %d + transfer %d != latency %d", r.Network, r.ServerTime, r.Transfer, lat)
	}
}

// TestRetransmittedRequestIsNetworkTime: a request lost past the capture
// point and sent again 200 ms later is the network's time, not the
// server's.
func TestRetransmittedRequestIsNetworkTime(t *testing.T) {
	src := new(frameSource)
	c := &tcpConv{t: t, src: src, cseq: 1000, sseq: 5000, cli: netip.AddrFrom4([4]byte{10, 0, 0, 1}), srv: netip.AddrFrom4([4]byte{10, 0, 0, 2}), cport: 40200, sport: 80}
	base := int64(1_700_000_000) * 1_000_000_000
	c.pkt(base, true, true, false, false, false, "")
	c.pkt(base+10*ms, false, true, true, false, false, "")
	c.pkt(base+10*ms+50_000, true, false, true, false, false, "")
	req := base + 100*ms
	const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	c.pkt(req, true, false, true, true, false, get)
	c.cseq -= uint32(len(get)) // the retransmission
	c.pkt(req+200*ms, true, false, true, true, false, get)
	c.pkt(req+211*ms, false, false, true, true, false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	c.pkt(req+211*ms+50_000, true, false, true, false, false, "")
	recs, _ := analyze(t, src, analytics.DefaultConfig())
	for _, r := range recs {
		if r.Proto != "http" {
			continue
		}
		checkSplit(t, r)
		if r.Class != analytics.ClassSlowNet || r.NetFrom() != analytics.NetRetrans || r.Flags&analytics.FlagRetrans == 0 {
			t.Fatalf("class %s from %s flags %#x: want slow_net from retrans", r.Class, r.NetFrom(), r.Flags)
		}
		if r.Network != 210*ms || r.ServerTime != 1*ms {
			t.Fatalf("network %d server %d, want 210 ms and 1 ms", r.Network, r.ServerTime)
		}
		return
	}
	t.Fatalf("no http record among %d", len(recs))
}

// TestVLANAsymmetric: a capture where the client's packets carry VLAN 100
// and the server's none gives two flows (the flow key includes the VLAN),
// but one connection: one exchange with its response and one tcp record.
func TestVLANAsymmetric(t *testing.T) {
	src := new(frameSource)
	exchange(t, src, 40100, 10*ms, 50_000, 0, 11*ms, 11*ms+50_000)
	// Tag the client's frames (10.0.0.1 -> 10.0.0.2) with VLAN 100.
	for i, f := range src.frames {
		if f[12+2+12] == 10 && f[12+2+12+3] == 1 { // IPv4 source 10.0.0.1
			tagged := append([]byte(nil), f[:12]...)
			tagged = append(tagged, 0x81, 0x00, 0x00, 100)
			src.frames[i] = append(tagged, f[12:]...)
		}
	}
	recs, _ := analyze(t, src, analytics.DefaultConfig())
	var https, tcps int
	for _, r := range recs {
		switch r.Proto {
		case "http":
			https++
			if r.Class != analytics.ClassHealthy || r.RespFirst == 0 || r.ServerAck == 0 {
				t.Fatalf("http record: class %s, response %d, server ACK %d: want healthy and both", r.Class, r.RespFirst, r.ServerAck)
			}
		case "tcp":
			tcps++
			if f, _ := r.Get("hs_server_ns"); f.Int != 10*ms {
				t.Fatalf("tcp record: handshake server leg %d, want %d", f.Int, 10*ms)
			}
		}
	}
	if https != 1 || tcps != 1 {
		t.Fatalf("got %d http and %d tcp records, want 1 and 1 (one connection)", https, tcps)
	}
}

// TestSpuriousResponseRetransmission, next to the server: the client's
// next request, which carried its ACK of the response, is lost, so the
// server resends the response on its RTO; the client ACKs the copy with a
// D-SACK of it. The response was not late: the exchange is healthy, with
// no retransmission flag, and the client's leg is the handshake's, not the
// 220 ms until that ACK. The request lost after it is the slow one.
func TestSpuriousResponseRetransmission(t *testing.T) {
	src := new(frameSource)
	c := &tcpConv{t: t, src: src, cseq: 1000, sseq: 5000, cli: netip.AddrFrom4([4]byte{10, 0, 0, 1}), srv: netip.AddrFrom4([4]byte{10, 0, 0, 2}), cport: 40300, sport: 80}
	base := int64(1_700_000_000) * 1_000_000_000
	c.pkt(base, true, true, false, false, false, "")
	c.pkt(base+50_000, false, true, true, false, false, "")
	c.pkt(base+50_000+2*ms, true, false, true, false, false, "")
	const get, ok = "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	req := base + 100*ms
	c.pkt(req, true, false, true, true, false, get)
	respSeq := c.sseq
	c.pkt(req+1*ms, false, false, true, true, false, ok)
	// The client's next request (ACKing the response) is lost here.
	c.sseq = respSeq // the server's RTO: the response again
	c.pkt(req+221*ms, false, false, true, true, false, ok)
	c.sack = [][2]uint32{{respSeq, respSeq + uint32(len(ok))}}
	c.pkt(req+223*ms, true, false, true, false, false, "") // ACK of the copy, D-SACK
	c.pkt(req+225*ms, true, false, true, true, false, get) // the lost request, sent again
	c.pkt(req+226*ms, false, false, true, true, false, ok)
	c.pkt(req+228*ms, true, false, true, false, false, "")
	https := httpRecords(t, src, 2)
	r := https[0]
	checkSplit(t, r)
	if r.Class != analytics.ClassHealthy || r.Flags&analytics.FlagRetrans != 0 || r.ClientNet != 2*ms {
		t.Fatalf("first exchange: class %s flags %#x client_net %d, want healthy, no retrans flag, client_net %d (the handshake's leg)", r.Class, r.Flags, r.ClientNet, 2*ms)
	}
}

// TestLeastWaitIsARoundTrip, next to the client: the handshake took 17 ms
// (the first packets of a connection held up: seen on the ground-truth
// delay line) and the server never sends a bare ACK, but one answer came
// 3 ms after its request. Every wait is the round trip plus the server's
// time, so the next exchange, whose ACK rides on a response 25 ms late, has
// a 3 ms network part and 22 ms of server, not 17 and 8.
func TestLeastWaitIsARoundTrip(t *testing.T) {
	src := new(frameSource)
	c := &tcpConv{t: t, src: src, cseq: 1000, sseq: 5000, cli: netip.AddrFrom4([4]byte{10, 0, 0, 1}), srv: netip.AddrFrom4([4]byte{10, 0, 0, 2}), cport: 40400, sport: 80}
	base := int64(1_700_000_000) * 1_000_000_000
	c.pkt(base, true, true, false, false, false, "")
	c.pkt(base+17*ms, false, true, true, false, false, "")
	c.pkt(base+17*ms+50_000, true, false, true, false, false, "")
	const get, ok = "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	for i, wait := range []int64{3 * ms, 25 * ms} {
		req := base + int64(100+100*i)*ms
		c.pkt(req, true, false, true, true, false, get)
		c.pkt(req+wait, false, false, true, true, false, ok)
		c.pkt(req+wait+50_000, true, false, true, false, false, "")
	}
	https := httpRecords(t, src, 2)
	r := https[1]
	checkSplit(t, r)
	if r.Network != 3*ms || r.ServerTime != 22*ms || r.NetFrom() != analytics.NetMinWait || r.Class != analytics.ClassSlowApp {
		t.Fatalf("second exchange: network %d server %d from %s class %s; want %d, %d, min_wait, slow_app", r.Network, r.ServerTime, r.NetFrom(), r.Class, 3*ms, 22*ms)
	}
}

// httpRecords analyses src with the default configuration and returns its
// http records, failing unless there are n.
func httpRecords(t *testing.T, src *frameSource, n int) []*analytics.Record {
	t.Helper()
	recs, _ := analyze(t, src, analytics.DefaultConfig())
	var https []*analytics.Record
	for _, r := range recs {
		if r.Proto == "http" {
			https = append(https, r)
		}
	}
	if len(https) != n {
		t.Fatalf("%d http records, want %d", len(https), n)
	}
	return https
}
