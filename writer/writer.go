package writer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"tapvault/block"
	"tapvault/internal/durable"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Defaults of Options.
const (
	DefaultSegmentSize = 1 << 30
	DefaultSegmentAge  = time.Hour
	DefaultQueueLen    = 64
	DefaultSyncEvery   = 10 * time.Millisecond
	DefaultSyncBytes   = 64 << 20

	// MaxSegmentSize is the largest SegmentSize: block offsets are 32-bit.
	MaxSegmentSize = 1<<32 - 1
	// MinSegmentSize is the smallest SegmentSize accepted.
	MinSegmentSize = 4096
)

// incompressiblePct: a section whose zstd output is above this percentage of
// its raw size is stored raw. Decompressing a section that saved under 5% is
// a loss on read (TLS payloads, already-compressed media).
const incompressiblePct = 95

// Options configure a Writer. The zero value of every field but Dir means its
// default.
type Options struct {
	Dir string // store directory; segments go in Dir/segments/ (created 0700, files 0600)
	// SegmentDirs are the directories new segments go to, one per disk,
	// in turn (segdirs.go); empty: Dir/segments. The store records them
	// (Dir/SEGMENT_DIRS) so readers find its segments without being told.
	SegmentDirs []string
	SegmentSize int64         // rotate before a segment would exceed this; default 1 GiB; at most MaxSegmentSize
	SegmentAge  time.Duration // rotate a segment older than this; default 1 h
	// Compressors is the number of compression goroutines. The default is
	// half of GOMAXPROCS (at least one): the other half runs the RX workers.
	Compressors int
	Level       zstd.EncoderLevel // default zstd.SpeedFastest
	// QueueLen is the length of the sealed-block queue and of the write
	// queue. Set it to the block pool's size so a healthy writer never turns
	// a block away; default DefaultQueueLen.
	QueueLen int
	// SyncEvery bounds group commit: a written block is fdatasync'd (and its
	// hook called) within this interval. Default 10 ms.
	SyncEvery time.Duration
	// SyncBytes also ends a group as soon as this many bytes are written but
	// not yet synced. Default 64 MiB.
	SyncBytes int64
	// Reserve keeps this many bytes of the store's filesystem free: below
	// it blocks are dropped and counted as disk-full drops, as if the disk
	// were full, until space returns. It leaves room for the index, whose
	// memory-mapped files cannot fail cleanly on a full filesystem. 0: the
	// writer fills the filesystem.
	Reserve int64
	// IO selects how segments are written: IOBuffered (the default,
	// through the page cache), IOAuto (O_DIRECT where the store's
	// filesystem takes it, else buffered) or IODirect.
	IO IOMode
	// WritesInFlight is how many direct writes of 4 MiB may be in flight
	// at once (O_DIRECT only). Default DefaultWritesInFlight.
	WritesInFlight int
	// Preallocate, for O_DIRECT, allocates a segment ahead of the writes
	// (fallocate) in steps of this many bytes, at most the segment size,
	// so direct writes do not extend the file. The file is then longer
	// than its blocks until the segment is closed (cut to its committed
	// size); after a crash recovery cuts the rest. 0 or negative: none (the
	// default: 64 MiB steps measured no faster here, docs/PERFORMANCE.md).
	Preallocate int64
	// WaitCompress makes SubmitWait wait for a compressor instead of
	// storing a block raw when they are behind: for imports of files,
	// where no packet is at stake and a smaller store (and version-2
	// blocks, whose flow queries read only the flow) are worth the
	// compressors' rate. Live captures and replays leave it off.
	WaitCompress bool
	// SubFrame is the raw size a compressed block's packets are cut into
	// flow sub-frames at (docs/format/block.md, version 2): default
	// block.SubFrameTarget (64 KiB); negative: one frame per block
	// (version 1: the best ratio, and a flow query reads whole blocks).
	SubFrame   int
	CommitHook CommitHook
	Logger     *slog.Logger // default slog.Default()

	ops *fileOps // nil: the real file operations (tests inject faults)
}

// fileOps are the file operations the write goroutine can see fail for lack
// of space, and how long it waits before trying the disk again after that.
type fileOps struct {
	writeAt    func(f *os.File, b []byte, off int64) (int, error)
	sync       func(f *os.File) error
	create     func(segDir string, seg uint32, created int64) (*os.File, string, error)
	retry      time.Duration
	avail      func(dir string) (int64, error)      // free space, for Reserve
	availEvery time.Duration                        // how often to ask it
	availBytes int64                                // and after how many bytes appended at most
	fallocate  func(f *os.File, off, n int64) error // preallocate; nil: fallocate
	probe      func(segDir string) error            // does the filesystem take O_DIRECT? nil: probeDirect
	setDirect  func(f *os.File) error               // turn O_DIRECT on; nil: setDirect
}

// DiskFullRetry is how often a writer that ran out of space tries the disk
// again. Blocks that arrive in between are dropped without touching it.
const DiskFullRetry = time.Second

var realOps = fileOps{
	writeAt:    func(f *os.File, b []byte, off int64) (int, error) { return f.WriteAt(b, off) },
	sync:       fdatasync,
	create:     createSegment,
	retry:      DiskFullRetry,
	avail:      AvailBytes,
	availEvery: 250 * time.Millisecond,
	availBytes: 1 << 20,
}

// isDiskFull says whether err means the filesystem (or the user's quota) is
// out of space: a condition that passes, unlike other write errors.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Stats are the writer's counters. Every field is a running total except
// Segment and the queue lengths, which are gauges.
type Stats struct {
	BlocksCommitted    uint64 // durable, hook called
	PacketsCommitted   uint64
	WireBytesCommitted uint64
	RawBytes           uint64 // uncompressed summary+record bytes of committed blocks
	StoredBytes        uint64 // on-disk bytes of committed block records (headers and CRCs included)

	RawIncompressible uint64 // records stored raw because zstd saved less than 5%
	RawBehind         uint64 // blocks stored raw because the compressors were behind
	Rejected          uint64 // Submit returned false: both queues full
	BlocksLost        uint64 // accepted but never committed (write, sync or segment errors, oversize)
	PacketsLost       uint64 // their packets: the to-disk drops
	// DiskFullBlocks and DiskFullPackets are the part of BlocksLost and
	// PacketsLost dropped because the disk was full (ENOSPC, EDQUOT). They
	// are drops, not errors: Close does not fail for them.
	DiskFullBlocks  uint64
	DiskFullPackets uint64

	WriteErrors   uint64 // failed writes, syncs and segment creations
	Fsyncs        uint64
	FsyncNanos    uint64
	FsyncMaxNanos uint64
	// CompressNanos is the time compressors spent building block records
	// (zstd, or trying it); WriteNanos the time the write goroutine spent
	// sealing and writing them (fsyncs apart). Both are wall time on
	// goroutines that do only that, so they approximate each stage's CPU.
	CompressNanos uint64
	WriteNanos    uint64
	Segments      uint64 // segments created by this writer
	// Direct says the segments are written with O_DIRECT (Options.IO);
	// false: through the page cache.
	Direct bool

	Segment uint32 // segment being appended to, 0 if none is open
	// SegmentMinTS is the oldest packet time of the blocks written to
	// Segment so far (committed or not yet), 0 while it has none: what
	// retention keeps the records of.
	SegmentMinTS  int64
	DiskFull      bool // writes are failing for lack of space; retried every DiskFullRetry
	CompressQueue int  // blocks waiting for a compressor
	WriteQueue    int  // records waiting for the write goroutine
}

// Recovery is what Open found in the store's last segment, checked against
// the commit marker: only bytes beyond the marker are ever cut.
type Recovery struct {
	Segment   uint32 // the segment checked, 0 if the store was empty
	Size      int64  // its size after recovery
	Blocks    int    // valid blocks in it
	CutAt     int64  // offset the torn tail was cut at, -1 if none
	BytesCut  int64  // bytes cut off
	CutReason error  // why the record at CutAt failed, nil if nothing was cut
	// Corrupt lists the damage found and kept: bad records with valid
	// blocks after them, committed bytes (at or below the commit marker)
	// that hold no valid block or are missing, a tail kept for want of a
	// readable marker, a damaged segment header, and committed segments
	// the marker names that are gone.
	Corrupt []*CorruptionError
}

// Writer is the block store's append side. It implements block.Sink.
type Writer struct {
	opts     Options
	log      *slog.Logger
	segDir   string
	lockFile *os.File
	dirs     segDirs    // every directory the store's segments are in
	active   []string   // those new segments go to (Options.SegmentDirs)
	nextDir  int        // active[nextDir] is the next one's, room permitting
	marker   *os.File   // Dir/COMMITTED, see publish
	mark     commitMark // the marker as Open found it
	enc      *zstd.Encoder
	recovery Recovery

	mu        sync.RWMutex // guards closed against Submit
	closed    bool
	compressQ chan item
	subMu     sync.Mutex // orders the queues' sequence numbers
	subSeq    uint64     // the next block's, under subMu
	writeQ    chan item
	compWG    sync.WaitGroup
	done      chan struct{}
	closeErr  error

	// Owned by the write goroutine.
	ops        fileOps
	f          *os.File
	path       string
	seg        uint32
	size       int64
	synced     int64 // size of the segment at its last good sync
	segBlocks  int
	segCreated time.Time
	nextSeg    uint32
	parked     []item            // blocks that came before their turn, by seq modulo its length
	wantSeq    uint64            // the next block to write
	groups     [maxGroups]*group // commit groups, a ring: see endGroup
	gOpen      int               // the group being written
	inflight   int               // groups handed to the syncer, not yet finished
	syncQ      chan *group       // to the syncer
	resultQ    chan *group       // back from it, in order
	rawRec     recBuf            // record buffer of the raw (compressor-behind) path
	errLogged  time.Time
	errMuted   int
	firstErr   error     // first reason a block was lost, disk full apart
	fullAt     time.Time // when the disk filled; zero while writes succeed
	availAt    time.Time // last free-space check (Reserve)
	sinceAvail int64     // bytes appended since that check
	low        bool      // free space was below Reserve at that check
	errReserve error
	retryAt    time.Time // next attempt to write while the disk is full
	fullLost   [2]uint64 // blocks and packets lost when the disk filled
	markBuf    [markerSize]byte
	hdrBuf     [segHeaderSize]byte
	dio        *directIO // nil: buffered writes
	direct     bool      // the open segment is written through dio
	markDirty  bool      // the marker was rewritten since its last fdatasync
	markSynced time.Time // when it was last synced

	st struct {
		blocks, packets, wire, raw, stored       atomic.Uint64
		rawIncompressible, rawBehind, rejected   atomic.Uint64
		lost, lostPackets, writeErrors           atomic.Uint64
		fullBlocks, fullPackets                  atomic.Uint64
		full                                     atomic.Bool
		fsyncs, fsyncNanos, fsyncMax, segsCreate atomic.Uint64
		compressNanos, writeNanos                atomic.Uint64
		segment                                  atomic.Uint32
		segMinTS                                 atomic.Int64
		direct                                   atomic.Bool
	}
}

var _ block.Sink = (*Writer)(nil)

// item is one unit on the queues: a block, the record a compressor built
// for it (nil: store the block raw), and its place in the order blocks
// were accepted, which is the order they are written in.
type item struct {
	b   *block.Block
	rb  *recBuf
	seq uint64
}

// pend is a block written but not yet synced.
type pend struct {
	b    *block.Block
	meta BlockMeta
}

// recBuf is a complete block record being built. A compressor owns two, so
// it can compress the next block while the write goroutine writes the last;
// the write goroutine hands each back once its write call returns.
type recBuf struct {
	rec   []byte
	sum   []byte // encoded summary scratch
	h     blockHeader
	incmp bool // records stored raw as incompressible
	err   error
	owner chan *recBuf
}

// DefaultCompressors is the default of Options.Compressors.
func DefaultCompressors() int { return max(1, runtime.GOMAXPROCS(0)/2) }

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		return errors.New("writer options: Dir is empty")
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SegmentSize < MinSegmentSize || o.SegmentSize > MaxSegmentSize {
		return fmt.Errorf("writer options: SegmentSize %d outside [%d, %d]", o.SegmentSize, MinSegmentSize, int64(MaxSegmentSize))
	}
	if o.SegmentAge <= 0 {
		o.SegmentAge = DefaultSegmentAge
	}
	if o.Compressors <= 0 {
		o.Compressors = DefaultCompressors()
	}
	if o.Level == 0 {
		o.Level = zstd.SpeedFastest
	}
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = DefaultSyncEvery
	}
	if o.SyncBytes <= 0 {
		o.SyncBytes = DefaultSyncBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.IO < IOBuffered || o.IO > IODirect {
		return fmt.Errorf("writer options: %v", o.IO)
	}
	if o.WritesInFlight <= 0 {
		o.WritesInFlight = DefaultWritesInFlight
	}
	return nil
}

// Open creates or opens the store in opts.Dir, recovers its last segment
// (cutting off a torn tail, keeping and reporting corruption that valid
// blocks follow), and starts the compression and write goroutines. New
// blocks always go to a new segment, created on the first write.
func Open(opts Options) (*Writer, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	w := &Writer{
		opts:      opts,
		log:       opts.Logger,
		segDir:    segmentsDir(opts.Dir),
		compressQ: make(chan item, opts.QueueLen),
		writeQ:    make(chan item, opts.QueueLen),
		done:      make(chan struct{}),
		nextSeg:   1,
		recovery:  Recovery{CutAt: -1},
		ops:       realOps,
		syncQ:     make(chan *group, maxGroups),
		resultQ:   make(chan *group, maxGroups),
	}
	for i := range w.groups {
		w.groups[i] = &group{}
	}
	// Room for the blocks that can overtake one being compressed: the
	// two queues and one taken by each compressor. It grows (park) when
	// more do, up to the blocks there are (the pool's).
	w.parked = make([]item, 2*opts.QueueLen+opts.Compressors+1)
	if opts.ops != nil {
		w.ops = *opts.ops
	}
	w.errReserve = fmt.Errorf("free space below the %d bytes kept free for the index: %w", opts.Reserve, syscall.ENOSPC)
	if err := os.MkdirAll(w.segDir, 0o700); err != nil {
		return nil, fmt.Errorf("create store %q: %w", opts.Dir, err)
	}
	lockPath := filepath.Join(opts.Dir, "LOCK")
	lf, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %q: %w", lockPath, err)
	}
	if err := lockFile(lf); err != nil {
		lf.Close()
		return nil, fmt.Errorf("lock store %q: %w", opts.Dir, err)
	}
	w.lockFile = lf
	if w.dirs, w.active, err = setupSegDirs(opts.Dir, opts.SegmentDirs); err != nil {
		lf.Close()
		return nil, fmt.Errorf("store %q: %w", opts.Dir, err)
	}
	if err := w.recover(); err != nil {
		lf.Close()
		return nil, err
	}
	markPath := filepath.Join(opts.Dir, markerName)
	_, statErr := os.Stat(markPath)
	if w.marker, err = os.OpenFile(markPath, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		lf.Close()
		return nil, fmt.Errorf("open commit marker %q: %w", markPath, err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		err = durable.SyncDir(opts.Dir) // the marker's name must survive a crash too
	}
	if err == nil {
		// What recovery kept is committed from now on. A marker that names
		// a later segment than any left (they were deleted) stays as it is
		// until the first commit moves it on.
		seg, size := w.recovery.Segment, w.recovery.Size
		if w.mark.ok && w.mark.seg > seg {
			seg, size = w.mark.seg, w.mark.size
		}
		err = w.publish(seg, size)
	}
	if err == nil {
		if err = fdatasync(w.marker); err != nil {
			err = fmt.Errorf("sync commit marker %q: %w", markPath, err)
		}
		w.markDirty, w.markSynced = false, time.Now()
	}
	if err != nil {
		w.marker.Close()
		lf.Close()
		return nil, err
	}
	w.enc, err = zstd.NewWriter(nil,
		zstd.WithEncoderLevel(opts.Level),
		zstd.WithEncoderConcurrency(opts.Compressors),
		zstd.WithEncoderCRC(false), // the block record has its own CRC32C
	)
	if err != nil {
		w.marker.Close()
		lf.Close()
		return nil, fmt.Errorf("create zstd encoder: %w", err)
	}
	if err := w.chooseIO(); err != nil {
		w.enc.Close()
		w.marker.Close()
		lf.Close()
		return nil, err
	}
	for i := 0; i < opts.Compressors; i++ {
		free := make(chan *recBuf, 2)
		free <- &recBuf{owner: free}
		free <- &recBuf{owner: free}
		w.compWG.Add(1)
		go w.compressLoop(free)
	}
	go w.syncLoop()
	go w.writeLoop()
	return w, nil
}

// Recovery reports what Open found in the last segment.
func (w *Writer) Recovery() Recovery { return w.recovery }

// chooseIO probes whether the store's filesystem takes O_DIRECT writes and
// sets the writer up for Options.IO, logging the mode it writes in.
func (w *Writer) chooseIO() error {
	mode := w.opts.IO
	var probeErr error
	if mode != IOBuffered {
		probe := w.ops.probe
		if probe == nil {
			probe = probeDirect
		}
		for _, d := range w.active {
			if probeErr = probe(d); probeErr != nil {
				break // one refuses: buffered everywhere, one mode for all
			}
		}
	}
	switch {
	case mode == IODirect && probeErr != nil:
		return fmt.Errorf("store %q: O_DIRECT asked for: %w", w.opts.Dir, probeErr)
	case mode == IOBuffered:
		w.log.Info("writer: buffered segment writes (asked for)", "dir", w.opts.Dir)
		return nil
	case probeErr != nil:
		w.log.Info("writer: buffered segment writes: the filesystem refuses O_DIRECT", "dir", w.opts.Dir, "err", probeErr)
		return nil
	}
	w.dio = newDirectIO(w.opts.WritesInFlight, w.ops.writeAt)
	if w.opts.Preallocate > 0 {
		w.dio.fallocate, w.dio.step = w.ops.fallocate, min(w.opts.Preallocate, alignUp64(w.opts.SegmentSize))
		if w.dio.fallocate == nil {
			w.dio.fallocate = fallocate
		}
	}
	w.direct = true
	w.st.direct.Store(true)
	w.log.Info("writer: O_DIRECT segment writes", "dir", w.opts.Dir, "in_flight", w.opts.WritesInFlight, "chunk", dioChunk, "preallocate", max(0, w.opts.Preallocate))
	return nil
}

// recover removes half-created segments and checks the last segment record
// by record against the commit marker. Older segments were sealed by
// rotation (synced before the next was created); Verify checks them.
func (w *Writer) recover() error {
	for _, d := range w.dirs {
		if err := removeTempSegments(d); err != nil {
			return err
		}
	}
	locs, err := w.dirs.list(false, nil)
	if err != nil {
		return err
	}
	nums := segNums(locs)
	mark := readMarker(w.opts.Dir)
	w.mark = mark
	if mark.err != nil {
		w.log.Error("commit marker unreadable: cutting nothing off the last segment", "err", mark.err)
	}
	var last uint32
	if len(nums) > 0 {
		last = nums[len(nums)-1]
	}
	if mark.ok && mark.seg > last {
		// The newest committed segments are gone (deleted by hand: the
		// writer never removes its newest). Never reuse their numbers.
		err := &CorruptionError{Path: filepath.Join(w.dirs[0], segmentName(mark.seg)),
			Err: fmt.Errorf("committed segments %d to %d are missing (the commit marker names segment %d)", last+1, mark.seg, mark.seg)}
		w.log.Error("committed segments missing", "err", err)
		w.recovery.Corrupt = append(w.recovery.Corrupt, err)
		w.nextSeg = mark.seg + 1
	}
	if len(nums) == 0 {
		return nil
	}
	if last == MaxSegmentNumber {
		return fmt.Errorf("store %q: segment numbers exhausted", w.opts.Dir)
	}
	w.nextSeg = max(w.nextSeg, last+1)
	lastLoc := locs[len(locs)-1]
	if i := slices.Index(w.active, lastLoc.dir); i >= 0 {
		w.nextDir = (i + 1) % len(w.active) // go on in turn from where the last run left off
	}
	rec, err := recoverSegment(lastLoc.path(), last, mark, w.log)
	rec.Corrupt = append(w.recovery.Corrupt, rec.Corrupt...)
	w.recovery = rec
	return err
}

// MaxSegmentNumber is the largest segment number.
const MaxSegmentNumber = 1<<32 - 1

// recoverSegment walks every record of a segment, verifying lengths and
// CRCs. A bad region with valid blocks after it is kept and reported. A bad
// tail is cut off, and the cut made durable, only where it lies beyond what
// the commit marker says is committed: committed bytes that hold no valid
// block are damage, kept and reported, and so is every bad tail when there
// is no readable marker to tell a torn write from damage.
//
// The file is synced before it returns, whatever it found: the marker Open
// writes next claims every byte recovery keeps, and after a kill -9 between
// a block's write and its fsync those bytes may be in the page cache only;
// a power loss after the marker's sync would then turn a torn tail into
// "damaged committed bytes".
func recoverSegment(path string, seg uint32, mark commitMark, log *slog.Logger) (Recovery, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return Recovery{Segment: seg, CutAt: -1}, fmt.Errorf("open segment %q: %w", path, err)
	}
	defer f.Close()
	rec, err := recoverSegmentFile(f, path, seg, mark, log)
	if err != nil {
		return rec, err
	}
	if err := f.Sync(); err != nil {
		return rec, fmt.Errorf("sync segment %q: %w", path, err)
	}
	return rec, nil
}

func recoverSegmentFile(f *os.File, path string, seg uint32, mark commitMark, log *slog.Logger) (Recovery, error) {
	rec := Recovery{Segment: seg, CutAt: -1}
	fi, err := f.Stat()
	if err != nil {
		return rec, fmt.Errorf("stat segment %q: %w", path, err)
	}
	size := fi.Size()
	if _, err := readSegmentHeader(f, path, seg); err != nil {
		// Creation is atomic, so only damage gets here. Capture must
		// still start: keep the file for Verify and write elsewhere.
		var ce *CorruptionError
		if !errors.As(err, &ce) {
			return rec, fmt.Errorf("recover segment: %w", err)
		}
		log.Error("last segment has a bad header: leaving it as it is", "path", path, "err", ce.Err)
		rec.Corrupt = append(rec.Corrupt, ce)
		rec.Size = size
		return rec, nil
	}
	wk := segWalker{f: f, path: path, seg: seg, size: size, full: true}
	tail, tailErr, err := wk.walk(
		func(*blockHeader, []byte) error { rec.Blocks++; return nil },
		func(ce *CorruptionError) error {
			log.Warn("corrupt block kept: valid blocks follow it", "path", ce.Path, "offset", ce.Offset, "err", ce.Err)
			rec.Corrupt = append(rec.Corrupt, ce)
			return nil
		})
	if err != nil {
		return rec, fmt.Errorf("recover segment %q: %w", path, err)
	}
	rec.Size = tail
	end := mark.committedEnd(seg)
	if end < 0 { // no marker: nothing can be shown to be uncommitted
		if tail < size {
			ce := &CorruptionError{Path: path, Offset: tail, Err: fmt.Errorf(
				"%d bytes after the last valid block kept: no readable commit marker shows they were never committed: %w", size-tail, tailErr)}
			log.Warn("tail of last segment kept", "path", path, "offset", tail, "bytes", size-tail, "err", ce.Err)
			rec.Corrupt = append(rec.Corrupt, ce)
			rec.Size = size
		}
		return rec, nil
	}
	if tail < end && (tail < size || end != wholeSegment) {
		// Committed bytes that hold no valid block, or are missing.
		dmgEnd := min(end, size)
		var cause error
		switch {
		case tail < dmgEnd && end > size && end != wholeSegment:
			cause = fmt.Errorf("committed bytes [%d, %d) hold no valid block and the file ends %d bytes short of the committed size %d: %w", tail, dmgEnd, end-size, end, tailErr)
		case tail < dmgEnd:
			cause = fmt.Errorf("committed bytes [%d, %d) hold no valid block: %w", tail, dmgEnd, tailErr)
		default:
			cause = fmt.Errorf("the file ends at %d, %d bytes short of the committed size %d", size, end-size, end)
		}
		ce := &CorruptionError{Path: path, Offset: tail, Err: cause}
		log.Error("damaged committed bytes kept", "path", path, "offset", tail, "err", cause)
		rec.Corrupt = append(rec.Corrupt, ce)
		rec.Size = dmgEnd
		if size <= end {
			return rec, nil
		}
		tail, tailErr = end, errors.New("no valid block after the committed end")
	}
	if tail == size {
		return rec, nil
	}
	rec.Size = tail
	rec.CutAt, rec.BytesCut, rec.CutReason = tail, size-tail, tailErr
	log.Warn("cutting torn tail of last segment", "path", path, "offset", tail, "bytes", size-tail, "reason", tailErr)
	if err := f.Truncate(tail); err != nil {
		return rec, fmt.Errorf("truncate segment %q at %d: %w", path, tail, err)
	}
	return rec, nil // recoverSegment syncs
}

// Submit hands a sealed block to the writer. It never blocks: the block goes
// to the compress queue; if that is full, straight to the write queue to be
// stored raw (counted in RawBehind); if that is full too Submit returns false
// and the caller keeps b (counts its packets as dropped and releases it).
// Once Submit returns true the writer owns b and releases it after commit.
// Blocks are written in the order Submit and SubmitWait accepted them,
// whichever queue they took.
func (w *Writer) Submit(b *block.Block) bool {
	w.mu.RLock()
	ok := !w.closed
	if ok {
		w.subMu.Lock()
		it := item{b: b, seq: w.subSeq}
		select {
		case w.compressQ <- it:
		default:
			select {
			case w.writeQ <- it:
			default:
				ok = false
			}
		}
		if ok {
			w.subSeq++
		}
		w.subMu.Unlock()
	}
	w.mu.RUnlock()
	if !ok {
		w.st.rejected.Add(1)
	}
	return ok
}

// Close stops accepting blocks, writes and syncs everything submitted, calls
// the hooks, and closes the store. It returns an error if any accepted block
// was not committed during the writer's life (Stats.BlocksLost) or a file
// failed to close. Calling it again returns nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.compressQ)
	w.mu.Unlock()
	w.compWG.Wait()
	close(w.writeQ)
	<-w.done
	w.syncMarker(true) // a store closed cleanly has a durable marker covering everything
	w.enc.Close()
	if w.dio != nil {
		w.dio.close()
	}
	var errs []error
	if n := w.st.lost.Load() - w.st.fullBlocks.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("%d accepted blocks were not committed, first because: %w", n, w.firstErr))
	}
	if !w.fullAt.IsZero() {
		w.log.Error("writer: closed with the disk still full",
			"dropped_blocks", w.st.fullBlocks.Load()-w.fullLost[0], "dropped_packets", w.st.fullPackets.Load()-w.fullLost[1],
			"for", time.Since(w.fullAt).Round(time.Millisecond))
	}
	errs = append(errs, w.closeErr)
	if err := w.marker.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close commit marker: %w", err))
	}
	if err := w.lockFile.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close lock file: %w", err))
	}
	return errors.Join(errs...)
}

// Stats returns a snapshot of the counters.
func (w *Writer) Stats() Stats {
	return Stats{
		BlocksCommitted:    w.st.blocks.Load(),
		PacketsCommitted:   w.st.packets.Load(),
		WireBytesCommitted: w.st.wire.Load(),
		RawBytes:           w.st.raw.Load(),
		StoredBytes:        w.st.stored.Load(),
		RawIncompressible:  w.st.rawIncompressible.Load(),
		RawBehind:          w.st.rawBehind.Load(),
		Rejected:           w.st.rejected.Load(),
		BlocksLost:         w.st.lost.Load(),
		PacketsLost:        w.st.lostPackets.Load(),
		DiskFullBlocks:     w.st.fullBlocks.Load(),
		DiskFullPackets:    w.st.fullPackets.Load(),
		DiskFull:           w.st.full.Load(),
		WriteErrors:        w.st.writeErrors.Load(),
		Fsyncs:             w.st.fsyncs.Load(),
		FsyncNanos:         w.st.fsyncNanos.Load(),
		CompressNanos:      w.st.compressNanos.Load(),
		WriteNanos:         w.st.writeNanos.Load(),
		FsyncMaxNanos:      w.st.fsyncMax.Load(),
		Segments:           w.st.segsCreate.Load(),
		Direct:             w.st.direct.Load(),
		Segment:            w.st.segment.Load(),
		SegmentMinTS:       w.st.segMinTS.Load(),
		CompressQueue:      len(w.compressQ),
		WriteQueue:         len(w.writeQ),
	}
}

// compressLoop compresses blocks into records, alternating between the two
// record buffers of free.
func (w *Writer) compressLoop(free chan *recBuf) {
	defer w.compWG.Done()
	for it := range w.compressQ {
		it.rb = <-free
		t0 := time.Now()
		buildRecord(it.rb, it.b, w.enc, w.opts.SubFrame)
		w.st.compressNanos.Add(uint64(time.Since(t0)))
		w.writeQ <- it
	}
}

// ageCheck is how often an idle writer checks its segment's age.
func (w *Writer) ageCheck() time.Duration { return min(w.opts.SegmentAge, time.Second) }

// writeLoop is the single goroutine that appends records, syncs in groups,
// calls hooks and rotates segments.
func (w *Writer) writeLoop() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	tick := time.NewTicker(w.ageCheck())
	defer tick.Stop()
	for {
		select {
		case it, ok := <-w.writeQ:
			if !ok {
				w.writeParked(timer)
				w.drain()
				w.closeSegment()
				close(w.syncQ)
				return
			}
			if it.seq != w.wantSeq { // an earlier block is still being compressed
				w.park(it)
				break
			}
			w.writeItem(it, timer)
			w.wantSeq++
			for {
				p := &w.parked[w.wantSeq%uint64(len(w.parked))]
				if p.b == nil || p.seq != w.wantSeq {
					break
				}
				it := *p
				*p = item{}
				w.writeItem(it, timer)
				w.wantSeq++
			}
		case g := <-w.resultQ:
			w.finish(g)
			if w.due() { // it waited for this group to come back
				w.endGroup()
			}
		case <-timer.C:
			w.endGroup()
		case <-tick.C:
			if w.f != nil && w.segBlocks > 0 && time.Since(w.segCreated) >= w.opts.SegmentAge {
				w.drain()
				timer.Stop()
				w.closeSegment()
			}
			// When traffic stops, no commit syncs the marker's last
			// rewrite: the tick does, so it is never more than about
			// MarkerSyncEvery plus a tick behind.
			w.syncMarker(false)
		}
	}
}

// park keeps a block that came before its turn, growing the ring when the
// blocks waiting span more than it holds (allocation only then: the blocks
// in flight are bounded by their pool).
func (w *Writer) park(it item) {
	if span := it.seq - w.wantSeq; span >= uint64(len(w.parked)) {
		old := w.parked
		w.parked = make([]item, max(2*uint64(len(old)), span+1))
		for _, p := range old {
			if p.b != nil {
				w.parked[p.seq%uint64(len(w.parked))] = p
			}
		}
	}
	w.parked[it.seq%uint64(len(w.parked))] = it
}

// writeItem writes one block in its turn and ends the group if it is due.
func (w *Writer) writeItem(it item, timer *time.Timer) {
	w.write(it)
	if it.rb != nil {
		it.rb.owner <- it.rb // written (or failed): the compressor may reuse it
	}
	g := w.open()
	if len(g.pending) == 0 {
		return
	}
	if g.since.IsZero() { // first of a new group: arm its deadline
		g.since = time.Now()
		timer.Reset(w.opts.SyncEvery)
	}
	if w.due() {
		w.endGroup()
		if len(w.open().pending) == 0 { // ended: its deadline is moot
			timer.Stop()
		}
	}
}

// writeParked writes, in order, any block still parked when the queues
// close. There should be none: every sequence number accepted arrives.
func (w *Writer) writeParked(timer *time.Timer) {
	for {
		var next *item
		for i := range w.parked {
			if p := &w.parked[i]; p.b != nil && (next == nil || p.seq < next.seq) {
				next = p
			}
		}
		if next == nil {
			return
		}
		w.log.Error("writer: BUG: a block's turn never came", "seq", next.seq, "want", w.wantSeq)
		it := *next
		*next = item{}
		w.writeItem(it, timer)
	}
}

// write appends one block record to the current segment, rotating first if
// the segment is full or old.
func (w *Writer) write(it item) {
	if !w.fullAt.IsZero() && time.Now().Before(w.retryAt) {
		if w.f != nil || !w.roomElsewhere() {
			w.lose(it.b, "block not stored", errDiskFull)
			return
		}
		w.retryAt = time.Time{} // another disk has room: try it now
	}
	if w.belowReserve() {
		w.lose(it.b, "block not stored", w.errReserve)
		return
	}
	rb := it.rb
	if rb == nil {
		rb = &w.rawRec
		buildRecord(rb, it.b, nil, 0)
		if rb.err == nil {
			w.st.rawBehind.Add(1)
		}
	}
	if rb.err != nil {
		w.lose(it.b, "block not stored", rb.err)
		return
	}
	n := int64(len(rb.rec))
	if w.f != nil && ((w.segBlocks > 0 && w.size+n > w.opts.SegmentSize) || time.Since(w.segCreated) >= w.opts.SegmentAge) {
		w.drain()
		w.closeSegment()
	}
	if w.f == nil {
		if err := w.openSegment(); err != nil {
			w.st.writeErrors.Add(1)
			w.lose(it.b, "block not stored", err)
			return
		}
	}
	ref := MakeRef(w.seg, uint32(w.size))
	t0 := time.Now()
	sealRecord(rb.rec, ref)
	var err error
	g := w.open()
	if w.direct {
		// Copied into the staging buffers; a write that fails fails
		// the group at its commit.
		w.dio.append(g, rb.rec)
	} else {
		_, err = w.ops.writeAt(w.f, rb.rec, w.size)
	}
	w.st.writeNanos.Add(uint64(time.Since(t0)))
	w.sinceAvail += n
	if err != nil {
		w.st.writeErrors.Add(1)
		w.lose(it.b, "block not stored", fmt.Errorf("write segment %q at %d: %w", w.path, w.size, err))
		// Cut what may have been written, so the next record follows a
		// clean end; if even that fails give the segment up. A full disk
		// among several gives it up too: the next block goes to a new
		// segment on a disk with room (pickDir).
		if terr := w.f.Truncate(w.size); terr != nil || (isDiskFull(err) && len(w.active) > 1) {
			w.drain()
			w.closeSegment()
		}
		return
	}
	if !w.fullAt.IsZero() {
		g.resumed = true
	}
	h := rb.h
	h.ref = ref
	g.pending = append(g.pending, pend{b: it.b, meta: h.meta()})
	g.bytes += n
	w.size += n
	w.segBlocks++
	if m := it.b.MinTS; w.segBlocks == 1 || m < w.st.segMinTS.Load() {
		w.st.segMinTS.Store(m)
	}
	if rb.incmp {
		w.st.rawIncompressible.Add(1)
	}
}

// MarkerSyncEvery bounds how long the commit marker's rewrites may stay in
// the page cache only: commit fdatasyncs it once this long has passed since
// the last sync, and closing a segment (rotation, Close) always does.
const MarkerSyncEvery = time.Second

// publish records in the commit marker that segment seg is committed up to
// size: one 24-byte pwrite at offset 0, inside one sector, so a crash
// leaves the old marker or the new one. Readers use it while this writer
// holds the store's lock, to show committed blocks and not those written
// but not yet synced; recovery never cuts the bytes it covers.
//
// It is not synced on every group commit. A process that dies leaves the
// rewrite in the page cache, so the marker is exact after a kill. Only a
// machine crash can find it behind, by at most MarkerSyncEvery (syncMarker),
// and the blocks committed in that second are still kept as long as they
// are valid: recovery cuts only bytes that do not form a valid block, and
// a synced block is valid unless it is also damaged. Syncing it before
// every group's hooks cost about a quarter of BenchmarkWriter's throughput
// (see the commit that made this choice).
func (w *Writer) publish(seg uint32, size int64) error {
	if _, err := w.marker.WriteAt(appendMarker(w.markBuf[:0], seg, size), 0); err != nil {
		return fmt.Errorf("write commit marker: %w", err)
	}
	w.markDirty = true
	return nil
}

// syncMarker fdatasyncs the commit marker if it was rewritten since the
// last sync and, unless force, MarkerSyncEvery has passed since then.
func (w *Writer) syncMarker(force bool) {
	if !w.markDirty || (!force && time.Since(w.markSynced) < MarkerSyncEvery) {
		return
	}
	w.markSynced = time.Now()
	if err := fdatasync(w.marker); err != nil {
		w.st.writeErrors.Add(1)
		w.log.Error("writer: cannot sync the commit marker: after a machine crash recovery may find it behind", "err", err)
		return
	}
	w.markDirty = false
}

// belowReserve says whether the filesystem's free space is under
// Options.Reserve, asking it every ops.availEvery (250 ms) and after every
// ops.availBytes (1 MiB) appended, whichever comes first: on a fast disk a
// time alone let a quarter second of writes (25 MB on a tmpfs, measured)
// past the reserve.
func (w *Writer) belowReserve() bool {
	if w.opts.Reserve <= 0 {
		return false
	}
	if now := time.Now(); (now.Sub(w.availAt) >= w.ops.availEvery || w.sinceAvail >= w.ops.availBytes) && w.ops.avail != nil {
		w.availAt, w.sinceAvail = now, 0
		if n, err := w.ops.avail(w.opts.Dir); err == nil {
			w.low = n < w.opts.Reserve
		}
	}
	return w.low
}

// errDiskFull is why blocks that arrive while the disk is full, between two
// attempts to write, are lost.
var errDiskFull = fmt.Errorf("disk full: %w", syscall.ENOSPC)

// lose releases a block that will not be committed, counting and logging it
// (the log is rate-limited). Running out of space is logged once when it
// starts and once when it ends (spaceBack); the blocks in between are
// counted as disk-full drops.
func (w *Writer) lose(b *block.Block, msg string, err error) {
	pkts := uint64(b.Count)
	w.st.lost.Add(1)
	w.st.lostPackets.Add(pkts)
	if isDiskFull(err) {
		w.st.fullBlocks.Add(1)
		w.st.fullPackets.Add(pkts)
		b.Release()
		now := time.Now()
		if err != errDiskFull { // a real attempt failed: wait before the next
			w.retryAt = now.Add(w.ops.retry)
			for _, g := range w.groups {
				g.resumed = false // a block written before this failure does not end the outage
			}
		}
		if w.fullAt.IsZero() {
			w.fullAt = now
			w.fullLost = [2]uint64{w.st.fullBlocks.Load() - 1, w.st.fullPackets.Load() - pkts}
			w.st.full.Store(true)
			w.log.Error("writer: disk full: dropping blocks until space returns", "dir", w.opts.Dir, "retry_every", w.ops.retry, "err", err)
		}
		return
	}
	b.Release()
	if w.firstErr == nil {
		w.firstErr = err
	}
	if now := time.Now(); now.Sub(w.errLogged) >= time.Second {
		w.log.Error("writer: "+msg, "err", err, "suppressed", w.errMuted)
		w.errLogged, w.errMuted = now, 0
	} else {
		w.errMuted++
	}
}

// spaceBack ends a disk-full outage once a block written after it began is
// committed (a write that succeeds is not enough: the sync may still fail),
// logging what the outage cost.
func (w *Writer) spaceBack() {
	if w.fullAt.IsZero() {
		return
	}
	w.log.Info("writer: disk space back: writing resumed",
		"dropped_blocks", w.st.fullBlocks.Load()-w.fullLost[0], "dropped_packets", w.st.fullPackets.Load()-w.fullLost[1],
		"for", time.Since(w.fullAt).Round(time.Millisecond))
	w.fullAt, w.retryAt = time.Time{}, time.Time{}
	for _, g := range w.groups {
		g.resumed = false
	}
	w.st.full.Store(false)
}

// pickDir is the directory for the next segment: the next of the active
// segment directories in turn that has room for a whole segment; where
// none has, the one with the most space (a write that then fails is a
// disk-full drop, counted as any other).
func (w *Writer) pickDir() string {
	n := len(w.active)
	best := w.nextDir % n
	if n > 1 && w.ops.avail != nil {
		var bestAvail int64 = -1
		for k := range n {
			i := (w.nextDir + k) % n
			a, err := w.ops.avail(w.active[i])
			if err != nil {
				continue
			}
			if a >= w.opts.SegmentSize {
				best = i
				break
			}
			if a > bestAvail {
				best, bestAvail = i, a
			}
		}
	}
	w.nextDir = (best + 1) % n
	return w.active[best]
}

// roomElsewhere says, while the disk is full and no segment is open,
// whether another active segment directory has room for a segment, so the
// writer goes on there at once instead of waiting to retry the full one.
func (w *Writer) roomElsewhere() bool {
	if len(w.active) < 2 || w.ops.avail == nil {
		return false
	}
	for _, d := range w.active {
		if d == w.segDir {
			continue
		}
		if a, err := w.ops.avail(d); err == nil && a >= w.opts.SegmentSize {
			return true
		}
	}
	return false
}

func (w *Writer) openSegment() error {
	seg := w.nextSeg
	if seg == 0 {
		return fmt.Errorf("store %q: segment numbers exhausted", w.opts.Dir)
	}
	w.nextSeg++
	now := time.Now()
	w.segDir = w.pickDir()
	f, path, err := w.ops.create(w.segDir, seg, now.UnixNano())
	if err != nil {
		return err
	}
	if w.dio != nil {
		w.direct = w.startDirect(f, path)
	}
	w.f, w.path, w.seg, w.size, w.segBlocks, w.segCreated = f, path, seg, segHeaderSize, 0, now
	w.synced = segHeaderSize
	w.st.segsCreate.Add(1)
	w.st.segMinTS.Store(0)
	w.st.segment.Store(seg)
	return nil
}

// startDirect turns O_DIRECT on for the new segment f and hands it to the
// direct path with its header (written by create through the page cache).
// Where that fails the writer falls back to buffered writes for good.
func (w *Writer) startDirect(f *os.File, path string) bool {
	hdr := w.hdrBuf[:]
	_, err := f.ReadAt(hdr, 0)
	if err == nil {
		if w.ops.setDirect != nil {
			err = w.ops.setDirect(f)
		} else {
			err = setDirect(f)
		}
	}
	if err != nil {
		w.log.Warn("writer: O_DIRECT failed on a new segment: buffered writes from now on", "path", path, "err", err)
		w.st.direct.Store(false)
		w.dio.close()
		w.dio = nil
		return false
	}
	w.dio.start(f, hdr)
	return true
}

// closeSegment closes the current segment and syncs the commit marker, so
// a sealed segment is durably marked committed whole once its successor
// exists. Callers drain first. A segment written with O_DIRECT is cut to
// its committed size first: its last page was written zero-padded, and a
// sealed segment is committed whole.
func (w *Writer) closeSegment() {
	if w.f == nil {
		return
	}
	w.syncMarker(true)
	if w.direct {
		w.direct = false
		err := w.f.Truncate(w.synced)
		if err == nil {
			err = w.ops.sync(w.f)
		}
		if err != nil {
			// Left as it is, the zeros past the committed size read as
			// damage once a later segment is committed: verify reports
			// them; no committed byte is at risk.
			w.st.writeErrors.Add(1)
			w.log.Error("writer: cannot cut the padding off a sealed segment", "path", w.path, "size", w.synced, "err", err)
		}
	}
	if err := w.f.Close(); err != nil {
		w.st.writeErrors.Add(1)
		err = fmt.Errorf("close segment %q: %w", w.path, err)
		w.log.Error("writer: close segment", "err", err)
		if w.closeErr == nil {
			w.closeErr = err
		}
	}
	w.f = nil
	w.st.segment.Store(0)
}
