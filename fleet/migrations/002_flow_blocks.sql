-- Flow summaries per block group: for each flow, what one group of
-- consecutive packet blocks of one segment holds of it (the segment's block
-- summaries: packets and bytes per direction, first and last packet time).
-- (sensor, seg, group_first, the flow key) identifies a row, so a re-shipped
-- group replaces itself. Directions are the flow key's: a is the first
-- endpoint of the key, b the second.
CREATE TABLE IF NOT EXISTS flow_blocks (
    sensor String,
    seg UInt32,
    group_first UInt32,
    group_blocks UInt32,
    proto UInt8,
    vlan UInt16,
    a_ip String,
    a_port UInt16,
    b_ip String,
    b_port UInt16,
    first_ns Int64,
    last_ns Int64,
    packets UInt64,
    bytes UInt64,
    a_packets UInt64,
    b_packets UInt64,
    a_bytes UInt64,
    b_bytes UInt64,
    ver UInt64
) ENGINE = ReplacingMergeTree(ver)
PARTITION BY toYYYYMMDD(toDateTime(intDiv(first_ns, 1000000000)))
ORDER BY (sensor, seg, group_first, proto, vlan, a_ip, a_port, b_ip, b_port);
