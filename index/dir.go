package index

import "path/filepath"

// DirOf is where the store in storeDir keeps its index.
func DirOf(storeDir string) string { return filepath.Join(storeDir, "index") }
