package index

import (
	"math/rand/v2"
	"testing"

	"tapvault/writer"
)

func randSet(rng *rand.Rand, n, max int) []writer.Ref {
	out := make([]writer.Ref, n)
	for i := range out {
		out[i] = writer.Ref(rng.IntN(max))
	}
	return sortUnique(out)
}

func TestUnionIntersectBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 300; round++ {
		k := 1 + rng.IntN(4)
		sets := make([][]writer.Ref, k)
		count := map[writer.Ref]int{}
		for i := range sets {
			sets[i] = randSet(rng, rng.IntN(60), 200)
			for _, r := range sets[i] {
				count[r]++
			}
		}
		var wantU, wantI []writer.Ref
		for r, c := range count {
			wantU = append(wantU, r)
			if c == k {
				wantI = append(wantI, r)
			}
		}
		wantU, wantI = sortUnique(wantU), sortUnique(wantI)
		its := func() []Iterator {
			out := make([]Iterator, k)
			for i := range out {
				out[i] = newSliceIter(sets[i])
			}
			return out
		}
		if got := drain(t, Union(its()...)); !equalRefs(got, wantU) {
			t.Fatalf("round %d union: got %v, want %v", round, got, wantU)
		}
		if got := drain(t, Intersect(its()...)); !equalRefs(got, wantI) {
			t.Fatalf("round %d intersect: got %v, want %v", round, got, wantI)
		}
		// Nested: (a ∪ b) ∩ c with seeks mixed into the walk.
		nested := Intersect(Union(its()...), Union(its()...))
		checkSeeks(t, rng, nested, wantU, 200)
	}
}

// checkSeeks walks it with a random mix of Next and Seek and checks every
// position against want.
func checkSeeks(t *testing.T, rng *rand.Rand, it Iterator, want []writer.Ref, max int) {
	t.Helper()
	defer it.Close()
	pos := -1 // index in want of the current ref
	for step := 0; step < 50; step++ {
		if rng.IntN(2) == 0 {
			ok := it.Next()
			pos++
			if ok != (pos < len(want)) {
				t.Fatalf("next: got %v, want %v", ok, pos < len(want))
			}
			if !ok {
				return
			}
		} else {
			target := writer.Ref(rng.IntN(max + 10))
			ok := it.Seek(target)
			np := pos
			if np < 0 {
				np = 0
			}
			for np < len(want) && want[np] < target {
				np++
			}
			pos = np
			if ok != (pos < len(want)) {
				t.Fatalf("seek %v: got %v, want %v", target, ok, pos < len(want))
			}
			if !ok {
				return
			}
		}
		if got := it.At(); got != want[pos] {
			t.Fatalf("step %d: got %v, want %v", step, got, want[pos])
		}
	}
}

func TestSliceIterSeekNeverBackwards(t *testing.T) {
	it := newSliceIter([]writer.Ref{1, 5, 9})
	if !it.Seek(5) || it.At() != 5 {
		t.Fatalf("seek 5: got %v, want 5", it.At())
	}
	if !it.Seek(2) || it.At() != 5 {
		t.Fatalf("seek 2 after 5: got %v, want 5", it.At())
	}
	if it.Seek(10) {
		t.Fatalf("seek 10: got true, want false")
	}
}
