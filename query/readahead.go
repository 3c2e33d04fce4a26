package query

import (
	"sync"
	"sync/atomic"

	"tapvault/writer"
)

// readAhead reads, on worker goroutines, the blocks a merge is about to
// open, so that reading and decompressing the next blocks overlaps the
// merge's own work on the packets of the current ones (the filter, the
// output) and uses the other cores. A read-out of a time range is
// otherwise one core's decompression and write syscalls
// (docs/PERFORMANCE.md, issue 14 section 2, "Read-out").
//
// The merge opens blocks in a fixed order (order: indexes into blocks);
// the workers claim them in that order, at most depth ahead of the merge.
// The k-th block's result waits in ring[k%depth], which no other block in
// flight can use: a worker takes a slot of sem before it claims a block,
// and the merge gives the slot back once it has taken the block's result.
type readAhead struct {
	blocks []writer.BlockMeta
	order  []int
	depth  int
	ring   []chan aheadResult
	sem    chan struct{}
	next   atomic.Int64 // the next position in order to claim
	done   chan struct{}
	wg     sync.WaitGroup

	mu   sync.Mutex
	free []*writer.BlockBuf
	all  []*writer.BlockBuf // every buffer made, for MergeStats
}

type aheadResult struct {
	buf  *writer.BlockBuf
	meta writer.BlockMeta
	err  error
}

// startReadAhead starts workers readers, each with a BlockReader of its own
// from newReader (readers with scratch state are not shared), started with
// spawn (nil: go).
func startReadAhead(newReader func() BlockReader, blocks []writer.BlockMeta, order []int, workers, depth int, spawn func(func())) *readAhead {
	ra := &readAhead{blocks: blocks, order: order, depth: depth,
		ring: make([]chan aheadResult, depth), sem: make(chan struct{}, depth), done: make(chan struct{})}
	for i := range ra.ring {
		ra.ring[i] = make(chan aheadResult, 1)
	}
	if spawn == nil {
		spawn = func(fn func()) { go fn() }
	}
	for range workers {
		r := newReader()
		ra.wg.Add(1)
		spawn(func() {
			defer ra.wg.Done()
			ra.work(r)
		})
	}
	return ra
}

func (ra *readAhead) work(r BlockReader) {
	for {
		select {
		case <-ra.done:
			return
		case ra.sem <- struct{}{}:
		}
		select {
		case <-ra.done:
			<-ra.sem
			return
		default:
		}
		k := int(ra.next.Add(1)) - 1
		if k >= len(ra.order) {
			<-ra.sem
			return
		}
		buf := ra.getBuf()
		m, err := r.ReadBlock(ra.blocks[ra.order[k]].Ref, buf)
		ra.ring[k%ra.depth] <- aheadResult{buf: buf, meta: m, err: err}
	}
}

// get waits for the k-th block of order (the merge asks for each once, in
// order) and frees its slot for the workers.
func (ra *readAhead) get(k int) aheadResult {
	res := <-ra.ring[k%ra.depth]
	<-ra.sem
	return res
}

func (ra *readAhead) getBuf() *writer.BlockBuf {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if n := len(ra.free); n > 0 {
		b := ra.free[n-1]
		ra.free = ra.free[:n-1]
		return b
	}
	b := new(writer.BlockBuf)
	ra.all = append(ra.all, b)
	return b
}

func (ra *readAhead) putBuf(b *writer.BlockBuf) {
	ra.mu.Lock()
	ra.free = append(ra.free, b)
	ra.mu.Unlock()
}

// stop ends the workers and waits for them: a read in progress finishes
// first. Results nobody took are dropped.
func (ra *readAhead) stop() {
	close(ra.done)
	ra.wg.Wait()
}
