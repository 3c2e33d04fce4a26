package tracegen

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/dns/dnsmessage"
)

// appTestOpts is a trace of about 130 s at 300 packets/s: few conversations
// overlap, but enough do to interleave.
var appTestOpts = Options{Kind: KindApp, Packets: 40000, Seed: 7, PPS: 300}

// appPacket is a decoded frame of an app trace.
type appPacket struct {
	i        int
	ts       int64
	src, dst netip.AddrPort
	udp      bool
	flags    uint8 // TCP
	seq, ack uint32
	payload  []byte
}

// appConnKey names a connection by its client (SYN sender or UDP query
// sender) and server endpoints.
type appConnKey struct{ client, server netip.AddrPort }

// decodeApp decodes every frame, checking checksums, lengths and time
// order.
func decodeApp(t *testing.T, opts Options) []appPacket {
	t.Helper()
	var out []appPacket
	var last int64
	_, err := GenerateFrames(opts, func(ts int64, frame []byte) error {
		i := len(out)
		if ts < last {
			return fmt.Errorf("frame %d: got time %d after %d, want non-decreasing", i, ts, last)
		}
		last = ts
		if len(frame) < 60 {
			return fmt.Errorf("frame %d: got %d bytes, want at least 60", i, len(frame))
		}
		pkt := gopacket.NewPacket(bytes.Clone(frame), layers.LayerTypeEthernet, gopacket.DecodeOptions{})
		if el := pkt.ErrorLayer(); el != nil {
			return fmt.Errorf("frame %d: decode: %v", i, el.Error())
		}
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip == nil {
			return fmt.Errorf("frame %d: no IPv4 layer", i)
		}
		if err, r := ip.VerifyChecksum(); err != nil || !r.Valid {
			return fmt.Errorf("frame %d: IPv4 checksum: got %#x, want %#x (%v)", i, r.Actual, r.Correct, err)
		}
		if want := max(60, 14+int(ip.Length)); want != len(frame) {
			return fmt.Errorf("frame %d: got %d bytes, want %d from the IP length", i, len(frame), want)
		}
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		dst, _ := netip.AddrFromSlice(ip.DstIP)
		p := appPacket{i: i, ts: ts}
		switch l4 := pkt.TransportLayer().(type) {
		case *layers.TCP:
			l4.SetNetworkLayerForChecksum(ip)
			if err, r := l4.VerifyChecksum(); err != nil || !r.Valid {
				return fmt.Errorf("frame %d: TCP checksum: got %#x, want %#x (%v)", i, r.Actual, r.Correct, err)
			}
			p.src, p.dst = netip.AddrPortFrom(src, uint16(l4.SrcPort)), netip.AddrPortFrom(dst, uint16(l4.DstPort))
			p.flags = l4.Contents[13]
			p.seq, p.ack, p.payload = l4.Seq, l4.Ack, l4.Payload
		case *layers.UDP:
			l4.SetNetworkLayerForChecksum(ip)
			if err, r := l4.VerifyChecksum(); err != nil || !r.Valid || l4.Checksum == 0 {
				return fmt.Errorf("frame %d: UDP checksum: got %#x, want %#x (%v)", i, r.Actual, r.Correct, err)
			}
			p.src, p.dst = netip.AddrPortFrom(src, uint16(l4.SrcPort)), netip.AddrPortFrom(dst, uint16(l4.DstPort))
			p.udp, p.payload = true, l4.Payload
		default:
			return fmt.Errorf("frame %d: no TCP or UDP layer", i)
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != opts.Packets {
		t.Fatalf("got %d frames, want %d", len(out), opts.Packets)
	}
	return out
}

// appConns groups packets by connection. The client is the side that sent
// the first packet (a SYN or a query).
func appConns(pkts []appPacket) (map[appConnKey][]*appPacket, map[netip.AddrPort]map[netip.AddrPort]appConnKey) {
	conns := map[appConnKey][]*appPacket{}
	keyOf := map[netip.AddrPort]map[netip.AddrPort]appConnKey{}
	for i := range pkts {
		p := &pkts[i]
		k, ok := keyOf[p.src][p.dst]
		if !ok {
			k = appConnKey{p.src, p.dst}
			for _, ep := range [][2]netip.AddrPort{{p.src, p.dst}, {p.dst, p.src}} {
				if keyOf[ep[0]] == nil {
					keyOf[ep[0]] = map[netip.AddrPort]appConnKey{}
				}
				keyOf[ep[0]][ep[1]] = k
			}
		}
		conns[k] = append(conns[k], p)
	}
	return conns, keyOf
}

func TestAppDeterministic(t *testing.T) {
	opts := Options{Kind: KindApp, Packets: 20000, Seed: 3, PPS: 5000}
	hash := func(o Options) ([32]byte, Stats, []byte) {
		var buf bytes.Buffer
		st, err := Generate(&buf, o)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(buf.Bytes()), st, buf.Bytes()
	}
	h1, st1, file := hash(opts)
	h2, st2, _ := hash(opts)
	if h1 != h2 || st1 != st2 {
		t.Fatalf("same options: got %x %+v then %x %+v, want identical", h1, st1, h2, st2)
	}
	other := opts
	other.Seed = 4
	if h3, _, _ := hash(other); h3 == h1 {
		t.Errorf("seeds 3 and 4 gave the same trace %x", h1)
	}
	g1, err := AppGroundTruth(opts)
	if err != nil {
		t.Fatal(err)
	}
	g2, _ := AppGroundTruth(opts)
	if !reflect.DeepEqual(g1, g2) {
		t.Errorf("same options gave different ground truth")
	}
	if len(g1) == 0 {
		t.Fatalf("got no exchanges")
	}

	// The pcap file: nanosecond magic, every frame whole, stats right.
	r, err := pcapgo.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if r.Resolution() != gopacket.TimestampResolutionNanosecond || r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("got link type %v resolution %v, want Ethernet, ns", r.LinkType(), r.Resolution())
	}
	var n, size int64
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 && ci.Timestamp.UnixNano() != defaultStartNS {
			t.Errorf("first frame at %d, want %d", ci.Timestamp.UnixNano(), int64(defaultStartNS))
		}
		if ci.Length != len(data) {
			t.Errorf("frame %d: got wire length %d, captured %d", n, ci.Length, len(data))
		}
		n++
		size += int64(len(data))
	}
	if n != st1.Packets || size != st1.Bytes || n != int64(opts.Packets) {
		t.Errorf("got %d frames, %d bytes in the file; stats %+v; want %d frames", n, size, st1, opts.Packets)
	}
}

func TestAppOptionErrors(t *testing.T) {
	for _, o := range []Options{
		{Kind: KindApp, Packets: -1},
		{Kind: KindApp, Packets: 10, PPS: -1},
	} {
		if _, err := GenerateFrames(o, func(int64, []byte) error { return nil }); err == nil {
			t.Errorf("%+v: got no error, want one", o)
		}
		if _, err := AppGroundTruth(o); err == nil {
			t.Errorf("AppGroundTruth(%+v): got no error, want one", o)
		}
	}
	st, err := GenerateFrames(Options{Kind: KindApp}, func(int64, []byte) error { return nil })
	if err != nil || st.Packets != 0 {
		t.Errorf("0 packets: got %+v, %v, want none and no error", st, err)
	}
}

// TestAppTCP checks every TCP connection: handshake first, no gaps or
// repeats in either direction's sequence numbers, ACKs that never run
// ahead of what the peer sent and never go back, FIN last.
func TestAppTCP(t *testing.T) {
	pkts := decodeApp(t, appTestOpts)
	conns, _ := appConns(pkts)
	closed := 0
	for k, ps := range conns {
		if ps[0].udp {
			continue
		}
		if ps[0].flags != tcpSYN || ps[0].ack != 0 {
			t.Fatalf("%v: first packet flags %#x ack %d, want a bare SYN", k, ps[0].flags, ps[0].ack)
		}
		var next, lastAck [2]uint32 // by direction: 0 client, 1 server
		var started, fin [2]bool
		for _, p := range ps {
			d := 0
			if p.src != k.client {
				d = 1
			}
			if p.flags&tcpSYN != 0 {
				if started[d] {
					t.Fatalf("%v frame %d: second SYN", k, p.i)
				}
				started[d], next[d] = true, p.seq
			}
			if !started[d] {
				t.Fatalf("%v frame %d: data before the SYN", k, p.i)
			}
			if p.seq != next[d] {
				t.Fatalf("%v frame %d: got seq %d, want %d", k, p.i, p.seq, next[d])
			}
			if fin[d] && (len(p.payload) > 0 || p.flags&tcpFIN != 0) {
				t.Fatalf("%v frame %d: data after FIN", k, p.i)
			}
			next[d] += uint32(len(p.payload))
			if p.flags&(tcpSYN|tcpFIN) != 0 {
				next[d]++
			}
			fin[d] = fin[d] || p.flags&tcpFIN != 0
			if p.flags&tcpACK == 0 {
				continue
			}
			if !started[1-d] {
				t.Fatalf("%v frame %d: ACK before the peer's SYN", k, p.i)
			}
			if int32(p.ack-next[1-d]) > 0 {
				t.Fatalf("%v frame %d: ack %d beyond the peer's %d", k, p.i, p.ack, next[1-d])
			}
			if lastAck[d] != 0 && int32(p.ack-lastAck[d]) < 0 {
				t.Fatalf("%v frame %d: ack %d went back from %d", k, p.i, p.ack, lastAck[d])
			}
			lastAck[d] = p.ack
		}
		if fin[0] && fin[1] && ps[len(ps)-1].i != len(pkts)-1 {
			// (A close whose last packet is the trace's may have its final
			// ACK cut by the packet count.)
			closed++
			if l := ps[len(ps)-1]; l.src != k.client || l.flags != tcpACK || l.ack != next[1] {
				t.Errorf("%v: after both FINs the last packet is %+v, want the client's ACK of %d", k, l, next[1])
			}
		}
	}
	if closed < 100 {
		t.Errorf("got %d closed connections, want at least 100", closed)
	}
}

// appStream returns the payload packets of one direction of a connection
// with lo <= ts <= hi, and their bytes. For UDP DNS only the messages with
// the given ID count.
func appStream(ps []*appPacket, src netip.AddrPort, lo, hi int64, dnsID int) ([]*appPacket, []byte) {
	var out []*appPacket
	var b []byte
	for _, p := range ps {
		if p.src != src || p.ts < lo || p.ts > hi || len(p.payload) == 0 {
			continue
		}
		if p.udp && dnsID >= 0 && (len(p.payload) < 2 || int(binary.BigEndian.Uint16(p.payload)) != dnsID) {
			continue
		}
		out = append(out, p)
		b = append(b, p.payload...)
	}
	return out, b
}

// TestAppGroundTruth checks every exchange against the packets: the
// packets at its times exist and carry its bytes, the bytes parse as the
// protocol and match its key fields, and its timing has its class's shape.
func TestAppGroundTruth(t *testing.T) {
	pkts := decodeApp(t, appTestOpts)
	conns, keyOf := appConns(pkts)
	exs, err := AppGroundTruth(appTestOpts)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := range exs {
		e := &exs[i]
		name := fmt.Sprintf("exchange %d (%s %s %v->%v)", i, e.Proto, e.Class, e.Client, e.Server)
		k, ok := keyOf[e.Client][e.Server]
		if !ok {
			t.Fatalf("%s: no such connection in the trace", name)
		}
		ps := conns[k]
		id := -1
		if e.Transport == "udp" {
			id = int(e.DNSID)
		}
		reqPkts, req := appStream(ps, e.Client, e.ReqFirstNS, e.ReqLastNS, id)
		respPkts, resp := appStream(ps, e.Server, e.RespFirstNS, e.RespLastNS, id)
		if len(reqPkts) != e.ReqPackets || len(req) != e.ReqBytes || len(reqPkts) == 0 ||
			reqPkts[0].ts != e.ReqFirstNS || reqPkts[len(reqPkts)-1].ts != e.ReqLastNS {
			t.Fatalf("%s: got %d request packets, %d bytes, want %d, %d, from %d to %d", name, len(reqPkts), len(req), e.ReqPackets, e.ReqBytes, e.ReqFirstNS, e.ReqLastNS)
		}
		if len(respPkts) != e.RespPackets || len(resp) != e.RespBytes || len(respPkts) == 0 ||
			respPkts[0].ts != e.RespFirstNS || respPkts[len(respPkts)-1].ts != e.RespLastNS {
			t.Fatalf("%s: got %d response packets, %d bytes, want %d, %d, from %d to %d", name, len(respPkts), len(resp), e.RespPackets, e.RespBytes, e.RespFirstNS, e.RespLastNS)
		}
		if got := e.NetworkNS + e.ThinkNS; got != e.ResponseNS() || e.ResponseNS() <= 0 {
			t.Fatalf("%s: network %d + think %d = %d, want the response time %d > 0", name, e.NetworkNS, e.ThinkNS, got, e.ResponseNS())
		}

		// The server's first ACK covering the request.
		if e.Transport == "tcp" {
			last := reqPkts[len(reqPkts)-1]
			end := last.seq + uint32(len(last.payload))
			var ack *appPacket
			for _, p := range ps {
				if p.src == e.Server && p.ts >= e.ReqLastNS && p.flags&tcpACK != 0 && int32(p.ack-end) >= 0 {
					ack = p
					break
				}
			}
			if ack == nil || ack.ts != e.ServerAckNS {
				t.Fatalf("%s: server's first ACK of %d: got %+v, want at %d", name, end, ack, e.ServerAckNS)
			}
			switch e.Class {
			case AppSlowApp:
				if len(ack.payload) != 0 || e.RespFirstNS-e.ServerAckNS != 40e6 || e.ServerAckNS-e.ReqLastNS != e.NetworkNS {
					t.Fatalf("%s: slow-app: ACK with %d bytes at +%d, response %d after it; want a bare ACK at +%d, response 40 ms after",
						name, len(ack.payload), e.ServerAckNS-e.ReqLastNS, e.RespFirstNS-e.ServerAckNS, e.NetworkNS)
				}
			default:
				if ack != respPkts[0] {
					t.Fatalf("%s: first ACK at %d is not the first response packet at %d", name, ack.ts, e.RespFirstNS)
				}
			}
		} else if e.ServerAckNS != 0 {
			t.Fatalf("%s: got a server ACK time %d over UDP, want 0", name, e.ServerAckNS)
		}
		switch e.Class {
		case AppFast:
			if e.ResponseNS() >= 30e6 || e.NetworkNS > 20e6 {
				t.Fatalf("%s: fast: response after %d ns (network %d), want under 30 ms", name, e.ResponseNS(), e.NetworkNS)
			}
		case AppSlowNet:
			if e.NetworkNS < 30e6+150e3 || e.ThinkNS > 3e6 {
				t.Fatalf("%s: slow-net: network %d think %d, want network >= 30.15 ms, think <= 3 ms", name, e.NetworkNS, e.ThinkNS)
			}
		case AppSlowApp:
			if e.ThinkNS != 40e6 || e.NetworkNS > 20e6 {
				t.Fatalf("%s: slow-app: network %d think %d, want think 40 ms", name, e.NetworkNS, e.ThinkNS)
			}
		case AppTier:
		default:
			t.Fatalf("%s: unknown class", name)
		}
		seen[e.Transport+"/"+e.Proto+"/"+e.Class]++
		if e.RespPackets > 1 {
			seen["multi-segment response"]++
		}
		if e.ReqPackets > 1 {
			seen["multi-segment request"]++
		}

		switch e.Proto {
		case AppHTTP:
			checkAppHTTP(t, name, e, req, resp, seen)
		case AppDNS:
			checkAppDNS(t, name, e, req, resp, seen)
		case AppPostgres:
			checkAppPostgres(t, name, e, req, resp, seen)
		case AppRedis:
			checkAppRedis(t, name, e, req, resp, seen)
		default:
			t.Fatalf("%s: unknown protocol", name)
		}
		checkAppTier(t, name, exs, i, seen)
	}
	for _, want := range []string{
		"tcp/http/fast", "tcp/http/slow-app", "tcp/http/slow-net", "tcp/http/tier",
		"udp/dns/fast", "udp/dns/slow-app", "udp/dns/slow-net", "tcp/dns/fast",
		"tcp/postgres/fast", "tcp/postgres/slow-app", "tcp/postgres/slow-net",
		"tcp/redis/fast", "tcp/redis/slow-app", "tcp/redis/slow-net",
		"multi-segment response", "multi-segment request",
		"GET", "POST", "status 404", "status 500", "chunked", "A", "AAAA", "NXDOMAIN",
		"postgres startup", "SQLSTATE 42P01", "SQLSTATE 23505", "redis error ERR", "redis error WRONGTYPE",
		"tier postgres", "tier redis", "tier with 2 backends",
	} {
		if seen[want] == 0 {
			t.Errorf("no %q in %d exchanges", want, len(exs))
		}
	}
	t.Logf("%d exchanges: %v", len(exs), seen)
}

func checkAppHTTP(t *testing.T, name string, e *AppExchange, req, resp []byte, seen map[string]int) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(req))
	r, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("%s: request: %v", name, err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil || br.Buffered() != 0 || int64(len(body)) != max(r.ContentLength, 0) {
		t.Fatalf("%s: request body of %d bytes (%v), %d left over, want %d", name, len(body), err, br.Buffered(), r.ContentLength)
	}
	if r.Method != e.Method || r.Host != e.Host || r.RequestURI != e.Path {
		t.Fatalf("%s: got %s %s %s, want %s %s %s", name, r.Method, r.Host, r.RequestURI, e.Method, e.Host, e.Path)
	}
	br = bufio.NewReader(bytes.NewReader(resp))
	rs, err := http.ReadResponse(br, r)
	if err != nil {
		t.Fatalf("%s: response: %v", name, err)
	}
	body, err = io.ReadAll(rs.Body)
	if err != nil || br.Buffered() != 0 {
		t.Fatalf("%s: response body of %d bytes: %v, %d bytes left over", name, len(body), err, br.Buffered())
	}
	chunked := len(rs.TransferEncoding) == 1 && rs.TransferEncoding[0] == "chunked"
	if rs.StatusCode != e.Status || chunked != e.Chunked || !chunked && int64(len(body)) != rs.ContentLength {
		t.Fatalf("%s: got status %d chunked %v body %d (length %d), want %d chunked %v", name, rs.StatusCode, chunked, len(body), rs.ContentLength, e.Status, e.Chunked)
	}
	seen[e.Method]++
	seen["status "+strconv.Itoa(e.Status)]++
	if chunked {
		seen["chunked"]++
	}
}

func checkAppDNS(t *testing.T, name string, e *AppExchange, req, resp []byte, seen map[string]int) {
	t.Helper()
	if e.Transport == "tcp" {
		for _, m := range []*[]byte{&req, &resp} {
			if len(*m) < 2 || int(binary.BigEndian.Uint16(*m)) != len(*m)-2 {
				t.Fatalf("%s: TCP length prefix of a %d-byte message is wrong", name, len(*m))
			}
			*m = (*m)[2:]
		}
	}
	for n, m := range [][]byte{req, resp} {
		var msg dnsmessage.Message
		if err := msg.Unpack(m); err != nil {
			t.Fatalf("%s: message %d: %v", name, n, err)
		}
		if msg.ID != e.DNSID || msg.Response != (n == 1) || len(msg.Questions) != 1 {
			t.Fatalf("%s: message %d: got id %d response %v %d questions, want id %d", name, n, msg.ID, msg.Response, len(msg.Questions), e.DNSID)
		}
		q := msg.Questions[0]
		if q.Name.String() != e.QName+"." || uint16(q.Type) != e.QType {
			t.Fatalf("%s: message %d: got question %v %v, want %s %d", name, n, q.Name, q.Type, e.QName, e.QType)
		}
		if n == 1 {
			if int(msg.RCode) != e.RCode || (len(msg.Answers) > 0) != (e.RCode == 0) {
				t.Fatalf("%s: got rcode %v with %d answers, want %d", name, msg.RCode, len(msg.Answers), e.RCode)
			}
			for _, a := range msg.Answers {
				if uint16(a.Header.Type) != e.QType {
					t.Fatalf("%s: answer of type %v, want %d", name, a.Header.Type, e.QType)
				}
			}
		}
	}
	seen[map[uint16]string{1: "A", 28: "AAAA"}[e.QType]]++
	if e.RCode == 3 {
		seen["NXDOMAIN"]++
	}
}

// pgMessages splits backend or frontend messages (each: type, length).
func pgMessages(b []byte) (types []byte, bodies [][]byte, err error) {
	for len(b) > 0 {
		if len(b) < 5 {
			return nil, nil, fmt.Errorf("truncated message header")
		}
		n := int(binary.BigEndian.Uint32(b[1:]))
		if n < 4 || 1+n > len(b) {
			return nil, nil, fmt.Errorf("message %q of length %d in %d bytes", b[0], n, len(b))
		}
		types = append(types, b[0])
		bodies = append(bodies, b[5:1+n])
		b = b[1+n:]
	}
	return types, bodies, nil
}

func checkAppPostgres(t *testing.T, name string, e *AppExchange, req, resp []byte, seen map[string]int) {
	t.Helper()
	switch e.Command {
	case "startup":
		if len(req) < 8 || int(binary.BigEndian.Uint32(req)) != len(req) || binary.BigEndian.Uint32(req[4:]) != 196608 {
			t.Fatalf("%s: bad StartupMessage % x", name, req)
		}
		seen["postgres startup"]++
	case "query":
		types, bodies, err := pgMessages(req)
		if err != nil || string(types) != "Q" || string(bodies[0]) != e.SQL+"\x00" {
			t.Fatalf("%s: got request %q %q (%v), want Q %q", name, types, bodies, err, e.SQL)
		}
	default:
		t.Fatalf("%s: unknown command %q", name, e.Command)
	}
	types, bodies, err := pgMessages(resp)
	if err != nil || len(types) == 0 || types[len(types)-1] != 'Z' {
		t.Fatalf("%s: response messages %q: %v, want ending in ReadyForQuery", name, types, err)
	}
	code := ""
	for i, typ := range types {
		switch typ {
		case 'E':
			for _, f := range bytes.Split(bodies[i], []byte{0}) {
				if len(f) > 0 && f[0] == 'C' {
					code = string(f[1:])
				}
			}
		case 'R':
			if i != 0 || e.Command != "startup" || binary.BigEndian.Uint32(bodies[i]) != 0 {
				t.Fatalf("%s: unexpected authentication message", name)
			}
		}
	}
	if code != e.ErrorCode {
		t.Fatalf("%s: got SQLSTATE %q, want %q", name, code, e.ErrorCode)
	}
	if code == "" && e.Command == "query" && !bytes.Contains(types, []byte{'C'}) {
		t.Fatalf("%s: got %q, want a CommandComplete", name, types)
	}
	if code != "" {
		seen["SQLSTATE "+code]++
	}
}

// respValue parses one RESP2 value and returns the rest. A simple string,
// error or integer comes back as its line with its type byte; an array as
// its elements; a bulk string as itself (nil: "$-1").
func respValue(b []byte) (val []string, rest []byte, err error) {
	i := bytes.Index(b, []byte("\r\n"))
	if len(b) == 0 || i < 0 {
		return nil, nil, fmt.Errorf("no line in %q", b)
	}
	typ, line, b := b[0], string(b[1:i]), b[i+2:]
	switch typ {
	case '+', '-', ':':
		return []string{string(typ) + line}, b, nil
	case '$':
		n, err := strconv.Atoi(line)
		if err != nil || n < -1 || n >= 0 && len(b) < n+2 || n >= 0 && string(b[n:n+2]) != "\r\n" {
			return nil, nil, fmt.Errorf("bad bulk string of length %q", line)
		}
		if n < 0 {
			return nil, b, nil
		}
		return []string{string(b[:n])}, b[n+2:], nil
	case '*':
		n, err := strconv.Atoi(line)
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("bad array length %q", line)
		}
		for ; n > 0; n-- {
			var v []string
			if v, b, err = respValue(b); err != nil {
				return nil, nil, err
			}
			if len(v) != 1 {
				return nil, nil, fmt.Errorf("array element %v, want one bulk string", v)
			}
			val = append(val, v[0])
		}
		return val, b, nil
	}
	return nil, nil, fmt.Errorf("unknown type %q", typ)
}

func checkAppRedis(t *testing.T, name string, e *AppExchange, req, resp []byte, seen map[string]int) {
	t.Helper()
	if req[0] != '*' {
		t.Fatalf("%s: request %q is not an array", name, req)
	}
	cmd, rest, err := respValue(req)
	if err != nil || len(rest) != 0 || len(cmd) < 2 || cmd[0] != e.Command {
		t.Fatalf("%s: got request %q (%v, %d bytes left), want %s and a key", name, cmd, err, len(rest), e.Command)
	}
	val, rest, err := respValue(resp)
	if err != nil || len(rest) != 0 {
		t.Fatalf("%s: reply %q: %v, %d bytes left", name, resp, err, len(rest))
	}
	isErr := resp[0] == '-'
	if isErr != (e.ErrorCode != "") || isErr && !strings.HasPrefix(val[0], "-"+e.ErrorCode+" ") {
		t.Fatalf("%s: got reply %q, want error %q", name, val, e.ErrorCode)
	}
	if isErr {
		seen["redis error "+e.ErrorCode]++
	}
	if want := map[string]byte{"SET": '+', "INCR": ':', "HGETALL": '*', "LRANGE": '*', "GET": '$'}[e.Command]; !isErr && resp[0] != want {
		t.Fatalf("%s: got reply type %q to %s, want %q", name, resp[0], e.Command, want)
	}
}

// checkAppTier checks the links of a front-end exchange and its backends.
func checkAppTier(t *testing.T, name string, exs []AppExchange, i int, seen map[string]int) {
	t.Helper()
	e := &exs[i]
	if e.Frontend >= 0 {
		f := &exs[e.Frontend]
		if !slices.Contains(f.Backends, i) || f.Class != AppTier {
			t.Fatalf("%s: front end %d does not list it", name, e.Frontend)
		}
	}
	if e.Class != AppTier {
		if len(e.Backends) != 0 || e.BackendNS != 0 || e.SelfNS != 0 {
			t.Fatalf("%s: backends %v (%d ns, self %d) outside a tier", name, e.Backends, e.BackendNS, e.SelfNS)
		}
		return
	}
	if len(e.Backends) == 0 || e.NetworkNS != 0 || e.ThinkNS != e.ResponseNS() || e.Proto != AppHTTP {
		t.Fatalf("%s: backends %v network %d think %d, want some backends, all time F's", name, e.Backends, e.NetworkNS, e.ThinkNS)
	}
	var sum int64
	after := e.ReqLastNS
	for _, bi := range e.Backends {
		b := &exs[bi]
		if b.Frontend != i || b.Client.Addr() != e.Server.Addr() || b.ReqFirstNS <= after || b.RespLastNS >= e.RespFirstNS {
			t.Fatalf("%s: backend %d (%v->%v, %d..%d, front %d) is not inside %d..%d from F", name, bi, b.Client, b.Server, b.ReqFirstNS, b.RespLastNS, b.Frontend, e.ReqLastNS, e.RespFirstNS)
		}
		after = b.RespLastNS
		sum += b.RespLastNS - b.ReqFirstNS
		seen["tier "+b.Proto]++
	}
	if e.BackendNS != sum || e.SelfNS != e.ResponseNS()-sum || e.SelfNS < 100e3 {
		t.Fatalf("%s: backend %d self %d, want %d and %d (>= 100 µs)", name, e.BackendNS, e.SelfNS, sum, e.ResponseNS()-sum)
	}
	if len(e.Backends) == 2 {
		seen["tier with 2 backends"]++
	}
}

// TestAppClassProportions checks that in every run of 20 connections with
// a server class, in the order they start, 14 are fast, 3 slow-app and 3
// slow-net.
func TestAppClassProportions(t *testing.T) {
	for _, seed := range []int64{1, 2} {
		opts := appTestOpts
		opts.Seed = seed
		exs, err := AppGroundTruth(opts)
		if err != nil {
			t.Fatal(err)
		}
		type conn struct{ c, s netip.AddrPort }
		var order []string
		done := map[conn]bool{}
		for _, e := range exs {
			k := conn{e.Client, e.Server}
			if e.Class == AppTier || done[k] {
				continue
			}
			done[k] = true
			order = append(order, e.Class)
		}
		// Connections still open when the trace ends may be missing: skip
		// the last 10 runs.
		runs := len(order)/20 - 10
		if runs < 50 {
			t.Fatalf("seed %d: got %d runs of 20 connections, want at least 50", seed, runs)
		}
		for r := 0; r < runs; r++ {
			n := map[string]int{}
			for _, c := range order[20*r : 20*r+20] {
				n[c]++
			}
			if n[AppFast] != 14 || n[AppSlowApp] != 3 || n[AppSlowNet] != 3 {
				t.Fatalf("seed %d run %d: got %v, want 14 fast, 3 slow-app, 3 slow-net", seed, r, n)
			}
		}
	}
}

// TestAppRate checks that the trace lasts about Packets/PPS.
func TestAppRate(t *testing.T) {
	for _, pps := range []float64{1000, 50000} {
		var first, last int64
		st, err := GenerateFrames(Options{Kind: KindApp, Packets: 50000, Seed: 9, PPS: pps}, func(ts int64, _ []byte) error {
			if first == 0 {
				first = ts
			}
			last = ts
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got := float64(st.Packets) / (float64(last-first) / 1e9)
		if got < pps*0.8 || got > pps*1.25 {
			t.Errorf("PPS %v: got %.0f packets/s, want within 20%%", pps, got)
		}
		t.Logf("PPS %v: got %.0f packets/s over %d connections", pps, got, st.Flows)
	}
}
