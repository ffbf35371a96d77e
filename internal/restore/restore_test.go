package restore

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

func TestGuard(t *testing.T) {
	cases := []struct {
		name  string
		guard Guard
		want  string // "" = allowed
	}{
		{"confirmed staging", Guard{Confirm: "YES", Environment: "staging"}, ""},
		{"confirm missing", Guard{Environment: "staging"}, "confirm is not set; set confirm: YES"},
		{"confirm lower case", Guard{Confirm: "yes", Environment: "staging"}, `confirm is "yes"; it must be exactly YES`},
		{"confirm with space", Guard{Confirm: "YES ", Environment: "staging"}, "must be exactly YES"},
		{"production without allow", Guard{Confirm: "YES", Environment: "production"}, "set allow_restore: true (CLI: --allow-restore) or env ALLOW_DB_RESTORE=1"},
		{"Production without allow", Guard{Confirm: "YES", Environment: "Production"}, "ALLOW_DB_RESTORE=1"},
		{"production allowed", Guard{Confirm: "YES", Environment: "production", Allow: true}, ""},
		{"allow does not replace confirm", Guard{Environment: "production", Allow: true}, "confirm is not set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.guard.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want allowed", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a refusal saying %q", err, tc.want)
			}
		})
	}
}

// untouchable fails the test on any use: a refused restore must not reach
// the store or the target.
type untouchable struct {
	store.Backend
	t *testing.T
}

func (u untouchable) List(context.Context, string) ([]store.Object, error) {
	u.t.Error("the store was listed")
	return nil, errors.New("no")
}
func (u untouchable) Get(context.Context, string) (io.ReadCloser, error) {
	u.t.Error("the store was read")
	return nil, errors.New("no")
}
func (u untouchable) String() string { return "untouchable" }

func TestRunRefusesBeforeTouchingAnything(t *testing.T) {
	for _, g := range []Guard{{}, {Confirm: "yes"}, {Confirm: "YES", Environment: "production"}} {
		o := Options{Store: untouchable{t: t}, Layout: layout, Mode: ModeSideBySide, Guard: g, Dir: t.TempDir(),
			Connect: func(context.Context) (Target, error) { t.Error("the target was contacted"); return Local{}, nil }}
		if _, err := Run(context.Background(), o); !errors.Is(err, ErrRefused) {
			t.Errorf("guard %+v: got %v, want a refusal", g, err)
		}
	}
}

func TestSideBySideAndLocal(t *testing.T) {
	f := newFixture(t)
	if err := os.Chmod(filepath.Join(f.live, "production.sqlite3"), 0o640); err != nil {
		t.Fatal(err)
	}
	before := tree(t, f.live)
	localDir := filepath.Join(t.TempDir(), "restore")
	cases := []struct {
		name, mode, dir, files string
		wantDir                string
		wantFiles              []string
	}{
		{"side_by_side", ModeSideBySide, f.live, "", filepath.Join(f.live, "restore-"+f.id), testutil.RailsDatabases()},
		{"local with files glob", ModeLocal, localDir, "production_c*", localDir, []string{"production_cable.sqlite3", "production_cache.sqlite3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := f.opts(t, tc.mode, tc.dir)
			o.Files = tc.files
			res, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Dir != tc.wantDir || res.ID != f.id || len(res.Files) != len(tc.wantFiles) {
				t.Fatalf("restored %d files of %s into %s, want %d of %s into %s", len(res.Files), res.ID, res.Dir, len(tc.wantFiles), f.id, tc.wantDir)
			}
			got := tree(t, tc.wantDir)
			if len(got) != len(tc.wantFiles) {
				t.Errorf("%s holds %v, want %v", tc.wantDir, names(got), tc.wantFiles)
			}
			for _, mf := range f.m.Files {
				sum, ok := got[mf.Name]
				if !ok {
					continue
				}
				if sum != mf.SHA256 {
					t.Errorf("%s: sha256 %s, manifest %s", mf.Name, sum, mf.SHA256)
				}
				if err := testutil.CheckInvariant(filepath.Join(tc.wantDir, mf.Name)); err != nil {
					t.Error(err)
				}
			}
			st, err := os.Stat(filepath.Join(tc.wantDir, tc.wantFiles[0]))
			if err != nil {
				t.Fatal(err)
			}
			wantMode := os.FileMode(0o600)
			if tc.mode == ModeSideBySide {
				wantMode = 0o640 // copied from the live file
			}
			if tc.wantFiles[0] == "production.sqlite3" && st.Mode().Perm() != wantMode {
				t.Errorf("mode %s, want %s", st.Mode().Perm(), wantMode)
			}
		})
	}
	live := tree(t, f.live)
	for k := range live {
		if strings.HasPrefix(k, "restore-") {
			delete(live, k)
		}
	}
	sameTree(t, "live dir", live, before)

	if _, err := Run(context.Background(), f.opts(t, ModeSideBySide, f.live)); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second side_by_side restore of the same group: got %v, want already exists", err)
	}
}

func TestRejectsBadGroups(t *testing.T) {
	f := newFixture(t)
	first := f.m.Files[0].Name
	flip := func(b []byte) { b[len(b)/2] ^= 0x10 }
	cases := []struct {
		name   string
		id     string
		change func(m *catalog.Manifest, objs map[string][]byte)
		want   []string
	}{
		{"bit flip", "20250101-000001", func(m *catalog.Manifest, o map[string][]byte) { flip(o[first]) },
			[]string{first, "stored object does not match the manifest"}},
		{"truncated", "20250101-000002", func(m *catalog.Manifest, o map[string][]byte) { o[first] = o[first][:len(o[first])/2] },
			[]string{first, "stored object does not match the manifest"}},
		{"wrong raw hash", "20250101-000003", func(m *catalog.Manifest, o map[string][]byte) { m.Files[0].SHA256 = strings.Repeat("ab", 32) },
			[]string{first, "database does not match the manifest"}},
		{"wrong page count", "20250101-000004", func(m *catalog.Manifest, o map[string][]byte) { m.Files[0].PageCount++ },
			[]string{first, "the manifest says"}},
		{"dot dot name", "20250101-000005", func(m *catalog.Manifest, o map[string][]byte) { m.Files[0].Name = "../evil" },
			[]string{`"../evil"`, "path separator"}},
		{"absolute name", "20250101-000006", func(m *catalog.Manifest, o map[string][]byte) { m.Files[0].Name = "/etc/evil.sqlite3" },
			[]string{`"/etc/evil.sqlite3"`}},
		{"key outside the group", "20250101-000007", func(m *catalog.Manifest, o map[string][]byte) {
			m.Files[0].Key = layout.Key(f.id, first+".zst")
		}, []string{"outside its group"}},
		{"manifest of another group", "20250101-000008", func(m *catalog.Manifest, o map[string][]byte) { m.GroupID = f.id },
			[]string{"belongs to another group"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.forge(t, tc.id, tc.change)
			before := tree(t, f.live)
			for _, mode := range []string{ModeSideBySide, ModeLocal} {
				dir := f.live
				if mode == ModeLocal {
					dir = filepath.Join(t.TempDir(), "restore")
				}
				o := f.opts(t, mode, dir)
				o.BackupID = tc.id
				_, err := Run(context.Background(), o)
				if err == nil {
					t.Fatalf("%s: restore succeeded", mode)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: error %q does not say %q", mode, err, w)
					}
				}
				if _, serr := os.Stat(dir); mode == ModeLocal && serr == nil {
					t.Errorf("local: %s was written", dir)
				}
			}
			sameTree(t, "live dir", tree(t, f.live), before)
		})
	}
}

func TestLatestAndLegacy(t *testing.T) {
	f := newFixture(t)
	// A newer legacy group (raw objects, no manifest) and a still newer
	// incomplete one: latest is the legacy group.
	legacyID, incompleteID := "20250201-000000", "20250202-000000"
	for _, name := range testutil.RailsDatabases()[:2] {
		raw, err := os.ReadFile(filepath.Join(f.live, name))
		if err != nil {
			t.Fatal(err)
		}
		f.put(t, layout.Key(legacyID, name), raw)
		f.put(t, layout.Key(incompleteID, name+".zst"), []byte("half"))
	}
	f.put(t, layout.Key(legacyID, "notes.txt"), []byte("not a database"))
	f.put(t, layout.InProgressKey(incompleteID), []byte("{}"))

	dir := filepath.Join(t.TempDir(), "restore")
	res, err := Run(context.Background(), f.opts(t, ModeLocal, dir))
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != legacyID || !res.Legacy || len(res.Files) != 2 {
		t.Fatalf("restored %s (legacy %v) with %d files, want legacy %s with 2", res.ID, res.Legacy, len(res.Files), legacyID)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "integrity_check only") {
		t.Errorf("warnings %q, want one about the missing checksums", res.Warnings)
	}
	for _, fr := range res.Files {
		if err := testutil.CheckInvariant(fr.Path); err != nil {
			t.Error(err)
		}
	}

	o := f.opts(t, ModeLocal, filepath.Join(t.TempDir(), "restore"))
	o.BackupID = incompleteID
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("restore of an incomplete group: got %v", err)
	}
	o.BackupID = "20240101-000000"
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("restore of a missing group: got %v", err)
	}
	o.BackupID, o.Files = Latest, "nothing*"
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "matches none") {
		t.Errorf("files matching nothing: got %v", err)
	}
}

func TestSafeJoin(t *testing.T) {
	for _, name := range []string{"../evil", "/etc/passwd", "a/b", "..", ".", "", "x\x00y", `a\b`, "..hidden"} {
		if p, err := safeJoin("/srv/storage", name); err == nil {
			t.Errorf("safeJoin(%q) = %q, want an error", name, p)
		}
	}
	if p, err := safeJoin("/srv/storage/", "production.sqlite3"); err != nil || p != "/srv/storage/production.sqlite3" {
		t.Errorf("safeJoin = %q, %v", p, err)
	}
}
