package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	c, err := loadCaptureConfig("../../scripts/tapvault.example.yaml")
	if err != nil {
		t.Fatalf("the shipped example does not load: %v", err)
	}
	if c.Data != "/var/lib/tapvault" || c.SealAfter != time.Second || c.BlockSize != "1MiB" || c.Listen == nil || *c.Listen != "127.0.0.1:8080" {
		t.Fatalf("got %+v, want the example's values", c)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{"data: x\nseal_afer: 1s\n", "seal_afer"},
		{"seal_after: soon\n", "soon"},
		{"queues: many\n", "many"},
	} {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadCaptureConfig(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("config %q: got error %v, want one naming %q", tc.body, err, tc.want)
		}
	}
}
