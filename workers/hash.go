package workers

import (
	"encoding/binary"
	"math/bits"
	"tapvault/packet"
)

// hashKey mixes a FlowKey into 64 bits. It reads the key as machine words and
// folds them with multiply-xorshift steps (the wyhash/xxh3 family), which is
// several times cheaper than hash/maphash over the 42 bytes and good enough
// for an in-memory table keyed by addresses. The value never leaves the
// process: it is not used in anything persistent.
func hashKey(k *packet.FlowKey) uint64 {
	const m1, m2 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db
	a := binary.LittleEndian.Uint64(k.A[0:]) ^ binary.LittleEndian.Uint64(k.B[8:])
	b := binary.LittleEndian.Uint64(k.A[8:]) ^ binary.LittleEndian.Uint64(k.B[0:])*m2
	c := uint64(k.PortA)<<48 | uint64(k.PortB)<<32 | uint64(k.Proto)<<24 | uint64(k.IPVer)<<16 | uint64(k.VLAN)
	c ^= uint64(k.VLAN2) << 8
	h := mix(a^m1, b^m2)
	return mix(h^c, m1^uint64(k.VLAN2))
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}
