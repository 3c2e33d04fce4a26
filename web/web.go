package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS returns the UI's files: index.html at the root, the modules and the
// style sheet beside it.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("BUG: web: no static directory: " + err.Error())
	}
	return sub
}
