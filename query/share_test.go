package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"tapvault/analytics"
	"tapvault/msgquery"
)

// TestScanShare: scans that start together share one pass, and each gets
// exactly what its own ScanMessages gives (the same records, in the same
// order, with detail where it asked for it), whatever the others select:
// other windows (bounded and not), expressions, detail, connection records
// left out. A member that stops early (its callback's error) or whose
// context ends gets its own error and leaves the others be.
func TestScanShare(t *testing.T) {
	dir := scanStore(t, 1500)
	const t0, ms = int64(1_700_000_000_000_000_000), int64(1_000_000)
	expr := func(s string) *msgquery.Expr {
		e, err := msgquery.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	errEnough := errors.New("enough")
	type member struct {
		sel    MessageSel
		stopAt int  // return errEnough at this record (0: never)
		cancel bool // cancel the context at record 100
	}
	members := []member{
		{sel: MessageSel{From: MinTime, To: MaxTime, NoDetail: true}},
		{sel: MessageSel{}}, // unbounded (0, 0): takes records without times too
		{sel: MessageSel{From: t0 + 1000*ms, To: t0 + 2000*ms, Expr: expr("proto http")}},
		{sel: MessageSel{From: t0 + 500*ms, To: MaxTime, Expr: expr("proto http and latency > 1ms"), NoDetail: true}},
		{sel: MessageSel{From: t0 + 3000*ms, To: MaxTime, Expr: expr("latency > 2ms"), NoDetail: true, Exchanges: true}},
		{sel: MessageSel{Expr: expr("proto redis or proto dns"), Exchanges: true}, stopAt: 300},
		{sel: MessageSel{From: MinTime, To: MaxTime}, cancel: true},
	}
	// A record as a member saw it: its ID and whether it had detail.
	// A record as a member saw it: its ID, and whether it had detail
	// where the member asked for it (NoDetail lets the store omit it, not
	// must: a pruned scan reads the fields for its terms).
	seen := func(r *analytics.Record, noDetail bool) string {
		if noDetail {
			return fmt.Sprint(r.ID)
		}
		return fmt.Sprintf("%d/%d", r.ID, len(r.Fields))
	}
	run := func(sh *ScanShare, m member) ([]string, error) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var got []string
		_, err := sh.Scan(ctx, dir, m.sel, func(r *analytics.Record, _ *msgquery.Tier) error {
			got = append(got, seen(r, m.sel.NoDetail))
			if m.stopAt > 0 && len(got) == m.stopAt {
				return errEnough
			}
			if m.cancel && len(got) == 100 {
				cancel()
			}
			return nil
		})
		return got, err
	}
	for round := range 3 {
		sh := &ScanShare{Gather: 300 * time.Millisecond}
		got := make([][]string, len(members))
		errs := make([]error, len(members))
		var wg sync.WaitGroup
		for i, m := range members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = run(sh, m)
			}()
		}
		wg.Wait()
		// Scans share a pass only with those the skip index prunes alike.
		groups := map[string]int{}
		for _, m := range members {
			groups[pruneSig(m.sel.Expr)]++
		}
		want := int64(len(members) - len(groups))
		if j := sh.Joined(); j != want || len(groups) < 3 || want < 2 {
			t.Fatalf("round %d: %d scans joined another's pass, want %d (%d prune groups)", round, j, want, len(groups))
		}
		for i, m := range members {
			want, werr := run(nil, m)
			if m.cancel {
				// The pass delivers a record or a few more before it
				// sees the context end; what it gave is the start.
				if !errors.Is(errs[i], context.Canceled) || len(got[i]) < 100 || !slices.Equal(got[i], want[:len(got[i])]) {
					t.Fatalf("round %d, member %d (cancelled): %d records, %v: want the first 100 or so of its own scan and context.Canceled", round, i, len(got[i]), errs[i])
				}
				continue
			}
			if !errors.Is(errs[i], werr) || (werr == nil) != (errs[i] == nil) {
				t.Fatalf("round %d, member %d: error %v, want %v", round, i, errs[i], werr)
			}
			if len(want) == 0 || !slices.Equal(got[i], want) {
				t.Fatalf("round %d, member %d: %d records, want its own scan's %d, in order (first %v, want %v)", round, i, len(got[i]), len(want), got[i][:min(3, len(got[i]))], want[:min(3, len(want))])
			}
		}
	}
	// A lone scan does not wait for company it cannot have.
	sh := &ScanShare{Gather: time.Millisecond}
	if _, err := run(sh, members[0]); err != nil || sh.Joined() != 0 {
		t.Fatalf("lone scan: %v, %d joined", err, sh.Joined())
	}
}

// TestScanShareLeaves: a member that stops early, or whose context ends,
// returns at once, though another member's callback holds the pass (a
// slow client of a streamed answer); whichever of them led the pass.
func TestScanShareLeaves(t *testing.T) {
	dir := scanStore(t, 300)
	errEnough := errors.New("enough")
	for _, blockedLeads := range []bool{true, false} {
		sh := &ScanShare{Gather: 200 * time.Millisecond}
		release := make(chan struct{})
		blocked := make(chan struct{})
		slowDone := make(chan error, 1)
		startSlow := func() {
			go func() {
				n := 0
				_, err := sh.Scan(context.Background(), dir, MessageSel{}, func(*analytics.Record, *msgquery.Tier) error {
					if n++; n == 2 {
						close(blocked)
						<-release
					}
					return nil
				})
				slowDone <- err
			}()
		}
		if blockedLeads {
			startSlow()
			time.Sleep(20 * time.Millisecond)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopped, cancelled := make(chan error, 1), make(chan error, 1)
		go func() {
			_, err := sh.Scan(context.Background(), dir, MessageSel{}, func(*analytics.Record, *msgquery.Tier) error { return errEnough })
			stopped <- err
		}()
		go func() {
			_, err := sh.Scan(ctx, dir, MessageSel{}, func(*analytics.Record, *msgquery.Tier) error { return nil })
			cancelled <- err
		}()
		if !blockedLeads {
			time.Sleep(20 * time.Millisecond)
			startSlow()
		}
		<-blocked
		cancel()
		for what, ch := range map[string]chan error{"stopped": stopped, "cancelled": cancelled} {
			select {
			case err := <-ch:
				if err == nil {
					t.Errorf("blocked member leads %v: %s member: no error", blockedLeads, what)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("blocked member leads %v: %s member still waits for the pass another member's callback holds", blockedLeads, what)
			}
		}
		close(release)
		if err := <-slowDone; err != nil {
			t.Fatalf("blocked member: %v", err)
		}
		if t.Failed() {
			return
		}
	}
}
