package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
)

// tempName is the name a restored file has on the target until it is
// verified there and renamed into place.
func tempName(name, id string) string { return name + ".restore-" + id + ".partial" }

// safeJoin joins a file name that came from the bucket to dir, refusing
// anything but a plain name: the result is always directly inside dir.
func safeJoin(dir, name string) (string, error) {
	if err := catalog.ValidateName(name); err != nil {
		return "", fmt.Errorf("refusing to write %q: %w", name, err)
	}
	p := path.Join(dir, name)
	if path.Dir(p) != path.Clean(dir) {
		return "", fmt.Errorf("refusing to write %q: it leads outside %s", name, dir)
	}
	return p, nil
}

// perms is the mode, and optionally the owner, a restored file gets.
type perms struct {
	mode     fs.FileMode
	chown    bool
	uid, gid int
}

// exists reports whether p exists on t; only "not found" counts as no.
func exists(ctx context.Context, t Target, p string) (bool, FileInfo, error) {
	fi, err := t.Lstat(ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, FileInfo{}, nil
	}
	if err != nil {
		return false, FileInfo{}, err
	}
	return true, fi, nil
}

// stage writes the verified runner copy of f to tmp on t, checks the byte
// count and the SHA-256 there, then sets owner and mode. A leftover regular
// file at tmp (from a killed run) is removed first; anything else there is
// an error. On failure the partial file is removed.
func stage(ctx context.Context, t Target, f Fetched, tmp string, p perms) (err error) {
	ok, fi, err := exists(ctx, t, tmp)
	if err != nil {
		return err
	}
	if ok {
		if !fi.Mode.IsRegular() {
			return fmt.Errorf("temp path %s on %s exists and is not a regular file: refusing to touch it", tmp, t)
		}
		if err := t.Remove(ctx, tmp); err != nil {
			return fmt.Errorf("remove leftover temp file: %w", err)
		}
	}
	src, err := os.Open(f.Path)
	if err != nil {
		return fmt.Errorf("open runner copy of %s: %w", f.Name, err)
	}
	defer src.Close()
	w, err := t.Create(ctx, tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rerr := t.Remove(context.WithoutCancel(ctx), tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("remove partial file: %w", rerr))
			}
		}
	}()
	n, err := io.Copy(w, src)
	if cerr := w.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("upload %s to %s on %s: %w", f.Name, tmp, t, err)
	}
	got, err := t.Lstat(ctx, tmp)
	if err != nil {
		return err
	}
	if n != f.Bytes || got.Size != f.Bytes {
		return fmt.Errorf("upload %s to %s on %s: sent %d bytes, the file there has %d, want %d (disk full?)", f.Name, tmp, t, n, got.Size, f.Bytes)
	}
	sum, err := t.SHA256(ctx, tmp)
	if err != nil {
		return err
	}
	if sum != f.Sum {
		return fmt.Errorf("upload %s to %s on %s: sha256 there is %s, want %s", f.Name, tmp, t, sum, f.Sum)
	}
	if p.chown && (got.UID != p.uid || got.GID != p.gid) {
		if err := t.Chown(ctx, tmp, p.uid, p.gid); err != nil {
			return err
		}
	}
	// After chown, which clears set-id bits.
	return t.Chmod(ctx, tmp, p.mode)
}
