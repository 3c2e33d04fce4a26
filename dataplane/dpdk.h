/* Thin C side of the DPDK binding. Everything that runs per burst lives
 * here so that Go makes exactly one cgo call per burst (receive or transmit).
 * Control-plane helpers exist only where a DPDK API is a macro or inline
 * function that cgo cannot call directly. */
#ifndef TAPVAULT_DPDK_H
#define TAPVAULT_DPDK_H

#include <stdint.h>

#define TV_MAX_BURST 64

/* Timestamp sources, see docs/dataplane.md. */
enum {
	TV_TS_TSC = 0,     /* TSC read once per burst, anchored to CLOCK_REALTIME */
	TV_TS_PCAP_US = 1, /* net_pcap: dynfield holds capture time in microseconds */
	TV_TS_NIC = 2,     /* RX timestamp offload: dynfield holds device clock ticks */
};

/* One received packet as Go sees it. data points into the mbuf. */
struct tv_pkt {
	const unsigned char *data;
	uint32_t data_len; /* bytes at data (first segment) */
	uint32_t pkt_len;  /* whole packet, all segments */
	int64_t ts;        /* ns since the Unix epoch */
};

/* Maps a free-running counter to Unix nanoseconds:
 * ns = base_ns + ((cnt - base_cnt) * mult) >> 32. */
struct tv_clock {
	uint64_t base_cnt;
	int64_t base_ns;
	uint64_t mult;     /* ns per count, 32.32 fixed point */
	uint64_t nominal;  /* mult from the nominal frequency, for clamping */
};

/* Per-queue receive state, allocated in C memory and owned by one thread. */
struct tv_rxq {
	struct tv_pkt pkts[TV_MAX_BURST];
	void *mbufs[TV_MAX_BURST];
	uint16_t port;
	uint16_t queue;
	uint16_t held;    /* mbufs of the last burst, freed by the next call */
	uint16_t ts_mode;
	int32_t ts_off;   /* timestamp dynfield offset, <0 when not registered */
	uint64_t ts_flag; /* RX timestamp dynflag mask, 0 when not registered */
	uint64_t rebase;  /* TSC ticks between re-anchors (about one second) */
	struct tv_clock tsc;
	struct tv_clock nic;
	/* Counters, written and read only by the receiving thread. */
	uint64_t packets;
	uint64_t bytes;
	uint64_t bursts;
	uint64_t truncated; /* multi-segment packets delivered as first segment */
};

/* Per-producer transmit state. Frames live in one C buffer. */
struct tv_txq {
	void *pend[TV_MAX_BURST];
	uint16_t port;
	uint16_t queue;
	uint16_t npend;   /* mbufs built but not yet accepted by the PMD */
	uint16_t pendoff; /* first of them */
	void *mp;
	const unsigned char *buf;
	const uint32_t *off;
	const uint32_t *len;
	uint32_t nframes;
	uint32_t next;      /* next frame to load */
	uint64_t remaining; /* frames still to load */
	uint64_t sent;
	uint64_t refused; /* packets the PMD did not take on an attempt (retried) */
	uint64_t nombuf;  /* bulk allocations that failed (retried) */
};

int tv_eal_init(int argc, char **argv);
void tv_log_mark(void);
int tv_log_errors(char *dst, int n);
int tv_rte_errno(void);
int tv_register_thread(void);
int tv_pin_thread(unsigned int lcore);
int tv_unpin_thread(void);
int tv_lcore_id(void);

uint16_t tv_rx_burst(struct tv_rxq *q);
void tv_rx_release(struct tv_rxq *q);
void tv_rx_init_clock(struct tv_rxq *q);
int tv_rx_nic_calibrate(struct tv_rxq *q, uint64_t t0, int64_t n0);
int tv_read_clock(uint16_t port, uint64_t *ticks, int64_t *ns);

int tv_tx_step(struct tv_txq *t, uint16_t max);
void tv_tx_release(struct tv_txq *t);

int64_t tv_realtime_ns(void);

#endif
