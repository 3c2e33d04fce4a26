// Package msgquery owns querying message records (analytics.Record): the
// expression language of `tapvault messages` (Parse, Expr.Match, and the
// skip-index terms an expression implies), the JSON and text output of one
// record (AppendJSON, AppendText), latency aggregation by group
// (Aggregator), and the tier linker that attaches the backend exchanges a
// server made (the decoders registered as backends: postgres, mysql, redis,
// ...) to the client-facing exchange that caused them (TierLinker), and
// the verdict of where the time goes over a window (Diagnoser: per server,
// the application, its side of the network, some clients' networks, or the
// database behind a front end; docs/analytics.md, "Diagnose").
//
// It works on records already decoded into memory. It must not read or
// write storage, and it must not import msgstore: the storage package prunes
// frames with its bloom filters from the strings Expr.Terms and Expr.Protos
// return. Both build those terms with one codec, analytics/terms.go
// ("key=value", string values lowercased; docs/messages.md lists them).
//
// Matching walks a tree of concrete node structs with a switch per node
// (no interfaces, no fmt, no string building), so Match allocates nothing;
// AppendJSON and AppendText append into the caller's buffer and allocate
// nothing once it has grown. See docs/messages.md for the language and the
// output formats.
package msgquery
