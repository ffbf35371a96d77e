package app_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// TestDemo runs the README quickstart (`go run . demo`) in process and
// checks the group it writes, twice: the second run backs up grown databases.
func TestDemo(t *testing.T) {
	data, dest := filepath.Join(t.TempDir(), "demo-data"), filepath.Join(t.TempDir(), "demo-backups")
	for run := 0; run < 2; run++ {
		if run == 1 {
			waitNextSecond()
		}
		code, stdout, stderr := runMain(t, []string{"demo", "--dir", data, "--destination-dir", dest, "--rows", "2000"}, nil)
		if code != app.ExitOK {
			t.Fatalf("run %d: exit %d\n%s\n%s", run, code, stdout, stderr)
		}
		id := backupIDFrom(t, stdout)
		layout := catalog.Layout{Prefix: "db_backups", Environment: "production"}
		b, err := os.ReadFile(filepath.Join(dest, filepath.FromSlash(layout.ManifestKey(id))))
		if err != nil {
			t.Fatal(err)
		}
		m, err := catalog.ParseManifest(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Files) != 4 {
			t.Fatalf("run %d: %d files in the manifest, want 4", run, len(m.Files))
		}
		for _, f := range m.Files {
			src, err := os.Open(filepath.Join(dest, filepath.FromSlash(f.Key)))
			if err != nil {
				t.Fatal(err)
			}
			d, err := snapshot.Decompressor(f.Compression, src)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), f.Name)
			out, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := out.ReadFrom(d); err != nil {
				t.Fatal(err)
			}
			out.Close()
			d.Close()
			src.Close()
			if err := testutil.CheckInvariant(p); err != nil {
				t.Errorf("run %d: %s: %v", run, f.Name, err)
			}
		}
		if !strings.Contains(stdout, "the writer committed") {
			t.Errorf("demo output lacks the writer's count:\n%s", stdout)
		}
	}
}
