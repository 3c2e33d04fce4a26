// Package query owns reading a store back: the filter language, the plan
// that prunes blocks through the index, the iterators that merge candidate
// blocks in time order, and the writers that turn the matching packets into
// capture files (pcap, pcapng) for tcpdump and Wireshark.
//
// A filter whose plan names its flows (Plan.FlowHashes: a flow selector,
// an or of them, an and with one) reads, of each candidate block, only the
// sub-frame that holds those flows' hash (writer.Reader.ReadFlow, version-2
// blocks, docs/format/block.md), and filters its packets exactly as any
// other query; packets keep their ordinals in the block. A filter whose
// plan prunes by host, net or port but names no flow ("host A and port P")
// reads each candidate block's summary first and then only the sub-frames
// of the flows whose keys the plan accepts (summaryFlowReader,
// Plan.MatchKey); a block whose non-IP packets the plan may match is read
// whole.
//
// The writers (pcapout.go, over package pcap's Writer and NgWriter) keep
// what import and capture recorded: nanosecond timestamps, the original
// (wire) length of packets cut by a snaplen, the link type of every packet
// and, in pcapng, its interface. pcap holds one link type per file, so a
// query whose packets mix link types must be written as pcapng
// (ErrMixedLinkTypes says so). Writing allocates nothing per packet:
// headers go through a fixed array into a 1 MiB bufio.Writer.
//
// It must not write to the store, the index or the segment files: queries
// run beside a live capture and only ever read committed blocks, at lower
// priority than capture and with bounded concurrency.
package query
