//go:build cgo && !nodpdk

package dataplane

/*
#cgo pkg-config: libdpdk
#include <stdlib.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include "dpdk.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Available reports whether this binary was built with DPDK support.
const Available = true

// eal is the process-wide EAL state. EAL can be initialised once per
// process; the thread that initialised it is the main lcore and runs
// control-plane calls for the rest of the process.
var eal struct {
	mu      sync.Mutex
	tried   bool
	ok      atomic.Bool
	args    []string
	control chan func()
	// runDir is the runtime directory EAL uses (RuntimeBaseDir/prefix),
	// and runDirOurs whether it was not there before InitEAL: a failed
	// init must not remove the directory of another process that holds
	// the same prefix.
	runDir     string
	runDirOurs bool
	cleaned    bool
}

// InitEAL initialises DPDK's EAL once per process, on a dedicated OS thread
// locked with runtime.LockOSThread that it keeps for the life of the process
// (rte_eal_init pins the calling thread to the main lcore). args are EAL
// arguments without argv[0]. A second call returns an error, even when the
// first one failed: EAL cannot be retried in the same process.
//
// Tests and tools that may run next to a capture must pass --no-shconf (or a
// unique --file-prefix): two EAL processes sharing the default runtime
// prefix collide.
func InitEAL(args []string) error {
	eal.mu.Lock()
	defer eal.mu.Unlock()
	if eal.tried {
		return errors.New("init eal: already initialised in this process (EAL can be initialised once)")
	}
	eal.tried = true
	eal.args = append([]string(nil), args...)
	eal.runDir = filepath.Join(RuntimeBaseDir(), filePrefix(args))
	if _, err := os.Lstat(eal.runDir); errors.Is(err, fs.ErrNotExist) {
		eal.runDirOurs = true
	}
	eal.control = make(chan func())
	done := make(chan error, 1)
	go ealMain(eal.args, done)
	if err := <-done; err != nil {
		return err
	}
	eal.ok.Store(true)
	return nil
}

// CleanupEAL ends EAL at the end of the process: rte_eal_cleanup on the
// main-lcore thread, then it removes EAL's runtime directory (DPDK leaves
// it, so every run left a prefix directory under /var/run/dpdk). After a
// failed InitEAL it only removes the directory, and only if InitEAL's EAL
// made it. Call it once, after every port is stopped and no goroutine
// holds a DPDK pointer (mbuf memory is unmapped); later calls, and calls
// without InitEAL, do nothing. Stale directories of processes killed
// before this ran are removed by RemoveStaleRuntimeDirs.
func CleanupEAL() error {
	eal.mu.Lock()
	defer eal.mu.Unlock()
	if !eal.tried || eal.cleaned {
		return nil
	}
	eal.cleaned = true
	var errs []error
	dir := eal.runDir
	if eal.ok.Load() {
		if d := C.GoString(C.rte_eal_get_runtime_dir()); d != "" {
			dir = d
		}
		if C.rte_eal_process_type() != C.RTE_PROC_PRIMARY {
			dir = "" // a secondary process: the directory is its primary's
		}
		var rc C.int
		onMain(func() { rc = C.rte_eal_cleanup() })
		eal.ok.Store(false)
		if rc != 0 {
			errs = append(errs, fmt.Errorf("eal cleanup: %w", rteErr(-int(rc))))
		}
	} else if !eal.runDirOurs {
		return nil
	}
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove EAL runtime directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// RemoveRuntimeDir removes EAL's runtime directory now rather than at
// CleanupEAL: for a process about to drop root, which could not remove it
// at exit (it is root's, under root's /var/run/dpdk). The directory holds
// the multi-process socket and the telemetry socket; after this no
// secondary process or telemetry client can attach. Only a primary's is
// removed.
func RemoveRuntimeDir() error {
	eal.mu.Lock()
	defer eal.mu.Unlock()
	if !eal.ok.Load() || C.rte_eal_process_type() != C.RTE_PROC_PRIMARY {
		return nil
	}
	d := C.GoString(C.rte_eal_get_runtime_dir())
	if d == "" {
		return nil
	}
	if err := os.RemoveAll(d); err != nil {
		return fmt.Errorf("remove EAL runtime directory: %w", err)
	}
	return nil
}

// ealMain runs rte_eal_init and then serves control-plane calls forever on
// the same locked thread. It never unlocks: the thread's affinity belongs
// to EAL. If init fails the goroutine exits locked, so Go discards the
// thread rather than reuse one EAL may have pinned.
func ealMain(args []string, done chan<- error) {
	runtime.LockOSThread()
	argv := make([]*C.char, 0, len(args)+2)
	argv = append(argv, C.CString("tapvault"))
	for _, a := range args {
		argv = append(argv, C.CString(a)) // kept for the process: EAL may hold pointers into argv
	}
	cargv := (**C.char)(C.malloc(C.size_t(len(argv)+1) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	sl := unsafe.Slice(cargv, len(argv)+1)
	copy(sl, argv)
	sl[len(argv)] = nil
	rc := C.tv_eal_init(C.int(len(argv)), cargv)
	if rc < 0 {
		done <- fmt.Errorf("init eal %q: %w", args, rteErr(int(C.tv_rte_errno())))
		return
	}
	done <- nil
	for f := range eal.control {
		f()
	}
}

// onMain runs f on the EAL main-lcore thread and waits for it. Ports are
// configured, started and stopped there, so that the control plane runs on
// one EAL thread whatever goroutine asks.
func onMain(f func()) {
	done := make(chan struct{})
	eal.control <- func() {
		defer close(done)
		f()
	}
	<-done
}

// EALInitialised reports whether InitEAL succeeded.
func EALInitialised() bool { return eal.ok.Load() }

// ealArgs returns the arguments InitEAL was given.
func ealArgs() []string {
	eal.mu.Lock()
	defer eal.mu.Unlock()
	return eal.args
}

var errNoEAL = errors.New("eal not initialised: call InitEAL first")

// MainLcore returns the main lcore, or -1 before InitEAL.
func MainLcore() int {
	if !EALInitialised() {
		return -1
	}
	return int(C.rte_get_main_lcore())
}

// WorkerLcores lists the lcores EAL gave us besides the main one
// (rte_get_next_lcore with skip_main), in increasing order.
func WorkerLcores() []int {
	if !EALInitialised() {
		return nil
	}
	var out []int
	for i := C.rte_get_next_lcore(^C.uint(0), 1, 0); i < C.RTE_MAX_LCORE; i = C.rte_get_next_lcore(i, 1, 0) {
		out = append(out, int(i))
	}
	return out
}

// PinThread pins the calling OS thread to the CPUs EAL assigned to lcore
// (sched affinity) and registers it with rte_thread_register, so that
// mempool per-lcore caches work for the mbufs it receives and frees.
//
// The caller must have called runtime.LockOSThread and must stay locked
// until it calls UnpinThread; otherwise the Go scheduler moves other
// goroutines onto the pinned, registered thread.
//
// Workers are locked Go threads rather than threads EAL launches
// (rte_eal_remote_launch calling back into Go): the receive loop stays an
// ordinary goroutine that can be tested without EAL, uses the normal cgo
// call path (no callback into Go per burst or per loop) and exits like any
// goroutine. The registered thread gets its own non-EAL lcore id, not
// lcore itself: rte_lcore_id() differs from the lcore it runs on, which
// only matters to per-lcore APIs we do not use. The EAL worker thread of
// lcore stays idle, blocked on its launch pipe. See docs/dataplane.md.
func PinThread(lcore int) error {
	if !EALInitialised() {
		return errNoEAL
	}
	if lcore < 0 || lcore >= C.RTE_MAX_LCORE || C.rte_lcore_is_enabled(C.uint(lcore)) == 0 {
		return fmt.Errorf("pin thread to lcore %d: lcore not enabled in EAL", lcore)
	}
	if rc := C.tv_pin_thread(C.uint(lcore)); rc != 0 {
		return fmt.Errorf("pin thread to lcore %d: %w", lcore, rteErr(-int(rc)))
	}
	return nil
}

// RegisterThread registers the calling OS thread with DPDK
// (rte_thread_register) without changing its CPU affinity: it gets a
// mempool cache, and the kernel still schedules it on any CPU. PinThread
// does this too. The caller must have called runtime.LockOSThread; undo it
// with UnpinThread.
func RegisterThread() error {
	if !EALInitialised() {
		return errNoEAL
	}
	if rc := C.tv_register_thread(); rc != 0 {
		return fmt.Errorf("register thread: %w", rteErr(-int(rc)))
	}
	return nil
}

// UnpinThread undoes PinThread on the calling thread: it unregisters the
// thread from DPDK (if PinThread registered it) and restores the affinity
// the process had before EAL started. Call it before runtime.UnlockOSThread.
func UnpinThread() error {
	if !EALInitialised() {
		return errNoEAL
	}
	if rc := C.tv_unpin_thread(); rc != 0 {
		return fmt.Errorf("unpin thread: %w", rteErr(-int(rc)))
	}
	return nil
}

// CurrentLcore returns rte_lcore_id() of the calling thread: the main lcore
// on the EAL thread, the registered id after PinThread, -1 otherwise.
func CurrentLcore() int { return int(C.tv_lcore_id()) }

// logErrors returns the error lines DPDK logged since markLog (at most
// the last 8), joined by " | ", or "".
func logErrors() string {
	var buf [2048]C.char
	n := C.tv_log_errors(&buf[0], C.int(len(buf)))
	return C.GoStringN(&buf[0], n)
}

// markLog starts the lines logErrors returns.
func markLog() { C.tv_log_mark() }

// rteErr turns a positive errno or rte_errno value into an error.
func rteErr(code int) error {
	if code <= 0 {
		return fmt.Errorf("dpdk error %d", code)
	}
	if code < 1000 { // plain errno; rte_errno values start at 1000 (RTE_MIN_ERRNO)
		return syscall.Errno(code)
	}
	return fmt.Errorf("%s (rte_errno %d)", C.GoString(C.rte_strerror(C.int(code))), code)
}
