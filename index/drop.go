package index

import (
	"encoding/binary"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"tapvault/workers"
	"tapvault/writer"
)

// DropSegment removes every index entry of segment seg, for retention.
// summaries calls fn with each block of the segment (its meta and summary),
// as the segment still holds them; from them DropSegment regenerates the
// attribute key prefixes of the segment and deletes what each prefix holds
// in the segment, in WriteBatches. It never uses DropPrefix, which stalls
// writes on a live database: ingest goes on meanwhile.
//
// Blocks of seg still in memory (queued or in an open group) are not
// touched: retention drops old segments, long written.
func (ix *Index) DropSegment(seg uint32, summaries func(fn func(meta writer.BlockMeta, sum *workers.Summary) error) error) error {
	if ix.closed.Load() {
		return fmt.Errorf("index drop segment %d: %w", seg, ErrClosed)
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

	flows := make(map[workers.FlowKey]struct{})
	attrs := newAttrSet()
	var none bitmap
	err := summaries(func(meta writer.BlockMeta, sum *workers.Summary) error {
		if meta.Ref.Segment() != seg {
			return fmt.Errorf("block %v is not in segment %d", meta.Ref, seg)
		}
		for i := range sum.Flows {
			k := &sum.Flows[i].Key
			if _, ok := flows[*k]; !ok {
				flows[*k] = struct{}{}
				attrs.addFlow(k, &none)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index drop segment %d: read summaries: %w", seg, err)
	}

	txn := ix.db.NewTransaction(false)
	defer txn.Discard()
	wb := ix.db.NewWriteBatch()
	defer wb.Cancel()
	var n uint64
	del := func(kind byte, attr []byte) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{kind}})
		defer it.Close()
		prefix := append([]byte{kind}, attr...)
		start := append(prefix, segStart(seg)...)
		prefix = start[:len(prefix)]
		for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
			k := it.Item().Key()
			if writer.Ref(binary.BigEndian.Uint64(k[len(prefix):])).Segment() != seg {
				break
			}
			if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
				return err
			}
			n++
		}
		return nil
	}
	var attr []byte
	for k := range flows {
		attr = appendFlowAttr(attr[:0], &k)
		if err := del(kindFlow, attr); err != nil {
			return fmt.Errorf("index drop segment %d: %w", seg, err)
		}
	}
	for ip := range attrs.hosts {
		if err := del(kindHost, appendHostAttr(attr[:0], &ip)); err != nil {
			return fmt.Errorf("index drop segment %d: %w", seg, err)
		}
	}
	for pp := range attrs.ports {
		if err := del(kindPort, appendPortAttr(attr[:0], uint8(pp>>16), uint16(pp))); err != nil {
			return fmt.Errorf("index drop segment %d: %w", seg, err)
		}
	}
	for v := range attrs.vlans {
		if err := del(kindVLAN, appendVLANAttr(attr[:0], v)); err != nil {
			return fmt.Errorf("index drop segment %d: %w", seg, err)
		}
	}
	// B, M and S keys start with the segment number: delete the segment's
	// range of each (the segment-only prefix is not an attribute).
	segPrefix := binary.BigEndian.AppendUint32(nil, seg)
	for _, kind := range []byte{kindBlock, kindMissing, kindSegment} {
		if err := delRange(txn, wb, kind, segPrefix, &n); err != nil {
			return fmt.Errorf("index drop segment %d: %w", seg, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("index drop segment %d: flush: %w", seg, err)
	}
	ix.deletes.Add(n)
	ix.spans.dropSegment(seg) // again: a query may have cached during the drop
	ix.log.Info("index segment dropped", "segment", seg, "keys", n, "flows", len(flows))
	return nil
}

// delRange deletes every key starting with kind | p.
func delRange(txn *badger.Txn, wb *badger.WriteBatch, kind byte, p []byte, n *uint64) error {
	prefix := append([]byte{kind}, p...)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
			return err
		}
		*n++
	}
	return nil
}
