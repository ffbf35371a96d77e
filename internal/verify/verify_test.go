package verify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/backup"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/fsstore"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

var (
	layout  = catalog.Layout{Prefix: "db_backups", Environment: "production"}
	created = time.Date(2025, 1, 31, 2, 0, 0, 0, time.UTC)
)

const rows = 250

// newStore holds one real group of the four Rails databases, made at created.
func newStore(t *testing.T) (*fsstore.Backend, *catalog.Manifest) {
	t.Helper()
	live := t.TempDir()
	testutil.MakeRailsStorage(t, live, rows, 32)
	st, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(context.Background(), backup.Options{
		Store: st, Layout: layout, Compression: "gzip", TempDir: t.TempDir(),
		Now: func() time.Time { return created },
		Connect: func(context.Context) (backup.Source, error) {
			return snapshot.NewLocal(live, "*.sqlite3", "gzip", t.TempDir())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := st.Get(context.Background(), res.ManifestKey)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	m, err := catalog.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	return st, m
}

func TestVerify(t *testing.T) {
	st, m := newStore(t)
	// A second group, identical but for one flipped bit in one object.
	bad := "20250130-020000"
	for _, f := range m.Files {
		b := get(t, st, f.Key)
		if f.Name == "production_queue.sqlite3" {
			b[len(b)/3] ^= 1
		}
		put(t, st, layout.Key(bad, f.Name+".gz"), b)
	}
	mm := *m
	mm.GroupID = bad
	mm.Files = append([]catalog.File(nil), m.Files...)
	for i := range mm.Files {
		mm.Files[i].Key = layout.Key(bad, mm.Files[i].Name+".gz")
	}
	body, _ := mm.Encode()
	put(t, st, layout.ManifestKey(bad), body)

	cases := []struct {
		name    string
		id      string
		maxAge  time.Duration
		now     time.Time
		wantErr []string
		stale   bool
	}{
		{name: "latest passes", id: "latest", now: created.Add(time.Hour)},
		{name: "fresh enough", id: "latest", maxAge: 26 * time.Hour, now: created.Add(25 * time.Hour)},
		{name: "stale bucket", id: "latest", maxAge: 24 * time.Hour, now: created.Add(49 * time.Hour),
			wantErr: []string{"20250131-020000 is 49h0m0s old, more than max_age_hours 24"}, stale: true},
		{name: "corrupted group fails", id: bad, now: created,
			wantErr: []string{"production_queue.sqlite3", "stored object does not match the manifest"}},
		{name: "missing group", id: "20200101-000000", now: created, wantErr: []string{"not found"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), Options{Store: st, Layout: layout, BackupID: tc.id, MaxAge: tc.maxAge,
				TempDir: t.TempDir(), Now: func() time.Time { return tc.now }})
			if res == nil {
				t.Fatalf("no report: %v", err)
			}
			if res.Stale() != tc.stale || errors.Is(err, ErrStale) != tc.stale {
				t.Errorf("stale %v (error %v), want %v", res.Stale(), err, tc.stale)
			}
			if tc.wantErr == nil {
				if err != nil || !res.OK() {
					t.Fatalf("got %v, want a pass", err)
				}
				checkReport(t, res, m)
				return
			}
			if err == nil {
				t.Fatal("passed, want a failure")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

func checkReport(t *testing.T, res *Result, m *catalog.Manifest) {
	t.Helper()
	if res.ID != m.GroupID || res.Newest != m.GroupID || len(res.Files) != len(m.Files) {
		t.Fatalf("checked %s (newest %s) with %d files, want %s with %d", res.ID, res.Newest, len(res.Files), m.GroupID, len(m.Files))
	}
	for i, f := range res.Files {
		if f.SHA256 != m.Files[i].SHA256 || f.PageCount != m.Files[i].PageCount || f.ManifestPageCount != f.PageCount {
			t.Errorf("%s: sha256 %s pages %d (manifest %d), manifest sha256 %s", f.Name, f.SHA256, f.PageCount, f.ManifestPageCount, m.Files[i].SHA256)
		}
		var got []string
		for _, tb := range f.Tables {
			got = append(got, tb.Name)
			if tb.Name == "totals" && tb.Rows != 1 || tb.Name == "ledger" && tb.Rows != rows {
				t.Errorf("%s: table %s has %d rows", f.Name, tb.Name, tb.Rows)
			}
		}
		if strings.Join(got, ",") != "ledger,totals" {
			t.Errorf("%s: tables %v, want ledger, totals", f.Name, got)
		}
	}
}

func TestVerifyEmptyBucket(t *testing.T) {
	st, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Options{Store: st, Layout: layout, BackupID: "latest", MaxAge: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "no complete backup group") {
		t.Fatalf("got %v, want no complete backup group", err)
	}
}

func TestQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{`ledger`: `"ledger"`, `we"ird`: `"we""ird"`, `a b`: `"a b"`} {
		if got := quoteIdent(in); got != want {
			t.Errorf("quoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}

func get(t *testing.T, st *fsstore.Backend, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
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

func put(t *testing.T, st *fsstore.Backend, key string, b []byte) {
	t.Helper()
	if err := st.Put(context.Background(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}
