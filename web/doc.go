// Package web holds the browser UI's assets (docs/ui.md): an HTML shell,
// vanilla ES modules and a style sheet, embedded in the binary (an embed
// directive in web.go) so the page works air-gapped and `go build` needs
// no npm.
//
// It owns the bytes of the page and nothing else: serving them, the session
// cookie, the Content-Security-Policy and the API the page calls live in
// package api (api/ui.go). It must not fetch anything from outside the
// listener it was served from, and its scripts must never insert record or
// packet text as HTML: everything on screen goes through textContent or SVG
// text nodes, because packet bytes are hostile input.
package web
