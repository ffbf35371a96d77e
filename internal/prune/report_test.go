package prune

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/prune -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test ./internal/prune -update and review the diff)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestReports renders the prune table and job summary of named runs
// against the same bucket, and compares them with golden files.
func TestReports(t *testing.T) {
	cases := []struct {
		name  string
		setup func(st *memStore, ids []string)
		opts  Options
	}{
		{"pruned", nil, Options{Policy: seedPolicy, ShrinkGuard: 0.5}},
		{"dry-run", nil, Options{Policy: seedPolicy, DryRun: true}},
		{"shrink-guard", func(st *memStore, ids []string) {
			st.addGroup(planNow.Add(-time.Hour), catalog.StateComplete, 10)
		}, Options{Policy: seedPolicy, ShrinkGuard: 0.5}},
		{"delete-error", func(st *memStore, ids []string) {
			st.failKeys[testLayout.Key(ids[5], "production.sqlite3")] = "AccessDenied: Access Denied"
		}, Options{Policy: seedPolicy}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, ids := bucket(t)
			if tc.setup != nil {
				tc.setup(st, ids)
			}
			o := tc.opts
			o.Store, o.Layout, o.Now = st, testLayout, planNow
			res, err := Run(t.Context(), o)
			var nd *NotDeletedError
			if err != nil && !errors.As(err, &nd) {
				t.Fatal(err)
			}
			golden(t, tc.name+".txt", res.Text())
			golden(t, tc.name+".md", res.Markdown())
		})
	}
}

func TestListing(t *testing.T) {
	st, _ := bucket(t)
	st.addGroup(planNow.Add(3*time.Minute), catalog.StateIncomplete, 10) // a clock ahead of ours
	l, err := List(t.Context(), st, testLayout, planNow)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.JSON()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "list.json", string(b))
	golden(t, "list.txt", l.Text())
	golden(t, "list.md", l.Markdown())

	var back Listing
	if err := json.Unmarshal(b, &back); err != nil || len(back.Groups) != 7 || back.Groups[0].AgeSeconds != -180 {
		t.Errorf("JSON does not round-trip: %v %+v", err, back.Groups)
	}
	empty, err := List(t.Context(), newMemStore(), testLayout, planNow)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := empty.JSON(); !json.Valid(b) || string(b) != `{
  "store": "mem://test",
  "root": "db_backups/production/",
  "now": "2026-05-15T12:00:00Z",
  "groups": [],
  "foreign": []
}
` {
		t.Errorf("empty listing JSON:\n%s", b)
	}
}

func TestAge(t *testing.T) {
	cases := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"zero", 0, "0m"},
		{"seconds", 59 * time.Second, "0m"},
		{"minutes", 42 * time.Minute, "42m"},
		{"hours", 5*time.Hour + 12*time.Minute, "5h 12m"},
		{"days", 3*24*time.Hour + 4*time.Hour + 59*time.Minute, "3d 4h"},
		{"future", -3 * time.Minute, "-3m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Age(tc.d); got != tc.want {
				t.Errorf("Age(%s) = %q, want %q", tc.d, got, tc.want)
			}
		})
	}
}
