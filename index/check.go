package index

import (
	"errors"
	"fmt"
	"hash/crc32"
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
// recover, with every block's checksum verified unless the VERIFIED list
// vouches for it (verifiedFile), and the MANIFEST must replay to its last
// byte; all verifies every table. The other files (KEYREGISTRY, *.vlog, DISCARD, *.mem)
// Badger reads in the caller's goroutine: their damage is an error or a
// panic that openBadger recovers.
func checkFiles(dir string, bo badger.Options, all bool) error {
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

	var known map[uint64]tableStamp
	if !all {
		known = readVerified(dir)
	}
	type job struct {
		id   uint64
		tm   badger.TableManifest
		full bool
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
				if err := checkTable(dir, j.id, j.tm, bo, j.full); err != nil {
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
		full := true
		if k, ok := known[id]; ok {
			st, err := stampOf(table.NewFilename(id, dir))
			full = err != nil || st != k
		}
		jobs <- job{id, tm, full}
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return &CorruptError{Dir: dir, Err: first}
	}
	return nil
}

// checkTable opens one table as Badger would, but where a panic can be
// recovered: its footer and block index (whose checksum Badger always
// checks), and with full every block's checksum.
func checkTable(dir string, id uint64, tm badger.TableManifest, bo badger.Options, full bool) error {
	name := table.NewFilename(id, dir)
	if tm.KeyID != 0 {
		return fmt.Errorf("table %s: encrypted (key %d), this build never encrypts", filepath.Base(name), tm.KeyID)
	}
	mf, err := z.OpenMmapFile(name, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("table %s named by the MANIFEST: %v", filepath.Base(name), err)
	}
	chk := options.NoVerification
	if full {
		chk = options.OnTableRead
	}
	var t *table.Table
	err = recovered(func() error {
		var err error
		t, err = table.OpenTable(mf, table.Options{
			ReadOnly:    true,
			BlockSize:   bo.BlockSize,
			Compression: tm.Compression,
			ChkMode:     chk,
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
		MemTableSize: 16 << 20, TableBlockSize: 16 << 10, BlockCacheSize: 32 << 20}), true)
}

// verifiedFile lists the tables whose every block checksum was verified, or
// that Badger wrote in a process that closed the index cleanly, each with
// the stamp it had then. It is not Badger's: Badger ignores it.
//
// Verifying every block reads and decompresses the whole index: measured
// 0.3-0.7 s for 9.5 MiB of tables on the shared 2-core VM, which would be
// minutes per query for a multi-GiB index. So an open verifies in full only
// the tables that are not listed, or whose stamp changed (size, mtime,
// ctime, inode: any write to the file, a bit flip included, changes its
// ctime); the others get the footer and block-index check, whose checksum
// Badger always verifies. Only a listed table whose bytes rot on the
// medium without a write is missed; `tapvault verify` checks every table
// whatever the list says.
//
// A writer writes the list when it closes the index (Index.Close); read-only
// opens only read it.
const verifiedFile = "VERIFIED"

// tableStamp is what says a table file was not written since it was listed.
type tableStamp struct {
	size, mtime, ctime int64
	ino                uint64
}

func stampOf(path string) (tableStamp, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return tableStamp{}, err
	}
	return tableStamp{size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), ino: st.Ino}, nil
}

// readVerified reads the list; nil when it is missing or damaged (then
// every table is verified in full).
func readVerified(dir string) map[uint64]tableStamp {
	b, err := os.ReadFile(filepath.Join(dir, verifiedFile))
	if err != nil {
		return nil
	}
	body, sum, ok := strings.Cut(string(b), "crc32c ")
	if !ok || strings.TrimSpace(sum) != fmt.Sprintf("%08x", crc32.Checksum([]byte(body), castagnoli)) {
		return nil
	}
	m := make(map[uint64]tableStamp)
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if line == "" {
			continue
		}
		var id uint64
		var t tableStamp
		if _, err := fmt.Sscanf(line, "%d %d %d %d %d", &id, &t.size, &t.mtime, &t.ctime, &t.ino); err != nil {
			return nil
		}
		m[id] = t
	}
	return m
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// writeVerified lists the tables in dir, which a writer closing the index
// cleanly vouches for: they were verified when it opened the index, or it
// wrote them. Written to a temporary file, synced and renamed.
func writeVerified(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, name := range names {
		id, ok := table.ParseFileID(name)
		if !ok {
			continue
		}
		t, err := stampOf(name)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%d %d %d %d %d\n", id, t.size, t.mtime, t.ctime, t.ino)
	}
	body := b.String()
	fmt.Fprintf(&b, "crc32c %08x\n", crc32.Checksum([]byte(body), castagnoli))
	tmp := filepath.Join(dir, verifiedFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(b.String())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, verifiedFile))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
