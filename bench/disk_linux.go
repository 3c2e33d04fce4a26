//go:build linux

package bench

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeScratch writes n bytes in chunk-sized writes of one aligned buffer
// of random bytes (not zeros, which some virtual disks skip) to a new file
// in dir, fdatasyncs it if sync, and returns how long that took. The file
// is removed.
func writeScratch(dir string, n int64, chunk int, direct, sync bool) (time.Duration, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC | os.O_EXCL
	if direct {
		flags |= unix.O_DIRECT
	}
	path := filepath.Join(dir, fmt.Sprintf(".tapvault-bench-disk-%d", os.Getpid()))
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return 0, fmt.Errorf("disk measurement: %w", err)
	}
	defer os.Remove(path)
	const align = 4096
	raw := make([]byte, chunk+align)
	skip := (align - int(uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%align)) % align
	buf := raw[skip : skip+chunk]
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
	}
	t0 := time.Now()
	for off := int64(0); off < n; off += int64(chunk) {
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return 0, fmt.Errorf("disk measurement: %w", err)
		}
	}
	if sync {
		err = unix.Fdatasync(int(f.Fd()))
	}
	d := time.Since(t0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("disk measurement: %w", err)
	}
	return d, nil
}
