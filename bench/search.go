package bench

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Drop causes: the keys of Drops, from the NIC inwards. A Trial may add
// causes of its own; reports list the known ones first, then the rest
// sorted.
const (
	DropIMissed     = "imissed"      // NIC: no RX descriptor free (the worker was late)
	DropRxNoMbuf    = "rx_nombuf"    // NIC: no mbuf in the mempool
	DropIErrors     = "ierrors"      // NIC: bad frames
	DropNoBuffer    = "no_buffer"    // block builder: no free block buffer
	DropWriterQueue = "writer_queue" // writer queue full
	DropIndexQueue  = "index_queue"  // index queue full
	DropDisk        = "disk"         // writer: blocks not written (disk full, write errors)
)

var dropOrder = []string{DropIMissed, DropRxNoMbuf, DropIErrors, DropNoBuffer, DropWriterQueue, DropIndexQueue, DropDisk}

// Drops counts lost packets by cause.
type Drops map[string]uint64

// Total is the sum over every cause.
func (d Drops) Total() uint64 {
	var n uint64
	for _, v := range d {
		n += v
	}
	return n
}

// Causes lists the causes present in d: the known ones in data-path
// order, then any others sorted.
func (d Drops) Causes() []string {
	return causeOrder(slices.Collect(maps.Keys(d)))
}

func causeOrder(keys []string) []string {
	var out []string
	for _, k := range dropOrder {
		if slices.Contains(keys, k) {
			out = append(out, k)
		}
	}
	var rest []string
	for _, k := range keys {
		if !slices.Contains(dropOrder, k) && !slices.Contains(rest, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// String gives the causes that lost packets, e.g. "imissed 12, no_buffer 3",
// or "0 drops".
func (d Drops) String() string {
	var parts []string
	for _, c := range d.Causes() {
		if d[c] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", c, d[c]))
		}
	}
	if len(parts) == 0 {
		return "0 drops"
	}
	return strings.Join(parts, ", ")
}

// TrialResult is what one trial at a fixed offered rate measured.
type TrialResult struct {
	OfferedPPS  float64            `json:"offered_pps"`      // rate the generator achieved
	ReceivedPPS float64            `json:"received_pps"`     // rate the capture received
	Offered     uint64             `json:"offered_packets"`  // packets sent; 0 if unknown
	Received    uint64             `json:"received_packets"` // packets the capture received
	Bytes       uint64             `json:"bytes"`            // wire bytes received
	Elapsed     time.Duration      `json:"elapsed_ns"`
	Drops       Drops              `json:"drops"`
	CPU         map[string]float64 `json:"cpu_seconds"` // CPU seconds by thread or stage
}

// Lost is the packets the trial lost: the counted drops, or, if more
// were offered than received and counted, that difference (RFC 2544
// counts frames offered against frames received, whatever the cause).
func (t *TrialResult) Lost() uint64 {
	n := t.Drops.Total()
	if t.Offered > t.Received && t.Offered-t.Received > n {
		n = t.Offered - t.Received
	}
	return n
}

// LossFraction is Lost over the packets offered, in [0, 1].
func (t *TrialResult) LossFraction() float64 {
	lost := float64(t.Lost())
	if lost == 0 {
		return 0
	}
	offered := float64(t.Offered)
	if offered == 0 {
		offered = float64(t.Received) + lost
	}
	return math.Min(lost/offered, 1)
}

// Gbps is the received wire rate in gigabits per second.
func (t *TrialResult) Gbps() float64 {
	if t.Elapsed <= 0 {
		return 0
	}
	return float64(t.Bytes) * 8 / t.Elapsed.Seconds() / 1e9
}

// Trial offers traffic at rate packets per second for the trial duration
// (see TrialDuration) and reports what happened. An error aborts the
// search; losing packets is not an error.
type Trial func(ctx context.Context, rate float64) (TrialResult, error)

type durationKey struct{}

// TrialDuration is the trial length SearchLossFree asks of a Trial, from
// the context it passes; 0 if ctx did not come from a search.
func TrialDuration(ctx context.Context) time.Duration {
	d, _ := ctx.Value(durationKey{}).(time.Duration)
	return d
}

// SearchOptions configure a loss-free rate search.
type SearchOptions struct {
	Kind       string        // traffic kind or packet size searched, e.g. "udp64"; labels the result
	MaxRate    float64       // pps: the first trial and upper bound, e.g. the measured maximum-speed rate
	MinRate    float64       // pps: the lowest rate tried; default MaxRate/1000
	Duration   time.Duration // of each trial; default 10 s
	Resolution float64       // stop when the passing and failing rates are within this fraction; default 0.01
	MinStep    float64       // pps: also stop when they are within this many pps; default 0
	MaxTrials  int           // default 20
	MaxLoss    float64       // fraction of offered packets a trial may lose and pass; 0 is RFC 2544's zero loss
}

// Search outcomes.
const (
	OutcomeConverged = "converged"  // passing and failing rates within the resolution
	OutcomeMaxRate   = "max_rate"   // the maximum rate passed: the loss-free rate is at least MaxRate
	OutcomeAllLose   = "all_lose"   // even MinRate lost packets
	OutcomeMaxTrials = "max_trials" // the trial budget ran out before convergence
)

// TrialRecord is one trial of a search.
type TrialRecord struct {
	N    int     `json:"n"`        // 1-based
	Rate float64 `json:"rate_pps"` // the rate asked for
	Pass bool    `json:"pass"`
	Loss float64 `json:"loss"` // fraction of offered packets lost
	TrialResult
}

// SearchResult is the outcome of SearchLossFree.
type SearchResult struct {
	Kind       string        `json:"kind"`
	MaxRate    float64       `json:"max_rate_pps"`
	MinRate    float64       `json:"min_rate_pps"`
	Duration   time.Duration `json:"trial_duration_ns"`
	Resolution float64       `json:"resolution"`
	MinStep    float64       `json:"min_step_pps"`
	MaxTrials  int           `json:"max_trials"`
	MaxLoss    float64       `json:"max_loss"`

	Outcome      string  `json:"outcome"`
	LossFreePPS  float64 `json:"loss_free_pps"`   // highest passing rate asked for; 0 if none passed
	LossFreeGbps float64 `json:"loss_free_gbps"`  // wire rate received in that trial
	LowestFail   float64 `json:"lowest_fail_pps"` // lowest failing rate asked for; 0 if none failed

	Trials []TrialRecord `json:"trials"`
}

// TrialProgress reports a trial starting (Done false) or ending.
type TrialProgress struct {
	Kind   string
	N, Max int     // trial number (1-based) and the trial budget
	Rate   float64 // pps asked for
	Done   bool
	Pass   bool
	Result *TrialResult // set when Done
}

// String formats p for a terminal, e.g.
// "udp64 trial 4/12: 1.250 Mpps ... 0 drops (pass)".
func (p TrialProgress) String() string {
	var b strings.Builder
	if p.Kind != "" {
		b.WriteString(p.Kind + " ")
	}
	fmt.Fprintf(&b, "trial %d/%d: %.3f Mpps", p.N, p.Max, p.Rate/1e6)
	if !p.Done || p.Result == nil {
		b.WriteString(" ...")
		return b.String()
	}
	r := p.Result
	verdict := "fail"
	if p.Pass {
		verdict = "pass"
	}
	fmt.Fprintf(&b, " ... offered %.3f Mpps, received %.3f Mpps, lost %d (%.4f%%): %s (%s)",
		r.OfferedPPS/1e6, r.ReceivedPPS/1e6, r.Lost(), 100*r.LossFraction(), r.Drops, verdict)
	return b.String()
}

// SearchLossFree finds the highest rate at which a trial loses nothing,
// the way RFC 2544 (section 26.1) measures throughput: the first trial
// runs at opts.MaxRate; after that each trial bisects between the highest
// rate that passed and the lowest that failed, until they are within
// opts.Resolution (or opts.MinStep pps) of each other, or opts.MaxTrials
// trials have run. While nothing has passed, the lower end is 0 and the
// rate halves, down to opts.MinRate.
//
// Every trial is recorded, for the rate-versus-loss curve. progress, if
// not nil, is called as each trial starts and ends. A trial error or a
// cancelled ctx ends the search: the result so far is returned with the
// error.
func SearchLossFree(ctx context.Context, opts SearchOptions, trial Trial, progress func(TrialProgress)) (SearchResult, error) {
	if opts.MaxRate <= 0 || math.IsInf(opts.MaxRate, 0) || math.IsNaN(opts.MaxRate) {
		return SearchResult{}, fmt.Errorf("loss-free search: max rate %v pps: want a positive rate", opts.MaxRate)
	}
	if opts.MinRate <= 0 {
		opts.MinRate = opts.MaxRate / 1000
	}
	if opts.MinRate > opts.MaxRate {
		return SearchResult{}, fmt.Errorf("loss-free search: min rate %v pps above max rate %v pps", opts.MinRate, opts.MaxRate)
	}
	if opts.Duration <= 0 {
		opts.Duration = 10 * time.Second
	}
	if opts.Resolution <= 0 {
		opts.Resolution = 0.01
	}
	if opts.MaxTrials <= 0 {
		opts.MaxTrials = 20
	}
	res := SearchResult{
		Kind: opts.Kind, MaxRate: opts.MaxRate, MinRate: opts.MinRate, Duration: opts.Duration,
		Resolution: opts.Resolution, MinStep: opts.MinStep, MaxTrials: opts.MaxTrials, MaxLoss: opts.MaxLoss,
	}
	if progress == nil {
		progress = func(TrialProgress) {}
	}
	tctx := context.WithValue(ctx, durationKey{}, opts.Duration)

	var pass, fail float64 // highest passing, lowest failing rate; 0 = none yet
	var passGbps float64
	minTried := false
	for {
		var rate float64
		switch {
		case len(res.Trials) == 0:
			rate = opts.MaxRate
		case fail == 0:
			res.Outcome = OutcomeMaxRate // only reached if MaxRate passed
		case pass > 0 && fail-pass <= max(opts.Resolution*fail, opts.MinStep):
			res.Outcome = OutcomeConverged
		case pass == 0 && minTried:
			res.Outcome = OutcomeAllLose
		default:
			rate = (pass + fail) / 2
			if pass == 0 && rate <= opts.MinRate {
				rate = opts.MinRate
			}
		}
		if res.Outcome != "" {
			break
		}
		if len(res.Trials) >= opts.MaxTrials {
			res.Outcome = OutcomeMaxTrials
			break
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("loss-free search %s: %w", opts.Kind, err)
		}
		n := len(res.Trials) + 1
		progress(TrialProgress{Kind: opts.Kind, N: n, Max: opts.MaxTrials, Rate: rate})
		tr, err := trial(tctx, rate)
		if err != nil {
			return res, fmt.Errorf("loss-free search %s: trial %d at %.0f pps: %w", opts.Kind, n, rate, err)
		}
		loss := tr.LossFraction()
		ok := tr.Lost() == 0 || (opts.MaxLoss > 0 && loss <= opts.MaxLoss)
		res.Trials = append(res.Trials, TrialRecord{N: n, Rate: rate, Pass: ok, Loss: loss, TrialResult: tr})
		progress(TrialProgress{Kind: opts.Kind, N: n, Max: opts.MaxTrials, Rate: rate, Done: true, Pass: ok, Result: &res.Trials[n-1].TrialResult})
		if rate == opts.MinRate {
			minTried = true
		}
		// Every rate after the first lies strictly between pass and
		// fail, so a noisy device cannot cross them: the bracket only
		// narrows.
		if ok {
			pass, passGbps = rate, tr.Gbps()
		} else {
			fail = rate
		}
	}
	res.LossFreePPS, res.LossFreeGbps, res.LowestFail = pass, passGbps, fail
	return res, nil
}
