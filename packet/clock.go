package packet

import "time"

// ClockStep is how far a packet's time may lie behind the newest packet
// time seen and still count as a reordering (queues, interfaces, a capture
// host's jitter) rather than a clock step. A larger step backwards is a
// step: see Clock.
const ClockStep = int64(time.Second)

// Clock turns packet times, which can go backwards (files imported out of
// time order, a file concatenated with mergecap -a, a capture host's clock
// stepped back), into a step-free time for timeouts: flow idleness, and the
// analytics' waits. It follows the packets' time forwards (a forward step
// is indistinguishable from silence, and counts as elapsed time); a packet
// more than ClockStep older than the newest one seen does not rewind it:
// the clock resumes from where it was, so the flows of the new timeline do
// not look idle for years, and the flows that spanned the step do not end.
// Smaller reorderings are left as they are (the clock is the newest time
// seen), so two interfaces a little apart do not make it run fast.
//
// The zero Clock is ready. Not safe for concurrent use: each worker and
// each analyzer keeps its own.
type Clock struct {
	off int64 // added to packet times: the sum of the steps back
	now int64 // the newest step-free time
}

// At returns the step-free time of a packet stamped ts, the packets being
// given in the order they arrived. Only differences of its values mean
// anything: a first packet before 1970 is a step back from 0.
func (c *Clock) At(ts int64) int64 {
	v := ts + c.off
	if v >= c.now {
		c.now = v
		return v
	}
	if c.now-v > ClockStep {
		c.off += c.now - v // a step back: time resumes from now
		return c.now
	}
	return v
}

// Now returns the newest step-free time (0 before the first packet).
func (c *Clock) Now() int64 { return c.now }

// Offset returns what At adds to packet times now (0 until time first
// stepped back).
func (c *Clock) Offset() int64 { return c.off }
