//go:build linux

package writer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// setDirect turns O_DIRECT on for f. The filesystem refuses it with EINVAL
// where it cannot do direct I/O.
func setDirect(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		var fl int
		if fl, serr = unix.FcntlInt(fd, unix.F_GETFL, 0); serr == nil {
			_, serr = unix.FcntlInt(fd, unix.F_SETFL, fl|unix.O_DIRECT)
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set O_DIRECT on %q: %w", f.Name(), serr)
	}
	return nil
}

// directProbe is the file probeDirect writes, in the segments directory.
const directProbe = "direct.probe"

// probeDirect says whether the filesystem of segDir takes O_DIRECT writes:
// it opens a scratch file with O_DIRECT and writes one aligned page to it.
// Some filesystems refuse the open (tmpfs: EINVAL), some only the write.
func probeDirect(segDir string) error {
	path := filepath.Join(segDir, directProbe)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, 0o600)
	if err != nil {
		os.Remove(path) // O_CREAT may have created it before O_DIRECT was refused
		return fmt.Errorf("open %q with O_DIRECT: %w", path, err)
	}
	_, err = f.WriteAt(alignedBuf(dioAlign), 0)
	if err != nil {
		err = fmt.Errorf("O_DIRECT write to %q: %w", path, err)
	}
	err = errors.Join(err, f.Close())
	if rerr := os.Remove(path); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// fallocate allocates [off, off+n) of f, extending its size (mode 0).
func fallocate(f *os.File, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = unix.Fallocate(int(fd), 0, off, n); serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
