//go:build !unix

package writer

import "os"

// lockFile is a no-op where flock is not available.
func lockFile(f *os.File) error { return nil }
