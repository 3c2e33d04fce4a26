package centre

import (
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

// setUIHeaders sets the security headers of every UI answer.
func setUIHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

// uiCSP is the single-node UI's policy (api/ui.go): scripts and styles from
// this origin only, nothing inline.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// serveUI serves the web UI's files on the centre: the page, its scripts,
// and /ui/session, which tells app.js it runs on a centre (fleet: true) so
// it shows the fleet view only (the single-store views have no store here),
// and whether it must log in first.
func (c *Centre) serveUI(w http.ResponseWriter, r *http.Request) {
	setUIHeaders(w)
	h := w.Header()
	p := r.URL.Path
	if p == pathSession {
		writeJSON(w, map[string]bool{"token_required": c.hasTok, "authenticated": !c.hasTok || c.sessionOK(r), "metrics": true, "fleet": true})
		return
	}
	name := "index.html"
	if p != "/" {
		name = strings.TrimPrefix(p, "/ui/")
		if name == "" || !fs.ValidPath(name) || strings.HasPrefix(path.Base(name), ".") {
			writeError(w, http.StatusNotFound, "no such UI file")
			return
		}
	}
	b, err := fs.ReadFile(c.opts.UI, name)
	if err != nil {
		writeError(w, http.StatusNotFound, "no such UI file")
		return
	}
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		h.Set("Content-Type", ct)
	}
	h.Set("Cache-Control", "no-cache")
	w.Write(b)
}
