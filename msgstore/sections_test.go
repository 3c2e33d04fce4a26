package msgstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"tapvault/analytics"
)

// mixedRecords is n records: two in three HTTP exchanges, the others
// random (proto tcp among them, so both kinds of frame are written).
func mixedRecords(seed uint64, n int) []*analytics.Record {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var recs []*analytics.Record
	for i := range n {
		if i%3 == 0 {
			r := randRecord(rng)
			if i%6 == 0 {
				r.Proto = analytics.FlowProto
			}
			recs = append(recs, r)
		} else {
			recs = append(recs, httpRecord(i, t0+int64(i)*1000))
		}
	}
	return recs
}

// TestVersion1Frames: a store written as version 1 (records as rows, one
// section, exchanges and connection records mixed in a frame) reads as
// the same records as version 2 (two sections, kinds apart), with and
// without detail, sequentially and in parallel, through Get, the cursor
// and Verify; and a scan of one kind takes only that kind from the mixed
// frames.
func TestVersion1Frames(t *testing.T) {
	recs := mixedRecords(11, 900)
	var conns int
	for _, r := range recs {
		if analytics.IsConnection(r) {
			conns++
		}
	}
	if conns == 0 || conns == len(recs) {
		t.Fatalf("%d connection records of %d: the test needs both kinds", conns, len(recs))
	}
	roots := map[uint8]string{}
	for _, v := range []uint8{frameVersion1, frameVersion} {
		root := t.TempDir()
		w := openW(t, root, Options{FrameRecords: 64})
		w.rows = v == frameVersion1
		writeAll(t, w, recs)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		files, _ := Files(root)
		_, h := firstHeader(t, files[0].Path)
		if h.version != v || (v == frameVersion1) != (h.core == 0) {
			t.Fatalf("wrote version %d with core %d, want version %d", h.version, h.core, v)
		}
		if v == frameVersion1 && h.flags != 0 || v == frameVersion && h.flags == 0 {
			t.Fatalf("version %d frame with flags %#x", v, h.flags)
		}
		rep, err := Verify(root)
		if err != nil || len(rep.Corrupt) != 0 || rep.Records != int64(len(recs)) {
			t.Fatalf("version %d: verify %+v (%v), want %d clean records", v, rep, err, len(recs))
		}
		roots[v] = root
	}
	for _, q := range []Query{{}, {NoDetail: true}, {Kind: Exchanges}, {Kind: Connections, NoDetail: true}, {Protos: []string{"http"}, NoDetail: true}} {
		old, bad1 := scanAll(t, openR(t, roots[frameVersion1]), q)
		cur, bad2 := scanAll(t, openR(t, roots[frameVersion]), q)
		if len(bad1)+len(bad2) != 0 {
			t.Fatalf("%+v: corruption %v %v", q, bad1, bad2)
		}
		want := wantScan(recs, q)
		for i := range old {
			old[i], cur[i] = emptyNil(old[i]), emptyNil(cur[i])
		}
		if len(want) == 0 || len(want) == len(recs) && q.Kind != AllRecords {
			t.Fatalf("%+v: %d records selected: the case checks nothing", q, len(want))
		}
		sameRecords(t, old, want)
		sameRecords(t, cur, want)
	}
	// Kind skips the other kind's frames in version 2, none in version 1.
	for v, root := range roots {
		rd := openR(t, root)
		scanAllOnce(t, rd, Query{Kind: Exchanges, NoDetail: true})
		st := rd.Stats()
		if (v == frameVersion) != (st.SkippedKind > 0) {
			t.Fatalf("version %d: %d frames skipped by kind", v, st.SkippedKind)
		}
	}
	for _, root := range roots {
		rd := openR(t, root)
		for _, i := range []int{0, 1, 450, 899} {
			got, err := rd.Get(t.Context(), recs[i].ID)
			if err != nil || !equalRecords(got, recs[i]) {
				t.Fatalf("get %016x: %v %+v", recs[i].ID, err, got)
			}
		}
		ids, _ := readIDs(t, rd, Cursor{}, 0)
		if len(ids) != len(recs) {
			t.Fatalf("cursor read %d records, want %d", len(ids), len(recs))
		}
	}
}

// TestDetailSectionUnread: a scan without detail never decompresses a
// version 2 frame's detail section (made garbage here, under a correct
// frame CRC), while a scan with detail and Verify report it as damage.
func TestDetailSectionUnread(t *testing.T) {
	root := t.TempDir()
	w := openW(t, root, Options{FrameRecords: 1000})
	recs := httpRecords(200)
	writeAll(t, w, recs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := Files(root)
	path := files[0].Path
	b, h := firstHeader(t, path)
	if h.codec != codecZstd || h.core == 0 || h.core >= h.stored {
		t.Fatalf("frame codec %d, core %d of %d stored: want two zstd sections", h.codec, h.core, h.stored)
	}
	if int64(len(b)) != h.frameLen() {
		t.Fatalf("file holds %d bytes, the frame %d: want one frame", len(b), h.frameLen())
	}
	det := int(h.hdrLen) + int(h.bloomLen) + int(h.core)
	for i := det; i < det+int(h.stored-h.core); i++ {
		b[i] ^= 0x5a
	}
	end := len(b) - crcSize
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli))
	rewrite(t, path, b)

	rd := openR(t, root)
	got, bad := scanAll(t, rd, Query{NoDetail: true})
	if len(bad) != 0 || len(got) != len(recs) {
		t.Fatalf("without detail: %d records, corruption %v; want %d, none", len(got), bad, len(recs))
	}
	got, bad = scanAll(t, rd, Query{})
	if len(got) != 0 || len(bad) != 1 || !strings.Contains(bad[0].Error(), "detail section") {
		t.Fatalf("with detail: %d records, corruption %v; want none and the detail section named", len(got), bad)
	}
	rep, err := Verify(root)
	if err != nil || len(rep.Corrupt) != 1 {
		t.Fatalf("verify: %+v (%v), want the frame corrupt", rep, err)
	}
}

// TestFrameKindChecked: Verify reports a record of the other kind in a
// frame flagged as holding one kind, and a header with both kind flags is
// damage.
func TestFrameKindChecked(t *testing.T) {
	root := t.TempDir()
	w := openW(t, root, Options{})
	writeAll(t, w, httpRecords(10))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := Files(root)
	path := files[0].Path
	orig, _ := firstHeader(t, path)
	for _, tc := range []struct {
		flags uint8
		want  string
	}{{flagConnections, "an exchange in a frame of connection records"}, {knownFlags, "flags"}} {
		b := append([]byte(nil), orig...)
		b[offFlags] = tc.flags
		binary.LittleEndian.PutUint32(b[offHdrCRC:], crc32.Checksum(b[:offHdrCRC], castagnoli))
		end := len(b) - crcSize
		binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli))
		rewrite(t, path, b)
		rep, err := Verify(root)
		if err != nil || len(rep.Corrupt) != 1 || !strings.Contains(rep.Corrupt[0].Error(), tc.want) {
			t.Fatalf("flags %#x: verify %+v (%v), want damage naming %q", tc.flags, rep, err, tc.want)
		}
	}
}

// firstHeader reads the file at path and parses its first frame header.
func firstHeader(t *testing.T, path string) ([]byte, frameHeader) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseFrameHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

// TestRawFrames: records that do not compress are stored raw, in both
// versions, and read back the same every way: with and without detail, by
// kind, by position, and through Verify.
func TestRawFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	noise := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return string(b)
	}
	var recs []*analytics.Record
	for i := range 60 {
		r := httpRecord(i, t0+int64(i)*1000)
		r.ID = rng.Uint64()
		r.Fields = []analytics.Field{{Key: "path", Str: noise(3000)}, {Key: "host", Str: noise(40)}}
		if i%4 == 0 {
			r.Proto = analytics.FlowProto
		}
		recs = append(recs, r)
	}
	for _, rows := range []bool{true, false} {
		root := t.TempDir()
		w := openW(t, root, Options{FrameRecords: 16})
		w.rows = rows
		writeAll(t, w, recs)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		files, _ := Files(root)
		_, h := firstHeader(t, files[0].Path)
		if h.codec != codecRaw || rows != (h.version == frameVersion1) || !rows && h.core == 0 {
			t.Fatalf("rows %v: frame codec %d, version %d, core %d: want raw sections", rows, h.codec, h.version, h.core)
		}
		if rep, err := Verify(root); err != nil || len(rep.Corrupt) != 0 || rep.Records != int64(len(recs)) {
			t.Fatalf("rows %v: verify %+v (%v)", rows, rep, err)
		}
		rd := openR(t, root)
		for _, q := range []Query{{}, {NoDetail: true}, {Kind: Exchanges}} {
			got, bad := scanAll(t, rd, q)
			want := wantScan(recs, q)
			for i := range got {
				got[i] = emptyNil(got[i])
			}
			if len(bad) != 0 {
				t.Fatalf("rows %v, %+v: corruption %v", rows, q, bad)
			}
			sameRecords(t, got, want)
		}
		var pos Pos
		var ps []Pos
		if err := rd.Scan(t.Context(), Query{NoDetail: true, Pos: &pos}, func(*analytics.Record) error { ps = append(ps, pos); return nil }); err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := rd.ReadAt(t.Context(), ps, func(err error) { t.Errorf("corruption %v", err) }, func(r *analytics.Record, _ Pos) error {
			n++
			if len(r.Fields) != 2 || len(r.Fields[0].Str) != 3000 {
				t.Fatalf("rows %v: record %016x read back with fields %d", rows, r.ID, len(r.Fields))
			}
			return nil
		}); err != nil || n != len(recs) {
			t.Fatalf("rows %v: ReadAt %v, %d records", rows, err, n)
		}
	}
}

// TestSealErr: of the two frames a seal writes, a write error is what the
// caller sees when the other frame fell below the reserve (the capture
// does not log ErrReserve); two of a kind are both kept.
func TestSealErr(t *testing.T) {
	reserve := fmt.Errorf("write message frame (3 records dropped): %w", ErrReserve)
	eio := errors.New("write message frame (2 records dropped): input/output error")
	for _, tc := range []struct {
		e1, e2      error
		want        []error
		wantReserve bool
	}{
		{nil, nil, nil, false},
		{reserve, nil, []error{reserve}, true},
		{nil, reserve, []error{reserve}, true},
		{reserve, eio, []error{eio}, false},
		{eio, reserve, []error{eio}, false},
		{reserve, reserve, []error{reserve}, true},
		{eio, eio, []error{eio}, false},
	} {
		err := sealErr(tc.e1, tc.e2)
		if (err == nil) != (tc.want == nil) || errors.Is(err, ErrReserve) != tc.wantReserve {
			t.Fatalf("sealErr(%v, %v) = %v: want reserve %v", tc.e1, tc.e2, err, tc.wantReserve)
		}
		for _, w := range tc.want {
			if !errors.Is(err, w) {
				t.Fatalf("sealErr(%v, %v) = %v: want it to hold %v", tc.e1, tc.e2, err, w)
			}
		}
	}
}

// wantScan is what a scan with q (its Kind, its first protocol, NoDetail)
// gives of recs, written in that order, as emptyNil copies.
func wantScan(recs []*analytics.Record, q Query) []*analytics.Record {
	var want []*analytics.Record
	for _, r := range recs {
		if q.Kind != AllRecords && analytics.IsConnection(r) != (q.Kind == Connections) ||
			len(q.Protos) > 0 && r.Proto != q.Protos[0] {
			continue
		}
		c := cloneRecord(r)
		if q.NoDetail {
			c.Fields, c.Packets = nil, nil
		}
		want = append(want, emptyNil(c))
	}
	return want
}
