package index

import (
	"os"
	"path/filepath"
	"syscall"
)

// DirOf is where the store in storeDir keeps its index.
func DirOf(storeDir string) string { return filepath.Join(storeDir, "index") }

// DiskSize gives the bytes allocated on disk to the index in dir: its
// tables (lsm), and its value logs and write-ahead logs (vlog). Badger
// preallocates the logs sparse (a value log's apparent size is 2 GiB), so
// the allocated size is counted, not the apparent one. A missing dir is 0.
func DiskSize(dir string) (lsm, vlog int64) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		n := fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 < n {
			n = st.Blocks * 512
		}
		switch filepath.Ext(e.Name()) {
		case ".sst":
			lsm += n
		case ".vlog", ".mem":
			vlog += n
		}
	}
	return lsm, vlog
}
