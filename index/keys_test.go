package index

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"tapvault/packet"
	"tapvault/writer"
)

func TestAttrKeyRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	flows := genFlows(rng, 10)
	var bits bitmap
	bits.set(0)
	bits.set(GroupBlocks - 1)
	bits.set(77)
	g := groupID{Ref: writer.MakeRef(7, 123456), Gen: 3}
	cases := []struct {
		kind byte
		attr []byte
		size int
	}{
		{kindFlow, appendFlowAttr(nil, &flows[0]), flowKeySize},
		{kindHost, appendHostAttr(nil, &flows[1].A), hostKeySize},
		{kindPort, appendPortAttr(nil, protoUDP, 53), portKeySize},
		{kindVLAN, appendVLANAttr(nil, 4094), vlanKeySize},
	}
	for _, c := range cases {
		k := appendAttrKey(nil, c.kind, c.attr, g, &bits)
		if len(k) != c.size {
			t.Fatalf("kind %q: got %d bytes, want %d", c.kind, len(k), c.size)
		}
		ak, err := parseAttrKey(k)
		if err != nil {
			t.Fatalf("kind %q: %v", c.kind, err)
		}
		if ak.Kind != c.kind || !bytes.Equal(ak.Attr, c.attr) || ak.Group != g || ak.Bits != bits {
			t.Fatalf("kind %q: got %+v, want attr %x group %+v", c.kind, ak, c.attr, g)
		}
		for k := 0; k < GroupBlocks; k++ {
			if want := k == 0 || k == 77 || k == GroupBlocks-1; ak.Bits.has(k) != want {
				t.Fatalf("bit %d: got %v, want %v", k, ak.Bits.has(k), want)
			}
		}
	}
	// Keys sort by segment first, then attribute, then group.
	port := func(p uint16, g writer.Ref) []byte {
		return appendAttrKey(nil, kindPort, appendPortAttr(nil, protoTCP, p), groupID{Ref: g}, &bitmap{})
	}
	order := [][]byte{
		port(80, writer.MakeRef(1, 900)),
		port(80, writer.MakeRef(1, 901)),
		port(81, writer.MakeRef(1, 0)),
		port(22, writer.MakeRef(2, 0)),
	}
	for i := 1; i < len(order); i++ {
		if bytes.Compare(order[i-1], order[i]) >= 0 {
			t.Fatalf("key %d %x sorts after key %d %x, want before", i-1, order[i-1], i, order[i])
		}
	}
}

func TestBlockKeyRoundTrip(t *testing.T) {
	e := blockEntry{
		Meta: writer.BlockMeta{
			Ref: writer.MakeRef(3, 1<<31), Queue: 5, Codec: writer.CodecZstd, Count: 2500,
			MinTS: -5, MaxTS: math.MaxInt64, RawLen: 1 << 20, StoredLen: 400000, WireBytes: 1 << 40,
		},
		NonFlow: 17,
		Group:   groupID{Ref: writer.MakeRef(3, 4096), Gen: 1},
		K:       GroupBlocks - 1,
		N:       GroupBlocks,
	}
	k := appendBlockKey(nil, &e)
	if len(k) != blockKeySize {
		t.Fatalf("got %d bytes, want %d", len(k), blockKeySize)
	}
	got, err := parseBlockKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if got != e {
		t.Fatalf("got %+v, want %+v", got, e)
	}
	bad := bytes.Clone(k)
	bad[dataPrefixSize+9], bad[dataPrefixSize+10] = 0xff, 0xff // k beyond n
	if _, err := parseBlockKey(bad); err == nil {
		t.Fatalf("got nil error for position %d of %d, want an error", 0xffff, e.N)
	}
}

func TestSmallKeysRoundTrip(t *testing.T) {
	s := segInfo{Seg: 99, MinTS: math.MinInt64, MaxTS: 12}
	got, err := parseSegmentKey(appendSegmentKey(nil, s))
	if err != nil || got != s {
		t.Fatalf("segment key: got %+v, %v, want %+v", got, err, s)
	}
	r := writer.MakeRef(1, 2)
	for _, kind := range []byte{kindMissing, kindWatermark} {
		got, err := parseRefKey(appendRefKey(nil, kind, r), kind)
		if err != nil || got != r {
			t.Fatalf("kind %q: got %v, %v, want %v", kind, got, err, r)
		}
	}
}

func TestTSOrder(t *testing.T) {
	ts := []int64{math.MinInt64, -1 << 40, -1, 0, 1, 1 << 40, math.MaxInt64}
	for i := 1; i < len(ts); i++ {
		a, b := appendTS(nil, ts[i-1]), appendTS(nil, ts[i])
		if bytes.Compare(a, b) >= 0 {
			t.Fatalf("ts %d encodes %x, not below %d's %x", ts[i-1], a, ts[i], b)
		}
		if got := parseTS(b); got != ts[i] {
			t.Fatalf("got %d, want %d", got, ts[i])
		}
	}
}

// FuzzKeyCodec feeds arbitrary bytes to every key parser: none may panic,
// and whatever parses must encode back to the same bytes.
func FuzzKeyCodec(f *testing.F) {
	var bits bitmap
	bits.set(3)
	k := packet.FlowKey{Proto: protoTCP, IPVer: 4, PortA: 1, PortB: 2}
	f.Add(appendAttrKey(nil, kindFlow, appendFlowAttr(nil, &k), groupID{Ref: 5}, &bits))
	f.Add(appendAttrKey(nil, kindPort, appendPortAttr(nil, protoUDP, 53), groupID{Ref: 5}, &bits))
	f.Add(appendBlockKey(nil, &blockEntry{N: 1, Meta: writer.BlockMeta{Ref: 7}}))
	f.Add(appendSegmentKey(nil, segInfo{Seg: 1, MinTS: 1, MaxTS: 2}))
	f.Add(appendRefKey(nil, kindWatermark, 9))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if ak, err := parseAttrKey(b); err == nil {
			if got := appendAttrKey(nil, ak.Kind, ak.Attr, ak.Group, &ak.Bits); !bytes.Equal(got, b) {
				t.Fatalf("attr key: got %x, want %x", got, b)
			}
		}
		if e, err := parseBlockKey(b); err == nil {
			if got := appendBlockKey(nil, &e); !bytes.Equal(got, b) {
				t.Fatalf("block key: got %x, want %x", got, b)
			}
		}
		if s, err := parseSegmentKey(b); err == nil {
			if got := appendSegmentKey(nil, s); !bytes.Equal(got, b) {
				t.Fatalf("segment key: got %x, want %x", got, b)
			}
		}
		for _, kind := range []byte{kindMissing, kindWatermark} {
			if r, err := parseRefKey(b, kind); err == nil {
				if got := appendRefKey(nil, kind, r); !bytes.Equal(got, b) {
					t.Fatalf("ref key: got %x, want %x", got, b)
				}
			}
		}
	})
}
