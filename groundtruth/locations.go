package groundtruth

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The locations scenario (issue 16 §3): three locations, each a namespace
// with its own sensor (tapvault capture --probes), reach one service
// through their own stage of a delay line; one path is degraded. The
// verdict across the locations must name that location, and only it.
//
//	L1 l0 10.12.0.1 ═ a1 ─[line 1]─ b1 ═ s1 ┐
//	L2 l0 10.12.0.2 ═ a2 ─[line 2]─ b2 ═ s2 ├ br0 10.12.0.100 (S: HTTP :8080)
//	L3 l0 10.12.0.3 ═ a3 ─[line 3]─ b3 ═ s3 ┘
//	                 (lines in namespace M)
//
// Probes target only 10.12.0.100, inside the configuration's allow-list.

const (
	locServiceIP = "10.12.0.100"
	locHTTPPort  = "8080"
)

// LocationSpec is one location's path to the service.
type LocationSpec struct {
	Name  string
	Delay time.Duration // one way, on its line
}

// LocationsReport is what the scenario saw.
type LocationsReport struct {
	Specs   []LocationSpec
	Verdict struct {
		Blame string
		Slow  []string
		Text  string
	}
	Output string // tapvault locations' table
	Probes map[string]int
}

// RunLocations runs the scenario with the given locations' delays for
// dur of probing, and returns the verdict of tapvault locations over the
// three sensors' stores. It needs root.
func RunLocations(tapvault string, specs []LocationSpec, dur time.Duration, log io.Writer) (*LocationsReport, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "locations-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	logf := func(format string, args ...any) {
		if log != nil {
			fmt.Fprintf(log, "locations: "+format+"\n", args...)
		}
	}
	pid := os.Getpid()
	nsName := func(role string) string { return fmt.Sprintf("%s%d-%s", nsPrefix, pid, role) }
	S, M := nsName("ls"), nsName("lm")
	var created []string
	defer func() {
		for i := len(created) - 1; i >= 0; i-- {
			deleteNS(created[i])
		}
	}()
	locNS := make([]string, len(specs))
	all := []string{S, M}
	for i := range specs {
		locNS[i] = nsName(fmt.Sprintf("l%d", i+1))
		all = append(all, locNS[i])
	}
	for _, ns := range all {
		if err := run("ip", "netns", "add", ns); err != nil {
			return nil, err
		}
		created = append(created, ns)
		if err := runNS(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
			return nil, err
		}
		if err := run("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	if err := run("ip", "-n", S, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"); err != nil {
		return nil, err
	}
	type dev struct{ ns, name string }
	devs := []dev{{S, "br0"}}
	for i := range specs {
		a, b, s := fmt.Sprintf("a%d", i+1), fmt.Sprintf("b%d", i+1), fmt.Sprintf("s%d", i+1)
		for _, args := range [][]string{
			{"ip", "-n", locNS[i], "link", "add", "l0", "type", "veth", "peer", "name", a, "netns", M},
			{"ip", "-n", M, "link", "add", b, "type", "veth", "peer", "name", s, "netns", S},
			{"ip", "-n", S, "link", "set", s, "master", "br0"},
			{"ip", "-n", locNS[i], "addr", "add", fmt.Sprintf("10.12.0.%d/24", i+1), "dev", "l0"},
		} {
			if err := run(args...); err != nil {
				return nil, err
			}
		}
		devs = append(devs, dev{locNS[i], "l0"}, dev{M, a}, dev{M, b}, dev{S, s})
	}
	if err := run("ip", "-n", S, "addr", "add", locServiceIP+"/24", "dev", "br0"); err != nil {
		return nil, err
	}
	for _, d := range devs {
		// Offloads off, as in the main topology: no 64 KiB frames for the
		// captures and the line, no partial checksums forwarded.
		if err := runNS(d.ns, "ethtool", "-K", d.name, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off"); err != nil {
			return nil, err
		}
		if err := run("ip", "-n", d.ns, "link", "set", d.name, "up"); err != nil {
			return nil, err
		}
	}
	for i, sp := range specs {
		l, err := NewLink(M, fmt.Sprintf("a%d", i+1), fmt.Sprintf("b%d", i+1), LinkConfig{AB: sp.Delay, BA: sp.Delay, Jitter: 200 * time.Microsecond})
		if err != nil {
			return nil, err
		}
		defer l.Close()
	}
	for i := range specs {
		if out, err := exec.Command("ip", "netns", "exec", locNS[i], "ping", "-c", "1", "-W", "2", locServiceIP).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ping the service from %s: %w: %s", specs[i].Name, err, tail(out))
		}
	}

	// The service: a quick HTTP answer (1 ms of work), the same for all.
	var ln net.Listener
	if err := inNS(S, func() (err error) { ln, err = net.Listen("tcp4", locServiceIP+":"+locHTTPPort); return err }); err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		w.Write([]byte("ok\n"))
	})}
	go srv.Serve(ln)
	defer srv.Close()

	// A sensor per location, probing the service.
	type sensor struct {
		p     *proc
		store string
	}
	var sensors []sensor
	defer func() {
		for _, s := range sensors {
			s.p.signal(syscall.SIGKILL, time.Second)
		}
	}()
	for i, sp := range specs {
		cfg := filepath.Join(dir, sp.Name+".yaml")
		y := fmt.Sprintf("location: %s\nallow: [10.12.0.0/24]\nprobes:\n  - name: web\n    kind: http\n    target: http://%s:%s/\n    every: 200ms\n    timeout: 2s\n  - name: connect\n    kind: tcp\n    target: %s:%s\n    every: 500ms\n",
			sp.Name, locServiceIP, locHTTPPort, locServiceIP, locHTTPPort)
		if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
			return nil, err
		}
		store := filepath.Join(dir, sp.Name)
		eal := "-l 0 --no-pci --no-huge -m 256 --no-shconf --vdev=net_af_packet0,iface=l0,qpairs=1"
		cmd := exec.Command("nice", "-n", "-20", tapvault, "capture", "--eal", eal, "--data", store, "--listen", "", "--stats-interval", "1h", "--probes", cfg)
		p, err := startNS(locNS[i], "tapvault capture "+sp.Name, cmd)
		if err != nil {
			return nil, err
		}
		sensors = append(sensors, sensor{p, store})
	}
	logf("three sensors probing for %v (delays %v)", dur, specs)
	time.Sleep(dur)
	for _, s := range sensors {
		if err := s.p.signal(syscall.SIGINT, 30*time.Second); err != nil {
			return nil, fmt.Errorf("stop capture: %w: %s", err, tail(s.p.log.Bytes()))
		}
	}
	rep := &LocationsReport{Specs: specs, Probes: map[string]int{}}
	args := []string{"locations"}
	for i, s := range sensors {
		args = append(args, "--data", specs[i].Name+"="+s.store)
		if strings.Contains(s.p.log.String(), "probe failed") {
			logf("%s: some probes failed: %s", specs[i].Name, tail(s.p.log.Bytes()))
		}
	}
	out, err := exec.Command(tapvault, args...).CombinedOutput()
	rep.Output = string(out)
	if err != nil {
		return rep, fmt.Errorf("tapvault locations: %w: %s", err, out)
	}
	out, err = exec.Command(tapvault, append(args, "--json")...).Output()
	if err != nil {
		return rep, fmt.Errorf("tapvault locations --json: %w", err)
	}
	var v struct {
		Blame     string
		Slow      []string
		Text      string
		Locations []struct {
			Location string
			N        int `json:"exchanges"`
		}
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return rep, fmt.Errorf("tapvault locations --json: %w in %s", err, out)
	}
	rep.Verdict.Blame, rep.Verdict.Slow, rep.Verdict.Text = v.Blame, v.Slow, v.Text
	for _, l := range v.Locations {
		rep.Probes[l.Location] = l.N
	}
	return rep, nil
}
