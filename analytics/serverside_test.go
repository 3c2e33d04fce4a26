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
	tcp := &testframe.TCP{SrcPort: c.cport, DstPort: c.sport, Seq: c.cseq, Ack: c.sseq, Flags: fl, Window: 64240}
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

// TestClassesByCapturePoint checks the classification from both ends: next
// to the client (the server's handshake leg is the long one) a late server
// ACK means a slow network and a bare ACK followed by the payload a slow
// application; next to the server (the client's leg is the long one) the
// server's own delay is the application's, and a late client ACK of the
// response means a slow network.
func TestClassesByCapturePoint(t *testing.T) {
	cases := []struct {
		name                          string
		hsSrv, hsCli, ack, resp, cack int64
		want                          string
	}{
		{"client side, fast", 10 * ms, 50_000, 0, 11 * ms, 11*ms + 50_000, analytics.ClassFast},
		{"client side, bare ACK then payload 40 ms later", 10 * ms, 50_000, 10 * ms, 50 * ms, 50*ms + 50_000, analytics.ClassSlowApp},
		{"client side, ACK 30 ms late", 10 * ms, 50_000, 0, 41 * ms, 41*ms + 50_000, analytics.ClassSlowNet},
		{"server side, fast", 50_000, 10 * ms, 0, 1 * ms, 11 * ms, analytics.ClassFast},
		{"server side, answers 40 ms late", 50_000, 10 * ms, 0, 40 * ms, 50 * ms, analytics.ClassSlowApp},
		{"server side, bare ACK then payload 40 ms later", 50_000, 10 * ms, 60_000, 40 * ms, 50 * ms, analytics.ClassSlowApp},
		{"server side, client ACK 30 ms late", 50_000, 10 * ms, 0, 1 * ms, 41 * ms, analytics.ClassSlowNet},
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
			if got.Class != tc.want {
				t.Fatalf("class %s, want %s (network %d server %d client_net %d rtt %d)", got.Class, tc.want, got.Network, got.ServerTime, got.ClientNet, got.RTT)
			}
			if got.ServerTime != tc.resp {
				t.Fatalf("server time %d, want %d", got.ServerTime, tc.resp)
			}
		})
	}
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
			if r.Class != analytics.ClassFast || r.RespFirst == 0 || r.ServerAck == 0 {
				t.Fatalf("http record: class %s, response %d, server ACK %d: want fast and both", r.Class, r.RespFirst, r.ServerAck)
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
