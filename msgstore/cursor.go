package msgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"

	"tapvault/analytics"
)

// Cursor is a position in a store's messages that survives restarts: the
// file (its sequence number) and the byte offset just after the last frame
// read from it. It always falls on a frame boundary, so a reader resuming
// from it reads whole frames only, and a frame is either before the cursor
// (read) or after it (not read). The zero Cursor is the start of the store.
//
// The shipper (package fleet) keeps one, persisted after each batch it
// delivered, and retention keeps the files that are not wholly before it.
type Cursor struct {
	Seq uint64 // message file sequence number (NNNNNNNNNN.msg)
	Off int64  // byte offset of the next unread frame in that file
}

// String is the cursor's text form, "SEQ:OFF", which ParseCursor reads.
func (c Cursor) String() string { return fmt.Sprintf("%d:%d", c.Seq, c.Off) }

// ParseCursor reads a cursor's text form (surrounding space ignored).
func ParseCursor(s string) (Cursor, error) {
	seq, off, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Cursor{}, fmt.Errorf("parse cursor %q: want SEQ:OFFSET", s)
	}
	var c Cursor
	var err error
	if c.Seq, err = strconv.ParseUint(seq, 10, 64); err != nil {
		return Cursor{}, fmt.Errorf("parse cursor %q: file sequence: %w", s, err)
	}
	if c.Off, err = strconv.ParseInt(off, 10, 64); err != nil || c.Off < 0 {
		return Cursor{}, fmt.Errorf("parse cursor %q: bad offset", s)
	}
	return c, nil
}

// Covers reports whether every frame of fi lies before c: the file holds
// nothing c has not read. (fi from Files; a file that grows after Files
// described it may hold more.)
func (c Cursor) Covers(fi FileInfo) bool {
	return fi.Seq < c.Seq || fi.Seq == c.Seq && c.Off >= fi.Size
}

// ReadOptions bound one ReadFrom call.
type ReadOptions struct {
	// MaxRecords stops the read at the end of the frame that brings the
	// records passed to fn to at least this many; 0 means no limit.
	MaxRecords int
	// OnCorrupt receives each damaged frame or unreadable file skipped;
	// nil logs them with slog.Default at Warn level.
	OnCorrupt func(error)
}

// ReadFrom passes to fn, in frame order (each kind of record in write
// order, as Scan), every record of the whole frames
// from cur to the store's current end (or until opt.MaxRecords), and
// returns the cursor after the last frame whose records all went to fn.
//
// It reads the live file a Writer in another process is appending to: a
// frame cut short by the end of the file is the one being written, and the
// read stops before it (the next call reads it). It moves from file N to
// N+1 only once N+1 exists, which a Writer creates after it sealed N, so N
// can no longer grow; a crashed writer's file ends at its torn tail. A file
// that no longer exists (retention dropped it, or a writer removed it
// empty) is skipped. A damaged frame is reported and skipped, a damaged
// header ends its file (reported) once a later file exists.
//
// When fn returns an error, ReadFrom returns it with the cursor at the start
// of the frame fn failed in: that frame is read again by the next call.
// The *Record passed to fn is reused: fn copies what it keeps.
func (r *Reader) ReadFrom(ctx context.Context, cur Cursor, opt ReadOptions, fn func(rec *analytics.Record) error) (Cursor, error) {
	report := opt.OnCorrupt
	if report == nil {
		report = func(err error) { slog.Warn("msgstore: skipping damaged messages", "err", err) }
	}
	files, err := listFiles(r.dir)
	if err != nil {
		return cur, err
	}
	rs := &cursorReader{r: r}
	passed := 0
	for i, fe := range files {
		if fe.seq < cur.Seq {
			continue
		}
		if fe.seq > cur.Seq {
			cur = Cursor{Seq: fe.seq}
		}
		last := i == len(files)-1
		ff, err := openFrameFile(fe.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			if !last {
				r.corrupt.Add(1)
				report(fmt.Errorf("open message file %q: %w", fe.path, err))
				continue
			}
			return cur, fmt.Errorf("open message file %q: %w", fe.path, err)
		}
		ff.off = cur.Off
		if ff.off > ff.size {
			// Shorter than what was read from it: cut by a recovering
			// writer below a frame we read cannot happen (we read whole
			// frames only), so the file was replaced. Nothing after the
			// cursor is in it.
			ff.close()
			if last {
				return cur, nil
			}
			continue
		}
		for {
			if err := ctx.Err(); err != nil {
				ff.close()
				return cur, err
			}
			if opt.MaxRecords > 0 && passed >= opt.MaxRecords {
				ff.close()
				return cur, nil
			}
			h, err := ff.next()
			if err == io.EOF || errors.Is(err, errTorn) {
				break // the end, or the frame being written
			}
			if err != nil {
				var ce *CorruptionError
				if errors.As(err, &ce) && !last {
					r.corrupt.Add(1)
					report(err)
					break
				}
				ff.close()
				return cur, err
			}
			r.frames.Add(1)
			n, err := rs.frame(ff, &h, fn)
			if err != nil {
				var ce *CorruptionError
				if !errors.As(err, &ce) {
					ff.close()
					return cur, err // fn's error: this frame is read again
				}
				r.corrupt.Add(1)
				report(err)
			}
			passed += n
			ff.off += h.frameLen()
			cur.Off = ff.off
		}
		ff.close()
	}
	return cur, nil
}

// cursorReader decodes whole frames for ReadFrom, every record with its
// Fields and Packets (ParseRecord), as the shipper needs them all.
type cursorReader struct {
	r    *Reader
	rec  analytics.Record
	bufs decodeBufs
}

// frame passes the records of the frame whose header is h to fn and
// returns how many it passed. A *CorruptionError is damage in the frame
// (some of its records may have been passed); any other error is fn's or
// a failed read.
func (c *cursorReader) frame(ff *frameFile, h *frameHeader, fn func(*analytics.Record) error) (int, error) {
	fr, err := ff.records(h, c.r.dec, &c.bufs, true, nil)
	if err != nil {
		return 0, err
	}
	c.r.decoded.Add(1)
	n := 0
	for i := uint32(0); i < h.count; i++ {
		if err := fr.next(&c.rec); err != nil {
			return n, ff.corrupt(fmt.Errorf("record %d of %d: %w", i, h.count, err))
		}
		c.r.records.Add(1)
		if err := fn(&c.rec); err != nil {
			return n, err
		}
		n++
	}
	if left := fr.left(); left != 0 {
		return n, ff.corrupt(fmt.Errorf("%d bytes after the last of %d records", left, h.count))
	}
	return n, nil
}

// Backlog is what lies after a cursor.
type Backlog struct {
	Bytes int64 // bytes of message files after the cursor
	Files int   // files holding some of them
	// OldestTS is the earliest record time (ns) in the first frame after
	// the cursor; 0 when there is none or it has no times.
	OldestTS int64
}

// BacklogAfter measures what the store under root holds after cur, from
// file sizes and one frame header: cheap enough to call every few seconds.
func BacklogAfter(root string, cur Cursor) (Backlog, error) {
	files, err := listFiles(messagesDir(root))
	if err != nil {
		return Backlog{}, err
	}
	var b Backlog
	for _, fe := range files {
		if fe.seq < cur.Seq {
			continue
		}
		ff, err := openFrameFile(fe.path)
		if err != nil {
			continue // dropped since the listing
		}
		if fe.seq == cur.Seq {
			ff.off = min(cur.Off, ff.size)
		}
		if left := ff.size - ff.off; left > 0 {
			b.Bytes += left
			b.Files++
			if b.OldestTS == 0 {
				if h, err := ff.next(); err == nil {
					b.OldestTS = h.minTS
				}
			}
		}
		ff.close()
	}
	return b, nil
}
