package pipeline

import (
	"syscall"
	"time"
)

// rusageThread is RUSAGE_THREAD (Linux): the calling thread only.
const rusageThread = 1

// ThreadCPU is the user+system CPU time of the calling OS thread. Call it
// from a goroutine locked to its thread.
func ThreadCPU() time.Duration { return rusage(rusageThread) }

// ProcessCPU is the user+system CPU time of the whole process.
func ProcessCPU() time.Duration { return rusage(syscall.RUSAGE_SELF) }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
