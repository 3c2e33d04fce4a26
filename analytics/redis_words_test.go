package analytics

import (
	"bytes"
	"testing"
)

// TestRedisWords checks redisWords against bytes.Fields, which it replaces
// for inline commands: the same first two words and count.
func TestRedisWords(t *testing.T) {
	for _, s := range []string{
		"", " ", "GET", "GET key", "  SET  k  v  ", "a\tb\nc\vd\fe\rf", "x\r", "PING\r",
		"set k\u00a0v", "caf\u00e9 au lait", "\u0085lead", "one two three four",
	} {
		got, n := redisWords([]byte(s))
		f := bytes.Fields([]byte(s))
		if n != int64(len(f)) {
			t.Errorf("%q: got %d words, want %d", s, n, len(f))
			continue
		}
		for i := range min(2, len(f)) {
			if !bytes.Equal(got[i], f[i]) {
				t.Errorf("%q: word %d got %q, want %q", s, i, got[i], f[i])
			}
		}
	}
}
