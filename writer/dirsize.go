package writer

import (
	"io/fs"
	"path/filepath"
)

// DirSize is the total size of the regular files under dir (a store, its
// index): what it holds on disk, as `du --apparent-size` counts it.
func DirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n, err
}
