package analytics

import (
	"fmt"
	"strings"
	"testing"
)

// redisCmd encodes a command as a RESP array of bulk strings.
func redisCmd(args ...string) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&sb, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(sb.String())
}

func newRedisTest() Parser {
	return newRedisParser(&Config{MaxPending: 16, MaxStatement: 16})
}

func redisCheck(t *testing.T, st *testStream, want string) {
	t.Helper()
	if got := xchgSummary(st); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRedisDetect(t *testing.T) {
	for _, tc := range []struct {
		s    Side
		b    string
		want bool
	}{
		{Client, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", true},
		{Client, "*12\r\n$", true},
		{Server, "*2\r\n$3\r\n", false},
		{Client, "*\r\n$", false},
		{Client, "*2\r\n+", false},
		{Client, "GET k\r\n", false},
		{Client, "*2\r\n", false},
	} {
		if got := redisDetect(tc.s, []byte(tc.b)); got != tc.want {
			t.Errorf("redisDetect(%v, %q): got %v, want %v", tc.s, tc.b, got, tc.want)
		}
	}
}

func TestRedisPipeline(t *testing.T) {
	big := strings.Repeat("v", 3000)
	steps := []xchgStep{
		{Client, append(append(redisCmd("set", "user:1000:profile:name", big), redisCmd("GET", "k")...), redisCmd("lrange", "l", "0", "-1")...)},
		{Client, []byte("PING\r\n\r\nincr  counter\r\n")}, // inline, with an empty line
		{Server, []byte("+OK\r\n$" + fmt.Sprint(len(big)) + "\r\n" + big + "\r\n")},
		{Server, []byte("*3\r\n$1\r\na\r\n*2\r\n:1\r\n*1\r\n%1\r\n+k\r\n$-1\r\n_\r\n")},
		{Server, []byte("+PONG\r\n:7\r\n")},
		{Client, redisCmd("HGET", "h", "f")},
		{Server, []byte("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")},
		{Client, redisCmd("GET", "nokey")},
		{Server, []byte("$-1\r\n")},
		{Client, redisCmd("HGETALL", "h")},
		{Server, []byte("|1\r\n+ttl\r\n:3\r\n%1\r\n=7\r\ntxt:abc\r\n,1.5\r\n")},
		{Client, redisCmd("DBSIZE")},
		{Server, []byte("!21\r\nSYNTAX invalid syntax\r\n")},
		{Client, redisCmd("DEBUG", "x")}, // never answered
	}
	st := xchgSplitSame(t, newRedisTest, steps)
	redisCheck(t, st, ""+
		"[client/3051 command=SET key=user:1000:profil] -> [server/5 reply=simple]\n"+
		"[client/20 command=GET key=k] -> [server/3009 reply=bulk]\n"+
		"[client/38 command=LRANGE key=l] -> [server/39 reply=array]\n"+
		"[client/6 command=PING] -> [server/7 reply=simple]\n"+
		"[client/15 command=INCR key=counter] -> [server/4 reply=integer]\n"+
		"[client/28 command=HGET key=h] -> [server/68 reply=error error=WRONGTYPE]\n"+
		"[client/24 command=GET key=nokey] -> [server/5 reply=null]\n"+
		"[client/24 command=HGETALL key=h] -> [server/37 reply=map]\n"+
		"[client/16 command=DBSIZE] -> [server/28 reply=error error=SYNTAX]\n"+
		"[client/22 command=DEBUG key=x] -> [-]\n"+
		"discarded 1\n")
	if m := st.Exchanges[1][1]; len(m.Pkts) != 1 || m.Pkts[0].Ord != 3 {
		t.Errorf("GET reply packets: got %v, want chunk 3", m.Pkts)
	}
}

func TestRedisPubSubRESP2(t *testing.T) {
	steps := []xchgStep{
		{Client, redisCmd("SUBSCRIBE", "a", "b")},
		{Server, []byte("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n")},
		{Server, []byte("*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n")},
		{Client, redisCmd("PSUBSCRIBE", "n*")},
		{Server, []byte("*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\nhi\r\n")}, // a message before the confirmation
		{Server, []byte("*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:3\r\n")},
		{Server, []byte("*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$2\r\nnx\r\n$1\r\n!\r\n")},
		{Client, redisCmd("PING")},
		{Server, []byte("*2\r\n$4\r\npong\r\n$0\r\n\r\n")},
		{Client, redisCmd("UNSUBSCRIBE")},
		{Server, []byte("*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n")},
	}
	st := xchgSplitSame(t, newRedisTest, steps)
	redisCheck(t, st, ""+
		"[client/33 command=SUBSCRIBE key=a] -> [server/60 reply=array]\n"+
		"[-] -> [server/35 reply=push command=message]\n"+
		"[-] -> [server/32 reply=push command=message]\n"+
		"[client/29 command=PSUBSCRIBE key=n*] -> [server/33 reply=array]\n"+
		"[-] -> [server/41 reply=push command=pmessage]\n"+
		"[client/14 command=PING] -> [server/20 reply=array]\n"+
		"[client/22 command=UNSUBSCRIBE] -> [server/33 reply=array]\n"+
		"[-] -> [server/33 reply=push command=unsubscribe]\n"+
		"discarded 0\n")
}

func TestRedisPushRESP3(t *testing.T) {
	steps := []xchgStep{
		{Client, redisCmd("HELLO", "3")},
		{Server, []byte("%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n")},
		{Client, redisCmd("SUBSCRIBE", "ch")},
		{Server, []byte(">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")},
		{Client, redisCmd("GET", "k")},
		{Server, []byte(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n")},
		{Server, []byte("*2\r\n$7\r\nmessage\r\n$1\r\ny\r\n")}, // an array reply: RESP3 pushes are '>' only
		{Client, redisCmd("SET", "k", "v")},
		{Server, []byte(">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n+OK\r\n")},
	}
	st := xchgSplitSame(t, newRedisTest, steps)
	redisCheck(t, st, ""+
		"[client/22 command=HELLO key=3] -> [server/27 reply=map]\n"+
		"[client/27 command=SUBSCRIBE key=ch] -> [server/31 reply=push]\n"+
		"[-] -> [server/32 reply=push command=message]\n"+
		"[client/20 command=GET key=k] -> [server/24 reply=array]\n"+
		"[-] -> [server/32 reply=push command=invalidate]\n"+
		"[client/27 command=SET key=k] -> [server/5 reply=simple]\n"+
		"discarded 0\n")
}

func TestRedisGaps(t *testing.T) {
	big := strings.Repeat("x", 1000)
	p := newRedisTest()
	st := newTestStream(t)
	set := redisCmd("SET", "k", big)
	st.Feed(p, Client, set[:100])
	st.FeedGap(p, Client, 500) // inside the value: counted down
	st.Feed(p, Client, set[600:])
	st.Feed(p, Server, []byte("+OK\r\n"))
	get := []byte("$1000\r\n" + big + "\r\n")
	st.Feed(p, Client, redisCmd("GET", "k"))
	st.Feed(p, Server, get[:10])
	st.FeedGap(p, Server, len(get)-10) // to the very end of the reply
	// A client gap outside a payload: the request is lost, decoding
	// resumes at the next array.
	st.Feed(p, Client, []byte("*2\r\n$3\r\nGET"))
	st.FeedGap(p, Client, 10)
	st.Feed(p, Client, append([]byte("garbage\r\n"), redisCmd("INCR", "n")...))
	st.Feed(p, Server, []byte(":5\r\n"))
	// A server gap outside a payload: stop.
	st.Feed(p, Client, redisCmd("GET", "a"))
	st.Feed(p, Server, []byte("+O"))
	st.FeedGap(p, Server, 3)
	st.Feed(p, Server, []byte("+OK\r\n"))
	st.Feed(p, Client, redisCmd("GET", "b"))
	p.Close(st)
	xchgCheck(t, st)
	redisCheck(t, st, ""+
		"[client/1029/gap command=SET key=k] -> [server/5 reply=simple]\n"+
		"[client/20 command=GET key=k] -> [server/10/gap reply=bulk]\n"+
		"[client/21 command=INCR key=n] -> [server/4 reply=integer]\n"+
		"discarded 3\n")
}

func TestRedisLimits(t *testing.T) {
	// Nesting beyond redisMaxDepth stops the decoding.
	p := newRedisTest()
	st := newTestStream(t)
	st.Feed(p, Client, redisCmd("GET", "k"))
	st.Feed(p, Server, []byte(strings.Repeat("*1\r\n", redisMaxDepth+1)+":1\r\n"))
	p.Close(st)
	xchgCheck(t, st)
	if len(st.Exchanges) != 0 || len(st.Discarded) != 2 {
		t.Fatalf("too deep: got %s, want nothing reported", xchgSummary(st))
	}
	// At the limit it is fine.
	p = newRedisTest()
	st = newTestStream(t)
	st.Feed(p, Client, redisCmd("GET", "k"))
	st.Feed(p, Server, []byte(strings.Repeat("*1\r\n", redisMaxDepth)+":1\r\n"))
	p.Close(st)
	if len(st.Exchanges) != 1 || st.Exchanges[0][1] == nil {
		t.Fatalf("deep: got %s, want one exchange", xchgSummary(st))
	}
	// MaxPending: the oldest is dropped as unanswered and its reply is
	// reported alone.
	p = newRedisParser(&Config{MaxPending: 2, MaxStatement: 16})
	st = newTestStream(t)
	st.Feed(p, Client, append(append(redisCmd("GET", "1"), redisCmd("GET", "2")...), redisCmd("GET", "3")...))
	st.Feed(p, Server, []byte(":1\r\n:2\r\n:3\r\n"))
	p.Close(st)
	xchgCheck(t, st)
	redisCheck(t, st, ""+
		"[client/20 command=GET key=1] -> [-]\n"+
		"[-] -> [server/4 reply=integer]\n"+
		"[client/20 command=GET key=2] -> [server/4 reply=integer]\n"+
		"[client/20 command=GET key=3] -> [server/4 reply=integer]\n"+
		"discarded 0\n")
}

func FuzzRedis(f *testing.F) {
	seed := []byte{0, 40}
	seed = append(seed, redisCmd("SUBSCRIBE", "a", "b")[:41]...)
	f.Add(seed)
	f.Add([]byte("\x00\x10*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\x01\x05$1\r\nx\r\n"))
	f.Add([]byte("\x01\x20>3\r\n$7\r\nmessage\r\n$1\r\na\r\n:1\r\n|1\r\n+a\r\n:1\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		xchgFuzzFeed(t, newRedisParser(&Config{MaxPending: 4, MaxStatement: 16}), data)
	})
}

func BenchmarkRedisParser(b *testing.B) {
	// A pipelined GET/SET mix as redis-benchmark sends it, one chunk per
	// side per round.
	var req, resp []byte
	for i := 0; i < 8; i++ {
		req = append(req, redisCmd("SET", fmt.Sprintf("key:%06d", i), strings.Repeat("x", 64))...)
		req = append(req, redisCmd("GET", fmt.Sprintf("key:%06d", i))...)
		resp = append(resp, "+OK\r\n$64\r\n"+strings.Repeat("x", 64)+"\r\n"...)
	}
	st := &xchgNopStream{cfg: DefaultConfig()}
	p := newRedisParser(&st.cfg)
	b.ReportAllocs()
	b.SetBytes(int64(len(req) + len(resp)))
	for i := 0; i < b.N; i++ {
		p.Data(Client, req, st)
		p.Data(Server, resp, st)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/chunk")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(16*b.N), "ns/exchange")
}
