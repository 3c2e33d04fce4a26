-- The sensors' drop and health counters, ship lag, disk and clock state,
-- one row per counter per report (every few seconds). Counters are the
-- sensor's running totals (they restart at 0 with the capture): rates are
-- differences between consecutive rows of one sensor and name.
CREATE TABLE IF NOT EXISTS sensor_health (
    sensor String,
    ts Int64,
    name String,
    value Float64
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(toDateTime(intDiv(ts, 1000000000)))
ORDER BY (sensor, name, ts);
