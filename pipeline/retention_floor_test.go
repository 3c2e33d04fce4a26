package pipeline

import (
	"testing"

	"tapvault/msgstore"
	"tapvault/writer"
)

// TestRetentionFloor: records go only after every packet of their time.
// Segment time ranges overlap (several workers, a clock stepped back,
// files imported out of order): dropping segment 1 (packets 100..200) must
// not take a message file ending at 150 while segment 2 still holds
// packets from 120, nor while the newest segment holds packets from 140.
func TestRetentionFloor(t *testing.T) {
	seg := func(n uint32, lo, hi int64) writer.SegmentSpan {
		return writer.SegmentSpan{SegmentInfo: writer.SegmentInfo{Number: n}, Blocks: 1, MinTS: lo, MaxTS: hi}
	}
	c := cands{segs: []writer.SegmentSpan{seg(1, 100, 200), seg(2, 120, 300)}}
	if got := c.floor(200, 1); got != 120 {
		t.Fatalf("floor dropping segment 1: got %d, want 120 (segment 2's oldest packet)", got)
	}
	c.keep(110)
	if got := c.floor(200, 1); got != 110 {
		t.Fatalf("floor with the newest segment from 110: got %d, want 110", got)
	}
	if got := c.floor(90, 1); got != 90 {
		t.Fatalf("floor below every kept packet: got %d, want 90", got)
	}
	c.msgs = []msgCand{{FileInfo: msgstore.FileInfo{}, last: 105}}
	if c.msgDroppable() {
		t.Fatalf("a message file ending at 105 is droppable while segment 1 holds packets from 100")
	}
	c.segs = c.segs[1:]
	if !c.msgDroppable() {
		t.Fatalf("a message file ending at 105 is not droppable once every packet kept is from 110 on")
	}
	var none cands
	none.msgs = c.msgs
	if none.msgDroppable() {
		t.Fatalf("a message file is droppable while the newest segment has no committed block")
	}
}
