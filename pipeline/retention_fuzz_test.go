package pipeline_test

import (
	"os"
	"path/filepath"
	"testing"

	"tapvault/pipeline"
)

// FuzzRetentionLog: whatever bytes the log holds (a crash mid-append, a
// disk error, an editor), reading it returns actions or an error, never a
// panic, and every action it returns came from a complete line.
func FuzzRetentionLog(f *testing.F) {
	f.Add([]byte(`{"time":"2026-11-22T00:00:00Z","segment":3,"bytes":1048576,"blocks":2,"packets":10,"min_ns":1,"max_ns":2,"reason":"max_bytes"}` + "\n"))
	f.Add([]byte(`{"segment":1}` + "\n" + `{"segm`))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`not json` + "\n" + `{"segment":2}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, pipeline.RetentionLogName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		acts, err := pipeline.RetentionLog(dir)
		if err == nil && len(acts) > len(b)/2+1 {
			t.Fatalf("%d actions from %d bytes", len(acts), len(b))
		}
	})
}
