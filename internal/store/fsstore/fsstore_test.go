package fsstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/fsstore"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/storetest"
)

func newBackend(t *testing.T) *fsstore.Backend {
	t.Helper()
	b, err := fsstore.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return newBackend(t) })
}

func TestInvalidKeys(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	keys := []string{
		"", "/abs", "../escape", "a/../../escape", "a/..", "..", `a\b`, "a\x00b",
		"a//b", "a/", "./a", "a/./b", ".sba-tmp-x", "a/.sba-tmp-x",
	}
	for _, key := range keys {
		t.Run(strings.ReplaceAll(key, "\x00", "NUL"), func(t *testing.T) {
			if err := b.Put(ctx, key, strings.NewReader("x"), 1); err == nil {
				t.Errorf("Put(%q) succeeded, want an error", key)
			}
			if _, err := b.Get(ctx, key); err == nil || errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%q) error = %v, want an invalid-key error", key, err)
			}
			var de *store.DeleteError
			if err := b.Delete(ctx, []string{key}); !errors.As(err, &de) || de.Failed[key] == "" {
				t.Errorf("Delete(%q) error = %v, want a DeleteError naming the key", key, err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(strings.TrimPrefix(b.String(), "file://")), "escape")); err == nil {
		t.Fatal("a key escaped the store directory")
	}
}

func TestDeletePrunesEmptyDirs(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	root := strings.TrimPrefix(b.String(), "file://")
	for _, k := range []string{"g/2024/a/db", "g/2024/b/db"} {
		if err := b.Put(ctx, k, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Delete(ctx, []string{"g/2024/a/db"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "g/2024/a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty dir g/2024/a still there: %v", err)
	}
	if err := b.Delete(ctx, []string{"g/2024/b/db"}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 0 {
		t.Errorf("store root after deleting everything: %v entries, err %v; want empty and present", entries, err)
	}
}

func TestListSkipsTempFiles(t *testing.T) {
	b := newBackend(t)
	root := strings.TrimPrefix(b.String(), "file://")
	if err := os.WriteFile(filepath.Join(root, ".sba-tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	objs, err := b.List(t.Context(), "")
	if err != nil || len(objs) != 0 {
		t.Fatalf("List = %v, %v; want no objects", objs, err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, dir string
		wantErr   bool
	}{
		{"existing", dir, false},
		{"created when parent exists", filepath.Join(dir, "new"), false},
		{"parent missing", filepath.Join(dir, "no", "such"), true},
		{"not a directory", file, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := fsstore.New(c.dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Check(context.Background()); (err != nil) != c.wantErr {
				t.Fatalf("Check(%s) = %v, want error %v", c.dir, err, c.wantErr)
			}
		})
	}
}

func TestString(t *testing.T) {
	b, err := fsstore.New("/var/backups/db")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "file:///var/backups/db"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestParseURL(t *testing.T) {
	cases := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "file:///var/backups", want: "/var/backups"},
		{in: "file:///var/backups/", want: "/var/backups"},
		{in: "file:///a/b/../c", want: "/a/c"},
		{in: "file:///with%20space", want: "/with space"},
		{in: "file://localhost/srv", want: "/srv"},
		{in: "file:///", want: "/"},
		{in: "s3://bucket/x", wantErr: true},
		{in: "/var/backups", wantErr: true},
		{in: "file://backups/dir", wantErr: true},
		{in: "file:relative/dir", wantErr: true},
		{in: "file://", wantErr: true},
		{in: "file://user@/x", wantErr: true},
		{in: "file:///x?y=1", wantErr: true},
		{in: "file:///x#frag", wantErr: true},
		{in: "file:///x%00y", wantErr: true},
		{in: "http://[::1", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := fsstore.ParseURL(c.in)
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("ParseURL(%q) = %q, %v; want %q, error %v", c.in, got, err, c.want, c.wantErr)
			}
		})
	}
}
