package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// MountTmpfs mounts a fresh tmpfs with the given mount options (e.g.
// "size=2m" or "noexec") on a new temp dir owned by uid:gid and unmounts it
// at cleanup. It needs root; elsewhere RequireOrSkip decides.
func MountTmpfs(t testing.TB, options string, uid, gid int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		RequireOrSkip(t, "tmpfs mount", fmt.Errorf("needs root"))
	}
	dir := t.TempDir()
	MakeTraversable(t, dir)
	opts := fmt.Sprintf("%s,uid=%d,gid=%d,mode=0755", options, uid, gid)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", dir).CombinedOutput(); err != nil {
		RequireOrSkip(t, "tmpfs mount", fmt.Errorf("%v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
