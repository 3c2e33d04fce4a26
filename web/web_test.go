package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// TestAssetsStaySafe checks the rules docs/ui.md states for the page's
// sources: nothing is fetched from another origin, no script is inline (the
// CSP forbids it), and no script turns text into markup.
func TestAssetsStaySafe(t *testing.T) {
	files := map[string]string{}
	fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			b, _ := fs.ReadFile(FS(), p)
			files[p] = string(b)
		}
		return nil
	})
	for _, want := range []string{"index.html", "app.js", "util.js", "style.css"} {
		if _, ok := files[want]; !ok {
			t.Errorf("no %s in the embedded assets", want)
		}
	}
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	sink := regexp.MustCompile(`\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(|new Function\(|createContextualFragment|srcdoc`)
	for name, src := range files {
		for _, m := range external.FindAllString(src, -1) {
			if m != "http://www.w3.org" { // the SVG namespace name, never fetched
				t.Errorf("%s names another origin: %q (the page must work air-gapped)", name, m)
			}
		}
		if strings.HasSuffix(name, ".js") {
			if m := sink.FindString(src); m != "" {
				t.Errorf("%s uses %q: text must go through textContent or el()", name, m)
			}
		}
	}
	// Every module the page loads is embedded, and the page has no inline
	// script or style the CSP would block.
	idx := files["index.html"]
	if regexp.MustCompile(`<script[^>]*>\s*[^<\s]`).MatchString(idx) || strings.Contains(idx, "<style") || strings.Contains(idx, " style=") || regexp.MustCompile(` on[a-z]+=`).MatchString(idx) {
		t.Errorf("index.html has inline script, style or handlers")
	}
	imp := regexp.MustCompile(`from '\./([a-z]+\.js)'|src="/ui/([a-z.]+)"|href="/ui/([a-z.]+)"`)
	for name, src := range files {
		for _, m := range imp.FindAllStringSubmatch(src, -1) {
			ref := m[1] + m[2] + m[3]
			if _, ok := files[ref]; !ok {
				t.Errorf("%s refers to %s, which is not embedded", name, ref)
			}
		}
	}
}
