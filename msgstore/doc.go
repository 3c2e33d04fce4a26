// Package msgstore stores the message records (analytics.Record) that the
// in-stream analytics produce, and reads them back.
//
// It owns DIR/messages/: append-only files NNNNNNNNNN.msg, each a run of
// self-checking frames (docs/format/messages.md has the byte layout). One
// Writer per capture appends; any number of Readers, in other processes
// too, read while it does. Every frame carries a fixed header with its time
// range, a protocol bitmap and a bloom filter of the records' terms (Terms),
// so a Scan skips frames without decompressing them.
//
// It must not: import the capture path (workers, writer) or block it — the
// capture's analytics goroutine is the only caller of Writer.Append, and
// Append only buffers and, every FrameRecords records, compresses and
// writes one frame; never modify a file other than the one its Writer
// created (a crash's torn tail is left for readers to stop at); never
// delete anything but whole files, oldest first (DropBefore).
package msgstore
