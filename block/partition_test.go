package block

import (
	"bytes"
	"encoding/binary"
	"testing"

	"tapvault/packet"
	"tapvault/pcap"
	"tapvault/tracegen"
)

// tracePayload is the packet records of a generated trace, up to size
// bytes.
func tracePayload(t testing.TB, opts tracegen.Options, size int) []byte {
	t.Helper()
	var p []byte
	stop := bytes.ErrTooLarge
	_, err := tracegen.GenerateFrames(opts, func(ts int64, f []byte) error {
		if len(p)+RecordHeaderSize+len(f) > size {
			return stop
		}
		p = binary.LittleEndian.AppendUint64(p, uint64(ts))
		p = binary.LittleEndian.AppendUint32(p, uint32(len(f)))
		p = binary.LittleEndian.AppendUint32(p, uint32(len(f)))
		p = binary.LittleEndian.AppendUint16(p, pcap.LinkTypeEthernet)
		p = binary.LittleEndian.AppendUint16(p, 0)
		p = append(p, f...)
		return nil
	})
	if err != nil && err != stop {
		t.Fatal(err)
	}
	return p
}

// Build keeps every packet, each in the sub-frame its flow hash names (the
// non-flow one last), in block order within a sub-frame, and Seq puts the
// block back together.
func TestPartition(t *testing.T) {
	for _, opts := range []tracegen.Options{
		{Kind: tracegen.KindIMIX, Packets: 40000, Flows: 10000, Seed: 1},
		{Kind: tracegen.KindMixed, Packets: 5000, Flows: 300, Seed: 2},
		{Kind: tracegen.KindIMIX, Packets: 5000, Flows: 1, Seed: 3},
	} {
		data := tracePayload(t, opts, DefaultSize)
		var p Partition
		if err := p.Build(data, SubFrameTarget); err != nil {
			t.Fatal(err)
		}
		if len(p.Subs) == 0 || p.Subs[0].Start != 0 && !p.Subs[0].NonFlow {
			t.Fatalf("%s: sub-frames %+v", opts.Kind, p.Subs)
		}
		flows := 0
		for i, s := range p.Subs {
			if s.NonFlow && i != len(p.Subs)-1 {
				t.Fatalf("non-flow sub-frame %d is not last", i)
			}
			if !s.NonFlow {
				flows++
				if i > 0 && s.Start <= p.Subs[i-1].Start {
					t.Fatalf("sub-frame %d starts at %#x after %#x", i, s.Start, p.Subs[i-1].Start)
				}
				if opts.Flows > 1000 && (s.Len < SubFrameTarget*3/4 || s.Len > SubFrameTarget*5/4) {
					t.Errorf("%s: sub-frame %d holds %d bytes, want about %d", opts.Kind, i, s.Len, SubFrameTarget)
				}
			}
		}
		if opts.Flows > 1000 && flows != 16 {
			t.Errorf("%s: %d flow sub-frames of a 1 MiB block, want 16", opts.Kind, flows)
		}
		// Put back together from Seq: bit for bit.
		pos := make([]uint32, len(p.Subs))
		for i := range p.Subs {
			pos[i] = p.Subs[i].Off
		}
		var out []byte
		var q Partition
		for i, s := range p.Seq {
			rec := p.Data[pos[s] : p.Subs[s].Off+p.Subs[s].Len]
			n, ok := RecordLen(rec)
			if !ok {
				t.Fatalf("packet %d: sub-frame %d ends early", i, s)
			}
			r, _, _ := NextRecord(rec[:n])
			h, ok := q.PacketHash(&r)
			sub := p.Subs[s]
			switch {
			case sub.NonFlow && ok, !sub.NonFlow && !ok:
				t.Fatalf("packet %d (flow %v) in sub-frame %+v", i, ok, sub)
			case ok && (h < sub.Start || int(s)+1 < len(p.Subs) && !p.Subs[s+1].NonFlow && h >= p.Subs[s+1].Start):
				t.Fatalf("packet %d hash %#x outside sub-frame %d", i, h, s)
			}
			out = append(out, rec[:n]...)
			pos[s] += uint32(n)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("%s: block put back from Seq differs", opts.Kind)
		}
	}
}

// FlowHash ignores VLANs and the protocol, and is stable (it is part of
// the format).
func TestFlowHash(t *testing.T) {
	k := packet.FlowKey{PortA: 1234, PortB: 80, Proto: 6, IPVer: 4}
	k.A[10], k.A[11], k.A[12], k.A[15] = 0xff, 0xff, 10, 1
	k.B[10], k.B[11], k.B[12], k.B[15] = 0xff, 0xff, 10, 2
	h := FlowHash(&k)
	k2 := k
	k2.VLAN, k2.VLAN2, k2.Proto = 7, 8, 17
	if FlowHash(&k2) != h {
		t.Fatal("FlowHash depends on VLANs or protocol")
	}
	k2.PortA++
	if FlowHash(&k2) == h {
		t.Fatal("FlowHash ignores ports")
	}
	if h != 0x571c3edc { // fmix32(crc32c(A | B | PortA | PortB)), computed apart from this code
		t.Fatalf("FlowHash of 10.0.0.1:1234 <> 10.0.0.2:80 is %#08x: the hash changed, and with it where stored packets are", h)
	}
}

// BenchmarkPartition is what a version-2 record costs beyond compression:
// decode every packet for its flow hash and copy the records into their
// sub-frames, per 1 MiB block.
func BenchmarkPartition(b *testing.B) {
	data := tracePayload(b, tracegen.Options{Kind: tracegen.KindIMIX, Packets: 40000, Flows: 10000, Seed: 1}, DefaultSize)
	var p Partition
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Build(data, SubFrameTarget); err != nil {
			b.Fatal(err)
		}
	}
}
