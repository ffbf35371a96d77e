package catalog

import (
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

func objs(keys ...string) []store.Object {
	out := make([]store.Object, len(keys))
	for i, k := range keys {
		out[i] = store.Object{Key: k, Size: int64(10 * (i + 1))}
	}
	return out
}

func TestGroupsState(t *testing.T) {
	l := Layout{Prefix: "db_backups", Environment: "production"}
	cases := []struct {
		name      string
		keys      []string // below the group prefix
		wantState State
		wantFiles int
	}{
		{"manifest", []string{"manifest.json", "production.sqlite3.zst", "production_cache.sqlite3.zst"}, StateComplete, 2},
		{"manifest and stale marker", []string{"in-progress", "manifest.json", "production.sqlite3.zst"}, StateComplete, 1},
		{"manifest uncompressed", []string{"manifest.json", "production.sqlite3"}, StateComplete, 1},
		{"marker only", []string{"in-progress"}, StateIncomplete, 0},
		{"marker and files", []string{"in-progress", "production.sqlite3.zst"}, StateIncomplete, 1},
		{"marker and raw files", []string{"in-progress", "production.sqlite3"}, StateIncomplete, 1},
		{"legacy raw sqlite3", []string{"production.sqlite3", "production_cache.sqlite3"}, StateLegacy, 2},
		{"legacy with other files", []string{"production.sqlite3", "notes.txt"}, StateLegacy, 2},
		{"compressed without manifest", []string{"production.sqlite3.zst"}, StateIncomplete, 1},
		{"wal only", []string{"production.sqlite3-wal"}, StateIncomplete, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var keys []string
			for _, k := range tc.keys {
				keys = append(keys, l.Key("20260301-020000", k))
			}
			groups, foreign := l.Groups(objs(keys...))
			if len(foreign) != 0 || len(groups) != 1 {
				t.Fatalf("got %d groups, %d foreign, want 1 group", len(groups), len(foreign))
			}
			g := groups[0]
			if g.State != tc.wantState || g.Files() != tc.wantFiles || len(g.Objects) != len(tc.keys) {
				t.Errorf("got state %s, %d files, %d objects; want %s, %d, %d", g.State, g.Files(), len(g.Objects), tc.wantState, tc.wantFiles, len(tc.keys))
			}
			if want := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC); !g.Time.Equal(want) {
				t.Errorf("time %v, want %v", g.Time, want)
			}
			if g.State.IsBackup() != (tc.wantState != StateIncomplete) {
				t.Errorf("IsBackup %v for %s", g.State.IsBackup(), g.State)
			}
		})
	}
}

func TestGroupsForeignAndOrder(t *testing.T) {
	l := Layout{Prefix: "db_backups", Environment: "production"}
	listing := objs(
		"db_backups/production/20260301-020000/manifest.json",
		"db_backups/production/20260301-020000/production.sqlite3.zst",
		"db_backups/production/20260302-020000/production.sqlite3",
		"db_backups/production/20260228-020000/in-progress",
		"db_backups/production/README.txt",                            // not in a group
		"db_backups/production/latest/production.sqlite3",             // not an id
		"db_backups/production/20260231-020000/production.sqlite3",    // no such day
		"db_backups/production/20260301-020000/nested/x.sqlite3",      // nested below a group
		"db_backups/production/20260301-020000/",                      // directory placeholder
		"db_backups/production-eu/20260301-020000/production.sqlite3", // another environment
		"db_backups/staging/20260301-020000/production.sqlite3",       // another environment
		"elsewhere/production/20260301-020000/production.sqlite3",     // another prefix
	)
	groups, foreign := l.Groups(listing)
	var got []string
	for _, g := range groups {
		got = append(got, g.ID+":"+string(g.State))
	}
	if want := "20260302-020000:legacy 20260301-020000:complete 20260228-020000:incomplete"; strings.Join(got, " ") != want {
		t.Errorf("groups %q, want %q", strings.Join(got, " "), want)
	}
	var fk []string
	for _, o := range foreign {
		fk = append(fk, o.Key)
	}
	if len(fk) != 8 {
		t.Errorf("foreign keys: got %d, want 8:\n%s", len(fk), strings.Join(fk, "\n"))
	}
	for _, k := range fk {
		for _, g := range groups {
			for _, o := range g.Objects {
				if o.Key == k {
					t.Errorf("%s is both foreign and in group %s", k, g.ID)
				}
			}
		}
	}
	if g := groups[1]; g.StoredBytes() != 30 || g.Files() != 1 || strings.Join(g.Keys(), ",") != listing[0].Key+","+listing[1].Key {
		t.Errorf("group %s: %d bytes, %d files, keys %v", g.ID, g.StoredBytes(), g.Files(), g.Keys())
	}
	if g := groups[0]; g.LegacyBytes() != 30 {
		t.Errorf("legacy bytes %d, want 30", g.LegacyBytes())
	}
}

func TestGroupsEmptyPrefix(t *testing.T) {
	l := Layout{Environment: "production"}
	groups, foreign := l.Groups(objs("production/20260301-020000/manifest.json", "production.sqlite3"))
	if len(groups) != 1 || groups[0].State != StateComplete || len(foreign) != 1 {
		t.Errorf("got %d groups, %d foreign", len(groups), len(foreign))
	}
	if groups, foreign := l.Groups(nil); len(groups) != 0 || len(foreign) != 0 {
		t.Errorf("empty listing gave %d groups, %d foreign", len(groups), len(foreign))
	}
}
