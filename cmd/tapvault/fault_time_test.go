package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tapvault/query"
	"tapvault/tracegen"
)

// writePcap writes packets as a nanosecond pcap file (Ethernet).
func writePcap(t *testing.T, path string, pkts []filePacket) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := query.NewPcapWriter(f, 1, 65535)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(p.ts, p.wire, p.linkType, 0, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// moveClients moves the app trace's clients from 10.1.0.0/16 to 10.2.0.0/16
// (IPv4 over Ethernet; no one checks the checksums), so that two traces
// from the generator share no connection.
func moveClients(pkts []filePacket) {
	for _, p := range pkts {
		d := p.data
		if len(d) < 34 || d[12] != 0x08 || d[13] != 0x00 {
			continue
		}
		for _, off := range []int{26, 30} {
			if d[off] == 10 && d[off+1] == 1 {
				d[off+1] = 2
			}
		}
	}
}

// storeFacts is what the time tests compare between stores.
type storeFacts struct {
	conns, exchanges, unanswered uint64
	records                      []string // normalised, sorted
	closes                       map[string]int
	noResponse                   int
	flows                        int
}

// importFacts imports files into a new store and checks what must hold
// whatever the order of time in them: the export (query -w) is in time
// order and holds every packet, every flow's first packet time is at or
// before its last, and reanalyze writes no new record. It
// returns the counts and the records, normalised: without IDs and packet
// refs (the stores' block IDs differ), and without the close reason when
// dropClose (a connection still open when its file ended closes "idle"
// when another file follows and "end" when the input ends).
func importFacts(t *testing.T, dir, name string, packets int, dropClose bool, files ...string) storeFacts {
	t.Helper()
	store := filepath.Join(dir, name)
	out, _ := tv(t, false, append([]string{"import", "--data", store}, files...)...)
	f := storeFacts{
		conns:      matchNum(t, out, `(\d+) connections\)`),
		exchanges:  matchNum(t, out, `\((\d+) exchanges`),
		unanswered: matchNum(t, out, `(\d+) unanswered`),
		closes:     map[string]int{},
	}

	export := filepath.Join(dir, name+".pcap")
	tv(t, false, "query", "--data", store, "-w", export)
	got := readAll(t, export)
	if len(got) != packets {
		t.Fatalf("%s: export holds %d packets, want %d", name, len(got), packets)
	}
	for i := 1; i < len(got); i++ {
		if got[i].ts < got[i-1].ts {
			t.Fatalf("%s: export not in time order: packet %d at %d after %d", name, i, got[i].ts, got[i-1].ts)
		}
	}

	out, _ = tv(t, false, "flows", "--data", store, "--json")
	for _, fl := range jsonLines(t, out) {
		f.flows++
		if first, last := num(fl, "first_ns"), num(fl, "last_ns"); last < first {
			t.Fatalf("%s: flow %v %v: last packet %d before first %d", name, fl["a"], fl["b"], last, first)
		}
	}

	out, _ = tv(t, false, "reanalyze", "--data", store)
	if !strings.Contains(out, "written 0 new") {
		t.Fatalf("%s: reanalyze wrote records the in-stream analytics did not:\n%s", name, out)
	}

	out, _ = tv(t, false, "messages", "--data", store, "--json")
	for _, r := range jsonLines(t, out) {
		if r["proto"] == "tcp" {
			f.closes[r["close"].(string)]++
		}
		if r["class"] == "no_response" {
			f.noResponse++
		}
		r["npackets"] = len(r["packets"].([]any))
		for _, k := range []string{"id", "packets", "frontend", "backends"} {
			delete(r, k)
		}
		if dropClose {
			delete(r, "close")
		}
		b, err := json.Marshal(r) // map keys sorted
		if err != nil {
			t.Fatal(err)
		}
		f.records = append(f.records, string(b))
	}
	slices.Sort(f.records)
	return f
}

// matchNum returns the number re's group matches in out.
func matchNum(t *testing.T, out, re string) uint64 {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in:\n%s", re, out)
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sameRecords fails when two sorted record lists differ, naming the first
// difference.
func sameRecords(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := 0; i < min(len(got), len(want)); i++ {
		if got[i] != want[i] {
			t.Fatalf("%s: records differ (%d vs %d): first\n got %s\nwant %s", what, len(got), len(want), got[i], want[i])
		}
	}
	t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
}

// TestFaultTimeBackwardsAcrossFiles imports two app traces, B three years
// older than A, in both orders and concatenated as mergecap -a would (A's
// packets, then B's: time steps back inside one file). Whatever the order:
// the same connections and exchanges (as each file imported alone), no
// request left unanswered that is answered alone, an export in time order,
// and a reanalyze that writes nothing new. Before the step-free clock,
// importing A then B ended every connection of B as idle (A's time was
// years ahead), leaving its requests unanswered; the export had B's
// first packets after A's last.
func TestFaultTimeBackwardsAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	opts := appOpts
	opts.Packets = 3000
	a := filepath.Join(dir, "a.pcap")
	if _, err := tracegen.GenerateFile(a, opts); err != nil {
		t.Fatal(err)
	}
	opts.Seed = 6
	opts.StartNS = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	b := filepath.Join(dir, "b.pcap")
	if _, err := tracegen.GenerateFile(b, opts); err != nil {
		t.Fatal(err)
	}
	bp := readAll(t, b)
	moveClients(bp)
	writePcap(t, b, bp)
	ap := readAll(t, a)
	cat := filepath.Join(dir, "a-then-b.pcap")
	writePcap(t, cat, append(slices.Clone(ap), bp...))
	n := len(ap) + len(bp)

	alone := importFacts(t, dir, "a", len(ap), true, a)
	aloneB := importFacts(t, dir, "b", len(bp), true, b)
	ab := importFacts(t, dir, "ab", n, true, a, b)
	ba := importFacts(t, dir, "ba", n, true, b, a)
	cc := importFacts(t, dir, "cat", n, false, cat)
	abClose := importFacts(t, dir, "ab2", n, false, a, b)

	union := slices.Concat(alone.records, aloneB.records)
	slices.Sort(union)
	sameRecords(t, "a then b vs each alone", ab.records, union)
	sameRecords(t, "b then a vs each alone", ba.records, union)
	sameRecords(t, "a+b concatenated vs a then b", cc.records, abClose.records)
	for _, x := range []struct {
		name string
		f    storeFacts
	}{{"a then b", ab}, {"b then a", ba}, {"concatenated", cc}} {
		if x.f.conns != alone.conns+aloneB.conns || x.f.exchanges != alone.exchanges+aloneB.exchanges || x.f.unanswered != alone.unanswered+aloneB.unanswered {
			t.Errorf("%s: %d connections, %d exchanges, %d unanswered; want %d, %d, %d (each file alone)", x.name,
				x.f.conns, x.f.exchanges, x.f.unanswered, alone.conns+aloneB.conns, alone.exchanges+aloneB.exchanges, alone.unanswered+aloneB.unanswered)
		}
		if x.f.noResponse != alone.noResponse+aloneB.noResponse {
			t.Errorf("%s: %d no_response records, want %d", x.name, x.f.noResponse, alone.noResponse+aloneB.noResponse)
		}
	}
	t.Logf("a: %d connections, %d exchanges; b: %d, %d; closes a then b %v, concatenated %v", alone.conns, alone.exchanges, aloneB.conns, aloneB.exchanges, abClose.closes, cc.closes)
}

// TestFaultClockStepBackInFile steps the clock of an app trace back an
// hour in its middle, inside many open connections. The connections and
// exchanges are those of the trace without the step, with the same close
// reasons (none ends "idle"), the export is in time order and reanalyze
// writes nothing new. Before the step-free clock every connection open at
// the step ended as idle and went on as a new mid-stream one.
func TestFaultClockStepBackInFile(t *testing.T) {
	dir := t.TempDir()
	opts := appOpts
	opts.Packets = 3000
	a := filepath.Join(dir, "a.pcap")
	if _, err := tracegen.GenerateFile(a, opts); err != nil {
		t.Fatal(err)
	}
	pk := readAll(t, a)
	for i := len(pk) / 2; i < len(pk); i++ {
		pk[i].ts -= int64(time.Hour)
	}
	stepped := filepath.Join(dir, "stepped.pcap")
	writePcap(t, stepped, pk)

	want := importFacts(t, dir, "plain", len(pk), false, a)
	got := importFacts(t, dir, "stepped", len(pk), false, stepped)
	if got.conns != want.conns || got.exchanges != want.exchanges || got.unanswered != want.unanswered || got.noResponse != want.noResponse {
		t.Errorf("stepped: %d connections, %d exchanges, %d unanswered, %d no_response; want %d, %d, %d, %d",
			got.conns, got.exchanges, got.unanswered, got.noResponse, want.conns, want.exchanges, want.unanswered, want.noResponse)
	}
	if got.flows != want.flows {
		t.Errorf("stepped: %d flows, want %d", got.flows, want.flows)
	}
	if !maps.Equal(got.closes, want.closes) {
		t.Errorf("stepped: connections closed %v, want %v", got.closes, want.closes)
	}
	t.Logf("%d connections (closed %v), %d exchanges, with and without the step", got.conns, got.closes, got.exchanges)
}
