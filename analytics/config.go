package analytics

import (
	"fmt"
	"time"
	"unsafe"
)

// Config configures the analytics of one worker. The zero value is not
// usable; start from DefaultConfig.
type Config struct {
	// Enabled lists the decoders to run, by name; empty means all
	// registered decoders.
	Enabled []string
	// PortMap overrides port-based detection: a server port -> decoder
	// name ("" disables decoding on that port).
	PortMap map[uint16]string
	// ContentDetect tries the decoders' Detect on connections whose ports
	// match none.
	ContentDetect bool

	// MaxStatement truncates SQL statement text and other long free-text
	// fields to this many bytes.
	MaxStatement int
	// MaxHeader bounds what a parser buffers for one message header
	// (HTTP header block, a FIX message, a TLS handshake message).
	MaxHeader int
	// MaxRefs bounds the packet refs a record lists (FlagRefsCut beyond).
	MaxRefs int

	// Reassembly bounds: out-of-order bytes buffered per connection side,
	// and in total per worker.
	MaxConnBuffer  int
	MaxTotalBuffer int
	// MaxConns bounds the connections analysed per worker (beyond: counted
	// and not analysed).
	MaxConns int
	// MaxPending bounds the requests waiting for a response per connection.
	MaxPending int
	// MaxParsers bounds the connections decoded at once per worker, and so
	// the parsers' buffers in total: each holds at most about MaxHeader
	// per side and MaxPending open requests. Beyond it a connection is
	// timed (its tcp record) but not decoded, and counted
	// (Stats.ParsersFull).
	MaxParsers int

	// IP reassembly of fragmented UDP datagrams (defrag.go), per worker:
	// at most FragMaxDatagrams datagrams in flight holding at most
	// FragMaxBytes (beyond either the oldest is dropped), each dropped
	// when not whole FragTimeout after its first fragment (packet time).
	// FragMaxDatagrams 0 turns reassembly off: a first fragment is then
	// analysed as a short datagram and the others are not.
	FragMaxDatagrams int
	FragMaxBytes     int
	FragTimeout      time.Duration

	// LateAck is how much later than the connection's baseline round trip
	// an ACK may come before the exchange counts as slow_net: late when
	// delay > RTT + max(LateAck, RTT/2).
	LateAck time.Duration
	// SlowNetwork and SlowServer are the parts of an exchange's time at
	// which it is slow: the path's round trip (both legs), and the
	// server's own time (docs/analytics.md, classes).
	SlowNetwork time.Duration
	SlowServer  time.Duration
	// AckWait is how long (packet time) an exchange waits for the client's
	// ACK of the response before it is emitted without one.
	AckWait time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ContentDetect:  true,
		MaxStatement:   256,
		MaxHeader:      16 << 10,
		MaxRefs:        4096,
		MaxConnBuffer:  256 << 10,
		MaxTotalBuffer: 64 << 20,
		MaxConns:       1 << 18,
		MaxPending:     256,
		MaxParsers:     1 << 13,

		FragMaxDatagrams: 1024,
		FragMaxBytes:     4 << 20,
		FragTimeout:      30 * time.Second,

		LateAck:     5 * time.Millisecond,
		SlowNetwork: 20 * time.Millisecond,
		SlowServer:  10 * time.Millisecond,
		AckWait:     time.Second,
	}
}

// Validate checks c, naming the bad key.
func (c *Config) Validate() error {
	for _, n := range c.Enabled {
		if _, err := Lookup(n); err != nil {
			return fmt.Errorf("decoders: %w", err)
		}
	}
	for p, n := range c.PortMap {
		if n == "" {
			continue
		}
		if _, err := Lookup(n); err != nil {
			return fmt.Errorf("ports: port %d: %w", p, err)
		}
	}
	switch {
	case c.MaxStatement < 16:
		return fmt.Errorf("max_statement: %d is below 16", c.MaxStatement)
	case c.MaxHeader < 1024:
		return fmt.Errorf("max_header: %d is below 1024", c.MaxHeader)
	case c.MaxRefs < 1:
		return fmt.Errorf("max_refs: must be at least 1")
	case c.MaxConnBuffer < 0 || c.MaxTotalBuffer < 0:
		return fmt.Errorf("reassembly buffers: must not be negative")
	case c.MaxConns < 1 || c.MaxConns > appSlotMask-1:
		return fmt.Errorf("max_conns: %d: must be from 1 to %d", c.MaxConns, appSlotMask-1)
	case c.MaxPending < 1:
		return fmt.Errorf("max_pending: must be at least 1")
	case c.MaxParsers < 1:
		return fmt.Errorf("max_parsers: must be at least 1")
	case c.FragMaxDatagrams < 0:
		return fmt.Errorf("frag_max_datagrams: must not be negative")
	case c.FragMaxDatagrams > 0 && c.FragMaxBytes < fragMaxLen:
		return fmt.Errorf("frag_max_bytes: %d is below %d, the largest datagram", c.FragMaxBytes, fragMaxLen)
	case c.FragMaxDatagrams > 0 && c.FragTimeout <= 0:
		return fmt.Errorf("frag_timeout: must be positive")
	case c.LateAck < 0 || c.AckWait < 0:
		return fmt.Errorf("late_ack/ack_wait: must not be negative")
	case c.SlowNetwork <= 0 || c.SlowServer <= 0:
		return fmt.Errorf("slow_network/slow_server: must be positive")
	}
	return nil
}

// MemoryBound is the most memory one Analyzer with c holds, by its limits:
// MaxConns connection slots, MaxTotalBuffer bytes of reassembly, and
// MaxParsers parsers each holding at most about MaxHeader bytes a side
// (messages beyond MaxHeader are not buffered), and the IP reassembly's
// FragMaxBytes with its FragMaxDatagrams datagrams' bookkeeping. The open
// requests a parser keeps (MaxPending) hold a few fields each, which the
// per-parser 4 KiB margin covers on ordinary traffic. The closed parsers
// kept for reuse (maxSpare a decoder, each with at most three buffers of
// spareBufMax and its own state, within spareParserBytes) and the recent
// field texts (textCacheSize of at most textCacheMax bytes) are counted
// too.
func (c *Config) MemoryBound() int64 {
	return int64(c.MaxConns)*int64(unsafe.Sizeof(conn{})) + int64(c.MaxTotalBuffer) +
		int64(c.MaxParsers)*(2*int64(c.MaxHeader)+4<<10) +
		int64(c.FragMaxBytes) + int64(c.FragMaxDatagrams)*fragOverhead +
		int64(len(registry))*maxSpare*spareParserBytes +
		textCacheSize*(textCacheMax+16)
}

// spareParserBytes bounds what one spare parser holds: three buffers of
// spareBufMax (HTTP's two header blocks and its fold; PostgreSQL's two
// bodies) and its own state (Redis's is the largest, 3.7 KB).
const spareParserBytes = 3*spareBufMax + 4<<10
