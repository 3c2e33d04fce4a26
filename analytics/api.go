package analytics

import (
	"encoding/binary"
	"tapvault/block"

	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Side is one end of a connection.
type Side uint8

// Sides. The client is the side that opened the connection (sent the SYN),
// or, without a handshake, the side that is not on the decoder's port.
const (
	Client Side = 0
	Server Side = 1
)

func (s Side) String() string {
	if s == Client {
		return "client"
	}
	return "server"
}

// Other returns the opposite side.
func (s Side) Other() Side { return 1 - s }

// PktRef is where one packet is stored: the block (Block is the block ID the
// worker gave it, unique per capture run and queue, written into the block
// header), the queue, and the packet's ordinal in the block. Block 0 means
// the packet was not stored (no free block buffer).
type PktRef = block.PacketRef

// Field is one decoded key field of a message: a string or an integer.
type Field struct {
	Key   string
	Str   string
	Int   int64
	IsInt bool
}

// Value returns the field's value as text.
func (f Field) Value() string {
	if f.IsInt {
		return strconv.FormatInt(f.Int, 10)
	}
	return f.Str
}

// Message is one application message (a request or a response) seen on one
// side of a connection. The Analyzer owns it and fills the timing and
// packet fields; the parser adds key fields with Str and Int. A message
// handed to Stream.Exchange must not be used by the parser afterwards.
type Message struct {
	Side    Side
	FirstTS int64 // timestamp of the packet carrying the first byte
	LastTS  int64 // timestamp of the packet carrying the last byte (0 until End)
	Bytes   int64 // message bytes (0 until End)
	Pkts    []PktRef
	Fields  []Field
	Ended   bool
	Gap     bool // bytes of this message were lost before it ended
	freed   bool // on the Analyzer's free list

	// Set by the Analyzer (TCP): the packet number in the connection of the
	// first and last packets, and the stream offset after the last byte.
	firstPkt, lastPkt uint64
	startOff, endOff  uint64
	endSeq            uint32    // TCP sequence number after the last byte
	ackTS             int64     // request: the other side's first packet whose ACK covers it
	ackPkt            uint64    // and that packet's number
	ackRef            PktRef    // and where it is stored
	rtx, zw           [2]uint32 // the connection's retransmissions and zero windows by side at Begin
}

// Str sets a string field (replacing one with the same key).
func (m *Message) Str(key, v string) {
	for i := range m.Fields {
		if m.Fields[i].Key == key {
			m.Fields[i] = Field{Key: key, Str: v}
			return
		}
	}
	m.Fields = append(m.Fields, Field{Key: key, Str: v})
}

// Int sets an integer field (replacing one with the same key).
func (m *Message) Int(key string, v int64) {
	for i := range m.Fields {
		if m.Fields[i].Key == key {
			m.Fields[i] = Field{Key: key, Int: v, IsInt: true}
			return
		}
	}
	m.Fields = append(m.Fields, Field{Key: key, Int: v, IsInt: true})
}

// Get returns the field named key.
func (m *Message) Get(key string) (Field, bool) {
	for _, f := range m.Fields {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

// Stream is what a Parser sees of its connection. Offsets are indexes into
// the chunk b of the current Parser.Data call.
type Stream interface {
	// Begin starts a message on side s whose first byte is b[off] of the
	// current Data call.
	Begin(s Side, off int) *Message
	// End ends m; its last byte is b[off-1] of the current Data call, which
	// must be on m's side. off -1 means the message ended with the last
	// byte already delivered on its side: for messages delimited by the
	// connection's close or cut by a gap, called from Close, Gap, or a Data
	// call of either side.
	End(m *Message, off int)
	// Exchange reports a request and its response (both ended). resp is nil
	// for a request that got no answer (call it from Close or when the
	// protocol knows no answer will come); req is nil for an unsolicited
	// server message worth a record. Each message may be given once.
	Exchange(req, resp *Message)
	// Discard drops a message that will not be reported.
	Discard(m *Message)
	// TS is the timestamp of the packet being processed, in ns.
	TS() int64
	// Config is the analytics configuration (limits such as MaxStatement).
	Config() *Config
}

// Parser decodes the application messages of one connection (or one UDP
// flow). It is used from one goroutine. It must never panic on any input,
// must bound the memory it keeps, and must not keep b after returning.
type Parser interface {
	// Data is the next in-order payload of side s: a TCP chunk after
	// reassembly, or one UDP datagram. b is valid only during the call.
	Data(s Side, b []byte, st Stream)
	// Gap says n bytes of side s were lost (not captured, or dropped by the
	// reassembly limits). The parser resynchronises or stops decoding.
	Gap(s Side, n int, st Stream)
	// Close is called once when the connection ends (FIN/RST, idle
	// eviction, end of run). Requests still waiting are reported with
	// Exchange(req, nil); messages left open are discarded by the caller.
	Close(st Stream)
}

// Decoder describes one protocol for the registry.
type Decoder struct {
	Name string // record proto: "http", "dns", "tls", "redis", "postgres", "mysql", "fix"
	TCP  bool   // decodes TCP streams
	UDP  bool   // decodes UDP datagrams
	// Ports are the well-known server ports (either side of a flow on one
	// of them selects the decoder, that side being the server).
	Ports []uint16
	// UDPPorts, if set, are the ports for UDP instead of Ports (HTTP runs
	// over UDP only as SSDP, on 1900).
	UDPPorts []uint16
	// Aliases are other names a record's proto may carry for this
	// decoder (older stores wrote "pgsql"); matched without regard to
	// ASCII case.
	Aliases []string
	// Backend marks database and cache protocols: exchanges a front end
	// makes to its backend tier (BackendProtos).
	Backend bool
	// Fields are the keys of every field its records may carry
	// (Message.Str and Message.Int): the query language rejects a key no
	// decoder declares, so an undeclared field is unqueryable.
	Fields []string
	// Intern are field values common enough that a store reader should
	// share one copy instead of allocating each (the name, the aliases and
	// the Fields keys are interned anyway); see Intern.
	Intern []string
	// Summary appends the short one-line form of one of its records (the
	// text after the endpoints in a message listing), e.g.
	// "GET www.example.com/path -> 200"; AppendSummary calls it. Nil: the
	// fields as key=value.
	Summary func(dst []byte, r *Record) []byte
	// Detect, if set, looks at the first payload of a connection whose
	// ports matched no decoder and says whether it is this protocol. s is
	// the side that sent b. It must be cheap and never panic.
	Detect func(s Side, b []byte) bool
	// New returns a parser for one connection.
	New func(cfg *Config) Parser
}

var registry []*Decoder

// Register adds a decoder. It is called from init functions; a duplicate
// name is a programming error.
func Register(d *Decoder) {
	if d.Name == "" || d.New == nil || (!d.TCP && !d.UDP) {
		panic("BUG: analytics.Register: incomplete decoder")
	}
	for _, x := range registry {
		if x.Name == d.Name {
			panic("BUG: analytics.Register: duplicate decoder " + d.Name)
		}
	}
	registry = append(registry, d)
	sort.Slice(registry, func(i, j int) bool { return registry[i].Name < registry[j].Name })
	internAdd(d.Name)
	for _, l := range [...][]string{d.Aliases, d.Fields, d.Intern} {
		for _, s := range l {
			internAdd(s)
		}
	}
}

// lookupProto returns the decoder whose name or alias is p (ASCII case
// ignored), or nil. It does not allocate.
func lookupProto(p string) *Decoder {
	for _, d := range registry {
		if equalFoldASCII(p, d.Name) {
			return d
		}
		for _, a := range d.Aliases {
			if equalFoldASCII(p, a) {
				return d
			}
		}
	}
	return nil
}

// CanonicalProto returns the decoder name for a protocol name or alias
// ("pgsql" -> "postgres"); a name no decoder has comes back with its ASCII
// letters lowercased.
func CanonicalProto(p string) string {
	if d := lookupProto(p); d != nil {
		return d.Name
	}
	return string(lowerASCII([]byte(p)))
}

// BackendProtos returns the names of the decoders marked Backend, sorted:
// the protocols a front end's backend calls use.
func BackendProtos() []string {
	var ps []string
	for _, d := range registry {
		if d.Backend {
			ps = append(ps, d.Name)
		}
	}
	return ps
}

// internTab holds the strings Intern shares. It is filled by Register (from
// init functions) and only read afterwards.
var internTab = map[string]string{"": "", FlowProto: FlowProto}

func init() {
	for _, l := range [...][]string{Classes, FlowFields} {
		for _, s := range l {
			internAdd(s)
		}
	}
}

func internAdd(s string) { internTab[s] = s }

// Intern returns the shared copy of b and true when b is a well-known
// protocol, alias, class, field key or registered field value (Decoder.Intern),
// without allocating; otherwise "" and false. A record reader calls it so
// that scanning many records allocates only for their distinct values.
func Intern(b []byte) (string, bool) {
	s, ok := internTab[string(b)] // no allocation for the lookup
	return s, ok
}

// equalFoldASCII reports whether a and b are equal up to the case of ASCII
// letters.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Decoders returns the registered decoders, by name.
func Decoders() []*Decoder { return slices.Clone(registry) }

// Lookup returns the decoder called name.
func Lookup(name string) (*Decoder, error) {
	for _, d := range registry {
		if d.Name == name {
			return d, nil
		}
	}
	names := make([]string, len(registry))
	for i, d := range registry {
		names[i] = d.Name
	}
	return nil, fmt.Errorf("unknown decoder %q (have %v)", name, names)
}

// Record classes (Record.Class). docs/analytics.md gives each one's rule.
const (
	ClassHealthy    = "healthy"     // neither the network part nor the server part is slow
	ClassSlowApp    = "slow_app"    // the server part is slow (and larger than the network's)
	ClassSlowNet    = "slow_net"    // the path's round trip is slow, or a message was retransmitted
	ClassCantTell   = "cant_tell"   // the time cannot be split (Record.Why says why)
	ClassNoResponse = "no_response" // the request got no answer
	ClassNoRequest  = "no_request"  // a response with no request
	ClassFlow       = "flow"        // a "tcp" connection record (handshake and counts), not an exchange
)

// Classes of records written before the split was additive. Queries still
// take them for one release: fast is healthy; udp and unknown are cant_tell
// (or no_request); records stored with them read back under the new names.
const (
	ClassFast    = "fast"
	ClassUDP     = "udp"
	ClassUnknown = "unknown"
)

// Classes lists every Record.Class, for a query language to check names
// against. Do not modify it.
var Classes = []string{ClassHealthy, ClassSlowApp, ClassSlowNet, ClassCantTell, ClassNoResponse, ClassNoRequest, ClassFlow}

// OldClasses maps the classes of older records to today's (ClassUnknown
// maps to ClassCantTell, or ClassNoRequest with FlagNoRequest). Do not
// modify it.
var OldClasses = map[string]string{ClassFast: ClassHealthy, ClassUDP: ClassCantTell, ClassUnknown: ClassCantTell}

// CurrentClass is r's class under today's names (OldClasses; ClassUnknown
// is ClassNoRequest with FlagNoRequest).
func CurrentClass(r *Record) string {
	// A switch, not a lookup in OldClasses: every record of a scan comes
	// here (UpgradeClass), and hashing its class was a few percent of a
	// latency table. TestCurrentClassIsOldClasses keeps the two alike.
	switch r.Class {
	case ClassFast:
		return ClassHealthy
	case ClassUDP:
		return ClassCantTell
	case ClassUnknown:
		if r.Flags&FlagNoRequest != 0 {
			return ClassNoRequest
		}
		return ClassCantTell
	}
	return r.Class
}

// IsConnection reports whether r is a connection record: proto "tcp"
// (FlowProto, one record per TCP connection) or a flow-class record, as
// against an exchange (a request and its response).
func IsConnection(r *Record) bool {
	// r.Class, not CurrentClass: no older class became ClassFlow
	// (TestOldClassesNotFlow), and this runs for every record of a scan.
	return CanonicalProto(r.Proto) == FlowProto || r.Class == ClassFlow
}

// UpgradeClass renames an older record's class (OldClasses) in place, for
// answers; the message store keeps what was written.
func (r *Record) UpgradeClass() {
	if r.Class == ClassUDP && r.Why() == WhyNone {
		r.SetEvidence(r.NetFrom(), r.Confidence(), r.Near(), WhyUDP)
	}
	r.Class = CurrentClass(r)
}

// FlowProto is the proto of a TCP connection record (class flow).
const FlowProto = "tcp"

// TagFields are the keys of fields that the capture adds to records
// after the analytics (the probes' tags, package probe): queryable like the
// decoders' own.
var TagFields = []string{"probe", "location"}

// FlowFields are the keys of a connection record's fields (emitFlow). Do
// not modify it.
var FlowFields = []string{"syn_ns", "hs_server_ns", "hs_client_ns", "retrans", "ooo", "dupack", "zerowin", "rst", "gap_bytes", "close", "app"}

// Record flags.
const (
	FlagGap           uint32 = 1 << iota // bytes of a message were lost
	FlagRefsCut                          // more packets than MaxRefs: Packets lists the first ones
	FlagNoRequest                        // a server message with no request (Request times are 0)
	FlagMidstream                        // the connection's start was not seen (no handshake)
	FlagSidesGuessed                     // client and server were guessed from ports, not the SYN
	FlagRetrans                          // a segment of the request or the response was retransmitted
	FlagZeroWindow                       // the client advertised a zero window during the response: the receiver held the transfer
	FlagAckTimer                         // the server's bare ACK was its delayed-ACK timer, not the network
	FlagContradiction                    // an ACK came faster than the handshake's round trip (a middlebox): not used
)

// FlagNames are the record flags' names (JSON, docs/messages.md), by bit.
// Do not modify it.
var FlagNames = []struct {
	Bit  uint32
	Name string
}{
	{FlagGap, "gap"},
	{FlagRefsCut, "refs_cut"},
	{FlagNoRequest, "no_request"},
	{FlagMidstream, "midstream"},
	{FlagSidesGuessed, "sides_guessed"},
	{FlagRetrans, "retrans"},
	{FlagZeroWindow, "zero_window"},
	{FlagAckTimer, "ack_timer"},
	{FlagContradiction, "contradiction"},
}

// Record is one exchange (a request and its response) or, with Proto "tcp",
// one TCP connection's summary. Times are ns since the Unix epoch; durations
// are ns, -1 when unknown.
type Record struct {
	ID        uint64
	Proto     string
	Transport uint8 // 6 TCP, 17 UDP
	VLAN      uint16
	Client    netip.AddrPort
	Server    netip.AddrPort

	ReqFirst, ReqLast   int64
	RespFirst, RespLast int64
	ServerAck           int64 // the server's first packet whose ACK covers the request (0: none seen)
	ClientAck           int64 // the client's first packet whose ACK covers the response (0: none seen)

	// The additive split (breakdown.go): RespLast - ReqLast = Network +
	// ServerTime + Transfer. Flags' high bits hold the evidence (NetFrom,
	// Confidence, Near, Why).
	Network    int64 // the round trip between the capture point and the server, during this exchange
	ServerTime int64 // the rest of the wait for the response's first byte: the server's own time
	Transfer   int64 // RespFirst -> RespLast
	ClientNet  int64 // the round trip between the capture point and the client (not inside the latency)
	RTT        int64 // the path's round trip baseline, both legs (handshake, else the least prompt ACK delays)
	Class      string

	ReqBytes, RespBytes int64
	ReqPkts, RespPkts   int32 // packets carrying each message's bytes
	Flags               uint32

	Fields  []Field
	Packets []PktRef // request packets first, then response packets
}

// Get returns the field named key.
func (r *Record) Get(key string) (Field, bool) {
	for _, f := range r.Fields {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

// SetID gives r its ID: a 64-bit xxHash of what identifies the exchange
// (protocol, endpoints, VLAN, the first request and response times, and
// the first packet's ref). It depends only on the packets, so re-analysing
// stored packets gives the same IDs as the in-stream run.
func (r *Record) SetID() {
	var b [128]byte
	n := copy(b[:32], r.Proto)
	p := n
	for _, ap := range [2]netip.AddrPort{r.Client, r.Server} {
		a := ap.Addr().As16()
		p += copy(b[p:], a[:])
		binary.LittleEndian.PutUint16(b[p:], ap.Port())
		p += 2
	}
	binary.LittleEndian.PutUint16(b[p:], r.VLAN)
	binary.LittleEndian.PutUint64(b[p+2:], uint64(r.ReqFirst))
	binary.LittleEndian.PutUint64(b[p+10:], uint64(r.RespFirst))
	p += 18
	if len(r.Packets) > 0 {
		x := r.Packets[0]
		binary.LittleEndian.PutUint64(b[p:], x.Block)
		binary.LittleEndian.PutUint16(b[p+8:], x.Queue)
		binary.LittleEndian.PutUint32(b[p+10:], x.Ord)
		p += 14
	}
	h := xxhash.Sum64(b[:p])
	if h == 0 {
		h = 1
	}
	r.ID = h
}
