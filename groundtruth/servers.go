package groundtruth

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Servers are the servers of one harness run: the Go ones in this process
// (their sockets made inside the namespaces), the packaged ones as child
// processes inside S and D.
type Servers struct {
	Front *FrontEnd

	mu   sync.Mutex
	durs map[string][]time.Duration // the Go servers' handler times, by protocol

	pgLogLines, myLogLines int // log lines already read

	dir     string
	procs   []*proc
	closers []func()
}

// dnsZone is the zone the DNS server answers: d<ms>.gt.test sleeps <ms>
// milliseconds before answering.
const dnsZone = "gt.test."

// StartServers starts every server of the cases. dir is a temporary
// directory for the databases' files (removed by the caller).
func StartServers(t *Topology, dir string) (*Servers, error) {
	s := &Servers{dir: dir, durs: map[string][]time.Duration{}}
	if err := s.start(t); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Servers) start(t *Topology) error {
	// Go servers first: they are ready at once.
	for _, h := range [][3]string{{t.S, serverIP, ProtoHTTP}, {t.N, natSrvIP, ProtoNAT}} {
		if err := s.serveHTTP(h[0], h[1]+":"+httpPort, s.sleepHandler(h[2])); err != nil {
			return err
		}
	}
	if err := s.serveDNS(t.S, serverIP+":"+dnsPort); err != nil {
		return err
	}
	// Packaged servers, started together, then waited for.
	if err := s.startRedis(t.S, serverIP); err != nil {
		return err
	}
	if err := s.startRedis(t.D, backendIP); err != nil {
		return err
	}
	if err := s.startPostgres(t.S); err != nil {
		return err
	}
	if err := s.startMariaDB(t.S); err != nil {
		return err
	}
	for _, w := range []struct{ ns, addr string }{
		{t.S, serverIP + ":" + redisPort}, {t.D, backendIP + ":" + redisPort},
		{t.S, serverIP + ":" + pgPort}, {t.S, serverIP + ":" + mysqlPort},
	} {
		if err := s.waitTCP(w.ns, w.addr, 60*time.Second); err != nil {
			return err
		}
	}
	front, err := newFrontEnd(t.S, backendIP+":"+redisPort)
	if err != nil {
		return err
	}
	s.Front = front
	s.closers = append(s.closers, front.close)
	return s.serveHTTP(t.S, serverIP+":"+frontendPort, front)
}

// sleepHandler answers GET /sleep?d=DURATION after sleeping DURATION, and
// logs its own time under proto.
func (s *Servers) sleepHandler(proto string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		time.Sleep(d)
		s.logDuration(proto, time.Since(start))
		fmt.Fprintln(w, "ok")
	}
}

func (s *Servers) logDuration(proto string, d time.Duration) {
	s.mu.Lock()
	s.durs[proto] = append(s.durs[proto], d)
	s.mu.Unlock()
}

// serveHTTP serves h on addr inside namespace ns.
func (s *Servers) serveHTTP(ns, addr string, h http.Handler) error {
	var ln net.Listener
	if err := inNS(ns, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		return fmt.Errorf("http server %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.closers = append(s.closers, func() { _ = srv.Close() })
	return nil
}

// serveDNS answers A queries for d<ms>.gt.test after <ms> milliseconds, one
// query at a time (dig asks one after the other).
func (s *Servers) serveDNS(ns, addr string) error {
	var pc net.PacketConn
	if err := inNS(ns, func() (err error) { pc, err = net.ListenPacket("udp4", addr); return err }); err != nil {
		return fmt.Errorf("dns server %s: %w", addr, err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			start := time.Now()
			if resp, delay, err := dnsAnswer(buf[:n]); err == nil {
				time.Sleep(delay)
				s.logDuration(ProtoDNS, time.Since(start))
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	s.closers = append(s.closers, func() { _ = pc.Close() })
	return nil
}

// dnsAnswer builds the answer to a query for d<ms>.gt.test and says how long
// to wait before sending it.
func dnsAnswer(query []byte) ([]byte, time.Duration, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, 0, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, 0, err
	}
	name := strings.ToLower(q.Name.String())
	label, _, _ := strings.Cut(name, ".")
	ms, err := strconv.Atoi(strings.TrimPrefix(label, "d"))
	if !strings.HasSuffix(name, "."+dnsZone) || !strings.HasPrefix(label, "d") || err != nil {
		return nil, 0, fmt.Errorf("dns: not ours: %s", name)
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	if q.Type == dnsmessage.TypeA {
		_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}})
	}
	resp, err := b.Finish()
	return resp, time.Duration(ms) * time.Millisecond, err
}

// startNSProc starts a packaged server in ns and remembers it for Close.
func (s *Servers) startNSProc(ns, name string, cmd *exec.Cmd) error {
	p, err := startNS(ns, name, cmd)
	if err != nil {
		return err
	}
	s.procs = append(s.procs, p)
	return nil
}

// startRedis starts redis-server on addr:6379 in ns, without persistence,
// with DEBUG allowed (DEBUG SLEEP is the injected delay).
func (s *Servers) startRedis(ns, addr string) error {
	dir := filepath.Join(s.dir, "redis-"+addr)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("redis-server", "--bind", addr, "--port", redisPort, "--save", "", "--appendonly", "no",
		"--enable-debug-command", "yes", "--protected-mode", "no",
		"--slowlog-log-slower-than", "0", "--slowlog-max-len", "100000", "--dir", dir, "--daemonize", "no", "--loglevel", "warning")
	return s.startNSProc(ns, "redis-server "+addr, cmd)
}

// lookupIDs gives the uid and gid of a system user.
func lookupIDs(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// pgBin finds a PostgreSQL server program: on PATH, else in Debian's
// versioned directory.
func pgBin(name string) (string, error) {
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name); len(m) > 0 {
		return m[len(m)-1], nil
	}
	return exec.LookPath(name)
}

// startPostgres initialises a cluster in a temporary directory (trust
// authentication, no fsync) and starts postgres on S's address, as the
// postgres user.
func (s *Servers) startPostgres(ns string) error {
	cred, err := lookupIDs("postgres")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	initdb, err := pgBin("initdb")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	postgres, err := pgBin("postgres")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	dir := filepath.Join(s.dir, "pg")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return err
	}
	cmd := exec.Command(initdb, "-D", dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("postgres: initdb: %w: %s", err, tail(out))
	}
	// initdb trusts local connections only; the clients come from C.
	hba, err := os.OpenFile(filepath.Join(dir, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	_, err = fmt.Fprintln(hba, "host all all 10.11.0.0/24 trust")
	if cerr := hba.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("postgres: pg_hba.conf: %w", err)
	}
	cmd = exec.Command(postgres, "-D", dir, "-h", serverIP, "-p", pgPort, "-k", dir,
		"-c", "fsync=off", "-c", "ssl=off", "-c", "shared_buffers=16MB", "-c", "max_connections=20",
		// Every statement's duration, as the server measured it.
		"-c", "log_min_duration_statement=0", "-c", "logging_collector=on", "-c", "log_directory="+dir, "-c", "log_filename=pg.log")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = dir
	return s.startNSProc(ns, "postgres", cmd)
}

// startMariaDB starts mariadbd on S's address with an empty data directory
// and no grant tables (any user may connect), as the mysql user.
func (s *Servers) startMariaDB(ns string) error {
	cred, err := lookupIDs("mysql")
	if err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	dir := filepath.Join(s.dir, "mysql")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return err
	}
	cmd := exec.Command(bin, "--no-defaults", "--datadir="+dir, "--user=mysql", "--bind-address="+serverIP, "--port="+mysqlPort,
		"--socket="+filepath.Join(dir, "mysqld.sock"), "--pid-file="+filepath.Join(dir, "mysqld.pid"),
		"--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=16M", "--skip-name-resolve",
		"--log-error="+filepath.Join(dir, "error.log"),
		// Every statement's duration, as the server measured it.
		"--slow-query-log=1", "--long-query-time=0", "--slow-query-log-file="+filepath.Join(dir, "slow.log"))
	return s.startNSProc(ns, "mariadbd", cmd)
}

// waitTCP waits until addr in ns accepts a connection.
func (s *Servers) waitTCP(ns, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := inNS(ns, func() error {
			c, err := net.DialTimeout("tcp4", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return nil
		}
		for _, p := range s.procs {
			if p.exited() {
				return fmt.Errorf("%s exited: %v: %s", p.name, p.err, tail(p.log.Bytes()))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %v: %w", addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Close stops every server.
func (s *Servers) Close() {
	for _, c := range s.closers {
		c()
	}
	for _, p := range s.procs {
		_ = p.stop(5 * time.Second)
	}
}

// FrontEnd is an HTTP server that calls redis in D inside each request:
// GET /front?calls=N&before=D1&db=D2&after=D3 sleeps D1, sends N DEBUG
// SLEEP D2 commands one after the other, sleeps D3 and answers. It logs
// each request's times, the tier split's ground truth.
type FrontEnd struct {
	ns, backend string

	mu   sync.Mutex
	conn net.Conn // dialled at the first request, so the captures see the handshake
	rd   *bufio.Reader
	log  []FrontLog
}

// FrontLog is the front end's own record of one request.
type FrontLog struct {
	Start time.Time      // handler entered (the request was read)
	Calls [][2]time.Time // each backend call: command written, reply read
	End   time.Time      // response about to be written
}

// Before, Backend and After are the front end's view of the tier split.
func (l FrontLog) Before() time.Duration { return l.Calls[0][0].Sub(l.Start) }
func (l FrontLog) After() time.Duration  { return l.End.Sub(l.Calls[len(l.Calls)-1][1]) }
func (l FrontLog) Backend() time.Duration {
	var d time.Duration
	for _, c := range l.Calls {
		d += c[1].Sub(c[0])
	}
	return d
}

func newFrontEnd(ns, backend string) (*FrontEnd, error) {
	return &FrontEnd{ns: ns, backend: backend}, nil
}

// dial connects to the backend from the front end's namespace. f.mu is held.
func (f *FrontEnd) dial() error {
	if f.conn != nil {
		return nil
	}
	var c net.Conn
	err := inNS(f.ns, func() (err error) { c, err = net.DialTimeout("tcp4", f.backend, 5*time.Second); return err })
	if err != nil {
		return fmt.Errorf("front end: dial backend %s: %w", f.backend, err)
	}
	f.conn, f.rd = c, bufio.NewReader(c)
	return nil
}

func (f *FrontEnd) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.Close()
	}
}

// Logs returns the requests logged since the last call and forgets them.
func (f *FrontEnd) Logs() []FrontLog {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.log
	f.log = nil
	return l
}

func (f *FrontEnd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q := r.URL.Query()
	calls, err1 := strconv.Atoi(q.Get("calls"))
	before, err2 := time.ParseDuration(q.Get("before"))
	db, err3 := time.ParseDuration(q.Get("db"))
	after, err4 := time.ParseDuration(q.Get("after"))
	if err := errors.Join(err1, err2, err3, err4); err != nil || calls < 1 {
		http.Error(w, fmt.Sprintf("bad query: %v", err), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.dial(); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	l := FrontLog{Start: start}
	time.Sleep(before)
	secs := strconv.FormatFloat(db.Seconds(), 'f', 3, 64)
	cmd := fmt.Sprintf("*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$%d\r\n%s\r\n", len(secs), secs)
	for range calls {
		t0 := time.Now()
		_ = f.conn.SetDeadline(t0.Add(10 * time.Second))
		if _, err := f.conn.Write([]byte(cmd)); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		line, err := f.rd.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "+OK") {
			http.Error(w, fmt.Sprintf("backend: %q %v", line, err), http.StatusBadGateway)
			return
		}
		l.Calls = append(l.Calls, [2]time.Time{t0, time.Now()})
	}
	time.Sleep(after)
	l.End = time.Now()
	f.log = append(f.log, l)
	fmt.Fprintln(w, "ok")
}
