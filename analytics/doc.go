// Package analytics is the in-stream half of tapvault: per-connection TCP
// timing, bounded TCP reassembly, application message decoders and the
// records that pair a request with its response.
//
// A worker hands every packet to its Analyzer (workers.Analyzer) after
// decoding and the flow lookup, together with the packet's position in
// storage (block ID and ordinal). The Analyzer keeps one conn per tracked
// flow, indexed from the flow table entry, so it does no second hash lookup.
// Payload bytes reach a protocol Parser in stream order; the parser marks
// where messages begin and end (Stream.Begin/End) and pairs them
// (Stream.Exchange). The Analyzer times each exchange from the TCP
// signalling and emits a Record. A UDP datagram in IP fragments is
// reassembled first (defrag.go, bounded), for the analytics only: storage
// keeps the fragments.
//
// Adding a protocol is one file: a Parser and a Register call in init. The
// registry is the only list of protocols: the query language's names and
// fields, the tier linker's backends, a record's one-line summary, the
// store's interned strings and the skip-index terms (terms.go, shared by
// msgstore and msgquery) all come from it or from this package
// (docs/contributing.md).
package analytics
