//go:build !cgo || nodpdk

package dataplane

// This file gives binaries built without DPDK the same API as the cgo
// files. Every live-capture entry point returns ErrNoDPDK.

// Available reports whether this binary was built with DPDK support.
const Available = false

// InitEAL returns ErrNoDPDK: this binary was built without DPDK.
func InitEAL(args []string) error { return ErrNoDPDK }

// CleanupEAL does nothing: this binary was built without DPDK.
func CleanupEAL() error { return nil }

// RemoveRuntimeDir does nothing: this binary was built without DPDK.
func RemoveRuntimeDir() error { return nil }

// EALInitialised reports false: this binary was built without DPDK.
func EALInitialised() bool { return false }

// WorkerLcores returns nil: this binary was built without DPDK.
func WorkerLcores() []int { return nil }

// MainLcore returns -1: this binary was built without DPDK.
func MainLcore() int { return -1 }

// PinThread returns ErrNoDPDK: this binary was built without DPDK.
func PinThread(lcore int) error { return ErrNoDPDK }

// RegisterThread returns ErrNoDPDK: this binary was built without DPDK.
func RegisterThread() error { return ErrNoDPDK }

// UnpinThread returns ErrNoDPDK: this binary was built without DPDK.
func UnpinThread() error { return ErrNoDPDK }

// CurrentLcore returns -1: this binary was built without DPDK.
func CurrentLcore() int { return -1 }

// Port is unavailable without DPDK; OpenPort never returns one.
type Port struct{}

// RxQueue is unavailable without DPDK.
type RxQueue struct{}

var _ Source = (*RxQueue)(nil)

// OpenPort returns ErrNoDPDK: this binary was built without DPDK.
func OpenPort(cfg PortConfig) (*Port, error) { return nil, ErrNoDPDK }

func (p *Port) ID() int                        { return -1 }
func (p *Port) Name() string                   { return "" }
func (p *Port) Driver() string                 { return "" }
func (p *Port) RSS() bool                      { return false }
func (p *Port) DataRoom() int                  { return 0 }
func (p *Port) NumQueues() int                 { return 0 }
func (p *Port) Queue(q int) *RxQueue           { return nil }
func (p *Port) Source(q int) Source            { return nil }
func (p *Port) Stats() (PortStats, error)      { return PortStats{}, ErrNoDPDK }
func (p *Port) Stop() error                    { return ErrNoDPDK }
func (q *RxQueue) ID() int                     { return -1 }
func (q *RxQueue) Port() *Port                 { return nil }
func (q *RxQueue) Timestamps() TimestampSource { return TimestampTSC }
func (q *RxQueue) Recv(b *Burst) (int, error)  { return 0, ErrNoDPDK }
func (q *RxQueue) Stats() RxQueueStats         { return RxQueueStats{} }
func (q *RxQueue) Close() error                { return ErrNoDPDK }

// Producer is unavailable without DPDK.
type Producer struct{}

// NewProducer returns ErrNoDPDK: this binary was built without DPDK.
func NewProducer(p *Port, txq int, frames [][]byte, opts ProducerOptions) (*Producer, error) {
	return nil, ErrNoDPDK
}

func (pr *Producer) Run(lcore int) error { return ErrNoDPDK }
func (pr *Producer) Stop()               {}
func (pr *Producer) Sent() uint64        { return 0 }
func (pr *Producer) Refused() uint64     { return 0 }
func (pr *Producer) NoMbuf() uint64      { return 0 }
func (pr *Producer) Close() error        { return ErrNoDPDK }
