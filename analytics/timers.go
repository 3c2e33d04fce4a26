package analytics

import "math"

// The timers: waits for the client's ACK of a response and for holes to
// fill, judged on the step-free packet clock and run by Packet when due.

// runTimers runs the timers of the connections waiting on one, before the
// current packet (a.vt): a packet later than a wait's end finds it over.
func (a *Analyzer) runTimers() {
	wait := int64(a.cfg.AckWait)
	due := int64(math.MaxInt64)
	keep := a.attn[:0]
	for _, i := range a.attn {
		c := a.conns.at(i)
		if c.idx != i || !c.attn {
			continue
		}
		a.timers(c)
		if c.attn = len(c.waitAck) > 0 || c.s[0].buffered() || c.s[1].buffered(); c.attn {
			keep = append(keep, i)
			if len(c.waitAck) > 0 {
				due = min(due, c.waitAck[0].at+wait)
			}
			for s := range c.s {
				if c.s[s].buffered() {
					due = min(due, c.s[s].ooo[0].vt+wait)
				}
			}
		}
	}
	a.attn, a.due = keep, due
}

// wantAttn puts c on the timer list for a wait that began at at (step-free).
func (a *Analyzer) wantAttn(c *conn, at int64) {
	a.due = min(a.due, at+int64(a.cfg.AckWait))
	if !c.attn {
		c.attn = true
		a.attn = append(a.attn, c.idx)
	}
}

// timers emits exchanges that waited too long for the client's ACK and
// declares holes that waited too long to be filled. The waits are judged
// on the step-free clock, so a clock stepped back (or a file older than the
// one before it) neither ends them at once nor holds them for years; a
// hole declared here is filled at the latest packet's own time.
func (a *Analyzer) timers(c *conn) {
	wait := int64(a.cfg.AckWait)
	now := a.vt
	for len(c.waitAck) > 0 && now-c.waitAck[0].at > wait {
		x := c.waitAck[0]
		c.waitAck = popFront(c.waitAck)
		a.emitExchange(c, x.req, x.resp, 0, PktRef{})
	}
	for s := Client; s <= Server; s++ {
		ss := &c.s[s]
		if ss.buffered() && now-ss.ooo[0].vt > wait {
			a.fillHole(c, s, ss.ooo[0].seq, a.rawTS, c.pkts)
		}
	}
}

// stepFree returns the step-free time of ts, a time of the current
// packet's connection no later than the current packet: ts on the clock's
// current offset, but never after the current packet (ts may predate a
// step back).
func (a *Analyzer) stepFree(ts int64) int64 {
	return min(ts+a.clk.Offset(), a.vt)
}
