package query

import (
	"encoding/binary"
	"testing"
)

// appendRec appends one packet record in the block layout (ts, caplen,
// wirelen, link type, iface, data).
func appendRec(b []byte, ts int64, data []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(ts))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 0)
	return append(b, data...)
}

// TestFaultBlockTimeOrder: a block built while time stepped back is told
// apart from a time-ordered one by its record headers alone, and sorted
// stably (ties in arrival order) before the merge.
func TestFaultBlockTimeOrder(t *testing.T) {
	var ordered, stepped []byte
	for i, ts := range []int64{10, 20, 20, 30} {
		ordered = appendRec(ordered, ts, []byte{byte(i)})
	}
	for i, ts := range []int64{10, 30, 5, 30, 20} {
		stepped = appendRec(stepped, ts, []byte{byte(i)})
	}
	corrupt := append(appendRec(nil, 10, []byte{0}), 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0)
	for _, tc := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"ordered", ordered, true},
		{"stepped", stepped, false},
		{"empty", nil, true},
		{"corrupt after an ordered start", corrupt, true},
	} {
		if got := timeOrdered(tc.p); got != tc.want {
			t.Errorf("%s: timeOrdered %v, want %v", tc.name, got, tc.want)
		}
	}

	c := &cursor{rest: stepped}
	if err := c.sortRecords(); err != nil {
		t.Fatal(err)
	}
	var ts []int64
	var ord, first []uint32
	for {
		ok, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		ts = append(ts, c.cur.TS)
		ord = append(ord, c.cur.Ordinal)
		first = append(first, uint32(c.cur.Data[0]))
	}
	wantTS, wantOrd := []int64{5, 10, 20, 30, 30}, []uint32{2, 0, 4, 1, 3}
	for i := range wantTS {
		if i >= len(ts) || ts[i] != wantTS[i] || ord[i] != wantOrd[i] || first[i] != wantOrd[i] {
			t.Fatalf("sorted block: ts %v ordinals %v, want %v and %v", ts, ord, wantTS, wantOrd)
		}
	}

	// A damaged record ends the block there: what came before it is kept.
	bad := appendRec(appendRec(nil, 30, []byte{0}), 10, []byte{1})
	bad = append(bad, 1, 2, 3)
	c = &cursor{rest: bad}
	if err := c.sortRecords(); err == nil {
		t.Fatal("damaged block: no error")
	}
	if len(c.sorted) != 2 || c.sorted[0].TS != 10 || c.sorted[1].TS != 30 {
		t.Fatalf("damaged block: kept %d packets, want the 2 before the damage, in time order", len(c.sorted))
	}
}
