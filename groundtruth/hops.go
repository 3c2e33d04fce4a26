package groundtruth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"time"
)

// PointNAT is a capture point inside N, behind S's NAT: it sees the
// rewritten side of the nat case's connections (tcpdump only; not a table
// point). Between the middle point and it, the packets cross stage 2 and
// the NAT, so `tapvault hops` must match them across the rewriting.
const PointNAT = "nat-inside"

// HopRow is one per-hop check: the one-way delay `tapvault hops` measured
// between two capture points' stores (tcpdump's kernel times) in one
// direction, against what the delay line held the packets for.
type HopRow struct {
	Case, From, To string
	// Asked is the configured hold; Held the median of what the line
	// achieved for that stage and direction during the case, and Sent the
	// median to the end of the frames' writes (LinkStats.Sent); Got the
	// median one-way delay tapvault hops measured. Got passes within the
	// tolerance of [Held, Sent].
	Asked, Held, Sent, Got time.Duration
	Matched                int
	NATSeen                bool // the flows' addresses differ at the two points
	Fail                   string
}

// hopTolerance is issue 16's bound: max(0.5 ms, 5 %).
func hopTolerance(want time.Duration) time.Duration {
	return max(500*time.Microsecond, want/20)
}

// hopSpec is one pair of points and the stage between them.
type hopSpec struct {
	a, b  string // points, a on the client's side
	stage int    // 0: stage 1, 1: stage 2
	nat   bool   // the nat case only
}

var hopSpecs = []hopSpec{
	{PointClient, PointMiddle, 0, false},
	{PointMiddle, PointServer, 1, false},
	{PointMiddle, PointNAT, 1, true},
}

// hopChecks runs tapvault hops for every case and pair of points over the
// case's time window, on the tcpdump stores (dirs by point).
func hopChecks(tapvault string, cases []Case, runs []caseRun, dirs map[string]string) ([]*HopRow, error) {
	var rows []*HopRow
	for i := range cases {
		c := &cases[i]
		for _, h := range hopSpecs {
			if h.nat && !slices.Contains(c.Protos, ProtoNAT) {
				continue
			}
			filter := []string{}
			if h.nat {
				filter = []string{"tcp", "port", natPort} // A's side; B's is rewritten
			}
			args := append([]string{"hops", "--json", "--a", dirs[h.a], "--b", dirs[h.b],
				"--from", strconv.FormatInt(runs[i].start.UnixNano(), 10), "--to", strconv.FormatInt(runs[i].end.UnixNano(), 10)}, filter...)
			out, err := exec.Command(tapvault, args...).Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				return nil, fmt.Errorf("case %s: tapvault hops %s %s: %w: %s", c.Name, h.a, h.b, err, tail(stderr))
			}
			sum, nat, err := parseHops(out)
			if err != nil {
				return nil, fmt.Errorf("case %s: tapvault hops: %w", c.Name, err)
			}
			asked := c.Stage1
			if h.stage == 1 {
				asked = c.Stage2
			}
			holds, sents := runs[i].stage[h.stage].Holds, runs[i].stage[h.stage].Sent
			for dir := range 2 {
				from, to := h.a, h.b
				got := sum.MedianAB
				if dir == 1 {
					from, to, got = h.b, h.a, sum.MedianBA
				}
				r := &HopRow{Case: c.Name, From: from, To: to, Asked: asked, Held: p50(slices.Clone(holds[dir])),
					Sent: p50(slices.Clone(sents[dir])), Got: time.Duration(got), Matched: sum.Matched, NATSeen: nat}
				tol := hopTolerance(r.Held)
				switch {
				case sum.Matched == 0:
					r.Fail = "no packet matched"
				case r.Got < 0 || r.Got < r.Held-tol || r.Got > max(r.Sent, r.Held)+tol:
					r.Fail = fmt.Sprintf("%v measured, the line held %v and had written by %v (tolerance %v)", r.Got, r.Held, r.Sent, tol)
				case h.nat && !nat:
					r.Fail = "the flows' addresses are the same at both points: the NAT was not crossed"
				}
				rows = append(rows, r)
			}
		}
	}
	return rows, nil
}

type hopsSummary struct {
	Summary  bool  `json:"summary"`
	Matched  int   `json:"matched"`
	MedianAB int64 `json:"median_ab_ns"`
	MedianBA int64 `json:"median_ba_ns"`
}

// parseHops reads tapvault hops --json: direction lines, then the summary.
// nat reports whether some direction's flow differs between the points.
func parseHops(out []byte) (sum hopsSummary, nat bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return sum, false, fmt.Errorf("%w in %q", err, sc.Text())
		}
		if m["summary"] == true {
			if err := json.Unmarshal(sc.Bytes(), &sum); err != nil {
				return sum, false, err
			}
			continue
		}
		if m["flow_a"] != m["flow_b"] {
			nat = true
		}
	}
	if !sum.Summary {
		return sum, false, fmt.Errorf("no summary line in %q", tail(out))
	}
	return sum, nat, sc.Err()
}

// writeHops prints the per-hop table.
func writeHops(w io.Writer, rows []*HopRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nper hop (tapvault hops on the tcpdump stores; issue 16: within max(0.5 ms, 5 %%) of what the line held, to the end of its write)\n")
	fmt.Fprintf(w, "%-12s %-22s %7s %7s %7s %7s %7s  %s\n", "case", "hop", "asked", "held", "written", "got", "pkts", "result")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }
	for _, r := range rows {
		res := "ok"
		if r.Fail != "" {
			res = "FAIL " + r.Fail
		}
		if r.NATSeen {
			res += " (across the NAT)"
		}
		fmt.Fprintf(w, "%-12s %-22s %7s %7s %7s %7s %7d  %s\n", r.Case, r.From+">"+r.To, ms(r.Asked), ms(r.Held), ms(r.Sent), ms(r.Got), r.Matched, res)
	}
}
