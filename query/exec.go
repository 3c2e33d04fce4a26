package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"

	"tapvault/index"
	"tapvault/packet"
	"tapvault/writer"
)

// Store is a store opened for reading.
type Store struct {
	Dir string
	R   *writer.Reader
	Log *slog.Logger

	// Ix is the store's index, nil when it cannot be used (IndexState says
	// why); queries then scan block headers.
	Ix         *index.Index
	IndexState string
	sharedIx   bool

	// ReadAhead is how many threads read a query's blocks ahead of its
	// merge (MergeOptions.Workers); OpenStore sets min(CPUs, 4), 0 turns
	// it off.
	ReadAhead int

	// sealed are the block totals of sealed segments (Stats), which never
	// change: a health sample every 10 s and each /metrics scrape walked
	// every block header of the store (3850 of them, ~0.2 s of CPU, on a
	// 14M-packet store; a week of capture has 100 times more).
	statsMu sync.Mutex
	sealed  map[uint32]segTotals
}

// OpenStore opens the store in dir for reading. It sees committed blocks
// only and never modifies anything, so it is safe beside a running capture.
func OpenStore(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	r, err := writer.OpenReader(dir, writer.WithReaderLogger(log))
	if err != nil {
		return nil, err
	}
	s := &Store{Dir: dir, R: r, Log: log, ReadAhead: readAheadDefault()}
	s.openIndex()
	return s, nil
}

// OpenStoreWithIndex opens the store for reading with an index the caller
// already has open (a capture's own, live index), so queries through it see
// blocks as soon as they are committed.
func OpenStoreWithIndex(dir string, ix *index.Index, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	r, err := writer.OpenReader(dir, writer.WithReaderLogger(log))
	if err != nil {
		return nil, err
	}
	st := &Store{Dir: dir, R: r, Log: log, Ix: ix, IndexState: IndexOK, sharedIx: true, ReadAhead: readAheadDefault()}
	if ix == nil {
		st.IndexState = IndexOff
	}
	return st, nil
}

// readAheadDefault is Store.ReadAhead's default. TAPVAULT_READ_AHEAD
// overrides it (measurements).
func readAheadDefault() int {
	if v, err := strconv.Atoi(os.Getenv("TAPVAULT_READ_AHEAD")); err == nil && v >= 0 {
		return v
	}
	return scanWorkers()
}

// Close releases the store (and its index, unless it was lent).
func (s *Store) Close() error {
	err := s.R.Close()
	if s.Ix != nil && !s.sharedIx {
		if ierr := s.Ix.Close(); err == nil {
			err = ierr
		}
	}
	return err
}

// Blocks lists the committed blocks that overlap [from, to], from the block
// headers.
func (s *Store) Blocks(from, to int64) ([]writer.BlockMeta, error) {
	segs, err := s.R.Segments()
	if err != nil {
		return nil, err
	}
	var out []writer.BlockMeta
	for _, seg := range segs {
		_, _, err := s.walkSegment(seg.Number, func(m writer.BlockMeta) {
			if m.MaxTS >= from && m.MinTS <= to {
				out = append(out, m)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// walkSegment calls fn with the header of every committed block of
// segment n. Neither a segment that retention removed since it was listed
// (gone) nor one whose walk stopped at a corrupt block (logged) is an
// error; whole says fn saw every block.
func (s *Store) walkSegment(n uint32, fn func(writer.BlockMeta)) (whole, gone bool, err error) {
	err = s.R.ScanSegment(n, func(m writer.BlockMeta) error { fn(m); return nil })
	if errors.Is(err, writer.ErrSegmentGone) {
		return false, true, nil
	}
	var ce *writer.CorruptionError
	if errors.As(err, &ce) {
		s.Log.Warn("segment scan stopped at a corrupt block; later blocks of this segment are skipped", "err", err)
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("scan segment %d: %w", n, err)
	}
	return true, false, nil
}

// Request selects packets.
type Request struct {
	From, To int64   // inclusive; MinTime/MaxTime for unbounded
	Filter   *Filter // nil or empty: everything
	Limit    int     // stop after this many matching packets; 0 = no limit
}

// Result counts what a query did.
type Result struct {
	MergeStats
	Plan       PlanStats
	Candidates int    // blocks chosen
	Matched    uint64 // packets that passed the filter
}

// Run calls fn, in time order, for every stored packet that the request
// selects. ctx is checked every few packets visited, matching or not, so a
// filter that matches nothing over a long range still stops promptly when
// the caller goes away. The filter is cloned: one Filter may serve
// concurrent queries.
//
// The work runs on a thread at nice QueryNice (see RunLowPriority), so a
// query beside a capture gets only the CPU the capture leaves.
func (s *Store) Run(ctx context.Context, req Request, fn func(p *Packet) error) (res Result, err error) {
	RunLowPriority(func() { res, err = s.run(ctx, req, fn) })
	return res, err
}

func (s *Store) run(ctx context.Context, req Request, fn func(p *Packet) error) (Result, error) {
	var res Result
	blocks, ps, err := s.plannedBlocks(req)
	if err != nil {
		return res, err
	}
	res.Plan = ps
	res.Candidates = len(blocks)
	var ms MergeStats
	{
		var (
			dec packet.Decoder
			d   packet.Decoded
		)
		all := req.Filter == nil || req.Filter.MatchAll()
		var f *Filter
		if !all {
			f = req.Filter.Clone()
		}
		visited := 0
		flowRead := false
		if !all {
			_, flowRead = req.Filter.Plan().FlowHashes()
		}
		newReader := func() BlockReader {
			var br BlockReader = s.R
			if !all {
				plan := req.Filter.Plan()
				if hashes, ok := plan.FlowHashes(); ok {
					br = flowReader{r: s.R, hashes: hashes}
				} else if plan.Op != PlanAll {
					br = newSummaryFlowReader(s.R, plan)
				}
			}
			// The context is also checked before each block: a flow or
			// summary read may visit no packet of a block at all.
			return ctxReader{BlockReader: br, ctx: ctx}
		}
		// Blocks are read ahead on other threads (each with a reader of
		// its own), so decompression overlaps the filter and the output.
		// Not for a flow read: one sub-frame a block is less work than
		// handing it between threads (a one-flow query of 50 blocks took
		// 19 -> 24 ms with it, docs/PERFORMANCE.md).
		mo := MergeOptions{NewReader: newReader, Workers: s.ReadAhead, Spawn: goLowPriority}
		if len(blocks) < 2 || flowRead {
			mo.Workers = 0
		}
		ms, err = merge(mo, newReader(), blocks, req.From, req.To, s.Log, func(p *Packet) error {
			if visited++; visited&255 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if !all {
				dec.Decode(p.Data, p.LinkType, &d)
				if !f.Match(&d) {
					return nil
				}
			}
			res.Matched++
			if err := fn(p); err != nil {
				return err
			}
			if req.Limit > 0 && res.Matched >= uint64(req.Limit) {
				return ErrStop
			}
			return nil
		})
	}
	res.MergeStats = ms
	if cerr := ctx.Err(); err != nil && cerr != nil && errors.Is(err, cerr) {
		err = cerr // the caller gone, not a block that could not be read
	}
	return res, err
}

// ctxReader is a BlockReader that fails once ctx is done.
type ctxReader struct {
	BlockReader
	ctx context.Context
}

func (c ctxReader) ReadBlock(ref writer.Ref, buf *writer.BlockBuf) (writer.BlockMeta, error) {
	if err := c.ctx.Err(); err != nil {
		return writer.BlockMeta{}, err
	}
	return c.BlockReader.ReadBlock(ref, buf)
}
