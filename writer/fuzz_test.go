package writer

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadBlock treats arbitrary bytes as segment files (one behind a valid
// segment header, one as-is): listing, scanning, reading, verifying and
// recovering must return errors, never panic, and never report a block
// that does not read back.
func FuzzReadBlock(f *testing.F) {
	seg, metas, _ := smallStore(f, 3, 300)
	body := seg[segHeaderSize:]
	f.Add(body)
	f.Add(seg)
	f.Add(body[:len(body)-1])
	f.Add(body[metas[1].Ref.Offset()-segHeaderSize:])
	f.Add([]byte{})
	// One directory, rewritten by every run: a fresh one per run made the
	// file system the bottleneck (each worker runs inputs one at a time).
	dir := f.TempDir()
	sd := segmentsDir(dir)
	if err := os.MkdirAll(sd, 0o700); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		withHeader := append(appendSegmentHeader(nil, 1, 1), data...)
		if err := os.WriteFile(filepath.Join(sd, segmentName(1)), withHeader, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sd, segmentName(2)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := OpenReader(dir, WithReaderLogger(quietLog))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		r.Segments()
		var buf BlockBuf
		for _, seg := range []uint32{1, 2} {
			r.ScanSegment(seg, func(m BlockMeta) error {
				if _, err := r.ReadSummary(m.Ref, &buf); err != nil {
					return nil // header-only scan: the payload may be bad
				}
				if _, err := r.ReadBlock(m.Ref, &buf); err == nil {
					if m.RawLen != uint32(len(buf.Records())+len(buf.Summary())) {
						t.Fatalf("block %v: got %d raw bytes, header says %d", m.Ref, len(buf.Records())+len(buf.Summary()), m.RawLen)
					}
				}
				return nil
			})
		}
		if len(data) >= 8 { // arbitrary refs
			off := binary.LittleEndian.Uint32(data)
			r.ReadBlock(MakeRef(1, off), &buf)
			r.ReadSummary(MakeRef(2, off), &buf)
			r.ReadBlock(MakeRef(binary.LittleEndian.Uint32(data[4:]), off), &buf)
		}
		rep, err := Verify(dir, nil)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		// The walk recovery does (minus the truncation and its fsync,
		// which would make fuzzing crawl) must agree with Verify.
		wk := segWalker{f: bytes.NewReader(withHeader), path: "fuzz", seg: 1, size: int64(len(withHeader)), full: true}
		blocks := 0
		tail, _, err := wk.walk(func(*blockHeader, []byte) error { blocks++; return nil },
			func(*CorruptionError) error { return nil })
		if err != nil || tail < segHeaderSize || tail > int64(len(withHeader)) {
			t.Fatalf("walk: got tail %d, err %v; want a tail within the file and no error", tail, err)
		}
		if s := rep.Segments[0]; s.Blocks > blocks || s.Blocks+len(s.Bad) < blocks {
			t.Fatalf("Verify found %d good and %d bad blocks in segment 1, the recovery walk %d valid", s.Blocks, len(s.Bad), blocks)
		}
	})
}
