package pipeline

// SetRetentionStep sets the hook the retainer calls after each durable step
// of a drop (retention_test.go kills the process there).
func SetRetentionStep(p *Pipeline, f func(step string)) { p.ret.step = f }
