package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/backup"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/fsstore"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

var layout = catalog.Layout{Prefix: "db_backups", Environment: "staging"}

// fixture is a live storage dir (the four Rails databases) and a file
// store holding one real backup group of it.
type fixture struct {
	live  string
	store *fsstore.Backend
	id    string
	m     *catalog.Manifest
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{live: t.TempDir()}
	testutil.MakeRailsStorage(t, f.live, 300, 64)
	var err error
	if f.store, err = fsstore.New(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(context.Background(), backup.Options{
		Store: f.store, Layout: layout, Compression: "zstd", TempDir: t.TempDir(),
		Now: func() time.Time { return time.Date(2025, 1, 31, 2, 0, 0, 0, time.UTC) },
		Connect: func(context.Context) (backup.Source, error) {
			return snapshot.NewLocal(f.live, "*.sqlite3", "zstd", t.TempDir())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.id = res.ID
	f.m = f.manifest(t, f.id)
	return f
}

func (f *fixture) get(t *testing.T, key string) []byte {
	t.Helper()
	rc, err := f.store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) put(t *testing.T, key string, b []byte) {
	t.Helper()
	if err := f.store.Put(context.Background(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) manifest(t *testing.T, id string) *catalog.Manifest {
	t.Helper()
	m, err := catalog.ParseManifest(f.get(t, layout.ManifestKey(id)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// forge copies the fixture's group to id, lets change edit the manifest
// and the stored objects (by file name), and writes the copy, manifest last.
// The manifest is written as JSON without validation, so it can be hostile.
func (f *fixture) forge(t *testing.T, id string, change func(m *catalog.Manifest, objs map[string][]byte)) {
	t.Helper()
	m := *f.m
	m.GroupID = id
	m.Files = append([]catalog.File(nil), f.m.Files...)
	objs := map[string][]byte{}
	for i, file := range m.Files {
		objs[file.Name] = f.get(t, file.Key)
		m.Files[i].Key = layout.Key(id, file.Name+".zst")
	}
	change(&m, objs)
	for _, file := range m.Files {
		if b, ok := objs[file.Name]; ok {
			f.put(t, layout.Key(id, file.Name+".zst"), b)
		}
	}
	body, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, layout.ManifestKey(id), body)
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// tree maps every file under dir (relative path) to its SHA-256.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = sha256File(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func names(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: files %v, want %v", what, names(got), names(want))
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s changed (or is missing)", what, k)
		}
	}
}

// opts are restore options against the fixture with a local target.
func (f *fixture) opts(t *testing.T, mode, dir string) Options {
	return Options{
		Store: f.store, Layout: layout, BackupID: Latest, Mode: mode, Dir: dir,
		Guard:   Guard{Confirm: ConfirmWord, Environment: layout.Environment},
		Connect: func(context.Context) (Target, error) { return Local{}, nil },
		TempDir: t.TempDir(),
		Now:     func() time.Time { return time.Date(2025, 2, 1, 12, 0, 0, 0, time.UTC) },
	}
}
