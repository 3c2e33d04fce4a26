package writer

import "tapvault/block"

// SubmitWait is Submit for lossless sources (imports, net_pcap replays): it
// waits for a compressor to take b instead of storing it raw or refusing it,
// so the store keeps its full compression. It returns false only once the
// writer is closed. Never call it from a live RX worker: RX never waits.
// Close must not be called while a SubmitWait is waiting.
func (w *Writer) SubmitWait(b *block.Block) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.st.rejected.Add(1)
		return false
	}
	w.compressQ <- b
	return true
}

var _ block.WaitSink = (*Writer)(nil)
