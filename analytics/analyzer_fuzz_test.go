package analytics_test

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"

	"tapvault/analytics"
	"tapvault/block"
	"tapvault/internal/testframe"
	"tapvault/workers"
)

// fuzzFrames turns fuzz input into a short conversation between two hosts:
// each step takes a direction, TCP flags, a sequence and an ACK number near
// the connection's own (or anywhere), a server port among the decoders'
// and a payload slice of the input. Timestamps move forward by the step's
// delta, sometimes by over a second (the ACK and hole timers), and now
// and then back by an hour (a clock step).
func fuzzFrames(t testing.TB, in []byte) *frameSource {
	src := new(frameSource)
	ports := []uint16{80, 443, 53, 6379, 5432, 3306, 9878, 1900}
	ts := int64(1_700_000_000_000_000_000)
	seq := [2]uint32{1000, 5000}
	for len(in) >= 8 {
		op := in[:8]
		in = in[8:]
		dir := int(op[0] & 1)
		port := ports[int(op[0]>>1)%len(ports)]
		n := int(op[1]) % 64
		if n > len(in) {
			n = len(in)
		}
		payload := in[:n]
		in = in[n:]
		ts += int64(binary.LittleEndian.Uint16(op[2:])) * 1000
		if op[0]&0x80 != 0 {
			ts += 2_000_000_000
			if op[7]&0x80 != 0 {
				ts -= 3_600_000_000_000 // the clock steps back an hour
			}
		}
		s := seq[dir] + uint32(int8(op[4]))*97
		if op[5]&0x80 != 0 {
			s = binary.LittleEndian.Uint32(op[4:]) // anywhere
		}
		a := seq[1-dir] + uint32(int8(op[6]))*89
		udp := op[7]&0x40 != 0
		cli, srv := netip.AddrFrom4([4]byte{10, 0, 0, 1}), netip.AddrFrom4([4]byte{10, 0, 0, 2})
		sp, dp := uint16(40000), port
		if dir == 1 {
			cli, srv = srv, cli
			sp, dp = dp, sp
		}
		fr := testframe.Frame{IPv4: &testframe.IPv4{Src: cli, Dst: srv}, Payload: payload}
		if udp {
			fr.UDP = &testframe.UDP{SrcPort: sp, DstPort: dp}
		} else {
			fl := op[7]
			fr.TCP = &testframe.TCP{SrcPort: sp, DstPort: dp, Seq: s, Ack: a,
				Flags: testframe.TCPFlags(fl) & (testframe.FIN | testframe.SYN | testframe.RST | testframe.PSH | testframe.ACK), Window: uint16(op[3]) << 4}
			if fl&2 == 0 && fl&4 == 0 {
				seq[dir] = s + uint32(len(payload))
			}
		}
		src.ts = append(src.ts, ts)
		src.frames = append(src.frames, fr.Bytes())
	}
	return src
}

// FuzzAnalyzer drives the worker and its Analyzer with arbitrary TCP and
// UDP conversations on the decoders' ports: out-of-order, overlapping and
// lost segments, resets, repeated SYNs, long silences. It must never panic
// (the worker would return a *PanicError), and every record it emits must
// be consistent.
func FuzzAnalyzer(f *testing.F) {
	f.Add([]byte("\x00\x10\x01\x00\x00\x00\x00\x02GET / HTTP/1.1\r\nHost: x\r\n\r\n\x01\x10\x01\x00\x00\x00\x00\x18HTTP/1.1 200 OK\r\n\r\n"))
	f.Add([]byte("\x06\x08\x01\x00\x00\x00\x00\x10*1\r\n$4\r\nPING\r\n\x07\x07\x01\x00\x00\x00\x00\x18+PONG\r\n"))
	f.Add(make([]byte, 200))
	cfg := analytics.DefaultConfig()
	cfg.MaxConnBuffer = 512 // reach the reassembly limits with small inputs
	cfg.MaxRefs = 8
	f.Fuzz(func(t *testing.T, in []byte) {
		src := fuzzFrames(t, in)
		var recs int
		an := analytics.NewAnalyzer(cfg, func(r *analytics.Record) bool {
			recs++
			if r.ID == 0 || r.Proto == "" {
				t.Fatalf("record without ID or proto: %+v", r)
			}
			if len(r.Packets) > cfg.MaxRefs {
				t.Fatalf("record with %d refs, limit %d", len(r.Packets), cfg.MaxRefs)
			}
			if r.RespLast != 0 && r.RespFirst > r.RespLast || r.ReqLast != 0 && r.ReqFirst > r.ReqLast {
				t.Fatalf("record times out of order: %+v", r)
			}
			return true
		})
		w := workers.NewWorker(workers.Config{
			Pool:     block.NewPool(2, 64<<10, 64),
			Sink:     new(releaseSink),
			Analyzer: an,
			RunID:    1,
			MaxFlows: 64,
		})
		var stop atomic.Bool
		if err := w.Run(src, &stop); err != nil {
			t.Fatal(err)
		}
		if b := an.Stats().Buffered.Load(); b != 0 {
			t.Fatalf("%d bytes still held for reassembly after the end", b)
		}
	})
}
