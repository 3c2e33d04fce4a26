package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAPIDiagnoseParams checks the diagnose endpoint's parameters: each bad
// one a 400 naming it, before anything is read; a store without message
// records answers "not enough data"; the token rule holds. The verdicts
// themselves are checked against the command line end to end
// (cmd/tapvault TestDiagnoseEndToEnd).
func TestAPIDiagnoseParams(t *testing.T) {
	e := newAPIEnv(t, ServerOptions{}, false)
	for _, c := range []struct{ q, says string }{
		{"server=host", `server \"host\"`},
		{"server=10.0.0.1:0", "server"},
		{"slow_network=20", `slow_network \"20\"`},
		{"slow_server=-1ms", "slow_server"},
		{"tier_window=2h", "tier_window"},
		{"min_count=0", "min_count"},
		{"min_count=many", "min_count"},
		{"from=2024-01-02&to=2024-01-01", "after to"},
		{"expr=proto+http", `unknown parameter \"expr\"`},
		{"server=10.0.0.1&server=10.0.0.2", "2 times"},
	} {
		resp, body := e.get(t, pathDiagnose, mustQuery(t, c.q))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), c.says) {
			t.Errorf("%s: status %d %s, want 400 mentioning %q", c.q, resp.StatusCode, body, c.says)
		}
	}
	resp, body := e.get(t, pathDiagnose, mustQuery(t, "server=10.0.1.1&slow_network=25ms&slow_server=5ms&min_count=3&tier_window=5s"))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var d struct {
		Server        string `json:"server"`
		SlowNetworkNS int64  `json:"slow_network_ns"`
		SlowServerNS  int64  `json:"slow_server_ns"`
		MinCount      int    `json:"min_count"`
		Findings      []struct {
			Kind string `json:"kind"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if d.Server != "10.0.1.1" || d.SlowNetworkNS != 25e6 || d.SlowServerNS != 5e6 || d.MinCount != 3 ||
		len(d.Findings) != 1 || d.Findings[0].Kind != "not_enough_data" {
		t.Errorf("got %s, want server 10.0.1.1, 25ms, 5ms, 3 and only not_enough_data", body)
	}

	te := newAPIEnv(t, ServerOptions{Token: testToken}, false)
	if resp, _ := te.get(t, pathDiagnose, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: status %d, want 401", resp.StatusCode)
	}
}

func mustQuery(t *testing.T, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
