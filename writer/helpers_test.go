package writer

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"tapvault/block"
	"tapvault/packet"
	"testing"
	"time"
)

// Payload kinds of generated packets.
const (
	payloadText   = iota // protocol-like text: compresses well
	payloadRandom        // random full-size frames: incompressible, like bulk TLS
	payloadMixed         // IMIX frames, half with text payloads, half random
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// imixSize picks a frame size the way simple IMIX does: 7 x 64, 4 x 594,
// 1 x 1518 bytes.
func imixSize(r *rand.Rand) int {
	switch n := r.IntN(12); {
	case n < 7:
		return 64
	case n < 11:
		return 594
	default:
		return 1518
	}
}

var words = []string{"GET ", "POST ", "/index.html ", "HTTP/1.1\r\n", "Host: example.com\r\n",
	"User-Agent: tapvault-test\r\n", "Accept: */*\r\n", "Content-Length: 1234\r\n", "\r\n",
	"{\"id\":", "\"value\":", "42,", "true}", "Set-Cookie: session=abcdef; Path=/\r\n"}

// fillBlock appends packet records to b, generated deterministically from
// seed, until about target payload bytes are used, and builds the summary
// the way a worker would: a handful of flows, and every 16th packet with no
// flow. The block's fields (Count, MinTS, MaxTS, Bytes) are kept in step.
func fillBlock(b *block.Block, seed uint64, target int, kind int) {
	r := rand.New(rand.NewPCG(seed, 0x7a9))
	b.Queue = uint16(seed % 7)
	nflows := 1 + r.IntN(8)
	ts := int64(1_700_000_000_000_000_000) + int64(seed)*1_000_000_000 // seeds never overlap in time
	pkt := make([]byte, 0, 2048)
	for i := 0; ; i++ {
		size := imixSize(r)
		if kind == payloadRandom {
			size = 1518 // full-size encrypted frames: nothing for zstd to find
		}
		if len(b.Data)+block.RecordHeaderSize+size > target && b.Count > 0 {
			break
		}
		pkt = pkt[:0]
		// Ethernet + IPv4 + TCP headers with a few varying fields.
		pkt = append(pkt, 0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00)
		pkt = append(pkt, 0x45, 0, byte(size>>8), byte(size), byte(i>>8), byte(i), 0x40, 0, 64, 6, 0, 0,
			10, 0, 0, byte(1+i%nflows), 10, 0, 1, 1)
		pkt = binary.BigEndian.AppendUint16(pkt, uint16(40000+i%nflows))
		pkt = binary.BigEndian.AppendUint16(pkt, 443)
		pkt = binary.BigEndian.AppendUint32(pkt, uint32(i)*1448)
		pkt = append(pkt, make([]byte, 8)...)
		random := kind == payloadRandom || (kind == payloadMixed && r.IntN(2) == 0)
		for len(pkt) < size {
			if random {
				pkt = append(pkt, byte(r.Uint32()))
			} else {
				pkt = append(pkt, words[r.IntN(len(words))]...)
			}
		}
		pkt = pkt[:size]
		if kind == payloadRandom {
			for j := range pkt {
				pkt[j] = byte(r.Uint32())
			}
		}
		caplen := size
		if i%5 == 0 && size > 128 && kind != payloadRandom {
			caplen = 128 // snaplen cut: caplen < wirelen
		}
		ts += int64(1 + r.IntN(5000))
		appendRecord(b, ts, pkt[:caplen], uint32(size), 1, uint16(i%2))
		if i%16 == 15 {
			b.Summary.NonFlow++
			continue
		}
		addToFlow(b, i%nflows, ts, uint32(size))
	}
}

func appendRecord(b *block.Block, ts int64, data []byte, wire uint32, lt, iface uint16) {
	b.Data = binary.LittleEndian.AppendUint64(b.Data, uint64(ts))
	b.Data = binary.LittleEndian.AppendUint32(b.Data, uint32(len(data)))
	b.Data = binary.LittleEndian.AppendUint32(b.Data, wire)
	b.Data = binary.LittleEndian.AppendUint16(b.Data, lt)
	b.Data = binary.LittleEndian.AppendUint16(b.Data, iface)
	b.Data = append(b.Data, data...)
	if b.Count == 0 || ts < b.MinTS {
		b.MinTS = ts
	}
	if b.Count == 0 || ts > b.MaxTS {
		b.MaxTS = ts
	}
	b.Count++
	b.Bytes += uint64(wire)
}

func addToFlow(b *block.Block, flow int, ts int64, wire uint32) {
	var k packet.FlowKey
	k.A[10], k.A[11], k.A[12], k.A[15] = 0xff, 0xff, 10, byte(1+flow)
	k.B[10], k.B[11], k.B[12], k.B[13], k.B[15] = 0xff, 0xff, 10, 0, 1
	k.PortA, k.PortB, k.Proto, k.IPVer = uint16(40000+flow), 443, 6, 4
	for i := range b.Summary.Flows {
		f := &b.Summary.Flows[i]
		if f.Key == k {
			f.Pkts[packet.DirAB]++
			f.Bytes[packet.DirAB] += uint64(wire)
			f.LastTS = ts
			return
		}
	}
	b.Summary.Flows = append(b.Summary.Flows, block.FlowStat{
		Key: k, Pkts: [2]uint32{1, 0}, Bytes: [2]uint64{uint64(wire), 0}, FirstTS: ts, LastTS: ts,
	})
}

// want is the content a generated block must read back as.
type want struct {
	records []byte
	summary []byte
	count   uint32
	queue   uint16
	minTS   int64
	maxTS   int64
	wire    uint64
}

func wantOf(b *block.Block) want {
	return want{
		records: bytes.Clone(b.Data),
		summary: block.AppendSummary(nil, &b.Summary),
		count:   b.Count, queue: b.Queue, minTS: b.MinTS, maxTS: b.MaxTS, wire: b.Bytes,
	}
}

// getBlock waits (bounded) for a free block from pool.
func getBlock(t testing.TB, pool *block.Pool) *block.Block {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b := pool.Get(); b != nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatal("no free block within 10s: the writer does not release blocks")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// hookLog records committed blocks by ref, with the summary they carried.
type hookLog struct {
	mu      sync.Mutex
	metas   []BlockMeta
	summary map[Ref][]byte
}

func (h *hookLog) hook(meta BlockMeta, sum *block.Summary) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.summary == nil {
		h.summary = make(map[Ref][]byte)
	}
	h.metas = append(h.metas, meta)
	h.summary[meta.Ref] = block.AppendSummary(nil, sum)
}

func (h *hookLog) all() []BlockMeta {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]BlockMeta(nil), h.metas...)
}

// checkBlock reads ref back and compares it with w.
func checkBlock(t *testing.T, r *Reader, ref Ref, w want, buf *BlockBuf) BlockMeta {
	t.Helper()
	meta, err := r.ReadBlock(ref, buf)
	if err != nil {
		t.Fatalf("ReadBlock(%v): %v", ref, err)
	}
	if !bytes.Equal(buf.Records(), w.records) {
		t.Fatalf("ReadBlock(%v): records differ: got %d bytes, want %d", ref, len(buf.Records()), len(w.records))
	}
	if !bytes.Equal(buf.Summary(), w.summary) {
		t.Fatalf("ReadBlock(%v): summary differs: got %d bytes, want %d", ref, len(buf.Summary()), len(w.summary))
	}
	if meta.Ref != ref || meta.Count != w.count || meta.Queue != w.queue || meta.MinTS != w.minTS ||
		meta.MaxTS != w.maxTS || meta.WireBytes != w.wire {
		t.Fatalf("ReadBlock(%v): got meta %+v, want ref %v count %d queue %d ts [%d,%d] wire %d",
			ref, meta, ref, w.count, w.queue, w.minTS, w.maxTS, w.wire)
	}
	if int(meta.RawLen) != len(w.records)+len(w.summary) {
		t.Fatalf("ReadBlock(%v): got RawLen %d, want %d", ref, meta.RawLen, len(w.records)+len(w.summary))
	}
	return meta
}
