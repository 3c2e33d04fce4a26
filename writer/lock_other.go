//go:build !unix

package writer

import "os"

// lockFile is a no-op where flock is not available.
func lockFile(f *os.File) error { return nil }

// writerLive cannot tell without flock: readers then walk whole files.
func writerLive(path string) bool { return false }
