package query

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/msgquery"
	"tapvault/msgstore"
)

// scanStore writes n rounds of a front exchange, its backend call(s) and a
// connection record, in a shuffled near-completion order, into a fresh
// store (several frames, two files).
func scanStore(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(11, 12))
	const t0, ms = int64(1_700_000_000_000_000_000), int64(1_000_000)
	front := netip.MustParseAddrPort("10.0.0.5:80")
	var recs []*analytics.Record
	for i := range n {
		base := t0 + int64(i)*3*ms
		ex := func(id uint64, proto string, c, s netip.AddrPort, rf, rl, sf, sl int64) *analytics.Record {
			return &analytics.Record{ID: id, Proto: proto, Transport: 6, Client: c, Server: s, Class: "healthy",
				ReqFirst: rf, ReqLast: rl, RespFirst: sf, RespLast: sl, Network: 10, ServerTime: sf - rl, Transfer: sl - sf, ClientNet: -1, RTT: -1,
				Fields: []analytics.Field{{Key: "method", Str: "GET"}}, Packets: []analytics.PktRef{{Block: uint64(i + 1), Ord: 1}}}
		}
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, 0, byte(i)}), 40000)
		recs = append(recs,
			ex(uint64(10*i+1), "redis", netip.AddrPortFrom(front.Addr(), 50000), netip.MustParseAddrPort("10.0.0.9:6379"), base+2*ms, base+2*ms, base+3*ms, base+int64(rng.IntN(3)+3)*ms),
			ex(uint64(10*i+2), "http", client, front, base, base+1*ms, base+5*ms, base+6*ms),
			&analytics.Record{ID: uint64(10*i + 3), Proto: "tcp", Class: analytics.ClassFlow, Client: client, Server: front, ReqFirst: base, RespLast: base + int64(rng.IntN(9))*ms})
		if i%7 == 0 {
			recs = append(recs, ex(uint64(10*i+4), "dns", client, netip.MustParseAddrPort("10.0.0.53:53"), base, base, 0, 0)) // no response
		}
	}
	for i := range recs { // a little disorder
		if j := i + rng.IntN(3); j < len(recs) {
			recs[i], recs[j] = recs[j], recs[i]
		}
	}
	for half := range 2 {
		w, err := msgstore.OpenWriter(dir, msgstore.Options{FrameRecords: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs[half*len(recs)/2 : (half+1)*len(recs)/2] {
			if err := w.Append(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type linkedOut struct {
	id     uint64
	fields int
	refs   int
	tier   msgquery.Tier
}

// TestScanMessagesTiers: the tier scan (reading on one goroutine, linking
// and fn on the caller's) gives the records, their links and their
// order that linking the store's exchanges one by one gives, the
// connection records passed on as read; with Exchanges, the same
// without the connection records; with NoDetail, without fields and refs;
// fn's error and a cancelled context end it.
func TestScanMessagesTiers(t *testing.T) {
	dir := scanStore(t, 2000)
	ctx := context.Background()
	// The reference: every record, read then linked here, in order.
	rd, err := msgstore.OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := msgquery.NewTierLinker(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []linkedOut
	take := func(ls []msgquery.Linked) {
		for _, l := range ls {
			o := linkedOut{id: l.Rec.ID, fields: len(l.Rec.Fields), refs: len(l.Rec.Packets)}
			if l.Tier != nil {
				o.tier = *l.Tier
			}
			want = append(want, o)
		}
	}
	if err := rd.Scan(ctx, msgstore.Query{}, func(r *analytics.Record) error {
		c := *r
		c.UpgradeClass()
		c.Fields = append([]analytics.Field(nil), r.Fields...)
		c.Packets = append([]analytics.PktRef(nil), r.Packets...)
		if msgquery.IsConnection(&c) {
			// Never linked: passed on as read.
			take([]msgquery.Linked{{Rec: &c}})
			return nil
		}
		take(tl.Push(&c))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	take(tl.Flush())
	linked := 0
	for _, o := range want {
		if len(o.tier.Backends) > 0 {
			linked++
		}
	}
	if linked < 1000 {
		t.Fatalf("only %d fronts linked in the reference: the test checks little", linked)
	}
	same := func(name string, sel MessageSel, keep func(linkedOut) bool, detail bool) {
		t.Helper()
		var got []linkedOut
		ws, err := ScanMessages(ctx, dir, sel, func(r *analytics.Record, tr *msgquery.Tier) error {
			o := linkedOut{id: r.ID, fields: len(r.Fields), refs: len(r.Packets)}
			if tr != nil {
				o.tier = *tr
			}
			got = append(got, o)
			return nil
		})
		if err != nil || len(ws) != 0 {
			t.Fatalf("%s: got error %v, warnings %v", name, err, ws)
		}
		var w []linkedOut
		for _, o := range want {
			if keep(o) {
				if !detail {
					o.fields, o.refs = 0, 0
				}
				w = append(w, o)
			}
		}
		if len(got) != len(w) {
			t.Fatalf("%s: got %d records, want %d", name, len(got), len(w))
		}
		for i := range w {
			a, b := got[i], w[i]
			if a.id != b.id || a.fields != b.fields || a.refs != b.refs || a.tier.IsFront != b.tier.IsFront || a.tier.Frontend != b.tier.Frontend ||
				a.tier.Before != b.tier.Before || a.tier.Backend != b.tier.Backend || a.tier.After != b.tier.After || len(a.tier.Backends) != len(b.tier.Backends) {
				t.Fatalf("%s: record %d: got %+v, want %+v", name, i, a, b)
			}
		}
	}
	all := func(linkedOut) bool { return true }
	exchanges := func(o linkedOut) bool { return o.id%10 != 3 }
	same("tiers", MessageSel{Tiers: true}, all, true)
	same("tiers, exchanges", MessageSel{Tiers: true, Exchanges: true}, exchanges, true)
	same("tiers, exchanges, no detail", MessageSel{Tiers: true, Exchanges: true, NoDetail: true}, exchanges, false)

	// One ID or a few with their tiers (an exchange's view): the store is
	// read only around them (narrowForTiers) and the links are the full
	// scan's: a front with its backends, a backend with its front, a flow
	// record, two at once, and none.
	for _, ids := range [][]uint64{{5002}, {7001}, {3003}, {5002, 19991}, {12345678}} {
		var parts []string
		set := map[uint64]bool{}
		for _, id := range ids {
			parts = append(parts, fmt.Sprintf("id %016x", id))
			set[id] = true
		}
		e, err := msgquery.Parse(strings.Join(parts, " or "))
		if err != nil {
			t.Fatal(err)
		}
		// A 100 ms window (the store spans 6 s; fronts last 6 ms, so the
		// links are those of the reference's 10 s).
		sel := MessageSel{Tiers: true, Expr: e, Window: int64(100 * time.Millisecond)}
		same(e.String(), sel, func(o linkedOut) bool { return set[o.id] }, true)
		rd2, err := msgstore.OpenReader(dir)
		if err != nil {
			t.Fatal(err)
		}
		q, found, err := narrowForTiers(ctx, rd2, msgstore.Query{}, sel)
		none := found == 0
		if err != nil || none != (ids[0] == 12345678) || !none && found != len(ids) {
			t.Fatalf("%v: narrowForTiers: %v, found %d", ids, err, found)
		}
		if !none && (q.From == 0 || q.To == 0 || q.To-q.From > int64(300*time.Millisecond) && len(ids) == 1) {
			t.Fatalf("%v: narrowed to [%d, %d], want the records' span and a window each side", ids, q.From, q.To)
		}
	}

	// Without tiers, read ahead (NoDetail): what reading one by one gives,
	// in order, with the expression and Exchanges applied.
	expr, err := msgquery.Parse("proto http or proto tcp or latency > 1ms")
	if err != nil {
		t.Fatal(err)
	}
	var plain []uint64
	if err := rd.Scan(ctx, msgstore.Query{}, func(r *analytics.Record) error {
		if expr.Match(r) && r.Proto != "tcp" {
			plain = append(plain, r.ID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var gotPlain []uint64
	if _, err := ScanMessages(ctx, dir, MessageSel{Expr: expr, NoDetail: true, Exchanges: true}, func(r *analytics.Record, tr *msgquery.Tier) error {
		if tr != nil || len(r.Fields) != 0 {
			t.Fatalf("record %d: got tier %v and %d fields, want none", r.ID, tr, len(r.Fields))
		}
		gotPlain = append(gotPlain, r.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(plain) < 1000 || !slices.Equal(gotPlain, plain) {
		t.Fatalf("without tiers: got %d records, want %d (the same, in order)", len(gotPlain), len(plain))
	}

	// fn's error ends the scan and is returned.
	stop := errors.New("stop")
	n := 0
	_, err = ScanMessages(ctx, dir, MessageSel{Tiers: true}, func(*analytics.Record, *msgquery.Tier) error {
		if n++; n == 700 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 700 {
		t.Errorf("fn failing at 700: got %v after %d calls, want stop after 700", err, n)
	}
	// A short window, so that records are passed on during the read.
	cctx, cancel := context.WithCancel(ctx)
	n = 0
	_, err = ScanMessages(cctx, dir, MessageSel{Tiers: true, Window: 50_000_000}, func(*analytics.Record, *msgquery.Tier) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 2000 {
		t.Errorf("cancelled: got %v after %d calls, want context.Canceled", err, n)
	}
}

// TestScanMessagesDamage: a damaged frame is skipped and returned as a
// warning by every way of reading (one by one, read ahead, with tiers).
func TestScanMessagesDamage(t *testing.T) {
	dir := scanStore(t, 500)
	files, err := msgstore.Files(dir)
	if err != nil || len(files) == 0 {
		t.Fatalf("files: %v %v", files, err)
	}
	// A byte in the middle of the first file: inside some frame's data.
	path := files[0].Path
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sel := range []MessageSel{{}, {NoDetail: true}, {Tiers: true}, {Tiers: true, NoDetail: true, Exchanges: true}} {
		n := 0
		ws, err := ScanMessages(context.Background(), dir, sel, func(*analytics.Record, *msgquery.Tier) error { n++; return nil })
		if err != nil || len(ws) == 0 || n == 0 {
			t.Errorf("%+v: got %d records, warnings %v, error %v; want records and a warning", sel, n, ws, err)
		}
	}
}

// TestScanMessagesTiersPanic: fn runs on a goroutine of the scan's own in a
// tier scan; its panic comes back as the scan's error instead of ending
// the process.
func TestScanMessagesTiersPanic(t *testing.T) {
	dir := scanStore(t, 500)
	n := 0
	_, err := ScanMessages(context.Background(), dir, MessageSel{Tiers: true}, func(*analytics.Record, *msgquery.Tier) error {
		if n++; n == 100 {
			panic("boom")
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "panic") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("fn panicking: got %v, want the panic as an error", err)
	}
}
