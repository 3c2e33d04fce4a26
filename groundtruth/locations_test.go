package groundtruth

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestLocations: three locations probe one service, one through a degraded
// path (25 ms each way against 0.5 ms); tapvault locations, over the three
// sensors' stores, must blame that location's network, and only it. Then
// the same with every path degraded: the provider.
func TestLocations(t *testing.T) {
	if testing.Short() {
		t.Skip("namespaces, a delay line and three captures")
	}
	if err := Check(); err != nil {
		t.Skip(err)
	}
	tapvault := os.Getenv("TAPVAULT_BIN")
	if tapvault == "" {
		tapvault = filepath.Join(t.TempDir(), "tapvault")
		if out, err := exec.Command("go", "build", "-o", tapvault, "tapvault/cmd/tapvault").CombinedOutput(); err != nil {
			t.Fatalf("build tapvault: %v: %s", err, out)
		}
	}
	for _, tc := range []struct {
		name  string
		specs []LocationSpec
		blame string
		slow  []string
	}{
		{"one degraded", []LocationSpec{{"paris", 500 * time.Microsecond}, {"lagos", 25 * time.Millisecond}, {"osaka", 500 * time.Microsecond}}, "networks", []string{"lagos"}},
		{"all degraded", []LocationSpec{{"paris", 25 * time.Millisecond}, {"lagos", 25 * time.Millisecond}, {"osaka", 25 * time.Millisecond}}, "provider", []string{"lagos", "osaka", "paris"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := RunLocations(tapvault, tc.specs, 4*time.Second, testWriter{t})
			if errors.Is(err, ErrSkip) {
				t.Skip(err)
			}
			if rep != nil {
				t.Logf("tapvault locations:\n%s", rep.Output)
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.specs {
				if rep.Probes[s.Name] < 10 {
					t.Errorf("%s: %d probe exchanges recorded, want at least 10", s.Name, rep.Probes[s.Name])
				}
			}
			if rep.Verdict.Blame != tc.blame || !slices.Equal(rep.Verdict.Slow, tc.slow) {
				t.Errorf("verdict %q blaming %q, slow %v; want %q, slow %v", rep.Verdict.Text, rep.Verdict.Blame, rep.Verdict.Slow, tc.blame, tc.slow)
			}
		})
	}
}
