//go:build !linux

package bench

import (
	"errors"
	"time"
)

func writeScratch(string, int64, int, bool, bool) (time.Duration, error) {
	return 0, errors.New("disk measurement: implemented on Linux only")
}
