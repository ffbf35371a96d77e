// Package fsstore keeps backup objects in a local directory: the
// "destination: file:///dir" option, the local demo and restore drills.
//
// A key maps to the file dir/<key>, its slashes turned into directories. Put
// writes a temporary file next to the target (named ".sba-tmp-*"), fsyncs it
// and renames it into place, so a reader never sees a partial object. Objects
// are created with mode 0600: they are copies of databases.
package fsstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// tempPrefix names the files Put and Check write before the final rename.
// List skips them and keys whose segments start with it are refused.
const tempPrefix = ".sba-tmp-"

var _ store.Backend = (*Backend)(nil)

// Backend is a store.Backend over one local directory.
type Backend struct {
	dir string // absolute, cleaned
}

// New returns a Backend rooted at dir. The directory need not exist yet:
// Check creates it when its parent exists.
func New(dir string) (*Backend, error) {
	if dir == "" {
		return nil, errors.New("file store: directory is empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", dir, err)
	}
	return &Backend{dir: abs}, nil
}

// ParseURL returns the directory named by a file:///abs/path URL.
func ParseURL(u string) (dir string, err error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("parse file URL: %w", err)
	}
	switch {
	case p.Scheme != "file":
		return "", fmt.Errorf("parse file URL %q: scheme must be file://", u)
	case p.User != nil:
		return "", fmt.Errorf("parse file URL %q: user info is not allowed", u)
	case p.Host != "" && p.Host != "localhost":
		return "", fmt.Errorf("parse file URL %q: host %q is not allowed, write file:///absolute/path", u, p.Host)
	case p.Opaque != "" || !strings.HasPrefix(p.Path, "/"):
		return "", fmt.Errorf("parse file URL %q: path must be absolute, write file:///absolute/path", u)
	case p.RawQuery != "" || p.Fragment != "":
		return "", fmt.Errorf("parse file URL %q: query and fragment are not allowed", u)
	case strings.ContainsRune(p.Path, 0):
		return "", fmt.Errorf("parse file URL %q: path contains NUL", u)
	}
	return filepath.Clean(filepath.FromSlash(p.Path)), nil
}

// String returns "file://" followed by the absolute directory.
func (b *Backend) String() string { return "file://" + filepath.ToSlash(b.dir) }

// ValidKey reports why key cannot name an object in a file store, or nil.
func ValidKey(key string) error {
	switch {
	case key == "":
		return errors.New("key is empty")
	case strings.HasPrefix(key, "/"):
		return errors.New("key is absolute")
	case strings.ContainsAny(key, "\\\x00"):
		return errors.New("key contains a backslash or NUL")
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return errors.New("key has an empty segment")
		case seg == "." || seg == "..":
			return fmt.Errorf("key has a %q segment", seg)
		case strings.HasPrefix(seg, tempPrefix):
			return fmt.Errorf("key segment starts with reserved %q", tempPrefix)
		}
	}
	return nil
}

func (b *Backend) path(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", fmt.Errorf("invalid key %q: %w", key, err)
	}
	return filepath.Join(b.dir, filepath.FromSlash(key)), nil
}

// Put writes r to a temporary file beside the target, fsyncs it and renames
// it over key. Parent directories under the store root are created; the root
// itself must exist (Check creates it).
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	p, err := b.path(key)
	if err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	if fi, err := os.Stat(b.dir); err != nil {
		return fmt.Errorf("upload %s: store directory: %w", key, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("upload %s: %s is not a directory", key, b.dir)
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			err = errors.Join(err, closeQuietly(f), removeMissingOK(tmp))
		}
	}()
	n, err := io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("upload %s: read %d bytes, want %d", key, n, size)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	return nil
}

// Get opens the object. A missing key, or a key naming a directory, gives an
// error wrapping store.ErrNotFound.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("download %s: %w", key, err)
	}
	f, err := os.Open(p)
	if isMissing(err) {
		return nil, fmt.Errorf("download %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", key, errors.Join(err, f.Close()))
	}
	return f, nil
}

// List walks the directory holding prefix, skipping temporary files and
// anything that is not a regular file.
func (b *Backend) List(ctx context.Context, prefix string) ([]store.Object, error) {
	if strings.HasPrefix(prefix, "/") || strings.ContainsAny(prefix, "\\\x00") ||
		slices.Contains(strings.Split(prefix, "/"), "..") {
		return nil, fmt.Errorf("list %q: invalid prefix", prefix)
	}
	start := b.dir
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(b.dir, filepath.FromSlash(prefix[:i]))
	}
	var objs []store.Object
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if isMissing(err) {
				return nil // start is absent, or an entry vanished mid-walk
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		rel, err := filepath.Rel(b.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if isMissing(err) {
			return nil
		}
		if err != nil {
			return err
		}
		objs = append(objs, store.Object{Key: key, Size: fi.Size(), LastModified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q in %s: %w", prefix, b, err)
	}
	slices.SortFunc(objs, func(a, b store.Object) int { return strings.Compare(a.Key, b.Key) })
	return objs, nil
}

// Delete removes each key's file, then the parent directories it leaves
// empty, up to (not including) the store root.
func (b *Backend) Delete(ctx context.Context, keys []string) error {
	failed := map[string]string{}
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		if err := b.deleteOne(key); err != nil {
			failed[key] = err.Error()
		}
	}
	if len(failed) > 0 {
		return &store.DeleteError{Failed: failed}
	}
	return nil
}

func (b *Backend) deleteOne(key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if isMissing(err) || (err == nil && fi.IsDir()) {
		return nil // not an object
	}
	if err != nil {
		return err
	}
	if err := removeMissingOK(p); err != nil {
		return err
	}
	for dir := filepath.Dir(p); dir != b.dir && strings.HasPrefix(dir, b.dir); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty, or already gone: stop pruning
		}
	}
	return nil
}

// Check creates the store directory when its parent exists, then proves it
// writable by writing and removing a probe file.
func (b *Backend) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check %s: %w", b, err)
	}
	fi, err := os.Stat(b.dir)
	if isMissing(err) {
		if err := os.Mkdir(b.dir, 0o755); err != nil {
			return fmt.Errorf("check %s: create directory: %w", b, err)
		}
	} else if err != nil {
		return fmt.Errorf("check %s: %w", b, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("check %s: not a directory", b)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	probe := filepath.Join(b.dir, tempPrefix+"probe-"+hex.EncodeToString(rnd[:]))
	if err := os.WriteFile(probe, []byte("probe\n"), 0o600); err != nil {
		return fmt.Errorf("check %s: directory is not writable: %w", b, errors.Join(err, removeMissingOK(probe)))
	}
	if err := os.Remove(probe); err != nil {
		return fmt.Errorf("check %s: remove probe: %w", b, err)
	}
	return nil
}

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func removeMissingOK(p string) error {
	if err := os.Remove(p); err != nil && !isMissing(err) {
		return err
	}
	return nil
}

func closeQuietly(f *os.File) error {
	if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// syncDir makes a rename durable. Filesystems that cannot fsync a directory
// (EINVAL) are tolerated.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return errors.Join(err, d.Close())
	}
	return d.Close()
}
