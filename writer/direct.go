package writer

import (
	"errors"
	"fmt"
	"os"
	"sync"
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

// dioJob is one direct write of a full staging buffer: b (a part of buf at
// file offset off). buf goes back to the free list once it is written.
type dioJob struct {
	f   *os.File
	buf []byte
	b   []byte
	off int64
}

// directIO is the O_DIRECT path of the write goroutine. It copies each
// sealed record into an aligned staging buffer that covers an aligned range
// of the segment. A full buffer goes to one of WritesInFlight goroutines
// that pwrite it while the write goroutine fills the next, so several writes
// are in flight on disjoint ranges. At a group commit (flush) the part of
// the current buffer not yet written goes out up to the next aligned
// boundary, zero-padded, and flush waits for every write in flight: only
// then does the caller fdatasync. The padded page is written again, with
// the same committed bytes and more after them, when the next group
// commits; the commit marker names the exact committed size, so the zeros
// past it are an uncommitted tail that recovery cuts and closing a segment
// truncates.
//
// Only the write goroutine calls its methods; the staging buffers are never
// written while a write of them is in flight (a buffer returns to free
// when its write returned). Nothing allocates in steady state.
type directIO struct {
	writeAt func(f *os.File, b []byte, off int64) (int, error)
	free    chan []byte // staging buffers not in flight
	jobs    chan dioJob
	workers sync.WaitGroup
	flying  sync.WaitGroup // jobs not yet done

	mu  sync.Mutex
	err error // first failed write since the last flush

	f       *os.File
	cur     []byte // staging buffer being filled: segment bytes [curOff, curOff+dioChunk)
	curOff  int64
	fill    int // cur[:fill] holds the segment's bytes
	flushed int // cur[:flushed] is on disk already (a multiple of dioAlign)
}

func newDirectIO(inFlight int, writeAt func(*os.File, []byte, int64) (int, error)) *directIO {
	d := &directIO{
		writeAt: writeAt,
		free:    make(chan []byte, inFlight+1),
		jobs:    make(chan dioJob, inFlight),
	}
	for range inFlight + 1 {
		d.free <- alignedBuf(dioChunk)
	}
	d.cur = <-d.free
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
			d.mu.Lock()
			if d.err == nil {
				d.err = fmt.Errorf("write segment %q at %d: %w", j.f.Name(), j.off, err)
			}
			d.mu.Unlock()
		}
		d.free <- j.buf
		d.flying.Done()
	}
}

// start begins a new segment f whose first bytes (its header) are hdr,
// already on disk through the page cache. They are written again, with the
// first blocks, by the first direct write.
func (d *directIO) start(f *os.File, hdr []byte) {
	d.f, d.curOff, d.flushed = f, 0, 0
	d.fill = copy(d.cur, hdr)
}

// append copies rec to the end of the segment, sending every staging buffer
// it fills to be written. It waits only for a free buffer, that is for the
// disk.
func (d *directIO) append(rec []byte) {
	for len(rec) > 0 {
		n := copy(d.cur[d.fill:], rec)
		d.fill += n
		rec = rec[n:]
		if d.fill < len(d.cur) {
			return
		}
		d.flying.Add(1)
		d.jobs <- dioJob{f: d.f, buf: d.cur, b: d.cur[d.flushed:], off: d.curOff + int64(d.flushed)}
		d.curOff += int64(len(d.cur))
		d.cur, d.fill, d.flushed = <-d.free, 0, 0
	}
}

// flush writes what is not on disk yet, the last page zero-padded, and
// waits for every write in flight. It returns the first write that failed
// since the last flush.
func (d *directIO) flush() error {
	var err error
	if d.fill > d.flushed {
		end := alignUp(d.fill)
		clear(d.cur[d.fill:end])
		if _, werr := d.writeAt(d.f, d.cur[d.flushed:end], d.curOff+int64(d.flushed)); werr != nil {
			err = fmt.Errorf("write segment %q at %d: %w", d.f.Name(), d.curOff+int64(d.flushed), werr)
		}
		d.flushed = alignDown(d.fill)
	}
	d.flying.Wait()
	d.mu.Lock()
	if d.err != nil {
		err = errors.Join(d.err, err) // errors.Join drops a nil err
		d.err = nil
	}
	d.mu.Unlock()
	return err
}

// close stops the write goroutines. Callers flush first.
func (d *directIO) close() {
	close(d.jobs)
	d.workers.Wait()
}
