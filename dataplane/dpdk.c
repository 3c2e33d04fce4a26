//go:build cgo && !nodpdk

#define _GNU_SOURCE
#define ALLOW_EXPERIMENTAL_API /* rte_eth_read_clock */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_memcpy.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>

#include "dpdk.h"

/* Affinity of the thread that called rte_eal_init, taken before EAL pinned
 * it: UnpinThread restores it. */
static cpu_set_t tv_orig_affinity;
static int tv_orig_affinity_ok;

int64_t tv_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* DPDK's log still goes to stderr, through a stream that also keeps its
 * last error lines (level ERR or worse): a device that fails to probe is
 * only logged, and the caller's error can then say why (tv_log_errors). */
#define TV_LOG_LINES 8
#define TV_LOG_LEN 320
static pthread_mutex_t tv_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char tv_log_ring[TV_LOG_LINES][TV_LOG_LEN];
static unsigned int tv_log_kept;  /* lines kept since the last mark, all time */
static unsigned int tv_log_mark_at;
static char tv_log_cur[TV_LOG_LEN];
static size_t tv_log_curlen;

static ssize_t tv_log_write(void *cookie, const char *buf, size_t size)
{
	(void)cookie;
	size_t w = fwrite(buf, 1, size, stderr);
	(void)w;
	/* rte_vlog sets the message's level for this thread before writing. */
	int lvl = rte_log_cur_msg_loglevel();
	pthread_mutex_lock(&tv_log_mu);
	for (size_t i = 0; i < size; i++) {
		char c = buf[i];
		if (c != '\n') {
			if (tv_log_curlen < TV_LOG_LEN - 1)
				tv_log_cur[tv_log_curlen++] = c;
			continue;
		}
		if (tv_log_curlen > 0 && lvl > 0 && lvl <= RTE_LOG_ERR) {
			char *dst = tv_log_ring[tv_log_kept % TV_LOG_LINES];
			memcpy(dst, tv_log_cur, tv_log_curlen);
			dst[tv_log_curlen] = 0;
			tv_log_kept++;
		}
		tv_log_curlen = 0;
	}
	pthread_mutex_unlock(&tv_log_mu);
	return (ssize_t)size;
}

static void tv_log_capture(void)
{
	cookie_io_functions_t io = {.write = tv_log_write};
	FILE *f = fopencookie(NULL, "w", io);
	if (f == NULL)
		return; /* the log stays EAL's own */
	setvbuf(f, NULL, _IOLBF, 0);
	rte_openlog_stream(f);
}

void tv_log_mark(void)
{
	pthread_mutex_lock(&tv_log_mu);
	tv_log_mark_at = tv_log_kept;
	pthread_mutex_unlock(&tv_log_mu);
}

/* tv_log_errors writes the error lines logged since tv_log_mark (the last
 * TV_LOG_LINES of them), oldest first, joined by " | ", into dst (NUL
 * terminated) and returns their length. */
int tv_log_errors(char *dst, int n)
{
	int len = 0;
	if (n <= 0)
		return 0;
	dst[0] = 0;
	pthread_mutex_lock(&tv_log_mu);
	unsigned int from = tv_log_mark_at;
	if (tv_log_kept - from > TV_LOG_LINES)
		from = tv_log_kept - TV_LOG_LINES;
	for (unsigned int i = from; i < tv_log_kept; i++) {
		int w = snprintf(dst + len, (size_t)(n - len), "%s%s",
				 len > 0 ? " | " : "", tv_log_ring[i % TV_LOG_LINES]);
		if (w < 0 || w >= n - len) {
			len = (int)strlen(dst);
			break;
		}
		len += w;
	}
	pthread_mutex_unlock(&tv_log_mu);
	return len;
}

int tv_eal_init(int argc, char **argv)
{
	if (pthread_getaffinity_np(pthread_self(), sizeof(tv_orig_affinity),
				   &tv_orig_affinity) == 0)
		tv_orig_affinity_ok = 1;
	tv_log_capture();
	return rte_eal_init(argc, argv);
}

int tv_rte_errno(void) { return rte_errno; }

int tv_lcore_id(void)
{
	unsigned int id = rte_lcore_id();
	return id == LCORE_ID_ANY ? -1 : (int)id;
}

/* Register the calling thread as a non-EAL DPDK thread (a fresh lcore id),
 * so mempool caches work. A thread that has an lcore id already keeps it. */
int tv_register_thread(void)
{
	if (rte_lcore_id() != LCORE_ID_ANY)
		return 0;
	if (rte_thread_register() != 0)
		return -rte_errno;
	return 0;
}

/* Pin the calling thread to the CPUs EAL assigned to lcore and register it. */
int tv_pin_thread(unsigned int lcore)
{
	rte_cpuset_t set = rte_lcore_cpuset(lcore);
	int rc;

	if (CPU_COUNT(&set) == 0)
		return -EINVAL;
	rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (rc != 0)
		return -rc;
	return tv_register_thread();
}

int tv_unpin_thread(void)
{
	unsigned int id = rte_lcore_id();

	if (id != LCORE_ID_ANY && rte_eal_lcore_role(id) == ROLE_NON_EAL)
		rte_thread_unregister();
	if (tv_orig_affinity_ok) {
		int rc = pthread_setaffinity_np(pthread_self(),
						sizeof(tv_orig_affinity),
						&tv_orig_affinity);
		if (rc != 0)
			return -rc;
	}
	return 0;
}

static inline int64_t tv_clock_ns(const struct tv_clock *c, uint64_t cnt)
{
	__int128 d = (__int128)(int64_t)(cnt - c->base_cnt);
	return c->base_ns + (int64_t)((d * (__int128)c->mult) >> 32);
}

/* Re-anchor the TSC clock to CLOCK_REALTIME and refine its rate from the
 * last interval, so neither NTP slewing nor an imprecise rte_get_tsc_hz
 * accumulates error for longer than one interval. */
static void tv_tsc_rebase(struct tv_clock *c, uint64_t tsc)
{
	int64_t now = tv_realtime_ns();
	uint64_t dc = tsc - c->base_cnt;
	int64_t dn = now - c->base_ns;

	if (dc > 0 && dn > 0) {
		uint64_t m = (uint64_t)(((__int128)dn << 32) / dc);
		/* Accept only rates within 1% of nominal: a clock step
		 * (settimeofday) must not skew the rate. */
		if (m > c->nominal - c->nominal / 100 &&
		    m < c->nominal + c->nominal / 100)
			c->mult = m;
	}
	c->base_cnt = tsc;
	c->base_ns = now;
}

void tv_rx_init_clock(struct tv_rxq *q)
{
	uint64_t hz = rte_get_tsc_hz();

	if (hz == 0)
		hz = 1000000000ULL;
	q->tsc.nominal = (uint64_t)(((__int128)1000000000LL << 32) / hz);
	q->tsc.mult = q->tsc.nominal;
	q->tsc.base_cnt = rte_rdtsc();
	q->tsc.base_ns = tv_realtime_ns();
	q->rebase = hz;
}

int tv_read_clock(uint16_t port, uint64_t *ticks, int64_t *ns)
{
	int rc = rte_eth_read_clock(port, ticks);
	*ns = tv_realtime_ns();
	return rc;
}

/* Calibrate the device clock against CLOCK_REALTIME: (t0, n0) was read
 * some time ago by tv_read_clock, read again now. */
int tv_rx_nic_calibrate(struct tv_rxq *q, uint64_t t0, int64_t n0)
{
	uint64_t t1;
	int64_t n1;
	int rc = tv_read_clock(q->port, &t1, &n1);

	if (rc != 0)
		return rc;
	if (t1 <= t0 || n1 <= n0)
		return -EINVAL;
	q->nic.mult = (uint64_t)(((__int128)(n1 - n0) << 32) / (t1 - t0));
	q->nic.nominal = q->nic.mult;
	q->nic.base_cnt = t1;
	q->nic.base_ns = n1;
	return 0;
}

static void tv_nic_rebase(struct tv_rxq *q)
{
	uint64_t t;
	int64_t n;

	if (tv_read_clock(q->port, &t, &n) != 0)
		return;
	q->nic.base_cnt = t;
	q->nic.base_ns = n;
}

/* The hot path: free the previous burst, receive the next one and describe
 * it to Go. One call per burst. */
uint16_t tv_rx_burst(struct tv_rxq *q)
{
	struct rte_mbuf **mb = (struct rte_mbuf **)q->mbufs;
	uint64_t tsc, bytes = 0;
	int64_t now;
	uint16_t i, n;

	if (q->held != 0) {
		rte_pktmbuf_free_bulk(mb, q->held);
		q->held = 0;
	}
	n = rte_eth_rx_burst(q->port, q->queue, mb, TV_MAX_BURST);
	if (n == 0)
		return 0;

	tsc = rte_rdtsc();
	if (tsc - q->tsc.base_cnt >= q->rebase) {
		tv_tsc_rebase(&q->tsc, tsc);
		if (q->ts_mode == TV_TS_NIC)
			tv_nic_rebase(q);
	}
	now = tv_clock_ns(&q->tsc, tsc);

	for (i = 0; i < n; i++) {
		struct rte_mbuf *m = mb[i];
		struct tv_pkt *p = &q->pkts[i];
		const unsigned char *d = rte_pktmbuf_mtod(m, const unsigned char *);

		rte_prefetch0(d);
		if (i + 1 < n)
			rte_prefetch0(mb[i + 1]);
		p->data = d;
		p->data_len = m->data_len;
		p->pkt_len = m->pkt_len;
		if (unlikely(m->nb_segs > 1))
			q->truncated++;
		bytes += m->pkt_len;
		p->ts = now;
		if (q->ts_mode != TV_TS_TSC && (m->ol_flags & q->ts_flag) != 0) {
			uint64_t v = *RTE_MBUF_DYNFIELD(m, q->ts_off, uint64_t *);
			if (q->ts_mode == TV_TS_PCAP_US)
				p->ts = (int64_t)(v * 1000);
			else
				p->ts = tv_clock_ns(&q->nic, v);
		}
	}
	q->held = n;
	q->packets += n;
	q->bytes += bytes;
	q->bursts++;
	return n;
}

void tv_rx_release(struct tv_rxq *q)
{
	if (q->held != 0) {
		rte_pktmbuf_free_bulk((struct rte_mbuf **)q->mbufs, q->held);
		q->held = 0;
	}
}

/* One transmit step: when nothing is pending, build up to max mbufs from
 * the next frames; then offer the pending mbufs to the PMD once. Returns 1
 * when every frame has been sent, 0 otherwise. Nothing is ever dropped: what
 * the PMD refused stays pending for the next step. */
int tv_tx_step(struct tv_txq *t, uint16_t max)
{
	struct rte_mbuf **pend = (struct rte_mbuf **)t->pend;
	uint16_t i, sent;

	if (t->npend == 0) {
		uint16_t n = max;

		if (n > TV_MAX_BURST)
			n = TV_MAX_BURST;
		if ((uint64_t)n > t->remaining)
			n = (uint16_t)t->remaining;
		if (n == 0)
			return t->remaining == 0;
		if (rte_pktmbuf_alloc_bulk((struct rte_mempool *)t->mp, pend, n) != 0) {
			t->nombuf++;
			return 0;
		}
		for (i = 0; i < n; i++) {
			struct rte_mbuf *m = pend[i];
			uint32_t f = t->next;
			uint32_t l = t->len[f];

			rte_memcpy(rte_pktmbuf_mtod(m, void *), t->buf + t->off[f], l);
			m->data_len = (uint16_t)l;
			m->pkt_len = l;
			t->next = f + 1 == t->nframes ? 0 : f + 1;
		}
		t->remaining -= n;
		t->npend = n;
		t->pendoff = 0;
	}
	sent = rte_eth_tx_burst(t->port, t->queue, pend + t->pendoff, t->npend);
	t->sent += sent;
	t->refused += t->npend - sent;
	t->npend -= sent;
	t->pendoff += sent;
	return t->remaining == 0 && t->npend == 0;
}

void tv_tx_release(struct tv_txq *t)
{
	if (t->npend != 0) {
		rte_pktmbuf_free_bulk((struct rte_mbuf **)t->pend + t->pendoff,
				      t->npend);
		t->npend = 0;
	}
}
