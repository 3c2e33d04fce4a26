package index

import (
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"tapvault/block"
	"tapvault/writer"
)

// SummaryWalker calls fn with every block of one segment: its meta and
// summary.
type SummaryWalker func(fn func(meta writer.BlockMeta, sum *block.Summary) error) error

// DropSegment removes every index entry of segment seg, for retention.
//
// The segment's keys are one key range (D | seg), so they are found by
// iterating it and deleted in WriteBatches; DropPrefix, which stalls writes
// on a live database, is never used and ingest goes on meanwhile.
// summaries may be nil: with the segment first in every key the index no
// longer needs to regenerate keys from the block summaries. When given, it
// is read to check that every block the segment holds was indexed, and the
// count of blocks missing from the index is logged.
//
// Blocks of seg still in memory (queued or in an open group) are not
// touched: retention drops old segments, long written.
func (ix *Index) DropSegment(seg uint32, summaries SummaryWalker) error {
	if ix.closed.Load() {
		return fmt.Errorf("index drop segment %d: %w", seg, ErrClosed)
	}
	if ix.opts.ReadOnly {
		return fmt.Errorf("index drop segment %d: %w", seg, ErrReadOnly)
	}
	// Queries stop looking at the segment first.
	ix.gmu.Lock()
	delete(ix.segs, seg)
	ix.gmu.Unlock()
	ix.pmu.Lock()
	for r := range ix.holes {
		if r.Segment() == seg {
			delete(ix.holes, r)
		}
	}
	ix.pmu.Unlock()
	ix.wmu.Lock()
	delete(ix.diskSegs, seg)
	ix.wmu.Unlock()
	ix.spans.dropSegment(seg)

	txn := ix.db.NewTransaction(false)
	defer txn.Discard()
	if summaries != nil {
		var blocks, unindexed int
		err := summaries(func(meta writer.BlockMeta, _ *block.Summary) error {
			if meta.Ref.Segment() != seg {
				return fmt.Errorf("block %v is not in segment %d", meta.Ref, seg)
			}
			blocks++
			prefix := appendBlockPrefix(nil, meta.Ref)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			it.Seek(prefix)
			if !it.ValidForPrefix(prefix) {
				unindexed++
			}
			it.Close()
			return nil
		})
		if err != nil {
			return fmt.Errorf("index drop segment %d: read summaries: %w", seg, err)
		}
		if unindexed > 0 {
			ix.log.Warn("index: dropped segment had blocks missing from the index", "segment", seg, "blocks", blocks, "unindexed", unindexed)
		}
	}

	wb := ix.db.NewWriteBatch()
	defer wb.Cancel()
	var n uint64
	segPrefix := binary.BigEndian.AppendUint32(nil, seg)
	for _, kind := range []byte{kindData, kindMissing, kindSegment} {
		prefix := append([]byte{kind}, segPrefix...)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
				it.Close()
				return fmt.Errorf("index drop segment %d: %w", seg, err)
			}
			n++
		}
		it.Close()
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("index drop segment %d: flush: %w", seg, err)
	}
	ix.deletes.Add(n)
	ix.spans.dropSegment(seg) // again: a query may have cached during the drop
	ix.log.Info("index segment dropped", "segment", seg, "keys", n)
	return nil
}
