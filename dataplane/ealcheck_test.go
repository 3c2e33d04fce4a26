package dataplane

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestFaultCheckEALArgs: what a vdev names is checked before EAL, so a
// missing rx_pcap file is the error, not the "no such ethdev" that EAL's
// failed probe becomes.
func TestFaultCheckEALArgs(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.pcap")
	if err := os.WriteFile(trace, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pcap")
	for _, c := range []struct {
		args []string
		want string // "" for no error
	}{
		{[]string{"-l", "0", "--vdev=net_pcap0,rx_pcap=" + trace}, ""},
		{[]string{"--vdev=net_pcap0,rx_pcap=" + missing}, "--vdev net_pcap0: rx_pcap: open " + missing + ": no such file or directory"},
		{[]string{"--vdev", "net_pcap1,rx_pcap=" + trace + ",rx_pcap=" + missing}, "--vdev net_pcap1: rx_pcap: open " + missing + ": no such file or directory"},
		{[]string{"--vdev=net_pcap0,rx_pcap=" + dir}, "is a directory, not a capture file"},
		{[]string{"--vdev=net_pcap0,rx_pcap=" + trace + ",tx_pcap=" + filepath.Join(dir, "out.pcap")}, ""},
		{[]string{"--vdev=net_pcap0,tx_pcap=" + filepath.Join(dir, "nodir", "out.pcap")}, "--vdev net_pcap0: tx_pcap: stat " + filepath.Join(dir, "nodir") + ": no such file or directory"},
		{[]string{"--vdev=net_pcap0,iface=lo"}, ""},
		{[]string{"--vdev=net_pcap0,rx_iface=tvnosuch0"}, `--vdev net_pcap0: rx_iface: network interface "tvnosuch0": no such interface`},
		{[]string{"--vdev=net_af_packet0,iface=tvnosuch0"}, `--vdev net_af_packet0: iface: network interface "tvnosuch0": no such interface`},
		{[]string{"--vdev=net_ring0", "--vdev=net_null0,size=64", "-a", "0000:00:00.0"}, ""},
	} {
		err := CheckEALArgs(c.args)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("CheckEALArgs(%q): %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("CheckEALArgs(%q): got %v, want %q", c.args, err, c.want)
		}
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	pid := cmd.Process.Pid
	if processAlive(pid) {
		t.Skipf("pid %d reused already", pid)
	}
	return pid
}

// TestFaultStaleRuntimeDirs: the runtime directories of processes that
// are gone are removed; a live one's, and names that are not prefix and a
// pid, are kept.
func TestFaultStaleRuntimeDirs(t *testing.T) {
	base := t.TempDir()
	dead := "tv-" + strconv.Itoa(deadPID(t))
	live := "tv-" + strconv.Itoa(os.Getpid())
	for _, d := range []string{dead, live, "tv-abc", "tv-007", "other-1", "tv-"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(base, d, "config"), []byte("x"), 0o600)
	}
	// A dead pid whose multi-process socket is served (a live EAL in
	// another pid namespace) is kept too.
	served := "tv-" + strconv.Itoa(deadPID(t))
	if err := os.MkdirAll(filepath.Join(base, served), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(base, served, "mp_socket"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	removed, err := removeStaleRuntimeDirs(base, "tv-")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(base, dead)}; !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	ents, _ := os.ReadDir(base)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	want := []string{"other-1", "tv-", "tv-007", live, served, "tv-abc"}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
	if r, err := removeStaleRuntimeDirs(filepath.Join(base, "none"), "tv-"); r != nil || err != nil {
		t.Errorf("missing base: got %q, %v", r, err)
	}
}

func TestRuntimeBaseDirAndPrefix(t *testing.T) {
	if os.Getuid() == 0 {
		if got := RuntimeBaseDir(); got != "/var/run/dpdk" {
			t.Errorf("RuntimeBaseDir as root: got %q", got)
		}
	} else {
		t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
		if got := RuntimeBaseDir(); got != "/run/user/1000/dpdk" {
			t.Errorf("RuntimeBaseDir: got %q", got)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "rte"},
		{[]string{"-l", "0", "--file-prefix=tv1"}, "tv1"},
		{[]string{"--file-prefix", "tv2", "--no-huge"}, "tv2"},
	} {
		if got := filePrefix(c.args); got != c.want {
			t.Errorf("filePrefix(%q): got %q, want %q", c.args, got, c.want)
		}
	}
}
