package query

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"tapvault/internal/testframe"
	"tapvault/packet"
	"tapvault/pcap"
)

// These tests compare the filter with tcpdump (libpcap's BPF compiler) on a
// generated capture: for every filter, the set of packets Match selects must
// equal the set tcpdump -r FILE -w - FILTER writes out. Packets are told
// apart by their timestamps (packet i has second pcapBase+i).
//
// The common set is untagged and avoids the documented differences from BPF
// (docs/filters.md): its ARP packets use addresses no host/net filter names,
// and its IPv6 packets have no extension headers. A second copy of the set,
// with VLAN tags and MPLS labels, checks VLAN/MPLS transparency: every
// filter must select, from the tagged copy, exactly what tcpdump selects
// from the untagged one.

const pcapBase = 1_600_000_000

// Frames are built with internal/testframe. taggedCopy adds VLAN tags and
// MPLS labels to the same descriptions.

func ip4(src, dst string, id uint16) *testframe.IPv4 {
	return &testframe.IPv4{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), ID: id}
}

func ip6(src, dst string) *testframe.IPv6 {
	return &testframe.IPv6{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst)}
}

func tcpSeg(sp, dp uint16) *testframe.TCP {
	return &testframe.TCP{SrcPort: sp, DstPort: dp, Flags: testframe.PSH | testframe.ACK}
}

func udpDgram(sp, dp uint16) *testframe.UDP { return &testframe.UDP{SrcPort: sp, DstPort: dp} }

func sctpPkt(sp, dp uint16) *testframe.SCTP { return &testframe.SCTP{SrcPort: sp, DstPort: dp} }

func icmpMsg(typ, code uint8) *testframe.ICMP {
	return &testframe.ICMP{Type: typ, Code: code, ID: 1, Seq: 1}
}

var ping = []byte("ping")

// commonSpecs describes the untagged set compared with BPF directly.
func commonSpecs() []testframe.Frame {
	v4 := []string{"10.0.0.1", "10.0.0.2", "192.168.1.5", "172.16.3.4"}
	v6 := []string{"2001:db8::1", "2001:db8::2", "fe80::1"}
	ports := []uint16{22, 53, 80, 443, 1024, 33000}
	var frames []testframe.Frame
	i := 0
	for _, s := range v4 {
		for _, d := range v4 {
			if s == d {
				continue
			}
			i++
			sp, dp := ports[i%6], ports[(i*5+1)%6]
			frames = append(frames,
				testframe.Frame{IPv4: ip4(s, d, uint16(i)), TCP: tcpSeg(sp, dp), Payload: make([]byte, i%3)},
				testframe.Frame{IPv4: ip4(s, d, uint16(i)), UDP: udpDgram(dp, sp), Payload: make([]byte, 4)},
				testframe.Frame{IPv4: ip4(s, d, uint16(i)), SCTP: sctpPkt(sp, sp), Payload: make([]byte, 16)},
				testframe.Frame{IPv4: ip4(s, d, uint16(i)), ICMP: icmpMsg(8, 0), Payload: ping},
			)
		}
	}
	// IPv4 fragments: first fragments carry ports, later ones do not.
	frag := func(src, dst string, id, off uint16, more bool) *testframe.IPv4 {
		h := ip4(src, dst, id)
		h.FragOff, h.MoreFragments = off, more
		return h
	}
	for k, pair := range [][2]string{{"10.0.0.1", "192.168.1.5"}, {"172.16.3.4", "10.0.0.2"}} {
		id := uint16(1000 + k)
		later := frag(pair[0], pair[1], id, 24, false)
		later.Protocol = 17
		frames = append(frames,
			testframe.Frame{IPv4: frag(pair[0], pair[1], id, 0, true), UDP: udpDgram(53, 33000), Payload: make([]byte, 16)},
			testframe.Frame{IPv4: later, Payload: make([]byte, 32)},
			testframe.Frame{IPv4: frag(pair[1], pair[0], id, 0, true), TCP: tcpSeg(80, 1024), Payload: make([]byte, 4)},
			// A later fragment whose bytes look like a TCP header.
			testframe.Frame{IPv4: frag(pair[1], pair[0], id, 1480, true), TCP: tcpSeg(53, 53), Payload: make([]byte, 4)},
		)
	}
	// IPv4 with options (ports move), GRE, an ICMP error.
	opts := ip4("10.0.0.2", "172.16.3.4", 7)
	opts.Options = []byte{1, 1, 1, 0}
	gre := ip4("10.0.0.1", "10.0.0.2", 8)
	gre.Protocol = 47
	frames = append(frames,
		testframe.Frame{IPv4: opts, TCP: tcpSeg(443, 22)},
		testframe.Frame{IPv4: gre, Payload: []byte{0, 0, 0x08, 0}},
		testframe.Frame{IPv4: ip4("192.168.1.5", "10.0.0.1", 9), ICMP: icmpMsg(3, 3), Payload: ping},
	)
	i = 0
	for _, s := range v6 {
		for _, d := range v6 {
			if s == d {
				continue
			}
			i++
			sp, dp := ports[(i+2)%6], ports[(i*5)%6]
			frames = append(frames,
				testframe.Frame{IPv6: ip6(s, d), TCP: tcpSeg(sp, dp), Payload: make([]byte, 1)},
				testframe.Frame{IPv6: ip6(s, d), UDP: udpDgram(sp, dp), Payload: make([]byte, 2)},
				testframe.Frame{IPv6: ip6(s, d), SCTP: sctpPkt(dp, sp), Payload: make([]byte, 16)},
				testframe.Frame{IPv6: ip6(s, d), ICMP: icmpMsg(128, 0), Payload: ping},
			)
		}
	}
	arp := func(spa, tpa string) *testframe.ARP {
		return &testframe.ARP{SenderIP: netip.MustParseAddr(spa), TargetIP: netip.MustParseAddr(tpa)}
	}
	frames = append(frames,
		testframe.Frame{ARP: arp("169.254.1.1", "169.254.1.2")},
		testframe.Frame{ARP: arp("169.254.1.2", "169.254.1.1")},
		testframe.Frame{EtherType: 0x88cc, Payload: make([]byte, 46)},
	)
	return frames
}

// commonFrames is the untagged set, serialised.
func commonFrames() [][]byte {
	specs := commonSpecs()
	frames := make([][]byte, len(specs))
	for i := range specs {
		frames[i] = specs[i].Bytes()
	}
	return frames
}

func writePcapFile(t *testing.T, path string, frames [][]byte) {
	t.Helper()
	var b bytes.Buffer
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], uint32(pcap.LinkTypeEthernet))
	b.Write(hdr)
	for i, f := range frames {
		rec := make([]byte, 16)
		binary.LittleEndian.PutUint32(rec[0:], uint32(pcapBase+i))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(f)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(f)))
		b.Write(rec)
		b.Write(f)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readPcapSeconds returns the packet records of a classic pcap (either byte
// order, µs or ns): their timestamp seconds and data.
func readPcapSeconds(p []byte) ([]int64, [][]byte, error) {
	if len(p) < 24 {
		return nil, nil, fmt.Errorf("pcap header: %d bytes", len(p))
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(p) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, nil, fmt.Errorf("not a pcap: magic %x", p[:4])
	}
	var secs []int64
	var datas [][]byte
	for p = p[24:]; len(p) > 0; {
		if len(p) < 16 {
			return nil, nil, fmt.Errorf("truncated record header")
		}
		n := int(bo.Uint32(p[8:]))
		if len(p) < 16+n {
			return nil, nil, fmt.Errorf("truncated record")
		}
		secs = append(secs, int64(bo.Uint32(p)))
		datas = append(datas, p[16:16+n])
		p = p[16+n:]
	}
	return secs, datas, nil
}

// tcpdumpSelect runs tcpdump's filter over the file and returns the indices
// of the packets it keeps.
func tcpdumpSelect(t *testing.T, bin, path, filter string) []int {
	t.Helper()
	args := []string{"-n", "-r", path, "-w", "-"}
	if filter != "" {
		args = append(args, filter)
	}
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("tcpdump %q: %v: %s", filter, err, errb.String())
	}
	secs, _, err := readPcapSeconds(out.Bytes())
	if err != nil {
		t.Fatalf("tcpdump %q output: %v", filter, err)
	}
	idx := make([]int, len(secs))
	for i, s := range secs {
		idx[i] = int(s - pcapBase)
	}
	return idx
}

// ourSelect returns the indices of the frames the filter matches after the
// real decoder has decoded them.
func ourSelect(t *testing.T, frames [][]byte, filter string) []int {
	t.Helper()
	f, err := ParseFilter(filter)
	if err != nil {
		t.Fatalf("ParseFilter(%q): %v", filter, err)
	}
	var dec packet.Decoder
	var d packet.Decoded
	var idx []int
	for i, fr := range frames {
		dec.Decode(fr, pcap.LinkTypeEthernet, &d)
		if f.Match(&d) {
			idx = append(idx, i)
		}
	}
	return idx
}

// tcpdumpFilters are the filters compared with BPF: every primitive, the
// combined forms, inheritance, negation and precedence.
var tcpdumpFilters = []string{
	"",
	"host 10.0.0.1", "src host 10.0.0.1", "dst host 192.168.1.5", "src and dst host 10.0.0.1",
	"host 2001:db8::1", "dst host fe80::1", "src or dst host 172.16.3.4", "ip host 10.0.0.2",
	"ip6 src host 2001:db8::2",
	"net 10.0.0.0/8", "src net 192.168.0.0/16", "net 172.16", "dst net 10.0.0.0/31",
	"net 2001:db8::/32", "net 10.0.0.0 mask 255.255.255.0", "src 10.0.0.1", "dst 172.16.3.4",
	"port 53", "src port 80", "dst port 443", "tcp port 80", "udp port 53", "sctp port 22",
	"tcp dst port 1024", "src and dst port 22", "port 53 or 80", "tcp port 80 or 443", "port http",
	"portrange 1-1023", "tcp portrange 400-1100", "udp src portrange 30000-40000", "portrange 80-80",
	"tcp", "udp", "icmp", "icmp6", "sctp", "ip", "ip6", "arp",
	"ip proto 47", "proto 47", "ip6 proto 17", "ip proto 1", "proto \\udp", "ip proto \\tcp",
	"ether proto 0x88cc", "ether proto \\ip6",
	"host 10.0.0.1 or 10.0.0.2", "host (10.0.0.1 or 172.16.3.4)", "host 10.0.0.1 and not 10.0.0.2",
	"tcp and host 10.0.0.1", "udp or icmp", "not tcp", "not ip", "! (tcp || udp)",
	"host 10.0.0.1 and not port 80", "tcp or udp and port 53", "tcp or (udp and port 53)",
	"!icmp && ip", "src 10.0.0.1 and dst 192.168.1.5", "host 10.0.0.1 and (port 53 or 80)",
	"ip6 and udp and port 53", "not host 10.0.0.1 or port 22 and tcp",
	"not not sctp", "(icmp or icmp6) and not src net 10.0.0.0/8",
	"udp and not port 53 and not net 172.16.0.0/12",
	"tcp[13] != 0 or tcp", // not supported: skipped with its error
}

func lookTcpdump(t *testing.T) string {
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed")
	}
	return bin
}

func TestFilterAgainstTcpdump(t *testing.T) {
	bin := lookTcpdump(t)
	frames := commonFrames()
	path := filepath.Join(t.TempDir(), "common.pcap")
	writePcapFile(t, path, frames)
	// The decoder must see what the builders meant, or the comparison
	// proves little.
	checkDecoded(t, frames)
	compared := 0
	for _, flt := range tcpdumpFilters {
		if _, err := ParseFilter(flt); err != nil {
			t.Logf("skipped (unsupported here): %v", err)
			continue
		}
		got := ourSelect(t, frames, flt)
		want := tcpdumpSelect(t, bin, path, flt)
		if !slices.Equal(got, want) {
			t.Errorf("%q: got packets %v, tcpdump selects %v", flt, got, want)
		}
		compared++
	}
	if compared < len(tcpdumpFilters)-1 {
		t.Fatalf("compared %d filters, want %d", compared, len(tcpdumpFilters)-1)
	}
}

func checkDecoded(t *testing.T, frames [][]byte) {
	t.Helper()
	var dec packet.Decoder
	var d packet.Decoded
	var ip, ports, frags int
	for i, fr := range frames {
		dec.Decode(fr, pcap.LinkTypeEthernet, &d)
		if d.Flags&(packet.FlagMalformed|packet.FlagTruncated) != 0 {
			t.Fatalf("frame %d decodes as malformed/truncated: flags %#x", i, d.Flags)
		}
		if d.IPVer != 0 {
			ip++
		}
		if d.Flags&packet.FlagPorts != 0 {
			ports++
		}
		if d.Flags&packet.FlagFragment != 0 {
			frags++
		}
	}
	if ip < len(frames)-3 || ports < len(frames)/2 || frags != 8 {
		t.Fatalf("decoded %d IP, %d with ports, %d fragments of %d frames", ip, ports, frags, len(frames))
	}
}

// taggedCopy returns frame i of the common set wrapped the i-th way: VLAN
// stacks of 1 to 3 tags under the usual TPIDs, MPLS stacks (labels 100,
// 101), or both, and the VLAN ids and MPLS label count it used.
func taggedCopy(i int, f testframe.Frame) ([]byte, []uint16, int) {
	isIP := f.IPv4 != nil || f.IPv6 != nil
	tag := func(tpid uint16, vlans ...uint16) ([]byte, []uint16, int) {
		f.TPID, f.VLANs = tpid, vlans
		return f.Bytes(), vlans, len(f.MPLS)
	}
	switch i % 6 {
	case 0:
		return tag(0x8100, 100)
	case 1:
		return tag(0x88a8, 100, 200)
	case 2:
		return tag(0x9100, 300, 200, 100)
	case 3:
		if isIP {
			f.MPLS = []uint32{100, 101}
			return f.Bytes(), nil, 2
		}
		return tag(0x8100, 200)
	case 4:
		if isIP {
			f.MPLS = []uint32{100}
			return tag(0x8100, 200)
		}
	}
	return f.Bytes(), nil, 0
}

func TestFilterVLANTransparency(t *testing.T) {
	bin := lookTcpdump(t)
	specs := commonSpecs()
	frames := commonFrames()
	dir := t.TempDir()
	path := filepath.Join(dir, "common.pcap")
	writePcapFile(t, path, frames)
	tagged := make([][]byte, len(frames))
	tags := make([][]uint16, len(frames))
	labels := make([]int, len(frames))
	for i, f := range specs {
		tagged[i], tags[i], labels[i] = taggedCopy(i, f)
	}
	for _, flt := range tcpdumpFilters {
		if _, err := ParseFilter(flt); err != nil {
			continue
		}
		got := ourSelect(t, tagged, flt)
		want := tcpdumpSelect(t, bin, path, flt)
		if !slices.Equal(got, want) {
			t.Errorf("%q on tagged copies: got packets %v, tcpdump on the untagged set selects %v", flt, got, want)
		}
	}

	// vlan and mpls primitives, against the documented rule: vlan N is true
	// when any tag in the stack is N, and the rest of the filter sees
	// through the tags.
	has := func(vs []uint16, v uint16) bool { return slices.Contains(vs, v) }
	for _, tc := range []struct {
		filter string
		rule   func(vs []uint16, mpls int) bool
		rest   string // the filter's tag-free part, selected by tcpdump on the untagged set
	}{
		{"vlan", func(vs []uint16, _ int) bool { return len(vs) > 0 }, ""},
		{"not vlan", func(vs []uint16, _ int) bool { return len(vs) == 0 }, ""},
		{"vlan 100", func(vs []uint16, _ int) bool { return has(vs, 100) }, ""},
		{"vlan 200", func(vs []uint16, _ int) bool { return has(vs, 200) }, ""},
		{"vlan 300 or 100", func(vs []uint16, _ int) bool { return has(vs, 300) || has(vs, 100) }, ""},
		{"vlan 200 and vlan 100", func(vs []uint16, _ int) bool { return has(vs, 200) && has(vs, 100) }, ""},
		{"mpls", func(_ []uint16, m int) bool { return m > 0 }, ""},
		{"mpls and vlan 200", func(vs []uint16, m int) bool { return m > 0 && has(vs, 200) }, ""},
		{"vlan 200 and tcp port 80", func(vs []uint16, _ int) bool { return has(vs, 200) }, "tcp port 80"},
		{"vlan 100 and (host 10.0.0.1 or net 2001:db8::/32)", func(vs []uint16, _ int) bool { return has(vs, 100) }, "host 10.0.0.1 or net 2001:db8::/32"},
		{"mpls and udp", func(_ []uint16, m int) bool { return m > 0 }, "udp"},
	} {
		rest := make(map[int]bool)
		for _, i := range tcpdumpSelect(t, bin, path, tc.rest) {
			rest[i] = true
		}
		var want []int
		for i := range tagged {
			if tc.rule(tags[i], labels[i]) && rest[i] {
				want = append(want, i)
			}
		}
		got := ourSelect(t, tagged, tc.filter)
		if !slices.Equal(got, want) {
			t.Errorf("%q: got packets %v, want %v", tc.filter, got, want)
		}
		if len(want) == 0 {
			t.Errorf("%q: the rule selects nothing, so the check proves nothing", tc.filter)
		}
	}
}

// TestFilterBPFDifferences pins down, packet by packet, the documented cases
// where this language and BPF disagree (docs/filters.md). Our side is
// asserted; tcpdump's is logged, since it may change between libpcap
// versions.
func TestFilterBPFDifferences(t *testing.T) {
	bin, _ := exec.LookPath("tcpdump")
	hbh := []byte{6, 0, 1, 4, 0, 0, 0, 0} // hop-by-hop, next header TCP, PadN
	frag6 := func(nh uint8, off uint16, more bool) []byte {
		fo := off
		if more {
			fo |= 1
		}
		b := []byte{nh, 0, 0, 0, 0, 0, 0, 42}
		binary.BigEndian.PutUint16(b[2:], fo)
		return b
	}
	arpFrame := (&testframe.Frame{ARP: &testframe.ARP{SenderIP: netip.MustParseAddr("10.0.0.1"), TargetIP: netip.MustParseAddr("10.0.0.2")}}).Bytes()
	hbhHdr := ip6("2001:db8::1", "2001:db8::2")
	hbhHdr.NextHeader, hbhHdr.Ext = 0, hbh
	hbhFrame := (&testframe.Frame{IPv6: hbhHdr, TCP: tcpSeg(1024, 80)}).Bytes()
	fragHdr := ip6("2001:db8::1", "2001:db8::2")
	fragHdr.NextHeader, fragHdr.Ext = 44, frag6(17, 0, true)
	for _, tc := range []struct {
		name   string
		frame  []byte
		filter string
		ours   bool
	}{
		{"arp addresses are not hosts", arpFrame, "host 10.0.0.1", false},
		{"arp addresses are not nets", arpFrame, "net 10.0.0.0/8", false},
		{"ipv6 extension headers are walked", hbhFrame, "tcp port 80", true},
		{"ipv6 proto is the upper layer", hbhFrame, "ip6 proto 0", false},
		{"ipv6 first fragment has ports", (&testframe.Frame{IPv6: fragHdr, UDP: udpDgram(5353, 53), Payload: make([]byte, 8)}).Bytes(), "port 53", true},
		{"vlan is transparent", (&testframe.Frame{VLANs: []uint16{5}, IPv4: ip4("10.0.0.1", "10.0.0.2", 1), TCP: tcpSeg(1, 80)}).Bytes(), "tcp port 80", true},
		{"vlan N is any tag", (&testframe.Frame{TPID: 0x88a8, VLANs: []uint16{5, 6}, IPv4: ip4("10.0.0.1", "10.0.0.2", 1), TCP: tcpSeg(1, 80)}).Bytes(), "vlan 6", true},
		{"mpls is transparent", (&testframe.Frame{MPLS: []uint32{100}, IPv4: ip4("10.0.0.1", "10.0.0.2", 1), UDP: udpDgram(1, 53)}).Bytes(), "udp port 53", true},
	} {
		got := ourSelect(t, [][]byte{tc.frame}, tc.filter)
		if (len(got) == 1) != tc.ours {
			t.Errorf("%s: %q: got match %v, want %v", tc.name, tc.filter, len(got) == 1, tc.ours)
		}
		if bin != "" {
			path := filepath.Join(t.TempDir(), "one.pcap")
			writePcapFile(t, path, [][]byte{tc.frame})
			bpf := len(tcpdumpSelect(t, bin, path, tc.filter)) == 1
			t.Logf("%s: %q: ours %v, tcpdump %v", tc.name, tc.filter, tc.ours, bpf)
		}
	}
}
