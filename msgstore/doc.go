// Package msgstore stores the message records (analytics.Record) that the
// in-stream analytics produce, and reads them back.
//
// It owns DIR/messages/: append-only files NNNNNNNNNN.msg, each a run of
// self-checking frames (docs/format/messages.md has the byte layout). One
// Writer per capture appends; any number of Readers, in other processes
// too, read while it does: a frame is written with one write call, and a
// reader stops quietly at a frame that runs past the end of the file.
// Every frame header carries the frame's time range and a protocol bitmap,
// followed by a bloom filter of its records' terms (analytics.Terms), so a Scan skips
// frames without reading or decompressing their data: a term absent from
// the store scans 100k records' worth of frames about 1000x faster than a
// full scan (BenchmarkScan).
//
// Why frames of many records and not one index entry per record: records
// arrive at up to ~10^5/s per capture, and a frame of 2048 compresses to
// about a tenth of its raw size while its bloom filter costs ~10 bits per
// distinct term; per-record keys in Badger would cost more than the
// records.
//
// A Cursor (cursor.go) is a durable position between frames: ReadFrom
// reads whole frames after it, from the live file too, so a consumer in
// another process (the fleet shipper) reads each record once per cursor
// it persists.
//
// A Writer holds an flock on the file it appends to, and seals it (mode
// 0400, after an fsync) when it closes it; a sealed file is complete, so a
// torn tail in it is damage (Verify), while one in an unsealed file is the
// frame being written or a crash's tail. Below Options.Reserve of free
// space the Writer drops frames (counted) instead of writing them: the
// index, whose Badger cannot fail cleanly on a full disk, keeps its room.
//
// It must not: write anything outside DIR/messages; append to a file other
// than the one its Writer created (the next Writer starts a new file, and
// only cuts a crashed writer's torn tail and seals that file, under the
// file's lock); delete anything but whole files (DropFile, DropBefore),
// never the newest nor one a Writer holds; block its caller on anything but
// the frame write, the periodic fsync and a statfs every 250 ms. It
// depends on analytics for the Record type, its terms and which records
// are connection records (analytics.IsConnection).
package msgstore
