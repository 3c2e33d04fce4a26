package main

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// dropPrivileges gives the store to the named user and switches the whole
// process (every thread: Go uses glibc's set*id, which reaches all of them)
// to that user and its primary group, with no supplementary groups. It runs
// after everything that needs root is done: EAL has mapped its memory and
// opened its devices, the port is started, the store and the index are open,
// and the API is listening. What it keeps is what those left open.
func dropPrivileges(name, dataDir string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("--user %q: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("--user %q: uid %q gid %q are not numbers", name, u.Uid, u.Gid)
	}
	if os.Geteuid() != 0 {
		if os.Geteuid() == uid {
			return nil // already that user
		}
		return fmt.Errorf("--user %q: only root can switch user (running as uid %d)", name, os.Geteuid())
	}
	// The store must stay writable: new segments, index tables, the
	// retention log.
	err = filepath.WalkDir(dataDir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("--user %q: give the store to it: %w", name, err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("--user %q: drop supplementary groups: %w", name, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("--user %q: setgid %d: %w", name, gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("--user %q: setuid %d: %w", name, uid, err)
	}
	if os.Geteuid() != uid || os.Getegid() != gid {
		return fmt.Errorf("--user %q: still uid %d gid %d after the switch", name, os.Geteuid(), os.Getegid())
	}
	slog.Info("dropped privileges", "user", name, "uid", uid, "gid", gid)
	return nil
}
