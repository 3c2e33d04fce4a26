package groundtruth

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"tapvault/internal/testframe"
)

var (
	cli = netip.MustParseAddr(clientIP)
	srv = netip.MustParseAddr(serverIP)
)

func tcpFrame(fromClient bool, seq uint32, payload string) []byte {
	f := testframe.Frame{IPv4: &testframe.IPv4{Src: cli, Dst: srv}, TCP: &testframe.TCP{SrcPort: 40000, DstPort: 8080, Seq: seq}, Payload: []byte(payload)}
	if !fromClient {
		f.IPv4.Src, f.IPv4.Dst = srv, cli
		f.TCP.SrcPort, f.TCP.DstPort = 8080, 40000
	}
	return f.Bytes()
}

func TestTransportPayload(t *testing.T) {
	seg, ok := transportPayload(tcpFrame(true, 7, "GET /sleep?d=1ms HTTP/1.1\r\n\r\n"))
	if !ok || seg.src != "10.11.0.1:40000" || seg.dst != "10.11.0.2:8080" || !seg.tcp || seg.seq != 7 || string(seg.payload) != "GET /sleep?d=1ms HTTP/1.1\r\n\r\n" {
		t.Fatalf("got %+v %v, want the client's request segment", seg, ok)
	}
	// Padding to 60 bytes is not payload.
	if seg, ok := transportPayload(tcpFrame(true, 1, "")); !ok || len(seg.payload) != 0 {
		t.Fatalf("empty segment: got %d payload bytes, want 0", len(seg.payload))
	}
	udp := testframe.Frame{IPv4: &testframe.IPv4{Src: cli, Dst: srv}, UDP: &testframe.UDP{SrcPort: 5353, DstPort: 53}, Payload: []byte("q")}
	if seg, ok := transportPayload(udp.Bytes()); !ok || seg.tcp || seg.dst != "10.11.0.2:53" || string(seg.payload) != "q" {
		t.Fatalf("udp: got %+v %v", seg, ok)
	}
	arp := testframe.Frame{ARP: &testframe.ARP{SenderIP: cli, TargetIP: srv}}
	if _, ok := transportPayload(arp.Bytes()); ok {
		t.Fatal("ARP read as a transport segment")
	}
	for n := range 60 { // truncated frames never panic
		transportPayload(tcpFrame(true, 1, "xyz")[:n])
	}
}

// TestPairer: a marked request in two segments, a retransmission of it, the
// answer in two segments, an unmarked exchange, and the next marked one.
func TestPairer(t *testing.T) {
	var p pairer
	feed := func(fromClient bool, seq uint32, payload string, v int64) {
		seg, ok := transportPayload(tcpFrame(fromClient, seq, payload))
		if !ok {
			t.Fatal("frame not parsed")
		}
		p.frame(seg, v)
	}
	feed(true, 100, "GET /sleep?d=5ms HTTP/1.1\r\n", 1)
	feed(true, 127, "Host: x\r\n\r\n", 2)               // the request's last segment
	feed(true, 100, "GET /sleep?d=5ms HTTP/1.1\r\n", 3) // retransmission: not the end
	feed(true, 127, "", 4)                              // bare ACK
	feed(false, 500, "HTTP/1.1 200 OK\r\n", 10)         // the answer's first segment
	feed(false, 517, "ok\n", 11)
	feed(true, 138, "GET /other HTTP/1.1\r\n\r\n", 20) // not marked: not timed
	feed(false, 520, "HTTP/1.1 200 OK\r\n", 21)
	feed(true, 162, "GET /sleep?d=0s HTTP/1.1\r\n\r\n", 30)
	feed(false, 537, "HTTP/1.1 200 OK\r\n", 31)
	// The loss case: the next request (carrying the ACK of the answer) is
	// sent, the server resends its last answer, then answers the request.
	feed(true, 190, "GET /sleep?d=0s HTTP/1.1\r\n\r\n", 40)
	feed(false, 537, "HTTP/1.1 200 OK\r\n", 41) // the old answer again: not this request's
	feed(false, 554, "HTTP/1.1 200 OK\r\n", 42)
	got := p.take("10.11.0.2:8080")
	want := [][2]int64{{2, 10}, {30, 31}, {40, 42}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got pairs %v, want %v", got, want)
	}
	if again := p.take("10.11.0.2:8080"); len(again) != 0 {
		t.Fatalf("take twice: got %v, want nothing", again)
	}
}

func TestDNSAnswer(t *testing.T) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 42, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("d20." + dnsZone), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	resp, delay, err := dnsAnswer(q)
	if err != nil || delay != 20*time.Millisecond {
		t.Fatalf("got delay %v, err %v; want 20ms", delay, err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil || m.ID != 42 || !m.Response || len(m.Answers) != 1 {
		t.Fatalf("answer: %+v %v", m.Header, err)
	}
	b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("example.com."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ = b.Finish()
	if _, _, err := dnsAnswer(q); err == nil {
		t.Fatal("answered a name outside the zone")
	}
}

func TestExpectedClassAndTolerance(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		net, srv time.Duration
		want     Class
	}{
		{2 * ms, 0, Healthy}, {2 * ms, 9 * ms, Healthy}, {2 * ms, 20 * ms, SlowApp},
		{60 * ms, ms, SlowNet}, {40 * ms, 100 * ms, SlowApp}, {213 * ms, ms, SlowNet},
		// The analyser's thresholds: a 15 ms path is not slow (20 ms),
		// a 10 ms server is; a slow path beside a slower server is slow_app.
		{15 * ms, ms, Healthy}, {15 * ms, 10 * ms, SlowApp}, {20 * ms, 5 * ms, SlowNet}, {25 * ms, 30 * ms, SlowApp},
	} {
		if got := ExpectedClass(c.net, c.srv); got != c.want {
			t.Errorf("ExpectedClass(%v, %v): got %s, want %s", c.net, c.srv, got, c.want)
		}
	}
	for _, c := range []struct {
		got, want time.Duration
		ok        bool
	}{
		{1500 * time.Microsecond, 600 * time.Microsecond, true}, // 1 ms floor
		{2 * ms, 600 * time.Microsecond, false},
		{65 * ms, 60 * ms, true}, {67 * ms, 60 * ms, false}, {-1, 0, false},
	} {
		if within(c.got, c.want) != c.ok {
			t.Errorf("within(%v, %v): got %v, want %v", c.got, c.want, !c.ok, c.ok)
		}
	}
	if r := Parts(Record{"class": "fast"}); r.Class != Healthy || r.Network != -1 {
		t.Errorf("Parts of a bare record: got %+v", r)
	}
}

func TestKnownBadPatterns(t *testing.T) {
	if _, ok := KnownBadReason("dpdk/front-3/front/server:tiers"); !ok {
		t.Error("dpdk front-3 tiers: not known bad")
	}
	if _, ok := KnownBadReason("pcap/front-3/front/server:tiers"); ok {
		t.Error("pcap front-3 tiers: known bad, but the pcap source links them right")
	}
	if _, ok := KnownBadReason("pcap/slow-net/http/client:network"); ok {
		t.Error("slow-net network parts are right today and must stay checked")
	}
}
