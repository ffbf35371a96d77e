// Package testutil holds the helpers that the end-to-end tests share: a real
// OpenSSH server on loopback, a live writer that plays the Rails app, and the
// CI rules for tests that need something the machine may lack.
package testutil

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvCI is the variable that CI sets to "true". A test that needs a server it
// cannot find is skipped locally but fails in CI.
const EnvCI = "CI"

// InCI reports whether the tests run in CI, that is whether CI holds a true
// value ("true", "1", ...).
func InCI() bool {
	ci, err := strconv.ParseBool(os.Getenv(EnvCI))
	return err == nil && ci
}

// RequireOrSkip does nothing when err is nil. Otherwise it fails the test in
// CI, where every dependency must be present, and skips it elsewhere.
func RequireOrSkip(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if InCI() {
		t.Fatalf("%s unavailable in CI: %v", what, err)
		return
	}
	t.Skipf("%s unavailable: %v", what, err)
}

// RepoRoot returns the directory holding go.mod, walking up from the working
// directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("repo root: getwd: %v", err)
	}
	root, err := findRepoRoot(dir)
	if err != nil {
		t.Fatalf("repo root: %v", err)
	}
	return root
}

func findRepoRoot(dir string) (string, error) {
	const maxDepth = 64
	for range maxDepth {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("stat go.mod in %s: %w", dir, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("no go.mod above %s", dir)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port is released before returning, so a server started with it may race
// another process; loopback tests on one machine accept that.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("free port: close listener: %v", err)
	}
	return port
}

// User is a local account that tests run servers or writers as.
type User struct {
	Name string
	UID  int
	GID  int
	Home string
}

// EnsureUser looks the account up and, when it is missing and we are root,
// creates it (useradd --create-home --shell /bin/sh). As root it also unlocks
// a locked password ("!" in /etc/shadow, which sshd without PAM refuses even
// for key logins) by setting it to "*". If the account cannot be had,
// RequireOrSkip decides.
func EnsureUser(t testing.TB, name string) User {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	u, err := ensureUser(ctx, name)
	RequireOrSkip(t, "user "+name, err)
	return u
}

func ensureUser(ctx context.Context, name string) (User, error) {
	root := os.Geteuid() == 0
	var lastErr error
	for attempt := range userCommandRetries { // useradd fails while another holds the passwd lock
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return User{}, fmt.Errorf("ensure user %s: %w (last: %w)", name, ctx.Err(), lastErr)
			case <-time.After(200 * time.Millisecond):
			}
		}
		u, err := lookupUser(name)
		if err != nil {
			var unknown user.UnknownUserError
			if !errors.As(err, &unknown) || !root {
				return User{}, err
			}
			lastErr = runCommand(ctx, "useradd", "--create-home", "--shell", "/bin/sh", name)
			continue
		}
		if !root {
			return u, nil
		}
		locked, err := passwordLocked(name)
		if err != nil {
			return User{}, err
		}
		if !locked {
			return u, nil
		}
		lastErr = runCommand(ctx, "usermod", "-p", "*", name)
	}
	return User{}, fmt.Errorf("ensure user %s: %w", name, lastErr)
}

func lookupUser(name string) (User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return User{}, fmt.Errorf("look up user %s: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return User{}, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return User{}, fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	return User{Name: u.Username, UID: uid, GID: gid, Home: u.HomeDir}, nil
}

// passwordLocked reports whether /etc/shadow marks name's password locked.
func passwordLocked(name string) (bool, error) {
	data, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return false, fmt.Errorf("read shadow: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), ":", 3)
		if len(fields) >= 2 && fields[0] == name {
			return strings.HasPrefix(fields[1], "!"), nil
		}
	}
	return false, sc.Err()
}

func runCommand(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// OwnedTempDir returns a new directory owned by uid:gid, mode 0755, whose
// parents are traversable by everyone (t.TempDir's parents are 0700).
func OwnedTempDir(t testing.TB, uid, gid int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "owned")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("owned temp dir: %v", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("owned temp dir: chown %s to %d:%d: %v", dir, uid, gid, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("owned temp dir: chmod %s: %v", dir, err)
	}
	MakeTraversable(t, dir)
	return dir
}

// MakeTraversable lets every user reach path: path, if a directory, and each
// of its ancestors without the search bit for others gains r-x for group and
// others. Directories that are already traversable (such as /tmp) are left
// alone.
func MakeTraversable(t testing.TB, path string) {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatalf("make traversable %s: %v", path, err)
	}
	for dir := abs; ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatalf("make traversable %s: %v", path, err)
		}
		if fi.IsDir() && fi.Mode().Perm()&0o001 == 0 {
			mode := fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid|os.ModeSetuid) | 0o055
			if err := os.Chmod(dir, mode); err != nil {
				t.Fatalf("make traversable %s: chmod %s: %v", path, dir, err)
			}
		}
		if parent := filepath.Dir(dir); parent == dir {
			return
		}
	}
}

// stopProcess sends SIGTERM to cmd's process group, waits up to timeout for
// it to exit, then kills the group.
func stopProcess(t testing.TB, what string, cmd *exec.Cmd, exited <-chan struct{}, timeout time.Duration) {
	t.Helper()
	if isClosed(exited) {
		return
	}
	pgid := -cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM) // the group may already be gone
	select {
	case <-exited:
		return
	case <-time.After(timeout):
	}
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	select {
	case <-exited:
		t.Errorf("%s did not stop within %s of SIGTERM: killed", what, timeout)
	case <-time.After(timeout):
		t.Errorf("%s (pid %d) survived SIGKILL for %s", what, cmd.Process.Pid, timeout)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func writeFile(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if err := os.Chmod(path, perm); err != nil { // umask may have narrowed perm
		t.Fatalf("chmod %s: %v", path, err)
	}
}

// syncBuffer is a bytes.Buffer safe for a process's writes and a test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// chownTree gives root and everything below it to uid:gid.
func chownTree(t testing.TB, root string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		t.Fatalf("chown %s to %d:%d: %v", root, uid, gid, err)
	}
}
