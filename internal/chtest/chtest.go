package chtest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian's clickhouse-server package puts the server; Path
// lookup comes first so that a newer server on PATH can be tested too.
const Binary = "/usr/sbin/clickhouse-server"

// readyTimeout bounds how long a start waits for SELECT 1. 18.16 answers in
// about a second on an idle machine; the slack is for a loaded one.
const readyTimeout = 60 * time.Second

// Options change what Start writes into the server's config.
type Options struct {
	// ExtraConfig is raw XML inserted inside <yandex>, e.g. a
	// <remote_servers> section for a Distributed table test.
	ExtraConfig string
}

// Server is one clickhouse-server process owned by a test.
type Server struct {
	// URL is the HTTP interface, http://127.0.0.1:PORT, without a trailing
	// slash.
	URL string
	// HTTPPort and TCPPort are the server's ports (TCP is the native
	// protocol, which Distributed tables use between servers).
	HTTPPort, TCPPort int
	// Dir holds the config, the data and the server's logs.
	Dir string

	t      testing.TB
	binary string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a server with the default config and stops it when the test
// ends. It skips the test only when clickhouse-server is not installed.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, opt Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		if _, serr := os.Stat(Binary); serr != nil {
			t.Skipf("clickhouse-server is not installed (not on PATH, not at %s): run scripts/setup.sh to test against a real ClickHouse", Binary)
		}
		bin = Binary
	}
	s := &Server{t: t, binary: bin, Dir: t.TempDir()}
	// A spare port found by listening on :0 can be taken by someone else
	// before the server binds it; on that (rare) failure, pick again.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if err := s.configure(opt); err != nil {
			t.Fatalf("chtest: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			// At the end the data no longer matters: no graceful wait.
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("chtest: %v", lastErr)
	return nil
}

func (s *Server) configure(opt Options) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	s.HTTPPort, s.TCPPort = ports[0], ports[1]
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", s.HTTPPort)
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>%[1]s/log/server.log</log><errorlog>%[1]s/log/err.log</errorlog><console>0</console></logger>
  <http_port>%[2]d</http_port>
  <tcp_port>%[3]d</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>%[1]s/data/</path>
  <tmp_path>%[1]s/tmp/</tmp_path>
  <user_files_path>%[1]s/user_files/</user_files_path>
  <format_schema_path>%[1]s/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>134217728</mark_cache_size>
  <uncompressed_cache_size>134217728</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
%[4]s
</yandex>
`, s.Dir, s.HTTPPort, s.TCPPort, opt.ExtraConfig)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(s.Dir, "config.xml"), []byte(conf), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "users.xml"), []byte(users), 0o644)
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a spare port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Start starts the server again after Stop, on the same ports and data
// directory, and waits until it answers. It fails the test if it cannot.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("chtest: restart: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("server on %s is already running", s.URL)
	}
	out, err := os.OpenFile(filepath.Join(s.Dir, "log", "stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.binary, "--config-file="+filepath.Join(s.Dir, "config.xml"))
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = out, out
	// The server must not outlive a test binary that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the OS thread that forked the server exits,
	// not the process: a goroutine that exits locked to that thread (as
	// query.RunLowPriority's do, in tests that serve queries in-process)
	// would kill the server mid-test. So the server is started, and
	// waited for, on a thread locked for as long as it runs.
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		out.Close()
		close(done)
	}()
	if err := <-started; err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", s.binary, err)
	}
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(readyTimeout)
	for {
		if _, err := s.query("SELECT 1"); err == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("clickhouse-server exited during start-up (%s); log tail:\n%s", cmd.ProcessState, s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("clickhouse-server on %s did not answer SELECT 1 within %s; log tail:\n%s", s.URL, readyTimeout, s.logTail())
		}
	}
}

// Stop stops the server and waits for it to exit: SIGTERM, then SIGKILL
// after 5 s (a client's idle keep-alive connection makes 18.16's graceful
// shutdown wait about 10 s; an insert that returned is on disk either way).
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Kill stops the server with SIGKILL, as a crash or a power cut of the
// process would, and waits for it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// AddConfig writes xml (elements that go inside <yandex>) to the server's
// config.d/NAME.xml, which the server merges into its config at its next
// start: for a config that needs other servers' ports, known only once they
// started (a <remote_servers> cluster). Stop and Start the server after.
func (s *Server) AddConfig(name, xml string) {
	s.t.Helper()
	dir := filepath.Join(s.Dir, "config.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatalf("chtest: %v", err)
	}
	body := "<?xml version=\"1.0\"?>\n<yandex>\n" + xml + "\n</yandex>\n"
	if err := os.WriteFile(filepath.Join(dir, name+".xml"), []byte(body), 0o644); err != nil {
		s.t.Fatalf("chtest: %v", err)
	}
}

// PID is the server process's id (0 when stopped), for tests that measure
// its CPU time.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether the server process is up (not whether it answers).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Query runs one statement over the HTTP interface and returns the response
// body; it fails the test on an error, with ClickHouse's message.
func (s *Server) Query(sql string) string {
	s.t.Helper()
	body, err := s.query(sql)
	if err != nil {
		s.t.Fatalf("chtest: %v", err)
	}
	return body
}

func (s *Server) query(sql string) (string, error) {
	// No keep-alive: an idle connection held open here makes the server's
	// graceful shutdown wait for it.
	c := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Post(s.URL+"/", "text/plain", strings.NewReader(sql))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%q: HTTP %d: %s", sql, resp.StatusCode, bytes.TrimSpace(b))
	}
	return string(b), nil
}

func (s *Server) logTail() string {
	var b strings.Builder
	for _, f := range []string{"log/err.log", "log/stdout"} {
		data, err := os.ReadFile(filepath.Join(s.Dir, f))
		if err != nil {
			continue
		}
		if len(data) > 2000 {
			data = data[len(data)-2000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s", f, data)
	}
	return b.String()
}
