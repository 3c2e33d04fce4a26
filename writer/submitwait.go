package writer

import "tapvault/block"

// SubmitWait is Submit for lossless sources (imports, net_pcap replays): it
// never refuses b and never drops it. Like Submit it gives b to a
// compressor when one has room in the compress queue, and otherwise to the
// write goroutine to be stored raw (counted in RawBehind), waiting only
// for room in the write queue, that is for the disk: compression never sets
// the rate of a lossless replay (it capped one at about 180 MB/s when
// SubmitWait waited for a compressor). It returns false only once the
// writer is closed. Never call it from a live RX worker: RX never waits
// (and a Submit waits for a SubmitWait that holds the queues' order).
// Close must not be called while a SubmitWait is waiting.
func (w *Writer) SubmitWait(b *block.Block) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.st.rejected.Add(1)
		return false
	}
	w.subMu.Lock()
	it := item{b: b, seq: w.subSeq}
	w.subSeq++
	if w.opts.WaitCompress {
		w.compressQ <- it // an import: the compressors set the rate
	} else {
		select {
		case w.compressQ <- it:
		default:
			w.writeQ <- it // the write goroutine parks what comes early: never a deadlock
		}
	}
	w.subMu.Unlock()
	return true
}

var _ block.WaitSink = (*Writer)(nil)
