package analytics_test

import (
	"io"
	"net/netip"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/dataplane"
)

// singles hands a frameSource's frames over one per burst, so that the
// worker's Tick (flow eviction, the analyzer's timers) runs after each.
type singles struct{ *frameSource }

func (s singles) Recv(b *dataplane.Burst) (int, error) {
	b.N = 0
	if s.i == len(s.frames) {
		return 0, io.EOF
	}
	f := s.frames[s.i]
	b.Pkts[0] = dataplane.Packet{Data: f, TS: s.ts[s.i], WireLen: uint32(len(f)), LinkType: 1}
	b.N = 1
	s.i++
	return 1, nil
}

// httpConn appends a whole HTTP connection: handshake, one exchange (the
// server ACKs the request 1 ms after it, answers 10 ms after it), FINs.
// step, if not 0, is added to the time of every packet from the response
// on: a clock stepped back (negative) between request and response.
func httpConn(t *testing.T, src *frameSource, cport uint16, base, step int64) {
	c := &tcpConv{t: t, src: src, cseq: 1000, sseq: 5000, cli: netip.AddrFrom4([4]byte{10, 0, 0, 1}), srv: netip.AddrFrom4([4]byte{10, 0, 0, 2}), cport: cport, sport: 80}
	c.pkt(base, true, true, false, false, false, "")
	c.pkt(base+ms, false, true, true, false, false, "")
	c.pkt(base+ms+50_000, true, false, true, false, false, "")
	req := base + 100*ms
	c.pkt(req, true, false, true, true, false, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.pkt(req+ms, false, false, true, false, false, "")
	req += step
	c.pkt(req+10*ms, false, false, true, true, false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	c.pkt(req+11*ms, true, false, true, false, false, "")
	c.pkt(req+20*ms, true, false, true, false, true, "")
	c.pkt(req+21*ms, false, false, true, false, true, "")
	c.pkt(req+22*ms, true, false, true, false, false, "")
}

type connSummary struct {
	tcp, http, answered int
	closes              map[string]int
	gap                 int64
}

func summarize(recs []*analytics.Record) connSummary {
	s := connSummary{closes: map[string]int{}}
	for _, r := range recs {
		switch r.Proto {
		case "tcp":
			s.tcp++
			f, _ := r.Get("close")
			s.closes[f.Str]++
			g, _ := r.Get("gap_bytes")
			s.gap += g.Int
		case "http":
			s.http++
			if r.Class != analytics.ClassNoResponse && r.RespFirst != 0 {
				s.answered++
			}
		}
	}
	return s
}

// TestFaultClockStepBackInConnection: the capture's clock steps back an
// hour between a request and its response. The connection is one
// connection, closed by its FINs, and the exchange is answered; before the
// step-free clock, the worker saw the flow as idle for an hour and ended
// it (two connections, "idle" and a mid-stream one, the request
// unanswered).
func TestFaultClockStepBackInConnection(t *testing.T) {
	base := int64(1_700_000_000) * 1_000_000_000
	for _, step := range []int64{0, -int64(time.Hour), -int64(time.Minute), -2 * int64(time.Second)} {
		src := new(frameSource)
		httpConn(t, src, 40000, base, step)
		// Another connection before and after, so that the flow table's
		// clock hand has work and the timers run.
		httpConn(t, src, 40001, base+200*ms+step, 0)
		recs, an := analyze(t, singles{src}, analytics.DefaultConfig())
		s := summarize(recs)
		if s.tcp != 2 || s.closes["fin"] != 2 {
			t.Errorf("step %v: %d tcp records, closes %v: want 2, both fin", time.Duration(step), s.tcp, s.closes)
		}
		if s.http != 2 || s.answered != 2 {
			t.Errorf("step %v: %d http records, %d answered: want 2 and 2", time.Duration(step), s.http, s.answered)
		}
		if g := an.Stats().GapBytes.Load(); g != 0 || s.gap != 0 {
			t.Errorf("step %v: gap bytes %d (records %d), want 0", time.Duration(step), g, s.gap)
		}
	}
}

// TestFaultChallengeACKGap: a SYN answered by a challenge ACK whose number
// belongs to another connection, then the client's RST (as in
// tls_suricata_tls-subjectaltname.pcap). The ACK is 2 GB past the SYN: no
// stream bytes were lost. A real loss (the capture missed a request the
// server then ACKs) is still counted.
func TestFaultChallengeACKGap(t *testing.T) {
	base := int64(1_700_000_000) * 1_000_000_000
	src := new(frameSource)
	c := &tcpConv{t: t, src: src, cseq: 4287462971, sseq: 77, cli: netip.AddrFrom4([4]byte{10, 0, 0, 1}), srv: netip.AddrFrom4([4]byte{10, 0, 0, 2}), cport: 59819, sport: 80}
	c.pkt(base, true, true, false, false, false, "")
	c.cseq, c.sseq = 2086663738, 9000 // the challenge ACK's numbers
	c.pkt(base+20*ms, false, false, true, false, false, "")
	// The client's RST carries the ACK number as its sequence number
	// (built as a bare segment, then flagged RST; no one checks the TCP
	// checksum).
	c.pkt(base+21*ms, true, false, false, false, false, "")
	src.frames[len(src.frames)-1][14+20+13] = 0x04

	// A second connection: the server ACKs 100 request bytes the capture
	// never saw.
	d := &tcpConv{t: t, src: src, cseq: 1000, sseq: 5000, cli: netip.AddrFrom4([4]byte{10, 0, 0, 3}), srv: netip.AddrFrom4([4]byte{10, 0, 0, 2}), cport: 40000, sport: 80}
	d.pkt(base+30*ms, true, true, false, false, false, "")
	d.pkt(base+31*ms, false, true, true, false, false, "")
	d.pkt(base+32*ms, true, false, true, false, false, "")
	d.cseq += 100 // lost
	d.pkt(base+40*ms, false, false, true, false, false, "")
	d.pkt(base+41*ms, true, false, true, false, true, "")
	d.pkt(base+42*ms, false, false, true, false, true, "")
	d.pkt(base+43*ms, true, false, true, false, false, "")

	recs, an := analyze(t, singles{src}, analytics.DefaultConfig())
	gaps := map[uint16]int64{}
	for _, r := range recs {
		if r.Proto == "tcp" {
			g, _ := r.Get("gap_bytes")
			gaps[r.Client.Port()] += g.Int
		}
	}
	if gaps[59819] != 0 {
		t.Errorf("challenge-ACK connection: %d gap bytes, want 0", gaps[59819])
	}
	if gaps[40000] != 100 {
		t.Errorf("connection with a lost request: %d gap bytes, want 100", gaps[40000])
	}
	if g := an.Stats().GapBytes.Load(); g != 100 {
		t.Errorf("analyzer: %d stream bytes never seen, want 100", g)
	}
}
