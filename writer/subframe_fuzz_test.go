package writer

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"tapvault/block"
	"tapvault/tracegen"

	"github.com/klauspost/compress/zstd"
)

// FuzzSubFrameDirectory rewrites the directory and sequence of a real
// version-2 record with arbitrary bytes and fixes up every CRC (directory,
// header, record), so the directory checks, not the CRCs, meet the damage:
// ReadBlock, ReadFlow and Verify must return errors, never panic, and a
// block that reads back whole must hold its header's packet count, and a
// flow read must return only packets of the block.
func FuzzSubFrameDirectory(f *testing.F) {
	frames := traceFrames(f, tracegen.Options{Kind: tracegen.KindMixed, Packets: 1200, Flows: 50, Seed: 12})
	b := block.NewPool(1, 256<<10, block.DefaultMaxFlows).Get()
	(&frameBlocks{frames: frames, tsOf: func(i int) int64 { return int64(i) }}).fill(b, 256<<10)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
	if err != nil {
		f.Fatal(err)
	}
	var rb recBuf
	buildRecord(&rb, b, enc, 0)
	enc.Close()
	if rb.err != nil || rb.h.version != blockVersion2 || binary.LittleEndian.Uint16(rb.rec[offDirSubs:]) < 3 {
		f.Fatalf("seed record: err %v, version %d, %d sub-frames, want at least 3", rb.err, rb.h.version, binary.LittleEndian.Uint16(rb.rec[offDirSubs:]))
	}
	seed := rb.rec
	hlen := int(rb.h.hdrLen)
	f.Add(seed[offDirSubs:hlen])
	f.Add(seed[offDirSubs : hlen-3])
	f.Add(append(append([]byte{}, seed[offDirSubs:hlen]...), 0, 0))
	dir := f.TempDir()
	sd := segmentsDir(dir)
	if err := os.MkdirAll(sd, 0o700); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ext []byte) {
		if offDirSubs+len(ext) > maxHeaderSize || offDirSubs+len(ext) < offDirEntry+dirEntrySize {
			return
		}
		newLen := offDirSubs + len(ext)
		rec := append([]byte{}, seed[:offDirSubs]...)
		rec = append(rec, ext...)
		rec = append(rec, seed[hlen:]...)
		binary.LittleEndian.PutUint16(rec[offHdrLen:], uint16(newLen))
		off := uint32(segHeaderSize)
		putDirCRC(rec)
		sealRecord(rec, MakeRef(1, off))
		seg := append(appendSegmentHeader(nil, 1, 1), rec...)
		if err := os.WriteFile(filepath.Join(sd, segmentName(1)), seg, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := OpenReader(dir, WithReaderLogger(quietLog))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var buf BlockBuf
		ref := MakeRef(1, off)
		if m, err := r.ReadBlock(ref, &buf); err == nil {
			n := uint32(0)
			for p := buf.Records(); len(p) > 0; n++ {
				l, ok := block.RecordLen(p)
				if !ok {
					t.Fatalf("ReadBlock passed records that do not walk")
				}
				p = p[l:]
			}
			if n != m.Count {
				t.Fatalf("ReadBlock: %d records, header says %d", n, m.Count)
			}
		}
		for _, h := range []uint32{0, 1 << 31, 0xffffffff, crc32.ChecksumIEEE(ext)} {
			if _, err := r.ReadFlow(ref, []uint32{h}, &buf); err == nil {
				ords := buf.Ordinals()
				for i, o := range ords {
					if o >= b.Count || (i > 0 && o <= ords[i-1]) {
						t.Fatalf("ReadFlow: ordinals %v of a %d-packet block", ords, b.Count)
					}
				}
				if err := checkWalk(buf.Records(), len(ords)); ords != nil && err != nil {
					t.Fatalf("ReadFlow: %v", err)
				}
			}
		}
		if _, err := Verify(dir, nil); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
}
