package dataplane

import "errors"

// MaxBurst is the largest number of packets one Recv returns. It matches the
// usual DPDK burst size; a larger burst does not amortise the cgo call further
// once it is past about 32 (go-dpdk measured the same).
const MaxBurst = 64

// Packet is one received packet.
//
// Data is borrowed from the source (mbuf memory for DPDK, a reader-owned
// arena for files): it is valid only until the next Recv or Close on the same
// source. Whoever needs it longer copies it, and the block builder is the one
// place that does.
type Packet struct {
	Data     []byte
	TS       int64  // nanoseconds since the Unix epoch, from the source's clock
	WireLen  uint32 // original length on the wire (>= len(Data))
	LinkType uint16 // pcap LINKTYPE_* of Data (pcap.LinkType*)
	Iface    uint16 // interface number within the source (pcapng IDB index; 0 for ports)
}

// Burst is a fixed array of packets filled by one Recv. It is reused across
// calls, so a steady-state receive loop allocates nothing.
type Burst struct {
	Pkts [MaxBurst]Packet
	N    int
}

// Source is where packets come from: a DPDK RX queue, or a capture file being
// imported. One Source is read by exactly one worker goroutine.
type Source interface {
	// Recv releases the previous burst's packets and fills b with the next
	// burst. It returns the number of packets (also b.N). It may return 0
	// with a nil error when nothing is waiting (a live port), and io.EOF once
	// the source is exhausted (end of a file or of a replay).
	Recv(b *Burst) (int, error)
	// Close releases any packets still held and the source's resources.
	Close() error
}

// ErrNoDPDK is returned by every live-capture entry point of a binary built
// without cgo or with the nodpdk tag.
var ErrNoDPDK = errors.New("tapvault was built without DPDK support (CGO_ENABLED=0 or -tags nodpdk): live capture is unavailable; rebuild with cgo and libdpdk-dev, or use `tapvault import` for files")
