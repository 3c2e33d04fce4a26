// Package workers owns the per-core loop of the data path: receive a burst,
// decode every packet (package packet), track its flow, hand it to the
// analytics, and append it to the worker's open block (package block),
// which seals at about 1 MiB or after a set time and goes to the writer.
//
// Everything here is unshared per worker and allocates nothing per packet:
// the decoder, the flow table and the block builder are preallocated, flow
// keys are fixed-size arrays, and counters are published once per burst.
// Memory is bounded by the block pool: when no free block buffer is left the
// worker drops the packet and counts it, and never waits for the disk.
//
// It must not do I/O or compress. Only pipeline (which wires a run) and
// reanalyze import it; everything downstream uses packet and block.
package workers
