package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pkg/sftp"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/remote"
)

// Target is where restored databases are written, and the shell that runs
// commands there: the database host over SSH (Remote) or this machine
// (Local). Paths are absolute and slash separated.
//
// Contracts:
//   - Lstat does not follow a final symlink; a missing path gives an error
//     wrapping fs.ErrNotExist.
//   - Mkdir makes one directory, mode 0700; it fails if the path exists.
//   - Create makes a new file, mode 0600, and fails if the path exists.
//   - Rename is POSIX rename: atomic, and it replaces newpath.
//   - Remove removes a file or an empty directory.
//   - SHA256 reads the file on the target and returns its hex SHA-256.
//   - Run runs a shell command line there and returns its stdout; a
//     non-zero exit is an error that holds the end of stderr.
type Target interface {
	Abs(p string) (string, error)
	Lstat(ctx context.Context, p string) (FileInfo, error)
	Mkdir(ctx context.Context, p string) error
	Create(ctx context.Context, p string) (io.WriteCloser, error)
	Rename(ctx context.Context, oldpath, newpath string) error
	Remove(ctx context.Context, p string) error
	Chmod(ctx context.Context, p string, mode fs.FileMode) error
	Chown(ctx context.Context, p string, uid, gid int) error
	SHA256(ctx context.Context, p string) (string, error)
	Run(ctx context.Context, cmd string) ([]byte, error)
	String() string
	Close() error
}

// FileInfo is what the restore needs to know of a file on a target.
type FileInfo struct {
	Size     int64
	Mode     fs.FileMode // type bits and permissions
	UID, GID int
}

// Remote is a Target on an SSH host: files over SFTP (concurrent writes),
// commands through the login shell, arguments always quoted.
type Remote struct {
	Client *remote.Client
}

var _ Target = (*Remote)(nil)

// Abs resolves p against the login directory.
func (r *Remote) Abs(p string) (string, error) {
	if path.IsAbs(p) {
		return path.Clean(p), nil
	}
	home, err := r.Client.SFTP().Getwd()
	if err != nil {
		return "", fmt.Errorf("resolve %s on %s: login directory: %w", p, r.Client.Addr(), err)
	}
	return path.Join(home, p), nil
}

// Lstat stats p without following a final symlink.
func (r *Remote) Lstat(_ context.Context, p string) (FileInfo, error) {
	st, err := r.Client.SFTP().Lstat(p)
	if err != nil {
		return FileInfo{}, fmt.Errorf("stat %s on %s: %w", p, r.Client.Addr(), err)
	}
	fi := FileInfo{Size: st.Size(), Mode: st.Mode()}
	if s, ok := st.Sys().(*sftp.FileStat); ok {
		fi.UID, fi.GID = int(s.UID), int(s.GID)
	}
	return fi, nil
}

// Mkdir makes the directory p with mode 0700.
func (r *Remote) Mkdir(_ context.Context, p string) error {
	sf := r.Client.SFTP()
	if err := sf.Mkdir(p); err != nil {
		return fmt.Errorf("mkdir %s on %s: %w", p, r.Client.Addr(), err)
	}
	if err := sf.Chmod(p, 0o700); err != nil {
		return fmt.Errorf("chmod %s on %s: %w", p, r.Client.Addr(), err)
	}
	return nil
}

// Create makes a new file, mode 0600, for writing.
func (r *Remote) Create(_ context.Context, p string) (io.WriteCloser, error) {
	f, err := r.Client.SFTP().OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return nil, fmt.Errorf("create %s on %s: %w", p, r.Client.Addr(), err)
	}
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("chmod %s on %s: %w", p, r.Client.Addr(), err)
	}
	return f, nil
}

// Rename is posix-rename@openssh.com.
func (r *Remote) Rename(_ context.Context, oldpath, newpath string) error {
	if err := r.Client.SFTP().PosixRename(oldpath, newpath); err != nil {
		return fmt.Errorf("rename %s to %s on %s: %w", oldpath, newpath, r.Client.Addr(), err)
	}
	return nil
}

// Remove removes a file or an empty directory.
func (r *Remote) Remove(_ context.Context, p string) error {
	if err := r.Client.SFTP().Remove(p); err != nil {
		return fmt.Errorf("remove %s on %s: %w", p, r.Client.Addr(), err)
	}
	return nil
}

// Chmod sets the permission bits.
func (r *Remote) Chmod(_ context.Context, p string, mode fs.FileMode) error {
	if err := r.Client.SFTP().Chmod(p, mode); err != nil {
		return fmt.Errorf("chmod %s on %s: %w", p, r.Client.Addr(), err)
	}
	return nil
}

// Chown sets owner and group.
func (r *Remote) Chown(_ context.Context, p string, uid, gid int) error {
	if err := r.Client.SFTP().Chown(p, uid, gid); err != nil {
		return fmt.Errorf("chown %s to %d:%d on %s: %w", p, uid, gid, r.Client.Addr(), err)
	}
	return nil
}

// SHA256 runs sha256sum on the host.
func (r *Remote) SHA256(ctx context.Context, p string) (string, error) {
	out, err := r.Client.Run(ctx, remote.Command("sha256sum", "--", p))
	if err != nil {
		return "", fmt.Errorf("sha256sum %s on %s: %w", p, r.Client.Addr(), err)
	}
	sum, _, _ := strings.Cut(string(out), " ")
	if len(sum) != sha256.Size*2 {
		return "", fmt.Errorf("sha256sum %s on %s printed %q", p, r.Client.Addr(), truncate(string(out), 100))
	}
	return sum, nil
}

// Run runs cmd through the login shell on the host.
func (r *Remote) Run(ctx context.Context, cmd string) ([]byte, error) {
	return r.Client.Run(ctx, cmd)
}

func (r *Remote) String() string { return r.Client.Addr() }

// Close disconnects.
func (r *Remote) Close() error { return r.Client.Close() }

// Local is a Target on this machine: files through os, commands through sh.
type Local struct{}

var _ Target = Local{}

// Abs makes p absolute against the working directory.
func (Local) Abs(p string) (string, error) { return filepath.Abs(p) }

// Lstat stats p without following a final symlink.
func (Local) Lstat(_ context.Context, p string) (FileInfo, error) {
	st, err := os.Lstat(p)
	if err != nil {
		return FileInfo{}, fmt.Errorf("stat: %w", err)
	}
	fi := FileInfo{Size: st.Size(), Mode: st.Mode()}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		fi.UID, fi.GID = int(s.Uid), int(s.Gid)
	}
	return fi, nil
}

// Mkdir makes the directory p with mode 0700.
func (Local) Mkdir(_ context.Context, p string) error {
	if err := os.Mkdir(p, 0o700); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	return nil
}

// Create makes a new file, mode 0600, for writing.
func (Local) Create(_ context.Context, p string) (io.WriteCloser, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	return &syncCloser{f}, nil
}

// Rename is rename(2).
func (Local) Rename(_ context.Context, oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// Remove removes a file or an empty directory.
func (Local) Remove(_ context.Context, p string) error {
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}

// Chmod sets the permission bits.
func (Local) Chmod(_ context.Context, p string, mode fs.FileMode) error {
	if err := os.Chmod(p, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// Chown sets owner and group.
func (Local) Chown(_ context.Context, p string, uid, gid int) error {
	if err := os.Lchown(p, uid, gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	return nil
}

// SHA256 hashes the file.
func (Local) SHA256(_ context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("sha256: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("sha256 %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Run runs cmd with sh -c; stderr goes into the error.
func (Local) Run(ctx context.Context, cmd string) ([]byte, error) {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	var stderr strings.Builder
	c.Stderr = &stderr
	c.WaitDelay = 5 * time.Second // a background child may keep stdout open
	out, err := c.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 4000 {
			msg = "..." + msg[len(msg)-4000:]
		}
		return out, fmt.Errorf("command failed: %w: %s", err, msg)
	}
	return out, nil
}

func (Local) String() string { return "local" }

// Close does nothing.
func (Local) Close() error { return nil }

// syncCloser fsyncs a local file before closing it.
type syncCloser struct{ *os.File }

func (s *syncCloser) Close() error {
	if err := s.Sync(); err != nil {
		_ = s.File.Close()
		return fmt.Errorf("fsync %s: %w", s.Name(), err)
	}
	return s.File.Close()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
