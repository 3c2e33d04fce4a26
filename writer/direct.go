package writer

import (
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"
)

// IOMode selects how the write goroutine writes segments.
type IOMode int

const (
	// IOBuffered writes through the page cache: one pwrite per record,
	// and the group's fdatasync writes the dirty pages back. It is the
	// default: on the only machine measured (a VM's virtio disk, ext4) it
	// wrote 1 GiB at a median 1051 MB/s against 564 for IODirect and 652
	// for dd oflag=direct conv=fdatasync (docs/PERFORMANCE.md, issue 14).
	IOBuffered IOMode = iota
	// IOAuto writes with O_DIRECT where the store's filesystem takes it
	// (Open probes it) and falls back to buffered writes where it does not
	// (filesystems without direct I/O refuse it with EINVAL).
	IOAuto
	// IODirect writes with O_DIRECT; Open fails where the filesystem
	// refuses it.
	IODirect
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
	for _, m := range []IOMode{IOBuffered, IOAuto, IODirect} {
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
	// 4 MiB with 8 in flight wrote 15 to 25 % faster than 1 MiB with 4
	// (BenchmarkWriterDisk, docs/PERFORMANCE.md): 36 MiB of buffers.
	dioChunk = 4 << 20
	// DefaultWritesInFlight is the default of Options.WritesInFlight.
	DefaultWritesInFlight = 8
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

// dioJob is one direct write of b at file offset off, for group g: a part
// of staging buffer s, or (s nil) the copy of a group's last page.
type dioJob struct {
	f   *os.File
	g   *group
	s   *stage
	b   []byte
	off int64
}

// directIO is the O_DIRECT path of the write goroutine. It copies each
// sealed record into an aligned staging buffer that covers an aligned range
// of the segment. A full buffer goes to one of WritesInFlight goroutines
// that pwrite it while the write goroutine fills the next, so several writes
// are in flight on disjoint ranges. When a group commit ends (endGroup) the
// whole pages of the current buffer not yet written go out the same way,
// and so does a copy of the last, partial page, zero-padded; the syncer
// waits for the group's writes, then fdatasyncs, while the write goroutine
// goes on with the next group. The padded page is written again, with the
// same committed bytes and more after them, by the next write that covers
// it, which is never sent before the padded one returned: two writes of
// one page are never in flight together. The commit marker names the exact
// committed size, so the zeros past it are an uncommitted tail that
// recovery cuts and closing a segment truncates.
//
// Only the write goroutine calls its methods. Bytes of a staging buffer
// are never changed while a write of them is in flight: a group's last
// write covers only whole pages the records after it do not touch, and a
// buffer is reused only when every write of it returned. Nothing allocates
// in steady state.
type directIO struct {
	writeAt   func(f *os.File, b []byte, off int64) (int, error)
	fallocate func(f *os.File, off, n int64) error // nil: no preallocation
	step      int64                                // bytes preallocated at a time
	free      chan *stage                          // staging buffers nobody holds
	jobs      chan dioJob
	workers   sync.WaitGroup

	f       *os.File
	cur     *stage // staging buffer being filled: segment bytes [curOff, curOff+dioChunk)
	curOff  int64
	fill    int   // cur.b[:fill] holds the segment's bytes
	flushed int   // cur.b[:flushed] is written or being written (a multiple of dioAlign)
	alloc   int64 // the segment is preallocated up to here

	page     []byte         // the last group's padded last page, being written
	pageBusy sync.WaitGroup // its write
}

func newDirectIO(inFlight int, writeAt func(*os.File, []byte, int64) (int, error)) *directIO {
	d := &directIO{
		writeAt: writeAt,
		free:    make(chan *stage, inFlight+1),
		jobs:    make(chan dioJob, inFlight),
		page:    alignedBuf(dioAlign),
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
		if _, err := d.writeAt(j.f, j.b, j.off); err != nil {
			j.g.setErr(fmt.Errorf("write segment %q at %d: %w", j.f.Name(), j.off, err))
		}
		j.g.writes.Done()
		if j.s != nil {
			d.unref(j.s)
		} else {
			d.pageBusy.Done()
		}
	}
}

func (d *directIO) unref(s *stage) {
	if s.refs.Add(-1) == 0 {
		d.free <- s
	}
}

// preallocate makes sure the segment is allocated up to end, in steps, so
// that direct writes do not extend the file: ext4 serialises extending
// direct writes and journals each size change (docs/PERFORMANCE.md has the
// measurements). Where fallocate fails (unsupported, or no space) the
// segment goes on without: the writes themselves then find out.
func (d *directIO) preallocate(end int64) {
	if end <= d.alloc || d.fallocate == nil {
		return
	}
	to := alignUp64(max(end, d.alloc&^(dioAlign-1)+d.step))
	if err := d.fallocate(d.f, d.alloc, to-d.alloc); err != nil {
		d.alloc = math.MaxInt64
		return
	}
	d.alloc = to
}

func alignUp64(n int64) int64 { return (n + dioAlign - 1) &^ (dioAlign - 1) }

// send sends cur.b[d.flushed:hi] to be written for group g.
// It starts at the last group's padded page, which must be written first.
func (d *directIO) send(g *group, hi int) {
	d.preallocate(d.curOff + int64(hi))
	d.pageBusy.Wait()
	d.cur.refs.Add(1)
	g.writes.Add(1)
	d.jobs <- dioJob{f: d.f, g: g, s: d.cur, b: d.cur.b[d.flushed:hi], off: d.curOff + int64(d.flushed)}
	d.flushed = hi
}

// start begins a new segment f whose first bytes (its header) are hdr,
// already on disk through the page cache. They are written again, with the
// first blocks, by the first direct write. Every write of the last segment
// has returned.
func (d *directIO) start(f *os.File, hdr []byte) {
	d.f, d.curOff, d.flushed, d.alloc = f, 0, 0, int64(len(hdr))
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
// and a zero-padded copy of its partial last page: the records after it
// go on filling that page in the staging buffer.
func (d *directIO) endGroup(g *group) {
	if whole := alignDown(d.fill); whole > d.flushed {
		d.send(g, whole)
	}
	if d.fill > d.flushed {
		off := d.curOff + int64(d.flushed)
		d.preallocate(off + dioAlign)
		d.pageBusy.Wait() // the page buffer, and the last write of this page
		n := copy(d.page, d.cur.b[d.flushed:d.fill])
		clear(d.page[n:])
		d.pageBusy.Add(1)
		g.writes.Add(1)
		d.jobs <- dioJob{f: d.f, g: g, b: d.page, off: off}
	}
}

// close stops the write goroutines. Every write has returned.
func (d *directIO) close() {
	close(d.jobs)
	d.workers.Wait()
}
