// Package encoding holds what tapvault's on-disk formats share, as
// prometheus keeps tsdb/encoding apart from its chunk and record codecs:
// the CRC32C (Castagnoli) table every record and frame checksum uses, and
// the typed CorruptionError a reader returns for a damaged record.
//
// The segment files (writer) and the message files (msgstore) use it; it
// imports no tapvault package, so msgstore shares it without depending on
// the capture path.
package encoding
