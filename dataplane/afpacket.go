//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"tapvault/pcap"
)

// Kernel capture for hosts where DPDK cannot own the NIC (cloud VMs): an
// AF_PACKET socket with a TPACKET_V3 ring mapped into the process. The
// kernel fills blocks of packets and retires a block when it is full or
// after AFPacketConfig.BlockTimeout; Recv sleeps until a block is ready, so
// an idle link costs no CPU (a DPDK queue must be polled).
//
// The sleep is Go's network poller (epoll) on the non-blocking socket, not
// a blocking poll(2): a goroutine blocked in a system call makes the
// runtime's monitor thread take its P back and then poll every 20 µs to
// 10 ms, about 2000 wake-ups a second on an idle sensor (perf: 12 % of
// its idle CPU in runtime.usleep). Parked on the poller it costs nothing.
//
// This is written on golang.org/x/sys/unix rather than gopacket's afpacket
// (pure Go as well, so either works with CGO_ENABLED=0) because that reads
// one packet per call behind a mutex and hides block boundaries: a Burst of
// several borrowed packets could only be had by copying each one, which the
// receive path must not do. It also attaches a filter only after binding, so
// unfiltered packets enter the ring in between; here the socket is bound
// with protocol 0 (nothing delivered), the filter and ring set up, and only
// then bound to ETH_P_ALL.

// AFPacketConfig says how OpenAFPacket sets up one socket. Zero values pick
// the defaults noted on each field.
type AFPacketConfig struct {
	Iface string // interface name, e.g. "eth0"
	// Filter is a classic BPF program the kernel runs on every packet
	// before it reaches the ring (SO_ATTACH_FILTER): what it rejects costs
	// no copy and is not counted. Its return value is the snap length, so
	// CompileFilter puts Snaplen into it. nil: every packet.
	Filter []bpf.RawInstruction
	// Snaplen cuts every packet to this many bytes in the kernel (the
	// original length is kept, as in pcap). 0: whole packets. Ignored when
	// Filter is set (the filter's accept value is the snap length).
	Snaplen int
	// BlockSize is the size of one ring block (a multiple of the page size,
	// default DefaultAFBlockSize); Blocks how many (default
	// DefaultAFBlocks). The ring is BlockSize*Blocks bytes of memory
	// shared with the kernel, and resident once used.
	BlockSize, Blocks int
	// BlockTimeout is how long the kernel keeps a partly filled block
	// before handing it over (retire_blk_tov); it bounds the delay before a
	// packet is seen at low rates, and how often Recv wakes. Default
	// DefaultAFBlockTimeout.
	BlockTimeout time.Duration
	// PollTimeout is how long one Recv waits for a block before returning
	// 0 packets, so the worker can run its timers and notice a stop.
	// Default DefaultAFPollTimeout.
	PollTimeout time.Duration
	// Fanout joins the socket to the PACKET_FANOUT_HASH group FanoutID.
	// OpenAFPacketGroup sets them.
	Fanout   bool
	FanoutID uint16
	// NoPromisc leaves the interface's promiscuous mode alone. By default
	// the socket asks for it (as tcpdump does); the kernel drops the
	// request when the socket closes.
	NoPromisc bool
}

// Defaults for AFPacketConfig fields left zero. The ring is small because
// the workers never wait for the disk: 16 MiB holds 200 ms at 650 Mbit/s.
// There are many blocks because at low rates the kernel retires each one by
// its timeout, partly filled, and a partly filled block holds the ring's
// room all the same: with 8 blocks of 1 MiB, 10k pkt/s of app traffic
// (~300 KiB per 100 ms) filled the ring in 0.8 s, and one run of four
// dropped 483 packets; 32 blocks hold 3.2 s at any rate up to a block per
// timeout. The blocks are 512 KiB, not smaller, because every block handed
// over wakes the process (the poller's thread, then the worker's): at 10k
// pkt/s of app traffic 256 KiB blocks came 20 times a second, 512 KiB ones
// 10, and the capture took about 0.1 point of a core less (two captures
// side by side on their own veths, 6 pairs: 2.90-3.27 % against
// 3.07-3.37 %; docs/PERFORMANCE.md, issue 16 §1). A block holds the largest
// GRO packet (64 KiB) several times.
const (
	DefaultAFBlockSize    = 512 << 10
	DefaultAFBlocks       = 32
	DefaultAFBlockTimeout = 100 * time.Millisecond
	DefaultAFPollTimeout  = 250 * time.Millisecond
)

// vlanTagLen is reserved in front of every packet (PACKET_RESERVE) so that a
// VLAN tag the NIC stripped can be put back in place, as libpcap does.
const vlanTagLen = 4

// AFPacket is one AF_PACKET socket with its TPACKET_V3 ring, read as a
// Source by one worker.
type AFPacket struct {
	fd       int
	f        *os.File        // owns fd once set up, for the network poller
	rc       syscall.RawConn // f's
	ready    func(uintptr) bool
	pollTO   time.Duration
	iface    string
	ifindex  int
	linkType uint16
	ring     []byte
	bsize    int
	nblocks  int

	cur  int                // block the reader is at
	hdr  *unix.TpacketHdrV1 // cur's header while the reader holds it, else nil
	next uintptr            // offset in the block of the next packet
	left uint32             // packets of the held block not yet delivered

	vlanRestored uint64 // tags put back (the worker's only; for tests)

	// delivered counts since open; read by Stats from another goroutine.
	pkts, bytes atomic.Uint64
	// kernel counters: PACKET_STATISTICS resets on read, so they add up here.
	statMu                   sync.Mutex
	kPackets, kDrops, kFreez uint64
	closed                   atomic.Bool
}

var _ Source = (*AFPacket)(nil)

// AFPacketStats are one socket's counters.
type AFPacketStats struct {
	Packets uint64 // packets that passed the filter (tp_packets less tp_drops)
	Drops   uint64 // packets the kernel dropped because the ring was full (tp_drops)
	Freezes uint64 // times the ring was full (tp_freeze_q_cnt)
	Bytes   uint64 // wire bytes of the packets Recv delivered
}

// OpenAFPacket opens a socket on cfg.Iface and maps its ring. It needs
// CAP_NET_RAW (and CAP_NET_ADMIN for promiscuous mode).
func OpenAFPacket(cfg AFPacketConfig) (*AFPacket, error) {
	if cfg.Iface == "" {
		return nil, errors.New("afpacket: no interface given")
	}
	ifi, err := net.InterfaceByName(cfg.Iface)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w (see `ip link` for the names)", cfg.Iface, err)
	}
	bsize, nblocks := cfg.BlockSize, cfg.Blocks
	if bsize == 0 {
		bsize = DefaultAFBlockSize
	}
	if nblocks == 0 {
		nblocks = DefaultAFBlocks
	}
	page := unix.Getpagesize()
	if bsize < page || bsize%page != 0 {
		return nil, fmt.Errorf("afpacket: block size %d must be a positive multiple of the page size %d", bsize, page)
	}
	if nblocks < 2 {
		return nil, fmt.Errorf("afpacket: %d blocks: need at least 2 (one for the kernel, one for the reader)", nblocks)
	}
	tov := cfg.BlockTimeout
	if tov <= 0 {
		tov = DefaultAFBlockTimeout
	}
	pt := cfg.PollTimeout
	if pt <= 0 {
		pt = DefaultAFPollTimeout
	}
	// Protocol 0: the socket receives nothing until it is bound to
	// ETH_P_ALL below, after the filter and the ring are in place.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("open AF_PACKET socket on %s: %w: capture needs root or CAP_NET_RAW (and CAP_NET_ADMIN for promiscuous mode); see deploy/tapvault-endpoint.service", cfg.Iface, err)
		}
		return nil, fmt.Errorf("open AF_PACKET socket on %s: %w", cfg.Iface, err)
	}
	s := &AFPacket{fd: fd, iface: cfg.Iface, ifindex: ifi.Index, bsize: bsize, nblocks: nblocks, pollTO: pt}
	if err := s.setup(cfg, tov); err != nil {
		unix.Close(fd)
		if s.ring != nil {
			unix.Munmap(s.ring)
		}
		return nil, fmt.Errorf("capture on %s: %w", cfg.Iface, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		unix.Munmap(s.ring)
		return nil, fmt.Errorf("capture on %s: non-blocking socket: %w", cfg.Iface, err)
	}
	s.f = os.NewFile(uintptr(fd), "afpacket:"+cfg.Iface)
	if s.rc, err = s.f.SyscallConn(); err != nil {
		s.f.Close()
		unix.Munmap(s.ring)
		return nil, fmt.Errorf("capture on %s: %w", cfg.Iface, err)
	}
	s.ready = s.blockReady // one method value, not one per Recv
	return s, nil
}

func (s *AFPacket) setup(cfg AFPacketConfig, tov time.Duration) error {
	fd := s.fd
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: s.ifindex}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("getsockname: %w", err)
	}
	ll, ok := sa.(*unix.SockaddrLinklayer)
	if !ok {
		return fmt.Errorf("getsockname: not a link-layer address (%T)", sa)
	}
	if s.linkType, err = linkTypeOf(ll.Hatype); err != nil {
		return err
	}
	prog := cfg.Filter
	if prog == nil && cfg.Snaplen > 0 {
		// The snap length is a filter's return value: one instruction.
		prog = []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: uint32(cfg.Snaplen)}}
	}
	if ll.Hatype == unix.ARPHRD_LOOPBACK {
		// On loopback every packet passes twice, once going out and once
		// coming in; keep one copy, the incoming (as libpcap does).
		prog = skipOutgoing(prog)
	}
	if prog != nil {
		if err := attachFilter(fd, prog); err != nil {
			return err
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fmt.Errorf("TPACKET_V3: %w (needs Linux 3.2 or later)", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_RESERVE, vlanTagLen); err != nil {
		return fmt.Errorf("PACKET_RESERVE: %w", err)
	}
	const frame = 2048 // TPACKET_V3 ignores frames but checks that they tile the blocks
	req := unix.TpacketReq3{
		Block_size:     uint32(s.bsize),
		Block_nr:       uint32(s.nblocks),
		Frame_size:     frame,
		Frame_nr:       uint32(s.bsize / frame * s.nblocks),
		Retire_blk_tov: uint32(max(tov/time.Millisecond, 1)),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("ring of %d blocks of %d bytes: %w (try a smaller --ring)", s.nblocks, s.bsize, err)
	}
	s.ring, err = unix.Mmap(fd, 0, s.bsize*s.nblocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map ring of %d bytes: %w", s.bsize*s.nblocks, err)
	}
	if !cfg.NoPromisc {
		mr := unix.PacketMreq{Ifindex: int32(s.ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
			return fmt.Errorf("promiscuous mode: %w (needs CAP_NET_ADMIN; or capture without it)", err)
		}
	}
	// Now start receiving: everything from here on went through the filter.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: s.ifindex, Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if cfg.Fanout {
		arg := int(cfg.FanoutID) | unix.PACKET_FANOUT_HASH<<16
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, arg); err != nil {
			return fmt.Errorf("join fanout group %d: %w", cfg.FanoutID, err)
		}
	}
	return nil
}

// linkTypeOf maps the interface's ARPHRD type to the pcap link type of what
// a SOCK_RAW packet socket delivers on it.
func linkTypeOf(hatype uint16) (uint16, error) {
	switch hatype {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		return pcap.LinkTypeEthernet, nil
	case unix.ARPHRD_NONE, unix.ARPHRD_IPGRE, unix.ARPHRD_TUNNEL, unix.ARPHRD_TUNNEL6:
		// tun devices and WireGuard: packets start at the IP header. (GRE
		// and IPIP tunnels carry no link header either.)
		return pcap.LinkTypeRaw, nil
	}
	return 0, fmt.Errorf("interface link type ARPHRD %d is not supported (Ethernet, loopback and raw-IP interfaces are)", hatype)
}

// skipOutgoing puts in front of prog (nil: keep whole packets) the
// instructions that drop packets the host sends (sll_pkttype
// PACKET_OUTGOING, read through the kernel's ancillary load). prog's jumps
// are relative and every load it makes sets A again, so it runs unchanged
// after them.
func skipOutgoing(prog []bpf.RawInstruction) []bpf.RawInstruction {
	const adPktType = 0xfffff000 + 4 // SKF_AD_OFF + SKF_AD_PKTTYPE
	head := []bpf.RawInstruction{
		{Op: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: adPktType},
		{Op: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.PACKET_OUTGOING, Jt: 0, Jf: 1},
		{Op: unix.BPF_RET | unix.BPF_K, K: 0},
	}
	if prog == nil {
		prog = []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}}
	}
	return append(head, prog...)
}

func attachFilter(fd int, prog []bpf.RawInstruction) error {
	if len(prog) == 0 || len(prog) > 4096 {
		return fmt.Errorf("filter of %d instructions: the kernel takes 1 to 4096", len(prog))
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
		return fmt.Errorf("attach filter: %w (the kernel refused the BPF program)", err)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// LinkType is the pcap link type of the packets the socket delivers.
func (s *AFPacket) LinkType() uint16 { return s.linkType }

// Iface is the interface's name.
func (s *AFPacket) Iface() string { return s.iface }

// fanoutID is the id of the fanout group the socket is in.
func (s *AFPacket) fanoutID() (uint16, error) {
	v, err := unix.GetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return 0, err
	}
	return uint16(v), nil
}

func (s *AFPacket) block(i int) *unix.TpacketHdrV1 {
	// struct tpacket_block_desc: version, offset_to_priv, then the header.
	return (*unix.TpacketHdrV1)(unsafe.Pointer(&s.ring[i*s.bsize+8]))
}

// Recv fills b with up to MaxBurst packets of the ring's current block,
// waiting up to the poll timeout for one. Packet data is the ring's memory:
// it is valid until the next Recv or Close (the block goes back to the
// kernel only when a Recv finds it used up). It returns 0 packets and a nil
// error when nothing came.
func (s *AFPacket) Recv(b *Burst) (int, error) {
	b.N = 0
	if s.hdr != nil && s.left == 0 {
		s.release()
	}
	if s.hdr == nil {
		h := s.block(s.cur)
		if atomic.LoadUint32(&h.Block_status)&unix.TP_STATUS_USER == 0 {
			if err := s.wait(); err != nil {
				return 0, err
			}
			if atomic.LoadUint32(&h.Block_status)&unix.TP_STATUS_USER == 0 {
				return 0, nil
			}
		}
		s.hdr, s.left, s.next = h, h.Num_pkts, uintptr(h.Offset_to_first_pkt)
		if s.left == 0 {
			s.release()
			return 0, nil
		}
	}
	base := uintptr(s.cur * s.bsize)
	n := 0
	var bytes uint64
	for n < MaxBurst && s.left > 0 {
		off := base + s.next
		ph := (*unix.Tpacket3Hdr)(unsafe.Pointer(&s.ring[off]))
		data := s.ring[off+uintptr(ph.Mac) : off+uintptr(ph.Mac)+uintptr(ph.Snaplen)]
		wire := ph.Len
		if ph.Status&unix.TP_STATUS_VLAN_VALID != 0 && s.linkType == pcap.LinkTypeEthernet && len(data) >= 12 && ph.Mac >= vlanTagLen {
			// The NIC took the tag off; put it back where it was, in the
			// room PACKET_RESERVE left in front of the packet.
			data = s.ring[off+uintptr(ph.Mac)-vlanTagLen : off+uintptr(ph.Mac)+uintptr(ph.Snaplen)]
			copy(data, data[vlanTagLen:vlanTagLen+12])
			tpid := ph.Hv1.Vlan_tpid
			if ph.Status&unix.TP_STATUS_VLAN_TPID_VALID == 0 || tpid == 0 {
				tpid = 0x8100
			}
			data[12], data[13] = byte(tpid>>8), byte(tpid)
			data[14], data[15] = byte(ph.Hv1.Vlan_tci>>8), byte(ph.Hv1.Vlan_tci)
			wire += vlanTagLen
			s.vlanRestored++
		}
		p := &b.Pkts[n]
		p.Data = data
		p.TS = int64(ph.Sec)*1e9 + int64(ph.Nsec)
		p.WireLen = wire
		p.LinkType = s.linkType
		p.Iface = 0
		bytes += uint64(wire)
		n++
		s.left--
		s.next += uintptr(ph.Next_offset)
	}
	b.N = n
	s.pkts.Add(uint64(n))
	s.bytes.Add(bytes)
	return n, nil
}

// release hands the held block back to the kernel and moves to the next.
func (s *AFPacket) release() {
	atomic.StoreUint32(&s.hdr.Block_status, unix.TP_STATUS_KERNEL)
	s.hdr = nil
	s.cur++
	if s.cur == s.nblocks {
		s.cur = 0
	}
}

// blockReady reports whether the reader's block is the reader's; as the
// network poller's callback it runs before each wait and after each wake.
func (s *AFPacket) blockReady(uintptr) bool {
	return atomic.LoadUint32(&s.block(s.cur).Block_status)&unix.TP_STATUS_USER != 0
}

// wait sleeps on the network poller until the kernel hands a block over or
// the poll timeout passes. An interface that goes down is not an error: the
// kernel reports ENETDOWN once and resumes delivery when it comes back up.
func (s *AFPacket) wait() error {
	if err := s.f.SetReadDeadline(time.Now().Add(s.pollTO)); err != nil {
		return fmt.Errorf("capture on %s: %w", s.iface, err)
	}
	err := s.rc.Read(s.ready)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	// An error event on the socket: SO_ERROR says which (reading clears it).
	e, gerr := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if gerr != nil {
		return fmt.Errorf("capture on %s: %w (socket error: %v)", s.iface, err, gerr)
	}
	switch unix.Errno(e) {
	case unix.ENETDOWN:
		if _, err := net.InterfaceByIndex(s.ifindex); err != nil {
			return fmt.Errorf("interface %s is gone: %w", s.iface, err)
		}
		slog.Warn("capture: interface is down; waiting for it", "iface", s.iface)
		// The poller may report the error again until another event
		// comes: do not spin on it.
		time.Sleep(s.pollTO)
		return nil
	case 0:
		return fmt.Errorf("capture on %s: %w", s.iface, err)
	}
	return fmt.Errorf("capture on %s: %w", s.iface, unix.Errno(e))
}

// Stats returns the socket's counters: the kernel's (read and added up
// here, as reading resets them) and what Recv delivered. Safe to call from
// any goroutine while the socket is open.
func (s *AFPacket) Stats() (AFPacketStats, error) {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	if !s.closed.Load() {
		st, err := unix.GetsockoptTpacketStatsV3(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if err != nil {
			return AFPacketStats{}, fmt.Errorf("read statistics of %s: %w", s.iface, err)
		}
		// tp_packets counts the drops too.
		s.kPackets += uint64(st.Packets) - uint64(st.Drops)
		s.kDrops += uint64(st.Drops)
		s.kFreez += uint64(st.Freeze_q_cnt)
	}
	return AFPacketStats{Packets: s.kPackets, Drops: s.kDrops, Freezes: s.kFreez, Bytes: s.bytes.Load()}, nil
}

// Close unmaps the ring and closes the socket; packets of the last burst
// become invalid. The counters stay readable.
func (s *AFPacket) Close() error {
	if s.closed.Load() {
		return nil
	}
	s.Stats() // keep the last kernel counters
	s.statMu.Lock()
	defer s.statMu.Unlock()
	s.closed.Store(true)
	// The file first: the poller must not look at the ring any more.
	err := s.f.Close()
	if merr := unix.Munmap(s.ring); err == nil {
		err = merr
	}
	s.ring = nil
	s.hdr = nil
	if err != nil {
		return fmt.Errorf("close capture on %s: %w", s.iface, err)
	}
	return nil
}

// OpenAFPacketGroup opens n sockets on cfg.Iface. With n > 1 they share one
// PACKET_FANOUT_HASH group, so the kernel spreads flows over them by a hash
// that is the same in both directions: each flow reaches one socket, as RSS
// does for DPDK queues. (IP fragments without ports may hash elsewhere than
// their flow's first fragment, as with RSS.) The group's id is one the
// kernel picked unused (PACKET_FANOUT_FLAG_UNIQUEID), so two captures never
// share a group by accident.
func OpenAFPacketGroup(cfg AFPacketConfig, n int) ([]*AFPacket, error) {
	if n < 1 {
		return nil, fmt.Errorf("afpacket: %d sockets: need at least 1", n)
	}
	var out []*AFPacket
	fail := func(err error) ([]*AFPacket, error) {
		for _, s := range out {
			s.Close()
		}
		return nil, err
	}
	first, err := OpenAFPacket(cfg)
	if err != nil {
		return nil, err
	}
	out = append(out, first)
	if n == 1 {
		return out, nil
	}
	arg := unix.PACKET_FANOUT_HASH | unix.PACKET_FANOUT_FLAG_UNIQUEID
	if err := unix.SetsockoptInt(first.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, arg<<16); err != nil {
		return fail(fmt.Errorf("capture on %s: create fanout group: %w (needs Linux 4.7 or later)", cfg.Iface, err))
	}
	id, err := first.fanoutID()
	if err != nil {
		return fail(fmt.Errorf("capture on %s: read fanout group id: %w", cfg.Iface, err))
	}
	cfg.Fanout, cfg.FanoutID = true, id
	for len(out) < n {
		s, err := OpenAFPacket(cfg)
		if err != nil {
			return fail(err)
		}
		out = append(out, s)
	}
	return out, nil
}

// IfaceLinkType is the pcap link type that capture on the named interface
// delivers: what a filter must be compiled for (CompileFilter). It asks the
// kernel through a packet socket that receives nothing, so it answers for
// the network namespace the process is in; it needs CAP_NET_RAW.
func IfaceLinkType(name string) (uint16, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, fmt.Errorf("interface %q: %w (see `ip link` for the names)", name, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return 0, fmt.Errorf("open AF_PACKET socket on %s: %w: capture needs root or CAP_NET_RAW", name, err)
		}
		return 0, fmt.Errorf("open AF_PACKET socket on %s: %w", name, err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		return 0, fmt.Errorf("interface %s: bind: %w", name, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, fmt.Errorf("interface %s: getsockname: %w", name, err)
	}
	ll, ok := sa.(*unix.SockaddrLinklayer)
	if !ok {
		return 0, fmt.Errorf("interface %s: not a link-layer address (%T)", name, sa)
	}
	lt, err := linkTypeOf(ll.Hatype)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	return lt, nil
}
