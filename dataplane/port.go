//go:build cgo && !nodpdk

package dataplane

/*
#include <stdlib.h>
#include <string.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_mempool.h>
#include "dpdk.h"

// Symmetric RSS key: 0x6d5a repeated maps both directions of a flow to the
// same queue (Woo and Park, "Scalable TCP Session Monitoring with Symmetric
// Receive-side Scaling").
static uint8_t tv_sym_rss_key[64];

static void tv_fill_sym_key(void)
{
	for (int i = 0; i < 64; i += 2) {
		tv_sym_rss_key[i] = 0x6d;
		tv_sym_rss_key[i + 1] = 0x5a;
	}
}

static int tv_port_configure(uint16_t port, uint16_t nrx, uint16_t ntx,
			     int rss, uint8_t key_len, uint64_t rss_hf,
			     uint64_t rx_offloads)
{
	struct rte_eth_conf conf;

	memset(&conf, 0, sizeof(conf));
	conf.rxmode.offloads = rx_offloads;
	if (rss) {
		tv_fill_sym_key();
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_key = tv_sym_rss_key;
		conf.rx_adv_conf.rss_conf.rss_key_len = key_len;
		conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
	}
	return rte_eth_dev_configure(port, nrx, ntx, &conf);
}

static struct tv_rxq *tv_rxq_new(uint16_t port, uint16_t queue, int socket)
{
	struct tv_rxq *q = rte_zmalloc_socket("tv_rxq", sizeof(*q),
					      RTE_CACHE_LINE_SIZE, socket);
	if (q == NULL)
		return NULL;
	q->port = port;
	q->queue = queue;
	q->ts_off = -1;
	tv_rx_init_clock(q);
	return q;
}

static int tv_ts_lookup(int *off, uint64_t *flag)
{
	int o = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, NULL);
	int b = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, NULL);

	if (o < 0 || b < 0)
		return -1;
	*off = o;
	*flag = 1ULL << b;
	return 0;
}

static int tv_mbuf_headroom(void) { return RTE_PKTMBUF_HEADROOM; }
static uint64_t tv_rss_hf(void) { return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP; }
static uint64_t tv_offload_timestamp(void) { return RTE_ETH_RX_OFFLOAD_TIMESTAMP; }
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"tapvault/pcap"
	"time"
	"unsafe"
)

// The C burst array and the Go one must have the same size.
const _ = uint(MaxBurst-C.TV_MAX_BURST) + uint(C.TV_MAX_BURST-MaxBurst)

// Port is one started ethdev port and its RX queues.
type Port struct {
	id       uint16
	name     string
	driver   string
	mp       *C.struct_rte_mempool
	queues   []*RxQueue
	replays  []*replayQueue // per queue; nil where the queue is no replay
	rss      bool
	dataRoom int
	txq      int
	stopOnce sync.Once
	stopErr  error
}

// RxQueue receives bursts from one RX queue of a Port. It is a Source and
// is read by exactly one goroutine, ideally on a thread pinned with
// PinThread.
type RxQueue struct {
	c      *C.struct_tv_rxq
	port   *Port
	id     int
	ts     TimestampSource
	closed bool
}

var _ Source = (*RxQueue)(nil)

// ErrClosed is returned by Recv on a closed queue or stopped port.
var ErrClosed = errors.New("rx queue closed")

// OpenPort configures and starts the port cfg.Name: a mempool, cfg.RxQueues
// RX queues (symmetric RSS when there are several and the PMD supports RSS),
// cfg.TxQueues TX queues, promiscuous mode if asked, and the timestamp
// source for the driver. The control-plane calls run on the EAL main thread.
func OpenPort(cfg PortConfig) (*Port, error) {
	if !EALInitialised() {
		return nil, errNoEAL
	}
	var p *Port
	var err error
	onMain(func() { p, err = openPort(cfg) })
	return p, err
}

func openPort(cfg PortConfig) (*Port, error) {
	pid, info, err := lookupPort(cfg.Name)
	if err != nil {
		return nil, err
	}
	p := &Port{id: uint16(pid), name: cfg.Name, driver: C.GoString(info.driver_name)}

	nrx := cfg.RxQueues
	if nrx <= 0 {
		nrx = 1
	}
	if nrx > int(info.max_rx_queues) {
		return nil, fmt.Errorf("open port %q: %d rx queues asked, driver %s allows %d", cfg.Name, nrx, p.driver, info.max_rx_queues)
	}
	ntx := max(cfg.TxQueues, 0)
	if p.driver == "net_af_xdp" && ntx < nrx {
		// net_af_xdp's configure refuses fewer TX than RX queues (-EINVAL,
		// DPDK 22.11): unused TX queues, so that capture can use it.
		ntx = nrx
	}
	if ntx > int(info.max_tx_queues) {
		return nil, fmt.Errorf("open port %q: %d tx queues asked, driver %s allows %d", cfg.Name, ntx, p.driver, info.max_tx_queues)
	}
	p.txq = ntx

	// Replay files decide the data room and the end-of-replay counts.
	var plan replayPlan
	if p.driver == "net_pcap" {
		plan = planReplay(vdevArgs(ealArgs(), cfg.Name))
	}

	headroom := int(C.tv_mbuf_headroom())
	dataRoom := cfg.DataRoom
	if dataRoom <= 0 {
		dataRoom = max(DefaultDataRoom, plan.dataRoom(headroom))
	}
	if dataRoom > 0xffff {
		dataRoom = 0xffff // data_room_size is a uint16; bigger packets arrive multi-segment
	}
	if dataRoom <= headroom {
		return nil, fmt.Errorf("open port %q: data room %d leaves no space after the %d-byte headroom", cfg.Name, dataRoom, headroom)
	}
	p.dataRoom = dataRoom

	useNICClock := p.driver != "net_pcap" && info.rx_offload_capa&C.tv_offload_timestamp() != 0
	if err := p.configure(&info, nrx, ntx, useNICClock); err != nil {
		return nil, err
	}

	nrxd := C.uint16_t(cfg.RxDesc)
	if cfg.RxDesc <= 0 {
		nrxd = DefaultRxDesc
	}
	ntxd := C.uint16_t(DefaultRxDesc)
	if rc := C.rte_eth_dev_adjust_nb_rx_tx_desc(pid, &nrxd, &ntxd); rc != 0 {
		return nil, fmt.Errorf("open port %q: adjust descriptors: %w", cfg.Name, rteErr(-int(rc)))
	}

	nmbufs := cfg.Mbufs
	if nmbufs <= 0 {
		nmbufs = max(DefaultMbufsPerQueue*nrx, plan.mbufs(nrx))
	}
	if need := nrx * (int(nrxd) + MaxBurst); nmbufs < need {
		return nil, fmt.Errorf("open port %q: %d mbufs cannot fill %d rx rings of %d plus one burst each (need %d)", cfg.Name, nmbufs, nrx, nrxd, need)
	}
	socket := C.rte_eth_dev_socket_id(pid)
	if err := p.createMempool(cfg, nmbufs, socket); err != nil {
		return nil, err
	}
	fail := func(err error) (*Port, error) {
		C.rte_eth_dev_stop(pid)
		C.rte_mempool_free(p.mp)
		return nil, err
	}
	if err := p.start(cfg, nrx, ntx, nrxd, ntxd, socket); err != nil {
		return fail(err)
	}

	// The timestamp dynfield is registered by the PMD during setup or
	// start, so look it up only now.
	clk := p.timestampClock(useNICClock)
	for q := 0; q < nrx; q++ {
		rq, err := p.newRxQueue(q, socket, clk)
		if err != nil {
			for _, rq := range p.queues {
				C.rte_free(unsafe.Pointer(rq.c))
			}
			return fail(err)
		}
		p.queues = append(p.queues, rq)
	}
	p.replays = plan.queues(p.queues, cfg.ReplayIdle)
	return p, nil
}

// lookupPort finds the ethdev called name, re-creating its vdev if the port
// was closed, and reads its device info.
func lookupPort(name string) (C.uint16_t, C.struct_rte_eth_dev_info, error) {
	var info C.struct_rte_eth_dev_info
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var pid C.uint16_t
	if rc := C.rte_eth_dev_get_port_by_name(cname, &pid); rc != 0 {
		if err := reprobeVdev(name); err != nil {
			return 0, info, fmt.Errorf("open port %q: no such ethdev: it is not in the EAL --vdev or allow list, or it failed to probe (DPDK's log above says why): %w", name, err)
		}
		if rc := C.rte_eth_dev_get_port_by_name(cname, &pid); rc != 0 {
			return 0, info, fmt.Errorf("open port %q: no ethdev after re-creating the vdev: %w", name, rteErr(-int(rc)))
		}
	}
	if rc := C.rte_eth_dev_info_get(pid, &info); rc != 0 {
		return 0, info, fmt.Errorf("open port %q: device info: %w", name, rteErr(-int(rc)))
	}
	return pid, info, nil
}

// configure sets the port up for nrx RX and ntx TX queues: symmetric RSS
// when there are several RX queues and the PMD hashes, and the RX timestamp
// offload when the NIC's clock is used.
func (p *Port) configure(info *C.struct_rte_eth_dev_info, nrx, ntx int, useNICClock bool) error {
	rss := nrx > 1 && info.flow_type_rss_offloads != 0
	keyLen := C.uint8_t(info.hash_key_size)
	if keyLen == 0 {
		keyLen = 40
	}
	var offloads C.uint64_t
	if useNICClock {
		offloads |= C.tv_offload_timestamp()
	}
	if rc := C.tv_port_configure(C.uint16_t(p.id), C.uint16_t(nrx), C.uint16_t(ntx), boolInt(rss), keyLen,
		C.tv_rss_hf()&info.flow_type_rss_offloads, offloads); rc != 0 {
		return fmt.Errorf("open port %q: configure %d rx/%d tx queues: %w", p.name, nrx, ntx, rteErr(-int(rc)))
	}
	p.rss = rss
	return nil
}

// createMempool creates the port's mbuf pool of nmbufs mbufs of p.dataRoom
// bytes on socket.
func (p *Port) createMempool(cfg PortConfig, nmbufs int, socket C.int) error {
	cache := cfg.MbufCache
	if cache <= 0 {
		cache = DefaultMbufCache
	}
	cache = min(cache, int(C.RTE_MEMPOOL_CACHE_MAX_SIZE), nmbufs*2/3)
	mpName := C.CString(fmt.Sprintf("tv_rx_%d", p.id))
	defer C.free(unsafe.Pointer(mpName))
	p.mp = C.rte_pktmbuf_pool_create(mpName, C.uint(nmbufs), C.uint(cache), 0, C.uint16_t(p.dataRoom), socket)
	if p.mp == nil {
		return fmt.Errorf("open port %q: mempool of %d mbufs x %d bytes: %w", cfg.Name, nmbufs, p.dataRoom, rteErr(int(C.tv_rte_errno())))
	}
	return nil
}

// start sets up the RX and TX queues, starts the port and turns
// promiscuous mode on if asked. On error the caller stops the port and frees
// the mempool.
func (p *Port) start(cfg PortConfig, nrx, ntx int, nrxd, ntxd C.uint16_t, socket C.int) error {
	pid := C.uint16_t(p.id)
	for q := 0; q < nrx; q++ {
		if rc := C.rte_eth_rx_queue_setup(pid, C.uint16_t(q), nrxd, C.uint(socket), nil, p.mp); rc != 0 {
			return fmt.Errorf("open port %q: rx queue %d setup: %w", cfg.Name, q, rteErr(-int(rc)))
		}
	}
	for q := 0; q < ntx; q++ {
		if rc := C.rte_eth_tx_queue_setup(pid, C.uint16_t(q), ntxd, C.uint(socket), nil); rc != 0 {
			return fmt.Errorf("open port %q: tx queue %d setup: %w", cfg.Name, q, rteErr(-int(rc)))
		}
	}
	if rc := C.rte_eth_dev_start(pid); rc != 0 {
		return fmt.Errorf("open port %q: start: %w", cfg.Name, rteErr(-int(rc)))
	}
	if cfg.Promisc {
		// Virtual devices often cannot change promiscuity (ENOTSUP): that is fine.
		if rc := C.rte_eth_promiscuous_enable(pid); rc != 0 && rc != -C.ENOTSUP {
			return fmt.Errorf("open port %q: enable promiscuous mode: %w", cfg.Name, rteErr(-int(rc)))
		}
	}
	return nil
}

// rxClock is where a started port's RX timestamps come from.
type rxClock struct {
	mode   TimestampSource
	tsOff  C.int      // the timestamp dynfield's offset (pcap, NIC)
	tsFlag C.uint64_t // its RX flag
	t0     C.uint64_t // NIC: a clock reading, and the realtime ns it was taken at
	n0     C.int64_t
}

// timestampClock picks the timestamp source for the started port: net_pcap's
// capture time, the NIC's clock, or TSC.
func (p *Port) timestampClock(useNICClock bool) rxClock {
	clk := rxClock{mode: TimestampTSC, tsOff: -1}
	haveField := C.tv_ts_lookup(&clk.tsOff, &clk.tsFlag) == 0
	switch {
	case p.driver == "net_pcap" && haveField:
		clk.mode = TimestampPcap
	case useNICClock && haveField:
		clk.mode = TimestampNIC
	}
	if clk.mode == TimestampNIC {
		if C.tv_read_clock(C.uint16_t(p.id), &clk.t0, &clk.n0) != 0 {
			clk.mode = TimestampTSC // no rte_eth_read_clock: ticks cannot be converted
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return clk
}

// newRxQueue allocates the C state of RX queue q and sets its clock.
func (p *Port) newRxQueue(q int, socket C.int, clk rxClock) (*RxQueue, error) {
	c := C.tv_rxq_new(C.uint16_t(p.id), C.uint16_t(q), socket)
	if c == nil {
		return nil, fmt.Errorf("open port %q: allocate rx queue %d state", p.name, q)
	}
	rq := &RxQueue{c: c, port: p, id: q, ts: clk.mode}
	if clk.mode != TimestampTSC {
		c.ts_mode = C.uint16_t(clk.mode)
		c.ts_off = C.int32_t(clk.tsOff)
		c.ts_flag = clk.tsFlag
	}
	if clk.mode == TimestampNIC && C.tv_rx_nic_calibrate(c, clk.t0, clk.n0) != 0 {
		rq.ts = TimestampTSC
		c.ts_mode = C.TV_TS_TSC
	}
	return rq, nil
}

// reprobeVdev re-creates a virtual device given to InitEAL by --vdev whose
// port was closed (closing a vdev port releases it): the device is removed
// from the vdev bus and probed again with its original arguments, so a
// net_pcap replay starts over. It returns an error for names that are not
// such a vdev.
func reprobeVdev(name string) error {
	kv, ok := vdevArgs(ealArgs(), name)
	if !ok {
		return syscall.ENODEV
	}
	parts := make([]string, len(kv))
	for i, p := range kv {
		parts[i] = p[0] + "=" + p[1]
	}
	bus := C.CString("vdev")
	defer C.free(unsafe.Pointer(bus))
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	cargs := C.CString(strings.Join(parts, ","))
	defer C.free(unsafe.Pointer(cargs))
	C.rte_eal_hotplug_remove(bus, cname) // fails harmlessly if the device is gone already
	markLog()
	if rc := C.rte_eal_hotplug_add(bus, cname, cargs); rc != 0 {
		err := fmt.Errorf("re-create vdev: %w", rteErr(-int(rc)))
		if l := logErrors(); l != "" {
			// The probe's reason is only in DPDK's log.
			err = fmt.Errorf("%w; DPDK logged: %s", err, l)
		}
		return err
	}
	return nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// ID returns the ethdev port id.
func (p *Port) ID() int { return int(p.id) }

// Name returns the device name the port was opened by.
func (p *Port) Name() string { return p.name }

// Driver returns the PMD name, e.g. "net_pcap", "net_ring", "net_ice".
func (p *Port) Driver() string { return p.driver }

// RSS reports whether symmetric RSS spreads packets over the RX queues.
func (p *Port) RSS() bool { return p.rss }

// DataRoom returns the mbuf data room in use, headroom included.
func (p *Port) DataRoom() int { return p.dataRoom }

// NumQueues returns the number of RX queues.
func (p *Port) NumQueues() int { return len(p.queues) }

// Source returns RX queue q as a Source, or nil if there is no such queue.
// For a net_pcap replay (without infinite_rx) the Source ends with io.EOF
// once the replay is over; otherwise it is the RxQueue itself. Receive
// through Source; Queue gives the queue's own counters and clock.
func (p *Port) Source(q int) Source {
	if q < 0 || q >= len(p.queues) {
		return nil
	}
	if r := p.replays[q]; r != nil {
		return r
	}
	return p.queues[q]
}

// Queue returns RX queue q, or nil if there is no such queue. Its Recv never
// returns io.EOF, even on a replay: see Source.
func (p *Port) Queue(q int) *RxQueue {
	if q < 0 || q >= len(p.queues) {
		return nil
	}
	return p.queues[q]
}

// Stats reads the port's counters (rte_eth_stats_get). Safe to call from
// any goroutine while receivers run.
func (p *Port) Stats() (PortStats, error) {
	var s C.struct_rte_eth_stats
	if rc := C.rte_eth_stats_get(C.uint16_t(p.id), &s); rc != 0 {
		return PortStats{}, fmt.Errorf("port %q stats: %w", p.name, rteErr(-int(rc)))
	}
	return PortStats{
		IPackets: uint64(s.ipackets),
		IBytes:   uint64(s.ibytes),
		IMissed:  uint64(s.imissed),
		IErrors:  uint64(s.ierrors),
		RxNoMbuf: uint64(s.rx_nombuf),
	}, nil
}

// Stop closes every queue, stops and closes the port and frees its mempool.
// Call it only after every goroutine receiving from the port has returned.
// DPDK releases a closed virtual device's port; OpenPort re-creates it from
// its --vdev arguments (a net_pcap replay then starts over).
func (p *Port) Stop() error {
	p.stopOnce.Do(func() {
		for _, q := range p.queues {
			q.Close()
		}
		onMain(func() {
			if rc := C.rte_eth_dev_stop(C.uint16_t(p.id)); rc != 0 {
				p.stopErr = fmt.Errorf("stop port %q: %w", p.name, rteErr(-int(rc)))
			}
			if rc := C.rte_eth_dev_close(C.uint16_t(p.id)); rc != 0 && p.stopErr == nil {
				p.stopErr = fmt.Errorf("close port %q: %w", p.name, rteErr(-int(rc)))
			}
			for _, q := range p.queues {
				C.rte_free(unsafe.Pointer(q.c))
				q.c = nil
			}
			C.rte_mempool_free(p.mp)
			p.mp = nil
		})
	})
	return p.stopErr
}

// ID returns the queue number within its port.
func (q *RxQueue) ID() int { return q.id }

// Port returns the port the queue belongs to.
func (q *RxQueue) Port() *Port { return q.port }

// Timestamps says where this queue's packet timestamps come from.
func (q *RxQueue) Timestamps() TimestampSource { return q.ts }

// Recv frees the previous burst's mbufs and receives the next burst, in one
// cgo call. Each b.Pkts[i].Data points into mbuf memory without a copy and
// is valid until the next Recv or Close on q. LinkType is Ethernet.
//
// A packet that did not fit one mbuf (multi-segment) is delivered as its
// first segment: len(Data) < WireLen, and Stats().Truncated counts it.
// OpenPort sizes mbufs so that this does not happen on replay.
//
// It returns 0 and a nil error when nothing is waiting: a queue never ends
// by itself. Port.Source wraps a net_pcap replay queue in a Source that
// returns io.EOF at the end of the replay (see docs/dataplane.md).
func (q *RxQueue) Recv(b *Burst) (int, error) {
	if q.closed {
		b.N = 0
		return 0, ErrClosed
	}
	n := int(C.tv_rx_burst(q.c))
	pk := &q.c.pkts
	for i := 0; i < n; i++ {
		s := &pk[i]
		p := &b.Pkts[i]
		p.Data = unsafe.Slice((*byte)(unsafe.Pointer(s.data)), int(s.data_len))
		p.TS = int64(s.ts)
		p.WireLen = uint32(s.pkt_len)
		p.LinkType = pcap.LinkTypeEthernet
		p.Iface = 0
	}
	b.N = n
	return n, nil
}

// Stats returns the queue's own counters. Call it from the receiving
// goroutine (the counters are not synchronised).
func (q *RxQueue) Stats() RxQueueStats {
	if q.c == nil {
		return RxQueueStats{}
	}
	return RxQueueStats{
		Packets:   uint64(q.c.packets),
		Bytes:     uint64(q.c.bytes),
		Bursts:    uint64(q.c.bursts),
		Truncated: uint64(q.c.truncated),
	}
}

// Close frees the mbufs of the last burst. The queue's hardware stays
// configured until Port.Stop. Further Recv calls return ErrClosed.
func (q *RxQueue) Close() error {
	if q.closed {
		return nil
	}
	q.closed = true
	C.tv_rx_release(q.c)
	return nil
}
