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

// TestCurrentClassIsOldClasses: CurrentClass renames exactly the classes
// OldClasses lists, to what it says (ClassUnknown with FlagNoRequest to
// ClassNoRequest), and leaves today's classes as they are.
func TestCurrentClassIsOldClasses(t *testing.T) {
	for old, cur := range OldClasses {
		if got := CurrentClass(&Record{Class: old}); got != cur {
			t.Errorf("class %q: CurrentClass %q, OldClasses %q", old, got, cur)
		}
	}
	if got := CurrentClass(&Record{Class: ClassUnknown, Flags: FlagNoRequest}); got != ClassNoRequest {
		t.Errorf("class %q with FlagNoRequest: CurrentClass %q, want %q", ClassUnknown, got, ClassNoRequest)
	}
	for _, c := range append(Classes, "", "something new") {
		if _, old := OldClasses[c]; old {
			t.Errorf("class %q is both today's and an older one", c)
		}
		if got := CurrentClass(&Record{Class: c, Flags: FlagNoRequest}); got != c {
			t.Errorf("class %q: CurrentClass %q, want it unchanged", c, got)
		}
	}
}
