package pipeline

import (
	"fmt"
	"strings"
	"unsafe"

	"tapvault/block"
	"tapvault/index"
	"tapvault/workers"
	"tapvault/writer"
)

// MemoryBounds is what each bounded part of a run may hold at most, by its
// configuration (docs/config.md, "Memory"). Each bound is enforced where the
// memory is held, and what it sheds is counted; none depends on the
// traffic, so their sum bounds the process whatever the number of flows.
type MemoryBounds struct {
	Blocks      int64 // block buffers: Blocks x (BlockSize + the largest packet + a MaxBlockFlows summary)
	FlowTables  int64 // workers x MaxFlows entries, allocated at start
	Analytics   int64 // workers x analytics.Config.MemoryBound (connections, reassembly, parsers)
	RecordQueue int64 // RecordQueueBytes
	Index       int64 // index.MemoryBound: queue, groups, Badger
	Runtime     int64 // compressors' buffers, the message store's frame, the Go runtime
}

// runtimeBytes is the Runtime part: measured 60-90 MiB for a run with no
// flows at all (zstd encoders and their windows, goroutine stacks, the
// HTTP API) at the default sizes.
const runtimeBytes = 128 << 20

// Total is the sum of the bounds.
func (m MemoryBounds) Total() int64 {
	return m.Blocks + m.FlowTables + m.Analytics + m.RecordQueue + m.Index + m.Runtime
}

// String lists the bounds in MiB, for the start-up log.
func (m MemoryBounds) String() string {
	var b strings.Builder
	for _, p := range []struct {
		n string
		v int64
	}{{"blocks", m.Blocks}, {"flow_tables", m.FlowTables}, {"analytics", m.Analytics},
		{"record_queue", m.RecordQueue}, {"index", m.Index}, {"runtime", m.Runtime}, {"total", m.Total()}} {
		fmt.Fprintf(&b, "%s=%dMiB ", p.n, p.v>>20)
	}
	return strings.TrimSpace(b.String())
}

// Memory returns the memory bounds of a run of o with n workers, with the
// defaults Open applies.
func (o Options) Memory(n int) MemoryBounds {
	bs := o.BlockSize
	if bs <= 0 {
		bs = block.DefaultSize
	}
	blocks := o.Blocks
	if blocks <= 0 {
		blocks = max(16, 32*n)
	}
	mbf := o.MaxBlockFlows
	if mbf <= 0 {
		mbf = workers.DefaultMaxBlockFlows
	}
	mf := o.MaxFlows
	if mf <= 0 {
		mf = workers.DefaultMaxFlows
	}
	slots := 1
	for slots < 2*mf {
		slots <<= 1
	}
	m := MemoryBounds{
		Blocks:     int64(blocks) * (int64(bs) + block.RecordHeaderSize + block.MaxPacketSize + int64(mbf)*int64(unsafe.Sizeof(block.FlowStat{}))),
		FlowTables: int64(n) * (int64(mf)*(int64(unsafe.Sizeof(workers.FlowEntry{}))+4) + int64(slots)*8),
		Runtime:    runtimeBytes,
	}
	if o.Analytics != nil {
		m.Analytics = int64(n) * o.Analytics.MemoryBound()
		m.RecordQueue = o.RecordQueueBytes
		if m.RecordQueue <= 0 {
			m.RecordQueue = DefaultRecordQueueBytes
		}
	}
	if o.Index {
		m.Index = index.MemoryBound(index.Options{QueueBytes: o.IndexQueueBytes, MemTableSize: o.IndexMemTable})
	}
	// The writer compresses into buffers of its own, one per compressor.
	m.Runtime += int64(max(o.Compressors, writer.DefaultCompressors())) * 2 * int64(bs)
	return m
}
