package groundtruth

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The servers' own account of their time per exchange: the ground truth of
// the server part. The injected delay alone understates it: a server adds
// its own processing (a fresh postgres backend's first queries load its
// catalog caches), and on a loaded machine that is milliseconds.
//
//	http, http-nat, dns, front  the Go handlers' own clocks
//	redis, backend              SLOWLOG (slowlog-log-slower-than 0), µs
//	postgres                    log_min_duration_statement=0, "duration: X ms"
//	mysql                       the slow query log with long_query_time=0, Query_time
//
// ServerTimes returns, in order, the durations logged for proto since its
// last call.
func (s *Servers) ServerTimes(t *Topology, proto string) ([]time.Duration, error) {
	switch proto {
	case ProtoHTTP, ProtoNAT, ProtoDNS:
		s.mu.Lock()
		defer s.mu.Unlock()
		d := s.durs[proto]
		delete(s.durs, proto)
		return d, nil
	case ProtoRedis:
		return redisSlowlog(t.S, serverIP)
	case ProtoBackend:
		return redisSlowlog(t.D, backendIP)
	case ProtoPostgres:
		return s.readLog(filepath.Join(s.dir, "pg", "pg.log"), &s.pgLogLines, pgDuration)
	case ProtoMySQL:
		return s.readLog(filepath.Join(s.dir, "mysql", "slow.log"), &s.myLogLines, mysqlDuration())
	}
	return nil, nil
}

// redisSlowlog reads and resets the SLOWLOG of the redis-server at addr in
// ns, keeping the DEBUG commands, oldest first.
func redisSlowlog(ns, addr string) ([]time.Duration, error) {
	out, err := runInNS(ns, "redis-cli slowlog", exec.Command("redis-cli", "-h", addr, "-p", redisPort, "--json", "SLOWLOG", "GET", "-1"), 30*time.Second)
	if err != nil {
		return nil, err
	}
	var entries [][]any
	if err := json.Unmarshal(out, &entries); err != nil {
		return nil, fmt.Errorf("redis SLOWLOG: %w in %q", err, tail(out))
	}
	if _, err := runInNS(ns, "redis-cli slowlog reset", exec.Command("redis-cli", "-h", addr, "-p", redisPort, "SLOWLOG", "RESET"), 30*time.Second); err != nil {
		return nil, err
	}
	var d []time.Duration
	for i := len(entries) - 1; i >= 0; i-- { // SLOWLOG GET is newest first
		e := entries[i]
		if len(e) < 4 {
			continue
		}
		args, _ := e[3].([]any)
		us, ok := e[2].(float64)
		if !ok || len(args) == 0 || !strings.EqualFold(fmt.Sprint(args[0]), "DEBUG") {
			continue
		}
		d = append(d, time.Duration(us)*time.Microsecond)
	}
	return d, nil
}

// readLog reads the lines of a server log after the first *done, giving each
// to parse, and moves *done to the end.
func (s *Servers) readLog(path string, done *int, parse func(line string) (time.Duration, bool)) ([]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var d []time.Duration
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		if n <= *done {
			continue
		}
		if v, ok := parse(sc.Text()); ok {
			d = append(d, v)
		}
	}
	*done = n
	return d, sc.Err()
}

// pgDuration reads "... LOG:  duration: 20.431 ms  statement: SELECT pg_sleep(0.020);".
func pgDuration(line string) (time.Duration, bool) {
	_, rest, ok := strings.Cut(line, "duration: ")
	if !ok || !strings.Contains(rest, "pg_sleep") {
		return 0, false
	}
	ms, _, _ := strings.Cut(rest, " ms")
	v, err := strconv.ParseFloat(ms, 64)
	return time.Duration(v * 1e6), err == nil
}

// mysqlDuration reads the slow query log: a "# Query_time: 0.020154 ..."
// header, then the statement.
func mysqlDuration() func(line string) (time.Duration, bool) {
	var last time.Duration
	return func(line string) (time.Duration, bool) {
		if rest, ok := strings.CutPrefix(line, "# Query_time: "); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				last = time.Duration(v * 1e9)
			}
			return 0, false
		}
		if strings.Contains(strings.ToUpper(line), "SLEEP(") && !strings.HasPrefix(line, "#") {
			return last, true
		}
		return 0, false
	}
}
