package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"tapvault/analytics"
	"tapvault/msgstore"
)

// RecordQueueLen is how many records may wait between the workers'
// analyzers and the record stage. A worker never waits: when the queue is
// full the record is counted as dropped (records_dropped{stage="queue"}).
const RecordQueueLen = 1 << 16

// DefaultRecordQueueBytes is Options.RecordQueueBytes' default: the memory
// the records waiting in the queue may hold (recordBytes each). A record
// lists up to analytics.Config.MaxRefs packet refs (32 KiB at 4096), so
// RecordQueueLen alone would allow gigabytes; most records take ~500 bytes,
// and 32 MiB then hold the full RecordQueueLen.
const DefaultRecordQueueBytes = 32 << 20

// recordBytes is the memory a record holds, as the record queue counts it.
func recordBytes(r *analytics.Record) int64 {
	n := int64(unsafe.Sizeof(*r)) + int64(cap(r.Packets))*int64(unsafe.Sizeof(analytics.PktRef{})) +
		int64(cap(r.Fields))*int64(unsafe.Sizeof(analytics.Field{}))
	for i := range r.Fields {
		n += int64(len(r.Fields[i].Str))
	}
	return n
}

// LatencyBuckets are the upper bounds, in seconds, of the message latency
// histograms: 10 µs to 30 s.
var LatencyBuckets = []float64{1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// MaxServerLabels bounds the distinct server label values per protocol in
// the latency histograms; further servers share the value "other".
const MaxServerLabels = 200

// recordStage takes the records of every worker's analyzer, feeds the
// latency metrics, and appends them to the message store. The metrics never
// wait for the store: a store that fails (disk full) loses records, counted,
// while the metrics go on.
type recordStage struct {
	ch  chan *analytics.Record
	ms  *msgstore.Writer // nil: records are not stored (metrics only)
	log *slog.Logger

	hist    *prometheus.HistogramVec   // proto, server, part
	count   *prometheus.CounterVec     // proto, class
	servers map[string]map[string]bool // server label values per protocol; the stage's goroutine only
	// obs caches the histogram children per protocol and server label,
	// and cls the counters per protocol and class: WithLabelValues hashes
	// its labels on every call, which was most of the stage's per-record
	// cost. Only the stage's goroutine uses them.
	obs      map[[2]string]*[3]prometheus.Observer
	cls      map[[2]string]prometheus.Counter
	received atomic.Uint64
	// tag, when set (SetRecordTagger), adds fields to each record before
	// it is observed and stored (the probes' name and location).
	tag      atomic.Pointer[func(*analytics.Record)]
	maxBytes int64        // bound of queued (the record queue's memory)
	queued   atomic.Int64 // recordBytes of the records in ch
	done     chan struct{}
}

func newRecordStage(ms *msgstore.Writer, maxBytes int64, log *slog.Logger) *recordStage {
	if maxBytes <= 0 {
		maxBytes = DefaultRecordQueueBytes
	}
	return &recordStage{
		maxBytes: maxBytes,
		ch:       make(chan *analytics.Record, RecordQueueLen),
		ms:       ms,
		log:      log,
		hist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tapvault_message_latency_seconds",
			Help:    "Latency of application exchanges by protocol and server: part=total is request last packet to response last packet, network the request's last packet to the server's ACK of it, server the request's last packet to the response's first.",
			Buckets: LatencyBuckets,
		}, []string{"proto", "server", "part"}),
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tapvault_messages_total",
			Help: "Application exchanges (and tcp connection records) by protocol and class.",
		}, []string{"proto", "class"}),
		servers: map[string]map[string]bool{},
		obs:     map[[2]string]*[3]prometheus.Observer{},
		cls:     map[[2]string]prometheus.Counter{},
		done:    make(chan struct{}),
	}
}

// emit is every analyzer's Emit: it never blocks. A record that would take
// the queue past maxBytes is refused like one finding it full (the analyzer
// counts it in records_dropped{stage="queue"}).
func (s *recordStage) emit(r *analytics.Record) bool {
	n := recordBytes(r)
	if s.queued.Add(n) > s.maxBytes {
		s.queued.Add(-n)
		return false
	}
	select {
	case s.ch <- r:
		return true
	default:
		s.queued.Add(-n)
		return false
	}
}

// run consumes records until the channel is closed, flushing the store's
// open frame every second so records become readable.
func (s *recordStage) run() {
	defer close(s.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	dirty := false
	for {
		select {
		case r, ok := <-s.ch:
			if !ok {
				s.flush(dirty)
				return
			}
			s.received.Add(1)
			s.queued.Add(-recordBytes(r))
			if tag := s.tag.Load(); tag != nil {
				(*tag)(r)
			}
			s.observe(r)
			if s.ms != nil {
				// The store counts what it loses (storeCounts); below its
				// free-space reserve it logs when that starts and ends.
				if err := s.ms.Append(r); err != nil {
					if !errors.Is(err, msgstore.ErrReserve) {
						s.log.Error("message store: record lost", "err", err)
					}
				} else {
					dirty = true
				}
			}
		case <-tick.C:
			s.flush(dirty)
			dirty = false
		}
	}
}

func (s *recordStage) flush(dirty bool) {
	if s.ms == nil || !dirty {
		return
	}
	if err := s.ms.Flush(); err != nil && !errors.Is(err, msgstore.ErrReserve) {
		s.log.Error("message store: flush failed; the open frame's records are lost", "err", err)
	}
}

// storeCounts returns the records the message store wrote in frames and
// those it lost: refused (codec limits), in a frame it could not write, or
// below its free-space reserve (records_dropped{stage="store"}).
func (s *recordStage) storeCounts() (stored, dropped uint64) {
	if s.ms == nil {
		return 0, 0
	}
	st := s.ms.Stats()
	return st.Records, st.Dropped + st.Rejected
}

// observe feeds the metrics.
func (s *recordStage) observe(r *analytics.Record) {
	ck := [2]string{r.Proto, r.Class}
	c := s.cls[ck]
	if c == nil {
		c = s.count.WithLabelValues(r.Proto, r.Class)
		s.cls[ck] = c
	}
	c.Inc()
	if r.Proto == "tcp" || r.RespLast == 0 || r.ReqLast == 0 {
		return
	}
	srv := s.serverLabel(r.Proto, r.Server.String())
	ok := [2]string{r.Proto, srv}
	o := s.obs[ok]
	if o == nil {
		o = &[3]prometheus.Observer{
			s.hist.WithLabelValues(r.Proto, srv, "total"),
			s.hist.WithLabelValues(r.Proto, srv, "network"),
			s.hist.WithLabelValues(r.Proto, srv, "server"),
		}
		s.obs[ok] = o
	}
	// The total carries the record's ID as an exemplar (OpenMetrics):
	// from a bucket of the histogram to the exchange, then its packets.
	v := float64(r.RespLast-r.ReqLast) / 1e9
	if eo, ok := o[0].(prometheus.ExemplarObserver); ok {
		eo.ObserveWithExemplar(v, prometheus.Labels{"id": fmt.Sprintf("%016x", r.ID)})
	} else {
		o[0].Observe(v)
	}
	if r.Network >= 0 {
		o[1].Observe(float64(r.Network) / 1e9)
	}
	if r.ServerTime >= 0 {
		o[2].Observe(float64(r.ServerTime) / 1e9)
	}
}

func (s *recordStage) serverLabel(proto, srv string) string {
	m := s.servers[proto]
	if m == nil {
		m = map[string]bool{}
		s.servers[proto] = m
	}
	if m[srv] {
		return srv
	}
	if len(m) >= MaxServerLabels {
		return "other"
	}
	m[srv] = true
	return srv
}

// close ends the stage after the workers have stopped: drain, flush,
// close the store.
func (s *recordStage) close() error {
	close(s.ch)
	<-s.done
	if s.ms != nil {
		return s.ms.Close()
	}
	return nil
}

// Describe and Collect make the stage a prometheus.Collector.
func (s *recordStage) Describe(ch chan<- *prometheus.Desc) {
	s.hist.Describe(ch)
	s.count.Describe(ch)
}

func (s *recordStage) Collect(ch chan<- prometheus.Metric) {
	s.hist.Collect(ch)
	s.count.Collect(ch)
}
