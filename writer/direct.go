package writer

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"
)

// IOMode selects how the write goroutine writes segments.
type IOMode int

const (
	// IOAuto writes with O_DIRECT where the store's filesystem takes it
	// (Open probes it) and falls back to buffered writes where it does not
	// (tmpfs refuses O_DIRECT with EINVAL).
	IOAuto IOMode = iota
	// IODirect writes with O_DIRECT; Open fails where the filesystem
	// refuses it.
	IODirect
	// IOBuffered writes through the page cache: one pwrite per record,
	// and fdatasync writes the dirty pages back.
	IOBuffered
)

func (m IOMode) String() string {
	switch m {
	case IOAuto:
		return "auto"
	case IODirect:
		return "direct"
	case IOBuffered:
		return "buffered"
	}
	return fmt.Sprintf("IOMode(%d)", int(m))
}

// ParseIOMode parses the name String gives.
func ParseIOMode(s string) (IOMode, error) {
	for _, m := range []IOMode{IOAuto, IODirect, IOBuffered} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("I/O mode %q: want auto, direct or buffered", s)
}

const (
	// dioAlign is the alignment of O_DIRECT buffers, file offsets and
	// lengths: the page size, which is a multiple of every logical block
	// size Linux supports for direct I/O.
	dioAlign = 4096
	// dioChunk is the size of one direct write of a full staging buffer.
	// 512 KiB to 4 MiB measured alike here (docs/PERFORMANCE.md).
	dioChunk = 1 << 20
	// DefaultWritesInFlight is the default of Options.WritesInFlight.
	DefaultWritesInFlight = 4
)

// alignedBuf returns n bytes (n a multiple of dioAlign) whose first byte is
// dioAlign-aligned: Go has no aligned allocation, so it over-allocates and
// slices.
func alignedBuf(n int) []byte {
	b := make([]byte, n+dioAlign)
	skip := (dioAlign - int(uintptr(unsafe.Pointer(unsafe.SliceData(b)))%dioAlign)) % dioAlign
	return b[skip : skip+n : skip+n]
}

func alignUp(n int) int   { return (n + dioAlign - 1) &^ (dioAlign - 1) }
func alignDown(n int) int { return n &^ (dioAlign - 1) }

// stage is an aligned staging buffer. refs counts its holders: the write
// goroutine while it fills it, and each write of a part of it in flight;
// it goes back to the free list when the last lets go.
type stage struct {
	b    []byte
	refs atomic.Int32
}

// dioJob is one direct write: s.b[lo:hi] at file offset off, for group g.
type dioJob struct {
	f      *os.File
	g      *group
	s      *stage
	lo, hi int
	off    int64
}

// directIO is the O_DIRECT path of the write goroutine. It copies each
// sealed record into an aligned staging buffer that covers an aligned range
// of the segment. A full buffer goes to one of WritesInFlight goroutines
// that pwrite it while the write goroutine fills the next, so several writes
// are in flight on disjoint ranges. When a group commit ends (endGroup) the
// whole pages of the current buffer not yet written go out the same way,
// and the last, partial page is written at once, zero-padded; the syncer
// waits for the group's writes, then fdatasyncs, while the write goroutine
// goes on with the next group. The padded page is written again, with the
// same committed bytes and more after them, by the next write that covers
// it, which is never sent before that write returned: two writes of one
// page are never in flight together. The commit marker names the exact
// committed size, so the zeros past it are an uncommitted tail that
// recovery cuts and closing a segment truncates.
//
// Only the write goroutine calls its methods. Bytes of a staging buffer
// are never changed while a write of them is in flight: a group's last
// write covers only whole pages the records after it do not touch, and a
// buffer is reused only when every write of it returned. Nothing allocates
// in steady state.
type directIO struct {
	writeAt func(f *os.File, b []byte, off int64) (int, error)
	free    chan *stage // staging buffers nobody holds
	jobs    chan dioJob
	workers sync.WaitGroup

	f       *os.File
	cur     *stage // staging buffer being filled: segment bytes [curOff, curOff+dioChunk)
	curOff  int64
	fill    int // cur.b[:fill] holds the segment's bytes
	flushed int // cur.b[:flushed] is written or being written (a multiple of dioAlign)
}

func newDirectIO(inFlight int, writeAt func(*os.File, []byte, int64) (int, error)) *directIO {
	d := &directIO{
		writeAt: writeAt,
		free:    make(chan *stage, inFlight+1),
		jobs:    make(chan dioJob, inFlight),
	}
	for range inFlight + 1 {
		d.free <- &stage{b: alignedBuf(dioChunk)}
	}
	d.cur = <-d.free
	d.cur.refs.Store(1)
	d.workers.Add(inFlight)
	for range inFlight {
		go d.run()
	}
	return d
}

func (d *directIO) run() {
	defer d.workers.Done()
	for j := range d.jobs {
		if _, err := d.writeAt(j.f, j.s.b[j.lo:j.hi], j.off); err != nil {
			j.g.setErr(fmt.Errorf("write segment %q at %d: %w", j.f.Name(), j.off, err))
		}
		j.g.writes.Done()
		d.unref(j.s)
	}
}

func (d *directIO) unref(s *stage) {
	if s.refs.Add(-1) == 0 {
		d.free <- s
	}
}

// send sends cur.b[d.flushed:hi] to be written for group g.
func (d *directIO) send(g *group, hi int) {
	d.cur.refs.Add(1)
	g.writes.Add(1)
	d.jobs <- dioJob{f: d.f, g: g, s: d.cur, lo: d.flushed, hi: hi, off: d.curOff + int64(d.flushed)}
	d.flushed = hi
}

// start begins a new segment f whose first bytes (its header) are hdr,
// already on disk through the page cache. They are written again, with the
// first blocks, by the first direct write. Every write of the last segment
// has returned.
func (d *directIO) start(f *os.File, hdr []byte) {
	d.f, d.curOff, d.flushed = f, 0, 0
	d.fill = copy(d.cur.b, hdr)
}

// append copies rec to the end of the segment, sending every staging buffer
// it fills to be written for group g. It waits only for a free buffer, that
// is for the disk.
func (d *directIO) append(g *group, rec []byte) {
	for len(rec) > 0 {
		n := copy(d.cur.b[d.fill:], rec)
		d.fill += n
		rec = rec[n:]
		if d.fill < len(d.cur.b) {
			return
		}
		d.send(g, d.fill)
		d.unref(d.cur)
		d.cur, d.curOff, d.fill, d.flushed = <-d.free, d.curOff+int64(len(d.cur.b)), 0, 0
		d.cur.refs.Store(1)
	}
}

// endGroup sends the whole pages of group g not yet sent to be written,
// and writes the partial last page now, zero-padded. A failure is g's.
func (d *directIO) endGroup(g *group) {
	if whole := alignDown(d.fill); whole > d.flushed {
		d.send(g, whole)
	}
	if d.fill > d.flushed {
		end := alignUp(d.fill)
		clear(d.cur.b[d.fill:end])
		off := d.curOff + int64(d.flushed)
		if _, err := d.writeAt(d.f, d.cur.b[d.flushed:end], off); err != nil {
			g.setErr(fmt.Errorf("write segment %q at %d: %w", d.f.Name(), off, err))
		}
	}
}

// close stops the write goroutines. Every write has returned.
func (d *directIO) close() {
	close(d.jobs)
	d.workers.Wait()
}
