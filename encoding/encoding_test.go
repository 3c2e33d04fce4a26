package encoding

import (
	"encoding/binary"
	"errors"
	"io"
	"strings"
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

func TestHeaderCheck(t *testing.T) {
	h := Header{What: "test header", Size: 16, Magic: 0x54565354, Version: 2, OffMagic: 0, OffVersion: 4, OffCRC: 12}
	good := make([]byte, 16)
	binary.LittleEndian.PutUint32(good[0:], h.Magic)
	good[4] = 2
	binary.LittleEndian.PutUint32(good[12:], CRC(good[:12]))
	if err := h.Check(good); err != nil {
		t.Fatalf("good header: %v", err)
	}
	bad := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	reseal := func(b []byte) { binary.LittleEndian.PutUint32(b[12:], CRC(b[:12])) }
	for _, tc := range []struct {
		b    []byte
		want string
	}{
		{good[:15], "test header: 15 bytes, want 16"},
		{bad(func(b []byte) { b[0] ^= 1; reseal(b) }), "test header: bad magic"},
		{bad(func(b []byte) { b[7] ^= 1 }), "test header: crc"},
		{bad(func(b []byte) { b[4] = 3; reseal(b) }), "test header: unsupported version 3"},
		{bad(func(b []byte) { b[4] = 1; reseal(b) }), "test header: unsupported version 1"},
	} {
		if err := h.Check(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check: %v, want an error containing %q", err, tc.want)
		}
	}
	// MinVersion: versions from it to Version read, others do not.
	h.MinVersion = 1
	for v, ok := range map[byte]bool{0: false, 1: true, 2: true, 3: false} {
		err := h.Check(bad(func(b []byte) { b[4] = v; reseal(b) }))
		if (err == nil) != ok {
			t.Errorf("MinVersion 1, Version 2: version %d: got %v, want accepted %v", v, err, ok)
		}
	}
}
