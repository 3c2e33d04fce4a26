package analytics

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Builders for hand-made TLS bytes.

func tlsU16(b []byte, v int) []byte { return append(b, byte(v>>8), byte(v)) }

// tlsRecord appends records of type typ carrying frag, cut into fragments
// of at most max bytes (0: one record).
func tlsRecord(b []byte, typ byte, frag []byte, max int) []byte {
	if max <= 0 {
		max = len(frag)
	}
	for {
		n := min(len(frag), max)
		b = append(b, typ, 3, 3)
		b = tlsU16(b, n)
		b = append(b, frag[:n]...)
		frag = frag[n:]
		if len(frag) == 0 {
			return b
		}
	}
}

func tlsHSMsg(typ byte, body []byte) []byte {
	b := []byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	return append(b, body...)
}

func tlsExt(b []byte, typ int, data []byte) []byte {
	b = tlsU16(b, typ)
	b = tlsU16(b, len(data))
	return append(b, data...)
}

// tlsClientHello builds a ClientHello handshake message.
func tlsClientHello(legacy int, sni string, alpn []string, versions []int) []byte {
	body := tlsU16(nil, legacy)
	body = append(body, make([]byte, 32)...)                // random
	body = append(body, 32)                                 // session id
	body = append(body, make([]byte, 32)...)                //
	body = tlsU16(body, 6)                                  // cipher suites
	body = append(body, 0x13, 0x01, 0xc0, 0x2f, 0x0a, 0x0a) //
	body = append(body, 1, 0)                               // compression: null
	var exts []byte
	exts = tlsExt(exts, 0x0a0a, nil) // GREASE
	if sni != "" {
		var d []byte
		d = tlsU16(d, 3+len(sni))
		d = append(d, 0)
		d = tlsU16(d, len(sni))
		d = append(d, sni...)
		exts = tlsExt(exts, 0, d)
	}
	exts = tlsExt(exts, 10, []byte{0, 2, 0, 29}) // supported_groups
	if alpn != nil {
		var l []byte
		for _, a := range alpn {
			l = append(l, byte(len(a)))
			l = append(l, a...)
		}
		exts = tlsExt(exts, 16, append(tlsU16(nil, len(l)), l...))
	}
	if versions != nil {
		d := []byte{byte(2 * len(versions))}
		for _, v := range versions {
			d = tlsU16(d, v)
		}
		exts = tlsExt(exts, 43, d)
	}
	exts = tlsExt(exts, 0xfe0d, make([]byte, 200)) // an ECH-sized blob
	body = tlsU16(body, len(exts))
	body = append(body, exts...)
	return tlsHSMsg(1, body)
}

// tlsServerHello builds a ServerHello (or, with hrr, a HelloRetryRequest).
func tlsServerHello(legacy, cipher, selected int, alpn string, hrr bool) []byte {
	body := tlsU16(nil, legacy)
	if hrr {
		body = append(body, tlsHRR[:]...)
	} else {
		body = append(body, make([]byte, 32)...)
	}
	body = append(body, 0) // session id
	body = tlsU16(body, cipher)
	body = append(body, 0)
	var exts []byte
	if selected != 0 {
		exts = tlsExt(exts, 43, tlsU16(nil, selected))
	}
	if alpn != "" {
		l := append([]byte{byte(len(alpn))}, alpn...)
		exts = tlsExt(exts, 16, append(tlsU16(nil, len(l)), l...))
	}
	exts = tlsExt(exts, 0xff01, []byte{0}) // renegotiation_info
	body = tlsU16(body, len(exts))
	body = append(body, exts...)
	return tlsHSMsg(2, body)
}

var (
	tlsCH12  = tlsClientHello(0x0303, "www.Example.org", []string{"h2", "http/1.1"}, nil)
	tlsCH13  = tlsClientHello(0x0303, "tls13.example", []string{"h2", "http/1.1"}, []int{0x1a1a, 0x0304, 0x0303})
	tlsSH12  = tlsServerHello(0x0303, 0xc02f, 0, "h2", false)
	tlsSH13  = tlsServerHello(0x0303, 0x1301, 0x0304, "", false)
	tlsCert  = tlsHSMsg(11, make([]byte, 1200))
	tlsSHD   = tlsHSMsg(14, nil)
	tlsCKE   = tlsHSMsg(16, make([]byte, 33))
	tlsCCSr  = tlsRecord(nil, tlsCCS, []byte{1}, 0)
	tlsFin   = tlsRecord(nil, tlsHandshake, make([]byte, 40), 0) // encrypted Finished
	tlsApp   = tlsRecord(nil, tlsAppData, make([]byte, 300), 0)
	tlsRecCH = tlsRecord(nil, tlsHandshake, tlsCH12, 0)
	tlsRecSH = tlsRecord(nil, tlsHandshake, tlsSH12, 0)
)

func tlsCat(bs ...[]byte) string {
	var s []byte
	for _, b := range bs {
		s = append(s, b...)
	}
	return string(s)
}

func newTLS(cfg *Config) Parser { return newTLSParser(cfg) }

type tlsCase struct {
	name      string
	steps     []htStep
	want      []string
	discarded int
}

func tlsCases() []tlsCase {
	rec13CH := tlsRecord(nil, tlsHandshake, tlsCH13, 0)
	rec13SH := tlsRecord(nil, tlsHandshake, tlsSH13, 0)
	splitCH := tlsRecord(nil, tlsHandshake, tlsCH12, 100) // the hello over 3+ records
	flight := tlsRecord(nil, tlsHandshake, append(append(slices.Clone(tlsSH12), tlsCert...), tlsSHD...), 0)
	hrr := tlsRecord(nil, tlsHandshake, tlsServerHello(0x0303, 0x1301, 0x0304, "", true), 0)
	sum12 := htSum("version=TLS1.2 sni=www.Example.org alpn=h2,http/1.1 ", len(tlsRecCH))
	sumSH12 := "version=TLS1.2 alpn=h2 cipher=0xc02f "
	return []tlsCase{
		{name: "tls12-full", steps: []htStep{
			htCli(tlsCat(tlsRecCH)),                                       // 1
			htSrv(tlsCat(tlsRecSH, tlsRecord(nil, 22, tlsCert, 0))),       // 2
			htSrv(tlsCat(tlsRecord(nil, 22, tlsSHD, 0))),                  // 3
			htCli(tlsCat(tlsRecord(nil, 22, tlsCKE, 0), tlsCCSr, tlsFin)), // 4
			htSrv(tlsCat(tlsCCSr, tlsFin)),                                // 5: completes
			htCli(tlsCat(tlsApp)), htSrv(tlsCat(tlsApp)),
		}, want: []string{sum12 + " -> " + htSum(sumSH12+"handshake_ns=4000 ", len(tlsRecSH))}},
		{name: "tls12-one-flight-record", steps: []htStep{
			htCli(tlsCat(tlsRecCH)),
			htSrv(tlsCat(flight)),
			htCli(tlsCat(tlsRecord(nil, 22, tlsCKE, 0), tlsCCSr, tlsFin)),
			htSrv(tlsCat(tlsCCSr, tlsFin)), // 4
		}, want: []string{sum12 + " -> " + htSum(sumSH12+"handshake_ns=3000 ", len(flight))}},
		{name: "tls12-resumed", steps: []htStep{
			htCli(tlsCat(tlsRecCH)),
			htSrv(tlsCat(tlsRecSH, tlsCCSr, tlsFin)),
			htCli(tlsCat(tlsCCSr, tlsFin, tlsApp)), // 3: completes
		}, want: []string{sum12 + " -> " + htSum(sumSH12+"handshake_ns=2000 ", len(tlsRecSH))}},
		{name: "tls13", steps: []htStep{
			htCli(tlsCat(rec13CH)),
			htSrv(tlsCat(rec13SH, tlsCCSr, tlsApp, tlsApp)),
			htSrv(tlsCat(tlsApp)),
			htCli(tlsCat(tlsCCSr, tlsApp)), // 4: completes
			htSrv(tlsCat(tlsApp)),
		}, want: []string{htSum("version=TLS1.3 sni=tls13.example alpn=h2,http/1.1 ", len(rec13CH)) + " -> " +
			htSum("version=TLS1.3 cipher=0x1301 handshake_ns=3000 ", len(rec13SH))}},
		{name: "tls13-hrr", steps: []htStep{
			htCli(tlsCat(rec13CH)),
			htSrv(tlsCat(hrr, tlsCCSr)),
			htCli(tlsCat(tlsCCSr, rec13CH)),
			htSrv(tlsCat(rec13SH, tlsApp)),
			htCli(tlsCat(tlsApp)), // 5: completes
		}, want: []string{htSum("version=TLS1.3 sni=tls13.example alpn=h2,http/1.1 ", len(rec13CH)) + " -> " +
			htSum("version=TLS1.3 cipher=0x1301 handshake_ns=4000 ", len(rec13SH))}, discarded: 1},
		{name: "hello-over-records", steps: []htStep{
			htCli(tlsCat(splitCH)),
			htSrv(tlsCat(tlsRecSH, tlsCCSr, tlsFin)),
			htCli(tlsCat(tlsCCSr, tlsFin)),
		}, want: []string{htSum("version=TLS1.2 sni=www.Example.org alpn=h2,http/1.1 ", len(splitCH)) + " -> " +
			htSum(sumSH12+"handshake_ns=2000 ", len(tlsRecSH))}},
		{name: "close-before-done", steps: []htStep{htCli(tlsCat(tlsRecCH)), htSrv(tlsCat(tlsRecSH))},
			want: []string{sum12 + " -> " + htSum(sumSH12, len(tlsRecSH))}},
		{name: "no-answer", steps: []htStep{htCli(tlsCat(tlsRecCH))},
			want: []string{sum12 + " -> nil"}},
		{name: "server-alert", steps: []htStep{htCli(tlsCat(tlsRecCH)), htSrv(tlsCat(tlsRecord(nil, tlsAlert, []byte{2, 40}, 0)))},
			want: []string{sum12 + " -> nil"}},
		{name: "sslv2-hello", steps: []htStep{htCli("\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10" + strings.Repeat("a", 37)), htSrv(tlsCat(tlsRecSH))}},
		{name: "garbage", steps: []htStep{htCli("GET / HTTP/1.1\r\n\r\n"), htSrv(tlsCat(tlsRecSH))}},
		{name: "old-hello-no-extensions", steps: []htStep{
			htCli(tlsCat(tlsRecord(nil, 22, tlsHSMsg(1, append(tlsU16(nil, 0x0301), make([]byte, 32+1+2+1)...)), 0))),
			htSrv(tlsCat(tlsRecord(nil, 22, tlsHSMsg(2, append(append(tlsU16(nil, 0x0300), make([]byte, 33)...), 0, 5, 0)), 0))),
		}, want: []string{htSum("version=TLS1.0 ", 5+4+38) + " -> " + htSum("version=SSL3.0 cipher=0x0005 ", 5+4+38)}},
	}
}

// tlsNoNS drops handshake_ns from summaries (it depends on the cuts).
func tlsNoNS(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		if k := strings.Index(s, "handshake_ns="); k >= 0 {
			e := strings.IndexByte(s[k:], ' ')
			s = s[:k] + s[k+e+1:]
		}
		out[i] = s
	}
	return out
}

func TestTLSCases(t *testing.T) {
	for _, tc := range tlsCases() {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := htRun(t, newTLS, tc.steps, nil, nil)
			if got := htSummary(st); !slices.Equal(got, tc.want) {
				t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if len(st.Discarded) != tc.discarded {
				t.Errorf("got %d discarded, want %d", len(st.Discarded), tc.discarded)
			}
		})
	}
}

// TestTLSSplits cuts every case at every byte boundary and in small and
// random chunks: the hellos, their fields and sizes must not change, and
// handshake_ns must be that of the chunk carrying the completing record.
func TestTLSSplits(t *testing.T) {
	for _, tc := range tlsCases() {
		t.Run(tc.name, func(t *testing.T) {
			longest := 0
			for _, s := range tc.steps {
				longest = max(longest, len(s.data))
			}
			cuts := map[string]func(int) []int{"1": htCutEvery(1), "2": htCutEvery(2), "7": htCutEvery(7)}
			for i := range 8 {
				cuts[fmt.Sprint("random", i)] = htCutRandom(int64(i))
			}
			for k := 1; k < longest; k++ {
				cuts[fmt.Sprint("at", k)] = htCutAt(k)
			}
			want := tlsNoNS(tc.want)
			for name, cut := range cuts {
				st, _ := htRun(t, newTLS, tc.steps, nil, cut)
				if got := tlsNoNS(htSummary(st)); !slices.Equal(got, want) {
					t.Fatalf("cut %s: got\n  %s\nwant\n  %s", name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
				}
			}
		})
	}
}

// TestTLSHandshakeTime checks handshake_ns and Pkts with the ClientHello
// spread over chunks and the completing record in a known chunk.
func TestTLSHandshakeTime(t *testing.T) {
	ch := tlsRecord(nil, tlsHandshake, tlsCH12, 300)
	steps := []htStep{
		htCli(string(ch[:3])),        // 1: part of the first record header
		htCli(string(ch[3:200])),     // 2
		htCli(string(ch[200:])),      // 3: the rest, over two more records
		htSrv(tlsCat(tlsRecSH[:50])), // 4
		htSrv(tlsCat(tlsRecSH[50:], tlsRecord(nil, 22, tlsCert, 0))), // 5
		htCli(tlsCat(tlsRecord(nil, 22, tlsCKE, 0))),                 // 6
		htCli(tlsCat(tlsCCSr, tlsFin)),                               // 7: first CCS
		htSrv(tlsCat(tlsApp)),                                        // 8: not a CCS
		htSrv(tlsCat(tlsCCSr[:2])),                                   // 9: CCS header split
		htSrv(tlsCat(tlsCCSr[2:], tlsFin)),                           // 10: completes here
	}
	st, _ := htRun(t, newTLS, steps, nil, nil)
	if len(st.Exchanges) != 1 {
		t.Fatalf("got %d exchanges, want 1", len(st.Exchanges))
	}
	req, resp := st.Exchanges[0][0], st.Exchanges[0][1]
	if got := field(resp, "handshake_ns"); got != "9000" {
		t.Errorf("got handshake_ns %s, want 9000 (packet 10 - packet 1)", got)
	}
	if got, want := htOrds(req), []uint32{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("got ClientHello pkts %v, want %v", got, want)
	}
	if got, want := htOrds(resp), []uint32{4, 5}; !slices.Equal(got, want) {
		t.Errorf("got ServerHello pkts %v, want %v", got, want)
	}
	if req.Bytes != int64(len(ch)) || resp.Bytes != int64(len(tlsRecSH)) {
		t.Errorf("got bytes %d/%d, want %d/%d", req.Bytes, resp.Bytes, len(ch), len(tlsRecSH))
	}
	if req.FirstTS != 1000 || req.LastTS != 3000 || resp.FirstTS != 4000 || resp.LastTS != 5000 {
		t.Errorf("got ts req %d..%d resp %d..%d", req.FirstTS, req.LastTS, resp.FirstTS, resp.LastTS)
	}
}

func TestTLSGaps(t *testing.T) {
	cert := tlsRecord(nil, 22, tlsCert, 0)
	cases := []struct {
		name  string
		steps []htStep
		want  []string
	}{
		{"in-certificate-counted", []htStep{
			htCli(tlsCat(tlsRecCH)), htSrv(tlsCat(tlsRecSH, cert[:100])), htGap(Server, 500), htSrv(tlsCat(cert[600:])),
			htCli(tlsCat(tlsCCSr)), htSrv(tlsCat(tlsCCSr)), // 5
		}, []string{htSum("version=TLS1.2 sni=www.Example.org alpn=h2,http/1.1 ", len(tlsRecCH)) + " -> " +
			htSum("version=TLS1.2 alpn=h2 cipher=0xc02f handshake_ns=4000 ", len(tlsRecSH))}},
		{"in-client-hello", []htStep{htCli(tlsCat(tlsRecCH[:50])), htGap(Client, 10), htCli(tlsCat(tlsRecCH[60:])), htSrv(tlsCat(tlsRecSH))}, nil},
		{"in-server-hello", []htStep{htCli(tlsCat(tlsRecCH)), htSrv(tlsCat(tlsRecSH[:20])), htGap(Server, 10), htSrv(tlsCat(tlsRecSH[30:]))},
			[]string{htSum("version=TLS1.2 sni=www.Example.org alpn=h2,http/1.1 ", len(tlsRecCH)) + " -> nil"}},
		{"between-records", []htStep{htCli(tlsCat(tlsRecCH)), htSrv(tlsCat(tlsRecSH)), htGap(Server, 10), htSrv(tlsCat(tlsCCSr)), htCli(tlsCat(tlsCCSr))},
			[]string{htSum("version=TLS1.2 sni=www.Example.org alpn=h2,http/1.1 ", len(tlsRecCH)) + " -> " +
				htSum("version=TLS1.2 alpn=h2 cipher=0xc02f ", len(tlsRecSH))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := htRun(t, newTLS, tc.steps, nil, nil)
			got := htSummary(st)
			for i := range got {
				got[i] = strings.ReplaceAll(got[i], " gap", "")
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestTLSDetect(t *testing.T) {
	if !tlsDetect(Client, tlsRecCH) {
		t.Errorf("ClientHello not detected")
	}
	if tlsDetect(Server, tlsRecCH) || tlsDetect(Client, tlsRecSH) || tlsDetect(Client, tlsRecCH[:5]) ||
		tlsDetect(Client, []byte("\x80\x2e\x01\x00\x02")) || tlsDetect(Client, nil) {
		t.Errorf("detected what is not a ClientHello from the client")
	}
	d, err := Lookup("tls")
	if err != nil || !d.TCP || !slices.Contains(d.Ports, 443) {
		t.Fatalf("tls not registered as specified: %v %+v", err, d)
	}
}

func FuzzTLS(f *testing.F) {
	for _, tc := range tlsCases() {
		f.Add(htFuzzSeed(tc.steps))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		htFuzzFeed(t, newTLS, data, func(c *Config) { c.MaxHeader = 4096 })
	})
}

func BenchmarkTLSParser(b *testing.B) {
	// A TLS 1.2 handshake: the ClientHello, the server's flight in two
	// segments, the client's second flight, the server's CCS+Finished, and
	// two records of application data each way (ignored).
	flight := tlsRecord(tlsRecord(nil, tlsHandshake, tlsSH12, 0), tlsHandshake, append(slices.Clone(tlsCert), tlsSHD...), 0)
	seg := len(flight) / 2
	chunks := []struct {
		s Side
		b []byte
	}{
		{Client, tlsRecCH},
		{Server, flight[:seg]}, {Server, flight[seg:]},
		{Client, []byte(tlsCat(tlsRecord(nil, 22, tlsCKE, 0), tlsCCSr, tlsFin))},
		{Server, []byte(tlsCat(tlsCCSr, tlsFin))},
		{Client, tlsApp}, {Server, tlsApp},
	}
	st := &htBenchStream{cfg: DefaultConfig()}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p := newTLSParser(&st.cfg)
		for _, c := range chunks {
			st.ts++
			p.Data(c.s, c.b, st)
		}
		p.Close(st)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(chunks)), "ns/chunk")
}
