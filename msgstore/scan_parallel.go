package msgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"tapvault/analytics"
)

// A parallel scan (Query.Workers > 1) splits Scan's work three ways:
//
//	producer: walks the files' frame headers (and bloom filters) in order,
//	          and queues each candidate frame twice: to the workers, and
//	          to the consumer's ordered queue;
//	workers:  read, check, decompress and parse a frame into a batch of
//	          records, keeping those that match;
//	consumer: the caller's goroutine, which takes the batches in queue
//	          order and calls fn on each record.
//
// So fn sees exactly what a sequential scan gives it, in the same order,
// one record at a time on one goroutine, and every report (OnCorrupt) is
// made by the consumer in the order a sequential scan makes it. Reading
// the records was 60-80 % of a full scan (parsing 62 %, zstd 16 % of
// `tapvault latency` on 1.8M records): the part that spreads over cores.

// scanDepth is how many frames per worker may be decoded ahead of fn.
const scanDepth = 4

// scanFile is a file a parallel scan reads: the producer walks its
// headers, the workers read its frames with pread (os.File.ReadAt is safe
// for concurrent use). The consumer closes it at its end event, after
// every frame before it was processed; close is idempotent for the sweep
// after a scan that stopped early.
type scanFile struct {
	ff   *frameFile
	once sync.Once
}

func (sf *scanFile) close() { sf.once.Do(sf.ff.close) }

// scanJob is one event in the consumer's order: a frame to decode (batch
// comes back on done), an error to report, or the end of a file.
type scanJob struct {
	sf    *scanFile
	h     frameHeader
	off   int64
	err   error // report this (done is nil)
	end   bool  // close sf (done is nil)
	batch *scanBatch
	done  chan *scanBatch // the worker hands batch back here when done
}

// scanBatch is a decoded frame's matching records, and the buffers that
// decoded it, recycled through the scan's free list.
type scanBatch struct {
	recs []*analytics.Record // a nil slot: its record went to fn for good (Query.Records)
	n    int                 // matching records in recs
	file uint64              // the frame's position (Query.Pos)
	off  int64               //
	idx  []uint32            // each matching record's index in the frame (Query.Pos)
	err  error               // the frame's corruption (*CorruptionError), or a read error
	rbuf []byte
	bufs decodeBufs
}

// scanWorker is one decoding goroutine's state.
type scanWorker struct {
	strs strCache
	tb   analytics.TermBuf
}

func (r *Reader) scanParallel(parent context.Context, files []fileEntry, p *plan, detail bool, workers int, spawn func(func()), report func(error), fn func(*analytics.Record) error) error {
	if spawn == nil {
		spawn = func(f func()) { go f() }
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	depth := workers * scanDepth
	jobs := make(chan *scanJob, depth)
	order := make(chan *scanJob, depth)
	free := make(chan *scanBatch, depth+workers+1)
	for range depth + workers + 1 {
		free <- &scanBatch{}
	}
	var (
		wg     sync.WaitGroup
		opened []*scanFile // the producer's, read after wg.Wait
	)
	// Also when fn panics (an HTTP handler's panic is recovered): the
	// goroutines stop on the cancelled context, and the files close.
	defer func() {
		cancel()
		wg.Wait()
		for _, sf := range opened {
			sf.close()
		}
	}()
	wg.Add(1 + workers)
	spawn(func() {
		defer wg.Done()
		defer close(jobs)
		defer close(order)
		opened = r.produce(ctx, files, p, jobs, order, free)
	})
	for range workers {
		spawn(func() {
			defer wg.Done()
			w := &scanWorker{}
			for j := range jobs {
				if ctx.Err() == nil {
					// A private view of the file, so that the read
					// buffer is the batch's, not the producer's.
					b := j.batch
					ff := frameFile{f: j.sf.ff.f, path: j.sf.ff.path, size: j.sf.ff.size, sealed: j.sf.ff.sealed, off: j.off, buf: b.rbuf}
					r.decodeFrame(w, &ff, &j.h, b, p, detail)
					b.rbuf = ff.buf
				} else {
					j.batch.n, j.batch.err = 0, nil // the consumer drops it
				}
				j.done <- j.batch
			}
		})
	}

	var err error
	stopped := false
	for j := range order {
		if !stopped && j.done != nil && parent.Err() != nil {
			// Checked before each frame, as a sequential scan does.
			stopped = true
			cancel()
		}
		switch {
		case stopped:
			if j.done != nil {
				free <- <-j.done
			}
			continue
		case j.end:
			j.sf.close()
			continue
		case j.err != nil:
			r.corrupt.Add(1)
			report(j.err)
			continue
		}
		batch := <-j.done
		// The records before a damaged one reach fn, as in a sequential
		// scan.
		if e := r.deliver(batch, fn, p.q.Pos, p.q.Records != nil); e != nil {
			err, stopped = e, true
			cancel()
		}
		if batch.err != nil && !stopped {
			r.corrupt.Add(1)
			report(batch.err)
			if !isCorruption(batch.err) {
				// A failed read ends the file, as in a sequential scan:
				// the rest of its frames are dropped unread.
				skipFile(order, free, j.sf)
			}
		}
		free <- batch
	}
	if err == nil {
		err = parent.Err()
	}
	return err
}

func isCorruption(err error) bool {
	var ce *CorruptionError
	return errors.As(err, &ce)
}

// skipFile drops the consumer's queued events of sf up to its end event
// (after a read error, which a sequential scan reports once and then
// leaves the file). A file's events are contiguous in the queue.
func skipFile(order <-chan *scanJob, free chan<- *scanBatch, sf *scanFile) {
	for j := range order {
		if j.done != nil {
			free <- <-j.done
		}
		if j.end {
			sf.close()
			return
		}
	}
}

// produce walks the files' frames in order (scanner.walk) and queues the
// events: a frame to the workers first, then to the consumer, so that
// every frame the consumer waits for is one a worker will finish; the
// errors a sequential scan reports, in its order. It returns the files it
// opened.
func (r *Reader) produce(ctx context.Context, files []fileEntry, p *plan, jobs, order chan<- *scanJob, free <-chan *scanBatch) (opened []*scanFile) {
	send := func(ch chan<- *scanJob, j *scanJob) error {
		select {
		case ch <- j:
			return nil
		case <-ctx.Done():
			return errStop
		}
	}
	s := &scanner{r: r, p: p}
	for _, fe := range files {
		if ctx.Err() != nil {
			return opened
		}
		ff, err := openScanFile(fe.path)
		if err != nil {
			if send(order, &scanJob{err: err}) != nil {
				return opened
			}
			continue
		}
		if ff == nil {
			continue
		}
		sf := &scanFile{ff: ff}
		opened = append(opened, sf)
		frame := func(h *frameHeader) error {
			var batch *scanBatch
			select {
			case batch = <-free:
			case <-ctx.Done():
				return errStop
			}
			j := &scanJob{sf: sf, h: *h, off: ff.off, batch: batch, done: make(chan *scanBatch, 1)}
			if err := send(jobs, j); err != nil {
				return err
			}
			return send(order, j)
		}
		corrupt := func(err error) error { return send(order, &scanJob{sf: sf, err: err}) }
		if err := s.walk(ctx, ff, frame, corrupt); err != nil {
			if errors.Is(err, errStop) || corrupt(err) != nil {
				return opened
			}
		}
		if send(order, &scanJob{sf: sf, end: true}) != nil {
			return opened
		}
	}
	return opened
}

// decodeFrame reads and checks the frame h of ff and parses its records
// into b, keeping those p matches. On a damaged record it keeps those
// before it and sets b.err; a failed read or a damaged frame sets b.err
// alone.
func (r *Reader) decodeFrame(w *scanWorker, ff *frameFile, h *frameHeader, b *scanBatch, p *plan, detail bool) {
	b.n, b.err, b.idx = 0, nil, b.idx[:0]
	if p.q.Pos != nil {
		b.file, _ = parseFileName(ff.path)
		b.off = ff.off
	}
	fr, err := ff.records(h, r.dec, &b.bufs, detail, &w.strs)
	if err != nil {
		b.err = err
		return
	}
	r.decoded.Add(1)
	for i := uint32(0); i < h.count; i++ {
		if b.n == len(b.recs) {
			b.recs = append(b.recs, nil)
		}
		if b.recs[b.n] == nil {
			if p.q.Records != nil {
				b.recs[b.n] = p.q.Records()
			} else {
				b.recs[b.n] = new(analytics.Record)
			}
		}
		rec := b.recs[b.n]
		if err := fr.next(rec); err != nil {
			b.err = ff.corrupt(fmt.Errorf("record %d of %d: %w", i, h.count, err))
			return
		}
		if p.recordMatches(rec, &w.tb, h.flags) {
			b.n++
			if p.q.Pos != nil {
				b.idx = append(b.idx, i)
			}
		}
	}
	if n := fr.left(); n != 0 {
		b.err = ff.corrupt(fmt.Errorf("%d bytes after the last of %d records", n, h.count))
	}
}

// deliver passes b's matching records to fn in order, until fn returns an
// error, each with its position in *pos when pos is not nil; with
// own (Query.Records) each record is fn's from then on.
func (r *Reader) deliver(b *scanBatch, fn func(*analytics.Record) error, pos *Pos, own bool) error {
	for i := range b.n {
		r.records.Add(1)
		if pos != nil {
			*pos = Pos{File: b.file, Off: b.off, Index: b.idx[i]}
		}
		rec := b.recs[i]
		if own {
			b.recs[i] = nil
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}
