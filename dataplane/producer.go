//go:build cgo && !nodpdk

package dataplane

/*
#include <stdlib.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include "dpdk.h"

static int tv_mempool_in_use(void *mp)
{
	return (int)rte_mempool_in_use_count((struct rte_mempool *)mp);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// producerPoolSize is the producer's own mempool: enough for a full net_ring
// ring (1024), the receiver's held burst and both threads' mempool caches,
// so that a slow receiver makes the producer retry rather than starve.
const producerPoolSize = 8191

// Producer transmits packets from memory into a port's TX queue, as fast as
// possible or at a rate, for benchmarks and tests (net_ring: what is sent on
// TX queue q is received on RX queue q). One cgo call per burst: allocate
// mbufs in bulk, copy the frames in, rte_eth_tx_burst. What the PMD refuses
// is retried, never dropped, so a benchmark measures the receiver's
// capacity, not ring overflow.
type Producer struct {
	t       *C.struct_tv_txq
	mp      *C.struct_rte_mempool
	cmem    unsafe.Pointer // frames, offsets and lengths, one C allocation
	pps     float64
	stop    atomic.Bool
	running atomic.Bool
	sent    atomic.Uint64
	refused atomic.Uint64
	nombuf  atomic.Uint64
}

var producerSeq atomic.Uint64

// stallSpins is how many transmit attempts in a row may fail (ring full)
// before Run yields its P. Measured with `tapvault bench` on 2 CPUs:
// without yielding, a producer spinning on a full ring starved the
// receiving pipeline's goroutines (0.04 Mpps).
const stallSpins = 16

// NewProducer copies frames into C memory and prepares a mempool for them.
// Every frame must fit an mbuf of the port's data room less headroom.
func NewProducer(p *Port, txq int, frames [][]byte, opts ProducerOptions) (*Producer, error) {
	if !EALInitialised() {
		return nil, errNoEAL
	}
	if txq < 0 || txq >= p.txq {
		return nil, fmt.Errorf("new producer on port %q: tx queue %d not configured (port has %d)", p.name, txq, p.txq)
	}
	if len(frames) == 0 {
		return nil, errors.New("new producer: no frames")
	}
	headroom := int(C.RTE_PKTMBUF_HEADROOM)
	total, maxLen := 0, 0
	for i, f := range frames {
		if len(f) == 0 {
			return nil, fmt.Errorf("new producer: frame %d is empty", i)
		}
		total += len(f)
		maxLen = max(maxLen, len(f))
	}
	if maxLen+headroom > 0xffff {
		return nil, fmt.Errorf("new producer: frame of %d bytes does not fit one mbuf", maxLen)
	}
	dataRoom := max(DefaultDataRoom, maxLen+headroom)
	loops := uint64(max(opts.Loops, 1))

	n := len(frames)
	idx := (2*4*n + 7) &^ 7
	cmem := C.malloc(C.size_t(idx + total))
	if cmem == nil {
		return nil, errors.New("new producer: out of memory for frames")
	}
	off := unsafe.Slice((*uint32)(cmem), n)
	lens := unsafe.Slice((*uint32)(unsafe.Add(cmem, 4*n)), n)
	buf := unsafe.Slice((*byte)(unsafe.Add(cmem, idx)), total)
	pos := 0
	for i, f := range frames {
		off[i] = uint32(pos)
		lens[i] = uint32(len(f))
		pos += copy(buf[pos:], f)
	}

	pr := &Producer{cmem: cmem, pps: opts.PPS}
	var err error
	onMain(func() {
		name := C.CString(fmt.Sprintf("tv_tx_%d_%d_%d", p.id, txq, producerSeq.Add(1)))
		defer C.free(unsafe.Pointer(name))
		pr.mp = C.rte_pktmbuf_pool_create(name, producerPoolSize, DefaultMbufCache, 0, C.uint16_t(dataRoom), C.int(C.rte_socket_id()))
		if pr.mp == nil {
			err = fmt.Errorf("new producer on port %q: mempool: %w", p.name, rteErr(int(C.tv_rte_errno())))
			return
		}
		t := (*C.struct_tv_txq)(C.rte_zmalloc(nil, C.size_t(unsafe.Sizeof(C.struct_tv_txq{})), C.RTE_CACHE_LINE_SIZE))
		if t == nil {
			C.rte_mempool_free(pr.mp)
			err = fmt.Errorf("new producer on port %q: out of memory", p.name)
			return
		}
		t.port = C.uint16_t(p.id)
		t.queue = C.uint16_t(txq)
		t.mp = unsafe.Pointer(pr.mp)
		t.buf = (*C.uchar)(unsafe.Add(cmem, idx))
		t.off = (*C.uint32_t)(cmem)
		t.len = (*C.uint32_t)(unsafe.Add(cmem, 4*n))
		t.nframes = C.uint32_t(n)
		t.remaining = C.uint64_t(loops * uint64(n))
		pr.t = t
	})
	if err != nil {
		C.free(cmem)
		return nil, err
	}
	return pr, nil
}

// Run transmits every frame opts.Loops times on the calling goroutine, which
// it locks to its thread and pins to lcore (lcore < 0: no pinning). It
// returns when all packets were accepted by the PMD, or early after Stop.
func (pr *Producer) Run(lcore int) (err error) {
	if !pr.running.CompareAndSwap(false, true) {
		return errors.New("producer: already running or finished")
	}
	if pr.t == nil {
		return errors.New("producer: closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("producer on lcore %d: panic: %v", lcore, r)
		}
	}()
	if lcore >= 0 {
		if err := PinThread(lcore); err != nil {
			return fmt.Errorf("producer: %w", err)
		}
		defer UnpinThread()
	}
	t := pr.t
	var start time.Time
	if pr.pps > 0 {
		start = time.Now()
	}
	stalled := 0
	for !pr.stop.Load() {
		burst := C.uint16_t(MaxBurst)
		if pr.pps > 0 && t.npend == 0 {
			due := int64(time.Since(start).Seconds()*pr.pps) - int64(t.sent)
			if due <= 0 {
				runtime.Gosched()
				continue
			}
			burst = C.uint16_t(min(due, MaxBurst))
		}
		before := t.sent
		done := C.tv_tx_step(t, burst) != 0
		pr.sent.Store(uint64(t.sent))
		pr.refused.Store(uint64(t.refused))
		pr.nombuf.Store(uint64(t.nombuf))
		if done {
			return nil
		}
		// The ring is full: the receiver is behind. After a short spin,
		// give this thread's P to other goroutines (the receiver's
		// pipeline needs it), instead of holding it until preempted.
		if t.sent == before {
			if stalled++; stalled >= stallSpins {
				stalled = 0
				runtime.Gosched()
			}
		} else {
			stalled = 0
		}
	}
	return nil
}

// Stop makes Run return at its next burst. Safe from any goroutine.
func (pr *Producer) Stop() { pr.stop.Store(true) }

// Sent returns the packets the PMD has accepted so far.
func (pr *Producer) Sent() uint64 { return pr.sent.Load() }

// Refused returns how many packet transmissions the PMD refused (ring full)
// and Run retried.
func (pr *Producer) Refused() uint64 { return pr.refused.Load() }

// NoMbuf returns how many bulk mbuf allocations failed and were retried
// (every mbuf in flight: the receiver holds them).
func (pr *Producer) NoMbuf() uint64 { return pr.nombuf.Load() }

// Close frees the producer's memory. It fails while mbufs from its pool are
// still in flight (in the ring or held by a receiver): receive them all
// first. Call it only after Run returned.
func (pr *Producer) Close() error {
	if pr.t == nil {
		return nil
	}
	var err error
	onMain(func() {
		C.tv_tx_release(pr.t)
		if inUse := C.tv_mempool_in_use(unsafe.Pointer(pr.mp)); inUse != 0 {
			err = fmt.Errorf("close producer: %d mbufs still in flight", int(inUse))
			return
		}
		C.rte_mempool_free(pr.mp)
		C.rte_free(unsafe.Pointer(pr.t))
		C.free(pr.cmem)
		pr.t, pr.mp, pr.cmem = nil, nil, nil
	})
	return err
}
