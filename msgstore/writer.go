package msgstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"tapvault/analytics"
	"tapvault/internal/durable"
)

// Options configure a Writer. Zero values take the defaults.
type Options struct {
	FrameRecords int           // seal a frame at this many records (default 2048)
	FrameBytes   int           // or at this many encoded (raw) bytes (default 1 MiB, at most 16 MiB)
	FileBytes    int64         // start a new file when the next frame would pass this size (default 64 MiB)
	SyncEvery    time.Duration // fsync at most this often when frames are written (default 1 s; negative: after every frame); always on Sync and Close
	Logger       *slog.Logger  // default slog.Default()

	// Reserve keeps this many bytes of the store's filesystem free: a frame
	// that would leave less is not written, its records are dropped and
	// counted (ReserveDropped), as the packet writer drops blocks below its
	// reserve. It protects the index (Badger cannot fail cleanly on a full
	// filesystem) whoever fills the disk. 0: none (a full disk only fails
	// the write, which is cut back).
	Reserve int64
	// Avail returns the bytes available on dir's filesystem, for Reserve;
	// nil means statfs(2). It is asked at most every 250 ms.
	Avail func(dir string) (int64, error)

	// write and truncate replace the os.File methods in tests (disk-full
	// simulation).
	write    func(f *os.File, b []byte) (int, error)
	truncate func(f *os.File, size int64) error
}

func (o *Options) setDefaults() {
	if o.FrameRecords <= 0 {
		o.FrameRecords = 2048
	}
	if o.FrameBytes <= 0 {
		o.FrameBytes = 1 << 20
	}
	o.FrameBytes = min(o.FrameBytes, maxFrameBytes)
	if o.FileBytes <= 0 {
		o.FileBytes = 64 << 20
	}
	if o.SyncEvery == 0 {
		o.SyncEvery = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.write == nil {
		o.write = (*os.File).Write
	}
	if o.truncate == nil {
		o.truncate = (*os.File).Truncate
	}
	if o.Avail == nil {
		o.Avail = availBytes
	}
}

// ErrReserve is why a frame is not written while the free space is below
// Options.Reserve (it matches syscall.ENOSPC too).
var ErrReserve = fmt.Errorf("free space below the message store's reserve: %w", syscall.ENOSPC)

// availEvery is how often the free space is asked for Reserve, and
// availCheckBytes after how many bytes written at most: with a time alone, a
// fast disk took a quarter second of frames past the reserve.
const (
	availEvery      = 250 * time.Millisecond
	availCheckBytes = 256 << 10
)

// WriterStats are a Writer's counters since OpenWriter.
type WriterStats struct {
	Records     uint64 // records written in frames
	Frames      uint64 // frames written
	Bytes       uint64 // bytes written to files
	Files       uint64 // files created
	WriteErrors uint64 // failed frame writes, fsyncs and file creations
	Dropped     uint64 // records lost with a frame that could not be written (ReserveDropped included)
	Rejected    uint64 // records Append refused (beyond the codec limits)
	// ReserveDropped are the records of frames not written because the
	// free space was below Options.Reserve.
	ReserveDropped uint64
	// Recovered counts files of earlier writers that OpenWriter sealed
	// (cutting a torn tail) or removed (empty).
	Recovered uint64
}

// Writer appends message records to a store's messages directory. Its
// methods other than Stats must be called from one goroutine (the capture's
// analytics goroutine); Stats may be called from any.
//
// Records become readable when their frame is written: when it fills
// (FrameRecords or FrameBytes), on Flush, Sync and Close. They are durable
// after the next fsync (SyncEvery, Sync, Close).
type Writer struct {
	dir  string // DIR/messages
	opts Options
	log  *slog.Logger
	enc  *zstd.Encoder

	f        *os.File // current file; nil after a failed roll until the next frame
	path     string
	seq      uint64
	size     int64 // bytes of complete frames in f
	suspect  bool  // f may end in a partial frame: the next frame goes to a new file
	dirty    bool  // frames written since the last fsync
	lastSync time.Time
	closed   bool

	availAt    time.Time   // last free-space check (Reserve)
	sinceAvail int64       // bytes written since that check
	low        bool        // the free space was below Reserve at that check
	rollReq    atomic.Bool // Roll: start a new file at the next frame

	// The open frames: one for exchanges, one for connection records
	// (frameKind), so a scan of either kind skips the other's frames
	// unread.
	open  [2]openFrame
	terms analytics.TermBuf
	out   []byte // the frame being sealed; reused
	rows  bool   // write version 1 frames (records as rows): tests of old stores

	records, frames, bytes, files, writeErrors, dropped, rejected, reserveDropped, recovered atomic.Uint64
}

// OpenWriter creates root/messages if needed and a new message file in it,
// numbered after the highest existing one. It never appends to an existing
// file, so a torn tail a crash left stays behind the frames before it.
func OpenWriter(root string, opts Options) (*Writer, error) {
	opts.setDefaults()
	w := &Writer{dir: messagesDir(root), opts: opts, log: opts.Logger, lastSync: time.Now()}
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create messages dir %q: %w", w.dir, err)
	}
	files, err := listFiles(w.dir)
	if err != nil {
		return nil, err
	}
	if len(files) > 0 {
		w.seq = files[len(files)-1].seq
	}
	w.recover(files)
	w.enc, err = zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), // the frame has its own CRC32C
		zstd.WithWindowSize(maxFrameBytes),
	)
	if err != nil {
		return nil, fmt.Errorf("create zstd encoder: %w", err)
	}
	if err := w.newFile(); err != nil {
		w.enc.Close()
		return nil, err
	}
	return w, nil
}

// newFile closes the current file (if any) and creates the next one.
func (w *Writer) newFile() error {
	if w.f != nil {
		if err := w.closeFile(); err != nil {
			w.log.Warn("msgstore: close message file", "path", w.path, "err", err)
		}
	}
	for tries := 0; ; tries++ {
		w.seq++
		path := filepath.Join(w.dir, fileName(w.seq))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		if errors.Is(err, fs.ErrExist) && tries < 100 {
			continue // another writer took it
		}
		if err != nil {
			w.seq-- // retry the same number next time
			return fmt.Errorf("create message file %q: %w", path, err)
		}
		if err := lockFile(f); err != nil {
			// Only a writer locks, and only a file it created (O_EXCL).
			w.log.Warn("msgstore: cannot lock the new message file", "path", path, "err", err)
		}
		w.f, w.path, w.size, w.suspect, w.dirty = f, path, 0, false, false
		w.files.Add(1)
		if err := durable.SyncDir(w.dir); err != nil {
			w.log.Warn("msgstore: sync messages dir", "dir", w.dir, "err", err)
		}
		return nil
	}
}

// closeFile syncs, seals and closes the current file. A file with no frame
// is removed instead. A file that may end in a partial frame (a failed write
// that could not be cut back, a failed fsync) is cut back to its last
// complete frame if it can be; one that cannot stays unsealed, so its tail
// reads as torn, not as damage.
func (w *Writer) closeFile() error {
	f := w.f
	w.f = nil
	var errs []error
	if w.size == 0 {
		f.Close()
		if err := os.Remove(w.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove empty message file %q: %w", w.path, err)
		}
		if err := durable.SyncDir(w.dir); err != nil {
			w.log.Warn("msgstore: sync messages dir", "dir", w.dir, "err", err)
		}
		return nil
	}
	if w.suspect {
		if err := w.opts.truncate(f, w.size); err == nil {
			w.suspect = false
			w.dirty = true
		}
	}
	if w.dirty && !w.suspect {
		if err := f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("sync message file %q: %w", w.path, err))
			w.suspect = true
		}
		w.dirty = false
	}
	if !w.suspect {
		if err := seal(f); err != nil {
			// Every frame is durable: the file only keeps the weaker
			// check of an unsealed one (a torn tail is a warning).
			w.log.Warn("msgstore: cannot seal a message file", "path", w.path, "err", err)
		}
	}
	if err := f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close message file %q: %w", w.path, err))
	}
	return errors.Join(errs...)
}

// sealedMode is the mode of a sealed message file: read-only. A file whose
// frames are all durable and complete is sealed; one still being written,
// or whose writer crashed, keeps mode 0600. So a reader tells a torn tail
// that a crash may leave (unsealed) from damage (sealed).
const sealedMode = 0o400

// seal makes f, whose data is durable, read-only, and makes that durable.
// The data is synced before the mode changes, so a sealed file never lacks
// data it had when sealed.
func seal(f *os.File) error {
	if err := f.Chmod(sealedMode); err != nil {
		return err
	}
	return f.Sync()
}

// isSealed reports whether a file of mode m is sealed.
func isSealed(m fs.FileMode) bool { return m.Perm()&0o200 == 0 }

// recover seals the files of earlier writers that are gone (no lock on the
// file): a torn tail a crash left is cut back to the last complete frame,
// the file synced and sealed; a file with no complete frame is removed.
// Files a live writer holds, and sealed files, are left alone. Failures are
// logged: readers cope with unsealed files.
func (w *Writer) recover(files []fileEntry) {
	removed := false
	for _, fe := range files {
		fi, err := os.Stat(fe.path)
		if err != nil || isSealed(fi.Mode()) {
			continue
		}
		f, err := os.OpenFile(fe.path, os.O_RDWR, 0)
		if err != nil {
			w.log.Warn("msgstore: cannot open an unsealed message file to recover it", "path", fe.path, "err", err)
			continue
		}
		if !tryLock(f) {
			f.Close() // a live writer's
			continue
		}
		end, err := completeEnd(f, fe.path)
		switch {
		case err != nil:
			w.log.Warn("msgstore: cannot recover an unsealed message file", "path", fe.path, "err", err)
		case end == 0:
			f.Close()
			if err := os.Remove(fe.path); err != nil {
				w.log.Warn("msgstore: cannot remove an empty message file", "path", fe.path, "err", err)
			} else {
				removed = true
				w.recovered.Add(1)
			}
			continue
		default:
			size, _ := f.Seek(0, io.SeekEnd)
			if size > end {
				if err := f.Truncate(end); err != nil {
					w.log.Warn("msgstore: cannot cut a torn tail", "path", fe.path, "err", err)
					break
				}
				w.log.Warn("msgstore: cut the torn tail a crash left", "path", fe.path, "offset", end, "bytes", size-end)
			}
			if err := f.Sync(); err != nil {
				w.log.Warn("msgstore: cannot sync a recovered message file", "path", fe.path, "err", err)
				break
			}
			if err := seal(f); err != nil {
				w.log.Warn("msgstore: cannot seal a recovered message file", "path", fe.path, "err", err)
				break
			}
			w.recovered.Add(1)
		}
		f.Close()
	}
	if removed {
		if err := durable.SyncDir(w.dir); err != nil {
			w.log.Warn("msgstore: sync messages dir", "dir", w.dir, "err", err)
		}
	}
}

// completeEnd walks the frame headers of f and returns the end of its last
// whole frame before a torn tail (the file size when there is none). A
// damaged header ends the walk as corruption: the file is kept whole, its
// damage left for Verify to report.
func completeEnd(f *os.File, path string) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	ff := &frameFile{f: f, path: path, size: fi.Size()}
	for {
		h, err := ff.next()
		if err == io.EOF || errors.Is(err, errTorn) {
			return ff.off, nil
		}
		if err != nil {
			return 0, err
		}
		ff.off += h.frameLen()
	}
}

// Roll makes the writer start a new file at its next frame (retention can
// then drop the current one once it is no longer the newest). Safe from any
// goroutine.
func (w *Writer) Roll() { w.rollReq.Store(true) }

// InWindow says whether a query with From and To (0: unbounded) selects
// r by time: whether r's span overlaps [from, to], as Query does.
func InWindow(r *analytics.Record, from, to int64) bool {
	if from == 0 && to == 0 {
		return true
	}
	lo, hi, ok := recordSpan(r)
	return ok && (from == 0 || hi >= from) && (to == 0 || lo <= to)
}

// recordSpan returns the least and greatest of r's nonzero ReqFirst,
// ReqLast, RespFirst and RespLast; ok is false when all are zero.
func recordSpan(r *analytics.Record) (lo, hi int64, ok bool) {
	for _, t := range [4]int64{r.ReqFirst, r.ReqLast, r.RespFirst, r.RespLast} {
		if t == 0 {
			continue
		}
		if !ok {
			lo, hi, ok = t, t, true
			continue
		}
		lo, hi = min(lo, t), max(hi, t)
	}
	return lo, hi, ok
}

// Append adds r to the open frame of its kind (it copies what it needs; r may be reused
// at once) and writes the frame when it is full. An error means r was
// refused (beyond the codec limits: counted in Rejected) or that the frame
// it completed could not be written (its records are counted in Dropped;
// the writer keeps working).
func (w *Writer) Append(r *analytics.Record) error {
	if w.closed {
		return errors.New("append message record: writer closed")
	}
	if err := checkRecord(r); err != nil {
		w.rejected.Add(1)
		return fmt.Errorf("append message record: %w", err)
	}
	k := frameKind(r)
	if w.rows {
		k = kindExchanges // version 1: one frame for both kinds, no flags
	}
	f := &w.open[k]
	startC, startD := len(f.core), len(f.det)
	if w.rows {
		f.core = AppendRecord(f.core, r) // version 1: whole records in one section
	} else {
		f.core = appendCore(f.core, r)
		f.det = appendDetail(f.det, r)
	}
	if len(f.core)-startC+len(f.det)-startD > maxRecordLen {
		f.core, f.det = f.core[:startC], f.det[:startD]
		w.rejected.Add(1)
		return fmt.Errorf("append message record %016x: encoding exceeds %d bytes", r.ID, maxRecordLen)
	}
	if lo, hi, ok := recordSpan(r); ok {
		if !f.hasTS {
			f.minTS, f.maxTS, f.hasTS = lo, hi, true
		} else {
			f.minTS, f.maxTS = min(f.minTS, lo), max(f.maxTS, hi)
		}
	}
	f.protos |= protoBit(r.Proto)
	w.terms.Build(r)
	for i := range w.terms.Len() {
		f.hashes = append(f.hashes, termHash(w.terms.Term(i)))
	}
	f.n++
	if f.n >= w.opts.FrameRecords || len(f.core)+len(f.det) >= w.opts.FrameBytes {
		return w.sealKind(k)
	}
	return nil
}

// openFrame is a frame being filled: core and det hold its records' cores
// and details back to back (format.go's two sections), hashes the term
// hashes of all of them (deduplicated at seal).
type openFrame struct {
	core, det    []byte
	n            int
	minTS, maxTS int64
	hasTS        bool
	protos       uint64
	hashes       []uint64
}

func (f *openFrame) reset() {
	f.core, f.det, f.n, f.hashes = f.core[:0], f.det[:0], 0, f.hashes[:0]
	f.minTS, f.maxTS, f.hasTS, f.protos = 0, 0, false, 0
}

// Frame kinds: which open frame a record goes to, and the flag its frames
// carry.
const (
	kindExchanges   = 0
	kindConnections = 1
)

// frameKind is kindConnections for a connection record (proto "tcp", or a
// flow-class record: analytics.IsConnection), else kindExchanges.
func frameKind(r *analytics.Record) int {
	if analytics.IsConnection(r) {
		return kindConnections
	}
	return kindExchanges
}

var kindFlags = [2]uint8{flagExchanges, flagConnections}

// Flush writes the open frames now, so their records become readable.
func (w *Writer) Flush() error {
	if w.closed {
		return errors.New("flush message records: writer closed")
	}
	return w.seal()
}

// Sync writes the open frames and fsyncs the file.
func (w *Writer) Sync() error {
	if w.closed {
		return errors.New("sync message records: writer closed")
	}
	if err := w.seal(); err != nil {
		return err
	}
	return w.sync()
}

func (w *Writer) sync() error {
	if w.f == nil || !w.dirty {
		return nil
	}
	w.lastSync = time.Now()
	if err := w.f.Sync(); err != nil {
		// After a failed fsync the kernel may have dropped dirty pages:
		// nothing more goes into this file.
		w.writeErrors.Add(1)
		w.suspect = true
		return fmt.Errorf("sync message file %q: %w", w.path, err)
	}
	w.dirty = false
	return nil
}

// Close writes the open frames, fsyncs and closes the file. The writer is
// unusable afterwards.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	err := w.seal()
	w.closed = true
	if w.f != nil {
		err = errors.Join(err, w.closeFile())
	}
	w.enc.Close()
	return err
}

// Stats returns the writer's counters. Safe from any goroutine.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		Records:     w.records.Load(),
		Frames:      w.frames.Load(),
		Bytes:       w.bytes.Load(),
		Files:       w.files.Load(),
		WriteErrors: w.writeErrors.Load(),
		Dropped:     w.dropped.Load(),
		Rejected:    w.rejected.Load(),

		ReserveDropped: w.reserveDropped.Load(),
		Recovered:      w.recovered.Load(),
	}
}

// seal builds the open frames, writes them, and resets each whether the
// write succeeded or not (a failed frame's records are dropped and
// counted). With no open frame it only runs a due periodic fsync.
func (w *Writer) seal() error {
	// The older frame first, so a reader sees records in about the order
	// they completed.
	first := kindExchanges
	if f := &w.open; f[kindConnections].n > 0 && (f[kindExchanges].n == 0 || f[kindConnections].minTS < f[kindExchanges].minTS) {
		first = kindConnections
	}
	return sealErr(w.sealKind(first), w.sealKind(1-first))
}

// sealErr is the error of a seal whose two frames failed with e1 and e2: a
// write error never hides behind ErrReserve, which the capture does not
// log (both frames' records are counted either way).
func sealErr(e1, e2 error) error {
	switch {
	case e1 == nil || errors.Is(e1, ErrReserve) && e2 != nil && !errors.Is(e2, ErrReserve):
		return e2
	case e2 == nil || errors.Is(e2, ErrReserve) && !errors.Is(e1, ErrReserve):
		return e1
	}
	return errors.Join(e1, e2)
}

// sealKind is seal for the open frame of kind k.
func (w *Writer) sealKind(k int) error {
	f := &w.open[k]
	if f.n == 0 {
		return w.maybeSync()
	}
	n := f.n
	frame := w.buildFrame(f, kindFlags[k])
	f.reset()
	if w.belowReserve(int64(len(frame))) {
		w.dropped.Add(uint64(n))
		w.reserveDropped.Add(uint64(n))
		return fmt.Errorf("write message frame (%d records dropped): %w", n, ErrReserve)
	}
	if err := w.writeFrame(frame); err != nil {
		w.writeErrors.Add(1)
		w.dropped.Add(uint64(n))
		return fmt.Errorf("write message frame (%d records dropped): %w", n, err)
	}
	w.records.Add(uint64(n))
	w.frames.Add(1)
	w.bytes.Add(uint64(len(frame)))
	w.sinceAvail += int64(len(frame))
	return w.maybeSync()
}

// belowReserve says whether writing n more bytes would leave less free
// space than Options.Reserve, asking the filesystem at most every
// availEvery. The drop is logged once when it starts and once when it ends.
func (w *Writer) belowReserve(n int64) bool {
	if w.opts.Reserve <= 0 {
		return false
	}
	if now := time.Now(); now.Sub(w.availAt) >= availEvery || w.sinceAvail >= availCheckBytes {
		w.availAt, w.sinceAvail = now, 0
		avail, err := w.opts.Avail(w.dir)
		if err != nil {
			return w.low // keep the last answer
		}
		low := avail-n < w.opts.Reserve
		if low != w.low {
			if low {
				w.log.Warn("msgstore: free space below the reserve: dropping message records",
					"dir", w.dir, "avail_bytes", avail, "reserve_bytes", w.opts.Reserve)
			} else {
				w.log.Info("msgstore: free space above the reserve again: storing message records",
					"dir", w.dir, "avail_bytes", avail, "dropped_records", w.reserveDropped.Load())
			}
		}
		w.low = low
	}
	return w.low
}

func (w *Writer) maybeSync() error {
	if w.dirty && (w.opts.SyncEvery < 0 || time.Since(w.lastSync) >= w.opts.SyncEvery) {
		return w.sync()
	}
	return nil
}

// buildFrame encodes f, with flags, into w.out and returns it (valid until
// the next buildFrame).
func (w *Writer) buildFrame(f *openFrame, flags uint8) []byte {
	raw := len(f.core) + len(f.det)
	h := frameHeader{
		hdrLen: frameHeaderSize,
		hashes: bloomHashes,
		flags:  flags,
		count:  uint32(f.n),
		minTS:  f.minTS,
		maxTS:  f.maxTS,
		protos: f.protos,
		raw:    uint32(raw),
	}
	out := append(w.out[:0], make([]byte, frameHeaderSize)...)
	out = appendBloom(out, f.hashes)
	h.bloomLen = uint32(len(out) - frameHeaderSize)
	h.bloomCRC = crc32.Checksum(out[frameHeaderSize:], castagnoli)
	dataStart := len(out)
	h.codec = codecZstd
	if w.rows {
		out = w.enc.EncodeAll(f.core, out) // f.det is empty
		h.flags = 0
	} else {
		out = w.enc.EncodeAll(f.core, out)
		h.core = uint32(len(out) - dataStart)
		out = w.enc.EncodeAll(f.det, out)
	}
	if (len(out)-dataStart)*100 > raw*incompressiblePct {
		out = append(append(out[:dataStart], f.core...), f.det...)
		h.codec = codecRaw
		if !w.rows {
			h.core = uint32(len(f.core))
		}
	}
	h.stored = uint32(len(out) - dataStart)
	putFrameHeader(out, &h, w.rows)
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
	w.out = out
	return out
}

// writeFrame appends frame to the current file, first starting a new file
// if the current one may be torn, failed to open, or would pass FileBytes.
// After a failed write it cuts the file back to its last complete frame; if
// that fails too, the file is left to readers as torn and the next frame
// goes to a new one.
func (w *Writer) writeFrame(frame []byte) error {
	roll := w.rollReq.Swap(false) && w.size > 0
	if w.f == nil || w.suspect || roll || (w.size > 0 && w.size+int64(len(frame)) > w.opts.FileBytes) {
		if err := w.newFile(); err != nil {
			return err
		}
	}
	if _, err := w.opts.write(w.f, frame); err != nil {
		if terr := w.opts.truncate(w.f, w.size); terr != nil {
			w.suspect = true
			w.log.Warn("msgstore: cannot cut back a failed frame; starting a new file", "path", w.path, "err", terr)
		}
		return fmt.Errorf("append to %q: %w", w.path, err)
	}
	w.size += int64(len(frame))
	w.dirty = true
	return nil
}
