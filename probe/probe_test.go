package probe

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"tapvault/analytics"
)

func check(t *testing.T, c *Config) error {
	t.Helper()
	return c.Check(context.Background())
}

func TestConfigRefusesTargetsOutsideAllowList(t *testing.T) {
	c := &Config{Location: "here", Probes: []Spec{{Name: "web", Kind: KindHTTP, Target: "http://192.0.2.7/"}}}
	err := check(t, c)
	if err == nil || !strings.Contains(err.Error(), "outside the allow-list [127.0.0.0/8 ::1/128]") {
		t.Fatalf("got %v, want the default loopback-only allow-list to refuse 192.0.2.7", err)
	}
	c.Allow = []string{"192.0.2.0/24"}
	if err := check(t, c); err != nil {
		t.Fatalf("allowed: %v", err)
	}
	for _, bad := range []Config{
		{Probes: []Spec{{Name: "x", Kind: KindTCP, Target: "127.0.0.1:1"}}},                                        // no location
		{Location: "l", Probes: []Spec{{Name: "x", Kind: "ftp", Target: "127.0.0.1:1"}}},                           // kind
		{Location: "l", Probes: []Spec{{Name: "x", Kind: KindDNS, Target: "127.0.0.1"}}},                           // no query
		{Location: "l", Probes: []Spec{{Name: "x", Kind: KindTCP, Target: "127.0.0.1"}}},                           // no port
		{Location: "l", Allow: []string{"10.0.0.0/33"}, Probes: []Spec{{Name: "x", Kind: KindTCP, Target: "1:1"}}}, // bad CIDR
		{Location: "l", Probes: []Spec{{Name: "x", Kind: KindTCP, Target: "127.0.0.1:1"}, {Name: "x", Kind: KindTCP, Target: "127.0.0.1:2"}}},
	} {
		if err := check(t, &bad); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
}

func TestLoadUnknownKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(p, []byte("location: a\nprobes:\n  - name: x\n    kind: tcp\n    target: 127.0.0.1:9\n    evry: 1s\n"), 0o600)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "evry") {
		t.Fatalf("got %v, want an error naming the misspelt key", err)
	}
}

// The dialer checks the address actually dialled, whatever Check saw.
func TestDialRefusedOffList(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skip(err)
	}
	defer ln.Close()
	c := &Config{Location: "l", Allow: []string{"127.0.0.1/32"}, Probes: []Spec{{Name: "x", Kind: KindTCP, Target: "127.0.0.1:9"}}}
	if err := check(t, c); err != nil {
		t.Fatal(err)
	}
	r := NewRunner(c, nil)
	s := c.Probes[0]
	s.Target = ln.Addr().String()
	res := r.Once(context.Background(), &s)
	if !errors.Is(res.Err, ErrNotAllowed) {
		t.Fatalf("got %v, want ErrNotAllowed", res.Err)
	}
}

func TestProbesTagTheirConnections(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	defer web.Close()
	redis := serveTCP(t, func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		if strings.HasPrefix(line, "*1") {
			c.Write([]byte("+PONG\r\n"))
		}
	})
	dns := serveDNS(t)
	c := &Config{Location: "lab", Probes: []Spec{
		{Name: "web", Kind: KindHTTP, Target: web.URL + "/x"},
		{Name: "redis", Kind: KindRedis, Target: redis},
		{Name: "connect", Kind: KindTCP, Target: redis},
		{Name: "dns", Kind: KindDNS, Target: dns, Query: "svc.test"},
	}}
	if err := check(t, c); err != nil {
		t.Fatal(err)
	}
	tags := NewTags(c.Location)
	r := NewRunner(c, tags)
	for i := range c.Probes {
		res := r.Once(context.Background(), &c.Probes[i])
		if res.Err != nil {
			t.Fatalf("%s: %v", res.Probe, res.Err)
		}
		if res.Kind == KindHTTP && res.Bytes != 5 || res.Kind == KindDNS && res.Bytes != 1 {
			t.Errorf("%s: %d bytes", res.Probe, res.Bytes)
		}
	}
	if n := tags.Len(); n != 4 {
		t.Fatalf("%d connections tagged, want 4", n)
	}
	// A record of a tagged connection gets the probe and the location; one
	// of any other connection nothing.
	tags.mu.Lock()
	var k [2]netip.AddrPort
	var want string
	for kk, v := range tags.m {
		if v.probe == "web" {
			k, want = kk, v.probe
		}
	}
	tags.mu.Unlock()
	rec := &analytics.Record{Client: k[0], Server: k[1]}
	tags.Tag(rec)
	if f, ok := rec.Get(FieldProbe); !ok || f.Str != want {
		t.Fatalf("record fields %+v", rec.Fields)
	}
	if f, _ := rec.Get(FieldLocation); f.Str != "lab" {
		t.Fatalf("record fields %+v", rec.Fields)
	}
	other := &analytics.Record{Client: netip.MustParseAddrPort("10.0.0.1:1"), Server: k[1]}
	tags.Tag(other)
	if len(other.Fields) != 0 {
		t.Fatalf("untagged connection got %+v", other.Fields)
	}
}

func TestRunSchedule(t *testing.T) {
	addr := serveTCP(t, func(net.Conn) {})
	c := &Config{Location: "l", Probes: []Spec{{Name: "c", Kind: KindTCP, Target: addr, Every: 100 * time.Millisecond}}}
	if err := check(t, c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	NewRunner(c, nil).Run(ctx, func(r Result) {
		if r.Err != nil {
			t.Error(r.Err)
		}
		if n++; n == 3 {
			cancel()
		}
	})
	if n != 3 {
		t.Fatalf("%d runs", n)
	}
}

// serveTCP serves each connection with fn on loopback.
func serveTCP(t *testing.T, fn func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); fn(c) }()
		}
	}()
	return ln.Addr().String()
}

// serveDNS answers every A query with 192.0.2.1.
func serveDNS(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		b := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			q := b[:n]
			resp := append([]byte(nil), q[:2]...)
			resp = append(resp, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0)
			end := 12
			for end < n && q[end] != 0 {
				end += int(q[end]) + 1
			}
			if end+5 > n {
				continue
			}
			resp = append(resp, q[12:end+5]...)                          // the question only (not the EDNS record after it)
			resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4) // the name, A IN, TTL 60, 4 bytes
			resp = binary.BigEndian.AppendUint32(resp, 0xc0000201)
			pc.WriteTo(resp, from)
		}
	}()
	return pc.LocalAddr().String()
}

func TestDecide(t *testing.T) {
	ms := int64(time.Millisecond)
	gen := func(loc string, net, srv int64, n int) []Sample {
		var s []Sample
		for i := range n {
			s = append(s, Sample{Location: loc, ID: uint64(i + 1), Network: net + int64(i)*ms/10, Server: srv})
		}
		return s
	}
	cat := func(ss ...[]Sample) []Sample {
		var out []Sample
		for _, s := range ss {
			out = append(out, s...)
		}
		return out
	}
	v := Decide(cat(gen("a", 2*ms, ms, 10), gen("b", 60*ms, ms, 10), gen("c", 3*ms, ms, 10)), VerdictOptions{})
	if v.Blame != BlameNetworks || strings.Join(v.Slow, ",") != "b" || !strings.Contains(v.Text, "slow from b only") {
		t.Errorf("one degraded: %+v", v)
	}
	v = Decide(cat(gen("a", 40*ms, ms, 10), gen("b", 45*ms, ms, 10)), VerdictOptions{})
	if v.Blame != BlameProvider || len(v.Slow) != 2 {
		t.Errorf("all slow: %+v", v)
	}
	v = Decide(cat(gen("a", 2*ms, 30*ms, 10), gen("b", 3*ms, 30*ms, 10)), VerdictOptions{})
	if v.Blame != BlameNone || !v.ServiceSlow {
		t.Errorf("slow service, fast networks: %+v", v)
	}
	v = Decide(cat(gen("a", 40*ms, ms, 10), gen("b", 3*ms, ms, 2)), VerdictOptions{})
	if v.Blame != BlameUnknown || v.Locations[1].Judged {
		t.Errorf("b too few: %+v", v)
	}
	if w := Decide(gen("b", 60*ms, ms, 10), VerdictOptions{}).Locations[0].Worst; len(w) != 5 || w[0] != 10 {
		t.Errorf("worst %v, want the 5 slowest, slowest first", w)
	}
}

func TestTagFieldsDeclared(t *testing.T) {
	for _, k := range []string{FieldProbe, FieldLocation} {
		if !slices.Contains(analytics.TagFields, k) {
			t.Errorf("%q is not in analytics.TagFields: message filters would refuse it", k)
		}
	}
}
