package block

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"tapvault/packet"
)

func TestSummaryRoundTrip(t *testing.T) {
	in := Summary{NonFlow: 7}
	for i := 0; i < 3; i++ {
		var k packet.FlowKey
		k.PortA, k.PortB, k.Proto, k.IPVer, k.VLAN = uint16(1000+i), 80, 6, 4, uint16(i)
		in.Flows = append(in.Flows, FlowStat{Key: k, Pkts: [2]uint32{uint32(i), 2}, Bytes: [2]uint64{100, uint64(i)}, FirstTS: int64(i), LastTS: int64(10 + i), FirstDir: uint8(i % 2)})
	}
	b := AppendSummary(nil, &in)
	if want := 8 + 3*flowStatSize; len(b) != want {
		t.Fatalf("encoded %d bytes, want %d", len(b), want)
	}
	var out Summary
	if err := ParseSummary(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
	for _, cut := range []int{0, 7, 8 + flowStatSize - 1, len(b) - 1} {
		if err := ParseSummary(b[:cut], &out); err == nil {
			t.Errorf("ParseSummary of %d of %d bytes: no error", cut, len(b))
		}
	}
}

func TestNextRecord(t *testing.T) {
	rec := func(ts int64, data []byte) []byte {
		h := make([]byte, RecordHeaderSize)
		binary.LittleEndian.PutUint64(h[0:], uint64(ts))
		binary.LittleEndian.PutUint32(h[8:], uint32(len(data)))
		binary.LittleEndian.PutUint32(h[12:], uint32(len(data)+4))
		binary.LittleEndian.PutUint16(h[16:], 1)
		binary.LittleEndian.PutUint16(h[18:], 2)
		return append(h, data...)
	}
	p := append(rec(5, []byte("abc")), rec(6, nil)...)
	r, rest, err := NextRecord(p)
	if err != nil || r.TS != 5 || string(r.Data) != "abc" || r.WireLen != 7 || r.LinkType != 1 || r.Iface != 2 {
		t.Fatalf("first record %+v, %v", r, err)
	}
	if cap(r.Data) != 3 {
		t.Errorf("record data has cap %d: appending to it would overwrite the next record", cap(r.Data))
	}
	r, rest, err = NextRecord(rest)
	if err != nil || r.TS != 6 || len(r.Data) != 0 || len(rest) != 0 {
		t.Fatalf("second record %+v, rest %d, %v", r, len(rest), err)
	}
	for _, bad := range [][]byte{p[:RecordHeaderSize-1], p[:RecordHeaderSize+2]} {
		if _, _, err := NextRecord(bad); !errors.Is(err, ErrBadRecord) {
			t.Errorf("NextRecord of %d bytes: %v, want ErrBadRecord", len(bad), err)
		}
	}
}

func TestPoolBoundsAndDoubleRelease(t *testing.T) {
	p := NewPool(2, 1024, 4)
	a, b := p.Get(), p.Get()
	if a == nil || b == nil || p.Get() != nil || p.Free() != 0 || p.Cap() != 2 {
		t.Fatalf("pool of 2: got %v %v, free %d", a, b, p.Free())
	}
	a.Data = append(a.Data, 1, 2, 3)
	a.Count, a.ID = 1, 9
	a.Release()
	c := p.Get()
	if c != a || len(c.Data) != 0 || c.Count != 0 || c.ID != 0 {
		t.Fatalf("released block not reset: %+v", c)
	}
	if cap(c.Data) < 1024+RecordHeaderSize+MaxPacketSize {
		t.Errorf("block capacity %d cannot hold one maximum packet beyond the seal size", cap(c.Data))
	}
	c.Release()
	b.Release()
	defer func() {
		if recover() == nil {
			t.Error("a block released twice into a full pool did not panic")
		}
	}()
	b.Release()
}
