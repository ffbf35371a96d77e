package snapshot

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/remote"
)

// TempPrefix names the helper's private temp dirs on the host, so a later
// run can recognise (and remove) leftovers of its own.
const TempPrefix = "sqlite-backup-action."

// HelperName is the file name of a standalone helper for an architecture.
func HelperName(goarch string) string { return "sqlite-backup-helper-linux-" + goarch }

// FindHelper returns a local helper binary for linux/goarch: a standalone
// helper in one of dirs, else this very binary when it was built for that
// platform (a plain `go build .` serves its own architecture).
func FindHelper(goarch string, dirs []string) (string, error) {
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, HelperName(goarch))
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == goarch {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("find helper: %w", err)
		}
		return exe, nil
	}
	return "", fmt.Errorf("no helper for linux/%s: this build is %s/%s; use the Docker image (it ships both architectures) or put %s in one of %s",
		goarch, runtime.GOOS, runtime.GOARCH, HelperName(goarch), strings.Join(dirs, ", "))
}

// RemoteOptions configure a Remote.
type RemoteOptions struct {
	Client      *remote.Client
	Dir         string // remote_path; relative to the login directory or absolute
	Include     string
	Compression string
	TempDir     string   // remote_temp_dir, absolute
	HelperDirs  []string // where to look for standalone helpers
	// HelperCache keeps the helper in ~/.cache/sqlite-backup-action on the
	// host, named by its SHA-256 and checked before every run, so it is
	// sent once per version instead of every run.
	HelperCache bool
	// OnLeftover is told the temp dir when Close cannot remove it (the
	// connection dropped), so a later attempt can.
	OnLeftover func(dir string)
	Log        *slog.Logger
}

// Remote takes snapshots on an SSH host with a helper it ships there.
type Remote struct {
	o      RemoteOptions
	dir    string // absolute remote_path
	tmp    string // private temp dir on the host
	helper string // helper path on the host
}

// NewRemote detects the host's architecture, makes a private temp dir,
// ships the helper there and checks its SHA-256 on the host. On error the
// temp dir is already removed.
func NewRemote(ctx context.Context, o RemoteOptions) (_ *Remote, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	c := o.Client
	out, err := c.Run(ctx, "uname -sm")
	if err != nil {
		return nil, fmt.Errorf("detect host platform (uname -sm): %w", err)
	}
	goarch, err := hostArch(string(out))
	if err != nil {
		return nil, err
	}
	local, err := FindHelper(goarch, o.HelperDirs)
	if err != nil {
		return nil, err
	}
	r := &Remote{o: o}
	r.dir = o.Dir
	if !path.IsAbs(r.dir) {
		home, err := c.SFTP().Getwd()
		if err != nil {
			return nil, fmt.Errorf("resolve remote_path %q: login directory: %w", o.Dir, err)
		}
		r.dir = path.Join(home, r.dir)
	}
	if st, err := c.SFTP().Stat(r.dir); err != nil {
		return nil, fmt.Errorf("remote_path %s on %s: %w", r.dir, c.Addr(), err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("remote_path %s on %s is not a directory", r.dir, c.Addr())
	}
	r.removeLeftovers(ctx)
	tmpl := path.Join(o.TempDir, TempPrefix+"XXXXXXXXXX")
	out, err = c.Run(ctx, "umask 077 && mktemp -d "+remote.Quote(tmpl))
	if err != nil {
		return nil, fmt.Errorf("make temp dir in remote_temp_dir %s: %w", o.TempDir, err)
	}
	r.tmp = strings.TrimSpace(string(out))
	if path.Dir(r.tmp) != path.Clean(o.TempDir) || !strings.HasPrefix(path.Base(r.tmp), TempPrefix) {
		return nil, fmt.Errorf("make temp dir in remote_temp_dir %s: mktemp printed %q", o.TempDir, r.tmp)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()
	if err := r.installHelper(ctx, local); err != nil {
		return nil, err
	}
	if err := c.SFTP().Mkdir(path.Join(r.tmp, "out")); err != nil {
		return nil, fmt.Errorf("make %s/out on host: %w", r.tmp, err)
	}
	return r, nil
}

func hostArch(uname string) (string, error) {
	f := strings.Fields(uname)
	if len(f) != 2 || f[0] != "Linux" {
		return "", fmt.Errorf("host is %q: the snapshot helper runs on Linux only", strings.TrimSpace(uname))
	}
	switch f[1] {
	case "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64", "armv8l":
		return "arm64", nil
	}
	return "", fmt.Errorf("host architecture %s is not supported by the snapshot helper (linux/amd64, linux/arm64)", f[1])
}

// helperCacheDir is where the helper is kept between runs, under the
// SSH user's home directory.
const helperCacheDir = ".cache/sqlite-backup-action"

// installHelper sets r.helper: the cached helper when its SHA-256 on the
// host is right, else a fresh upload (into the cache, or the temp dir).
func (r *Remote) installHelper(ctx context.Context, local string) error {
	sum, err := fileSHA256(local)
	if err != nil {
		return fmt.Errorf("hash helper %s: %w", local, err)
	}
	if !r.o.HelperCache {
		r.helper = path.Join(r.tmp, "helper")
		return r.ship(ctx, local, sum)
	}
	home, err := r.o.Client.SFTP().Getwd()
	if err != nil {
		return fmt.Errorf("helper cache: login directory: %w", err)
	}
	dir := path.Join(home, helperCacheDir)
	r.helper = path.Join(dir, "helper-"+sum[:16])
	if got, err := r.remoteSHA256(ctx, r.helper); err == nil && got == sum {
		r.o.Log.Info("helper already on the host", "path", r.helper)
		return nil
	}
	// Other runs may share the cache (several apps on one host): only
	// uploads abandoned for an hour and versions unused for 30 days go.
	if _, err := r.o.Client.Run(ctx, "umask 077 && mkdir -p -- "+remote.Quote(dir)+" && find "+remote.Quote(dir)+
		" -maxdepth 1 -type f -name 'helper-*' \\( -name '*.partial-*' -mmin +60 -o ! -name '*.partial-*' -mtime +30 \\) -delete"); err != nil {
		r.o.Log.Warn("cannot use the helper cache; sending the helper to the temp dir", "dir", dir, "error", err)
		r.helper = path.Join(r.tmp, "helper")
	}
	return r.ship(ctx, local, sum)
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// remoteSHA256 hashes a file on the host.
func (r *Remote) remoteSHA256(ctx context.Context, p string) (string, error) {
	out, err := r.o.Client.Run(ctx, "sha256sum -- "+remote.Quote(p))
	if err != nil {
		return "", err
	}
	got, _, _ := strings.Cut(string(out), " ")
	return got, nil
}

// ship uploads the helper to r.helper under a temp name, checks size,
// renames it into place and checks its SHA-256 (want) on the host.
func (r *Remote) ship(ctx context.Context, local, want string) error {
	f, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("open helper %s: %w", local, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat helper %s: %w", local, err)
	}
	if err := r.checkSpace(st.Size()); err != nil {
		return err
	}
	sf := r.o.Client.SFTP()
	partial := fmt.Sprintf("%s.partial-%d", r.helper, time.Now().UnixNano()) // runs may race on a shared cache
	dst, err := sf.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("upload helper to %s: %w", partial, err)
	}
	// ReadFrom on the *os.File itself: sftp sees its size and pipelines
	// the writes (a wrapped reader gets one write per round trip, 20x slower
	// over a 20 ms link). The hash is checked on the host afterwards.
	n, err := dst.ReadFrom(f)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("upload helper to %s: %w", partial, errors.Join(err, r.checkSpace(st.Size())))
	}
	st, err = sf.Stat(partial)
	if err != nil || st.Size() != n {
		return fmt.Errorf("upload helper to %s: size on host differs from the %d bytes sent (disk full?): %v", partial, n, err)
	}
	if err := sf.Chmod(partial, 0o700); err != nil {
		return fmt.Errorf("chmod helper: %w", err)
	}
	if err := sf.PosixRename(partial, r.helper); err != nil {
		return fmt.Errorf("rename helper into place: %w", err)
	}
	got, err := r.remoteSHA256(ctx, r.helper)
	if err != nil {
		return fmt.Errorf("check helper SHA-256 on host (sha256sum): %w", err)
	}
	if got != want {
		return fmt.Errorf("helper on host has SHA-256 %s, want %s: refusing to run it", got, want)
	}
	return nil
}

// checkSpace fails clearly when remote_temp_dir has less than need bytes
// (plus a margin) free. Hosts without the statvfs SFTP extension pass.
func (r *Remote) checkSpace(need int64) error {
	dir := path.Dir(r.helper)
	vfs, err := r.o.Client.SFTP().StatVFS(dir)
	if err != nil {
		return nil
	}
	free := int64(vfs.FreeSpace())
	if want := need + 1<<20; free < want {
		return fmt.Errorf("not enough space in %s on %s: %.1f MiB free, the helper needs %.1f MiB (disk full? free some space, or set remote_temp_dir to a larger disk with helper_cache: false)",
			dir, r.o.Client.Addr(), float64(free)/(1<<20), float64(want)/(1<<20))
	}
	return nil
}

// removeLeftovers removes temp dirs of this tool's naming that a killed
// run left behind (older than 6 hours, owned by this user). Best effort.
func (r *Remote) removeLeftovers(ctx context.Context) {
	cmd := "find " + remote.Quote(r.o.TempDir) + " -maxdepth 1 -type d -name " + remote.Quote(TempPrefix+"*") +
		" -user \"$(id -u)\" -mmin +360 -exec rm -rf -- {} + 2>/dev/null || true"
	if _, err := r.o.Client.Run(ctx, cmd); err != nil {
		r.o.Log.Warn("could not look for leftover temp dirs", "dir", r.o.TempDir, "error", err)
	}
}

// Snapshot runs the helper and calls emit for each snapshot while the
// helper goes on: a compressed file is reported Growing as soon as the
// helper starts writing it (read it as it grows; Final says when it is
// done), and the next database is snapshotted while it streams.
// previous maps database names to the SHA-256 of their last snapshot.
func (r *Remote) Snapshot(ctx context.Context, previous map[string]string, emit func(File) error) error {
	return pair(ctx, func(ctx context.Context, report func(File) error) error {
		return r.run(ctx, previous, report)
	}, emit)
}

// run runs the helper and reports every file line it prints.
func (r *Remote) run(ctx context.Context, previous map[string]string, report func(File) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	words := []string{r.helper, "helper", "snapshot", "--dir", r.dir, "--include", r.o.Include,
		"--out", path.Join(r.tmp, "out"), "--compression", r.o.Compression, "--clean-stale", r.o.TempDir, "--follow"}
	for name, sum := range previous {
		words = append(words, "--previous", name+"="+sum)
	}
	cmd := remote.Command(words...)
	pr, pw := io.Pipe()
	p, err := r.o.Client.Start(ctx, cmd, pw)
	if err != nil {
		return err
	}
	waitErr := make(chan error, 1)
	go func() {
		err := p.Wait()
		pw.Close()
		waitErr <- err
	}()
	var helperErr string
	var reportErr error
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() && reportErr == nil {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			reportErr = fmt.Errorf("helper printed something unexpected: %q", truncate(sc.Text(), 200))
			break
		}
		switch {
		case l.Error != "":
			helperErr = l.Error
		case l.File != nil:
			if (!l.File.Unchanged && !strings.HasPrefix(l.File.Path, r.tmp+"/")) || ValidateBaseName(l.File.Name) != nil {
				reportErr = fmt.Errorf("helper reported an unexpected path %q", l.File.Path)
				break
			}
			reportErr = report(*l.File)
		}
	}
	if reportErr != nil {
		cancel()
		go io.Copy(io.Discard, pr) // let the session finish
		<-waitErr
		return reportErr
	}
	err = <-waitErr
	if helperErr != "" {
		return fmt.Errorf("snapshot on %s: %s", r.o.Client.Addr(), helperErr)
	}
	var ee *remote.ExitError
	if errors.As(err, &ee) && (ee.Status == 126 || ee.Status == 127) {
		return fmt.Errorf("cannot run the snapshot helper in %s on %s (is remote_temp_dir mounted noexec? set remote_temp_dir to a directory on an exec-mounted disk): %w", r.o.TempDir, r.o.Client.Addr(), err)
	}
	if err != nil {
		return fmt.Errorf("snapshot helper on %s: %w", r.o.Client.Addr(), err)
	}
	return sc.Err()
}

// Open reads a snapshot over SFTP (concurrent reads); the file is an
// io.ReaderAt, for reading a Growing one.
func (r *Remote) Open(_ context.Context, p string) (io.ReadCloser, error) {
	f, err := r.o.Client.SFTP().Open(p)
	if err != nil {
		return nil, fmt.Errorf("sftp open %s: %w", p, err)
	}
	return f, nil
}

// Remove deletes a snapshot on the host.
func (r *Remote) Remove(_ context.Context, p string) error {
	if err := r.o.Client.SFTP().Remove(p); err != nil {
		return fmt.Errorf("sftp remove %s: %w", p, err)
	}
	return nil
}

// Describe names the host and the database directory.
func (r *Remote) Describe() (string, string) { return r.o.Client.Addr(), r.dir }

// Close removes the private temp dir on the host (on a fresh context, so
// it runs even when the backup's context is done).
func (r *Remote) Close() error {
	if r.tmp == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.o.Client.Run(ctx, "rm -rf -- "+remote.Quote(r.tmp)); err != nil {
		if r.o.OnLeftover != nil {
			r.o.OnLeftover(r.tmp)
		}
		return fmt.Errorf("remove temp dir %s on %s: %w", r.tmp, r.o.Client.Addr(), err)
	}
	r.tmp = ""
	return nil
}

// TempDirPath is the private temp dir on the host (for tests and logs).
func (r *Remote) TempDirPath() string { return r.tmp }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// ValidateBaseName accepts a plain file name (no separators, not . or ..).
func ValidateBaseName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("not a plain file name: %q", name)
	}
	return nil
}
