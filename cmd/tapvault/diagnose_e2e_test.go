package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tapvault/tracegen"
)

// diagJSON is the part of tapvault diagnose --json the test reads.
type diagJSON struct {
	Exchanges int  `json:"exchanges"`
	Sampled   bool `json:"sampled"`
	Findings  []struct {
		Kind     string           `json:"kind"`
		Server   string           `json:"server"`
		Text     string           `json:"text"`
		Count    int              `json:"count"`
		Of       int              `json:"of"`
		Numbers  map[string]int64 `json:"numbers"`
		Backends []struct {
			Server string `json:"server"`
			Calls  int    `json:"calls"`
		} `json:"backends"`
		Examples []struct {
			ID      string `json:"id"`
			Role    string `json:"role"`
			Metric  string `json:"metric"`
			ValueNS int64  `json:"value_ns"`
		} `json:"examples"`
	} `json:"findings"`
	Servers []struct {
		Server string `json:"server"`
	} `json:"servers"`
}

func parseDiag(t *testing.T, s string) diagJSON {
	t.Helper()
	var d diagJSON
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		t.Fatalf("diagnose --json: %v\n%s", err, s)
	}
	return d
}

// TestDiagnoseEndToEnd imports the generated app trace and checks the
// verdicts against what the generator made: in every run of 20
// conversations (and backend connections) 3 are slow-app (a bare ACK,
// the answer 40 ms later) and 3 slow-net (the server's leg 30 ms longer),
// for clients spread over 10.1.0.0/24-10.1.3.0/24, and a front end
// (203.0.113.80:8080) whose wait is mostly its backend calls. So each
// server of enough exchanges must be slow_server over exactly its slow-app
// exchanges, server_network over exactly its slow-net ones (every client
// network shows them), the front end tier_backend, and no client network
// may be named. The examples lead to their records and packets, the API
// answers what the command line does, and --server and --min-count work.
func TestDiagnoseEndToEnd(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "app.pcap")
	if _, err := tracegen.GenerateFile(trace, appOpts); err != nil {
		t.Fatal(err)
	}
	truth, err := tracegen.AppGroundTruth(appOpts)
	if err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	// Fast servers sit up to 20 ms away, slow-net paths 30 ms more.
	tv(t, false, "import", "--data", store, "--slow-network", "25ms", trace)
	out, _ := tv(t, false, "diagnose", "--data", store, "--slow-network", "25ms", "--json")
	d := parseDiag(t, out)
	if d.Sampled || d.Exchanges == 0 {
		t.Fatalf("exchanges %d, sampled %v", d.Exchanges, d.Sampled)
	}

	// Ground truth per server: TCP exchanges by class.
	type want struct{ tcp, slowApp, slowNet int }
	byServer := map[string]*want{}
	for _, e := range truth {
		if e.Transport != "tcp" {
			continue
		}
		w := byServer[e.Server.String()]
		if w == nil {
			w = &want{}
			byServer[e.Server.String()] = w
		}
		w.tcp++
		switch e.Class {
		case tracegen.AppSlowApp:
			w.slowApp++
		case tracegen.AppSlowNet:
			w.slowNet++
		}
	}
	type fkey struct{ kind, server string }
	found := map[fkey]int{}
	for i, f := range d.Findings {
		found[fkey{f.Kind, f.Server}] = i
		if f.Kind == "client_network" {
			t.Errorf("client network named, but the generator slows no client network: %s", f.Text)
		}
	}
	const front = "203.0.113.80:8080"
	checked := 0
	for srv, w := range byServer {
		if w.tcp < 20 || srv == front {
			continue
		}
		checked++
		i, ok := found[fkey{"slow_server", srv}]
		if !ok {
			t.Errorf("%s: no slow_server finding for its %d slow-app exchanges", srv, w.slowApp)
		} else if f := d.Findings[i]; f.Count != w.slowApp || f.Numbers["bare_ack"] != int64(w.slowApp) || f.Numbers["server_p50_ns"] != 40_000_000 {
			t.Errorf("%s slow_server: count %d, bare ACKs %d, server p50 %d; want %d, %d, 40ms", srv, f.Count, f.Numbers["bare_ack"], f.Numbers["server_p50_ns"], w.slowApp, w.slowApp)
		}
		// The clients' servers have clients in four /24s; a backend has
		// one client, the front end: nothing to compare.
		kind := "server_network"
		if strings.HasPrefix(srv, "10.10.") {
			kind = "network_unclear"
		}
		if i, ok := found[fkey{kind, srv}]; !ok {
			t.Errorf("%s: no %s finding for its %d slow-net exchanges", srv, kind, w.slowNet)
		} else if f := d.Findings[i]; f.Count != w.slowNet || f.Numbers["extra_p50_ns"] < 25_000_000 || f.Numbers["extra_p50_ns"] > 35_000_000 {
			t.Errorf("%s %s: count %d, extra p50 %d; want %d, about 30ms", srv, kind, f.Count, f.Numbers["extra_p50_ns"], w.slowNet)
		}
	}
	if checked < 5 {
		t.Fatalf("only %d servers checked", checked)
	}
	i, ok := found[fkey{"tier_backend", front}]
	if !ok {
		t.Fatalf("no tier_backend finding for the front end; findings %v", found)
	}
	tf := d.Findings[i]
	var backends []string
	for _, b := range tf.Backends {
		backends = append(backends, b.Server)
	}
	slices.Sort(backends)
	if tf.Numbers["backend_pct"] < 80 || !slices.Equal(backends, []string{"10.10.1.20:5432", "10.10.1.30:6379"}) {
		t.Errorf("tier_backend: backend share %d%%, backends %v; want most of the wait, both backends", tf.Numbers["backend_pct"], backends)
	}

	// The examples lead to their records and their packets.
	sf := d.Findings[found[fkey{"slow_server", "198.51.100.10:80"}]]
	if len(sf.Examples) != 2 || sf.Examples[0].Role != "slowest" || sf.Examples[1].Role != "median" {
		t.Fatalf("examples %+v", sf.Examples)
	}
	for _, e := range sf.Examples {
		rec := jsonLines(t, must(tv(t, false, "messages", "--data", store, "--json", "id "+e.ID)))
		if len(rec) != 1 || num(rec[0], "server_ns") != e.ValueNS {
			t.Fatalf("example %s: records %v, want one with server_ns %d", e.ID, rec, e.ValueNS)
		}
		out := filepath.Join(dir, e.ID+".pcap")
		tv(t, false, "query", "--data", store, "--message", e.ID, "-w", out)
		if n, want := len(readAll(t, out)), len(rec[0]["packets"].([]any)); n != want || n == 0 {
			t.Fatalf("example %s: %d packets, want the record's %d", e.ID, n, want)
		}
	}

	// The text says the same.
	text, _ := tv(t, false, "diagnose", "--data", store, "--slow-network", "25ms")
	for _, s := range []string{"is slow, but its ACKs are prompt", "Every client of 198.51.100.10:80 (http) shows the same extra network delay",
		front + " (http) waits on its database", "tapvault messages --data " + store + " --tiers 'server " + front + "'", sf.Examples[0].ID} {
		if !strings.Contains(text, s) {
			t.Errorf("text output lacks %q:\n%s", s, text)
		}
	}

	// --server keeps a front end and its backends; --min-count too high
	// says there is not enough data.
	sel := parseDiag(t, must(tv(t, false, "diagnose", "--data", store, "--json", "--server", front)))
	var servers []string
	for _, s := range sel.Servers {
		servers = append(servers, s.Server)
	}
	slices.Sort(servers)
	if !slices.Equal(servers, []string{"10.10.1.20:5432", "10.10.1.30:6379", front}) {
		t.Errorf("--server %s: servers %v", front, servers)
	}
	few := parseDiag(t, must(tv(t, false, "diagnose", "--data", store, "--json", "--min-count", "100000")))
	if len(few.Findings) != 1 || few.Findings[0].Kind != "not_enough_data" {
		t.Errorf("--min-count 100000: findings %+v, want only not_enough_data", few.Findings)
	}
	tv(t, true, "diagnose", "--data", store, "--server", "nonsense")

	// The API answers what the command line does.
	get := serveStore(t, store)
	if code, b := get("/api/v1/diagnose?slow_network=25ms"); code != 200 || string(b) != out {
		t.Fatalf("API diagnose: status %d:\n%s\nwant the CLI's:\n%s", code, b, out)
	}
	if code, b := get("/api/v1/diagnose?server=" + front); code != 200 || parseDiag(t, string(b)).Exchanges != sel.Exchanges {
		t.Errorf("API diagnose server=%s: status %d, want the CLI's %d exchanges: %s", front, code, sel.Exchanges, b)
	}
}

func must(stdout, _ string) string { return stdout }
