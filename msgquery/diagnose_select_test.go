package msgquery

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestP5090Select checks the selection against the sorted slice's nearest
// ranks, on sizes around the insertion cut-off and on many equal values.
func TestP5090Select(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 10, 16, 17, 18, 100, 1000, 100000} {
		for _, spread := range []int64{1, 3, 1000, 1 << 40} {
			v := make([]int64, n)
			for i := range v {
				v[i] = rng.Int64N(spread)
			}
			sorted := slices.Clone(v)
			slices.Sort(sorted)
			want := P5090{-1, -1}
			if n > 0 {
				want = P5090{sorted[rank(n, 50)], sorted[rank(n, 90)]}
			}
			if got := p5090(v); got != want {
				t.Errorf("n=%d spread=%d: got %v, want %v", n, spread, got, want)
			}
			for k := 0; k < n; k += max(1, n/7) {
				w := slices.Clone(sorted)
				rng.Shuffle(len(w), func(i, j int) { w[i], w[j] = w[j], w[i] })
				if got := selectNth(w, k); got != sorted[k] {
					t.Errorf("n=%d spread=%d: selectNth(%d) = %d, want %d", n, spread, k, got, sorted[k])
				}
			}
		}
	}
	// Sorted and reversed input: the median-of-three pivots.
	for _, n := range []int{1000, 4097} {
		up := make([]int64, n)
		for i := range up {
			up[i] = int64(i)
		}
		down := slices.Clone(up)
		slices.Reverse(down)
		for _, v := range [][]int64{up, down} {
			if got, want := p5090(v), (P5090{int64(rank(n, 50)), int64(rank(n, 90))}); got != want {
				t.Errorf("n=%d ordered: got %v, want %v", n, got, want)
			}
		}
	}
}

// TestValueSetPercentilesSelect: the exact percentiles equal the nearest
// ranks of the sorted values, whatever their order, and a second call
// (after the first reordered them) gives the same.
func TestValueSetPercentilesSelect(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	a := &Aggregator{}
	for _, n := range []int{1, 2, 5, 99, 100, 101, 1000, 54321} {
		for _, spread := range []int64{2, 1 << 30} {
			var s valueSet
			for range n {
				a.add(&s, rng.Int64N(spread))
			}
			sorted := slices.Clone(s.v)
			slices.Sort(sorted)
			r := func(p int) int64 { return sorted[max((p*n+99)/100, 1)-1] }
			want := Percentiles{N: n, P50: r(50), P90: r(90), P99: r(99), Max: sorted[n-1]}
			for call := range 2 {
				got := s.percentiles()
				got.Mean = 0
				if got != want {
					t.Errorf("n=%d spread=%d call %d: got %+v, want %+v", n, spread, call, got, want)
				}
			}
		}
	}
}
