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

// Capture is one `tapvault capture` process on a capture point, through
// DPDK's net_af_packet PMD on the point's interface, into its own store.
type Capture struct {
	Point string
	Dir   string
	p     *proc
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
	cmd := exec.Command(tapvault, "capture", "--eal", eal, "--data", store, "--listen", "", "--stats-interval", "1h")
	p, err := startNS(ns, "tapvault capture "+point, cmd)
	if err != nil {
		return nil, err
	}
	c := &Capture{Point: point, Dir: store, p: p}
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

// Stop drains and stops the capture (SIGINT: every stage flushes).
func (c *Capture) Stop() error {
	if err := c.p.signal(syscall.SIGINT, 30*time.Second); err != nil {
		return fmt.Errorf("capture %s: %w: %s", c.Point, err, tail(c.p.log.Bytes()))
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
