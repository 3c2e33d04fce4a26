package groundtruth

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// nsPrefix starts the name of every namespace the harness creates:
// gt-<pid>-<role>. RemoveStale deletes those of processes that are gone.
const nsPrefix = "gt-"

// inNS runs fn on an OS thread that has entered network namespace ns. Sockets
// fn creates belong to ns for their whole life, whatever goroutine uses them
// later, and a process fn starts (exec.Cmd.Start forks on the calling thread)
// runs in ns. The thread is never handed back to the Go scheduler: the
// goroutine ends while still locked, so Go discards the thread. ns "" runs
// fn in the caller's namespace.
func inNS(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- fmt.Errorf("namespace %s: %w", ns, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// run runs a command and returns its error with the command and its output.
func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// runNS runs a command inside namespace ns with `ip netns exec`.
func runNS(ns string, args ...string) error {
	return run(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// proc is a process the harness started inside a namespace.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *syncBuffer
}

// syncBuffer is a bytes.Buffer that a process writes while the harness
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Bytes returns a copy of what was written.
func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func (s *syncBuffer) String() string { return string(s.Bytes()) }

// startNS starts cmd inside namespace ns. Its output goes to a buffer that
// Output returns (for error messages). Pdeathsig is not set: it fires when
// the forking thread dies, which inNS's thread does at once; the teardown
// kills every process left in the namespaces instead.
func startNS(ns, name string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: new(syncBuffer)}
	if cmd.Stdout == nil {
		cmd.Stdout = p.log
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.log
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := inNS(ns, cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, ns, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// runInNS runs cmd inside namespace ns and waits for it, up to timeout.
func runInNS(ns, name string, cmd *exec.Cmd, timeout time.Duration) ([]byte, error) {
	out := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	p, err := startNS(ns, name, cmd)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.stop(time.Second)
		return out.Bytes(), fmt.Errorf("%s: timed out after %v: %s", name, timeout, tail(out.Bytes()))
	}
	if p.err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", name, p.err, tail(out.Bytes()))
	}
	return out.Bytes(), nil
}

// exited reports whether the process ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	return p.signal(syscall.SIGTERM, grace)
}

// signal sends sig to the process group, then SIGKILL after grace.
func (p *proc) signal(sig syscall.Signal, grace time.Duration) error {
	if p.exited() {
		return p.err
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	return p.err
}

func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// killNSProcs kills every process still running in namespace ns.
func killNSProcs(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// deleteNS kills what runs in ns and deletes it.
func deleteNS(ns string) error {
	killNSProcs(ns)
	for i := 0; ; i++ {
		err := run("ip", "netns", "del", ns)
		if err == nil || i == 20 {
			return err
		}
		time.Sleep(100 * time.Millisecond) // processes still dying
		killNSProcs(ns)
	}
}

// RemoveStale deletes the namespaces (and with them their interfaces and
// processes) that earlier harness runs left behind when they crashed: those
// named gt-<pid>-* whose pid is not a running process.
func RemoveStale() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, nsPrefix) {
			continue
		}
		f := strings.SplitN(strings.TrimPrefix(name, nsPrefix), "-", 2)
		pid, err := strconv.Atoi(f[0])
		if err != nil || len(f) != 2 {
			continue
		}
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		_ = deleteNS(name)
	}
}
