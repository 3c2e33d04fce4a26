//go:build unix

package msgstore

import (
	"errors"
	"os"
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

// lockFile takes the exclusive advisory lock a Writer holds on the file it
// appends to for as long as it has it open: it tells the file being written
// from one whose writer is gone. It retries for a moment: a reader probing
// the file (heldByWriter) holds a shared lock for a few microseconds.
func lockFile(f *os.File) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// tryLock takes f's exclusive lock if nobody holds it; false when a live
// Writer does (or flock fails).
func tryLock(f *os.File) bool { return flock(f, syscall.LOCK_EX|syscall.LOCK_NB) == nil }

// heldByWriter reports whether a live Writer holds f's lock.
func heldByWriter(f *os.File) bool {
	err := flock(f, syscall.LOCK_SH|syscall.LOCK_NB)
	if err == nil {
		flock(f, syscall.LOCK_UN)
		return false
	}
	return errors.Is(err, syscall.EWOULDBLOCK)
}

// availBytes is the space available to unprivileged users on dir's
// filesystem.
func availBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
