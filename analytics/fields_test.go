package analytics_test

import (
	"slices"
	"testing"

	"tapvault/analytics"
	"tapvault/tracegen"
)

// TestRecordFieldsDeclared: every field of every record of the generated
// app trace (exchanges and connection records) is declared, by its
// decoder's Fields or by FlowFields. The query language rejects keys
// nobody declares, so an undeclared field could not be queried.
func TestRecordFieldsDeclared(t *testing.T) {
	opts := tracegen.Options{Kind: tracegen.KindApp, Packets: 5000, Seed: 3, PPS: 400}
	recs, _ := analyze(t, genFrames(t, opts), analytics.DefaultConfig())
	if len(recs) == 0 {
		t.Fatal("no records")
	}
	seen := map[string]bool{}
	for _, r := range recs {
		var declared []string
		if r.Proto == analytics.FlowProto {
			declared = analytics.FlowFields
			if r.Class != analytics.ClassFlow {
				t.Errorf("tcp record of class %q, want %q", r.Class, analytics.ClassFlow)
			}
		} else {
			d, err := analytics.Lookup(r.Proto)
			if err != nil {
				t.Fatalf("record proto %q: %v", r.Proto, err)
			}
			declared = d.Fields
		}
		if !slices.Contains(analytics.Classes, r.Class) {
			t.Errorf("%s record: class %q is not in analytics.Classes", r.Proto, r.Class)
		}
		for _, f := range r.Fields {
			seen[r.Proto] = true
			if !slices.Contains(declared, f.Key) {
				t.Errorf("%s record: field %q is not declared", r.Proto, f.Key)
			}
		}
	}
	if !seen[analytics.FlowProto] || len(seen) < 3 {
		t.Errorf("records with fields of %v only; want tcp and at least two decoders", seen)
	}
}
