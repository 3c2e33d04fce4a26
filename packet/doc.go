// Package packet is the packet model every stage shares: the L2 to L4
// decoder and what it learns of a packet (Decoded), the normalised
// bidirectional flow key and its Community-ID, a flow's counters (Flow), and
// the step-free packet clock.
//
// It allocates nothing per packet: a Decoder and a Decoded are reused for
// every packet, and flow keys are fixed-size comparable arrays. It knows
// nothing of blocks, workers or storage.
package packet
