package snapshot

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Local takes snapshots of databases in a local directory, in process
// (no SSH): the source of the demo and of `remote_path` without ssh_host.
type Local struct {
	req Request
}

// NewLocal makes a private temp dir under tempDir ("" = os.TempDir).
func NewLocal(dir, include, compression, tempDir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("remote_path %s: %w", dir, err)
	}
	if st, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("remote_path %s: %w", abs, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("remote_path %s is not a directory", abs)
	}
	out, err := os.MkdirTemp(tempDir, TempPrefix)
	if err != nil {
		return nil, fmt.Errorf("make temp dir: %w", err)
	}
	return &Local{req: Request{Dir: abs, Include: include, OutDir: out, Compression: compression}}, nil
}

// Snapshot takes every snapshot in turn; previous as in Request.Previous.
// Compressed files are reported Growing, as the remote helper does.
func (l *Local) Snapshot(ctx context.Context, previous map[string]string, emit func(File) error) error {
	req := l.req
	req.Previous, req.Follow = previous, true
	return pair(ctx, func(ctx context.Context, report func(File) error) error { return Run(ctx, req, report) }, emit)
}

// Open reads a finished snapshot.
func (l *Local) Open(_ context.Context, p string) (io.ReadCloser, error) { return os.Open(p) }

// Remove deletes a finished snapshot.
func (l *Local) Remove(_ context.Context, p string) error { return os.Remove(p) }

// Describe names this machine and the directory.
func (l *Local) Describe() (string, string) {
	h, _ := os.Hostname()
	return "local:" + h, l.req.Dir
}

// Close removes the temp dir.
func (l *Local) Close() error { return os.RemoveAll(l.req.OutDir) }
