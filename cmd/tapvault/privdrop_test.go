package main

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCaptureDropsPrivileges captures as root with --user nobody: the
// process runs as nobody while it captures, the store ends up nobody's, and
// every packet is stored.
func TestCaptureDropsPrivileges(t *testing.T) {
	needDPDK(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root (to have privileges to drop)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	dir := t.TempDir()
	// nobody must be able to reach the store through its parents.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	trace := filepath.Join(dir, "trace.pcap")
	genTrace(t, trace, "imix", 200000)
	store := filepath.Join(dir, "store")
	cmd := exec.Command(os.Args[0], "capture", "--listen", "", "--user", "nobody", "--eal", ealFor("net_pcap0,rx_pcap="+trace), "--data", store, "--block-size", "128KiB", "--segment-size", "4MiB")
	cmd.Env = append(os.Environ(), "TAPVAULT_E2E_MAIN=1")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// While it captures, the process is nobody's.
	sawNobody := false
	deadline := time.Now().Add(30 * time.Second)
	for !sawNobody && time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
		if err != nil {
			break // exited
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "Uid:" && f[2] == nobody.Uid {
				sawNobody = true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("capture as nobody: %v\n%s", err, logs.String())
	}
	if !sawNobody {
		t.Fatalf("never saw the capture running as uid %d\n%s", uid, logs.String())
	}
	if !strings.Contains(logs.String(), "200000 packets stored, 0 dropped") {
		t.Fatalf("capture summary:\n%s", logs.String())
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(store, "segments"), &st); err != nil || int(st.Uid) != uid {
		t.Fatalf("store segments owned by uid %d (err %v), want %d", st.Uid, err, uid)
	}
	if cnt, _ := tv(t, false, "query", "--data", store, "--count"); strings.TrimSpace(cnt) != "200000" {
		t.Fatalf("count: %s", cnt)
	}
	if vout, _ := tv(t, false, "verify", "--data", store); !strings.Contains(vout, "verify: OK") {
		t.Fatalf("verify:\n%s", vout)
	}
}
