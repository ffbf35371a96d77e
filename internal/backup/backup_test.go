package backup_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/backup"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/fsstore"

	_ "modernc.org/sqlite"
)

// makeDBs writes two small WAL databases into a new dir.
func makeDBs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"a.sqlite3", "b.sqlite3"} {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, name)+"?_pragma=journal_mode(WAL)")
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"CREATE TABLE t(x)", "INSERT INTO t SELECT randomblob(500) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<200) SELECT i FROM c)"} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
	}
	return dir
}

// faultySource wraps a real local source and breaks one thing.
type faultySource struct {
	backup.Source
	report func(*snapshot.File)          // changes what the host reports (a growing file's final report)
	open   func(io.ReaderAt) io.ReaderAt // changes the bytes read
	closed bool
}

func (f *faultySource) Snapshot(ctx context.Context, previous map[string]string, emit func(snapshot.File) error) error {
	return f.Source.Snapshot(ctx, previous, func(file snapshot.File) error {
		if f.report != nil && file.Growing {
			final := make(chan snapshot.File, 1)
			go func(in <-chan snapshot.File) {
				defer close(final)
				if fin, ok := <-in; ok {
					f.report(&fin)
					final <- fin
				}
			}(file.Final)
			file.Final = final
		} else if f.report != nil {
			f.report(&file)
		}
		return emit(file)
	})
}

func (f *faultySource) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	rc, err := f.Source.Open(ctx, p)
	if err != nil || f.open == nil {
		return rc, err
	}
	ra, ok := rc.(io.ReaderAt)
	if !ok {
		return nil, fmt.Errorf("%T is not an io.ReaderAt", rc)
	}
	return readerAtCloser{ReaderAt: f.open(ra), Closer: rc}, nil
}

func (f *faultySource) Close() error { f.closed = true; return f.Source.Close() }

type readerAtCloser struct {
	io.ReaderAt
	io.Closer
}

func (r readerAtCloser) Read([]byte) (int, error) {
	return 0, errors.New("read a growing file with ReadAt")
}

// failingReader reads up to offset after, then fails.
type failingReader struct {
	io.ReaderAt
	after int64
}

func (r failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= r.after {
		return r.ReaderAt.ReadAt(p, off)
	}
	n, _ := r.ReaderAt.ReadAt(p[:max(0, r.after-off)], off)
	return n, errors.New("connection lost")
}

// flippingReader flips the byte at offset at.
type flippingReader struct {
	io.ReaderAt
	at int64
}

func (r flippingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.ReaderAt.ReadAt(p, off)
	if i := r.at - off; i >= 0 && i < int64(n) {
		p[i] ^= 0xff
	}
	return n, err
}

// failingStore fails Put for keys containing a substring.
type failingStore struct {
	store.Backend
	failKey string
}

func (s failingStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if strings.Contains(key, s.failKey) {
		_, _ = io.CopyN(io.Discard, r, 1000)
		return errors.New("503 SlowDown")
	}
	return s.Backend.Put(ctx, key, r, size)
}

func TestRunFaults(t *testing.T) {
	cases := []struct {
		name    string
		src     func(*faultySource)
		failKey string
		wantErr string
	}{
		{"ok", func(*faultySource) {}, "", ""},
		{"stored hash differs", func(f *faultySource) {
			f.report = func(file *snapshot.File) { file.StoredSHA256 = strings.Repeat("0", 64) }
		}, "", "stored file changed in transit"},
		{"raw hash differs", func(f *faultySource) {
			f.report = func(file *snapshot.File) { file.SHA256 = strings.Repeat("0", 64) }
		}, "", "snapshot changed in transit"},
		{"page count differs", func(f *faultySource) {
			f.report = func(file *snapshot.File) { file.PageCount++ }
		}, "", "host reported"},
		{"bytes flipped in transit", func(f *faultySource) {
			f.open = func(ra io.ReaderAt) io.ReaderAt { return flippingReader{ReaderAt: ra, at: 100} }
		}, "", "a.sqlite3"},
		{"connection lost mid-file", func(f *faultySource) {
			f.open = func(ra io.ReaderAt) io.ReaderAt { return failingReader{ReaderAt: ra, after: 5000} }
		}, "", "connection lost"},
		{"upload fails", func(*faultySource) {}, "b.sqlite3", "503 SlowDown"},
		{"manifest upload fails", func(*faultySource) {}, catalog.ManifestName, "503 SlowDown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := makeDBs(t)
			fs, err := fsstore.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var st store.Backend = fs
			if tc.failKey != "" {
				st = failingStore{Backend: fs, failKey: tc.failKey}
			}
			var src *faultySource
			layout := catalog.Layout{Prefix: "db_backups", Environment: "test"}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := backup.Run(ctx, backup.Options{
				Store: st, Layout: layout, Compression: snapshot.CompressionZstd, TempDir: t.TempDir(),
				Connect: func(context.Context) (backup.Source, error) {
					l, err := snapshot.NewLocal(dir, "*.sqlite3", snapshot.CompressionZstd, t.TempDir())
					if err != nil {
						return nil, err
					}
					src = &faultySource{Source: l}
					tc.src(src)
					return src, nil
				},
			})
			objs, lerr := fs.List(ctx, "")
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				if len(res.Files) != 2 || len(objs) != 3 {
					t.Fatalf("got %d files and %d objects, want 2 and 3", len(res.Files), len(objs))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error saying %q", err, tc.wantErr)
			}
			if len(objs) != 0 {
				var keys []string
				for _, o := range objs {
					keys = append(keys, o.Key)
				}
				t.Errorf("a failed backup left objects behind: %v", keys)
			}
			if !src.closed {
				t.Errorf("the source (host temp dir) was not closed")
			}
		})
	}
}

func TestRunRefusesExistingGroup(t *testing.T) {
	fs, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	layout := catalog.Layout{Prefix: "p", Environment: "production"}
	ctx := context.Background()
	if err := fs.Put(ctx, layout.Key(catalog.NewID(now), "x"), strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	connected := false
	_, err = backup.Run(ctx, backup.Options{Store: fs, Layout: layout, Now: func() time.Time { return now },
		Connect: func(context.Context) (backup.Source, error) { connected = true; return nil, errors.New("no") }})
	if err == nil || !strings.Contains(err.Error(), "already exists") || connected {
		t.Fatalf("got %v (connected %v), want a refusal before connecting", err, connected)
	}
}
