// Package writer is the block store: it owns the on-disk block record and
// segment formats (docs/format/block.md, docs/format/segment.md), zstd
// compression of sealed blocks, appending them to segment files, durable
// group commit, crash recovery, and reading and verifying blocks.
//
// Data path: workers Submit sealed blocks (never blocking); compressor
// goroutines, off the RX cores, turn each into a complete record (one shared
// zstd encoder with one slot per compressor, EncodeAll into buffers each
// compressor owns, frame CRC off because every record ends in its own
// CRC32C); one write goroutine patches in the ref (segment<<32 | offset,
// known only at write time), computes the CRCs and appends the record; a
// syncer goroutine fdatasyncs in groups (a group ends after SyncEvery or
// SyncBytes), and only then does the write goroutine move the commit marker,
// call the CommitHook and release the block to its pool. So an index entry
// never names a block that is not durable. Up to three groups are synced
// while the next is written; when all are, the group being written grows
// instead of the writer waiting (commit.go).
//
// Segments are written through the page cache by default, or with O_DIRECT
// (Options.IO: IODirect, or IOAuto where the filesystem takes it; Open
// probes and logs the mode, Stats.Direct), which measured slower on the one
// machine here (docs/PERFORMANCE.md). With O_DIRECT records are
// copied into 4 MiB aligned staging buffers, several writes of full buffers
// are in flight on disjoint ranges, segments can be preallocated
// (Preallocate), and a group's last partial page is written zero-padded and
// rewritten by the next group (direct.go). Buffered, each record is one
// pwrite.
//
// When the compressors fall behind, blocks go straight to the write queue
// and are stored raw rather than dropped; when that queue is full too,
// Submit refuses the block and the worker counts the drop. SubmitWait, for
// lossless sources, does the same but waits for room in the write queue
// instead of refusing: it waits for the disk, never for zstd. Memory is
// bounded by the block pool, the two queues and the staging buffers.
//
// The commit marker (Dir/COMMITTED, rewritten after every group commit)
// decides what is committed. Recovery on Open checks the last segment
// record by record: a bad tail beyond the marker is a torn write and is cut
// off; bad bytes the marker covers, and a corrupt record with valid records
// after it, are kept and reported (CorruptionError), and readers skip them.
// Recovery never cuts a committed byte. Sealed segments are checked by
// Verify.
//
// Refs increase with write order, and blocks are written in the order
// Submit and SubmitWait accepted them, whichever queue they took: the write
// goroutine parks a block that arrives before its turn (one stored raw
// because the compressors were behind, or one that compressed faster), so
// what a crash leaves committed is a prefix of what was accepted. Blocks
// of several workers interleave, and a worker's blocks overlap in time, so
// order packets by timestamp, not by ref.
//
// Measured here (2 shared cores, loaded; writer_timing_test.go, 1 MiB
// IMIX-like blocks): compressing at SpeedFastest ~300-400 MB/s per core with
// ratio 0.15 on protocol text and 0.48 on a half-encrypted mix; trying and
// rejecting an incompressible block ~0.4 ms; the write goroutine's CRC32C
// pass ~25 GB/s (40 us per MiB), so patching the ref and computing the CRC
// there costs little; end to end with one compressor ~300 MB/s of text,
// ~180 MB/s of the mix and ~600 MB/s of incompressible data, each group
// commit syncing 4-12 blocks in 2-7 ms. Reading back decompresses at
// ~0.5-1 GB/s. The compress, seal, write and read paths allocate nothing in
// steady state. Disk-bound (disk_timing_test.go, 1 GiB of raw blocks, this
// VM's virtio disk): 1051 MB/s buffered, 564 with O_DIRECT, against 652 for
// dd oflag=direct conv=fdatasync and 1300 without the sync (the host's
// cache); a lossless source 530 MB/s with one compressor (384 when
// SubmitWait waited for it). docs/PERFORMANCE.md has the runs.
//
// This package must not: decode packets or build summaries (workers does),
// touch the index (the CommitHook is the seam), block a worker, or log
// packet payloads.
package writer
