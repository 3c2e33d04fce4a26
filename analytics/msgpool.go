package analytics

import "hash/maphash"

// newMessage takes a message from the free list: messages are per
// exchange, and reusing them (with their Pkts and Fields) keeps the
// allocations per exchange to the record's own.
func (a *Analyzer) newMessage() *Message {
	if n := len(a.msgs); n > 0 {
		m := a.msgs[n-1]
		a.msgs = a.msgs[:n-1]
		m.freed = false
		return m
	}
	return &Message{Pkts: make([]PktRef, 0, 4), Fields: make([]Field, 0, 8)}
}

// freeMessage returns m to the free list. The parser handed it over
// (Exchange, Discard) and must not touch it again; it is cleared so that a
// parser that does sees an empty message, not another exchange's.
func (a *Analyzer) freeMessage(m *Message) {
	if m == nil || m.freed || len(a.msgs) >= 4096 {
		return // a second Discard of one message must not list it twice
	}
	if cap(m.Pkts) > 256 {
		m.Pkts = nil // do not keep a big response's refs alive
	}
	*m = Message{Pkts: m.Pkts[:0], Fields: clearFields(m.Fields), freed: true}
	a.msgs = append(a.msgs, m)
}

// lastString is the last text a parser gave a field, for reuse: the
// requests of one connection repeat their host, content type, statement,
// key or tag, and a repeat costs no allocation.
type lastString struct{ s string }

// of returns b as a string: the previous one when the bytes are the same,
// else t's (which may be nil).
func (l *lastString) of(b []byte, t *textCache) string {
	if string(b) != l.s { // compared without a copy
		l.s = t.of(b)
	}
	return l.s
}

// textCache holds the recent field texts of all the parsers of one
// analyzer, direct-mapped by a hash of their bytes: connections to one
// service repeat hosts, content types, statements, tags and names that a
// connection's own lastString has not seen yet (on the app trace, 11k
// connections a run made about a fifth of the analyzer's allocations). It
// bounds what it keeps alive to textCacheSize strings of at most
// textCacheMax bytes. The analyzer gives its parsers the cache (usesText).
type textCache struct {
	seed maphash.Seed
	e    [textCacheSize]string
}

const (
	textCacheSize = 1024 // a power of two
	textCacheMax  = 256
)

// usesText is a parser that takes its field texts through a textCache.
type usesText interface{ useText(*textCache) }

// of returns b as a string: the cached one when the bytes are the same. A
// nil t (a parser used without an analyzer) allocates each time.
func (t *textCache) of(b []byte) string {
	if t == nil || len(b) > textCacheMax {
		return string(b)
	}
	e := &t.e[maphash.Bytes(t.seed, b)&(textCacheSize-1)]
	if *e != string(b) {
		*e = string(b)
	}
	return *e
}

func clearFields(f []Field) []Field {
	clear(f)
	return f[:0]
}

// spareBufMax is the largest buffer a spare parser keeps (keepBytes): its
// buffers stay small, while those of one that held a header block up to
// MaxHeader go.
const spareBufMax = 4 << 10

// keepBytes empties b for reuse, or drops it when its capacity is over
// limit.
func keepBytes(b []byte, limit int) []byte {
	if cap(b) > limit {
		return nil
	}
	return b[:0]
}
