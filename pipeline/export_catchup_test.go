package pipeline

// SetCatchUpStep sets the hook the background index catch-up calls after
// each block it indexes (nil: none). Set it only while no pipeline runs.
func SetCatchUpStep(f func(n int64)) { catchUpStep = f }

// CatchUpProgress is the background catch-up's count of blocks to index
// (-1 before it has counted them) and of blocks indexed; ok is false when
// the pipeline has none (an import, no index).
func CatchUpProgress(p *Pipeline) (total, indexed int64, ok bool) {
	if p.bg == nil {
		return 0, 0, false
	}
	return p.bg.total.Load(), p.bg.indexed.Load(), true
}
