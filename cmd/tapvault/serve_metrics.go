package main

import (
	"log/slog"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"tapvault/msgstore"
	"tapvault/query"
)

// storeCollector is what `tapvault serve` exposes on /metrics: the store's
// size, its time span (the retention horizon) and the filesystem under it,
// read at scrape time. A capture exposes the same disk metrics under the
// same names (docs/metrics.md) and far more; serve has no data path.
type storeCollector struct {
	st  *query.Store
	dir string
	log *slog.Logger
}

var (
	dServePackets = prometheus.NewDesc("tapvault_store_packets", "Packets held in the store's blocks.", nil, nil)
	dServeWire    = prometheus.NewDesc("tapvault_store_wire_bytes", "Wire bytes of the packets held.", nil, nil)
	dServeSegs    = prometheus.NewDesc("tapvault_store_segment_bytes", "Size of the store's segment files (DIR/segments), apparent size.", nil, nil)
	dServeMsgs    = prometheus.NewDesc("tapvault_store_message_bytes", "Size of the message store (DIR/messages).", nil, nil)
	dServeIndex   = prometheus.NewDesc("tapvault_store_index_bytes", "Size of the index on disk (0 without one).", nil, nil)
	dServeOldest  = prometheus.NewDesc("tapvault_store_oldest_packet_timestamp_seconds", "Time of the oldest packet held: the retention horizon.", nil, nil)
	dServeNewest  = prometheus.NewDesc("tapvault_store_newest_packet_timestamp_seconds", "Time of the newest packet held.", nil, nil)
	dServeFsSize  = prometheus.NewDesc("tapvault_filesystem_size_bytes", "Size of the filesystem holding the store.", nil, nil)
	dServeFsAvail = prometheus.NewDesc("tapvault_filesystem_avail_bytes", "Bytes available to unprivileged users there.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dServePackets, dServeWire, dServeSegs, dServeMsgs, dServeIndex, dServeOldest, dServeNewest, dServeFsSize, dServeFsAvail} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	if s, err := c.st.Stats(); err != nil {
		// Left out of the scrape, not a failed scrape: the rest is served.
		c.log.Warn("metrics: store stats", "err", err)
	} else {
		g(dServePackets, float64(s.Packets))
		g(dServeWire, float64(s.WireBytes))
		g(dServeSegs, float64(s.SegmentBytes))
		g(dServeIndex, float64(s.IndexBytes))
		if s.Packets > 0 {
			g(dServeOldest, float64(s.FirstNS)/1e9)
			g(dServeNewest, float64(s.LastNS)/1e9)
		}
	}
	g(dServeMsgs, float64(msgstore.Size(c.dir)))
	var fs syscall.Statfs_t
	if err := syscall.Statfs(c.dir, &fs); err == nil {
		g(dServeFsSize, float64(fs.Blocks*uint64(fs.Bsize)))
		g(dServeFsAvail, float64(fs.Bavail*uint64(fs.Bsize)))
	}
}
