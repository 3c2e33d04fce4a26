package index

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"tapvault/packet"
	"tapvault/writer"
)

// SummaryReader gives the encoded summary (block.AppendSummary format) of a
// committed block. The returned slice may alias dst.
//
// The bitmap layout answers every query exactly from the index alone, so the
// index does not need it today; it is accepted so that a future coarser
// layout can check candidate blocks without an API change.
type SummaryReader interface {
	Summary(ref writer.Ref, dst []byte) ([]byte, error)
}

// Compression is the Badger table compression.
type Compression uint8

// Table compressions. Snappy is the default: on IMIX with 10k flows it
// measured 0.30% of packet bytes against 0.24% for zstd level 1 and 0.37%
// uncompressed, for about 10 us less CPU per block than zstd; the CPU goal
// is the tighter one (docs/format/index.md).
const (
	CompressionSnappy Compression = iota
	CompressionZSTD
	CompressionNone
)

// Options configure Open.
type Options struct {
	// Dir holds the Badger files, e.g. store/index.
	Dir string
	// Logger receives the index's own messages and Badger's warnings and
	// errors. Nil means slog.Default().
	Logger *slog.Logger
	// QueueLen bounds the blocks handed over by the commit hook and not yet
	// aggregated. A full queue drops the block from the live index and
	// counts it (Stats.QueueDrops); CatchUp indexes it later. Default 256.
	QueueLen int
	// QueueBytes bounds the memory of that queue: the flow keys the hook
	// copies (42 bytes a flow) for the queued blocks and the free entries
	// kept for reuse. A block that does not fit is dropped from the live
	// index like one finding the queue full (counted in Stats.QueueDrops, a
	// hole CatchUp fills). Default DefaultQueueBytes.
	QueueBytes int64
	// Summaries may be nil; see SummaryReader.
	Summaries SummaryReader
	// Create makes Open create an empty index when Dir holds none. Without
	// it a missing index is reported as ErrMissing.
	Create bool
	// MaxGroupAge bounds how long a partly filled group of blocks stays in
	// memory before it is written. Default 10s.
	MaxGroupAge time.Duration
	// Compression of Badger tables. Default CompressionSnappy.
	Compression Compression
	// MemTableSize is Badger's memtable size. Default 16 MiB.
	MemTableSize int64
	// ReadOnly opens the index for queries only: Badger takes a shared
	// lock, so several readers may open it at once (but not while a writer
	// holds it), and nothing is written. Hook, Add and CatchUp must not be
	// used.
	ReadOnly bool
	// BlockCacheSize is Badger's block cache. Default 32 MiB.
	BlockCacheSize int64
	// TableBlockSize is the size of Badger's table blocks, the unit of
	// compression. Default 16 KiB.
	TableBlockSize int
	// MinFree is the free space (bytes available on Dir's filesystem)
	// below which the index stops writing: Badger writes through
	// memory-mapped files, and a page that cannot be backed kills the
	// process (SIGBUS) instead of returning ENOSPC. While paused, blocks
	// stay unindexed (found by the header scan that covers what is past
	// the watermark, and by CatchUp once there is room). Default 4 x
	// MemTableSize + 64 MiB; negative: never pause.
	MinFree int64
	// SketchAbove is the share of a group's stored bytes above which its
	// exact keys (by writeGroup's estimate: about 35 bytes a key) make it
	// be written as sketches, when they are also less than half the size
	// (sketch.go). Default 0.02; negative: never (exact keys always).
	SketchAbove float64
	// VerifyAll makes Open verify every block checksum of every table,
	// whatever the VERIFIED list says (see verifiedFile): for verify.
	VerifyAll bool
}

// ErrMissing is returned (wrapped) by Open when Dir holds no index and
// Options.Create is false. The caller rebuilds it with Create and CatchUp.
var ErrMissing = errors.New("index missing")

// ErrBusy is returned (wrapped) by Open when another process, or another
// Index in this one, holds the directory: a capture holds it exclusively,
// read-only openers share it. The message keeps Badger's own text.
var ErrBusy = errors.New("index in use")

// badgerLockMsg is part of Badger v4's error for a held directory lock.
const badgerLockMsg = "Another process is using this Badger database"

// ErrCorrupt is matched by errors.Is for a *CorruptError.
var ErrCorrupt = errors.New("index corrupt")

// ErrReadOnly is returned by writing calls on an Index opened ReadOnly.
var ErrReadOnly = errors.New("index opened read-only")

// ErrClosed is returned by calls on a closed Index.
var ErrClosed = errors.New("index closed")

// CorruptError reports an index directory that exists but cannot be used:
// Badger refused it, or it lacks or mismatches the format marker. The caller
// removes Dir and rebuilds the index from the segments.
type CorruptError struct {
	Dir string
	Err error
}

func (e *CorruptError) Error() string { return fmt.Sprintf("index %q corrupt: %v", e.Dir, e.Err) }
func (e *CorruptError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Stats are the index's counters.
type Stats struct {
	Blocks     uint64        // blocks written to the index
	Groups     uint64        // groups written
	Sketched   uint64        // of them, written as sketches (sketch.go)
	Keys       uint64        // keys set
	Deletes    uint64        // keys deleted (retention, hole markers)
	QueueDrops uint64        // blocks the hook dropped: "index queue full" (QueueLen or QueueBytes)
	QueueBytes int64         // flow-key bytes the queue holds now (bounded by Options.QueueBytes)
	StopShed   uint64        // blocks left unindexed at a stop deadline (SetDeadline): holes for the next Open's CatchUp
	Lag        int           // blocks committed but not yet durable in the index
	Holes      int           // dropped blocks not yet indexed again
	BatchTime  time.Duration // total time spent writing groups
	Watermark  writer.Ref
	CaughtUp   bool // CatchUp has run since Open
}

// entry is one committed block waiting for the batcher: a copy of what the
// hook was lent.
type entry struct {
	meta    writer.BlockMeta
	nonFlow uint32
	flows   []packet.FlowKey
}

// keyValue is a key writeGroup sets, with its value (nil but for sketches).
type keyValue struct{ k, v []byte }

// Index is the Badger index of one store. It is safe for concurrent use.
type Index struct {
	db   *badger.DB
	opts Options
	log  *slog.Logger

	// pmu guards the hand-over from the hook. Lock order: gmu, then pmu.
	pmu     sync.Mutex
	pending []*entry
	free    []*entry
	holes   map[writer.Ref]bool // dropped blocks; true once persisted
	qheld   int64               // bytes of the flow-key slices of pending and free entries
	live    writer.Ref          // first ref hooked since Open
	hasLive bool
	wake    chan struct{}

	// gmu guards the in-memory groups and the segment table.
	gmu     sync.RWMutex
	open    []*group
	writing []*group
	gfree   []*group
	segs    map[uint32]segInfo

	// wmu serialises group writes, and guards what they update.
	wmu       sync.Mutex
	arena     []byte
	keyList   []keyValue
	attrs     *attrSet
	sketches  sketchBuilder
	sketched  atomic.Uint64      // groups written as sketches
	diskSegs  map[uint32]segInfo // S keys as persisted
	wm        writer.Ref
	hasWM     bool
	caughtUp  bool
	parked    []writer.Ref
	nextGenAt map[writer.Ref]uint8

	spans spanCache

	blocks, groups, keys, deletes, drops atomic.Uint64
	stopAt                               atomic.Int64 // Unix ns from which nothing more is written (SetDeadline); 0: none
	stopShed                             atomic.Uint64
	batchNS                              atomic.Int64

	lowDisk   atomic.Bool  // writes paused: the filesystem is nearly full
	diskAt    atomic.Int64 // Unix ns of the last free-space check
	lowPauses atomic.Uint64

	flushReq chan chan error
	quit     chan struct{}
	done     chan struct{}
	closed   atomic.Bool
	closeMu  sync.Mutex
}

// Open opens the index in opts.Dir. A missing index gives ErrMissing unless
// opts.Create is set; an unusable one gives a *CorruptError.
func Open(opts Options) (*Index, error) {
	if opts.Dir == "" {
		return nil, errors.New("open index: no directory")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 256
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	if opts.SketchAbove == 0 {
		opts.SketchAbove = 0.02
	}
	if opts.MaxGroupAge <= 0 {
		opts.MaxGroupAge = 10 * time.Second
	}
	if opts.MinFree == 0 {
		mt := opts.MemTableSize
		if mt <= 0 {
			mt = 16 << 20
		}
		opts.MinFree = 4*mt + 64<<20
	}
	if opts.MemTableSize <= 0 {
		opts.MemTableSize = 16 << 20
	}
	if opts.BlockCacheSize <= 0 {
		opts.BlockCacheSize = 32 << 20
	}
	if opts.TableBlockSize <= 0 {
		opts.TableBlockSize = 16 << 10
	}
	exists, err := hasBadgerFiles(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("open index %q: %w", opts.Dir, err)
	}
	if !exists {
		// Tables or logs without the MANIFEST that names them: Badger
		// would start an empty index and replay the logs into it, a
		// partial index that looks whole.
		if left, _ := filepath.Glob(filepath.Join(opts.Dir, "*.[sm][se][tm]")); len(left) > 0 {
			return nil, &CorruptError{Dir: opts.Dir, Err: fmt.Errorf("no MANIFEST, but %d table or log files", len(left))}
		}
		if !opts.Create {
			return nil, fmt.Errorf("open index %q: %w", opts.Dir, ErrMissing)
		}
	}
	bo := badgerOptions(opts)
	if exists {
		if heldByOther(opts.Dir, opts.ReadOnly) {
			return nil, fmt.Errorf("open index %q: %w", opts.Dir, ErrBusy)
		}
		if opts.ReadOnly {
			// Checked before Badger maps anything: the write-ahead log is
			// preallocated sparse, and on a full tmpfs even reading its
			// holes needs pages (SIGBUS).
			if mem, err := memFiles(opts.Dir); err != nil {
				return nil, fmt.Errorf("open index %q: %w", opts.Dir, err)
			} else if len(mem) > 0 {
				return nil, fmt.Errorf("open index %q: %w (%d write-ahead logs to replay; the next capture, import or reindex does)", opts.Dir, ErrUnclean, len(mem))
			}
		}
		if err := checkFiles(opts.Dir, bo, opts.VerifyAll); err != nil {
			return nil, err
		}
	}
	var db *badger.DB
	err = recovered(func() error {
		var err error
		db, err = badger.Open(bo)
		return err
	})
	if err != nil {
		switch msg := err.Error(); {
		case strings.Contains(msg, badgerLockMsg):
			// Badger formats the lock error with %v: the message is all
			// there is to tell it from damage.
			return nil, fmt.Errorf("open index %q: %w: %v", opts.Dir, ErrBusy, err)
		case opts.ReadOnly && strings.Contains(msg, badger.ErrTruncateNeeded.Error()):
			return nil, fmt.Errorf("open index %q: %w: %v", opts.Dir, ErrUnclean, err)
		}
		return nil, &CorruptError{Dir: opts.Dir, Err: err}
	}
	ix := &Index{
		db:        db,
		opts:      opts,
		log:       opts.Logger.With("component", "index"),
		holes:     make(map[writer.Ref]bool),
		wake:      make(chan struct{}, 1),
		segs:      make(map[uint32]segInfo),
		attrs:     newAttrSet(),
		diskSegs:  make(map[uint32]segInfo),
		nextGenAt: make(map[writer.Ref]uint8),
		spans:     spanCache{max: 128},
		flushReq:  make(chan chan error),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if err := recovered(func() error { return ix.load(!exists) }); err != nil {
		db.Close()
		var ce *CorruptError
		if !errors.As(err, &ce) {
			err = &CorruptError{Dir: opts.Dir, Err: err}
		}
		return nil, err
	}
	go ix.run()
	return ix, nil
}

// hasBadgerFiles reports whether dir holds a Badger manifest.
func hasBadgerFiles(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, badger.ManifestFilename))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// valueThreshold is the largest value kept in Badger's tables: 128 KiB,
// or less where the memtable is small (below 15 % of it, half of Badger's
// batch limit), and never below the 1 KiB of before sketches.
func valueThreshold(memTable int64) int64 {
	return max(1<<10, min(128<<10, memTable*15/100/2))
}

// badgerOptions are the Badger options of an index with opts.
func badgerOptions(opts Options) badger.Options {
	bo := badger.DefaultOptions(opts.Dir).
		WithLogger(slogBadger{opts.Logger.With("component", "badger")}).
		WithMemTableSize(opts.MemTableSize).
		WithBlockSize(opts.TableBlockSize).
		WithNumMemtables(3).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(12).
		WithNumCompactors(2).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		// Keys only but for the sketches (sketch.go, up to about 100 KB
		// a block): they stay in the tables, so that dropping a segment's
		// keys frees them in compactions, up to a threshold below
		// Badger's batch limit (15% of the memtable), which lets small
		// memtables open.
		WithValueThreshold(valueThreshold(opts.MemTableSize)).
		WithBloomFalsePositive(0). // only prefix scans: blooms never help
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithNumVersionsToKeep(1).
		// Every block read checks its checksum: a table the VERIFIED list
		// vouched for (only its footer and block index checked at open)
		// that rotted since gives Badger an error, not garbage, in the
		// compactors' goroutines where a panic cannot be recovered.
		WithChecksumVerificationMode(options.OnBlockRead).
		WithReadOnly(opts.ReadOnly)
	switch opts.Compression {
	case CompressionZSTD:
		bo = bo.WithCompression(options.ZSTD).WithZSTDCompressionLevel(1)
	case CompressionNone:
		bo = bo.WithCompression(options.None)
	default:
		bo = bo.WithCompression(options.Snappy)
	}
	return bo
}

// load reads the format marker, segment table, holes and watermark: the
// small key kinds, each one prefix scan.
func (ix *Index) load(created bool) error {
	fk := appendFormatKey(nil)
	txnFn := ix.db.Update
	if ix.opts.ReadOnly {
		txnFn = ix.db.View
	}
	return txnFn(func(txn *badger.Txn) error {
		var found, older bool
		fk2 := appendFormatKeyVersion(nil, formatVersionNoSketch)
		err := scanPrefix(txn, []byte{kindFormat}, func(k []byte) error {
			switch string(k) {
			case string(fk):
			case string(fk2):
				older = true
			default:
				return fmt.Errorf("format marker %x, this build writes %x", k, fk)
			}
			found = true
			return nil
		})
		if err == nil && older && !ix.opts.ReadOnly {
			// Sketch keys may follow: an older build must not take the
			// index for one it knows (formatVersion).
			if err = txn.Set(fk, nil); err == nil {
				err = txn.Delete(fk2)
			}
		}
		if err == nil {
			err = scanPrefix(txn, []byte{kindSegment}, func(k []byte) error {
				s, err := parseSegmentKey(k)
				if err != nil {
					return err
				}
				if old, ok := ix.diskSegs[s.Seg]; ok {
					s = mergeSeg(old, s)
				}
				ix.diskSegs[s.Seg] = s
				ix.segs[s.Seg] = s
				return nil
			})
		}
		if err == nil {
			err = scanPrefix(txn, []byte{kindMissing}, func(k []byte) error {
				r, err := parseRefKey(k, kindMissing)
				ix.holes[r] = true
				return err
			})
		}
		if err == nil {
			err = scanPrefix(txn, []byte{kindWatermark}, func(k []byte) error {
				r, err := parseRefKey(k, kindWatermark)
				if err == nil && (!ix.hasWM || r > ix.wm) {
					ix.wm, ix.hasWM = r, true
				}
				return err
			})
		}
		if err != nil {
			return &CorruptError{Dir: ix.opts.Dir, Err: err}
		}
		if found {
			return nil
		}
		if !created {
			return &CorruptError{Dir: ix.opts.Dir, Err: errors.New("no format marker: not a tapvault index")}
		}
		return txn.Set(fk, nil)
	})
}

// scanPrefix calls fn with every key starting with prefix. The key is
// borrowed: valid only during the call.
func scanPrefix(txn *badger.Txn, prefix []byte, fn func(k []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		if err := fn(it.Item().Key()); err != nil {
			return err
		}
	}
	return nil
}

func mergeSeg(a, b segInfo) segInfo {
	if b.MinTS < a.MinTS {
		a.MinTS = b.MinTS
	}
	if b.MaxTS > a.MaxTS {
		a.MaxTS = b.MaxTS
	}
	return a
}

// slogBadger routes Badger's log to slog: warnings and errors only.
type slogBadger struct{ l *slog.Logger }

func (s slogBadger) Errorf(f string, a ...any)   { s.l.Error(trimNL(fmt.Sprintf(f, a...))) }
func (s slogBadger) Warningf(f string, a ...any) { s.l.Warn(trimNL(fmt.Sprintf(f, a...))) }
func (s slogBadger) Infof(string, ...any)        {}
func (s slogBadger) Debugf(string, ...any)       {}

func trimNL(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}
