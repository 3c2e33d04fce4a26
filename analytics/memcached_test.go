package analytics_test

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tapvault/analytics"
	"tapvault/dataplane"
)

// mcLines gives the memcached records among recs, in request order, in
// short form: the summary (AppendSummary, through the registry), the
// request and response bytes, and value_len.
func mcLines(recs []*analytics.Record) []string {
	var rs []*analytics.Record
	for _, r := range recs {
		if r.Proto == "memcached" {
			rs = append(rs, r)
		}
	}
	slices.SortStableFunc(rs, func(a, b *analytics.Record) int {
		ta, tb := a.ReqFirst, b.ReqFirst
		if ta == 0 {
			ta = a.RespFirst
		}
		if tb == 0 {
			tb = b.RespFirst
		}
		switch {
		case ta < tb:
			return -1
		case ta > tb:
			return 1
		}
		return 0
	})
	var out []string
	for _, r := range rs {
		b := analytics.AppendSummary(nil, r)
		b = append(b, " ["...)
		b = strconv.AppendInt(b, r.ReqBytes, 10)
		b = append(b, '/')
		b = strconv.AppendInt(b, r.RespBytes, 10)
		if v, ok := r.Get("value_len"); ok {
			b = append(b, " value_len="...)
			b = append(b, v.Value()...)
		}
		b = append(b, ']')
		out = append(out, string(b))
	}
	return out
}

func mcCheck(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// TestMemcachedCapture decodes a real session: memcached 1.6.18 on
// loopback, driven by testdata/golden/memcached_session.sh and captured
// with tcpdump. Connection 1 sends one request at a time; connection 2
// pipelines its requests. The commands, keys and statuses were checked
// against tshark's memcache dissector and the responses the script saw.
func TestMemcachedCapture(t *testing.T) {
	src, err := dataplane.OpenFile("testdata/golden/memcached.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	recs, _ := analyze(t, src, analytics.DefaultConfig())
	mcCheck(t, mcLines(recs), []string{
		"set user:1 -> STORED [25/8 value_len=5]",
		"get user:1 -> VALUE hits=1 [12/30 value_len=5]",
		"gets user:1 -> VALUE hits=1 [13/32 value_len=5]",
		"get nokey -> END hits=0 [11/5]",
		"set user:2 -> STORED [23/8 value_len=3]",
		"get user:1 +3 keys -> VALUE hits=2 [25/53 value_len=8]",
		"add user:1 -> NOT_STORED [21/12 value_len=1]",
		"replace nokey -> NOT_STORED [24/12 value_len=1]",
		"append user:2 -> STORED [26/8 value_len=3]",
		"prepend user:2 -> STORED [26/8 value_len=2]",
		"cas user:1 -> STORED [25/8 value_len=3]",
		"set counter -> STORED [23/8 value_len=2]",
		"incr counter -> NUMBER [16/4]",
		"decr counter -> NUMBER [17/3]",
		"incr nokey -> NOT_FOUND [14/11]",
		"incr user:1 -> CLIENT_ERROR cannot increment or decrement non-numeric value [15/62]",
		"touch user:1 -> TOUCHED [18/9]",
		"delete user:2 -> DELETED [15/9]",
		"delete user:2 -> NOT_FOUND [15/11]",
		"bogus -> ERROR [7/7]",
		"set bad -> CLIENT_ERROR bad data chunk [19/29 value_len=2]",
		" -> ERROR [2/7]", // the rest of the bad chunk, read as an empty command line
		"set quiet noreply (no response) [28/0 value_len=1]",
		"get quiet -> VALUE hits=1 [11/25 value_len=1]",
		"mg user:1 -> VA hits=1 [15/14 value_len=3]",
		"ms meta -> HD [17/4 value_len=4]",
		"md meta -> HD [9/4]",
		"mg meta -> EN hits=0 [11/4]",
		"mn -> MN [4/4]",
		"version -> VERSION [9/16]",
		"set p1 -> STORED [18/8 value_len=2]",
		"set p2 -> STORED [18/8 value_len=2]",
		"get p1 +2 keys -> VALUE hits=2 [11/41 value_len=4]",
		"delete p1 -> DELETED [11/9]",
		"get p1 -> END hits=0 [8/5]",
	})
	for _, r := range recs {
		if r.Proto != "memcached" {
			continue
		}
		if r.Server.Port() != 11211 || r.Flags&analytics.FlagSidesGuessed != 0 {
			t.Errorf("%s: server %v, flags %#x: want port 11211 from the handshake", analytics.AppendSummary(nil, r), r.Server, r.Flags)
		}
		if _, noreply := r.Get("noreply"); !noreply && r.ServerTime <= 0 {
			t.Errorf("%s: server time %d, want > 0", analytics.AppendSummary(nil, r), r.ServerTime)
		}
	}
}

// mcConv opens a connection (handshake) from 10.0.0.1:40000 to 10.0.0.2 on
// port and returns it for sending payloads.
func mcConv(t *testing.T, src *frameSource, port uint16) *tcpConv {
	c := &tcpConv{t: t, src: src, cseq: 1000, sseq: 5000, cli: netip.AddrFrom4([4]byte{10, 0, 0, 1}), srv: netip.AddrFrom4([4]byte{10, 0, 0, 2}), cport: 40000, sport: port}
	c.pkt(mcBase, true, true, false, false, false, "")
	c.pkt(mcBase+ms/10, false, true, true, false, false, "")
	c.pkt(mcBase+ms/5, true, false, true, false, false, "")
	return c
}

const mcBase = int64(1_700_000_000) * 1_000_000_000

// TestMemcachedSplits pipelines requests and responses cut at awkward
// places: inside a command line, inside data blocks and their CRLF,
// several messages in one segment; a large value spans segments.
func TestMemcachedSplits(t *testing.T) {
	big := strings.Repeat("v", 5000)
	src := new(frameSource)
	c := mcConv(t, src, 11211)
	ts := mcBase + ms
	send := func(fromClient bool, p string) {
		ts += ms
		c.pkt(ts, fromClient, false, true, true, false, p)
	}
	send(true, "set big 0 0 5000\r\n"+big[:1000])
	send(true, big[1000:]+"\r")
	send(true, "\nget big k2\r\nge")
	send(true, "ts k3\r\ndelete k3 noreply\r\nmg k4 v\r\n")
	send(false, "STORED\r\nVALUE big 0 5000\r\n"+big[:10])
	send(false, big[10:]+"\r\nVALUE k2 1 2\r\nab\r")
	send(false, "\nEND\r\nVALUE k3 0 1 77\r\nx\r\nEND\r\nVA 2 s2\r\nhi\r\n")
	send(true, "stats\r\nstats reset\r\nflush_all\r\n")
	send(false, "STAT pid 1\r\nSTAT uptime 5\r\nEND\r\nRESET\r\nOK\r\n")
	send(true, "quit\r\n")
	recs, _ := analyze(t, src, analytics.DefaultConfig())
	mcCheck(t, mcLines(recs), []string{
		"set big -> STORED [5020/8 value_len=5000]",
		"get big +2 keys -> VALUE hits=2 [12/5043 value_len=5002]",
		"gets k3 -> VALUE hits=1 [9/25 value_len=1]",
		"delete k3 noreply (no response) [19/0]",
		"mg k4 -> VA hits=1 [9/13 value_len=2]",
		"stats -> STAT [7/32]",
		"stats -> RESET [13/7]",
		"flush_all -> OK [11/4]",
	})
}

// TestMemcachedDetect finds memcached on a port no decoder claims from the
// client's first command line.
func TestMemcachedDetect(t *testing.T) {
	src := new(frameSource)
	c := mcConv(t, src, 22122)
	c.pkt(mcBase+2*ms, true, false, true, true, false, "get k\r\n")
	c.pkt(mcBase+3*ms, false, false, true, true, false, "END\r\n")
	recs, _ := analyze(t, src, analytics.DefaultConfig())
	mcCheck(t, mcLines(recs), []string{"get k -> END hits=0 [7/5]"})
}

// TestMemcachedGaps: a loss inside a data block is counted down and the
// exchange flagged; a loss in a server line stops decoding (the waiting
// requests are dropped, not mispaired).
func TestMemcachedGaps(t *testing.T) {
	src := new(frameSource)
	c := mcConv(t, src, 11211)
	ts := mcBase + ms
	send := func(fromClient bool, p string) {
		ts += ms
		c.pkt(ts, fromClient, false, true, true, false, p)
	}
	send(true, "get a\r\n")
	send(false, "VALUE a 0 10\r\n01")
	c.sseq += 4 // 4 bytes of the value lost
	send(false, "6789\r\nEND\r\n")
	send(true, "get b\r\nget c\r\n")
	send(false, "VALUE b 0 1\r\nx\r\nEND\r\n")
	c.sseq += 3 // lost inside a line: the rest cannot be trusted
	send(false, "UE c 0 1\r\ny\r\nEND\r\n")
	send(true, "get d\r\n")
	send(false, "END\r\n")
	recs, _ := analyze(t, src, analytics.DefaultConfig())
	mcCheck(t, mcLines(recs), []string{
		"get a -> VALUE hits=1 [7/31 value_len=10]",
		"get b -> VALUE hits=1 [7/21 value_len=1]",
	})
	for _, r := range recs {
		if r.Proto != "memcached" {
			continue
		}
		k, _ := r.Get("key")
		if gap := r.Flags&analytics.FlagGap != 0; gap != (k.Str == "a") {
			t.Errorf("get %s: gap flag %v, want %v", k.Str, gap, k.Str == "a")
		}
	}
}

// FuzzMemcached feeds arbitrary client and server bytes through the
// Analyzer on port 11211: the decoder must never panic.
func FuzzMemcached(f *testing.F) {
	f.Add([]byte("set k 0 0 2\r\nab\r\nget k x\r\n"), []byte("STORED\r\nVALUE k 0 2\r\nab\r\nEND\r\n"), uint8(5))
	f.Add([]byte("mg k v q\r\nmn\r\n"), []byte("VA 1\r\nx\r\nMN\r\n"), uint8(3))
	f.Add([]byte("\x80\x00\x00"), []byte("VALUE k 0 99999999999999999999\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, cli, srv []byte, cut uint8) {
		src := new(frameSource)
		c := &tcpConv{t: t, src: src, cseq: 1000, sseq: 5000, cli: netip.AddrFrom4([4]byte{10, 0, 0, 1}), srv: netip.AddrFrom4([4]byte{10, 0, 0, 2}), cport: 40000, sport: 11211}
		c.pkt(mcBase, true, true, false, false, false, "")
		c.pkt(mcBase+1, false, true, true, false, false, "")
		ts := mcBase + 2
		for len(cli) > 0 || len(srv) > 0 {
			n := int(cut%64) + 1
			for _, side := range []*[]byte{&cli, &srv} {
				k := min(n, len(*side))
				if k == 0 {
					continue
				}
				ts++
				c.pkt(ts, side == &cli, false, true, true, false, string((*side)[:k]))
				*side = (*side)[k:]
			}
		}
		analyze(t, src, analytics.DefaultConfig())
	})
}
