//go:build unix

package writer

import "testing"

// Capturing is true while a Writer holds the store, and false before and
// after; probing does not stop a writer from opening it.
func TestCapturing(t *testing.T) {
	dir := t.TempDir()
	if Capturing(dir) {
		t.Fatal("an empty directory: capturing")
	}
	w, err := Open(Options{Dir: dir, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if !Capturing(dir) {
		t.Error("a writer holds the store: not capturing")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if Capturing(dir) {
		t.Error("after the writer closed: capturing")
	}
}
