package analytics_test

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/dataplane"
)

// The IP reassembly (defrag.go): a DNS response fragmented over IPv4 and
// IPv6 through a real worker, in order, out of order, duplicated,
// overlapped, beyond the limits and late.

var (
	fragCli  = [4]byte{10, 0, 0, 1}
	fragSrv  = [4]byte{10, 0, 0, 53}
	fragCli6 = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	fragSrv6 = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 0x53}
)

// fragDNS returns a DNS query for id and its response with a TXT answer of
// about size bytes.
func fragDNS(id uint16, size int) (q, r []byte) {
	hdr := func(flags uint16, an uint16) []byte {
		b := binary.BigEndian.AppendUint16(nil, id)
		b = binary.BigEndian.AppendUint16(b, flags)
		return append(b, 0, 1, byte(an>>8), byte(an), 0, 0, 0, 0)
	}
	question := []byte("\x03big\x07example\x00\x00\x10\x00\x01")
	q = append(hdr(0x0100, 0), question...)
	var txt []byte
	for len(txt)+256 <= size {
		txt = append(txt, 255)
		for i := 0; i < 255; i++ {
			txt = append(txt, byte('A'+len(txt)/256%26))
		}
	}
	r = append(hdr(0x8180, 1), question...)
	r = append(r, 0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 1, 44, byte(len(txt)>>8), byte(len(txt)))
	return q, append(r, txt...)
}

// udpDgram is the UDP datagram (header and payload) from sport to dport.
func udpDgram(sport, dport uint16, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
	return append(append(b, 0, 0), payload...)
}

// ipv4Frame is an Ethernet frame carrying data as the IPv4 fragment at
// off (bytes; more: MF set) of datagram id.
func ipv4Frame(src, dst [4]byte, id uint16, off int, more bool, data []byte) []byte {
	f := make([]byte, 14, 14+20+len(data))
	f[12], f[13] = 0x08, 0x00
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(data)))
	binary.BigEndian.PutUint16(h[4:], id)
	fo := uint16(off / 8)
	if more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], fo)
	h[8], h[9] = 64, 17
	copy(h[12:], src[:])
	copy(h[16:], dst[:])
	return append(append(f, h...), data...)
}

// ipv6Frame is ipv4Frame for IPv6: a fragment header when frag is set.
func ipv6Frame(src, dst [16]byte, frag bool, id uint32, off int, more bool, data []byte) []byte {
	f := make([]byte, 14, 14+48+len(data))
	f[12], f[13] = 0x86, 0xdd
	h := make([]byte, 40)
	h[0] = 0x60
	h[6], h[7] = 17, 64
	copy(h[8:], src[:])
	copy(h[24:], dst[:])
	if frag {
		h[6] = 44
		fh := []byte{17, 0, 0, 0, 0, 0, 0, 0}
		fo := uint16(off)
		if more {
			fo |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], fo)
		binary.BigEndian.PutUint32(fh[4:], id)
		h = append(h, fh...)
	}
	binary.BigEndian.PutUint16(h[4:], uint16(len(h)-40+len(data)))
	return append(append(f, h...), data...)
}

// fragPiece is one fragment of a datagram to send: [off, off+n) of it.
type fragPiece struct{ off, n int }

// fragExchange builds a DNS exchange whose response datagram leaves in
// pieces, sent in the order given, 1 ms apart after the query. ipv6 picks
// the family; id is the DNS and IP identification.
func fragExchange(s *frameSource, ts int64, ipv6 bool, id uint16, size int, pieces []fragPiece) int64 {
	q, r := fragDNS(id, size)
	dq, dr := udpDgram(40000+id, 53, q), udpDgram(53, 40000+id, r)
	add := func(f []byte) {
		s.ts = append(s.ts, ts)
		s.frames = append(s.frames, f)
		ts += int64(time.Millisecond)
	}
	if ipv6 {
		add(ipv6Frame(fragCli6, fragSrv6, false, 0, 0, false, dq))
	} else {
		add(ipv4Frame(fragCli, fragSrv, id, 0, false, dq))
	}
	for _, p := range pieces {
		end := min(p.off+p.n, len(dr))
		more := end < len(dr)
		if ipv6 {
			add(ipv6Frame(fragSrv6, fragCli6, true, 0x10000+uint32(id), p.off, more, dr[p.off:end]))
		} else {
			add(ipv4Frame(fragSrv, fragCli, id, p.off, more, dr[p.off:end]))
		}
	}
	return ts
}

// dnsRecords are the answered DNS records of recs.
func dnsRecords(recs []*analytics.Record) []*analytics.Record {
	var out []*analytics.Record
	for _, r := range recs {
		if r.Proto == "dns" && r.RespLast != 0 {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *analytics.Record) int { return int(a.ReqFirst - b.ReqFirst) })
	return out
}

func refOrds(r *analytics.Record) []uint32 {
	var o []uint32
	for _, p := range r.Packets {
		o = append(o, p.Ord)
	}
	slices.Sort(o)
	return o
}

func fragDrops(an *analytics.Analyzer) string {
	st := an.Stats()
	s := fmt.Sprintf("defragged %d", st.Defragged.Load())
	for i, n := range analytics.FragReasonNames {
		if v := st.FragDropped[i].Load(); v != 0 {
			s += fmt.Sprintf(" %s %d", n, v)
		}
	}
	return s
}

// cutSource is a frameSource whose frames may have been cut by a snaplen:
// wire[i], when set, is frame i's length on the wire.
type cutSource struct {
	*frameSource
	wire map[int]uint32
}

func (s *cutSource) Recv(b *dataplane.Burst) (int, error) {
	i0 := s.i
	n, err := s.frameSource.Recv(b)
	for k := 0; k < n; k++ {
		if w := s.wire[i0+k]; w != 0 {
			b.Pkts[k].WireLen = w
		}
	}
	return n, err
}

func TestDefrag(t *testing.T) {
	const base = int64(1_700_000_000_000_000_000)
	ms := int64(time.Millisecond)
	three := []fragPiece{{0, 1248}, {1248, 1248}, {2496, 1248}} // a 2.8 KB response: 3 fragments
	for _, tc := range []struct {
		name   string
		ipv6   bool
		pieces []fragPiece
		cfg    func(*analytics.Config)
		cut    map[int]int // piece index -> bytes of it captured
		// want: the response's time after the query (0: no answered
		// record), its packets' ordinals, and the counters.
		wantNS  int64
		wantPks []uint32
		want    string
	}{
		{name: "v4/in-order", pieces: three, wantNS: 3 * ms, wantPks: []uint32{0, 1, 2, 3}, want: "defragged 1"},
		{name: "v6/in-order", ipv6: true, pieces: three, wantNS: 3 * ms, wantPks: []uint32{0, 1, 2, 3}, want: "defragged 1"},
		{name: "v4/out-of-order", pieces: []fragPiece{{2496, 1248}, {0, 1248}, {1248, 1248}},
			wantNS: 3 * ms, wantPks: []uint32{0, 1, 2, 3}, want: "defragged 1"},
		{name: "v6/last-first", ipv6: true, pieces: []fragPiece{{2496, 1248}, {1248, 1248}, {0, 1248}},
			wantNS: 3 * ms, wantPks: []uint32{0, 1, 2, 3}, want: "defragged 1"},
		{name: "v4/duplicate", pieces: []fragPiece{{0, 1248}, {1248, 1248}, {1248, 1248}, {2496, 1248}},
			wantNS: 4 * ms, wantPks: []uint32{0, 1, 2, 3, 4}, want: "defragged 1"},
		{name: "v4/overlap", pieces: []fragPiece{{0, 1248}, {1240, 1256}, {2496, 1248}},
			want: "defragged 0 overlap 3"},
		{name: "v6/overlap", ipv6: true, pieces: []fragPiece{{0, 1248}, {1248, 1248}, {1248, 8}, {2496, 1248}},
			want: "defragged 0 overlap 4"},
		{name: "v4/missing", pieces: []fragPiece{{0, 1248}, {2496, 1248}},
			want: "defragged 0 incomplete 2"},
		{name: "v4/odd-length", pieces: []fragPiece{{0, 1244}, {1244, 1252}, {2496, 1248}},
			want: "defragged 0 malformed 3"},
		{name: "v4/tiny-first", pieces: []fragPiece{{0, 8}, {8, 1240}, {1248, 1248}, {2496, 1248}},
			wantNS: 4 * ms, wantPks: []uint32{0, 1, 2, 3, 4}, want: "defragged 1"},
		// A snaplen cut: the datagram cannot be whole. A cut first
		// fragment is analysed alone, as tshark dissects it.
		{name: "v4/cut-first", pieces: three, cut: map[int]int{0: 300},
			wantNS: ms, wantPks: []uint32{0, 1}, want: "defragged 0 truncated 2"},
		{name: "v4/cut-middle", pieces: three, cut: map[int]int{1: 300},
			want: "defragged 0 truncated 3"},
		// Reassembly off: as before it, the first fragment is analysed
		// as a short response, the others are not.
		{name: "v4/off", pieces: three, cfg: func(c *analytics.Config) { c.FragMaxDatagrams = 0 },
			wantNS: ms, wantPks: []uint32{0, 1}, want: "defragged 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := analytics.DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			src := &cutSource{new(frameSource), map[int]uint32{}}
			fragExchange(src.frameSource, base, tc.ipv6, 7, 2800, tc.pieces)
			for i, n := range tc.cut {
				f := src.frames[1+i]
				src.wire[1+i] = uint32(len(f))
				src.frames[1+i] = f[:14+20+n]
			}
			recs, an := analyze(t, src, cfg)
			if got := fragDrops(an); got != tc.want {
				t.Errorf("counters: got %q, want %q", got, tc.want)
			}
			d := dnsRecords(recs)
			if tc.wantNS == 0 {
				if len(d) != 0 {
					t.Errorf("got %d answered dns records, want none", len(d))
				}
				return
			}
			if len(d) != 1 {
				t.Fatalf("got %d answered dns records, want 1", len(d))
			}
			if got := d[0].RespLast - d[0].ReqFirst; got != tc.wantNS {
				t.Errorf("time: got %d ns, want %d", got, tc.wantNS)
			}
			if got := refOrds(d[0]); !slices.Equal(got, tc.wantPks) {
				t.Errorf("packets: got %v, want %v", got, tc.wantPks)
			}
			if _, r := fragDNS(7, 2800); tc.cfg == nil && tc.cut == nil && d[0].RespBytes != int64(len(r)) {
				t.Errorf("resp bytes: got %d, want %d (the whole response)", d[0].RespBytes, len(r))
			}
		})
	}
}

// TestDefragLimits: datagrams beyond FragMaxDatagrams push out the oldest,
// and one whose fragments come more than FragTimeout apart is dropped.
func TestDefragLimits(t *testing.T) {
	const base = int64(1_700_000_000_000_000_000)
	t.Run("too-many", func(t *testing.T) {
		cfg := analytics.DefaultConfig()
		cfg.FragMaxDatagrams = 2
		src := new(frameSource)
		// Three responses begun (first fragments): the third pushes the
		// first out.
		ts := base
		var last [3][]byte
		for i := range 3 {
			id := uint16(10 + i)
			q, r := fragDNS(id, 2000)
			dq, dr := udpDgram(40000+id, 53, q), udpDgram(53, 40000+id, r)
			src.ts = append(src.ts, ts, ts+1000)
			src.frames = append(src.frames, ipv4Frame(fragCli, fragSrv, id, 0, false, dq),
				ipv4Frame(fragSrv, fragCli, id, 0, true, dr[:1248]))
			last[i] = ipv4Frame(fragSrv, fragCli, id, 1248, false, dr[1248:])
			ts += 1e6
		}
		// Newest first: each completes and frees its place, and the
		// last fragment of the one pushed out begins a datagram that
		// never completes.
		for i := 2; i >= 0; i-- {
			src.ts = append(src.ts, ts)
			src.frames = append(src.frames, last[i])
			ts += 1e6
		}
		recs, an := analyze(t, src, cfg)
		if got, want := fragDrops(an), "defragged 2 incomplete 1 limit 1"; got != want {
			t.Errorf("counters: got %q, want %q", got, want)
		}
		if got := len(dnsRecords(recs)); got != 2 {
			t.Errorf("answered dns records: got %d, want 2", got)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		cfg := analytics.DefaultConfig()
		cfg.FragMaxBytes = 65535
		src := new(frameSource)
		// Two 40 KB datagrams in flight: the second pushes the first out.
		ts := base
		for i := range 2 {
			id := uint16(20 + i)
			q, r := fragDNS(id, 40000)
			dq, dr := udpDgram(40000+id, 53, q), udpDgram(53, 40000+id, r)
			src.ts = append(src.ts, ts, ts+1000, ts+2000)
			src.frames = append(src.frames, ipv4Frame(fragCli, fragSrv, id, 0, false, dq),
				ipv4Frame(fragSrv, fragCli, id, 0, true, dr[:1248]),
				ipv4Frame(fragSrv, fragCli, id, 38000, true, dr[38000:39000]))
			ts += 1e6
		}
		_, an := analyze(t, src, cfg)
		if got, want := fragDrops(an), "defragged 0 incomplete 2 limit 2"; got != want {
			t.Errorf("counters: got %q, want %q", got, want)
		}
	})
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  string
	}{
		{"in-time", 29 * time.Second, "defragged 1"},
		{"late", 31 * time.Second, "defragged 0 incomplete 2"},
	} {
		t.Run("timeout/"+tc.name, func(t *testing.T) {
			src := new(frameSource)
			q, r := fragDNS(30, 2000)
			dq, dr := udpDgram(40030, 53, q), udpDgram(53, 40030, r)
			src.ts = []int64{base, base + 1000, base + int64(tc.after)}
			src.frames = [][]byte{ipv4Frame(fragCli, fragSrv, 30, 0, false, dq),
				ipv4Frame(fragSrv, fragCli, 30, 0, true, dr[:1248]),
				ipv4Frame(fragSrv, fragCli, 30, 1248, false, dr[1248:])}
			_, an := analyze(t, src, analytics.DefaultConfig())
			if got := fragDrops(an); got != tc.want {
				t.Errorf("counters: got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDefragPcap: DNS responses fragmented by the kernel over IPv4 and
// IPv6 (testdata/frag/dns_frag.pcap, see testdata/README.md). Each is
// timed at its last fragment, as tshark's dns.time is, and lists every
// fragment.
func TestDefragPcap(t *testing.T) {
	recs, an := analyze(t, readPcap(t, filepath.Join("testdata", "frag", "dns_frag.pcap")), analytics.DefaultConfig())
	if got, want := fragDrops(an), "defragged 3"; got != want {
		t.Errorf("counters: got %q, want %q", got, want)
	}
	// tshark -r dns_frag.pcap -Y dns.flags.response==1 -T fields
	// -e frame.number -e dns.time (frames 4, 8, 12 are the last fragments
	// of the responses to frames 1, 5, 9).
	want := []struct {
		ns   int64
		pkts []uint32 // 0-based pcap indexes
	}{
		{10473000, []uint32{0, 1, 2, 3}},
		{767000, []uint32{4, 5, 6, 7}},
		{2116000, []uint32{8, 9, 10, 11}},
	}
	d := dnsRecords(recs)
	if len(d) != len(want) {
		t.Fatalf("got %d answered dns records, want %d", len(d), len(want))
	}
	for i, w := range want {
		if got := d[i].RespLast - d[i].ReqFirst; got != w.ns {
			t.Errorf("record %d: dns time got %d ns, want tshark's %d", i, got, w.ns)
		}
		if got := refOrds(d[i]); !slices.Equal(got, w.pkts) {
			t.Errorf("record %d: packets got %v, want %v", i, got, w.pkts)
		}
	}
}

// TestDefragNotAnalysed: the fragments of a datagram whose flow has no UDP
// decoder are let go, in any order, and not counted as drops.
func TestDefragNotAnalysed(t *testing.T) {
	const base = int64(1_700_000_000_000_000_000)
	for _, order := range [][]int{{0, 1, 2}, {2, 0, 1}, {1, 2, 0}} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			_, r := fragDNS(40, 2800)
			dr := udpDgram(9999, 40040, r)
			src := new(frameSource)
			for i, k := range order {
				end := min((k+1)*1248, len(dr))
				src.ts = append(src.ts, base+int64(i)*1000)
				src.frames = append(src.frames, ipv4Frame(fragSrv, fragCli, 40, k*1248, end < len(dr), dr[k*1248:end]))
			}
			_, an := analyze(t, src, analytics.DefaultConfig())
			if got, want := fragDrops(an), "defragged 0"; got != want {
				t.Errorf("counters: got %q, want %q", got, want)
			}
		})
	}
}

// FuzzDefrag sends fragments of a few DNS responses with fuzzed offsets,
// lengths, MF flags, families, ids, cuts and time steps: the reassembly
// must not panic, and holds nothing after the end.
func FuzzDefrag(f *testing.F) {
	f.Add([]byte{0, 0, 156, 0, 1, 0xe0, 4, 156, 0, 1, 0xc0, 9, 20, 0, 0})                 // in order
	f.Add([]byte{0xc0, 9, 20, 0, 0, 0xe0, 4, 156, 0, 1, 0, 0, 156, 0, 1})                 // last first
	f.Add([]byte{0, 0, 156, 0, 1, 0xd8, 4, 156, 0, 1, 0xe0, 4, 156, 0, 1, 0, 0, 1, 0, 3}) // overlap, v6
	f.Add([]byte{0, 0, 156, 200, 0x81, 0xe0, 4, 156, 255, 1})                             // cut, late
	const base = int64(1_700_000_000_000_000_000)
	f.Fuzz(func(t *testing.T, in []byte) {
		q, r := fragDNS(50, 2800)
		dr := udpDgram(53, 40050, r)
		src := new(frameSource)
		ts := base
		add := func(fr []byte) {
			src.ts = append(src.ts, ts)
			src.frames = append(src.frames, fr)
		}
		add(ipv4Frame(fragCli, fragSrv, 1, 0, false, udpDgram(40050, 53, q)))
		add(ipv6Frame(fragCli6, fragSrv6, false, 0, 0, false, udpDgram(40050, 53, q)))
		for len(in) >= 5 && len(src.frames) < 64 {
			op := in[:5]
			in = in[5:]
			off := int(binary.BigEndian.Uint16(op[0:])) &^ 7 % 4096
			n := int(op[2])*8 + int(op[4]>>5&7)
			data := make([]byte, n)
			for i := range data {
				if off+i < len(dr) {
					data[i] = dr[off+i]
				} else {
					data[i] = op[3]
				}
			}
			more, v6, id := op[4]&1 != 0, op[4]&2 != 0, uint16(op[4]>>2&3)
			var fr []byte
			if v6 {
				fr = ipv6Frame(fragSrv6, fragCli6, true, uint32(id), off, more, data)
			} else {
				fr = ipv4Frame(fragSrv, fragCli, id, off, more, data)
			}
			if op[3]&0x80 != 0 {
				fr = fr[:14+int(op[3]&0x7f)%(len(fr)-13)] // cut by a snaplen
			}
			ts += int64(op[3]&0x7f) * int64(300*time.Millisecond)
			add(fr)
		}
		cfg := analytics.DefaultConfig()
		cfg.FragMaxDatagrams = 3
		cfg.FragMaxBytes = 65535
		_, an := analyze(t, src, cfg)
		if got := an.Stats().FragHeld.Load(); got != 0 {
			t.Errorf("bytes held after the end: got %d, want 0", got)
		}
	})
}
