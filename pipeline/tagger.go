package pipeline

import "tapvault/analytics"

// SetRecordTagger has fn add fields to every record before it is observed
// and stored, on the record stage's goroutine: fn must be quick and safe
// against concurrent use of its own state. It must not change what the
// record's ID covers (analytics.Record.SetID). Without analytics it does
// nothing. Used by the probes (package probe) to tag their exchanges.
func (p *Pipeline) SetRecordTagger(fn func(*analytics.Record)) {
	if p.stage == nil {
		return
	}
	if fn == nil {
		p.stage.tag.Store(nil)
		return
	}
	p.stage.tag.Store(&fn)
}
