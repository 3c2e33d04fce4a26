//go:build unix

package writer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = syscall.Flock(int(fd), how) }); err != nil {
		return err
	}
	return lerr
}

// lockFile takes an exclusive advisory lock on f, so two writers never
// append to the same store. It retries for a moment, because a reader
// probing for a live writer holds a shared lock for a few microseconds.
func lockFile(f *os.File) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("another writer holds %q", f.Name())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writerLive reports whether a writer holds the lock file at path.
func writerLive(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false // no lock file: no writer ever opened the store
	}
	defer f.Close()
	err = flock(f, syscall.LOCK_SH|syscall.LOCK_NB)
	if err == nil {
		flock(f, syscall.LOCK_UN)
		return false
	}
	return errors.Is(err, syscall.EWOULDBLOCK)
}

// AvailBytes is the space available to unprivileged users on dir's
// filesystem (Options.Reserve; the index's pause uses it too).
func AvailBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Capturing reports whether a writer (a capture, an import) holds the store
// at dir open now. It probes the store's LOCK with a shared lock for a few
// microseconds, which a writer opening the store at that moment waits out
// (lockFile).
func Capturing(dir string) bool { return writerLive(filepath.Join(dir, "LOCK")) }
