package packet

import "encoding/binary"

// FlowKeySize is the fixed encoded size of a FlowKey.
const FlowKeySize = 16 + 16 + 2 + 2 + 1 + 1 + 2 + 2

// FlowKey identifies a bidirectional flow. It is normalised: the endpoint with
// the smaller (address, port) is A, so both directions give the same key. The
// outer two VLAN ids are part of the key, so the same 5-tuple on two VLANs is
// two flows. It is a fixed-size comparable value: no strings, no pointers.
//
// For ICMP and ICMPv6, PortA/PortB carry type and code mapped the way
// Community-ID v1 does, so an echo request and its reply share one key.
type FlowKey struct {
	A, B         [16]byte // IPv4-mapped for IPv4
	PortA, PortB uint16
	Proto        uint8
	IPVer        uint8  // 4 or 6
	VLAN         uint16 // outermost VLAN id, 0 if untagged
	VLAN2        uint16 // second VLAN id, 0 if fewer than two tags
}

// Direction of a packet relative to its normalised FlowKey.
const (
	DirAB uint8 = 0 // from A to B
	DirBA uint8 = 1 // from B to A
)

// AppendFlowKey appends the fixed-width big-endian encoding of k (FlowKeySize
// bytes): A | B | PortA | PortB | Proto | IPVer | VLAN | VLAN2. Byte order
// makes keys sort by address, which index prefix scans rely on.
func AppendFlowKey(dst []byte, k *FlowKey) []byte {
	dst = append(dst, k.A[:]...)
	dst = append(dst, k.B[:]...)
	dst = binary.BigEndian.AppendUint16(dst, k.PortA)
	dst = binary.BigEndian.AppendUint16(dst, k.PortB)
	dst = append(dst, k.Proto, k.IPVer)
	dst = binary.BigEndian.AppendUint16(dst, k.VLAN)
	dst = binary.BigEndian.AppendUint16(dst, k.VLAN2)
	return dst
}

// ParseFlowKey decodes what AppendFlowKey wrote. b must hold at least
// FlowKeySize bytes.
func ParseFlowKey(b []byte) (k FlowKey, ok bool) {
	if len(b) < FlowKeySize {
		return k, false
	}
	copy(k.A[:], b[0:16])
	copy(k.B[:], b[16:32])
	k.PortA = binary.BigEndian.Uint16(b[32:])
	k.PortB = binary.BigEndian.Uint16(b[34:])
	k.Proto = b[36]
	k.IPVer = b[37]
	k.VLAN = binary.BigEndian.Uint16(b[38:])
	k.VLAN2 = binary.BigEndian.Uint16(b[40:])
	return k, true
}
