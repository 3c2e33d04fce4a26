package tracegen

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

type genPkt struct {
	ts   int64
	data []byte
}

func genAll(t *testing.T, opts Options) ([]genPkt, Stats) {
	t.Helper()
	var out []genPkt
	st, err := GenerateFrames(opts, func(ts int64, f []byte) error {
		out = append(out, genPkt{ts, bytes.Clone(f)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, st
}

func TestGenerateReproducible(t *testing.T) {
	for _, kind := range []string{KindUDP64, KindIMIX, KindMixed} {
		t.Run(kind, func(t *testing.T) {
			opts := Options{Kind: kind, Packets: 20000, Flows: 500, Seed: 42, VLANs: true}
			hash := func(o Options) (string, Stats, []byte) {
				var buf bytes.Buffer
				st, err := Generate(&buf, o)
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.Sum256(buf.Bytes())
				return hex.EncodeToString(h[:]), st, buf.Bytes()
			}
			h1, st1, file := hash(opts)
			h2, st2, _ := hash(opts)
			if h1 != h2 || st1 != st2 {
				t.Fatalf("same options: got %s %+v then %s %+v, want identical", h1, st1, h2, st2)
			}
			other := opts
			other.Seed = 43
			if h3, _, _ := hash(other); h3 == h1 {
				t.Errorf("seeds 42 and 43 gave the same trace %s", h1)
			}
			if st1.Packets != int64(opts.Packets) {
				t.Errorf("got %d packets, want %d", st1.Packets, opts.Packets)
			}
			if want := 24 + 16*st1.Packets + st1.Bytes; int64(len(file)) != want {
				t.Errorf("got file of %d bytes, want %d (header, records, %d frame bytes)", len(file), want, st1.Bytes)
			}

			// GenerateFrames gives the same frames and timestamps, and
			// pcapgo reads the file as ns Ethernet pcap.
			frames, st3 := genAll(t, opts)
			if st3 != st1 {
				t.Errorf("GenerateFrames: got stats %+v, want %+v", st3, st1)
			}
			r, err := pcapgo.NewReader(bytes.NewReader(file))
			if err != nil {
				t.Fatal(err)
			}
			if r.LinkType() != layers.LinkTypeEthernet || r.Resolution() != gopacket.TimestampResolutionNanosecond {
				t.Errorf("got link type %v resolution %v, want Ethernet, ns", r.LinkType(), r.Resolution())
			}
			for i := 0; ; i++ {
				d, ci, err := r.ReadPacketData()
				if err == io.EOF {
					if i != len(frames) {
						t.Errorf("got %d packets in the file, want %d", i, len(frames))
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(d, frames[i].data) || ci.Timestamp.UnixNano() != frames[i].ts || ci.Length != len(d) {
					t.Fatalf("packet %d differs between the file and GenerateFrames", i)
				}
			}
		})
	}
}

// TestGenerateGolden pins the bytes of a small trace: reproducibility across
// machines and Go versions is the point of the generator. If the generator is
// changed on purpose, update the hash (and say so in the commit).
func TestGenerateGolden(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Generate(&buf, Options{Kind: KindMixed, Packets: 3000, Flows: 100, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(buf.Bytes())
	if got, want := hex.EncodeToString(h[:]), goldenMixed; got != want {
		t.Errorf("got sha256 %s, want %s", got, want)
	}
}

const goldenMixed = "88d1ab8d1aa5c16a7b16b1122d9ebc3c01987580c57baf3e71f22d935ff974dd"

func TestGenerateTimestamps(t *testing.T) {
	frames, _ := genAll(t, Options{Kind: KindUDP64, Packets: 1000, StartNS: 5e9, PPS: 4000})
	for i, f := range frames {
		if want := int64(5e9) + int64(i)*250000; f.ts != want {
			t.Fatalf("packet %d: got ts %d, want %d", i, f.ts, want)
		}
	}
	frames, _ = genAll(t, Options{Kind: KindIMIX, Packets: 10})
	if frames[0].ts != defaultStartNS || frames[1].ts != defaultStartNS+1000 {
		t.Errorf("defaults: got ts %d, %d, want %d, %d", frames[0].ts, frames[1].ts, int64(defaultStartNS), int64(defaultStartNS+1000))
	}
}

func TestGenerateOptionErrors(t *testing.T) {
	for _, o := range []Options{
		{Kind: "jumbo", Packets: 1},
		{Kind: KindIMIX, Packets: -1},
		{Kind: KindIMIX, Packets: 1, Flows: -1},
		{Kind: KindIMIX, Packets: 1, PPS: -5},
	} {
		if _, err := Generate(io.Discard, o); err == nil {
			t.Errorf("%+v: got no error, want one", o)
		}
	}
	stop := errors.New("stop")
	n := 0
	_, err := GenerateFrames(Options{Kind: KindIMIX, Packets: 100}, func(int64, []byte) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Errorf("got %v after %d frames, want the callback's error after 10", err, n)
	}
}

// onesSum verifies a checksum the slow, obvious way: the one's-complement
// sum of 16-bit words over data (including its checksum) must be 0xffff.
func onesSum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// decoded is what the checksum test learns of one frame.
type decoded struct {
	pkt                         gopacket.Packet
	ip4                         *layers.IPv4
	ip6                         *layers.IPv6
	tcp                         *layers.TCP
	udp                         *layers.UDP
	icmp                        *layers.ICMPv4
	tags                        int
	arp, dns, frag, hbh, dstopt bool
}

func decode(t *testing.T, i int, data []byte) decoded {
	t.Helper()
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
	d := decoded{pkt: p}
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.Dot1Q:
			d.tags++
		case *layers.IPv4:
			d.ip4 = l
			d.frag = l.Flags&layers.IPv4MoreFragments != 0 || l.FragOffset != 0
		case *layers.IPv6:
			d.ip6 = l
		case *layers.IPv6HopByHop:
			d.hbh = true
		case *layers.IPv6Destination:
			d.dstopt = true
		case *layers.TCP:
			d.tcp = l
		case *layers.UDP:
			d.udp = l
		case *layers.ICMPv4:
			d.icmp = l
		case *layers.ARP:
			d.arp = true
		case *layers.DNS:
			d.dns = true
		}
	}
	// Random payloads on ports gopacket knows (NTP, SIP, ...) may fail to
	// decode as those protocols; everything up to L4 must decode.
	if el := p.ErrorLayer(); el != nil && d.tcp == nil && d.udp == nil && d.icmp == nil && !d.arp && !d.frag {
		t.Fatalf("packet %d: gopacket: %v", i, el.Error())
	}
	var nl gopacket.NetworkLayer
	if d.ip4 != nil {
		nl = d.ip4
	} else if d.ip6 != nil {
		nl = d.ip6
	}
	if d.tcp != nil {
		d.tcp.SetNetworkLayerForChecksum(nl)
	}
	if d.udp != nil {
		d.udp.SetNetworkLayerForChecksum(nl)
	}
	return d
}

func TestGenerateChecksumsAndContent(t *testing.T) {
	for _, kind := range []string{KindUDP64, KindIMIX, KindMixed} {
		t.Run(kind, func(t *testing.T) {
			frames, st := genAll(t, Options{Kind: kind, Packets: 30000, Flows: 300, Seed: 3})
			var counts struct{ tcp, udp, icmp, arp, dns, vlan, qinq, frag, v6, hbh, dstopt int }
			type fragKey struct {
				src, dst [4]byte
				id       uint16
			}
			type fragPart struct {
				off  int
				last bool
				data []byte
			}
			frags := map[fragKey][]fragPart{}
			flows := map[string]bool{}
			for i, f := range frames {
				d := decode(t, i, f.data)
				if d.ip4 != nil {
					if err, r := d.ip4.VerifyChecksum(); err != nil || !r.Valid {
						t.Fatalf("packet %d: IPv4 checksum %#x, want %#x (%v)", i, r.Actual, r.Correct, err)
					}
				}
				if d.tcp != nil {
					counts.tcp++
					if err, r := d.tcp.VerifyChecksum(); err != nil || !r.Valid {
						t.Fatalf("packet %d: TCP checksum %#x, want %#x (%v)", i, r.Actual, r.Correct, err)
					}
				}
				if d.udp != nil {
					counts.udp++
					if err, r := d.udp.VerifyChecksum(); err != nil || !r.Valid || d.udp.Checksum == 0 {
						t.Fatalf("packet %d: UDP checksum %#x, want %#x (%v)", i, r.Actual, r.Correct, err)
					}
				}
				if d.icmp != nil {
					counts.icmp++
					if err, r := d.icmp.VerifyChecksum(); err != nil || !r.Valid {
						t.Fatalf("packet %d: ICMP checksum %#x, want %#x (%v)", i, r.Actual, r.Correct, err)
					}
				}
				if d.arp {
					counts.arp++
				}
				if d.dns {
					counts.dns++
				}
				if d.tags == 1 {
					counts.vlan++
				}
				if d.tags == 2 {
					counts.qinq++
				}
				if d.ip6 != nil {
					counts.v6++
				}
				if d.hbh {
					counts.hbh++
				}
				if d.dstopt {
					counts.dstopt++
				}
				if d.frag {
					counts.frag++
					k := fragKey{[4]byte(d.ip4.SrcIP.To4()), [4]byte(d.ip4.DstIP.To4()), d.ip4.Id}
					flows[d.ip4.SrcIP.String()+">"+d.ip4.DstIP.String()+" fragments"] = true
					frags[k] = append(frags[k], fragPart{int(d.ip4.FragOffset) * 8, d.ip4.Flags&layers.IPv4MoreFragments == 0, d.ip4.Payload})
				}
				if nl := d.pkt.NetworkLayer(); nl != nil {
					if tl := d.pkt.TransportLayer(); tl != nil {
						a, b := nl.NetworkFlow(), tl.TransportFlow()
						key := a.String() + " " + b.String()
						rev := a.Reverse().String() + " " + b.Reverse().String()
						if !flows[rev] {
							flows[key] = true
						}
					} else if d.icmp != nil && !d.frag {
						a := nl.NetworkFlow()
						key := a.String() + " icmp"
						if !flows[a.Reverse().String()+" icmp"] {
							flows[key] = true
						}
					}
				}
			}
			t.Logf("%s: %+v, %d flows (stats %d)", kind, counts, len(flows), st.Flows)
			switch kind {
			case KindUDP64:
				for i, f := range frames {
					if len(f.data) != 64 {
						t.Fatalf("packet %d: got %d bytes, want 64", i, len(f.data))
					}
				}
				if counts.udp != len(frames) {
					t.Errorf("got %d UDP packets, want %d", counts.udp, len(frames))
				}
			case KindIMIX:
				if counts.tcp != len(frames) {
					t.Errorf("got %d TCP packets, want %d", counts.tcp, len(frames))
				}
				if counts.v6 == 0 || counts.v6 > len(frames)/3 {
					t.Errorf("got %d IPv6 packets of %d, want about a fifth", counts.v6, len(frames))
				}
			case KindMixed:
				for name, n := range map[string]int{"ARP": counts.arp, "DNS": counts.dns, "ICMP": counts.icmp, "802.1Q": counts.vlan,
					"QinQ": counts.qinq, "fragment": counts.frag, "Hop-by-Hop": counts.hbh, "Destination Options": counts.dstopt, "TCP": counts.tcp} {
					if n == 0 {
						t.Errorf("got no %s packets, want some", name)
					}
				}
				checked := 0
				for k, parts := range frags {
					// Fragments are generated in order, back to back.
					var dgram []byte
					for _, p := range parts {
						if p.off != len(dgram) {
							t.Fatalf("fragments %v: got offset %d, want %d", k, p.off, len(dgram))
						}
						dgram = append(dgram, p.data...)
					}
					if !parts[len(parts)-1].last {
						continue // the trace ended inside this datagram
					}
					l := binary.BigEndian.Uint16(dgram[4:])
					if int(l) != len(dgram) {
						t.Errorf("fragments %v: got %d reassembled bytes, UDP length says %d", k, len(dgram), l)
						continue
					}
					pseudo := append(append(append([]byte{}, k.src[:]...), k.dst[:]...), 0, 17, byte(l>>8), byte(l))
					if s := onesSum(pseudo, dgram); s != 0xffff {
						t.Errorf("fragments %v: reassembled UDP checksum sums to %#x, want 0xffff", k, s)
					}
					checked++
				}
				if checked == 0 {
					t.Errorf("no fragmented datagram was checked")
				}
			}
			if st.Flows != len(flows) {
				t.Errorf("got stats.Flows %d, want the %d distinct flows seen", st.Flows, len(flows))
			}
		})
	}
}

// TestGenerateTCP checks the TCP conversations: a 3-way handshake first,
// then sequence and acknowledgement numbers that follow the bytes sent.
func TestGenerateTCP(t *testing.T) {
	frames, _ := genAll(t, Options{Kind: KindIMIX, Packets: 40000, Flows: 200, Seed: 9, VLANs: true})
	type conv struct {
		n      int
		cli    string
		nxt    map[string]uint32 // per sender: next sequence number
		hasNxt map[string]bool
	}
	convs := map[string]*conv{}
	sizes := map[int]int{}
	for i, f := range frames {
		d := decode(t, i, f.data)
		tcp := d.tcp
		src := d.pkt.NetworkLayer().NetworkFlow().Src().String() + ":" + tcp.SrcPort.String()
		dst := d.pkt.NetworkLayer().NetworkFlow().Dst().String() + ":" + tcp.DstPort.String()
		key := src + "-" + dst
		if dst < src {
			key = dst + "-" + src
		}
		c := convs[key]
		if c == nil {
			c = &conv{cli: src, nxt: map[string]uint32{}, hasNxt: map[string]bool{}}
			convs[key] = c
		}
		switch c.n {
		case 0:
			if !tcp.SYN || tcp.ACK || src != c.cli {
				t.Fatalf("packet %d: first of its flow is not a client SYN", i)
			}
		case 1:
			if !tcp.SYN || !tcp.ACK || tcp.Ack != c.nxt[dst] {
				t.Fatalf("packet %d: second of its flow is not a SYN-ACK acking %d", i, c.nxt[dst])
			}
		case 2:
			if tcp.SYN || !tcp.ACK || src != c.cli {
				t.Fatalf("packet %d: third of its flow is not the client's ACK", i)
			}
		default:
			if tcp.SYN || !tcp.ACK {
				t.Fatalf("packet %d: got flags SYN=%v ACK=%v after the handshake", i, tcp.SYN, tcp.ACK)
			}
		}
		if c.hasNxt[src] && tcp.Seq != c.nxt[src] {
			t.Fatalf("packet %d: got seq %d, want %d (previous seq plus bytes sent)", i, tcp.Seq, c.nxt[src])
		}
		if c.n >= 1 && tcp.Ack != c.nxt[dst] {
			t.Fatalf("packet %d: got ack %d, want %d (the peer's next seq)", i, tcp.Ack, c.nxt[dst])
		}
		adv := uint32(len(tcp.Payload))
		if tcp.SYN {
			adv++
		}
		c.nxt[src] = tcp.Seq + adv
		c.hasNxt[src] = true
		c.n++
		if c.n > 3 {
			sizes[len(f.data)]++
		}
	}
	// 7:4:1 of small, 594 and 1518-byte frames after the handshakes.
	small := 0
	for sz, n := range sizes {
		if sz < 100 {
			small += n
		}
	}
	mid, big := sizes[594], sizes[1518]
	total := small + mid + big
	if total == 0 {
		t.Fatal("no data packets")
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"small", float64(small) / float64(total), 7.0 / 12},
		{"594", float64(mid) / float64(total), 4.0 / 12},
		{"1518", float64(big) / float64(total), 1.0 / 12},
	} {
		if c.got < c.want*0.9 || c.got > c.want*1.1 {
			t.Errorf("%s frames: got share %.3f, want %.3f", c.name, c.got, c.want)
		}
	}
	if len(convs) != 200 {
		t.Errorf("got %d TCP flows, want 200", len(convs))
	}
}

// TestGenerateTcpdump has tcpdump read a generated file.
func TestGenerateTcpdump(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump is not installed")
	}
	path := filepath.Join(t.TempDir(), "gen.pcap")
	st, err := GenerateFile(path, Options{Kind: KindMixed, Packets: 2000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 24+16*st.Packets+st.Bytes {
		t.Fatalf("got file %v (%v), want %d bytes", fi, err, 24+16*st.Packets+st.Bytes)
	}
	out, err := exec.Command(tcpdump, "-nn", "-r", path, "-vv").CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump: %v: %s", err, out)
	}
	if bytes.Contains(out, []byte("bad cksum")) || bytes.Contains(out, []byte("incorrect")) {
		i := bytes.Index(out, []byte("bad cksum"))
		if i < 0 {
			i = bytes.Index(out, []byte("incorrect"))
		}
		t.Errorf("tcpdump reports a bad checksum: %s", out[max(0, i-200):i+20])
	}
	if n := strings.Count(string(out), "truncated"); n > 0 {
		t.Errorf("tcpdump reports %d truncated packets", n)
	}
}
