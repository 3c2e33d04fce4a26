package writer

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// maxGroups is the number of commit groups: the one being written and up to
// maxGroups-1 whose fdatasync is in flight while the write goroutine goes on
// writing the next. While all are taken the group being written grows
// past SyncEvery and SyncBytes until one comes back: syncs that take longer
// make groups larger instead of stopping the writes.
const maxGroups = 4

// group is one group commit: the blocks written one after another and made
// durable by one fdatasync. The write goroutine owns it, except while the
// syncer holds it (from endGroup to finish).
type group struct {
	pending []pend
	bytes   int64     // record bytes written in it
	since   time.Time // when its first block was written
	resumed bool      // holds a block written since the disk filled

	// Set by endGroup for the syncer.
	f    *os.File
	path string
	seg  uint32
	end  int64 // segment size once it is written

	writes sync.WaitGroup // its direct writes in flight
	mu     sync.Mutex
	err    error // its first failed write, or its failed sync
}

func (g *group) setErr(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.mu.Unlock()
}

// open returns the group being written.
func (w *Writer) open() *group { return w.groups[w.gOpen] }

// endGroup hands the group being written, if it has blocks, to the syncer
// (with O_DIRECT after sending what the staging buffers hold of it to be
// written) and starts the next. When every other group is in flight it
// does nothing: the group goes on growing until finish frees one.
func (w *Writer) endGroup() {
	g := w.open()
	if len(g.pending) == 0 || w.inflight == maxGroups-1 {
		return
	}
	if w.direct {
		t0 := time.Now()
		w.dio.endGroup(g)
		w.st.writeNanos.Add(uint64(time.Since(t0)))
	}
	g.f, g.path, g.seg, g.end = w.f, w.path, w.seg, w.size
	w.syncQ <- g // room for every group: never waits
	w.inflight++
	w.gOpen = (w.gOpen + 1) % maxGroups
}

// due says whether the group being written should end: it is SyncEvery
// old or holds SyncBytes.
func (w *Writer) due() bool {
	g := w.open()
	return len(g.pending) > 0 && (g.bytes >= w.opts.SyncBytes || time.Since(g.since) >= w.opts.SyncEvery)
}

// drain ends the group being written and finishes every group in flight:
// afterwards everything written is committed or lost.
func (w *Writer) drain() {
	if w.inflight == maxGroups-1 {
		w.finish(<-w.resultQ)
	}
	w.endGroup()
	for w.inflight > 0 {
		w.finish(<-w.resultQ)
	}
}

// syncLoop is the syncer: for each group, in order, it waits for the
// group's direct writes and fdatasyncs its segment, while the write
// goroutine writes the next group.
func (w *Writer) syncLoop() {
	defer close(w.resultQ)
	for g := range w.syncQ {
		g.writes.Wait()
		if g.err == nil {
			t0 := time.Now()
			if err := w.ops.sync(g.f); err != nil {
				g.err = fmt.Errorf("sync segment %q: %w", g.path, err)
			}
			d := uint64(time.Since(t0))
			w.st.fsyncs.Add(1)
			w.st.fsyncNanos.Add(d)
			if d > w.st.fsyncMax.Load() {
				w.st.fsyncMax.Store(d)
			}
		}
		w.resultQ <- g
	}
}

// finish completes the oldest group in flight once the syncer is done with
// it: it moves the commit marker to the group's end, calls the hook for each
// block and releases it. If a write or the sync failed, finish gives up the
// segment instead (failSegment).
func (w *Writer) finish(g *group) {
	w.inflight--
	if g.err != nil {
		w.failSegment(g)
		return
	}
	w.synced = g.end
	if g.resumed {
		w.spaceBack()
	}
	if err := w.publish(g.seg, g.end); err != nil {
		w.st.writeErrors.Add(1)
		w.log.Error("writer: commit marker not updated: live readers will not see new blocks", "err", err)
	}
	w.syncMarker(false)
	hook := w.opts.CommitHook
	for i := range g.pending {
		p := &g.pending[i]
		if hook != nil {
			m := p.meta
			m.Arrived = p.b.Arrived
			hook(m, &p.b.Summary)
		}
		w.st.blocks.Add(1)
		w.st.packets.Add(uint64(p.meta.Count))
		w.st.wire.Add(p.meta.WireBytes)
		w.st.raw.Add(uint64(p.meta.RawLen))
		w.st.stored.Add(uint64(p.meta.StoredLen) + blockHeaderLen + crcSize)
		p.b.Release()
		*p = pend{}
	}
	g.reset()
}

func (g *group) reset() {
	g.pending, g.bytes, g.since, g.resumed = g.pending[:0], 0, time.Time{}, false
	g.f, g.err = nil, nil
}

// failSegment handles a group whose write or sync failed. After a failed
// fsync the page cache can no longer be trusted (the kernel may have
// dropped the dirty pages); after a failed direct write the group has a
// hole. Either way its blocks are lost, and so are those written after
// them (the groups still in flight and the one being written): the segment
// is cut back to the last good sync, so no reader or later recovery takes
// them for committed, and given up.
func (w *Writer) failSegment(g *group) {
	w.st.writeErrors.Add(1)
	err := g.err
	w.loseGroup(g, err)
	for w.inflight > 0 {
		w.inflight--
		w.loseGroup(<-w.resultQ, err)
	}
	o := w.open()
	o.writes.Wait() // its direct writes, before the cut
	w.loseGroup(o, err)
	if terr := w.f.Truncate(w.synced); terr != nil {
		w.log.Error("writer: cannot cut uncommitted blocks off", "path", w.path, "offset", w.synced, "err", terr)
	}
	w.closeSegment()
}

func (w *Writer) loseGroup(g *group, err error) {
	for i := range g.pending {
		w.lose(g.pending[i].b, "blocks not committed", err)
		g.pending[i] = pend{}
	}
	g.reset()
}
