package fleet

import (
	"encoding/json"
	"net/netip"

	"tapvault/analytics"
	"tapvault/block"
	"tapvault/msgquery"
	"tapvault/packet"
)

// recordRow is one row of the records table (migrations/001_records.sql),
// in the JSONEachRow form ClickHouse reads.
type recordRow struct {
	Sensor       string `json:"sensor"`
	ID           uint64 `json:"id"`
	Kind         string `json:"kind"`
	Proto        string `json:"proto"`
	Transport    uint8  `json:"transport"`
	VLAN         uint16 `json:"vlan"`
	ClientIP     string `json:"client_ip"`
	ClientPort   uint16 `json:"client_port"`
	ServerIP     string `json:"server_ip"`
	ServerPort   uint16 `json:"server_port"`
	ReqFirst     int64  `json:"req_first"`
	ReqLast      int64  `json:"req_last"`
	RespFirst    int64  `json:"resp_first"`
	RespLast     int64  `json:"resp_last"`
	Latency      int64  `json:"latency"`
	Network      int64  `json:"network"`
	ServerTime   int64  `json:"server_time"`
	Transfer     int64  `json:"transfer"`
	ClientNet    int64  `json:"client_net"`
	RTT          int64  `json:"rtt"`
	Class        string `json:"class"`
	ReqBytes     int64  `json:"req_bytes"`
	RespBytes    int64  `json:"resp_bytes"`
	ReqPkts      int32  `json:"req_pkts"`
	RespPkts     int32  `json:"resp_pkts"`
	Flags        uint32 `json:"flags"`
	Fields       string `json:"fields"`
	ClockSource  string `json:"clock_source"`
	ClockSynced  uint8  `json:"clock_synced"`
	ClockErrorNs int64  `json:"clock_error_ns"`
	Ver          uint64 `json:"ver"`
}

// Record kinds in the kind column.
const (
	KindExchange   = "exchange"
	KindConnection = "connection" // the "tcp" connection records (class flow)
)

func addrString(ap netip.AddrPort) string {
	if !ap.Addr().IsValid() {
		return ""
	}
	return ap.Addr().Unmap().String()
}

// appendRecordRow appends r as one JSONEachRow line.
func appendRecordRow(dst []byte, sensor string, r *analytics.Record, clk ClockState, ver uint64) ([]byte, error) {
	kind := KindExchange
	if r.Class == analytics.ClassFlow {
		kind = KindConnection
	}
	fields := make(map[string]any, len(r.Fields))
	for _, f := range r.Fields {
		if f.IsInt {
			fields[f.Key] = f.Int
		} else {
			fields[f.Key] = f.Str
		}
	}
	fj, err := json.Marshal(fields)
	if err != nil {
		return dst, err
	}
	row := recordRow{
		Sensor: sensor, ID: r.ID, Kind: kind, Proto: r.Proto, Transport: r.Transport, VLAN: r.VLAN,
		ClientIP: addrString(r.Client), ClientPort: r.Client.Port(),
		ServerIP: addrString(r.Server), ServerPort: r.Server.Port(),
		ReqFirst: r.ReqFirst, ReqLast: r.ReqLast, RespFirst: r.RespFirst, RespLast: r.RespLast,
		Latency: msgquery.LatencyOf(r), Network: r.Network, ServerTime: r.ServerTime,
		Transfer: r.Transfer, ClientNet: r.ClientNet, RTT: r.RTT, Class: r.Class,
		ReqBytes: r.ReqBytes, RespBytes: r.RespBytes, ReqPkts: r.ReqPkts, RespPkts: r.RespPkts,
		Flags: r.Flags, Fields: string(fj),
		ClockSource: clk.Source, ClockErrorNs: clk.ErrorNs, Ver: ver,
	}
	if clk.Synced {
		row.ClockSynced = 1
	}
	b, err := json.Marshal(&row)
	if err != nil {
		return dst, err
	}
	return append(append(dst, b...), '\n'), nil
}

// flowRow is one row of flow_blocks (migrations/002_flow_blocks.sql).
type flowRow struct {
	Sensor      string `json:"sensor"`
	Seg         uint32 `json:"seg"`
	GroupFirst  uint32 `json:"group_first"`
	GroupBlocks uint32 `json:"group_blocks"`
	Proto       uint8  `json:"proto"`
	VLAN        uint16 `json:"vlan"`
	AIP         string `json:"a_ip"`
	APort       uint16 `json:"a_port"`
	BIP         string `json:"b_ip"`
	BPort       uint16 `json:"b_port"`
	FirstNs     int64  `json:"first_ns"`
	LastNs      int64  `json:"last_ns"`
	Packets     uint64 `json:"packets"`
	Bytes       uint64 `json:"bytes"`
	APackets    uint64 `json:"a_packets"`
	BPackets    uint64 `json:"b_packets"`
	ABytes      uint64 `json:"a_bytes"`
	BBytes      uint64 `json:"b_bytes"`
	Ver         uint64 `json:"ver"`
}

func flowAddr(a [16]byte, ipver uint8) string {
	if ipver != 4 && ipver != 6 {
		return ""
	}
	return netip.AddrFrom16(a).Unmap().String()
}

// flowAgg sums one flow's stats over the blocks of a group.
type flowAgg struct {
	pkts        [2]uint64
	bytes       [2]uint64
	first, last int64
	seenFirstTS bool
	key         packet.FlowKey
}

func (a *flowAgg) add(f *block.FlowStat) {
	a.pkts[0] += uint64(f.Pkts[0])
	a.pkts[1] += uint64(f.Pkts[1])
	a.bytes[0] += f.Bytes[0]
	a.bytes[1] += f.Bytes[1]
	if !a.seenFirstTS || f.FirstTS < a.first {
		a.first = f.FirstTS
	}
	a.seenFirstTS = true
	a.last = max(a.last, f.LastTS)
}

func (a *flowAgg) row(sensor string, seg, groupFirst, blocks uint32, ver uint64) flowRow {
	k := &a.key
	return flowRow{
		Sensor: sensor, Seg: seg, GroupFirst: groupFirst, GroupBlocks: blocks,
		Proto: k.Proto, VLAN: k.VLAN,
		AIP: flowAddr(k.A, k.IPVer), APort: k.PortA, BIP: flowAddr(k.B, k.IPVer), BPort: k.PortB,
		FirstNs: a.first, LastNs: a.last,
		Packets: a.pkts[0] + a.pkts[1], Bytes: a.bytes[0] + a.bytes[1],
		APackets: a.pkts[0], BPackets: a.pkts[1], ABytes: a.bytes[0], BBytes: a.bytes[1],
		Ver: ver,
	}
}
