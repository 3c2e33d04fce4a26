package packet

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
)

// Community-ID v1 (https://github.com/corelight/community-id-spec) hashes,
// with SHA-1, a 32-bit aligned tuple in network byte order:
//
//	0      2                 2+n               2+2n  +1  +2    +4    +6
//	+------+-----------------+-----------------+-----+---+-----+-----+
//	| seed | A addr (n=4/16) | B addr (n=4/16) |proto| 0 |portA|portB|
//	+------+-----------------+-----------------+-----+---+-----+-----+
//
// The ports are present only for TCP, UDP, SCTP, ICMP and ICMPv6 (the ICMPs
// with their type/code port equivalents). The ID is "1:" followed by the
// standard base64 of the 20-byte digest: 30 bytes in all.

// CommunityIDLen is the length of a Community-ID v1 string.
const CommunityIDLen = 2 + 28

// AppendCommunityID appends the Community-ID v1 string ("1:" +
// base64(sha1(...))) of the flow to dst, with the given seed (0 by default).
// Zero allocations when dst has room for CommunityIDLen more bytes.
//
// k need not be normalised: the endpoints are ordered here as the spec
// orders them (which leaves a key from FlowKeyOf as it is), so a key built
// from a query's source and destination gives the same ID. The VLAN ids are
// not part of the ID.
func AppendCommunityID(dst []byte, k *FlowKey, seed uint16) []byte {
	a, b, pa, pb := &k.A, &k.B, k.PortA, k.PortB
	if !cidOneWay(k) && lessEndpoint(b, a, pb, pa) {
		a, b, pa, pb = b, a, pb, pa
	}
	var buf [2 + 16 + 16 + 4 + 4]byte
	binary.BigEndian.PutUint16(buf[0:], seed)
	n := 2
	if k.IPVer == 4 {
		n += copy(buf[n:], a[12:])
		n += copy(buf[n:], b[12:])
	} else {
		n += copy(buf[n:], a[:])
		n += copy(buf[n:], b[:])
	}
	buf[n] = k.Proto
	buf[n+1] = 0
	n += 2
	switch k.Proto {
	case protoTCP, protoUDP, protoSCTP, protoICMP, protoICMPv6:
		binary.BigEndian.PutUint16(buf[n:], pa)
		binary.BigEndian.PutUint16(buf[n+2:], pb)
		n += 4
	}
	sum := sha1.Sum(buf[:n])
	dst = append(dst, '1', ':')
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

// cidOneWay reports whether k is a one-way ICMP flow, whose endpoints
// Community-ID never reorders. In a key from FlowKeyOf, PortA of an ICMP flow
// is a message type: a one-way one unless it has a counterpart.
func cidOneWay(k *FlowKey) bool {
	switch k.Proto {
	case protoICMP:
		_, ok := icmpCounterpart(uint8(k.PortA))
		return !ok || k.PortA > 0xff
	case protoICMPv6:
		_, ok := icmp6Counterpart(uint8(k.PortA))
		return !ok || k.PortA > 0xff
	}
	return false
}
