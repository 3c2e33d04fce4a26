package packet

import "time"

// DefaultFlowIdle is how long a flow may stay silent before it ends: the
// flow table evicts it, and the analytics end its connection.
const DefaultFlowIdle = 120 * time.Second

// Flow is what is known of one flow across its packets: its key, when it
// was seen, and its counters per direction. The worker's flow table keeps
// one per flow and hands it to the analytics with every packet.
type Flow struct {
	Key      FlowKey
	FirstTS  int64 // packet time of the first packet
	LastTS   int64 // when last seen, in the worker's Clock (step-free)
	Pkts     [2]uint64
	Bytes    [2]uint64
	FirstDir uint8 // direction of the first packet seen: the initiator's

	// App belongs to the analytics (its connection slot, 0 = none). It moves
	// with the flow, so the analytics need no lookup of their own.
	App uint32
}
