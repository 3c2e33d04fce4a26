package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// Result is one run of one probe.
type Result struct {
	Probe, Kind, Location string
	Start                 time.Time
	Duration              time.Duration
	Bytes                 int64 // response bytes read (HTTP body, DNS answers)
	Err                   error
}

// Runner runs a configuration's probes on their schedules.
type Runner struct {
	cfg  *Config
	tags *Tags
}

// NewRunner returns a runner for cfg (checked by Load or Check). tags may
// be nil: the probes then run untagged.
func NewRunner(cfg *Config, tags *Tags) *Runner {
	if tags == nil {
		tags = NewTags(cfg.Location)
	}
	return &Runner{cfg: cfg, tags: tags}
}

// Tags is the runner's connection table, for the capture's records.
func (r *Runner) Tags() *Tags { return r.tags }

// Run runs every probe every Every until ctx ends, the first run of each at
// once; done receives every result (from several goroutines).
func (r *Runner) Run(ctx context.Context, done func(Result)) {
	var wg sync.WaitGroup
	for i := range r.cfg.Probes {
		s := &r.cfg.Probes[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(s.Every)
			defer t.Stop()
			for {
				done(r.Once(ctx, s))
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
}

// Once runs one probe once.
func (r *Runner) Once(ctx context.Context, s *Spec) Result {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	res := Result{Probe: s.Name, Kind: s.Kind, Location: r.cfg.Location, Start: time.Now()}
	var err error
	switch s.Kind {
	case KindHTTP:
		res.Bytes, err = r.http(ctx, s)
	case KindDNS:
		res.Bytes, err = r.dns(ctx, s)
	case KindTCP:
		err = r.tcp(ctx, s)
	case KindRedis:
		err = r.redis(ctx, s)
	case KindPostgres:
		err = r.postgres(ctx, s)
	case KindMySQL:
		err = r.mysql(ctx, s)
	default:
		err = fmt.Errorf("unknown kind %q", s.Kind)
	}
	res.Duration, res.Err = time.Since(res.Start), err
	return res
}

// ErrNotAllowed is returned when a connection would leave the allow-list.
var ErrNotAllowed = errors.New("probe: destination outside the allow-list")

// dialer returns a dialer that refuses addresses outside the allow-list
// before it connects (the address actually dialled, after resolution).
func (r *Runner) dialer(s *Spec) *net.Dialer {
	return &net.Dialer{
		Timeout: s.Timeout,
		ControlContext: func(_ context.Context, network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrNotAllowed, address)
			}
			if !r.cfg.Allowed(ap.Addr()) {
				return fmt.Errorf("%w: %s is not in %s", ErrNotAllowed, ap.Addr().Unmap(), r.cfg.allowString())
			}
			return nil
		},
	}
}

// dial connects for probe s and registers the connection with the tags.
func (r *Runner) dial(ctx context.Context, s *Spec, network, addr string) (net.Conn, error) {
	c, err := r.dialer(s).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	r.tags.add(s.Name, c.LocalAddr(), c.RemoteAddr())
	if _, ok := c.(net.PacketConn); ok {
		// Unwrapped: Go's resolver frames DNS over a connection that is
		// not a PacketConn as over TCP.
		return c, nil
	}
	return &taggedConn{Conn: c, tags: r.tags}, nil
}

// taggedConn refreshes its tag when it closes: its records come after.
type taggedConn struct {
	net.Conn
	tags *Tags
}

func (c *taggedConn) Close() error {
	c.tags.refresh(c.LocalAddr(), c.RemoteAddr())
	return c.Conn.Close()
}

func (r *Runner) http(ctx context.Context, s *Spec) (int64, error) {
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, n, a string) (net.Conn, error) { return r.dial(ctx, s, n, a) },
		DisableKeepAlives: true, // one connection per probe: its handshake is part of it
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: s.Insecure},
		Proxy:             nil, // a proxy would take the probe elsewhere
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // the dialer would refuse one off the list; following none keeps a probe one exchange
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Target, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "tapvault-probe/"+s.Name)
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && resp.StatusCode >= 500 {
		err = fmt.Errorf("HTTP %s", resp.Status)
	}
	return n, err
}

func (r *Runner) dns(ctx context.Context, s *Spec) (int64, error) {
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return r.dial(ctx, s, network, s.hostPort())
	}}
	addrs, err := res.LookupNetIP(ctx, "ip4", s.Query)
	return int64(len(addrs)), err
}

func (r *Runner) tcp(ctx context.Context, s *Spec) error {
	c, err := r.dial(ctx, s, "tcp", s.hostPort())
	if err != nil {
		return err
	}
	return c.Close()
}

func (r *Runner) redis(ctx context.Context, s *Spec) error {
	c, err := r.dial(ctx, s, "tcp", s.hostPort())
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("redis answered %q to PING", strings.TrimSpace(line))
	}
	return nil
}

func (r *Runner) postgres(ctx context.Context, s *Spec) error {
	cc, err := pgx.ParseConfig(s.Target)
	if err != nil {
		return err
	}
	cc.DialFunc = func(ctx context.Context, n, a string) (net.Conn, error) { return r.dial(ctx, s, n, a) }
	cc.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
		return net.DefaultResolver.LookupHost(ctx, host)
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

func (r *Runner) mysql(ctx context.Context, s *Spec) error {
	mc, err := mysql.ParseDSN(s.Target)
	if err != nil {
		return err
	}
	dialName := "tapvault-probe-" + s.Name
	mysql.RegisterDialContext(dialName, func(ctx context.Context, addr string) (net.Conn, error) { return r.dial(ctx, s, "tcp", addr) })
	mc.Net = dialName
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}
