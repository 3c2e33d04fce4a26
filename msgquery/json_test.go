package msgquery

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"tapvault/analytics"
)

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %s", b)
	}
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

func TestAppendJSON(t *testing.T) {
	r := httpRec()
	r.Flags = analytics.FlagGap | analytics.FlagSidesGuessed
	r.ClientAck = t0 + 61_300_000
	r.Fields = append(r.Fields,
		analytics.Field{Key: "id", Str: "collides"},
		analytics.Field{Key: "weird", Str: "a\"b\\c\n\r\t\x00\x1f\x7f é \xff\xfe end \u2028\u2029 <&>"},
	)
	r.Packets = append(r.Packets, analytics.PktRef{Block: 0xfedcba9876543210, Queue: 65535, Ord: 4294967295})
	tier := &Tier{IsFront: true, Backends: []uint64{1, 0xabc}, Before: 10, Backend: 20, After: 30, Self: 40}
	got := decode(t, AppendJSON(nil, r, tier))
	n := func(v int64) json.Number { return json.Number(itoa(v)) }
	want := map[string]any{
		"id": "0123456789abcdef", "proto": "http", "transport": "tcp", "vlan": n(100),
		"client": "10.1.2.3:40000", "server": "10.0.0.5:80",
		"req_first_ns": n(t0), "req_last_ns": n(t0 + 1000), "resp_first_ns": n(t0 + 60_000_000), "resp_last_ns": n(t0 + 61_000_000),
		"server_ack_ns": n(t0 + 200_000), "client_ack_ns": n(t0 + 61_300_000),
		"latency_ns": n(60_999_000), "network_ns": n(199_000), "server_ns": n(59_999_000), "transfer_ns": n(1_000_000),
		"client_net_ns": n(300_000), "rtt_ns": n(150_000), "class": "slow_app",
		"req_bytes": n(120), "resp_bytes": n(5000), "req_packets": n(1), "resp_packets": n(4),
		"flags":  []any{"gap", "sides_guessed"},
		"method": "POST", "host": "WWW.Example.com", "path": "/api/v1/users", "status": n(503),
		"content_type": "application/json", "qty": "250", "clordid": "007",
		"f_id":  "collides",
		"weird": "a\"b\\c\n\r\t\x00\x1f\x7f é \ufffd\ufffd end \u2028\u2029 <&>",
		"packets": []any{
			map[string]any{"block": "0000000000000007", "queue": n(1), "ord": n(3)},
			map[string]any{"block": "fedcba9876543210", "queue": n(65535), "ord": n(4294967295)},
		},
		"tier_before_ns": n(10), "tier_backend_ns": n(20), "tier_after_ns": n(30), "tier_self_ns": n(40),
		"backends": []any{"0000000000000001", "0000000000000abc"},
	}
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: missing", k)
		} else if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: got %#v, want %#v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected field", k)
		}
	}

	// A backend record, IPv6, UDP, unknown durations, no vlan, no flags.
	d := dnsRec()
	d.RespFirst, d.RespLast = 0, 0
	got = decode(t, AppendJSON(nil, d, &Tier{Frontend: 0x99}))
	for k, w := range map[string]any{
		"client": "[2001:db8::1]:5353", "server": "[2001:db8::53]:53", "transport": "udp",
		"latency_ns": n(-1), "network_ns": n(-1), "rtt_ns": n(-1), "resp_first_ns": n(0),
		"flags": []any{}, "packets": []any{}, "frontend": "0000000000000099",
		"qname": "Mail.Example.COM", "answers": n(2),
	} {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("dns %s: got %#v, want %#v", k, got[k], w)
		}
	}
	for _, k := range []string{"vlan", "tier_before_ns", "backends"} {
		if _, ok := got[k]; ok {
			t.Errorf("dns: unexpected %s", k)
		}
	}
	// Without a tier: no tier fields.
	got = decode(t, AppendJSON(nil, d, nil))
	if _, ok := got["frontend"]; ok {
		t.Errorf("nil tier: unexpected frontend")
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestAppendStringMatchesEncodingJSON: random byte strings, escaped by
// appendString, decode with encoding/json to what encoding/json makes of
// the same string (invalid UTF-8 becomes U+FFFD).
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("ab\"\\/\n\r\t\x00\x01\x1f\x7f\xc3\xa9\xe2\x80\xa8\xe2\x80\xa9\xff\xed\xa0\x80\xf0\x9f\x98\x80<>&")
	for range 20000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		s := string(b)
		enc := appendString(nil, s)
		if !json.Valid(enc) {
			t.Fatalf("%q: invalid JSON %s", s, enc)
		}
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		ref, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%q: got %q, want %q", s, got, want)
		}
		if !utf8.Valid(enc) {
			t.Fatalf("%q: output not UTF-8: %q", s, enc)
		}
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	r := httpRec()
	tier := &Tier{IsFront: true, Backends: []uint64{1, 2}}
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], r, tier) }); n != 0 {
		t.Errorf("AppendJSON: got %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = AppendText(buf[:0], r) }); n != 0 {
		t.Errorf("AppendText: got %v allocs, want 0", n)
	}
}

func TestAppendText(t *testing.T) {
	tcp := &analytics.Record{
		ID: 5, Proto: "tcp", Transport: 6, Class: analytics.ClassFlow,
		Client:   netip.MustParseAddrPort("10.0.0.1:4000"),
		Server:   netip.MustParseAddrPort("10.0.0.2:443"),
		ReqFirst: t0, Network: -1, ServerTime: -1, RTT: 90_000,
		ReqBytes: 100, RespBytes: 2000,
		Fields: []analytics.Field{
			{Key: "syn_ns", Int: t0, IsInt: true}, {Key: "hs_server_ns", Int: 90_000, IsInt: true},
			{Key: "hs_client_ns", Int: 1_500_000, IsInt: true}, {Key: "retrans", Int: 2, IsInt: true},
			{Key: "rst", Int: 0, IsInt: true},
		},
	}
	pg := pgRec()
	pg.Fields[1].Str = "SELECT *\nFROM users WHERE name = 'x' AND something_long = 1234567890 ORDER BY id"
	redis := &analytics.Record{ID: 9, Proto: "redis", ReqFirst: t0, ReqLast: t0, RespFirst: t0 + 500, RespLast: t0 + 500,
		Client: netip.MustParseAddrPort("10.0.0.5:6000"), Server: netip.MustParseAddrPort("10.0.0.7:6379"),
		Network: 100, ServerTime: 500, Class: "fast",
		Fields: []analytics.Field{{Key: "command", Str: "GET"}, {Key: "key", Str: "user:1"}, {Key: "reply", Str: "bulk"}}}
	fix := &analytics.Record{ID: 10, Proto: "fix", ReqFirst: t0, ReqLast: t0, RespFirst: t0 + 12_345, RespLast: t0 + 12_345,
		Client: netip.MustParseAddrPort("10.0.0.5:6000"), Server: netip.MustParseAddrPort("10.0.0.8:9878"),
		Network: -1, ServerTime: 12_345, Class: "unknown",
		Fields: []analytics.Field{{Key: "msgtype", Str: "D"}, {Key: "clordid", Str: "ORD1"}, {Key: "resp_msgtype", Str: "8"}}}
	cases := []struct {
		r    *analytics.Record
		want string
	}{
		{httpRec(), "2024-05-06T12:53:20.000000Z http 10.1.2.3:40000 → 10.0.0.5:80 POST WWW.Example.com/api/v1/users -> 503 latency=60.999ms network=199µs server=59.999ms transfer=1ms client_net=300µs class=slow_app id=0123456789abcdef"},
		{dnsRec(), "2024-05-06T12:53:20.000000Z dns [2001:db8::1]:5353 → [2001:db8::53]:53 A Mail.Example.COM -> NOERROR 2 answers latency=2ms network=- server=2ms transfer=0ns client_net=- class=udp id=000000000000002a"},
		{pg, "2024-05-06T12:53:20.000000Z pgsql 10.0.0.5:51000 → 10.0.0.9:5432 SELECT * FROM users WHERE name = 'x' AND something_long = 12… -> - (no response) latency=- network=- server=- transfer=- client_net=- class=no_response id=0000000000000007"},
		{redis, "2024-05-06T12:53:20.000000Z redis 10.0.0.5:6000 → 10.0.0.7:6379 GET user:1 -> bulk latency=500ns network=100ns server=500ns transfer=0ns client_net=0ns class=fast id=0000000000000009"},
		{fix, "2024-05-06T12:53:20.000000Z fix 10.0.0.5:6000 → 10.0.0.8:9878 D ORD1 -> 8 latency=12.345µs network=- server=12.345µs transfer=0ns client_net=0ns class=unknown id=000000000000000a"},
		{tcp, "2024-05-06T12:53:20.000000Z tcp 10.0.0.1:4000 → 10.0.0.2:443 handshake=90µs+1.5ms retrans=2 bytes=100/2000 latency=- network=- server=- transfer=0ns client_net=0ns class=flow id=0000000000000005"},
	}
	for _, c := range cases {
		if got := string(AppendText(nil, c.r)); got != c.want {
			t.Errorf("AppendText(%s):\n got %s\nwant %s", c.r.Proto, got, c.want)
		}
	}
}
