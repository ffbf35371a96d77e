package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRunCompressions(t *testing.T) {
	for _, compression := range []string{CompressionZstd, CompressionGzip, CompressionNone} {
		t.Run(compression, func(t *testing.T) {
			dir, out := t.TempDir(), t.TempDir()
			wantRows := map[string]int64{"a.sqlite3": 300, "b.sqlite3": 1200}
			for name, rows := range wantRows {
				w := openWriter(t, filepath.Join(dir, name)) // stays open: the WAL holds the rows
				addRows(t, w, int(rows), 500)
			}
			before := statLive(t, dir)

			files, err := collect(t, Request{Dir: dir, Include: "*.sqlite3", OutDir: out, Compression: compression})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			var wantOut []string
			for i, f := range files {
				if got, want := f.Name, []string{"a.sqlite3", "b.sqlite3"}[i]; got != want {
					t.Fatalf("file %d is %s, want %s", i, got, want)
				}
				if got, want := f.Path, filepath.Join(out, f.Name+Extension(compression)); got != want {
					t.Errorf("Path = %s, want %s", got, want)
				}
				if f.Compression != compression {
					t.Errorf("Compression = %q, want %q", f.Compression, compression)
				}
				if got := ledgerCount(t, restore(t, f)); got != wantRows[f.Name] {
					t.Errorf("%s: snapshot has %d rows, want %d (the WAL's rows)", f.Name, got, wantRows[f.Name])
				}
				wantOut = append(wantOut, filepath.Base(f.Path))
				t.Logf("%s: %d bytes -> %d stored, snapshot %d ms, compress %d ms",
					f.Name, f.Size, f.StoredSize, f.SnapshotMS, f.CompressMS)
			}
			if len(files) != 2 {
				t.Fatalf("Run reported %d files, want 2", len(files))
			}
			if got := dirNames(t, out); !slices.Equal(got, wantOut) {
				t.Errorf("OutDir holds %q, want only %q", got, wantOut)
			}
			if after := statLive(t, dir); !slices.Equal(after, before) {
				t.Errorf("live files changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// statLive describes the databases, WALs and shared-memory files in dir
// by name, size and mtime, without opening them (closing a descriptor of
// a database would drop this process's SQLite locks on it).
func statLive(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	for _, name := range dirNames(t, dir) {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, "-shm") { // readers write their marks in it
			got = append(got, name)
			continue
		}
		got = append(got, fmt.Sprintf("%s %d bytes %s", name, st.Size(), st.ModTime()))
	}
	return got
}

func TestRunSelectsFiles(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	odd := `it's $(touch x) #1?%20 .sqlite3`
	for _, name := range []string{"prod.sqlite3", "plain"} {
		w := openWriter(t, filepath.Join(dir, name))
		addRows(t, w, 7, 10)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(filepath.Join(dir, "plain"), filepath.Join(dir, odd)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".keep", "gone.sqlite3-journal", "gone.sqlite3-wal", "gone.sqlite3-shm", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("not a database"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"uploads", "cache.sqlite3"} { // directories, even matching ones, are skipped
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(t.TempDir())

	files, err := collect(t, Request{Dir: dir, Include: "*.sqlite3*", OutDir: out, Compression: CompressionZstd})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
		if got := ledgerCount(t, restore(t, f)); got != 7 {
			t.Errorf("%s: %d rows, want 7", f.Name, got)
		}
	}
	if want := []string{odd, "prod.sqlite3"}; !slices.Equal(names, want) {
		t.Errorf("snapshotted %q, want %q", names, want)
	}
	for _, d := range []string{dir, out, "."} {
		if _, err := os.Stat(filepath.Join(d, "x")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s/x exists (err %v): a file name was run by a shell", d, err)
		}
	}
}

func TestRunRefuses(t *testing.T) {
	dir := t.TempDir()
	w := openWriter(t, filepath.Join(dir, "prod.db"))
	addRows(t, w, 1, 10)
	if err := os.Symlink(filepath.Join(dir, "prod.db"), filepath.Join(dir, "link.sqlite3")); err != nil {
		t.Fatal(err)
	}
	hot := t.TempDir() // a database with a hot rollback journal next to it
	hw := openWriter(t, filepath.Join(hot, "x.db"))
	addRows(t, hw, 1, 10)
	if err := hw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hot, "x.db-journal"), []byte("rollback me"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		req     Request
		wantErr string
	}{
		{"hot journal", Request{Dir: hot, Include: "*.db", OutDir: t.TempDir(), Compression: CompressionZstd},
			"x.db: open read-only (it has a hot -journal to roll back"},
		{"zero matches", Request{Dir: dir, Include: "*.sqlite3x", OutDir: t.TempDir(), Compression: CompressionZstd},
			"no database files in " + dir + ` match "*.sqlite3x"`},
		{"symlink", Request{Dir: dir, Include: "*.sqlite3", OutDir: t.TempDir(), Compression: CompressionZstd},
			"link.sqlite3 matches \"*.sqlite3\" but is a symlink"},
		{"slash in include", Request{Dir: dir, Include: "sub/*.db", OutDir: t.TempDir(), Compression: CompressionZstd},
			"without a slash"},
		{"bad pattern", Request{Dir: dir, Include: "[.db", OutDir: t.TempDir(), Compression: CompressionZstd},
			"syntax error in pattern"},
		{"out dir is dir", Request{Dir: dir, Include: "*.db", OutDir: dir, Compression: CompressionZstd},
			"is the database dir"},
		{"unknown compression", Request{Dir: dir, Include: "*.db", OutDir: t.TempDir(), Compression: "lz4"},
			`unknown compression "lz4"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := collect(t, tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run() error = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.req.OutDir != dir {
				if got := dirNames(t, tt.req.OutDir); len(got) != 0 {
					t.Errorf("OutDir holds %q, want nothing", got)
				}
			}
		})
	}
}

func TestRunCleansUpFailedFile(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	w := openWriter(t, filepath.Join(dir, "a.db"))
	addRows(t, w, 3, 10)
	if err := os.WriteFile(filepath.Join(dir, "b.db"), []byte("this is not a database, just text"), 0o600); err != nil {
		t.Fatal(err)
	}
	files, err := collect(t, Request{Dir: dir, Include: "*.db", OutDir: out, Compression: CompressionGzip})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "b.db")) {
		t.Fatalf("Run() error = %v, want one naming b.db", err)
	}
	if len(files) != 1 || files[0].Name != "a.db" {
		t.Errorf("reported %+v, want only a.db", files)
	}
	if got, want := dirNames(t, out), []string{"a.db.gz"}; !slices.Equal(got, want) {
		t.Errorf("OutDir holds %q, want %q", got, want)
	}

	// An emit error stops the run after the first file.
	calls := 0
	errStop := errors.New("runner went away")
	err = Run(context.Background(), Request{Dir: dir, Include: "*.db", OutDir: t.TempDir(), Compression: CompressionZstd},
		func(File) error { calls++; return errStop })
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("Run() = %v after %d emits, want errStop after 1", err, calls)
	}
}

func TestRunFreeSpace(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	w := openWriter(t, filepath.Join(dir, "production.sqlite3"))
	addRows(t, w, 4000, 1000) // about 5 MiB, most of it in the WAL
	var live int64
	for _, s := range []string{"", "-wal"} {
		st, err := os.Stat(filepath.Join(dir, "production.sqlite3"+s))
		if err != nil {
			t.Fatal(err)
		}
		live += st.Size()
	}
	need := uint64(live + min(live, 16<<20) + 8<<20)
	fakeDisk := func(free uint64) func(string, *unix.Statfs_t) error {
		return func(_ string, st *unix.Statfs_t) error {
			st.Bsize, st.Bavail = 4096, free/4096
			return nil
		}
	}
	tests := []struct {
		name    string
		statfs  func(string, *unix.Statfs_t) error
		wantErr string
	}{
		{"small disk", fakeDisk(12 << 20), fmt.Sprintf("not enough space in %s for production.sqlite3: 12 MiB free, "+
			"about %d MiB needed (set remote_temp_dir to a larger disk)", out, (need+1<<20-1)>>20)},
		{"one block short", fakeDisk(need - 1), "not enough space"},
		{"statfs fails", func(string, *unix.Statfs_t) error { return syscall.EIO }, "free space in " + out},
		{"just enough", fakeDisk(need + 4095), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := taker{statfs: tt.statfs}.run(context.Background(),
				Request{Dir: dir, Include: "*.sqlite3", OutDir: out, Compression: CompressionZstd},
				func(File) error { return nil })
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("run() = %v, want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run() error = %v\nwant one containing %q", err, tt.wantErr)
			}
			if got := dirNames(t, out); len(got) != 0 {
				t.Errorf("OutDir holds %q, want nothing", got)
			}
		})
	}
}

// TestRunAsRootKeepsOwners checks that the -wal and -shm files SQLite
// creates while a root helper reads a database end up owned by the
// database's owner, so the app can still open them afterwards.
func TestRunAsRootKeepsOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	const uid, gid = 1000, 1000
	tests := []struct {
		name    string
		keepWAL bool // a WAL with frames left by a crashed app, no -shm
	}{
		{"clean shutdown, no side files", false},
		{"orphaned WAL", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "app.sqlite3")
			w := openWriter(t, db)
			addRows(t, w, 50, 100)
			if _, err := w.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				t.Fatal(err)
			}
			addRows(t, w, 25, 100) // only in the WAL
			if tt.keepWAL {
				copyFile(t, db, db+".copy")
				copyFile(t, db+"-wal", db+".copy-wal")
			}
			if err := w.Close(); err != nil { // last connection: checkpoints, removes -wal and -shm
				t.Fatal(err)
			}
			if tt.keepWAL {
				for _, s := range []string{"", "-wal"} {
					if err := os.Rename(db+".copy"+s, db+s); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, s := range []string{"", "-wal"} {
				if err := os.Chown(db+s, uid, gid); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
			before := statLive(t, dir)

			files, err := collect(t, Request{Dir: dir, Include: "*.sqlite3", OutDir: t.TempDir(), Compression: CompressionZstd})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := ledgerCount(t, restore(t, files[0])); got != 75 {
				t.Errorf("snapshot has %d rows, want 75", got)
			}
			for _, s := range []string{"-wal", "-shm"} {
				st, err := os.Stat(db + s)
				if errors.Is(err, os.ErrNotExist) {
					t.Logf("%s: absent after Run", s)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				sys := st.Sys().(*syscall.Stat_t)
				t.Logf("%s: present after Run, owner %d:%d, mode %v, %d bytes", s, sys.Uid, sys.Gid, st.Mode(), st.Size())
				if sys.Uid != uid || sys.Gid != gid {
					t.Errorf("%s is owned by %d:%d, want the database owner %d:%d", s, sys.Uid, sys.Gid, uid, gid)
				}
			}
			after := statLive(t, dir)
			for _, b := range before {
				if !slices.Contains(after, b) {
					t.Errorf("%s changed (checkpointed?); after Run: %v", b, after)
				}
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWaitForSpace: a snapshot that does not fit waits while an earlier
// one is still in the out dir (the runner removes it once stored), and
// fails at once when nothing there will be freed.
func TestWaitForSpace(t *testing.T) {
	dir := t.TempDir()
	addRows(t, openWriter(t, filepath.Join(dir, "b.sqlite3")), 100, 100)
	tests := []struct {
		name      string
		earlier   bool          // an earlier snapshot is in the out dir
		removeIn  time.Duration // when the runner removes it (0: never)
		spaceWait time.Duration
		wantErr   bool
		freedLag  time.Duration // the space comes back this long after the file goes
	}{
		{"earlier one removed", true, 300 * time.Millisecond, 10 * time.Second, false, 0},
		{"space freed a moment after the removal", true, 300 * time.Millisecond, 10 * time.Second, false, time.Second},
		{"nothing to wait for", false, 0, 10 * time.Second, true, 0},
		{"earlier one never removed", true, 0, 400 * time.Millisecond, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			earlier := filepath.Join(out, "a.sqlite3.zst")
			if tt.earlier {
				if err := os.WriteFile(earlier, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.removeIn > 0 {
				time.AfterFunc(tt.removeIn, func() { os.Remove(earlier) })
			}
			// The disk is full while the earlier snapshot is there.
			start := time.Now()
			statfs := func(_ string, st *unix.Statfs_t) error {
				st.Bsize, st.Bavail = 4096, 1<<30/4096
				_, err := os.Stat(earlier)
				if err == nil || !tt.earlier || time.Since(start) < tt.removeIn+tt.freedLag {
					st.Bavail = 1
				}
				return nil
			}
			err := taker{statfs: statfs, spaceWait: tt.spaceWait}.waitForSpace(context.Background(),
				filepath.Join(dir, "b.sqlite3"), out, "b.sqlite3")
			took := time.Since(start)
			if (err != nil) != tt.wantErr {
				t.Fatalf("waitForSpace() = %v after %v, want error: %t", err, took, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "not enough space") {
				t.Errorf("error %q does not say what is short", err)
			}
			if !tt.wantErr && took < tt.removeIn+tt.freedLag {
				t.Errorf("returned after %v, before the earlier snapshot was removed", took)
			}
			if !tt.earlier && took > time.Second {
				t.Errorf("waited %v with nothing to wait for", took)
			}
		})
	}
}
