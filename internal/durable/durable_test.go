package durable

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFile: the file holds the new content, mode 0600, and no
// temporary file is left; a missing directory is an error naming the path
// and leaves nothing behind.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, s := range []string{"old\n", "new\n"} {
		if err := WriteFile(path, []byte(s)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != s {
			t.Fatalf("read back %q (%v), want %q", b, err, s)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	bad := filepath.Join(dir, "missing", "f")
	if err := WriteFile(bad, []byte("x")); err == nil {
		t.Fatal("write into a missing directory: no error")
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("sync of a missing directory: no error")
	}
}
