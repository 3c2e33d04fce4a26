package encoding

import (
	"errors"
	"io"
	"testing"
)

func TestCorruptionError(t *testing.T) {
	for _, tc := range []struct {
		e    *CorruptionError
		want string
	}{
		{&CorruptionError{Path: "s/1.seg", Offset: 64, Err: io.ErrUnexpectedEOF}, `corrupt record in "s/1.seg" at offset 64: unexpected EOF`},
		{&CorruptionError{Path: "m/1.msg", Offset: 8, What: "message frame", Err: io.ErrUnexpectedEOF}, `corrupt message frame in "m/1.msg" at offset 8: unexpected EOF`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
		if !errors.Is(tc.e, io.ErrUnexpectedEOF) {
			t.Errorf("%v does not unwrap to its cause", tc.e)
		}
	}
	// The CRC32C check value (RFC 3720 B.4): 32 bytes of zeros.
	if got := CRC(make([]byte, 32)); got != 0x8a9136aa {
		t.Errorf("CRC of 32 zero bytes: got %#x, want 0x8a9136aa", got)
	}
}
