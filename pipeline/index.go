package pipeline

import (
	"errors"
	"fmt"
	"os"
	"time"

	"tapvault/index"
	"tapvault/writer"
)

// openIndex opens the store's index for writing, creating it if missing. A
// corrupt index is moved aside (never deleted: it may help a post-mortem)
// and rebuilt by the catch-up. An index held by another process is waited
// for; if it stays held, capture goes on without it and says so: an index
// can be rebuilt, packets cannot.
func openIndex(opts Options) (*index.Index, error) {
	dir := index.DirOf(opts.Dir)
	wait := opts.IndexWait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		ix, err := index.Open(index.Options{Dir: dir, Create: true, Logger: opts.Logger, MinFree: opts.indexReserve(), QueueBytes: opts.IndexQueueBytes, MemTableSize: opts.IndexMemTable})
		switch {
		case err == nil:
			return ix, nil
		case errors.Is(err, index.ErrBusy):
			if time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			opts.Logger.Error("the index is held by another process (a query or serve): writing WITHOUT it; run `tapvault reindex` afterwards", "dir", dir)
			return nil, nil
		case errors.Is(err, index.ErrCorrupt):
			aside := fmt.Sprintf("%s.corrupt-%d", dir, time.Now().Unix())
			opts.Logger.Warn("the index is damaged: moving it aside and rebuilding it from the segments", "dir", dir, "moved_to", aside, "err", err)
			if rerr := os.Rename(dir, aside); rerr != nil {
				return nil, fmt.Errorf("move damaged index aside: %w", rerr)
			}
			continue
		default:
			return nil, fmt.Errorf("open index: %w", err)
		}
	}
}

// catchUp indexes committed blocks the index has not seen, from their
// summaries (no packet data is read).
func catchUp(ix *index.Index, opts Options) error {
	r, err := writer.OpenReader(opts.Dir, writer.WithReaderLogger(opts.Logger))
	if err != nil {
		return err
	}
	defer r.Close()
	t0 := time.Now()
	before := ix.Stats().Blocks
	if err := ix.CatchUp(r.WalkSummaries); err != nil {
		return err
	}
	if n := ix.Stats().Blocks - before; n > 0 {
		opts.Logger.Info("index caught up with the segments", "blocks", n, "took", time.Since(t0).Round(time.Millisecond))
	}
	return nil
}
