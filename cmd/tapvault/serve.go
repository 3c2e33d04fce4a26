package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"tapvault/api"
	"tapvault/pipeline"
	"tapvault/query"
	"tapvault/web"
	"tapvault/writer"
)

// tokenEnv names the environment variable that may carry the API token. A
// token is never taken from a flag value: it would show in ps.
const tokenEnv = "TAPVAULT_TOKEN"

func newServeCmd() *cobra.Command {
	var (
		data, listen, tokenFile string
		maxConcurrent           int
		tlsCert, tlsKey         string
		fl                      fleetListen
		fleetFile               string
		peers                   []string
		pointName               string
		priority                string
	)
	cmd := &cobra.Command{
		Use:   "serve --data DIR [--listen 127.0.0.1:8080] [--token-file FILE]",
		Short: "Serve the HTTP query API for a store: packets as pcap/pcapng; flows, stats, messages and latency as JSON; drill-down to a message's packets",
		Long: `Serve answers the HTTP API (docs/api.md) for a store at rest, or beside a
running capture (it only reads committed blocks):
  GET /api/v1/packets?filter=&from=&to=&format=pcap|pcapng&limit=
  GET /api/v1/flows?filter=&from=&to=&limit=
  GET /api/v1/stats
e.g.  curl -sG http://127.0.0.1:8080/api/v1/packets --data-urlencode 'filter=tcp port 80' | tcpdump -r -

It listens on 127.0.0.1 unless told otherwise. Listening on any other
address needs a bearer token, read from --token-file FILE or the
TAPVAULT_TOKEN environment variable (never from the command line, where ps
shows it); a token set on loopback is required there too. SIGINT or SIGTERM
shuts the server down.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("serve takes no arguments, got %q", args)
			}
			if fleetFile != "" {
				if data != "" || fl.addr != "" {
					return errors.New("--fleet serves the fleet's centre, which has no store: drop --data and --fleet-listen")
				}
				token, err := loadToken(tokenFile, os.Getenv(tokenEnv))
				if err != nil {
					return err
				}
				return runCentre(cmd, fleetFile, listen, token)
			}
			if data == "" {
				return errors.New("--data DIR is required (or --fleet fleet.yaml for the fleet's centre)")
			}
			token, err := loadToken(tokenFile, os.Getenv(tokenEnv))
			if err != nil {
				return err
			}
			dirs := []string{data}
			for _, p := range peers {
				if _, dir, ok := strings.Cut(p, "="); ok {
					dirs = append(dirs, dir)
				}
			}
			yield, err := captureYield(priority, dirs)
			if err != nil {
				return err
			}
			query.SetProtectCapture(yield)
			defer query.SetProtectCapture(nil)
			serveGC()
			log := slog.Default()
			st, err := query.OpenStore(data, log)
			if err != nil {
				return err
			}
			defer st.Close()
			peerStores, closePeers, err := openPeers(peers, data, log)
			if err != nil {
				return err
			}
			defer closePeers()
			srv, err := api.NewServer(st, api.ServerOptions{
				Addr: listen, Token: token, MaxConcurrent: maxConcurrent, Logger: log,
				CertFile: tlsCert, KeyFile: tlsKey, UI: web.FS(),
				Peers: peerStores, PointName: pointName,
				// Prometheus /metrics beside the API, behind the same
				// token rule, as capture has it.
				Handlers: map[string]http.Handler{"/metrics": pipeline.MetricsHandler(pipeline.NewRegistry(&storeCollector{st: st, dir: data, log: log}))},
			})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			ln, serveFleet, err := fl.listen()
			if err != nil {
				return err
			}
			if ln != nil {
				go serveFleet(ctx, srv)
			}
			return srv.ListenAndServe(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "store directory")
	f.StringVar(&listen, "listen", api.DefaultAPIAddr, "listen address; anything but loopback needs a token")
	f.StringVar(&tokenFile, "token-file", "", "file holding the bearer token (else $"+tokenEnv+")")
	f.StringVar(&tlsCert, "tls-cert", "", "serve over TLS with this PEM certificate (with --tls-key)")
	f.StringVar(&tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	f.IntVar(&maxConcurrent, "max-queries", api.DefaultMaxConcurrent, "queries that may run at once; more wait briefly, then get 503")
	fl.flags(f)
	f.StringArrayVar(&peers, "peer", nil, "another capture point's store on this machine, NAME=DIR (repeatable): one exchange across the points (docs/hops.md)")
	f.StringVar(&pointName, "name", "here", "this store's capture point name, beside --peer")
	f.StringVar(&priority, "query-priority", "auto", "CPU and disk priority of queries: low (nice 19, idle I/O: capture first), normal, or auto: low while a capture writes the store (or a --peer store), normal otherwise")
	f.StringVar(&fleetFile, "fleet", "", "serve the fleet's centre from this fleet.yaml instead of a store (docs/fleet.md): exchanges and health from ClickHouse, packets from the sensors over mutual TLS")
	return cmd
}

// loadToken returns the token from file, else from env (the value of
// TAPVAULT_TOKEN), else "". Giving both is an error: which one wins would be
// a guess. Surrounding white space (a trailing newline) is dropped.
func loadToken(file, env string) (string, error) {
	env = strings.TrimSpace(env)
	if file == "" {
		return env, nil
	}
	if env != "" {
		return "", fmt.Errorf("both --token-file and $%s are set: give one", tokenEnv)
	}
	fi, err := os.Stat(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %q is not a regular file", file)
	}
	if fi.Size() > 4096 {
		return "", fmt.Errorf("token file %q is %d bytes: want one token", file, fi.Size())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %q is empty", file)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		slog.Warn("the token file is readable by other users; chmod 600 it", "file", file, "mode", fi.Mode().Perm().String())
	}
	return tok, nil
}

// captureYield is serve's --query-priority as the test
// query.SetProtectCapture takes: low always yields (nil), normal never,
// auto while a capture (or an import) writes one of dirs, asked at most
// once a second.
func captureYield(mode string, dirs []string) (func() bool, error) {
	switch mode {
	case "low":
		return nil, nil
	case "normal":
		return func() bool { return false }, nil
	case "auto":
	default:
		return nil, fmt.Errorf("--query-priority %q: want auto, low or normal", mode)
	}
	var (
		mu    sync.Mutex
		asked time.Time
		live  bool
	)
	return func() bool {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(asked) >= time.Second {
			asked, live = now, slices.ContainsFunc(dirs, writer.Capturing)
		}
		return live
	}, nil
}

// serveGC sets serve's garbage collector: GOGC 400 (unless $GOGC says
// otherwise), with a soft memory limit of a quarter of the machine's (or
// its cgroup's) memory (unless $GOMEMLIMIT) so that the heap it allows stays bounded. A
// full scan holds a window of decoded records, a heap of 100-250 MB that is
// live and full of pointers, and at the default GOGC 100 each collection
// marked it again: a diagnosis of the 14M-packet store took 1.40 s (2.2 s
// CPU) at 100 and 1.10 s (1.74 s) at 400, tiers 1.08 -> 0.98 s, for 270
// against 240 MB of peak RSS (medians of 3, fresh serve each). capture
// keeps the default: an endpoint sensor's memory budget is tighter.
func serveGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		if total := physicalMemory(); total > 0 {
			debug.SetMemoryLimit(total / 4)
		}
	}
}

// physicalMemory is the memory serve may use in bytes: the machine's
// (MemTotal of /proc/meminfo), or its cgroup's limit where that is lower
// (cgroup v2 memory.max, v1 memory.limit_in_bytes: a container); 0 where
// neither can be read.
func physicalMemory() int64 {
	total := memTotal()
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n // "max" (no limit) does not parse
		}
	}
	return total
}

// memTotal is MemTotal of /proc/meminfo in bytes, or 0.
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}
