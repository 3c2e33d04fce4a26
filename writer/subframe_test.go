package writer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"tapvault/block"
	"tapvault/packet"
	"tapvault/pcap"
	"tapvault/tracegen"
)

// traceFrames returns the frames of a generated trace.
func traceFrames(t testing.TB, opts tracegen.Options) [][]byte {
	t.Helper()
	var frames [][]byte
	if _, err := tracegen.GenerateFrames(opts, func(_ int64, f []byte) error {
		frames = append(frames, bytes.Clone(f))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return frames
}

// frameBlocks fills blocks of size bytes from frames as a worker would:
// records, and a summary from each frame's flow key (VLANs included), the
// rest counted as non-flow. tsOf gives the timestamp of frame i.
type frameBlocks struct {
	frames [][]byte
	next   int
	tsOf   func(i int) int64
	dec    packet.Decoder
	d      packet.Decoded
}

func (fb *frameBlocks) fill(b *block.Block, size int) {
	b.Queue = 1
	b.ID = uint64(fb.next) + 1
	idx := map[packet.FlowKey]int{}
	for fb.next < len(fb.frames) {
		f := fb.frames[fb.next]
		if b.Count > 0 && len(b.Data)+block.RecordHeaderSize+len(f) > size {
			break
		}
		ts := fb.tsOf(fb.next)
		fb.next++
		appendRecord(b, ts, f, uint32(len(f)), pcap.LinkTypeEthernet, 0)
		fb.dec.Decode(f, pcap.LinkTypeEthernet, &fb.d)
		k, dir, ok := packet.FlowKeyOf(&fb.d)
		if !ok {
			b.Summary.NonFlow++
			continue
		}
		x, seen := idx[k]
		if !seen {
			x = len(b.Summary.Flows)
			idx[k] = x
			b.Summary.Flows = append(b.Summary.Flows, block.FlowStat{Key: k, FirstTS: ts, LastTS: ts, FirstDir: dir})
		}
		st := &b.Summary.Flows[x]
		st.Pkts[dir]++
		st.Bytes[dir] += uint64(len(f))
		st.LastTS = max(st.LastTS, ts)
		st.FirstTS = min(st.FirstTS, ts)
	}
}

// storeFrames writes frames into a new store in dir, in blocks of size
// bytes, and returns what each block must read back as, by ref.
func storeFrames(t testing.TB, dir string, frames [][]byte, size int, tsOf func(int) int64) (map[Ref]want, []BlockMeta) {
	t.Helper()
	var hl hookLog
	w, err := Open(Options{Dir: dir, Logger: quietLog, CommitHook: hl.hook})
	if err != nil {
		t.Fatal(err)
	}
	pool := block.NewPool(4, size, block.DefaultMaxFlows)
	fb := &frameBlocks{frames: frames, tsOf: tsOf}
	var order []want
	for fb.next < len(frames) {
		b := getBlock(t, pool)
		fb.fill(b, size)
		order = append(order, wantOf(b))
		if !w.Submit(b) {
			t.Fatal("Submit: got false")
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	metas := hl.all()
	if len(metas) != len(order) {
		t.Fatalf("%d blocks committed, want %d", len(metas), len(order))
	}
	wants := map[Ref]want{}
	for i, m := range metas {
		wants[m.Ref] = order[i]
	}
	return wants, metas
}

// flowPackets returns, for each flow hash of the packets in recs, the
// positions of its packets (and of non-flow packets under ok false).
func flowPackets(t *testing.T, recs []byte) map[uint32][]uint32 {
	t.Helper()
	var p block.Partition
	out := map[uint32][]uint32{}
	for i := uint32(0); len(recs) > 0; i++ {
		r, rest, err := block.NextRecord(recs)
		if err != nil {
			t.Fatal(err)
		}
		recs = rest
		if h, ok := p.PacketHash(&r); ok {
			out[h] = append(out[h], i)
		}
	}
	return out
}

// recordAt returns the i-th packet record of recs, header included.
func recordAt(t *testing.T, recs []byte, i uint32) []byte {
	t.Helper()
	for ; ; i-- {
		n, ok := block.RecordLen(recs)
		if !ok {
			t.Fatalf("record %d: past the end", i)
		}
		if i == 0 {
			return recs[:n]
		}
		recs = recs[n:]
	}
}

// A version-2 block reads back bit for bit, equal and backward timestamps
// included, and a flow read returns exactly the records of the sub-frames
// holding the flow, in block order, with their positions: among them every
// packet of the flow.
func TestSubFrameRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		opts tracegen.Options
		tsOf func(i int) int64
	}{
		{"imix-10k-flows", tracegen.Options{Kind: tracegen.KindIMIX, Packets: 12000, Flows: 10000, Seed: 3},
			func(i int) int64 { return 1e18 + int64(i/3)*1000 }}, // runs of equal timestamps
		{"mixed-backward-time", tracegen.Options{Kind: tracegen.KindMixed, Packets: 12000, Flows: 500, Seed: 4},
			func(i int) int64 { return 1e18 + int64(i%700)*1000 - int64(i/700) }}, // steps back every 700
		{"one-flow", tracegen.Options{Kind: tracegen.KindIMIX, Packets: 3000, Flows: 1, Seed: 5},
			func(i int) int64 { return 1e18 + int64(i) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			frames := traceFrames(t, c.opts)
			wants, metas := storeFrames(t, dir, frames, 1<<20, c.tsOf)
			r, err := OpenReader(dir, WithReaderLogger(quietLog))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var buf, fbuf BlockBuf
			total := 0
			for _, m := range metas {
				w := wants[m.Ref]
				checkBlock(t, r, m.Ref, w, &buf)
				if buf.Ordinals() != nil {
					t.Fatalf("ReadBlock: Ordinals %v, want nil", buf.Ordinals())
				}
				total += int(m.Count)
				var hdr [offDirEntry]byte
				f, _ := r.file(m.Ref.Segment())
				if _, err := f.ReadAt(hdr[:], int64(m.Ref.Offset())); err != nil {
					t.Fatal(err)
				}
				if hdr[offVersion] != blockVersion2 {
					t.Fatalf("block %v: version %d, want 2", m.Ref, hdr[offVersion])
				}
				nsub := binary.LittleEndian.Uint16(hdr[offDirSubs:])
				if c.name == "imix-10k-flows" && len(w.records) > 900<<10 && nsub < 12 {
					t.Fatalf("block %v of %d bytes: %d sub-frames, want about 16", m.Ref, len(w.records), nsub)
				}
				flows := flowPackets(t, w.records)
				n := 0
				for hash, pos := range flows {
					if n++; n > 40 {
						break
					}
					meta, err := r.ReadFlow(m.Ref, []uint32{hash}, &fbuf)
					if err != nil {
						t.Fatalf("ReadFlow(%v, %#x): %v", m.Ref, hash, err)
					}
					if meta.Ref != m.Ref || meta.Count != m.Count || meta.ID != checkID(t, r, m.Ref) {
						t.Fatalf("ReadFlow meta %+v, want %+v", meta, m)
					}
					ords := fbuf.Ordinals()
					if len(ords) == 0 {
						t.Fatalf("ReadFlow(%v, %#x): no packets, want at least %d", m.Ref, hash, len(pos))
					}
					checkOrds(t, &fbuf, w.records)
					// Every packet of the flow is among them.
					set := map[uint32]bool{}
					for _, o := range ords {
						set[o] = true
					}
					for _, p := range pos {
						if !set[p] {
							t.Fatalf("ReadFlow(%v, %#x): packet %d of the flow missing", m.Ref, hash, p)
						}
					}
					if len(ords) > int(m.Count)/8 && c.name == "imix-10k-flows" && len(w.records) > 900<<10 {
						t.Fatalf("ReadFlow read %d of %d packets for one flow", len(ords), m.Count)
					}
				}
				// Two hashes: the union, in block order.
				var two []uint32
				for hash := range flows {
					if two = append(two, hash); len(two) == 2 {
						break
					}
				}
				if _, err := r.ReadFlow(m.Ref, two, &fbuf); err != nil {
					t.Fatal(err)
				}
				if len(two) > 0 && len(fbuf.Ordinals()) == 0 {
					t.Fatalf("ReadFlow of two flows: no ordinals")
				}
				checkOrds(t, &fbuf, w.records)
			}
			if total != len(frames) {
				t.Fatalf("%d packets stored, want %d", total, len(frames))
			}
			rep, err := Verify(dir, nil)
			if err != nil || !rep.OK() || rep.Packets != uint64(len(frames)) {
				t.Fatalf("Verify: %v, ok %v, %d packets, want %d", err, rep.OK(), rep.Packets, len(frames))
			}
		})
	}
}

// checkOrds checks that the records of a flow read are exactly the packets
// of the block (whose records are all) that its ordinals name, in order.
func checkOrds(t *testing.T, buf *BlockBuf, all []byte) {
	t.Helper()
	recs, ords := buf.Records(), buf.Ordinals()
	for k, o := range ords {
		if k > 0 && o <= ords[k-1] {
			t.Fatalf("ordinals not increasing: %v", ords)
		}
		want := recordAt(t, all, o)
		if !bytes.HasPrefix(recs, want) {
			t.Fatalf("ReadFlow record %d (packet %d) differs from the block's", k, o)
		}
		recs = recs[len(want):]
	}
	if len(recs) != 0 {
		t.Fatalf("ReadFlow: %d bytes after the records", len(recs))
	}
}

func checkID(t *testing.T, r *Reader, ref Ref) uint64 {
	var buf BlockBuf
	m, err := r.ReadBlock(ref, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// The compressor-behind path writes version 1 (one raw frame), and a flow
// read of a version-1 block reads it whole.
func TestRawPathWritesVersion1(t *testing.T) {
	frames := traceFrames(t, tracegen.Options{Kind: tracegen.KindIMIX, Packets: 2000, Flows: 100, Seed: 9})
	b := block.NewPool(1, 1<<20, block.DefaultMaxFlows).Get()
	(&frameBlocks{frames: frames, tsOf: func(i int) int64 { return int64(i) }}).fill(b, 1<<20)
	var rb recBuf
	buildRecord(&rb, b, nil, 0)
	if rb.err != nil || rb.rec[offVersion] != blockVersion || rb.h.hdrLen != blockHeaderLen || rb.h.recCodec != CodecRaw {
		t.Fatalf("raw path: err %v, version %d, hlen %d, codec %d; want version 1, hlen 80, raw", rb.err, rb.rec[offVersion], rb.h.hdrLen, rb.h.recCodec)
	}
}

// SubFrame < 0 keeps one compressed frame per block: version 1.
func TestNoSubFramesWritesVersion1(t *testing.T) {
	frames := traceFrames(t, tracegen.Options{Kind: tracegen.KindIMIX, Packets: 2000, Flows: 100, Seed: 9})
	b := block.NewPool(1, 1<<20, block.DefaultMaxFlows).Get()
	(&frameBlocks{frames: frames, tsOf: func(i int) int64 { return int64(i) }}).fill(b, 1<<20)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	var rb recBuf
	buildRecord(&rb, b, enc, -1)
	if rb.err != nil || rb.rec[offVersion] != blockVersion || rb.h.recCodec != CodecZstd {
		t.Fatalf("SubFrame -1: err %v, version %d, codec %d; want version 1, zstd", rb.err, rb.rec[offVersion], rb.h.recCodec)
	}
	buildRecord(&rb, b, enc, 0)
	if rb.err != nil || rb.rec[offVersion] != blockVersion2 {
		t.Fatalf("SubFrame 0: err %v, version %d; want version 2", rb.err, rb.rec[offVersion])
	}
}

// v1Store is a store written by commit 1522a30 (version-1 blocks, before
// sub-frames): testdata/v1store, made by writing the frames of v1Opts with
// v1TS in blocks of 64 KiB (see testdata/README.md).
var v1Opts = tracegen.Options{Kind: tracegen.KindMixed, Packets: 600, Flows: 40, Seed: 11}

func v1TS(i int) int64 { return 1_700_000_000_000_000_000 + int64(i%100)*1000 - int64(i/100) }

// Stores written before version 2 still read: whole, by flow read (which
// falls back to the whole block), and through Verify.
func TestReadVersion1Store(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/v1store")); err != nil {
		t.Fatal(err)
	}
	frames := traceFrames(t, v1Opts)
	r, err := OpenReader(dir, WithReaderLogger(quietLog))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf, fbuf BlockBuf
	i := 0
	blocks := 0
	err = r.WalkSummaries(0, func(m BlockMeta, _ *block.Summary) error {
		blocks++
		if _, err := r.ReadBlock(m.Ref, &buf); err != nil {
			return err
		}
		recs := buf.Records()
		for len(recs) > 0 {
			rec, rest, err := block.NextRecord(recs)
			if err != nil {
				return err
			}
			if !bytes.Equal(rec.Data, frames[i]) || rec.TS != v1TS(i) {
				t.Fatalf("packet %d differs from the frame written", i)
			}
			recs = rest
			i++
		}
		if _, err := r.ReadFlow(m.Ref, []uint32{1}, &fbuf); err != nil {
			return err
		}
		if fbuf.Ordinals() != nil || !bytes.Equal(fbuf.Records(), buf.Records()) {
			t.Fatalf("ReadFlow of a version-1 block: got %d records bytes with ordinals %v, want the whole block", len(fbuf.Records()), fbuf.Ordinals() != nil)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(frames) || blocks < 2 {
		t.Fatalf("read %d packets in %d blocks, want %d in several", i, blocks, len(frames))
	}
	rep, err := Verify(dir, nil)
	if err != nil || !rep.OK() || rep.Packets != uint64(len(frames)) {
		t.Fatalf("Verify: %v ok %v packets %d", err, rep.OK(), rep.Packets)
	}
}

// Damage to a directory, a sub-frame or the sequence is found: by Verify,
// by ReadBlock, and by a flow read of the damaged sub-frame.
func TestSubFrameCorruption(t *testing.T) {
	frames := traceFrames(t, tracegen.Options{Kind: tracegen.KindIMIX, Packets: 4000, Flows: 1000, Seed: 6})
	for _, where := range []string{"directory entry", "sequence", "sub-frame"} {
		t.Run(where, func(t *testing.T) {
			dir := t.TempDir()
			_, metas := storeFrames(t, dir, frames, 1<<20, func(i int) int64 { return int64(i) })
			m := metas[0]
			path := filepath.Join(segmentsDir(dir), segmentName(m.Ref.Segment()))
			seg, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rec := seg[m.Ref.Offset():]
			h, err := parseBlockHeader(rec)
			if err != nil {
				t.Fatal(err)
			}
			var d subDir
			if err := parseDir(rec, &h, &d); err != nil {
				t.Fatal(err)
			}
			sub := 1
			var at int
			switch where {
			case "directory entry":
				at = offDirEntry + sub*dirEntrySize + 8 // raw length
			case "sequence":
				at = int(h.hdrLen) - 1
			case "sub-frame":
				at = int(h.hdrLen) + int(h.sumStored) + int(d.subs[sub].off) + int(d.subs[sub].stored)/2
			}
			rec[at] ^= 0x10
			if err := os.WriteFile(path, seg, 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(dir, nil)
			if err != nil || rep.OK() || rep.BadBlocks != 1 {
				t.Fatalf("Verify after damaging the %s: err %v, ok %v, %d bad blocks; want 1", where, err, rep.OK(), rep.BadBlocks)
			}
			r, err := OpenReader(dir, WithReaderLogger(quietLog))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var buf BlockBuf
			var ce *CorruptionError
			if _, err := r.ReadBlock(m.Ref, &buf); !errors.As(err, &ce) {
				t.Fatalf("ReadBlock: got %v, want a CorruptionError", err)
			}
			// A flow read of the damaged sub-frame fails its checks.
			hash := d.subs[sub].start
			if _, err := r.ReadFlow(m.Ref, []uint32{hash}, &buf); !errors.As(err, &ce) {
				t.Fatalf("ReadFlow of the damaged sub-frame: got %v, want a CorruptionError", err)
			}
		})
	}
}
