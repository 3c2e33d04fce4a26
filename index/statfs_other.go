//go:build !unix

package index

import "errors"

// availBytes is not implemented here: the index never pauses for space.
func availBytes(string) (int64, error) { return 0, errors.New("statfs: not supported") }
