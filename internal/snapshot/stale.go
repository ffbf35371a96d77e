package snapshot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockName is the file a running helper holds an exclusive flock on, in
// its private temp dir. The kernel drops the lock when the helper dies
// (a dropped SSH connection, a killed runner), which is how a later run
// tells a dead run's leftovers from a live run's files.
const lockName = ".lock"

// holdLock takes the lock of the temp dir holding outDir. The returned file
// must stay open for as long as the helper works.
func holdLock(outDir string) (*os.File, error) {
	p := filepath.Join(filepath.Dir(outDir), lockName)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: another helper holds it: %w", p, err)
	}
	return f, nil
}

// cleanStale removes, from tempDir, the private temp dirs of earlier runs
// by this user whose helper is gone: those with a lock file nobody holds.
// own is this run's dir. Problems are reported to w, never fatal.
func cleanStale(tempDir, own string, w io.Writer) int {
	entries, err := os.ReadDir(tempDir)
	if err != nil {
		fmt.Fprintf(w, "helper: look for stale temp dirs in %s: %v\n", tempDir, err)
		return 0
	}
	removed := 0
	for _, e := range entries {
		dir := filepath.Join(tempDir, e.Name())
		if !strings.HasPrefix(e.Name(), TempPrefix) || !e.IsDir() || dir == own {
			continue
		}
		if st, err := os.Lstat(dir); err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
			continue
		}
		f, err := os.Open(filepath.Join(dir, lockName))
		if err != nil {
			continue // no lock yet: a run still setting up, or one from before locks; left to the age rule
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			if rerr := os.RemoveAll(dir); rerr != nil {
				fmt.Fprintf(w, "helper: remove stale temp dir %s: %v\n", dir, rerr)
			} else {
				removed++
			}
		}
		f.Close()
	}
	return removed
}
