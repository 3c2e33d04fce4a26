package index

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
	"golang.org/x/sys/unix"
)

// ErrUnclean is returned (wrapped) by a ReadOnly Open of an index whose
// writer did not close it (killed, or the machine stopped): Badger must
// replay and truncate its write-ahead log (*.mem), which only a read-write
// open does. It is not damage: the next capture, import or reindex replays
// it, and until then queries scan block headers and get the same answer.
var ErrUnclean = errors.New("index not closed cleanly")

// checkFiles looks at the Badger files in dir before Badger opens them, and
// gives a *CorruptError for damage Badger would not report as an error:
//
//   - Badger opens its tables in goroutines of its own, and a table whose
//     footer is damaged (any truncation, many bit flips) panics there
//     (table.initIndex, slice bounds out of range), where no recover of the
//     caller can catch it: the whole process dies.
//   - A table whose block checksum fails is logged and skipped
//     ("CHECKSUM_MISMATCH ... Ignoring table"): its keys silently vanish,
//     and queries would miss blocks the watermark says are indexed.
//   - A MANIFEST cut in the middle of a change replays as its prefix; a
//     read-write open truncates it there, then deletes the tables it no
//     longer names. Kill -9 cannot cut a change (one write, then fsync), so
//     this is damage, not a crash.
//
// So every table the MANIFEST names is opened here, in this goroutine under
// recover, with every block's checksum verified (which decompresses the
// whole index once: ~0.3% of the packet bytes), and the MANIFEST must replay
// to its last byte. The other files (KEYREGISTRY, *.vlog, DISCARD, *.mem)
// Badger reads in the caller's goroutine: their damage is an error or a
// panic that openBadger recovers.
func checkFiles(dir string, bo badger.Options) error {
	corrupt := func(format string, a ...any) error {
		return &CorruptError{Dir: dir, Err: fmt.Errorf(format, a...)}
	}
	path := filepath.Join(dir, badger.ManifestFilename)
	fp, err := os.Open(path)
	if err != nil {
		return corrupt("open MANIFEST: %v", err)
	}
	fi, err := fp.Stat()
	if err != nil {
		fp.Close()
		return corrupt("stat MANIFEST: %v", err)
	}
	var (
		mf  badger.Manifest
		end int64
	)
	err = recovered(func() error {
		var err error
		mf, end, err = badger.ReplayManifestFile(fp, bo.ExternalMagicVersion, bo)
		return err
	})
	fp.Close()
	if err != nil {
		return corrupt("MANIFEST: %v", err)
	}
	if end != fi.Size() {
		return corrupt("MANIFEST: a damaged or partial change at byte %d of %d", end, fi.Size())
	}

	type job struct {
		id uint64
		tm badger.TableManifest
	}
	jobs := make(chan job)
	var (
		mu    sync.Mutex
		first error
	)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := checkTable(dir, j.id, j.tm, bo); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for id, tm := range mf.Tables {
		jobs <- job{id, tm}
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return &CorruptError{Dir: dir, Err: first}
	}
	return nil
}

// checkTable opens one table with every block's checksum verified, as
// Badger would but where a panic can be recovered.
func checkTable(dir string, id uint64, tm badger.TableManifest, bo badger.Options) error {
	name := table.NewFilename(id, dir)
	if tm.KeyID != 0 {
		return fmt.Errorf("table %s: encrypted (key %d), this build never encrypts", filepath.Base(name), tm.KeyID)
	}
	mf, err := z.OpenMmapFile(name, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("table %s named by the MANIFEST: %v", filepath.Base(name), err)
	}
	var t *table.Table
	err = recovered(func() error {
		var err error
		t, err = table.OpenTable(mf, table.Options{
			ReadOnly:    true,
			BlockSize:   bo.BlockSize,
			Compression: tm.Compression,
			ChkMode:     options.OnTableRead,
		})
		return err
	})
	if err != nil {
		// OpenTable closes the file on some errors only; a second
		// close of an unmapped file is harmless.
		mf.Close(-1)
		return fmt.Errorf("table %s: %v", filepath.Base(name), err)
	}
	t.Close(-1)
	return nil
}

// recovered runs fn and turns a panic into an error. Badger panics on some
// damaged files (out-of-range slices, failed assertions) instead of
// returning an error.
func recovered(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprint(r)
			// Badger's own recover in table.initIndex re-panics with a
			// multi-line dump; its first line says enough.
			if strings.Contains(msg, "Recovering from initIndex crash") {
				msg = "the table's footer or block index is damaged"
			} else if i := strings.IndexByte(msg, '\n'); i > 0 {
				msg = msg[:i]
			}
			err = fmt.Errorf("%s (Badger panicked reading it)", msg)
		}
	}()
	return fn()
}

// memFiles lists Badger's write-ahead logs in dir: present only while a
// writer has the index open, or after it stopped without closing it.
func memFiles(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	return m, err
}

// heldByOther reports whether another process (or Index) holds dir the way
// Badger locks it (flock on the directory): exclusively for a writer, shared
// for readers. It takes and releases the lock; Badger takes it again.
func heldByOther(dir string, readOnly bool) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	how := unix.LOCK_EX
	if readOnly {
		how = unix.LOCK_SH
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// InUse reports whether a process holds the index in dir, for writing or
// reading: what must not happen while it is moved aside.
func InUse(dir string) bool { return heldByOther(dir, false) }

// CheckFiles checks the Badger files of the index in dir as Open does before
// Badger reads them (the MANIFEST replays whole, every table it names opens
// and its checksums match), without opening the index: it works on an index
// that was not closed cleanly, and changes nothing. A damaged index gives a
// *CorruptError.
func CheckFiles(dir string) error {
	return checkFiles(dir, badgerOptions(Options{Dir: dir, ReadOnly: true, Logger: slog.Default(),
		MemTableSize: 16 << 20, TableBlockSize: 16 << 10, BlockCacheSize: 32 << 20}))
}
