package hops

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/internal/testframe"
	"tapvault/packet"
	"tapvault/pcap"
)

// seg is one TCP segment of a test conversation.
type seg struct {
	fromClient bool
	id         uint16
	seq, ack   uint32
	flags      testframe.TCPFlags
	payload    string
}

// side is how one point sees the conversation: its addresses and ports.
type side struct {
	client, server netip.AddrPort
}

func (s side) frame(g seg) []byte {
	src, dst := s.client, s.server
	if !g.fromClient {
		src, dst = dst, src
	}
	f := testframe.Frame{
		IPv4:    &testframe.IPv4{Src: src.Addr(), Dst: dst.Addr(), ID: g.id},
		TCP:     &testframe.TCP{SrcPort: src.Port(), DstPort: dst.Port(), Seq: g.seq, Ack: g.ack, Flags: g.flags},
		Payload: []byte(g.payload),
	}
	return f.Bytes()
}

func add(t *testing.T, m *Matcher, p Point, ts int64, b []byte) {
	t.Helper()
	var dec packet.Decoder
	var d packet.Decoded
	dec.Decode(b, pcap.LinkTypeEthernet, &d)
	if err := m.Add(p, ts, &d, b); err != nil {
		t.Fatal(err)
	}
}

var (
	// A sees the client's own addresses; B, behind a NAT that rewrote
	// both (DNAT to the real server, MASQUERADE of the client), sees others.
	sideA = side{netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:8008")}
	sideB = side{netip.MustParseAddrPort("192.168.1.1:61000"), netip.MustParseAddrPort("192.168.1.2:8080")}
	conv  = []seg{
		{true, 100, 1000, 0, testframe.SYN, ""},
		{false, 0, 5000, 1001, testframe.SYN | testframe.ACK, ""},
		{true, 101, 1001, 5001, testframe.ACK, ""},
		{true, 102, 1001, 5001, testframe.PSH | testframe.ACK, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{false, 7, 5001, 1028, testframe.ACK, ""},
		{false, 8, 5001, 1028, testframe.PSH | testframe.ACK, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{true, 103, 1028, 5040, testframe.ACK, ""},
	}
)

const (
	ms       = int64(time.Millisecond)
	toServer = 3 * ms // A -> B
	toClient = 4 * ms // B -> A
)

// feed adds conv at both points: A is on the client's side, so a client
// packet reaches B toServer later, a server packet reaches A toClient after
// B. It returns each segment's time at A and at B.
func feed(t *testing.T, m *Matcher) (at, bt []int64) {
	ts := int64(1_700_000_000) * 1e9
	for i, g := range conv {
		ts += 10 * ms
		var a, b int64
		if g.fromClient {
			a, b = ts, ts+toServer+int64(i)*1000 // a little jitter
		} else {
			b, a = ts, ts+toClient
		}
		add(t, m, A, a, sideA.frame(g))
		add(t, m, B, b, sideB.frame(g))
		at, bt = append(at, a), append(bt, b)
	}
	return at, bt
}

func TestMatchAcrossNAT(t *testing.T) {
	m := NewMatcher(Options{})
	feed(t, m)
	r := m.Report()
	if r.Matched != len(conv) || r.Ambiguous != 0 {
		t.Fatalf("matched %d ambiguous %d, want %d and 0", r.Matched, r.Ambiguous, len(conv))
	}
	if len(r.Directions) != 2 {
		t.Fatalf("%d directions, want 2: %+v", len(r.Directions), r.Directions)
	}
	for _, d := range r.Directions {
		switch d.AFlow.Src {
		case sideA.client:
			if d.From != A || d.BFlow.Src != sideB.client || d.Delay.Min != toServer || d.Delay.N != 4 {
				t.Errorf("client's direction: %+v", d)
			}
		case sideA.server:
			if d.From != B || d.BFlow.Src != sideB.server || d.Delay.Median != toClient || d.Delay.Spread() != 0 || d.Delay.N != 3 {
				t.Errorf("server's direction: %+v", d)
			}
		default:
			t.Errorf("unexpected direction %+v", d)
		}
	}
	if r.Total[A].N != 4 || r.Total[B].N != 3 {
		t.Errorf("totals %+v", r.Total)
	}
}

// A segment repeated with the same IP ID at one point (a duplicate the
// capture saw twice, or IPv6, which has no ID) cannot be told apart: it is
// left out, not matched to the wrong copy.
func TestAmbiguousLeftOut(t *testing.T) {
	m := NewMatcher(Options{})
	feed(t, m)
	add(t, m, A, 1, sideA.frame(conv[3]))
	r := m.Report()
	if r.Ambiguous != 1 || r.Matched != len(conv)-1 {
		t.Fatalf("ambiguous %d matched %d", r.Ambiguous, r.Matched)
	}
}

// The payload is part of the key: same headers, different bytes, no match.
func TestPayloadInKey(t *testing.T) {
	m := NewMatcher(Options{})
	g := conv[3]
	add(t, m, A, 1, sideA.frame(g))
	g.payload = "GET /x HTTP/1.1\r\nHost: y\r\n\r\n"[:len(g.payload)]
	add(t, m, B, 2, sideB.frame(g))
	if r := m.Report(); r.Matched != 0 {
		t.Fatalf("matched %d, want 0", r.Matched)
	}
}

func TestMaxDelayAndUncertainty(t *testing.T) {
	m := NewMatcher(Options{MaxDelay: 3500 * time.Microsecond, Uncertainty: 3500 * time.Microsecond})
	feed(t, m)
	r := m.Report()
	// The server's packets took 4 ms: past MaxDelay, no pairs.
	if r.Matched != 4 || len(r.Directions) != 1 {
		t.Fatalf("matched %d, %d directions", r.Matched, len(r.Directions))
	}
	if !r.Directions[0].BelowUncertainty {
		t.Errorf("3 ms under a 3.5 ms uncertainty not flagged: %+v", r.Directions[0])
	}
}

func TestMaxPackets(t *testing.T) {
	m := NewMatcher(Options{MaxPackets: 2})
	var dec packet.Decoder
	var d packet.Decoded
	var err error
	for i, g := range conv[:3] {
		b := sideA.frame(g)
		dec.Decode(b, pcap.LinkTypeEthernet, &d)
		err = m.Add(A, int64(i), &d, b)
	}
	var tm *ErrTooMany
	if !errors.As(err, &tm) || tm.Max != 2 {
		t.Fatalf("got %v, want ErrTooMany", err)
	}
}

func TestExchanges(t *testing.T) {
	m := NewMatcher(Options{})
	at, bt := feed(t, m)
	ra := &analytics.Record{ID: 1, Proto: "http", Transport: 6, Client: sideA.client, Server: sideA.server,
		ReqFirst: at[3], ReqLast: at[3], RespFirst: at[5], RespLast: at[5], ClientNet: 200_000, Network: 9 * ms}
	rb := &analytics.Record{ID: 2, Proto: "http", Transport: 6, Client: sideB.client, Server: sideB.server,
		ReqFirst: bt[3], ReqLast: bt[3], RespFirst: bt[5], RespLast: bt[5], ClientNet: 7 * ms, Network: 2 * ms}
	xs := m.Exchanges([]*analytics.Record{ra}, []*analytics.Record{rb})
	if len(xs) != 1 {
		t.Fatalf("%d exchanges", len(xs))
	}
	x := xs[0]
	wantAB := toServer + 3000 + toClient // the request segment is conv[3]: 3 µs of jitter
	if x.BID != 2 || x.ClientA != 200_000 || x.BServer != 2*ms || x.AB != wantAB || x.Reversed {
		t.Fatalf("got %+v, want AB %d", x, wantAB)
	}
	// Seen the other way round (B as A), the same split comes out.
	m2 := NewMatcher(Options{})
	for i, g := range conv {
		add(t, m2, A, bt[i], sideB.frame(g))
		add(t, m2, B, at[i], sideA.frame(g))
	}
	xs = m2.Exchanges([]*analytics.Record{rb}, []*analytics.Record{ra})
	if len(xs) != 1 || !xs[0].Reversed || xs[0].AB != wantAB || xs[0].ClientA != 200_000 || xs[0].BServer != 2*ms {
		t.Fatalf("reversed: %+v", xs)
	}
}

func TestLadderSteps(t *testing.T) {
	var a, b []Seen
	ts := int64(1e18)
	for i, g := range conv {
		ts += 10 * ms
		at, bt := ts, ts+toServer
		if !g.fromClient {
			at, bt = ts+toClient, ts
		}
		if i != 6 { // A missed the last ACK
			a = append(a, Seen{TS: at, LinkType: pcap.LinkTypeEthernet, Data: sideA.frame(g)})
		}
		b = append(b, Seen{TS: bt, LinkType: pcap.LinkTypeEthernet, Data: sideB.frame(g)})
	}
	steps, rev := LadderSteps(a, b, Endpoints{Src: sideA.client, Dst: sideA.server, Proto: 6})
	if rev || len(steps) != len(conv) {
		t.Fatalf("reversed %v, %d steps: %+v", rev, len(steps), steps)
	}
	for i, s := range steps {
		if s.ToServer != conv[i].fromClient {
			t.Errorf("step %d: ToServer %v", i, s.ToServer)
		}
		both := s.At[0] != 0 && s.At[1] != 0
		if both != (i != 6) {
			t.Errorf("step %d: times %v", i, s.At)
		}
		if both && s.ToServer && s.At[1]-s.At[0] != toServer || both && !s.ToServer && s.At[0]-s.At[1] != toClient {
			t.Errorf("step %d: times %v", i, s.At)
		}
	}
	if steps[3].Payload != len(conv[3].payload) {
		t.Errorf("payload %d", steps[3].Payload)
	}
	// Seen from the other side, the points are reversed.
	if _, rev := LadderSteps(b, a, Endpoints{Src: sideB.client}); !rev {
		t.Error("B as A: not reversed")
	}
}
