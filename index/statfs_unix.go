//go:build unix

package index

import "syscall"

// availBytes is the space available to unprivileged users on dir's
// filesystem.
func availBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
