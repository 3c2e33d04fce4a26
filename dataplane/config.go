package dataplane

import (
	"fmt"
	"time"
)

// PortConfig says how OpenPort sets up one ethdev port. Zero values pick the
// defaults noted on each field.
type PortConfig struct {
	Name      string // device name as EAL knows it, e.g. "net_pcap0", "net_ring0", or a PCI address
	RxQueues  int    // default 1
	RxDesc    int    // RX ring size, default 1024 (clamped to what the PMD allows)
	Mbufs     int    // mempool size for the port, default 8191 per RX queue
	MbufCache int    // per-lcore mempool cache, default 256 (clamped to DPDK's limits)
	DataRoom  int    // mbuf data room incl. headroom; default 2176 (RTE_MBUF_DEFAULT_BUF_SIZE), net_pcap: large enough for the file's largest packet
	Promisc   bool
	TxQueues  int // 0 normally; >0 for synthetic producers on net_ring

	// ReplayIdle is how long a net_pcap replay queue may stay empty, after
	// its first packet and with the port's ipackets not moving, before Recv
	// gives up waiting for packets the PMD dropped and returns io.EOF.
	// Default 2s. Before the first packet the wait is five times as long.
	ReplayIdle time.Duration
}

// Defaults for PortConfig fields left zero.
const (
	DefaultRxDesc        = 1024
	DefaultMbufsPerQueue = 8191
	DefaultMbufCache     = 256
	DefaultDataRoom      = 2048 + 128 // RTE_MBUF_DEFAULT_BUF_SIZE: 2 KiB + RTE_PKTMBUF_HEADROOM
	DefaultReplayIdle    = 2 * time.Second
)

// PortStats are the port's hardware counters (rte_eth_stats_get). IMissed
// counts packets the NIC dropped because the RX ring was full; RxNoMbuf
// counts RX failures for want of an mbuf.
type PortStats struct {
	IPackets, IBytes, IMissed, IErrors, RxNoMbuf uint64
}

// RxQueueStats are counters kept by one RX queue in its receiving thread.
type RxQueueStats struct {
	Packets   uint64 // packets delivered by Recv
	Bytes     uint64 // sum of their wire lengths (mbuf pkt_len)
	Bursts    uint64 // non-empty bursts
	Truncated uint64 // multi-segment packets delivered as their first segment only
}

// ProducerOptions control a synthetic Producer.
type ProducerOptions struct {
	Loops int     // times over frames; 0 = once
	PPS   float64 // target packets per second; 0 = as fast as possible
}

// TimestampSource says where an RX queue's packet timestamps come from.
type TimestampSource int

const (
	TimestampTSC  TimestampSource = iota // TSC once per burst, anchored to CLOCK_REALTIME every second
	TimestampPcap                        // net_pcap: the file's capture time, microseconds
	TimestampNIC                         // RX timestamp offload, device clock calibrated by rte_eth_read_clock
)

func (s TimestampSource) String() string {
	switch s {
	case TimestampTSC:
		return "tsc"
	case TimestampPcap:
		return "pcap"
	case TimestampNIC:
		return "nic"
	}
	return fmt.Sprintf("TimestampSource(%d)", int(s))
}
