package groundtruth

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"time"
)

// Options configure Run.
type Options struct {
	Tapvault  string    // a tapvault binary built with DPDK
	Cases     []Case    // default: Cases
	Exchanges int       // per client and case; default: Exchanges
	Log       io.Writer // progress; nil: none
	Keep      bool      // keep the temporary directory (stores, database files)
}

// Row is one line of the table: a case, a protocol, a capture point.
type Row struct {
	Case, Proto, Point string
	Want, N            int           // exchanges expected, found
	WantNet, GotNet    time.Duration // p50; GotNet < 0: unknown
	WantSrv, GotSrv    time.Duration
	Line               time.Duration // the round trip the delay line achieved from this point (p50 holds)
	ClassOK            int           // exchanges with the expected class
	Classes            map[string]int
	TierOK, TierN      int // front exchanges whose tier split matches the front end's log
	Fails              []string
	Notes              []string
}

// Key names the row for KnownBad: case/proto/point.
func (r *Row) Key() string { return r.Case + "/" + r.Proto + "/" + r.Point }

// Failed lists the row's failed checks that are not in KnownBad, and the
// known ones with their reason.
func (r *Row) Failed() (unknown []string, known map[string]string) {
	known = map[string]string{}
	for _, f := range r.Fails {
		if reason, ok := KnownBadReason(r.Key() + ":" + f); ok {
			known[f] = reason
		} else {
			unknown = append(unknown, f)
		}
	}
	return unknown, known
}

// Report is the outcome of Run.
type Report struct {
	Rows    []*Row
	Elapsed time.Duration
	Dir     string // the temporary directory, when kept
}

// Failed reports whether any check failed, known or not.
func (r *Report) Failed() bool {
	for _, row := range r.Rows {
		if len(row.Fails) > 0 {
			return true
		}
	}
	return false
}

// ErrSkip wraps the reasons the harness cannot run here (not root, a
// program missing); a test skips on it.
var ErrSkip = errors.New("ground truth harness cannot run here")

// Programs the harness runs; Check reports the missing ones.
var programs = []string{"ip", "ethtool", "iptables", "ping", "curl", "redis-server", "redis-cli", "psql", "mariadbd", "mariadb", "dig"}

// Check tells whether the harness can run on this machine.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (network namespaces, AF_PACKET)", ErrSkip)
	}
	var missing []string
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, p := range []string{"initdb", "postgres"} {
		if _, err := pgBin(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s (scripts/setup.sh installs them)", ErrSkip, strings.Join(missing, ", "))
	}
	return nil
}

// caseRun is what happened while a case ran.
type caseRun struct {
	start, end time.Time
	stage      [2]LinkStats
	front      []FrontLog
}

// Run sets up the namespaces, servers and captures, runs the cases, and
// compares the records with the injected values. Everything it created is
// removed before it returns, on failure too.
func Run(o Options) (rep *Report, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if o.Cases == nil {
		o.Cases = Cases
	}
	if o.Exchanges == 0 {
		o.Exchanges = Exchanges
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "groundtruth: "+format+"\n", args...)
		}
	}
	began := time.Now()
	dir, err := os.MkdirTemp("", "groundtruth-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // the databases' users enter it
		return nil, err
	}
	rep = &Report{}
	defer func() {
		if o.Keep {
			rep.Dir = dir
		} else {
			os.RemoveAll(dir)
		}
	}()

	logf("namespaces and delay line")
	top, err := NewTopology()
	if err != nil {
		return nil, err
	}
	defer top.Close()
	logf("servers (redis x2, postgres, mariadb, HTTP, DNS, front end)")
	srv, err := StartServers(top, dir)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	var caps []*Capture
	defer func() {
		for _, c := range caps {
			_ = c.Stop()
		}
	}()
	for _, p := range Points {
		logf("tapvault capture at the %s point", p)
		c, err := StartCapture(o.Tapvault, top, p, dir)
		if err != nil {
			return nil, err
		}
		caps = append(caps, c)
	}

	runs := make([]caseRun, len(o.Cases))
	for i := range o.Cases {
		c := &o.Cases[i]
		top.SetPath(c.Stage1, c.Stage2, c.Jitter, c.DropNth)
		srv.Front.Logs() // forget earlier requests
		time.Sleep(200 * time.Millisecond)
		runs[i].start = time.Now()
		for _, proto := range c.Protos {
			cmd, err := clientCommand(c, proto, o.Exchanges)
			if err != nil {
				return nil, err
			}
			logf("case %s: %s", c.Name, strings.Join(cmd.Args, " "))
			if _, err := runInNS(top.C, proto+" client", cmd, 3*time.Minute); err != nil {
				return nil, fmt.Errorf("case %s: %w", c.Name, err)
			}
		}
		runs[i].end = time.Now()
		runs[i].stage = [2]LinkStats{top.Stage1.Stats(), top.Stage2.Stats()}
		runs[i].front = srv.Front.Logs()
		time.Sleep(300 * time.Millisecond) // separates the cases' windows
	}

	logf("stopping the captures")
	stopped := caps
	caps = nil
	for _, c := range stopped {
		if err := c.Stop(); err != nil {
			return nil, err
		}
	}
	for _, c := range stopped {
		recs, err := ReadRecords(o.Tapvault, c.Dir)
		if err != nil {
			return nil, err
		}
		logf("%s point: %d records", c.Point, len(recs))
		for i := range o.Cases {
			rep.Rows = append(rep.Rows, evaluate(&o.Cases[i], &runs[i], c.Point, recs, o.Exchanges)...)
		}
	}
	rep.Rows = orderRows(rep.Rows, o.Cases)
	rep.Elapsed = time.Since(began)
	return rep, nil
}

// orderRows puts the rows in case order, then protocol, then point.
func orderRows(rows []*Row, cases []Case) []*Row {
	caseIdx := map[string]int{}
	for i, c := range cases {
		caseIdx[c.Name] = i
	}
	protoIdx := func(r *Row) int {
		for _, c := range cases {
			if c.Name == r.Case {
				if j := slices.Index(c.Protos, r.Proto); j >= 0 {
					return j
				}
			}
		}
		return len(r.Proto) + 100 // backend, http-lost: after their case's clients
	}
	slices.SortStableFunc(rows, func(a, b *Row) int {
		if d := caseIdx[a.Case] - caseIdx[b.Case]; d != 0 {
			return d
		}
		if d := protoIdx(a) - protoIdx(b); d != 0 {
			return d
		}
		if a.Proto != b.Proto {
			return strings.Compare(a.Proto, b.Proto)
		}
		return slices.Index(Points, a.Point) - slices.Index(Points, b.Point)
	})
	return rows
}

// tolerance is the acceptance band around an injected value:
// max(1 ms, 10 %).
func tolerance(want time.Duration) time.Duration { return max(time.Millisecond, want/10) }

func within(got, want time.Duration) bool {
	d := got - want
	return got >= 0 && max(d, -d) <= tolerance(want)
}

// p50 is the nearest-rank median of the known (non-negative) values; -1 when
// none is known.
func p50(v []time.Duration) time.Duration {
	var k []time.Duration
	for _, x := range v {
		if x >= 0 {
			k = append(k, x)
		}
	}
	if len(k) == 0 {
		return -1
	}
	slices.Sort(k)
	return k[(len(k)+1)/2-1]
}

// expected is the ground truth of one exchange at one capture point.
type expected struct {
	net, srv time.Duration
	log      *FrontLog
}

// evaluate makes the rows of one case at one capture point.
func evaluate(c *Case, cr *caseRun, point string, all []Record, n int) []*Row {
	inWindow := func(r Record) bool {
		t, ok := r.Int("req_first_ns")
		return ok && t >= cr.start.UnixNano() && t <= cr.end.UnixNano()
	}
	line := lineRTT(cr, point)
	var rows []*Row
	protos := slices.Clone(c.Protos)
	if c.Front != nil && point == PointServer {
		protos = append(protos, ProtoBackend) // the backend calls cross br0 only
	}
	for _, proto := range protos {
		sel := selector(proto)
		var recs []Record
		for _, r := range all {
			if sel(r) && inWindow(r) {
				recs = append(recs, r)
			}
		}
		slices.SortFunc(recs, func(a, b Record) int {
			x, _ := a.Int("req_first_ns")
			y, _ := b.Int("req_first_ns")
			return int(x - y)
		})
		want := n
		exp := make([]expected, len(recs))
		for i := range exp {
			exp[i] = expected{net: c.PathRTT(point), srv: c.App}
		}
		row := &Row{Case: c.Name, Proto: proto, Point: point, Line: line}
		switch proto {
		case ProtoBackend:
			want = n * c.Front.Calls
			for i := range exp {
				exp[i] = expected{net: 0, srv: c.Front.DB}
			}
		case ProtoFront:
			if len(cr.front) != len(recs) {
				row.Notes = append(row.Notes, fmt.Sprintf("front end logged %d requests, %d records", len(cr.front), len(recs)))
			}
			for i := range exp {
				if i < len(cr.front) {
					l := cr.front[i]
					exp[i].srv = l.End.Sub(l.Start)
					exp[i].log = &cr.front[i]
				}
			}
		}
		var lost *Row
		if d := cr.stage[1].Drop; d != nil && proto == ProtoHTTP {
			// The exchange whose request was dropped: the client and the
			// middle point saw the first copy, so their network part also
			// holds the wait for the retransmission; the server point saw
			// only the retransmission.
			for i, r := range recs {
				first, _ := r.Int("req_first_ns")
				resp, _ := r.Int("resp_first_ns")
				if d.At.UnixNano() >= first && d.At.UnixNano() <= resp {
					e := exp[i]
					if point != PointServer && !d.RetransAt.IsZero() {
						e.net += d.RetransAt.Sub(d.At)
					}
					lost = &Row{Case: c.Name, Proto: ProtoLost, Point: point, Line: line, Want: 1}
					fill(lost, recs[i:i+1], []expected{e}, false)
					lost.Notes = append(lost.Notes, fmt.Sprintf("segment %s→%s seq %d dropped, retransmitted %v later", d.Src, d.Dst, d.Seq, d.RetransAt.Sub(d.At).Round(time.Microsecond)))
				}
			}
			if lost == nil {
				lost = &Row{Case: c.Name, Proto: ProtoLost, Point: point, Line: line, Want: 1, Fails: []string{"count"}}
				lost.Notes = append(lost.Notes, "no record holds the dropped segment's time")
			}
		}
		row.Want = want
		fill(row, recs, exp, proto == ProtoDNS)
		rows = append(rows, row)
		if lost != nil {
			rows = append(rows, lost)
		}
	}
	return rows
}

// fill compares the records of a row with their expected values and sets
// the row's figures and failed checks. udp: no TCP signalling, so a part
// reported unknown with class can't-tell is accepted.
func fill(row *Row, recs []Record, exp []expected, udp bool) {
	row.N = len(recs)
	row.Classes = map[string]int{}
	var gotNet, gotSrv, wantNet, wantSrv []time.Duration
	unknownNet, unknownSrv := 0, 0
	tierChecked := false
	for i, r := range recs {
		m := Parts(r)
		e := exp[i]
		gotNet, gotSrv = append(gotNet, m.Network), append(gotSrv, m.Server)
		wantNet, wantSrv = append(wantNet, e.net), append(wantSrv, e.srv)
		if m.Network < 0 && !(udp && m.Class == CantTell) {
			unknownNet++
		}
		if m.Server < 0 && !(udp && m.Class == CantTell) {
			unknownSrv++
		}
		row.Classes[m.RawClass]++
		want := ExpectedClass(e.net, e.srv)
		if m.Class == want || (udp && m.Class == CantTell) {
			row.ClassOK++
		}
		if e.log != nil && row.Point == PointServer {
			tierChecked = true
			row.TierN++
			l := e.log
			if within(m.TierBefore, l.Before()) && within(m.TierBackend, l.Backend()) && within(m.TierAfter, l.After()) {
				row.TierOK++
			} else if len(row.Notes) < 3 {
				row.Notes = append(row.Notes, fmt.Sprintf("tiers %v/%v/%v, front end logged %v/%v/%v",
					m.TierBefore, m.TierBackend, m.TierAfter,
					l.Before().Round(time.Microsecond), l.Backend().Round(time.Microsecond), l.After().Round(time.Microsecond)))
			}
		}
	}
	row.WantNet, row.WantSrv = p50(wantNet), p50(wantSrv)
	row.GotNet, row.GotSrv = p50(gotNet), p50(gotSrv)
	fail := func(check string) { row.Fails = append(row.Fails, check) }
	if row.N != row.Want {
		fail("count")
	}
	if row.N == 0 {
		return
	}
	if unknownNet > 0 || (row.GotNet >= 0 && !within(row.GotNet, row.WantNet)) {
		fail("network")
	}
	if unknownSrv > 0 || (row.GotSrv >= 0 && !within(row.GotSrv, row.WantSrv)) {
		fail("server")
	}
	if float64(row.ClassOK) < 0.99*float64(row.N) {
		fail("class")
	}
	if tierChecked && float64(row.TierOK) < 0.99*float64(row.TierN) {
		fail("tiers")
	}
}

// lineRTT is the round trip the delay line achieved from a capture point to
// the server: the p50 holds of the stages between them, both ways.
func lineRTT(cr *caseRun, point string) time.Duration {
	hold := func(s LinkStats, dir int) time.Duration { return max(p50(s.Holds[dir]), 0) }
	s2 := hold(cr.stage[1], 0) + hold(cr.stage[1], 1)
	switch point {
	case PointClient:
		return hold(cr.stage[0], 0) + hold(cr.stage[0], 1) + s2
	case PointMiddle:
		return s2
	}
	return 0
}

// WriteTable prints the table of injected against measured values.
func (r *Report) WriteTable(w io.Writer) {
	ms := func(d time.Duration) string {
		if d < 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", float64(d)/1e6)
	}
	fmt.Fprintf(w, "%-13s %-9s %-6s %5s %8s %8s %8s %8s %8s %8s %7s  %s\n",
		"case", "proto", "point", "n", "line ms", "net want", "net p50", "srv want", "srv p50", "class ok", "tiers", "result")
	for _, row := range r.Rows {
		tiers := "-"
		if row.TierN > 0 {
			tiers = fmt.Sprintf("%d/%d", row.TierOK, row.TierN)
		}
		n := fmt.Sprintf("%d", row.N)
		if row.N != row.Want {
			n = fmt.Sprintf("%d/%d", row.N, row.Want)
		}
		result := "ok"
		if unknown, known := row.Failed(); len(unknown)+len(known) > 0 {
			var parts []string
			for _, f := range unknown {
				parts = append(parts, "FAIL "+f)
			}
			for _, f := range row.Fails {
				if _, ok := known[f]; ok {
					parts = append(parts, "known-bad "+f)
				}
			}
			result = strings.Join(parts, ", ")
		}
		fmt.Fprintf(w, "%-13s %-9s %-6s %5s %8s %8s %8s %8s %8s %8s %7s  %s %s\n",
			row.Case, row.Proto, row.Point, n, ms(row.Line), ms(row.WantNet), ms(row.GotNet), ms(row.WantSrv), ms(row.GotSrv),
			fmt.Sprintf("%d/%d", row.ClassOK, row.N), tiers, result, classList(row.Classes))
	}
	for _, row := range r.Rows {
		for _, n := range row.Notes {
			fmt.Fprintf(w, "note %s: %s\n", row.Key(), n)
		}
	}
	fmt.Fprintf(w, "elapsed %v\n", r.Elapsed.Round(time.Second))
}

// classList writes the classes the records had, e.g. [fast:18 slow_app:2].
func classList(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("[")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%d", k, m[k])
	}
	b.WriteString("]")
	return b.String()
}

// KnownBadReason looks a failed check, "case/proto/point:check", up in
// KnownBad (whose keys may use path.Match patterns).
func KnownBadReason(check string) (string, bool) {
	for pattern, reason := range KnownBad {
		if ok, _ := path.Match(pattern, check); ok {
			return reason, true
		}
	}
	return "", false
}
