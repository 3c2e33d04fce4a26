-- One row per message record (analytics.Record): exchange records and the
-- "tcp" connection records (kind 'connection', class 'flow'). A re-shipped
-- record has the same (sensor, req_first, id): ReplacingMergeTree keeps the
-- row with the highest ver (ship time) when parts merge, and queries that
-- must not see duplicates before a merge use FINAL or GROUP BY sensor, id.
-- Times are ns since the Unix epoch (Int64); 0 means absent.
CREATE TABLE IF NOT EXISTS records (
    sensor String,
    id UInt64,
    kind String,
    proto String,
    transport UInt8,
    vlan UInt16,
    client_ip String,
    client_port UInt16,
    server_ip String,
    server_port UInt16,
    req_first Int64,
    req_last Int64,
    resp_first Int64,
    resp_last Int64,
    latency Int64,
    network Int64,
    server_time Int64,
    transfer Int64,
    client_net Int64,
    rtt Int64,
    class String,
    req_bytes Int64,
    resp_bytes Int64,
    req_pkts Int32,
    resp_pkts Int32,
    flags UInt32,
    fields String,
    clock_source String,
    clock_synced UInt8,
    clock_error_ns Int64,
    ver UInt64
) ENGINE = ReplacingMergeTree(ver)
PARTITION BY toYYYYMMDD(toDateTime(intDiv(req_first, 1000000000)))
ORDER BY (sensor, req_first, id);
