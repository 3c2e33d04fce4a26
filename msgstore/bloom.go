package msgstore

import (
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Bloom filter of a frame's terms: a bit array of m = 8*len bits, k bit
// positions per term by double hashing of the term's 64-bit xxhash
// (Kirsch–Mitzenmacher): h1 = low 32 bits, h2 = high 32 bits,
// position i = (h1 + i*h2) mod m. Bit p is byte p/8, bit p%8 (LSB first).
// xxhash is fixed-seed, so filters are the same in every process.
const (
	bloomBitsPerTerm = 10       // ~1 % false positives with k = 7
	bloomHashes      = 7        // k: ln 2 * bits per term
	maxBloomBytes    = 64 << 10 // per frame; beyond ~52k distinct terms the rate degrades
	minBloomBytes    = 8
)

func termHash(term []byte) uint64 { return xxhash.Sum64(term) }

// bloomSize returns the filter length in bytes for n distinct terms: 10
// bits each, rounded up to 8 bytes, within [minBloomBytes, maxBloomBytes].
func bloomSize(n int) int {
	b := (n*bloomBitsPerTerm + 63) / 64 * 8
	return min(max(b, minBloomBytes), maxBloomBytes)
}

// appendBloom sorts and deduplicates hashes in place and appends a filter
// holding them to dst.
func appendBloom(dst []byte, hashes []uint64) []byte {
	slices.Sort(hashes)
	hashes = slices.Compact(hashes)
	n := bloomSize(len(hashes))
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	f := dst[start:]
	for _, h := range hashes {
		bloomAdd(f, bloomHashes, h)
	}
	return dst
}

func bloomAdd(f []byte, k int, h uint64) {
	m := uint64(len(f)) * 8
	h1, h2 := h&0xffffffff, h>>32
	for i := uint64(0); i < uint64(k); i++ {
		p := (h1 + i*h2) % m
		f[p>>3] |= 1 << (p & 7)
	}
}

// bloomHasAll reports whether every hash of hs may be in filter f (true
// for none).
func bloomHasAll(f []byte, k int, hs []uint64) bool {
	for _, h := range hs {
		if !bloomHas(f, k, h) {
			return false
		}
	}
	return true
}

// bloomHas reports whether h may be in filter f (false: certainly not).
// An empty filter holds nothing.
func bloomHas(f []byte, k int, h uint64) bool {
	if len(f) == 0 {
		return false
	}
	m := uint64(len(f)) * 8
	h1, h2 := h&0xffffffff, h>>32
	for i := uint64(0); i < uint64(k); i++ {
		p := (h1 + i*h2) % m
		if f[p>>3]&(1<<(p&7)) == 0 {
			return false
		}
	}
	return true
}

// protoBit is the bit of a protocol name in a frame's protocol bitmap.
func protoBit(proto string) uint64 { return 1 << (xxhash.Sum64String(proto) & 63) }
