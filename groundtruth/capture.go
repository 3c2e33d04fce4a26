package groundtruth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Record sources: how the packets of a capture point reached the analyser.
const (
	// SourceDPDK: `tapvault capture` through DPDK's net_af_packet PMD, as
	// deployed. Packet times are taken when the worker polls a burst.
	SourceDPDK = "dpdk"
	// SourcePcap: tcpdump on the same interface (kernel timestamps), then
	// `tapvault import`: the same analyser with exact packet times, which
	// tells the analyser's own errors from the capture clock's.
	SourcePcap = "pcap"
)

// Sources are the record sources, in table order.
var Sources = []string{SourcePcap, SourceDPDK}

// Capture is one capture process on a capture point: `tapvault capture`
// into its own store, or tcpdump into a pcap file that Store imports.
type Capture struct {
	Point, Source string
	Dir           string // the store
	pcap          string
	p             *proc
}

// StartCapture starts tapvault capture on a capture point of t, storing into
// dir/<point>. It returns once the capture reports it is running.
func StartCapture(tapvault string, t *Topology, point, dir string) (*Capture, error) {
	ns, iface := t.captureIface(point)
	store := filepath.Join(dir, point)
	if err := os.MkdirAll(store, 0o755); err != nil {
		return nil, err
	}
	eal := fmt.Sprintf("-l 0 --no-pci --no-huge -m 256 --no-shconf --vdev=net_af_packet0,iface=%s,qpairs=1", iface)
	// At the highest CFS priority: the af_packet PMD has no kernel
	// timestamps, tapvault stamps each burst when its worker polls it, and
	// on a shared, loaded machine a capture at normal priority waits for a
	// CPU for milliseconds (measured: p99 26 ms, max 51 ms off the kernel's
	// times at load 12 on 2 CPUs). A real deployment gives the capture its
	// own cores; this is the nearest a shared machine gets.
	cmd := exec.Command("nice", "-n", "-20", tapvault, "capture", "--eal", eal, "--data", store, "--listen", "", "--stats-interval", "1h")
	p, err := startNS(ns, "tapvault capture "+point, cmd)
	if err != nil {
		return nil, err
	}
	c := &Capture{Point: point, Source: SourceDPDK, Dir: store, p: p}
	// EAL and the port come up within a second or two; the store's segment
	// directory tells that the pipeline runs.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.exited() {
			return nil, fmt.Errorf("capture %s: exited: %v: %s", point, p.err, tail(p.log.Bytes()))
		}
		if _, err := os.Stat(filepath.Join(store, "segments")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("capture %s: no store after 30 s", point)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // the port's first bursts
	return c, nil
}

// StartPcap starts tcpdump on a capture point of t, writing dir/<point>.pcap
// with the kernel's timestamps (ns).
func StartPcap(t *Topology, point, dir string) (*Capture, error) {
	ns, iface := t.captureIface(point)
	file := filepath.Join(dir, point+".pcap")
	cmd := exec.Command("tcpdump", "-i", iface, "-s", "0", "-B", "16384", "--immediate-mode", "--time-stamp-precision=nano", "-U", "-w", file)
	p, err := startNS(ns, "tcpdump "+point, cmd)
	if err != nil {
		return nil, err
	}
	c := &Capture{Point: point, Source: SourcePcap, Dir: filepath.Join(dir, point+"-pcap"), pcap: file, p: p}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.log.String(), "listening on") { // tcpdump says so once its socket is bound
		if p.exited() {
			return nil, fmt.Errorf("tcpdump %s: exited: %v: %s", point, p.err, tail(p.log.Bytes()))
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("tcpdump %s: not listening after 10 s", point)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c, nil
}

// Stop drains and stops the capture (SIGINT: every stage flushes; tcpdump
// writes its buffer out).
func (c *Capture) Stop() error {
	if err := c.p.signal(syscall.SIGINT, 30*time.Second); err != nil {
		if c.Source == SourcePcap && c.p.exited() {
			return nil // tcpdump exits 0 on SIGINT; a kill after the grace is reported below
		}
		return fmt.Errorf("%s capture %s: %w: %s", c.Source, c.Point, err, tail(c.p.log.Bytes()))
	}
	return nil
}

// Store makes sure the capture's records are in its store: for a pcap, it
// runs `tapvault import`.
func (c *Capture) Store(tapvault string) error {
	if c.Source != SourcePcap {
		return nil
	}
	out, err := exec.Command(tapvault, "import", "--data", c.Dir, c.pcap).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tapvault import %s: %w: %s", c.pcap, err, tail(out))
	}
	return nil
}

// Record is one record of `tapvault messages --json --tiers`, as decoded
// JSON: the harness reads fields by name so that it keeps working while the
// analytics rename or add fields (Parts knows the names).
type Record map[string]any

// Int reads an integer field; ok is false when it is missing.
func (r Record) Int(key string) (int64, bool) {
	v, ok := r[key].(json.Number)
	if !ok {
		return 0, false
	}
	n, err := v.Int64()
	return n, err == nil
}

// Str reads a string field.
func (r Record) Str(key string) string {
	s, _ := r[key].(string)
	return s
}

// ReadRecords runs `tapvault messages --data DIR --json --tiers` and decodes
// every record.
func ReadRecords(tapvault, dir string) ([]Record, error) {
	out, err := exec.Command(tapvault, "messages", "--data", dir, "--json", "--tiers").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return nil, fmt.Errorf("tapvault messages --data %s: %w: %s", dir, err, tail(stderr))
	}
	var recs []Record
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		var r Record
		if err := d.Decode(&r); err != nil {
			return nil, fmt.Errorf("tapvault messages: %w in %q", err, line)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}
