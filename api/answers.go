package api

import (
	"net/http"
	"os"
	"strconv"
	"sync"

	"tapvault/msgstore"
)

// answers keeps the last answers of the endpoints that read every message
// record of a window (tiers, diagnose, latency series, heatmap, latency,
// exchanges pages), each with
// the state of the message store it was computed from. A request whose
// parameters (times resolved) and store state are those of a kept answer
// gets it without a scan: on the 1.1M-record store a diagnosis costs about
// 2 s of CPU, its repeat a few milliseconds (docs/PERFORMANCE.md, issue
// 13). The store's state is its message files' sequence numbers, sizes,
// modification times and sealed state: a writer appending a frame, sealing
// a file or starting one, and retention dropping one, each change it, so
// an answer is never served for records it did not see. While capturing,
// the store changes every second and nearly every request is computed.
//
// It is one per process (keys carry the store's directory), bounded by
// answerEntries answers and answerBytes bytes, the least recently used
// going first.
var answers = newAnswerCache(answerEntries, answerBytes)

const (
	answerEntries = 64
	answerBytes   = 16 << 20
)

type answerCache struct {
	mu         sync.Mutex
	maxEntries int
	maxBytes   int
	bytes      int
	tick       uint64
	hits       uint64 // answers served from here (tests read it)
	m          map[string]*answer
}

type answer struct {
	state string // storeState when computed
	ctype string
	body  []byte
	used  uint64 // tick of the last use: the least recent goes first
}

func newAnswerCache(entries, bytes int) *answerCache {
	return &answerCache{maxEntries: entries, maxBytes: bytes, m: map[string]*answer{}}
}

// get returns the answer kept for key computed from state, if any.
func (c *answerCache) get(key, state string) (ctype string, body []byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.m[key]
	if a == nil || a.state != state {
		return "", nil, false
	}
	c.tick++
	c.hits++
	a.used = c.tick
	return a.ctype, a.body, true
}

// put keeps body as the answer for key computed from state (body is not
// copied: the caller must not change it).
func (c *answerCache) put(key, state, ctype string, body []byte) {
	if len(body) > c.maxBytes/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[key]; old != nil {
		c.bytes -= len(old.body)
		delete(c.m, key)
	}
	for len(c.m) >= c.maxEntries || c.bytes+len(body) > c.maxBytes {
		var oldest string
		var at uint64
		for k, a := range c.m {
			if oldest == "" || a.used < at {
				oldest, at = k, a.used
			}
		}
		c.bytes -= len(c.m[oldest].body)
		delete(c.m, oldest)
	}
	c.tick++
	c.m[key] = &answer{state: state, ctype: ctype, body: body, used: c.tick}
	c.bytes += len(body)
}

// storeState describes the message files of the store at dir: for each,
// its sequence number, size, modification time and whether it is sealed.
// ok is false when it cannot be read whole (then nothing is kept).
func storeState(dir string) (state string, ok bool) {
	files, err := msgstore.Files(dir)
	if err != nil {
		return "", false
	}
	b := []byte(dir)
	for _, f := range files {
		st, err := os.Stat(f.Path)
		if err != nil || f.Err != nil {
			return "", false
		}
		b = append(b, '|')
		b = strconv.AppendUint(b, f.Seq, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, st.Size(), 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, st.ModTime().UnixNano(), 10)
		b = append(b, ' ')
		b = strconv.AppendBool(b, f.Sealed)
	}
	return string(b), true
}

// answerKey joins an endpoint's resolved parameters into a key, each
// prefixed with its length so that no two lists give the same key.
func answerKey(parts ...string) string {
	var b []byte
	for _, p := range parts {
		b = strconv.AppendInt(b, int64(len(p)), 10)
		b = append(append(b, ':'), p...)
	}
	return string(b)
}

func i64(v int64) string { return strconv.FormatInt(v, 10) }

// cachedAnswer writes the kept answer for key when the store is still in
// the state it was computed from, and says whether it did. Otherwise it
// returns the store's state now, for keep (read before the scan, so a
// change during it makes the answer's state older, never newer, than its
// records).
func (s *Server) cachedAnswer(w http.ResponseWriter, key string) (state string, done bool) {
	state, ok := storeState(s.store.Dir)
	if !ok {
		return "", false
	}
	if ctype, b, ok := answers.get(key, state); ok {
		s.writeBytes(w, ctype, b)
		return state, true
	}
	return state, false
}

// keep writes the answer and keeps it for key, unless the store's state
// could not be read or part of the store was skipped as damaged (its
// warnings are then logged again by the next request).
func (s *Server) keep(w http.ResponseWriter, key, state, ctype string, b []byte, warnings int) {
	if state != "" && warnings == 0 {
		answers.put(key, state, ctype, b)
	}
	s.writeBytes(w, ctype, b)
}
