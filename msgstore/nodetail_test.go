package msgstore

import (
	"math/rand/v2"
	"testing"

	"tapvault/analytics"
)

// TestScanNoDetail: without detail a scan passes every record with all but
// its Fields and Packets, which are empty; with terms (which may name a
// field) it decodes them anyway; a damaged field is still found.
func TestScanNoDetail(t *testing.T) {
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 8))
	var recs []*analytics.Record
	for i := 0; i < 1000; i++ {
		if i%3 == 0 {
			recs = append(recs, randRecord(rng))
		} else {
			recs = append(recs, httpRecord(i, t0+int64(i)*1000))
		}
	}
	w := openW(t, root, Options{FrameRecords: 100})
	writeAll(t, w, recs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rd := openR(t, root)
	got, bad := scanAll(t, rd, Query{NoDetail: true})
	if len(bad) != 0 {
		t.Fatalf("got corruption %v", bad)
	}
	want := make([]*analytics.Record, len(recs))
	withDetail := 0
	for i, r := range recs {
		c := cloneRecord(r)
		if len(c.Fields) > 0 || len(c.Packets) > 0 {
			withDetail++
		}
		c.Fields, c.Packets = nil, nil
		want[i] = c
	}
	if withDetail == 0 {
		t.Fatal("no record has fields or packets: the test checks nothing")
	}
	for _, r := range got {
		if len(r.Fields) != 0 || len(r.Packets) != 0 {
			t.Fatalf("record %016x: got %d fields and %d refs, want none", r.ID, len(r.Fields), len(r.Packets))
		}
		r.Fields, r.Packets = nil, nil
	}
	sameRecords(t, got, want)

	// Terms turn detail back on: the fields are there.
	term := analytics.FieldTerm("method", "GET")
	gotT, _ := scanAll(t, rd, Query{NoDetail: true, Terms: []string{term}})
	wantT, _ := scanAll(t, rd, Query{Terms: []string{term}})
	if len(wantT) == 0 {
		t.Fatalf("no record has %s: the test checks nothing", term)
	}
	sameRecords(t, gotT, wantT)
}

// TestParseRecordNoDetailChecks: the checks of the fields and refs hold
// without detail, so a damaged record is still reported.
func TestParseRecordNoDetailChecks(t *testing.T) {
	r := httpRecord(1, t0)
	b := AppendRecord(nil, r)
	var got analytics.Record
	if _, err := parseRecord(b, &got, nil, false); err != nil {
		t.Fatalf("whole record: got %v, want no error", err)
	}
	// Every cut inside it is an error with or without detail.
	for n := 0; n < len(b); n++ {
		_, errD := parseRecord(b[:n], &got, nil, true)
		_, errN := parseRecord(b[:n], &got, nil, false)
		if (errD == nil) != (errN == nil) {
			t.Fatalf("cut at %d: with detail %v, without %v", n, errD, errN)
		}
	}
}
