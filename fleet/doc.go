// Package fleet joins sensors into a fleet (issue 15, docs/fleet.md): each
// sensor keeps its packets and ships its metadata to ClickHouse, where the
// centre queries all of them.
//
// It owns: the ClickHouse HTTP client (clickhouse.go), the schema and its
// migrations (schema.go, migrations/NNN_*.sql, applied once each and
// recorded in schema_migrations), the shipper that sends a store's message
// records, flow summaries and health to ClickHouse (shipper.go, rows.go),
// the shipper's durable cursor (cursor.go, DIR/fleet/cursor), the clock
// state a sensor reports (clock.go), the fleet CA that the centre and
// the sensors authenticate each other with (ca.go), and its revocation list,
// checked by both ends of every fleet connection (revoke.go).
//
// Delivery is at least once: a batch is inserted, then the cursor after it
// is made durable; a crash between the two ships the batch again, and the
// tables' ReplacingMergeTree keys (sensor and record ID, or the flow group's
// identity) make the copy harmless once merged or read with FINAL. The
// sensor's message store is the buffer: while ClickHouse is down the
// shipper reads nothing new and retries with capped backoff, and retention
// keeps the files the cursor has not passed (pipeline/retention.go).
//
// Why the HTTP interface and JSONEachRow: the same requests work on the
// ClickHouse Debian ships (18.16) and on current servers, with no driver to
// vendor; the ingest rate it reaches is measured in docs/fleet.md.
//
// Health reports have no store behind them: unsent ones wait in a bounded
// in-memory queue (health.go) and go in order, once each, when ClickHouse
// answers; overflow drops the oldest and counts it.
//
// It must not: write into the store except DIR/fleet/; keep more than one
// batch (Options.BatchRecords) and the health queue (Options.HealthQueue)
// in memory; use SQL that 18.16 rejects
// (LowCardinality, TTL, DateTime64 are documented as a current server's
// additions, not used); log packet contents or credentials.
package fleet
