package query

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"tapvault/analytics"
	"tapvault/msgquery"
	"tapvault/msgstore"
)

// ScanShare runs message scans that start together as one pass over the
// store. A view of the UI asks for two answers at once over the same
// records (the latency table and its heatmap, a page of exchanges and its
// time strip, the overview's table and series); on two cores two scans
// each decoding every record took twice the CPU of one
// (docs/PERFORMANCE.md, issue 13). A scan waits Gather for others of the
// same store to start, then one pass reads the union of their time
// windows, with detail if any of them needs it, and hands each record to
// every member whose own window, expression and connection test select
// it, in store order: each member gets the records, in the order, that its
// own scan would have given it (store order does not depend on the
// expression; the skip index only leaves out frames without a match). A
// member whose callback returns an error, or whose context ends, leaves
// the pass with that error; the pass ends when nobody is left. Scans with
// tier links are not shared (the linker's window and order are the
// scan's). The zero value shares nothing; a nil ScanShare is ScanMessages.
type ScanShare struct {
	Gather time.Duration

	mu   sync.Mutex
	open map[string]*shareGroup // groups still gathering, by store directory and pruning (pruneSig)

	joined atomic.Int64 // scans that ran in another's pass (tests)
}

type shareGroup struct {
	members []*shareMember
}

type shareMember struct {
	ctx  context.Context
	sel  MessageSel
	fn   func(*analytics.Record, *msgquery.Tier) error
	conn msgquery.ConnTest

	// mu is held while the pass calls fn, and to leave: once out, fn is
	// not called again, so the member returns as soon as it is out
	// (its error, its context) while others' callbacks hold the pass.
	mu       sync.Mutex
	out      bool
	err      error
	warnings []error       // the pass's, for a member still in at its end
	left     chan struct{} // closed when out
}

// leaveLocked takes x out of the pass with err; x.mu must be held.
func (x *shareMember) leaveLocked(err error) {
	if !x.out {
		x.out, x.err = true, err
		close(x.left)
	}
}

// wait returns once x is out of the pass, or its context has ended (then
// after a call of its callback in progress returns).
func (x *shareMember) wait() ([]error, error) {
	select {
	case <-x.left:
	case <-x.ctx.Done():
		x.mu.Lock()
		x.leaveLocked(x.ctx.Err())
		x.mu.Unlock()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.warnings, x.err
}

// Joined is how many scans ran in another scan's pass.
func (sh *ScanShare) Joined() int64 { return sh.joined.Load() }

// errAllOut ends a shared pass that has no member left.
var errAllOut = errors.New("every scan of the pass has ended")

// Scan is ScanMessages, sharing its pass with the scans of the same store
// that start within Gather of it.
func (sh *ScanShare) Scan(ctx context.Context, dir string, sel MessageSel, fn func(r *analytics.Record, t *msgquery.Tier) error) (warnings []error, err error) {
	if sh == nil || sh.Gather <= 0 || sel.Tiers {
		return ScanMessages(ctx, dir, sel, fn)
	}
	m := &shareMember{ctx: ctx, sel: sel, fn: fn, left: make(chan struct{})}
	// Only scans the skip index prunes alike share a pass, which prunes
	// as each of them would: a selective scan (an ID, a rare host) must
	// not read the whole window because a broad one started beside it.
	key := dir + "\x00" + pruneSig(sel.Expr)
	sh.mu.Lock()
	if g := sh.open[key]; g != nil {
		g.members = append(g.members, m)
		sh.mu.Unlock()
		sh.joined.Add(1)
		return m.wait()
	}
	if sh.open == nil {
		sh.open = make(map[string]*shareGroup)
	}
	g := &shareGroup{members: []*shareMember{m}}
	sh.open[key] = g
	sh.mu.Unlock()
	t := time.NewTimer(sh.Gather)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	sh.mu.Lock()
	delete(sh.open, key)
	members := g.members
	sh.mu.Unlock()
	if len(members) == 1 {
		return ScanMessages(ctx, dir, sel, fn)
	}
	// The pass runs on a goroutine of its own, so that the leader, as
	// any member, returns once it is out of it.
	goLowPriority(func() {
		ws, err := sharedPass(dir, members)
		for _, x := range members {
			x.mu.Lock()
			if !x.out {
				x.warnings = ws
				x.leaveLocked(err)
			}
			x.mu.Unlock()
		}
	})
	return m.wait()
}

// deliver hands r to the member: without its detail if the member asked
// for none and the pass read it for another (as its own scan would give
// it), restored for the next member.
func (x *shareMember) deliver(r *analytics.Record, passNoDetail bool) error {
	if !x.sel.NoDetail || passNoDetail {
		return x.fn(r, nil)
	}
	fields, pkts := r.Fields, r.Packets
	r.Fields, r.Packets = nil, nil
	err := x.fn(r, nil)
	r.Fields, r.Packets = fields, pkts
	return err
}

// sharedPass reads, once, the records every member's scan would read, and
// hands each to the members that select it.
func sharedPass(dir string, members []*shareMember) ([]error, error) {
	// A window that takes in every member's (0: unbounded, as msgstore
	// takes it), with detail if any member needs it, and the connection
	// records unless every member leaves them out.
	all := MessageSel{From: members[0].sel.From, To: members[0].sel.To, NoDetail: true, Exchanges: true}
	for _, x := range members {
		if all.From != 0 && (x.sel.From == 0 || x.sel.From < all.From) {
			all.From = x.sel.From
		}
		if all.To != 0 && (x.sel.To == 0 || x.sel.To > all.To) {
			all.To = x.sel.To
		}
		all.NoDetail = all.NoDetail && x.sel.NoDetail
		all.Exchanges = all.Exchanges && x.sel.Exchanges
	}
	// Every member prunes alike (the group's key): the pass prunes so.
	all.prune = members[0].sel.Expr
	// Each record's place, for the members that want it.
	var pos msgstore.Pos
	for _, x := range members {
		if x.sel.Pos != nil {
			all.Pos = &pos
		}
	}
	// The pass's context ends once every member's has.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var left atomic.Int64
	left.Store(int64(len(members)))
	for _, x := range members {
		stop := context.AfterFunc(x.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	ws, err := ScanMessages(ctx, dir, all, func(r *analytics.Record, _ *msgquery.Tier) error {
		live := 0
		for _, x := range members {
			x.mu.Lock()
			if x.out {
				x.mu.Unlock()
				continue
			}
			if err := x.ctx.Err(); err != nil {
				x.leaveLocked(err)
				x.mu.Unlock()
				continue
			}
			live++
			if msgstore.InWindow(r, x.sel.From, x.sel.To) && x.sel.keeps(r, &x.conn) {
				if x.sel.Pos != nil {
					*x.sel.Pos = pos
				}
				if err := x.deliver(r, all.NoDetail); err != nil {
					x.leaveLocked(err)
					live--
				}
			}
			x.mu.Unlock()
		}
		if live == 0 {
			return errAllOut
		}
		return nil
	})
	if errors.Is(err, errAllOut) {
		err = nil
	}
	for _, x := range members {
		x.mu.Lock()
		if cerr := x.ctx.Err(); cerr != nil {
			x.leaveLocked(cerr)
		}
		x.mu.Unlock()
	}
	return ws, err
}

// pruneSig is what the skip index would prune a scan with expression e by
// (pruneBy), as a string: scans with the same one may share a pass.
func pruneSig(e *msgquery.Expr) string {
	if e == nil {
		return ""
	}
	var q msgstore.Query
	pruneBy(&q, e)
	return fmt.Sprintf("%q|%q|%q", q.Terms, q.AnyTerms, q.Protos)
}
