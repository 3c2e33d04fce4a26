package bench

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// fakeDevice drops whatever is offered above its capacity, which varies
// per trial by up to ±noise (a fraction) when noise > 0.
type fakeDevice struct {
	capacity float64
	noise    float64
	rng      *rand.Rand
	rates    []float64
	durs     []time.Duration
}

func (d *fakeDevice) trial(ctx context.Context, rate float64) (TrialResult, error) {
	d.rates = append(d.rates, rate)
	dur := TrialDuration(ctx)
	d.durs = append(d.durs, dur)
	c := d.capacity
	if d.noise > 0 {
		c *= 1 + d.noise*(2*d.rng.Float64()-1)
	}
	secs := dur.Seconds()
	offered := uint64(rate * secs)
	received := offered
	if rate > c {
		received = uint64(c * secs)
	}
	return TrialResult{
		OfferedPPS:  rate,
		ReceivedPPS: float64(received) / secs,
		Offered:     offered,
		Received:    received,
		Bytes:       received * 64,
		Elapsed:     dur,
		Drops:       Drops{DropIMissed: offered - received},
		CPU:         map[string]float64{"worker": secs * 0.9},
	}, nil
}

func TestSearchConverges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity float64
		noise    float64
		res      float64
	}{
		{"exact", 1_234_567, 0, 0.01},
		{"exact-fine", 3_300_000, 0, 0.001},
		{"noisy", 1_234_567, 0.002, 0.01},
		{"noisy-low", 45_000, 0.003, 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := &fakeDevice{capacity: tc.capacity, noise: tc.noise, rng: rand.New(rand.NewPCG(1, 2))}
			var starts, ends int
			opts := SearchOptions{Kind: "udp64", MaxRate: 10e6, Resolution: tc.res, MaxTrials: 40, Duration: time.Second}
			res, err := SearchLossFree(context.Background(), opts, dev.trial, func(p TrialProgress) {
				if p.Done {
					ends++
				} else {
					starts++
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != OutcomeConverged {
				t.Fatalf("got outcome %q, want %q", res.Outcome, OutcomeConverged)
			}
			tol := tc.capacity * (tc.res + tc.noise)
			if d := math.Abs(res.LossFreePPS - tc.capacity); d > tol {
				t.Errorf("got loss-free %.0f pps, want within %.0f of %.0f", res.LossFreePPS, tol, tc.capacity)
			}
			if tc.noise == 0 && res.LossFreePPS > tc.capacity {
				t.Errorf("got loss-free %.0f pps, above capacity %.0f", res.LossFreePPS, tc.capacity)
			}
			if res.LowestFail-res.LossFreePPS > tc.res*res.LowestFail {
				t.Errorf("got bracket %.0f..%.0f, want within %v", res.LossFreePPS, res.LowestFail, tc.res)
			}
			if len(res.Trials) != len(dev.rates) || starts != len(dev.rates) || ends != len(dev.rates) {
				t.Errorf("got %d trials recorded, %d starts, %d ends, want %d each", len(res.Trials), starts, ends, len(dev.rates))
			}
			if dev.rates[0] != opts.MaxRate {
				t.Errorf("got first rate %.0f, want max rate %.0f", dev.rates[0], opts.MaxRate)
			}
			for i, tr := range res.Trials {
				if tr.N != i+1 || tr.Rate != dev.rates[i] {
					t.Errorf("trial %d: got n %d rate %.0f, want n %d rate %.0f", i, tr.N, tr.Rate, i+1, dev.rates[i])
				}
				if tr.Pass != (tr.Drops.Total() == 0) {
					t.Errorf("trial %d: got pass %v with %d drops", tr.N, tr.Pass, tr.Drops.Total())
				}
				if dev.durs[i] != time.Second {
					t.Errorf("trial %d: got duration %s from the context, want 1s", tr.N, dev.durs[i])
				}
				if tc.noise == 0 && tr.Pass && tr.Rate > res.LossFreePPS {
					t.Errorf("trial %d passed at %.0f, above the reported %.0f", tr.N, tr.Rate, res.LossFreePPS)
				}
			}
		})
	}
}

func TestSearchMaxTrials(t *testing.T) {
	dev := &fakeDevice{capacity: 1e6}
	res, err := SearchLossFree(context.Background(), SearchOptions{MaxRate: 10e6, MaxTrials: 3, Duration: time.Millisecond}, dev.trial, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dev.rates) != 3 || len(res.Trials) != 3 {
		t.Fatalf("got %d trials run, %d recorded, want 3", len(dev.rates), len(res.Trials))
	}
	if res.Outcome != OutcomeMaxTrials {
		t.Errorf("got outcome %q, want %q", res.Outcome, OutcomeMaxTrials)
	}
	// 10M fails, 5M fails, 2.5M fails: nothing passed yet.
	if res.LossFreePPS != 0 || res.LowestFail != 2.5e6 {
		t.Errorf("got pass %.0f fail %.0f, want 0 and 2500000", res.LossFreePPS, res.LowestFail)
	}
}

func TestSearchMaxRatePasses(t *testing.T) {
	dev := &fakeDevice{capacity: 20e6}
	res, err := SearchLossFree(context.Background(), SearchOptions{MaxRate: 10e6, Duration: time.Millisecond}, dev.trial, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dev.rates) != 1 || res.Outcome != OutcomeMaxRate || res.LossFreePPS != 10e6 || res.LowestFail != 0 {
		t.Errorf("got %d trials, outcome %q, loss-free %.0f, fail %.0f; want 1, %q, 10000000, 0",
			len(dev.rates), res.Outcome, res.LossFreePPS, res.LowestFail, OutcomeMaxRate)
	}
	if want := 10e6 * 64 * 8 / 1e9; math.Abs(res.LossFreeGbps-want) > 1e-6 {
		t.Errorf("got %.4f Gbps, want %.4f", res.LossFreeGbps, want)
	}
}

func TestSearchAllLose(t *testing.T) {
	dev := &fakeDevice{capacity: 100} // below MinRate
	opts := SearchOptions{MaxRate: 1e6, MinRate: 1000, Duration: time.Second}
	res, err := SearchLossFree(context.Background(), opts, dev.trial, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != OutcomeAllLose || res.LossFreePPS != 0 {
		t.Fatalf("got outcome %q loss-free %.0f, want %q 0", res.Outcome, res.LossFreePPS, OutcomeAllLose)
	}
	if last := dev.rates[len(dev.rates)-1]; last != 1000 {
		t.Errorf("got last rate %.0f, want min rate 1000", last)
	}
	// 1e6 halves to 1953.125 after 9 halvings, then the min rate: 11 trials.
	if len(dev.rates) != 11 {
		t.Errorf("got %d trials, want 11 (%v)", len(dev.rates), dev.rates)
	}
	for _, tr := range res.Trials {
		if tr.Pass {
			t.Errorf("trial %d at %.0f passed", tr.N, tr.Rate)
		}
	}
}

func TestSearchMinStep(t *testing.T) {
	dev := &fakeDevice{capacity: 700_000}
	res, err := SearchLossFree(context.Background(), SearchOptions{MaxRate: 1e6, Resolution: 1e-9, MinStep: 100_000, Duration: time.Second}, dev.trial, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 1M fail, 500k pass, 750k fail, 625k pass, 687.5k pass: 62.5k apart.
	if res.Outcome != OutcomeConverged || len(res.Trials) != 5 || res.LossFreePPS != 687_500 {
		t.Errorf("got %q after %d trials at %.0f, want converged after 5 at 687500", res.Outcome, len(res.Trials), res.LossFreePPS)
	}
}

func TestSearchTrialError(t *testing.T) {
	dev := &fakeDevice{capacity: 1e6}
	boom := errors.New("port went away")
	trial := func(ctx context.Context, rate float64) (TrialResult, error) {
		if len(dev.rates) == 2 {
			return TrialResult{}, boom
		}
		return dev.trial(ctx, rate)
	}
	res, err := SearchLossFree(context.Background(), SearchOptions{MaxRate: 10e6, Duration: time.Second}, trial, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("got error %v, want %v", err, boom)
	}
	if len(res.Trials) != 2 {
		t.Errorf("got %d trials recorded, want 2", len(res.Trials))
	}
}

func TestSearchCancelled(t *testing.T) {
	dev := &fakeDevice{capacity: 1e6}
	ctx, cancel := context.WithCancel(context.Background())
	trial := func(c context.Context, rate float64) (TrialResult, error) {
		cancel()
		return dev.trial(c, rate)
	}
	res, err := SearchLossFree(ctx, SearchOptions{MaxRate: 10e6, Duration: time.Second}, trial, nil)
	if !errors.Is(err, context.Canceled) || len(res.Trials) != 1 {
		t.Errorf("got %v after %d trials, want context.Canceled after 1", err, len(res.Trials))
	}
}

func TestSearchBadOptions(t *testing.T) {
	dev := &fakeDevice{capacity: 1e6}
	for _, o := range []SearchOptions{{}, {MaxRate: -1}, {MaxRate: math.Inf(1)}, {MaxRate: 10, MinRate: 20}} {
		if _, err := SearchLossFree(context.Background(), o, dev.trial, nil); err == nil {
			t.Errorf("options %+v: got no error", o)
		}
	}
	if len(dev.rates) != 0 {
		t.Errorf("got %d trials run, want 0", len(dev.rates))
	}
}

func TestSearchUnaccountedLossFails(t *testing.T) {
	// Nothing counted as dropped, but fewer received than offered.
	trial := func(ctx context.Context, rate float64) (TrialResult, error) {
		r := TrialResult{OfferedPPS: rate, Offered: 1000, Received: 1000, Elapsed: time.Second}
		if rate > 5e5 {
			r.Received = 999
		}
		return r, nil
	}
	res, err := SearchLossFree(context.Background(), SearchOptions{MaxRate: 1e6, Duration: time.Second}, trial, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Trials[0].Pass || res.Trials[0].Loss != 0.001 {
		t.Errorf("got pass %v loss %v, want fail with loss 0.001", res.Trials[0].Pass, res.Trials[0].Loss)
	}
	if res.LossFreePPS != 5e5 {
		t.Errorf("got loss-free %.0f, want 500000", res.LossFreePPS)
	}
}

func TestSearchMaxLoss(t *testing.T) {
	dev := &fakeDevice{capacity: 1e6}
	// 1% loss tolerated: 1.01M passes (0.99% lost), 1.25M does not.
	res, err := SearchLossFree(context.Background(), SearchOptions{MaxRate: 1.25e6, MaxLoss: 0.01, Resolution: 0.001, Duration: time.Second}, dev.trial, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.LossFreePPS < 1.005e6 || res.LossFreePPS > 1.0102e6 {
		t.Errorf("got %.0f pps at 1%% tolerated loss, want about 1010101", res.LossFreePPS)
	}
}

func TestTrialProgressString(t *testing.T) {
	r := &TrialResult{OfferedPPS: 1.25e6, ReceivedPPS: 1.2e6, Offered: 1250, Received: 1200, Drops: Drops{DropIMissed: 40, DropNoBuffer: 10}}
	for _, tc := range []struct {
		p    TrialProgress
		want []string
	}{
		{TrialProgress{Kind: "imix", N: 4, Max: 12, Rate: 1.25e6}, []string{"imix trial 4/12: 1.250 Mpps ..."}},
		{TrialProgress{N: 4, Max: 12, Rate: 1.25e6, Done: true, Result: r}, []string{"trial 4/12: 1.250 Mpps", "lost 50 (4.0000%)", "imissed 40, no_buffer 10", "(fail)"}},
		{TrialProgress{N: 1, Max: 20, Rate: 1e6, Done: true, Pass: true, Result: &TrialResult{}}, []string{"0 drops (pass)"}},
	} {
		got := tc.p.String()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("got %q, want it to contain %q", got, w)
			}
		}
	}
}

func TestDropsCauses(t *testing.T) {
	d := Drops{"zeta": 1, DropWriterQueue: 2, DropIMissed: 3, "alpha": 0}
	got := strings.Join(d.Causes(), ",")
	if want := "imissed,writer_queue,alpha,zeta"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if d.Total() != 6 {
		t.Errorf("got total %d, want 6", d.Total())
	}
}
