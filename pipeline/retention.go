package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tapvault/index"
	"tapvault/msgstore"
	"tapvault/writer"
)

// DefaultRetentionEvery is the default of RetentionOptions.Every.
const DefaultRetentionEvery = 10 * time.Second

// RetentionLogName is the file in the store directory where every retention
// action is appended, one JSON object a line (see RetentionAction).
const RetentionLogName = "retention.log"

// Reasons of retention actions.
const (
	ReasonMaxBytes = "max_bytes"
	ReasonKeepFree = "keep_free"
	ReasonMaxAge   = "max_age"
)

// RetentionOptions limit what the store keeps. Every limit drops whole
// segments and whole message files, oldest (by the newest time each holds)
// first; the newest segment and the newest message file are never dropped.
// The zero value keeps everything.
type RetentionOptions struct {
	// MaxBytes is the budget of the segment and message files, in bytes;
	// 0 = none.
	MaxBytes int64
	// KeepFreePercent keeps this share of the filesystem holding the store
	// available (0-100); 0 = none.
	KeepFreePercent float64
	// MaxAge, by packet time: a segment whose newest packet is older than
	// the newest packet in the store minus MaxAge is dropped; 0 = none.
	MaxAge time.Duration
	// Every is the check interval (default DefaultRetentionEvery).
	Every time.Duration
	// Statfs returns the size and the bytes available to unprivileged users
	// of the filesystem holding path; nil means statfs(2). Tests inject it.
	Statfs func(path string) (total, avail uint64, err error)
}

// Enabled reports whether any limit is set.
func (o RetentionOptions) Enabled() bool {
	return o.MaxBytes > 0 || o.KeepFreePercent > 0 || o.MaxAge > 0
}

// RetentionAction is one segment or message file dropped by retention: one
// line of DIR/retention.log.
type RetentionAction struct {
	Time    time.Time `json:"time"`    // when it was dropped
	Segment uint32    `json:"segment"` // its number; 0 for a message file
	// MessageFile names a message file dropped (messages/NNNNNNNNNN.msg),
	// with its Records; Blocks and Packets are 0 then.
	MessageFile string `json:"message_file,omitempty"`
	Records     int64  `json:"records,omitempty"`
	Bytes       int64  `json:"bytes"` // its file size
	Blocks      int    `json:"blocks"`
	Packets     uint64 `json:"packets"`
	MinNS       int64  `json:"min_ns"` // packet time it covered
	MaxNS       int64  `json:"max_ns"`
	Reason      string `json:"reason"` // ReasonMaxBytes, ReasonKeepFree or ReasonMaxAge
}

// IsMessageFile says whether a is the drop of a message file, not a segment.
func (a RetentionAction) IsMessageFile() bool { return a.MessageFile != "" }

// RetentionLog reads the retention actions recorded in store dir, oldest
// first. A store that never dropped anything has none (and no error). A
// torn last line (a crash while appending) is ignored.
func RetentionLog(dir string) ([]RetentionAction, error) {
	path := filepath.Join(dir, RetentionLogName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read retention log: %w", err)
	}
	lines := bytes.Split(b, []byte("\n"))
	var out []RetentionAction
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var a RetentionAction
		if err := json.Unmarshal(line, &a); err != nil {
			if i == len(lines)-1 {
				break // torn last line: no newline after it
			}
			return out, fmt.Errorf("retention log %q line %d: %w", path, i+1, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func statfs(path string) (total, avail uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %q: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return st.Blocks * bs, st.Bavail * bs, nil
}

// retainer enforces RetentionOptions beside a run. It takes no lock the
// workers take: it lists segments from the directory, reads block headers
// through its own Reader, and drops through index.DropSegment (writes on
// its own) and writer.DropSegment (no lock of the write goroutine).
type retainer struct {
	opts RetentionOptions
	dir  string
	w    *writer.Writer
	ix   *index.Index     // nil without an index
	ms   *msgstore.Writer // the run's message writer, nil without analytics: rolled when its file holds a limit back
	r    *writer.Reader
	log  *slog.Logger

	spans map[uint32]writer.SegmentSpan // sealed segments: they never change
	// keptMin caches the oldest packet time of the segments that cannot go
	// (the newest, the open one), by number, once they hold a block: message
	// files with records that recent describe packets still kept.
	keptMin   map[uint32]int64
	ixPending []uint32 // segments whose index drop failed: retried
	stuck     bool     // "cannot meet the limit" logged

	drops    atomic.Int64 // segments
	bytes    atomic.Int64
	msgDrops atomic.Int64 // message files
	msgBytes atomic.Int64
	// Message files dropped although not yet shipped to the fleet
	// (keep_free only: the disk at its limit), and their records.
	unshippedFiles   atomic.Int64
	unshippedRecords atomic.Int64
	// ship is the fleet shipper's cursor when the store is shipped
	// (DIR/fleet/cursor exists), read at each check; nil otherwise.
	ship *msgstore.Cursor

	// step, in tests, is called after each durable step of a drop
	// ("index", "unlink", "log", "msg-unlink", "msg-log"); a panic there
	// leaves the store as a kill at that point would.
	step func(string)

	mu   sync.Mutex // serialises check (loop and final pass)
	quit chan struct{}
	done chan struct{}
}

func newRetainer(opts RetentionOptions, dir string, w *writer.Writer, ix *index.Index, log *slog.Logger) (*retainer, error) {
	if opts.Every <= 0 {
		opts.Every = DefaultRetentionEvery
	}
	if opts.Statfs == nil {
		opts.Statfs = statfs
	}
	if opts.KeepFreePercent < 0 || opts.KeepFreePercent >= 100 {
		return nil, fmt.Errorf("retention: KeepFreePercent %v outside [0, 100)", opts.KeepFreePercent)
	}
	if opts.MaxBytes < 0 || opts.MaxAge < 0 {
		return nil, errors.New("retention: negative limit")
	}
	r, err := writer.OpenReader(dir, writer.WithReaderLogger(log))
	if err != nil {
		return nil, err
	}
	return &retainer{
		opts: opts, dir: dir, w: w, ix: ix, r: r, log: log,
		spans:   make(map[uint32]writer.SegmentSpan),
		keptMin: make(map[uint32]int64),
		quit:    make(chan struct{}), done: make(chan struct{}),
	}, nil
}

// start runs the checks every opts.Every until stop.
func (rt *retainer) start() {
	go func() {
		defer close(rt.done)
		t := time.NewTicker(rt.opts.Every)
		defer t.Stop()
		for {
			select {
			case <-rt.quit:
				return
			case <-t.C:
				if err := rt.check(); err != nil {
					rt.log.Error("retention check failed", "err", err)
				}
			}
		}
	}()
}

// stop ends the loop and waits for it.
func (rt *retainer) stop() {
	close(rt.quit)
	<-rt.done
}

func (rt *retainer) close() error { return rt.r.Close() }

// setLimits replaces the limits (a SIGHUP reload); the next check applies
// them. The check interval and statfs function stay.
func (rt *retainer) setLimits(o RetentionOptions) {
	rt.mu.Lock()
	rt.opts.MaxBytes, rt.opts.KeepFreePercent, rt.opts.MaxAge = o.MaxBytes, o.KeepFreePercent, o.MaxAge
	rt.stuck = false
	rt.mu.Unlock()
}

// check applies every limit once, dropping the oldest sealed segments and
// message files while a limit is exceeded.
func (rt *retainer) check() error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.retryIndex()
	if !rt.opts.Enabled() {
		return nil // no limit (yet: a reload may set one)
	}
	rt.ship = rt.shipCursor()
	infos, err := rt.r.Segments()
	if err != nil {
		return err
	}
	wst := rt.w.Stats()
	live := wst.Segment
	// Everything but the newest segment (and the open one) may go.
	var c cands
	var total int64
	for i, si := range infos {
		total += si.Size
		if i == len(infos)-1 || si.Number == live {
			if si.Number == live && wst.SegmentMinTS != 0 {
				// The writer knows the segment it appends to exactly,
				// also after a clock stepped back within it.
				c.keep(wst.SegmentMinTS)
			}
			if m, ok := rt.keptMin[si.Number]; ok {
				c.keep(m)
			} else if sp, err := rt.r.Span(si); err == nil && sp.Blocks > 0 {
				rt.keptMin[si.Number] = sp.MinTS
				c.keep(sp.MinTS)
			}
			continue
		}
		sp, ok := rt.spans[si.Number]
		if !ok || sp.Size != si.Size {
			if sp, err = rt.r.Span(si); errors.Is(err, writer.ErrSegmentGone) {
				continue
			} else if err != nil {
				return err
			}
			rt.spans[si.Number] = sp
		}
		c.segs = append(c.segs, sp)
	}
	for n := range rt.spans { // forget segments no longer listed
		if !listed(infos, n) {
			delete(rt.spans, n)
		}
	}
	for n := range rt.keptMin {
		if !listed(infos, n) {
			delete(rt.keptMin, n)
		}
	}
	// Message files count like segments: every one but the newest and
	// those a writer has open may go.
	mfiles, err := msgstore.Files(rt.dir)
	if err != nil {
		rt.log.Error("retention: cannot list the message files", "err", err)
	}
	var newestMsg int64 // bytes of the message files that cannot go
	for i, fi := range mfiles {
		total += fi.Size
		if i == len(mfiles)-1 || fi.Live {
			newestMsg += fi.Size
			continue
		}
		c.msgs = append(c.msgs, msgCand{fi, fi.LastTime()})
	}
	if len(infos) == 0 && len(mfiles) == 0 {
		return nil
	}
	stuck := false
	var excess int64 // by how much the worst limit is missed after this pass

	if rt.opts.MaxAge > 0 {
		newest, any := int64(0), false
		for _, sp := range c.segs {
			if sp.Blocks > 0 && (!any || sp.MaxTS > newest) {
				newest, any = sp.MaxTS, true
			}
		}
		// The newest segment counts: the store's newest packet is usually
		// in it.
		if len(infos) > 0 {
			last := infos[len(infos)-1]
			if lsp, err := rt.r.Span(last); err == nil && lsp.Blocks > 0 && (!any || lsp.MaxTS > newest) {
				newest, any = lsp.MaxTS, true
			}
		}
		for _, fi := range mfiles {
			if fi.MaxTS != 0 && (!any || fi.MaxTS > newest) {
				newest, any = fi.MaxTS, true
			}
		}
		if any {
			cut := newest - int64(rt.opts.MaxAge)
			kept := c.segs[:0]
			for _, sp := range c.segs {
				if sp.Blocks > 0 && sp.MaxTS < cut {
					total -= rt.drop(&c, sp, ReasonMaxAge)
					continue
				}
				kept = append(kept, sp)
			}
			c.segs = kept
			total -= rt.dropMessagesBefore(&c, c.floor(cut, 0), ReasonMaxAge)
		}
	}

	if rt.opts.MaxBytes > 0 {
		for total > rt.opts.MaxBytes && c.canDrop() && !c.onlyMessagesShort(total-rt.opts.MaxBytes) {
			total -= rt.dropOldest(&c, ReasonMaxBytes)
		}
		if total > rt.opts.MaxBytes {
			stuck = true
			excess = max(excess, total-rt.opts.MaxBytes)
			rt.logStuck("max_bytes", "store_bytes", total, "max_bytes", rt.opts.MaxBytes)
		}
	}

	if rt.opts.KeepFreePercent > 0 {
		size, avail, err := rt.opts.Statfs(rt.dir)
		if err != nil {
			return err
		}
		want := uint64(rt.opts.KeepFreePercent / 100 * float64(size))
		// Space freed by this pass counts as available at once: the
		// filesystem may report it late (a reader still holding a file).
		var freed uint64
		for avail+freed < want && c.canDrop() && !c.onlyMessagesShort(int64(want-avail-freed)) {
			freed += uint64(rt.dropOldest(&c, ReasonKeepFree))
		}
		if avail+freed < want {
			stuck = true
			excess = max(excess, int64(want-avail-freed))
			rt.logStuck("keep_free", "avail_bytes", avail+freed, "want_bytes", want)
		}
		// Each further segment directory (a disk of its own) keeps the
		// same share free, by dropping the oldest segments it holds:
		// those on other disks would free nothing there. A segment
		// that is not the store's oldest may go, since records go only
		// with the packets of every segment kept (cands.floor).
		dirs, err := writer.SegmentDirs(rt.dir)
		if err != nil {
			return err
		}
		for _, d := range dirs[1:] {
			size, avail, err := rt.opts.Statfs(d)
			if err != nil {
				rt.logStuck("keep_free", "dir", d, "err", err)
				continue
			}
			want := uint64(rt.opts.KeepFreePercent / 100 * float64(size))
			var freed uint64
			for avail+freed < want {
				n, ok := rt.dropOldestIn(&c, d, ReasonKeepFree)
				if !ok {
					break
				}
				freed += uint64(n)
			}
			if avail+freed < want {
				stuck = true
				rt.logStuck("keep_free", "dir", d, "avail_bytes", avail+freed, "want_bytes", want)
			}
		}
	}
	if stuck && rt.ms != nil && newestMsg >= excess {
		// The message file being written holds the limit back: the writer
		// starts a new one at its next frame, so the next check can drop
		// this one. Not when the newest segment holds it back anyway (a
		// budget smaller than a segment): records would be dropped for
		// nothing.
		rt.ms.Roll()
	}
	if !stuck {
		rt.stuck = false
	}
	return nil
}

// cands are what a check may still drop, each list oldest first.
type cands struct {
	segs []writer.SegmentSpan
	msgs []msgCand
	// keptMin is the oldest packet time of the segments that cannot go;
	// hasKept says whether there is one.
	keptMin int64
	hasKept bool
}

// keep notes the oldest packet time of a segment that cannot be dropped.
func (c *cands) keep(minTS int64) {
	if !c.hasKept || minTS < c.keptMin {
		c.keptMin, c.hasKept = minTS, true
	}
}

// msgDroppable says whether the oldest message candidate may go: only when
// its records all end before every packet still kept, so that records age
// out with the packets they describe and never before them (the segments of
// that time go first).
func (c *cands) msgDroppable() bool {
	if len(c.msgs) == 0 {
		return false
	}
	last := c.msgs[0].last
	if !c.hasKept || last >= c.keptMin {
		// Without a committed block in the newest segment, the packets of
		// the newest records may still be on their way to it.
		return false
	}
	for _, sp := range c.segs {
		if sp.Blocks > 0 && last >= sp.MinTS {
			return false
		}
	}
	return true
}

// floor caps ts at the oldest packet still kept: of the segments that
// cannot go and of the candidates but segment except (the one being
// dropped). Message files whose records end before it describe no packet
// kept. Segments' time ranges overlap (several workers, a clock stepped
// back, files imported out of time order), so a segment's newest packet
// alone is not that bound.
func (c *cands) floor(ts int64, except uint32) int64 {
	if c.hasKept && c.keptMin < ts {
		ts = c.keptMin
	}
	for _, sp := range c.segs {
		if sp.Number != except && sp.Blocks > 0 && sp.MinTS < ts {
			ts = sp.MinTS
		}
	}
	return ts
}

// canDrop says whether dropOldest has anything it may drop.
func (c *cands) canDrop() bool { return len(c.segs) > 0 || c.msgDroppable() }

type msgCand struct {
	msgstore.FileInfo
	last int64 // LastTime: what it is aged by
}

// onlyMessagesShort says whether only message files are left to drop and
// all of them together are fewer bytes than need: dropping them would not
// meet the limit (the newest segment holds it back until it is sealed), so
// records of packets still kept are not dropped for nothing.
func (c *cands) onlyMessagesShort(need int64) bool {
	if len(c.segs) > 0 {
		return false
	}
	var n int64
	for _, m := range c.msgs {
		n += m.Size
	}
	return n < need
}

// dropOldest drops the oldest candidate and returns the bytes freed: a
// message file whose records all end before every packet kept (msgDroppable),
// else the oldest segment (which takes the message files of its time along).
func (rt *retainer) dropOldest(c *cands, reason string) int64 {
	if len(c.segs) > 0 && !c.msgDroppable() {
		sp := c.segs[0]
		c.segs = c.segs[1:]
		return rt.drop(c, sp, reason)
	}
	m := c.msgs[0]
	c.msgs = c.msgs[1:]
	return rt.dropMessage(m, reason)
}

// dropOldestIn drops the oldest candidate segment in segment directory
// dir, if there is one, and returns the bytes freed there.
func (rt *retainer) dropOldestIn(c *cands, dir, reason string) (int64, bool) {
	for i, sp := range c.segs {
		if filepath.Dir(sp.Path) == dir {
			c.segs = slices.Delete(c.segs, i, i+1)
			// drop's count includes message files, which are on the
			// store directory's filesystem; 0 if the segment stayed.
			return min(rt.drop(c, sp, reason), sp.Size), true
		}
	}
	return 0, false
}

// dropMessagesBefore drops the message candidates whose records all end
// before ts and returns the bytes freed.
func (rt *retainer) dropMessagesBefore(c *cands, ts int64, reason string) int64 {
	var freed int64
	kept := c.msgs[:0]
	for _, m := range c.msgs {
		if m.last < ts {
			freed += rt.dropMessage(m, reason)
			continue
		}
		kept = append(kept, m)
	}
	c.msgs = kept
	return freed
}

// dropMessage removes a message file and records the action; it returns
// the bytes freed (0 when the file could not go).
func (rt *retainer) dropMessage(m msgCand, reason string) int64 {
	unshipped := rt.ship != nil && !rt.ship.Covers(m.FileInfo)
	if unshipped && reason != ReasonKeepFree {
		return 0 // kept until the shipper has passed it
	}
	if err := msgstore.DropFile(rt.dir, m.FileInfo); err != nil {
		if !errors.Is(err, msgstore.ErrLiveFile) {
			rt.log.Error("retention: message file not dropped", "file", m.Path, "err", err)
		}
		return 0
	}
	rt.stepDone("msg-unlink")
	rt.msgDrops.Add(1)
	rt.msgBytes.Add(m.Size)
	if unshipped {
		// The disk is at its limit: records the fleet has not received
		// go, counted and said, rather than the capture stalling.
		rt.unshippedFiles.Add(1)
		rt.unshippedRecords.Add(m.Records)
		rt.log.Warn("retention: the disk is at its limit: dropped a message file not yet shipped to the fleet", "file", m.Path, "records", m.Records, "cursor", rt.ship.String())
	}
	a := RetentionAction{Time: time.Now().UTC(), MessageFile: filepath.Base(m.Path), Records: m.Records, Bytes: m.Size,
		MinNS: m.MinTS, MaxNS: m.MaxTS, Reason: reason}
	rt.log.Info("retention: message file dropped", "file", m.Path, "bytes", m.Size, "records", m.Records, "reason", reason,
		"last", time.Unix(0, m.last).UTC())
	if err := appendRetentionLog(rt.dir, a); err != nil {
		rt.log.Error("retention: action not recorded", "file", m.Path, "err", err)
	}
	rt.stepDone("msg-log")
	return m.Size
}

func (rt *retainer) stepDone(name string) {
	if rt.step != nil {
		rt.step(name)
	}
}

func listed(infos []writer.SegmentInfo, n uint32) bool {
	for _, si := range infos {
		if si.Number == n {
			return true
		}
	}
	return false
}

// logStuck says, once until the limit is met again, that only the newest
// segment is left and the limit still does not hold. Capture goes on.
func (rt *retainer) logStuck(limit string, args ...any) {
	if rt.stuck {
		return
	}
	rt.stuck = true
	rt.log.Warn("retention: limit exceeded but only the segment being written is left; waiting for it to be sealed",
		append([]any{"limit", limit}, args...)...)
}

// drop removes segment sp: first its index entries, then its file, then
// records the action (see docs/retention.md for why in this order); then
// the message files whose records all end before its newest packet, which
// go with the packets they describe. It returns the bytes freed.
func (rt *retainer) drop(c *cands, sp writer.SegmentSpan, reason string) int64 {
	if rt.ix != nil {
		if err := rt.dropIndex(sp.Number); err != nil {
			// Go on: the disk limit matters more, readers skip refs to a
			// removed segment, and the index drop is retried.
			if !errors.Is(err, errIndexBehind) {
				rt.log.Error("retention: index entries not dropped; will retry", "segment", sp.Number, "err", err)
			}
			rt.ixPending = append(rt.ixPending, sp.Number)
		}
		rt.stepDone("index")
	}
	if err := rt.w.DropSegment(sp.Number); err != nil {
		rt.log.Error("retention: segment not dropped", "segment", sp.Number, "err", err)
		return 0
	}
	rt.stepDone("unlink")
	delete(rt.spans, sp.Number)
	rt.drops.Add(1)
	rt.bytes.Add(sp.Size)
	a := RetentionAction{Time: time.Now().UTC(), Segment: sp.Number, Bytes: sp.Size, Blocks: sp.Blocks, Packets: sp.Packets,
		MinNS: sp.MinTS, MaxNS: sp.MaxTS, Reason: reason}
	rt.log.Info("retention: segment dropped", "segment", sp.Number, "bytes", sp.Size, "reason", reason,
		"blocks", sp.Blocks, "first", time.Unix(0, sp.MinTS).UTC(), "last", time.Unix(0, sp.MaxTS).UTC())
	if err := appendRetentionLog(rt.dir, a); err != nil {
		rt.log.Error("retention: action not recorded", "segment", sp.Number, "err", err)
	}
	rt.stepDone("log")
	return sp.Size + rt.dropMessagesBefore(c, c.floor(sp.MaxTS, sp.Number), reason)
}

// dropIndex removes segment seg's index entries. Blocks of a recent segment
// may still sit in the index's queue or open groups, which DropSegment does
// not touch: flush them to disk first so they go too.
// errIndexBehind defers an index drop: the index has not yet written all of
// the segment, and keys written after the drop would come back.
var errIndexBehind = errors.New("the index has not caught up with the segment yet")

// dropIndex removes a segment's index entries once the index has written
// everything of it (its watermark is past the segment); until then it is
// deferred, never waited for: flushing an index that is behind could take
// as long as its backlog, and the disk limit must not wait. Readers skip
// refs into a removed segment in the meantime.
func (rt *retainer) dropIndex(seg uint32) error {
	if wm := rt.ix.Watermark(); wm == 0 || seg >= wm.Segment() {
		return errIndexBehind
	}
	return rt.ix.DropSegment(seg, nil)
}

func (rt *retainer) retryIndex() {
	if rt.ix == nil || len(rt.ixPending) == 0 {
		return
	}
	left := rt.ixPending[:0]
	for _, seg := range rt.ixPending {
		if err := rt.dropIndex(seg); err != nil {
			left = append(left, seg)
		}
	}
	rt.ixPending = left
}

// fleetCursorFile is where the fleet shipper keeps its cursor
// (fleet.CursorPath, fleet/cursor.go): a JSON object whose "messages" is a
// msgstore.Cursor's text. Read here rather than through package fleet,
// which is downstream of the pipeline.
const fleetCursorFile = "fleet/cursor"

// shipCursor returns the shipper's cursor, or nil when the store is not
// shipped. A cursor file that cannot be read keeps every message file (the
// zero cursor): unshipped records are not dropped on a guess.
func (rt *retainer) shipCursor() *msgstore.Cursor {
	c, err := fleetCursor(rt.dir)
	if err != nil {
		rt.log.Error("retention: cannot read the fleet cursor: keeping every message file until it is fixed", "err", err)
		return &msgstore.Cursor{}
	}
	return c
}

// fleetCursor reads the message cursor of the fleet shipper of the store in
// dir: nil when the store is not shipped.
func fleetCursor(dir string) (*msgstore.Cursor, error) {
	b, err := os.ReadFile(filepath.Join(dir, fleetCursorFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		Messages string `json:"messages"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("fleet cursor %s: %w", fleetCursorFile, err)
	}
	c, err := msgstore.ParseCursor(f.Messages)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// appendRetentionLog appends one action to DIR/retention.log and syncs it.
func appendRetentionLog(dir string, a RetentionAction) error {
	line, err := json.Marshal(a)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	path := filepath.Join(dir, RetentionLogName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open retention log: %w", err)
	}
	_, err = f.Write(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append retention log %q: %w", path, err)
	}
	return nil
}
