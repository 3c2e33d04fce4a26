package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"tapvault/pipeline"
	"time"
)

// Report is everything one `tapvault bench` invocation measured, with the
// machine it ran on and the command that ran it. It reports goals; it
// never asserts them.
type Report struct {
	Machine  Machine        `json:"machine"`
	Command  string         `json:"command"`
	Runs     []RunSummary   `json:"runs"`
	Searches []SearchResult `json:"searches"`
	Peers    []Peer         `json:"peers"`
	Goals    []GoalCheck    `json:"goals"`
	Notes    []string       `json:"notes"`
	// Disk is the store's filesystem measured in the same run
	// (MeasureDisk); nil if it was not.
	Disk *DiskSpeed `json:"disk,omitempty"`
}

// RunSummary is one maximum-speed replay, independent of DPDK's types.
type RunSummary struct {
	Name          string        `json:"name"`
	Driver        string        `json:"driver"`
	Packets       uint64        `json:"packets"` // received by the workers
	Bytes         uint64        `json:"bytes"`   // their wire bytes
	Elapsed       time.Duration `json:"elapsed_ns"`
	Sent          uint64        `json:"sent"` // offered by the generator; 0 if not known
	Drops         Drops         `json:"drops"`
	Stages        []Stage       `json:"stages"`
	StoredPackets uint64        `json:"stored_packets"` // committed to the store
	RawBytes      uint64        `json:"raw_bytes"`      // block bytes before compression
	StoredBytes   uint64        `json:"stored_bytes"`   // block bytes on disk
	DiskBytes     int64         `json:"disk_bytes"`     // the store directory's size
	IndexBytes    int64         `json:"index_bytes"`    // 0 if no index was built
	PeakRSS       int64         `json:"peak_rss_bytes"`
	// TTQ is the time from a block's first packet arriving to the index
	// returning the block.
	TTQ pipeline.LatencySummary `json:"time_to_queryable"`
}

// Stage is one step of the data path in a run: the packets that left it
// and the CPU it used.
type Stage struct {
	Name    string  `json:"name"`
	Does    string  `json:"does,omitempty"` // what the stage's CPU covers
	Packets uint64  `json:"packets"`
	CPU     float64 `json:"cpu_seconds"`
}

// Stage names used by RunSummaryFrom.
const (
	StageGenerator = "generator"
	StageNIC       = "nic"
	StageWorker    = "worker"
	StageCompress  = "compress"
	StageWrite     = "write"
	StageIndex     = "index"
	StageWriter    = "other" // commit hook, Go runtime, GC: what the named stages leave
)

// RunSummaryFrom converts a replay's Result. Name is the port; callers
// usually overwrite it. PeakRSS is the process's high-water mark now
// (see ResetPeakRSS). IndexBytes and the index queue drops come from the
// run's index, when it had one.
func RunSummaryFrom(r *Result) RunSummary {
	rep := &r.Report
	s := RunSummary{
		Name:    r.Port,
		Driver:  r.Driver,
		Packets: rep.RxPackets,
		Bytes:   rep.RxBytes,
		Elapsed: rep.Elapsed,
		Sent:    r.Sent,
		Drops: Drops{
			DropIMissed:     r.PortStat.IMissed,
			DropRxNoMbuf:    r.PortStat.RxNoMbuf,
			DropIErrors:     r.PortStat.IErrors,
			DropNoBuffer:    rep.DropNoBuffer,
			DropWriterQueue: rep.DropWriter,
		},
		StoredPackets: rep.Writer.PacketsCommitted,
		RawBytes:      rep.Writer.RawBytes,
		StoredBytes:   rep.Writer.StoredBytes,
		DiskBytes:     r.DiskSize,
		IndexBytes:    rep.IndexBytes,
		PeakRSS:       PeakRSS(),
		TTQ:           rep.TimeToQueryable,
	}
	if rep.Index != nil {
		s.Drops[DropIndexQueue] = rep.Index.QueueDrops
	}
	if rep.Writer.PacketsLost > 0 {
		s.Drops[DropDisk] = rep.Writer.PacketsLost
	}
	var wcpu time.Duration
	for _, c := range rep.WorkerCPU {
		wcpu += c
	}
	rest := max(rep.ProcessCPU-wcpu-r.Producer, 0)
	if r.Sent > 0 || r.Producer > 0 {
		s.Stages = append(s.Stages, Stage{Name: StageGenerator, Does: "producer thread (test traffic, not capture)", Packets: r.Sent, CPU: r.Producer.Seconds()})
	}
	if r.PortStat.IPackets > 0 {
		s.Stages = append(s.Stages, Stage{Name: StageNIC, Does: "port receive counters", Packets: r.PortStat.IPackets})
	}
	ws := &rep.Writer
	comp := time.Duration(ws.CompressNanos)
	write := time.Duration(ws.WriteNanos)
	var idx time.Duration
	if rep.Index != nil {
		idx = rep.Index.BatchTime
	}
	other := max(rest-comp-write-idx, 0)
	s.Stages = append(s.Stages,
		Stage{Name: StageWorker, Does: "rx, decode, flow, block build", Packets: rep.RxPackets, CPU: wcpu.Seconds()},
		Stage{Name: StageCompress, Does: "zstd (time in the compressor goroutines)", Packets: ws.PacketsCommitted, CPU: comp.Seconds()},
		Stage{Name: StageWrite, Does: "seal + append (fsync waits apart)", Packets: ws.PacketsCommitted, CPU: write.Seconds()},
		Stage{Name: StageIndex, Does: "index group writes (Badger)", Packets: ws.PacketsCommitted, CPU: idx.Seconds()},
		Stage{Name: StageWriter, Does: "the rest: commit hook, Go runtime and GC", Packets: ws.PacketsCommitted, CPU: other.Seconds()},
	)
	return s
}

// Mpps is the workers' receive rate.
func (s *RunSummary) Mpps() float64 { return rate(float64(s.Packets), s.Elapsed) / 1e6 }

// Gbps is the workers' receive rate in wire bits.
func (s *RunSummary) Gbps() float64 { return rate(float64(s.Bytes)*8, s.Elapsed) / 1e9 }

// CompressionRatio is raw over stored block bytes; 0 if nothing was stored.
func (s *RunSummary) CompressionRatio() float64 {
	return ratio(float64(s.RawBytes), float64(s.StoredBytes))
}

// IndexPerStored is index bytes per stored block byte; 0 if either is 0.
func (s *RunSummary) IndexPerStored() float64 {
	return ratio(float64(s.IndexBytes), float64(s.StoredBytes))
}

func rate(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

func ratio(a, b float64) float64 {
	if a == 0 || b == 0 {
		return 0
	}
	return a / b
}

// Peer is one capturer's run in a side-by-side comparison on the same
// machine and the same replayed traffic (tapvault, tcpdump, dumpcap).
type Peer struct {
	Name       string  `json:"name"`
	Rate       string  `json:"rate"`        // the replay's rate setting, e.g. "max" or "pps=100000"
	Sent       uint64  `json:"sent"`        // packets the replay sent
	SentPPS    float64 `json:"sent_pps"`    // the rate it achieved
	Captured   uint64  `json:"captured"`    // packets the capturer wrote out
	Drops      uint64  `json:"drops"`       // drops the capturer itself reported
	DropsKnown bool    `json:"drops_known"` // false: it reported none we could read
	CPU        float64 `json:"cpu_seconds"` // the capturer's CPU over the run
	DiskBytes  int64   `json:"disk_bytes"`  // what it wrote: tapvault's store directory, a peer's file
	Error      string  `json:"error,omitempty"`
}

// Lost is the packets sent but not captured (0 if more were captured).
func (p *Peer) Lost() uint64 {
	if p.Captured >= p.Sent {
		return 0
	}
	return p.Sent - p.Captured
}

// PeersFrom converts a comparison: tapvault first (if it ran), then each
// peer.
func PeersFrom(c *Comparison) []Peer {
	var out []Peer
	errString := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	if c.Tapvault != nil || c.TapvaultErr != nil {
		p := Peer{Name: c.TapvaultName(), Rate: c.Rate.String(), Sent: c.TapvaultReplay.Packets, SentPPS: c.TapvaultReplay.PPS,
			Captured: c.TapvaultCaptured(), Error: errString(c.TapvaultErr)}
		if c.Tapvault != nil {
			p.Drops, p.DropsKnown, p.CPU = c.Tapvault.Drops(), true, c.Tapvault.Report.ProcessCPU.Seconds()
			p.DiskBytes = c.Tapvault.DiskSize
		}
		out = append(out, p)
	}
	for _, r := range c.Peers {
		out = append(out, Peer{Name: r.Kind, Rate: c.Rate.String(), Sent: r.Replay.Packets, SentPPS: r.Replay.PPS,
			Captured: r.Captured, Drops: r.KernelDrops, DropsKnown: r.Reported, CPU: r.CPU.Seconds(), DiskBytes: r.Bytes, Error: errString(r.Err)})
	}
	return out
}

// GoalCheck is a goal and what was measured against it.
type GoalCheck struct {
	Goal     string  `json:"goal"`
	Unit     string  `json:"unit"`
	Target   float64 `json:"target"`
	Measured float64 `json:"measured"`
	AtMost   bool    `json:"at_most"` // the target is a ceiling (CPU, bytes), not a floor
	Met      bool    `json:"met"`
}

// CheckGoal compares measured with target: met if measured >= target, or
// measured <= target when atMost.
func CheckGoal(goal, unit string, target, measured float64, atMost bool) GoalCheck {
	met := measured >= target
	if atMost {
		met = measured <= target
	}
	return GoalCheck{Goal: goal, Unit: unit, Target: target, Measured: measured, AtMost: atMost, Met: met}
}

// CommandLine quotes args for a POSIX shell, so the report shows a
// command that can be pasted back.
func CommandLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// WriteJSON writes r as indented JSON. Empty lists are written as [], not
// null, so readers see the same shape every time.
func (r *Report) WriteJSON(w io.Writer) error {
	c := *r
	c.Runs = nonNil(c.Runs)
	c.Searches = nonNil(c.Searches)
	for i := range c.Searches {
		c.Searches[i].Trials = nonNil(c.Searches[i].Trials)
	}
	c.Peers = nonNil(c.Peers)
	c.Goals = nonNil(c.Goals)
	c.Notes = nonNil(c.Notes)
	c.Machine.HugePages.Hugetlbfs = nonNil(c.Machine.HugePages.Hugetlbfs)
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return slices.Clone(s)
}

// mdWriter keeps the first write error, so the Markdown writer can print
// freely and check once.
type mdWriter struct {
	w   io.Writer
	err error
}

func (m *mdWriter) f(format string, args ...any) {
	if m.err == nil {
		_, m.err = fmt.Fprintf(m.w, format, args...)
	}
}

// row writes one table row, escaping the cells.
func (m *mdWriter) row(cells ...string) {
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(strings.ReplaceAll(c, "|", `\|`), "\n", " ")
	}
	m.f("| %s |\n", strings.Join(cells, " | "))
}

// header writes a table header; a column whose name starts with '>' is
// right-aligned (numbers).
func (m *mdWriter) header(cols ...string) {
	align := make([]string, len(cols))
	for i, c := range cols {
		align[i] = "---"
		if strings.HasPrefix(c, ">") {
			cols[i], align[i] = c[1:], "---:"
		}
	}
	m.row(cols...)
	m.f("|%s|\n", strings.Join(align, "|"))
}

// WriteMarkdown writes r as a Markdown document: machine, command, the
// runs with their drops and CPU per stage, each loss-free search with its
// trials, peers and goals.
func (r *Report) WriteMarkdown(w io.Writer) error {
	m := &mdWriter{w: w}
	m.f("# tapvault bench\n\n")
	if r.Command != "" {
		m.f("Command:\n\n```\n%s\n```\n\n", r.Command)
	}
	r.writeMachine(m)
	if len(r.Runs) > 0 {
		r.writeRuns(m)
	}
	if r.Disk != nil {
		r.writeDisk(m)
	}
	if len(r.Searches) > 0 {
		r.writeSearches(m)
	}
	if len(r.Peers) > 0 {
		m.f("## Peers\n\nThe same traffic replayed into each capturer in turn, on this machine.\n\n")
		m.header("Capturer", "Rate", ">Sent", ">Sent pps", ">Captured", ">Lost", ">Loss %", ">Reported drops", ">CPU s", ">CPU µs per packet", ">Disk bytes", "Error")
		for i := range r.Peers {
			p := &r.Peers[i]
			drops, perPkt := "?", "-"
			if p.DropsKnown {
				drops = fmt.Sprint(p.Drops)
			}
			if p.Captured > 0 {
				perPkt = fmt.Sprintf("%.3f", p.CPU*1e6/float64(p.Captured))
			}
			m.row(p.Name, p.Rate, fmt.Sprint(p.Sent), fmt.Sprintf("%.0f", p.SentPPS), fmt.Sprint(p.Captured), fmt.Sprint(p.Lost()),
				pct(float64(p.Lost()), float64(p.Sent)), drops, fmt.Sprintf("%.3f", p.CPU), perPkt, fmt.Sprint(p.DiskBytes), p.Error)
		}
		m.f("\n")
	}
	if len(r.Goals) > 0 {
		m.f("## Goals\n\nReported, not enforced.\n\n")
		m.header("Goal", ">Target", ">Measured", "Met")
		for _, g := range r.Goals {
			op := "≥"
			if g.AtMost {
				op = "≤"
			}
			m.row(g.Goal, fmt.Sprintf("%s %s %s", op, num(g.Target), g.Unit), fmt.Sprintf("%s %s", num(g.Measured), g.Unit), yesNo(g.Met))
		}
		m.f("\n")
	}
	if len(r.Notes) > 0 {
		m.f("## Notes\n\n")
		for _, n := range r.Notes {
			m.f("- %s\n", n)
		}
		m.f("\n")
	}
	if m.err != nil {
		return fmt.Errorf("report markdown: %w", m.err)
	}
	return nil
}

// writeDisk sets each run's store write rate (stored bytes over its time)
// beside the disk's figures.
func (r *Report) writeDisk(m *mdWriter) {
	ds := r.Disk
	m.f("## Disk\n\nMeasured in this run in %s, %s.", ds.Dir, iec(ds.Bytes))
	if ds.DirectErr != "" {
		m.f(" No O_DIRECT figure: %s.", ds.DirectErr)
	}
	if ds.Err != "" {
		m.f(" No buffered figure: %s.", ds.Err)
	}
	m.f("\n\n")
	m.header("Write", ">MB/s")
	m.row("`dd bs=1M oflag=direct` (no sync: a write cache counts)", fmt.Sprintf("%.0f", ds.Direct/1e6))
	m.row("`dd bs=1M oflag=direct conv=fdatasync`", fmt.Sprintf("%.0f", ds.DirectSync/1e6))
	m.row("`dd bs=1M conv=fdatasync`", fmt.Sprintf("%.0f", ds.BufferedSync/1e6))
	m.f("\n")
	if len(r.Runs) == 0 {
		return
	}
	m.header("Run", ">Stored MB/s", ">of O_DIRECT", ">of O_DIRECT+fdatasync")
	for i := range r.Runs {
		run := &r.Runs[i]
		if run.Elapsed <= 0 {
			continue
		}
		rate := float64(run.StoredBytes) / run.Elapsed.Seconds()
		d, s := ds.Ratio(rate)
		m.row(run.Name, fmt.Sprintf("%.0f", rate/1e6), fmt.Sprintf("%.2f", d), fmt.Sprintf("%.2f", s))
	}
	m.f("\n")
}

func (r *Report) writeMachine(m *mdWriter) {
	mc := &r.Machine
	m.f("## Machine\n\n")
	m.header("", "")
	cores := fmt.Sprintf("%d logical", mc.LogicalCPUs)
	if mc.PhysicalCores > 0 {
		cores += fmt.Sprintf(", %d physical", mc.PhysicalCores)
	}
	if mc.Sockets > 0 {
		cores += fmt.Sprintf(", %d socket(s)", mc.Sockets)
	}
	m.row("CPU", fmt.Sprintf("%s (%s)", orUnknown(mc.CPUModel), cores))
	m.row("Memory", iec(mc.MemTotal))
	hp := fmt.Sprintf("%d x %s, %d free", mc.HugePages.Total, iec(mc.HugePages.PageSize), mc.HugePages.Free)
	if len(mc.HugePages.Hugetlbfs) > 0 {
		hp += "; hugetlbfs at " + strings.Join(mc.HugePages.Hugetlbfs, ", ")
	} else {
		hp += "; hugetlbfs not mounted"
	}
	m.row("Hugepages", hp)
	m.row("DPDK", orUnknown(mc.DPDKVersion))
	m.row("Kernel", orUnknown(mc.Kernel))
	m.row("Go", orUnknown(mc.GoVersion))
	st := &mc.Store
	m.row("Store", fmt.Sprintf("%s: %s on %s (mounted at %s), %s free of %s",
		st.Dir, orUnknown(st.FSType), orUnknown(st.Device), orUnknown(st.MountPoint), iec(st.FreeBytes), iec(st.TotalBytes)))
	date := "unknown"
	if !mc.Date.IsZero() {
		date = mc.Date.UTC().Format(time.RFC3339)
	}
	m.row("Date", date)
	m.f("\n")
}

func (r *Report) writeRuns(m *mdWriter) {
	m.f("## Maximum-speed runs\n\n")
	m.header("Run", "Driver", ">Packets", ">Mpps", ">Gbps", ">Drops", ">Stored", ">Compression", ">Index B per stored B", ">Peak RSS")
	for i := range r.Runs {
		s := &r.Runs[i]
		idx := "-"
		if s.IndexBytes > 0 {
			idx = fmt.Sprintf("%.4f", s.IndexPerStored())
		}
		m.row(s.Name, s.Driver, fmt.Sprint(s.Packets), fmt.Sprintf("%.3f", s.Mpps()), fmt.Sprintf("%.3f", s.Gbps()),
			fmt.Sprint(s.Drops.Total()), iec(int64(s.StoredBytes)), fmt.Sprintf("%.2fx", s.CompressionRatio()), idx, iec(s.PeakRSS))
	}
	m.f("\n")
	for i := range r.Runs {
		s := &r.Runs[i]
		m.f("### %s\n\n", s.Name)
		m.f("%d packets, %d bytes in %s", s.Packets, s.Bytes, s.Elapsed.Round(time.Millisecond))
		if s.Sent > 0 {
			m.f(" (%d sent)", s.Sent)
		}
		m.f("; stored %d packets, raw %d B -> %d B, %d B on disk", s.StoredPackets, s.RawBytes, s.StoredBytes, s.DiskBytes)
		if s.IndexBytes > 0 {
			m.f(", index %d B", s.IndexBytes)
		}
		m.f(".")
		if t := s.TTQ; t.Count > 0 {
			m.f(" Time to queryable (first packet of a block arriving to the index returning the block): p50 %s, p99 %s, max %s over %d blocks.",
				t.P50.Round(time.Microsecond), t.P99.Round(time.Microsecond), t.Max.Round(time.Microsecond), t.Count)
		}
		m.f("\n\n")
		m.header("Drop cause", ">Packets", ">% of offered")
		for _, c := range s.Drops.Causes() {
			m.row(c, fmt.Sprint(s.Drops[c]), pct(float64(s.Drops[c]), float64(s.Packets+s.Drops.Total())))
		}
		m.row("**total**", fmt.Sprint(s.Drops.Total()), pct(float64(s.Drops.Total()), float64(s.Packets+s.Drops.Total())))
		m.f("\n")
		m.header("Stage", "Covers", ">Packets", ">Mpps", ">CPU s", ">% of a core", ">Mpps per core")
		el := s.Elapsed.Seconds()
		for _, st := range s.Stages {
			core, perCore := "-", "-"
			if st.CPU > 0 {
				if el > 0 {
					core = fmt.Sprintf("%.0f%%", 100*st.CPU/el)
				}
				perCore = fmt.Sprintf("%.3f", float64(st.Packets)/st.CPU/1e6)
			}
			m.row(st.Name, st.Does, fmt.Sprint(st.Packets), fmt.Sprintf("%.3f", rate(float64(st.Packets), s.Elapsed)/1e6),
				fmt.Sprintf("%.3f", st.CPU), core, perCore)
		}
		m.f("\n")
	}
}

func (r *Report) writeSearches(m *mdWriter) {
	m.f("## Loss-free rate\n\n")
	m.f("RFC 2544-style binary search: each trial offers a fixed rate; a trial passes if it loses nothing (or at most the tolerated fraction).\n\n")
	m.header("Kind", ">Loss-free Mpps", ">Gbps", ">Lowest failing Mpps", "Outcome", ">Trials", ">Trial length", ">Resolution")
	for i := range r.Searches {
		s := &r.Searches[i]
		fail := "-"
		if s.LowestFail > 0 {
			fail = fmt.Sprintf("%.3f", s.LowestFail/1e6)
		}
		m.row(orUnknown(s.Kind), fmt.Sprintf("%.3f", s.LossFreePPS/1e6), fmt.Sprintf("%.3f", s.LossFreeGbps), fail,
			s.Outcome, fmt.Sprintf("%d/%d", len(s.Trials), s.MaxTrials), s.Duration.String(), fmt.Sprintf("%g%%", 100*s.Resolution))
	}
	m.f("\n")
	for i := range r.Searches {
		s := &r.Searches[i]
		m.f("### %s\n\n", orUnknown(s.Kind))
		m.f("%s\n\n", searchSentence(s))
		m.header(">#", ">Rate Mpps", ">Offered Mpps", ">Received Mpps", ">Gbps", ">Lost", ">Loss %", "Drops", "CPU s", "Result")
		for _, t := range s.Trials {
			res := "fail"
			if t.Pass {
				res = "pass"
			}
			m.row(fmt.Sprint(t.N), fmt.Sprintf("%.3f", t.Rate/1e6), fmt.Sprintf("%.3f", t.OfferedPPS/1e6), fmt.Sprintf("%.3f", t.ReceivedPPS/1e6),
				fmt.Sprintf("%.3f", t.Gbps()), fmt.Sprint(t.Lost()), fmt.Sprintf("%.4f", 100*t.Loss), t.Drops.String(), cpuString(t.CPU), res)
		}
		m.f("\n")
	}
}

func searchSentence(s *SearchResult) string {
	switch s.Outcome {
	case OutcomeMaxRate:
		return fmt.Sprintf("The maximum rate tried, %.3f Mpps, lost nothing: the loss-free rate is at least that (the generator, not the capture, was the limit).", s.MaxRate/1e6)
	case OutcomeAllLose:
		return fmt.Sprintf("Even the lowest rate tried, %.3f Mpps, lost packets: no loss-free rate found.", s.MinRate/1e6)
	case OutcomeMaxTrials:
		if s.LossFreePPS == 0 {
			return fmt.Sprintf("The %d trials ran out before any rate passed.", s.MaxTrials)
		}
		return fmt.Sprintf("The %d trials ran out before convergence: %.3f Mpps passed, %.3f Mpps failed.", s.MaxTrials, s.LossFreePPS/1e6, s.LowestFail/1e6)
	case OutcomeConverged:
		return fmt.Sprintf("Loss-free at %.3f Mpps (%.3f Gbps); %.3f Mpps lost packets.", s.LossFreePPS/1e6, s.LossFreeGbps, s.LowestFail/1e6)
	}
	return "Search incomplete."
}

func cpuString(cpu map[string]float64) string {
	if len(cpu) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(cpu)) {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, cpu[k]))
	}
	return strings.Join(parts, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func pct(a, b float64) string {
	if b == 0 {
		return "0%"
	}
	return fmt.Sprintf("%.4f%%", 100*a/b)
}

// num formats a goal value without trailing zeros.
func num(v float64) string { return fmt.Sprintf("%.4g", v) }

// iec formats bytes with binary prefixes.
func iec(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit && exp < 5; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
