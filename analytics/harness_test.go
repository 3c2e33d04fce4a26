package analytics

import (
	"slices"
	"testing"
)

// testStream is a Stream for parser unit tests: it feeds chunks to a parser
// the way the Analyzer does and records what the parser reports. Each
// chunk is one "packet" (numbered from 1, with TS = its number * 1000).
// Message.Bytes is computed from the Begin/End offsets; Pkts lists the
// packet numbers (as PktRef.Ord) that carried the message's bytes.
type testStream struct {
	t    testing.TB
	cfg  Config
	ts   int64
	pkt  uint32
	side Side
	n    int // length of the current chunk
	open [2][]*Message
	off  [2]int64 // stream offset of the current chunk's first byte
	last [2]int64 // timestamp of the last chunk of each side

	Exchanges [][2]*Message
	Discarded []*Message
}

func newTestStream(t testing.TB) *testStream {
	return &testStream{t: t, cfg: DefaultConfig()}
}

var _ Stream = (*testStream)(nil)

// Feed gives one chunk of side s to p as the next packet.
func (st *testStream) Feed(p Parser, s Side, b []byte) {
	st.pkt++
	st.ts = int64(st.pkt) * 1000
	st.side, st.n = s, len(b)
	for _, m := range st.open[s] {
		m.Pkts = append(m.Pkts, PktRef{Block: 1, Ord: st.pkt})
	}
	// The parser must not keep b: scribble over a copy after the call.
	c := append([]byte(nil), b...)
	p.Data(s, c, st)
	for i := range c {
		c[i] = 0xA5
	}
	st.off[s] += int64(len(b))
	st.last[s] = st.ts
	st.side, st.n = 2, 0 // no Data call in progress
}

// FeedGap reports n lost bytes of side s.
func (st *testStream) FeedGap(p Parser, s Side, n int) {
	for _, m := range st.open[s] {
		m.Gap = true
	}
	p.Gap(s, n, st)
	st.off[s] += int64(n)
}

func (st *testStream) Begin(s Side, off int) *Message {
	if s != st.side {
		st.t.Fatalf("Begin(%v) during a Data call of side %v", s, st.side)
	}
	if off < 0 || off > st.n {
		st.t.Fatalf("Begin offset %d outside chunk of %d", off, st.n)
	}
	m := &Message{Side: s, FirstTS: st.ts, Pkts: []PktRef{{Block: 1, Ord: st.pkt}}}
	m.startOff = uint64(st.off[s] + int64(off))
	st.open[s] = append(st.open[s], m)
	return m
}

func (st *testStream) End(m *Message, off int) {
	if m.Ended {
		st.t.Fatalf("End of a message already ended")
	}
	m.Ended = true
	if off == -1 {
		m.LastTS = st.last[m.Side]
		m.endOff = uint64(st.off[m.Side])
	} else {
		if m.Side != st.side {
			st.t.Fatalf("End of a %v message during a Data call of side %v", m.Side, st.side)
		}
		if off < 0 || off > st.n {
			st.t.Fatalf("End offset %d outside chunk of %d", off, st.n)
		}
		m.LastTS = st.ts
		m.endOff = uint64(st.off[m.Side] + int64(off))
	}
	m.Bytes = int64(m.endOff - m.startOff)
	st.drop(m)
}

func (st *testStream) drop(m *Message) {
	o := st.open[m.Side]
	for i, x := range o {
		if x == m {
			st.open[m.Side] = append(o[:i], o[i+1:]...)
			return
		}
	}
}

func (st *testStream) Exchange(req, resp *Message) {
	if req == nil && resp == nil {
		st.t.Fatalf("Exchange(nil, nil)")
	}
	if req != nil && !req.Ended || resp != nil && !resp.Ended {
		st.t.Fatalf("Exchange of a message not ended")
	}
	for _, m := range [2]*Message{req, resp} {
		if m == nil {
			continue
		}
		for _, f := range m.Fields {
			if !declaredField(f.Key) {
				st.t.Errorf("field %q is in no decoder's Fields (Decoder.Fields): the query language would reject it", f.Key)
			}
		}
	}
	st.Exchanges = append(st.Exchanges, [2]*Message{req, resp})
}

// declaredField reports whether a registered decoder declares key.
func declaredField(key string) bool {
	for _, d := range registry {
		if slices.Contains(d.Fields, key) {
			return true
		}
	}
	return false
}

func (st *testStream) Discard(m *Message) {
	st.drop(m)
	st.Discarded = append(st.Discarded, m)
}

func (st *testStream) TS() int64       { return st.ts }
func (st *testStream) Config() *Config { return &st.cfg }

// field returns m's field key as text, or "" (m may be nil).
func field(m *Message, key string) string {
	if m == nil {
		return ""
	}
	f, ok := m.Get(key)
	if !ok {
		return ""
	}
	return f.Value()
}
