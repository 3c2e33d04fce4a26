package analytics

import "testing"

// TestOldClassesNotFlow: IsConnection compares r.Class with ClassFlow, not
// CurrentClass(r): that holds only while no older class is renamed to
// ClassFlow, with or without FlagNoRequest.
func TestOldClassesNotFlow(t *testing.T) {
	if len(OldClasses) == 0 {
		t.Fatal("no older classes: the test checks nothing")
	}
	for old := range OldClasses {
		for _, flags := range []uint32{0, FlagNoRequest} {
			r := &Record{Proto: "http", Class: old, Flags: flags}
			if CurrentClass(r) == ClassFlow || IsConnection(r) {
				t.Errorf("class %q (flags %#x): today's class %q, connection %v", old, flags, CurrentClass(r), IsConnection(r))
			}
		}
	}
	for _, r := range []*Record{{Proto: FlowProto}, {Proto: "udp", Class: ClassFlow}} {
		if !IsConnection(r) {
			t.Errorf("%+v: not a connection record", r)
		}
	}
}
