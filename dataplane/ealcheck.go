package dataplane

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// This file holds what can be said about EAL arguments and EAL's runtime
// directory without EAL: it builds without cgo.

// CheckEALArgs checks the files and network interfaces the --vdev
// arguments name, before EAL starts. A net_pcap whose rx_pcap file is
// missing only fails to probe: DPDK logs the reason among its start-up
// lines, and the error that reaches the caller is the port's "no such
// ethdev". Checked: net_pcap's rx_pcap (a readable file), tx_pcap (its
// directory exists), iface, rx_iface, rx_iface_in and tx_iface (a network
// interface), and net_af_packet's iface. Other devices and keys are left
// to their PMD.
func CheckEALArgs(args []string) error {
	for _, v := range allVdevs(args) {
		name, kv := v.name, v.kv
		var pcap, afp bool
		switch {
		case strings.HasPrefix(name, "net_pcap"):
			pcap = true
		case strings.HasPrefix(name, "net_af_packet"):
			afp = true
		default:
			continue
		}
		for _, p := range kv {
			k, val := p[0], p[1]
			var err error
			switch {
			case pcap && k == "rx_pcap":
				err = checkReadable(val)
			case pcap && k == "tx_pcap":
				err = checkDir(filepath.Dir(val))
			case pcap && (k == "iface" || k == "rx_iface" || k == "rx_iface_in" || k == "tx_iface"),
				afp && k == "iface":
				if _, ierr := net.InterfaceByName(val); ierr != nil {
					err = fmt.Errorf("network interface %q: no such interface", val)
				}
			default:
				continue
			}
			if err != nil {
				return fmt.Errorf("--vdev %s: %s: %w", name, k, err)
			}
		}
	}
	return nil
}

func checkReadable(path string) error {
	if path == "" {
		return errors.New("no file named")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory, not a capture file", path)
	}
	return nil
}

func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

type vdev struct {
	name string
	kv   [][2]string
}

// allVdevs returns every --vdev of args, with its key=value arguments.
func allVdevs(args []string) []vdev {
	var out []vdev
	for i := 0; i < len(args); i++ {
		var v string
		switch {
		case strings.HasPrefix(args[i], "--vdev="):
			v = strings.TrimPrefix(args[i], "--vdev=")
		case args[i] == "--vdev" && i+1 < len(args):
			i++
			v = args[i]
		default:
			continue
		}
		parts := strings.Split(v, ",")
		d := vdev{name: parts[0]}
		for _, p := range parts[1:] {
			k, val, _ := strings.Cut(p, "=")
			d.kv = append(d.kv, [2]string{k, val})
		}
		out = append(out, d)
	}
	return out
}

// RuntimeBaseDir is where EAL makes its runtime directories, one per
// --file-prefix, as DPDK's eal_create_runtime_dir chooses it:
// /var/run/dpdk for root, else $XDG_RUNTIME_DIR/dpdk, else /tmp/dpdk.
func RuntimeBaseDir() string {
	base := "/var/run"
	if os.Getuid() != 0 {
		base = "/tmp"
		if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
			base = x
		}
	}
	return filepath.Join(base, "dpdk")
}

// filePrefix returns the --file-prefix of EAL arguments, or EAL's default.
func filePrefix(args []string) string {
	p := "rte"
	for i := 0; i < len(args); i++ {
		switch {
		case strings.HasPrefix(args[i], "--file-prefix="):
			p = strings.TrimPrefix(args[i], "--file-prefix=")
		case args[i] == "--file-prefix" && i+1 < len(args):
			i++
			p = args[i]
		}
	}
	return p
}

// RemoveStaleRuntimeDirs removes the EAL runtime directories named
// prefix<pid> under RuntimeBaseDir whose process is gone: what a process
// killed before its cleanup (kill -9, a crash) left behind. A directory
// whose pid is alive, whose multi-process socket a process serves (one in
// another pid namespace), or whose name is not prefix and a number, is
// kept.
// It returns the directories it removed.
func RemoveStaleRuntimeDirs(prefix string) ([]string, error) {
	return removeStaleRuntimeDirs(RuntimeBaseDir(), prefix)
}

func removeStaleRuntimeDirs(base, prefix string) ([]string, error) {
	ents, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list EAL runtime directories: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 || strconv.Itoa(pid) != rest || processAlive(pid) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		if socketServed(filepath.Join(dir, "mp_socket")) {
			continue // a live EAL in another pid namespace serves it
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove stale EAL runtime directory: %w", err))
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// RemoveStaleHugepageFiles removes the hugepage files named
// prefix<pid>map_<n> in the hugetlbfs mounts whose process is gone: EAL
// keeps them for secondary processes unless --huge-unlink, and each holds
// its hugepages reserved until removed. It returns the files it removed.
func RemoveStaleHugepageFiles(prefix string) ([]string, error) {
	m, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return nil, nil
	}
	var removed []string
	var errs []error
	for _, l := range strings.Split(string(m), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[2] != "hugetlbfs" {
			continue
		}
		ents, err := os.ReadDir(f[1])
		if err != nil {
			continue
		}
		for _, e := range ents {
			rest, ok := strings.CutPrefix(e.Name(), prefix)
			if !ok || !e.Type().IsRegular() {
				continue
			}
			num, _, ok := strings.Cut(rest, "map_")
			pid, err := strconv.Atoi(num)
			if !ok || err != nil || pid <= 0 || strconv.Itoa(pid) != num || processAlive(pid) {
				continue
			}
			path := filepath.Join(f[1], e.Name())
			if err := os.Remove(path); err != nil {
				errs = append(errs, fmt.Errorf("remove stale hugepage file: %w", err))
				continue
			}
			removed = append(removed, path)
		}
	}
	return removed, errors.Join(errs...)
}

// socketServed reports whether a process has the unix datagram socket at
// path bound (EAL's multi-process socket): a connect then succeeds.
func socketServed(path string) bool {
	c, err := net.Dial("unixgram", path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// processAlive reports whether pid names a process (one of another user
// counts: EPERM).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
