package packet

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	s := int64(time.Second)
	for _, tc := range []struct {
		name string
		ts   []int64
		want []int64
	}{
		{"in order", []int64{10 * s, 11 * s, 11 * s, 20 * s}, []int64{10 * s, 11 * s, 11 * s, 20 * s}},
		// A reordering within ClockStep is left as it is.
		{"reordered", []int64{10 * s, 10*s - s/2, 10*s + 1}, []int64{10 * s, 10*s - s/2, 10*s + 1}},
		// An hour back: time resumes from 11 s and runs on from there.
		{"step back", []int64{10 * s, 11 * s, 11*s - 3600*s, 11*s - 3599*s, 12 * s}, []int64{10 * s, 11 * s, 11 * s, 12 * s, 3612 * s}},
		// Forward steps count as elapsed time.
		{"step forward", []int64{10 * s, 3610 * s}, []int64{10 * s, 3610 * s}},
		// Two steps back, and a packet from before the second step that
		// is now a small reordering of the new timeline.
		{"two steps", []int64{100 * s, 50 * s, 51 * s, 10 * s, 10*s - s/2}, []int64{100 * s, 100 * s, 101 * s, 101 * s, 101*s - s/2}},
	} {
		var c Clock
		for i, ts := range tc.ts {
			if got := c.At(ts); got != tc.want[i] {
				t.Errorf("%s: packet %d (ts %d): got %d, want %d", tc.name, i, ts, got, tc.want[i])
			}
		}
	}
}
