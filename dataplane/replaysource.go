//go:build cgo && !nodpdk

package dataplane

import (
	"io"
	"time"

	"tapvault/pcap"
)

// This file is pure Go, but only a DPDK build has replays to end.

// replayPlan is what a net_pcap port's rx_pcap files hold, read before the
// port starts: it sizes the mbufs and tells each replay queue when it ends.
type replayPlan struct {
	counts   []pcap.Counts // per queue (the i-th rx_pcap file)
	errs     []error       // per queue: the file could not be counted
	infinite bool          // infinite_rx=1: the PMD loops its file; it never ends
}

// planReplay counts the rx_pcap files of a net_pcap vdev's devargs kv;
// ok=false (no such --vdev) gives an empty plan.
func planReplay(kv [][2]string, ok bool) replayPlan {
	var pl replayPlan
	if !ok {
		return pl
	}
	for _, a := range kv {
		if a[0] == "infinite_rx" && a[1] != "0" {
			pl.infinite = true
		}
	}
	for _, f := range pcapRxFiles(kv) {
		ci, err := countCapture(f)
		pl.counts = append(pl.counts, ci)
		pl.errs = append(pl.errs, err)
	}
	return pl
}

// dataRoom is the mbuf data room that holds the largest packet of every
// counted file whole, headroom included; 0 when nothing was counted.
func (pl *replayPlan) dataRoom(headroom int) int {
	room := 0
	for i, ci := range pl.counts {
		if pl.errs[i] == nil {
			room = max(room, int(ci.MaxCapLen)+headroom)
		}
	}
	return room
}

// mbufs is how many mbufs nrx queues need at least: with infinite_rx the
// PMD preloads every packet of its file into mbufs it keeps, and needs
// rings' worth more to deliver. 0 when the replay is not infinite.
func (pl *replayPlan) mbufs(nrx int) int {
	n := 0
	if !pl.infinite {
		return n
	}
	for i, ci := range pl.counts {
		if pl.errs[i] == nil {
			n = max(n, int(ci.Packets)*nrx+DefaultMbufsPerQueue*nrx)
		}
	}
	return n
}

// queues wraps each queue that replays a file (not infinitely) in a
// replayQueue; the others get nil. idle <= 0 means DefaultReplayIdle.
func (pl *replayPlan) queues(qs []*RxQueue, idle time.Duration) []*replayQueue {
	if idle <= 0 {
		idle = DefaultReplayIdle
	}
	rs := make([]*replayQueue, len(qs))
	if pl.infinite {
		return rs
	}
	for i, q := range qs {
		if i >= len(pl.counts) {
			break
		}
		r := &replayQueue{q: q, expect: -1, idle: idle}
		if pl.errs[i] == nil {
			r.expect = pl.counts[i].Packets
		}
		rs[i] = r
	}
	return rs
}

// replayQueue is the Source of an RX queue of a net_pcap replay. A
// net_pcap queue never says "end of file", so replayQueue decides it: on an
// empty poll, the replay is over once every packet counted in the file has
// arrived, or after nothing for idle (five times that before the first
// packet) while the port's ipackets stood still. The end is sticky.
type replayQueue struct {
	q        *RxQueue
	expect   int64 // packets counted in the file; < 0 when it could not be counted
	idle     time.Duration
	idleFrom time.Time // when the queue last turned empty; zero while packets flow
	lastIPkt uint64
}

var _ Source = (*replayQueue)(nil)

// Recv receives the next burst from the queue (see RxQueue.Recv), and
// io.EOF once the replay is over.
func (r *replayQueue) Recv(b *Burst) (int, error) {
	n, err := r.q.Recv(b)
	if err != nil {
		return n, err
	}
	if n > 0 {
		r.idleFrom = time.Time{}
		return n, nil
	}
	return 0, r.end()
}

// end decides, on an empty poll, whether the replay is over.
func (r *replayQueue) end() error {
	got := int64(r.q.Stats().Packets)
	if r.expect >= 0 && got >= r.expect {
		return io.EOF
	}
	now := time.Now()
	if r.idleFrom.IsZero() {
		st, err := r.q.Port().Stats()
		if err != nil {
			return err
		}
		r.idleFrom, r.lastIPkt = now, st.IPackets
		return nil
	}
	limit := r.idle
	if got == 0 {
		limit *= 5
	}
	if now.Sub(r.idleFrom) < limit {
		return nil
	}
	st, err := r.q.Port().Stats()
	if err != nil {
		return err
	}
	if st.IPackets != r.lastIPkt {
		r.lastIPkt = st.IPackets
		r.idleFrom = now
		return nil
	}
	return io.EOF
}

// Close closes the queue.
func (r *replayQueue) Close() error { return r.q.Close() }
