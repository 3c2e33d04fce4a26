//go:build !unix

package writer

import (
	"errors"
	"os"
)

// lockFile is a no-op where flock is not available.
func lockFile(f *os.File) error { return nil }

// writerLive cannot tell without flock: readers then walk whole files.
func writerLive(path string) bool { return false }

// AvailBytes is not implemented here: Options.Reserve has no effect.
func AvailBytes(string) (int64, error) { return 0, errors.New("statfs: not supported") }

// Capturing cannot tell without flock, and says a writer may hold the
// store (so queries keep yielding to it).
func Capturing(dir string) bool { return true }
