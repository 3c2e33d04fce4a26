// Package index is the Badger index of a store: which blocks hold a flow, a
// host, a port or a VLAN, and which blocks overlap a time range.
//
// It owns the key codec, the Badger database under store/index, the batching
// of index writes, the in-memory view of blocks committed but not yet
// written, retention of index entries, and the posting-list style iterators
// (Next/Seek/At, as in prometheus tsdb) that queries combine with Intersect
// and Union.
//
// It must not read or write segment files or packet data (the writer and
// query packages do), must not block the writer: the commit hook copies the
// block's flow keys and returns, dropping and counting when its queue is
// full, and must not log packet contents. It never calls DropPrefix on the
// live database.
//
// # Layout in brief
//
// A key per (flow, block) would cost about 5x the 1% size goal on IMIX with
// 10k flows: a 1 MiB block holds ~2000 distinct flows. So up to GroupBlocks
// consecutive blocks of one segment form a group, and each distinct flow,
// host, port and VLAN of a group gets one key carrying a bitmap of the
// group's blocks that hold it. Answers stay exact per block without reading
// any segment. Keys are fixed-width, big-endian, key-only, one kind byte
// first; docs/format/index.md draws them and gives the measurements.
//
//	F | flow(42) | gref(8) | gen(1) | bits(32)   one per flow per group
//	H | ip(16)   | gref | gen | bits            hosts: both ends of each flow
//	P | proto(1) | port(2) | gref | gen | bits  TCP/UDP/SCTP ports
//	V | vlan(2)  | gref | gen | bits            outer and inner VLAN ids
//	B | ref(8) | gref | gen | k | n | meta      one per block: group position, times, counts
//	S | seg(4) | minTS | maxTS                  time range per segment
//	M | ref  /  W | ref  /  X | version | G     missing blocks, watermark, format
//
// # Time to queryable
//
// A block is findable as soon as the hook returns: queries look at the
// blocks still queued, in an open group and being written, then at Badger.
// Groups are written when full, when the writer moves to another segment,
// after MaxGroupAge, or on Flush.
package index
