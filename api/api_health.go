package api

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"tapvault/msgstore"
	"tapvault/pipeline"
	"tapvault/query"
	"tapvault/writer"
)

// The store's health (pathHealth): now, over packet time from the store's
// own block headers (any window, however old), and over wall time from
// the samples this server took while it ran.
const (
	healthEvery   = 10 * time.Second
	healthSamples = 8640 // 24 h of samples
	// healthRetention is how many retention actions an answer lists (the
	// newest).
	healthRetention = 200
)

// healthSample is one sample of the store's health, taken every
// healthEvery while the server runs. The index lag and the time to
// queryable come from the capture's /metrics (tapvault_index_lag_blocks,
// tapvault_time_to_queryable_seconds); -1 where the server has none
// (tapvault serve).
type healthSample struct {
	AtNS         int64   `json:"at_ns"`
	Packets      uint64  `json:"packets"`
	SegmentBytes int64   `json:"segment_bytes"`
	IndexBytes   int64   `json:"index_bytes"`
	MessageBytes int64   `json:"message_bytes"`
	FsAvail      int64   `json:"fs_avail_bytes"`
	OldestNS     int64   `json:"oldest_ns"`
	NewestNS     int64   `json:"newest_ns"`
	IndexState   string  `json:"index_state"`
	IndexLag     float64 `json:"index_lag_blocks"`
	TTQp50       float64 `json:"time_to_queryable_p50_s"`
	TTQp99       float64 `json:"time_to_queryable_p99_s"`
}

// healthRing holds the samples, oldest first, at most healthSamples.
type healthRing struct {
	mu sync.Mutex
	s  []healthSample
}

func (h *healthRing) add(x healthSample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.s) >= healthSamples {
		h.s = append(h.s[:0], h.s[1:]...)
	}
	h.s = append(h.s, x)
}

func (h *healthRing) within(from, to int64) []healthSample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []healthSample{}
	for _, x := range h.s {
		if x.AtNS >= from && x.AtNS <= to {
			out = append(out, x)
		}
	}
	return out
}

// startHealth samples the health, at once and then every healthEvery,
// until ctx ends or the returned stop is called; stop returns once the
// sampler has stopped (so it never reads a store its owner has closed).
func (s *Server) startHealth(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(healthEvery)
		defer t.Stop()
		for {
			if s.store.R != nil {
				var x healthSample
				var err error
				query.RunLowPriority(func() { x, err = s.healthNow() })
				if err == nil {
					s.health.add(x)
				} else {
					s.log.Debug("api health sample", "err", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// fsAvail is the filesystem under dir: its size and the bytes available to
// unprivileged users (-1, -1 when unknown).
func fsAvail(dir string) (size, avail int64) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return -1, -1
	}
	return int64(fs.Blocks) * int64(fs.Bsize), int64(fs.Bavail) * int64(fs.Bsize)
}

// healthNow reads the health as it is now.
func (s *Server) healthNow() (healthSample, error) {
	x := healthSample{AtNS: s.now().UnixNano(), IndexLag: -1, TTQp50: -1, TTQp99: -1}
	st, err := s.store.Stats()
	if err != nil {
		return x, err
	}
	x.Packets, x.SegmentBytes, x.IndexBytes, x.IndexState = st.Packets, st.SegmentBytes, st.IndexBytes, st.IndexState
	if st.Packets > 0 {
		x.OldestNS, x.NewestNS = st.FirstNS, st.LastNS
	}
	x.MessageBytes = msgstore.Size(s.store.Dir)
	_, x.FsAvail = fsAvail(s.store.Dir)
	if m, ok := s.opts.Handlers["/metrics"]; ok {
		x.IndexLag, x.TTQp50, x.TTQp99 = scrapeIndexHealth(m)
	}
	return x, nil
}

// scrapeIndexHealth reads the index lag and the time to queryable's p50
// and p99 (the upper bound of the bucket holding the quantile, as
// histogram_quantile would bound it) from a /metrics handler in this
// process.
func scrapeIndexHealth(h http.Handler) (lag, p50, p99 float64) {
	lag, p50, p99 = -1, -1, -1
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return
	}
	type bucket struct{ le, n float64 }
	var bs []bucket
	sc := bufio.NewScanner(bytes.NewReader(rec.Body.Bytes()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "tapvault_index_lag_blocks "):
			lag, _ = strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "tapvault_index_lag_blocks ")), 64)
		case strings.HasPrefix(line, `tapvault_time_to_queryable_seconds_bucket{le="`):
			rest := strings.TrimPrefix(line, `tapvault_time_to_queryable_seconds_bucket{le="`)
			le, v, ok := strings.Cut(rest, `"} `)
			if !ok {
				continue
			}
			b := bucket{}
			if le == "+Inf" {
				b.le = math.Inf(1)
			} else if b.le, ok = parseFloat(le); !ok {
				continue
			}
			if b.n, ok = parseFloat(strings.Fields(v)[0]); !ok {
				continue
			}
			bs = append(bs, b)
		}
	}
	slices.SortFunc(bs, func(a, b bucket) int {
		switch {
		case a.le < b.le:
			return -1
		case a.le > b.le:
			return 1
		}
		return 0
	})
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return
	}
	q := func(p float64) float64 {
		want := p * bs[len(bs)-1].n
		for _, b := range bs {
			if b.n >= want {
				return b.le
			}
		}
		return math.Inf(1)
	}
	p50, p99 = q(0.5), q(0.99)
	if math.IsInf(p50, 1) {
		p50 = -1
	}
	if math.IsInf(p99, 1) {
		p99 = -1
	}
	return
}

func parseFloat(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// healthAnswer is the object of pathHealth.
type healthAnswer struct {
	Now       healthSample   `json:"now"`
	FsSize    int64          `json:"fs_size_bytes"`
	Messages  healthMsgs     `json:"messages"`
	Series    healthSeries   `json:"series"`
	Retention healthRetain   `json:"retention"`
	Samples   []healthSample `json:"samples"`
	SampleNS  int64          `json:"sample_every_ns"`
}

type healthMsgs struct {
	Files   int   `json:"files"`
	Records int64 `json:"records"`
	FirstNS int64 `json:"first_ns"`
	LastNS  int64 `json:"last_ns"`
}

// healthSeries is the store over packet time: per column, the blocks whose
// first packet falls in it, their packets, wire bytes and stored payload
// bytes (what the disk holds of that time).
type healthSeries struct {
	From        int64    `json:"from"`
	To          int64    `json:"to"`
	Step        int64    `json:"step"`
	Cols        int      `json:"cols"`
	Blocks      []int64  `json:"blocks"`
	Packets     []int64  `json:"packets"`
	WireBytes   []uint64 `json:"wire_bytes"`
	StoredBytes []uint64 `json:"stored_bytes"`
}

// healthRetain is what retention dropped: totals, and the newest actions
// (pipeline.RetentionAction, from the store's retention log).
type healthRetain struct {
	Segments     int                        `json:"segments"`
	MessageFiles int                        `json:"message_files"`
	Bytes        int64                      `json:"bytes"`
	Actions      []pipeline.RetentionAction `json:"actions"`
}

// handleHealth answers the store's health (healthAnswer): now (disk use,
// the retention horizon, the index state, and while capturing the index
// lag and the time to queryable), the store over packet time within
// [from, to] (default: all it holds) in cols columns from the block
// headers, what retention dropped, and this server's samples taken within
// [from, to] of wall time.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	p, err := s.parseParams(r, "from", "to", "cols")
	if err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	q, _ := parseQuery(r.URL.RawQuery)
	cols := defaultHeatmapCols
	if v := q["cols"]; len(v) == 1 {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > maxHeatmapCols {
			writeError(w, r, http.StatusBadRequest, "cols "+strconv.Quote(v[0])+": want a whole number from 1 to "+strconv.Itoa(maxHeatmapCols))
			return
		}
		cols = n
	}
	release, ok := s.acquire(w, r)
	if !ok {
		return
	}
	defer release()
	var a healthAnswer
	var blocks []writer.BlockMeta
	query.RunLowPriority(func() {
		if a.Now, err = s.healthNow(); err != nil {
			return
		}
		blocks, err = s.store.Blocks(p.req.From, p.req.To)
	})
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "health: "+err.Error())
		return
	}
	a.FsSize, _ = fsAvail(s.store.Dir)
	if files, err := msgstore.Files(s.store.Dir); err == nil {
		for _, f := range files {
			a.Messages.Files++
			a.Messages.Records += f.Records
			if f.MinTS != 0 && (a.Messages.FirstNS == 0 || f.MinTS < a.Messages.FirstNS) {
				a.Messages.FirstNS = f.MinTS
			}
			a.Messages.LastNS = max(a.Messages.LastNS, f.MaxTS)
		}
	}
	// The series: the window, or the span of the blocks.
	from, to := p.req.From, p.req.To
	if from == query.MinTime || to == query.MaxTime {
		lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
		for _, b := range blocks {
			lo, hi = min(lo, b.MinTS), max(hi, b.MaxTS)
		}
		if lo > hi {
			lo, hi = 0, 0
		}
		if from == query.MinTime {
			from = lo
		}
		if to == query.MaxTime {
			to = hi
		}
	}
	step := (to-from)/int64(cols) + 1
	ser := healthSeries{From: from, To: to, Step: step, Cols: cols,
		Blocks: make([]int64, cols), Packets: make([]int64, cols), WireBytes: make([]uint64, cols), StoredBytes: make([]uint64, cols)}
	for _, b := range blocks {
		t := max(b.MinTS, from) // a block that began before the window counts in its first column
		if t > to {
			continue
		}
		c := int((t - from) / step)
		ser.Blocks[c]++
		ser.Packets[c] += int64(b.Count)
		ser.WireBytes[c] += b.WireBytes
		ser.StoredBytes[c] += uint64(b.StoredLen)
	}
	a.Series = ser
	acts, err := pipeline.RetentionLog(s.store.Dir)
	if err != nil {
		s.log.Warn("api health: retention log", "err", err)
	}
	for _, x := range acts {
		if x.IsMessageFile() {
			a.Retention.MessageFiles++
		} else {
			a.Retention.Segments++
		}
		a.Retention.Bytes += x.Bytes
	}
	a.Retention.Actions = acts[max(0, len(acts)-healthRetention):]
	if a.Retention.Actions == nil {
		a.Retention.Actions = []pipeline.RetentionAction{}
	}
	a.Samples = s.health.within(p.req.From, p.req.To)
	a.SampleNS = int64(healthEvery)
	s.writeJSON(w, r, &a)
}
