// Package block is the block codec: the packet records a block holds, the
// flow summary it carries for the index, the partition of its records into
// sub-frames by flow hash (Partition, FlowHash: a flow query decompresses
// one sub-frame of a block instead of all of it), and the bounded pool of
// block buffers that is the memory bound of everything between the workers
// and the disk.
//
// Workers build blocks (package workers), the writer compresses and stores
// them (package writer), and the index and queries read their records and
// summaries back. The on-disk framing around a block is the writer's
// (docs/format/block.md).
package block
