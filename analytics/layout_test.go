package analytics

import (
	"testing"
	"unsafe"
)

// TestConnLayout checks what conn's field order is for: a whole number of
// cache lines (so that in the slab every conn starts one), and the fields
// every packet uses within its first 7 lines.
func TestConnLayout(t *testing.T) {
	var c conn
	if n := unsafe.Sizeof(c); n%64 != 0 {
		t.Errorf("conn is %d bytes, want a multiple of 64", n)
	}
	if end := unsafe.Offsetof(c.waitAck) + unsafe.Sizeof(c.waitAck); end > 7*64 {
		t.Errorf("the hot fields end at byte %d, want at most %d", end, 7*64)
	}
	if n := unsafe.Sizeof(sideState{}); n != 104 {
		t.Errorf("sideState is %d bytes, want 104", n)
	}
}
