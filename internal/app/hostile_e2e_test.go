package app_test

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBackupHostileNames: remote_path, include and database names full of
// shell syntax are passed as data, never executed, and backed up intact.
func TestBackupHostileNames(t *testing.T) {
	r := newRig(t, 200, 64)
	// A command that ran would make "pwned" in its working directory: the
	// login directory, or wherever the helper runs.
	const marker = "pwned"
	odd := filepath.Join(r.storage, "it's a \"dir\" $(touch "+marker+") `touch "+marker+"`\nline2")
	if err := os.Mkdir(odd, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{
		"my db $(touch " + marker + ").sqlite3",
		"q'uote\"d `touch " + marker + "`; rm -rf x.sqlite3",
	}
	for _, n := range names {
		copyFile(t, filepath.Join(r.storage, "production.sqlite3"), filepath.Join(odd, n))
	}
	if err := os.Chown(odd, r.sshd.UID, r.sshd.GID); err != nil {
		t.Fatal(err)
	}
	flags := append(r.flags(), "--remote-path", odd, "--include", "*$(touch "+marker+")*.sqlite3")
	code, stdout, stderr := runMain(t, append([]string{"backup"}, flags...), r.env)
	for _, dir := range []string{r.sshd.Home, r.storage, odd, r.tmp, "/"} {
		if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
			t.Fatalf("a hostile name executed a command on the host (%s/%s exists)", dir, marker)
		}
	}
	if code != app.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	id := backupIDFrom(t, stdout)
	layout := catalog.Layout{Prefix: "db_backups", Environment: "production"}
	m, err := catalog.ParseManifest(getObject(t, r.s3, layout.ManifestKey(id)))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 1 || m.Files[0].Name != names[0] {
		t.Fatalf("manifest files %+v, want exactly %q", m.Files, names[0])
	}
	got := getObject(t, r.s3, m.Files[0].Key)
	if sha256hex(got) != m.Files[0].StoredSHA256 {
		t.Errorf("stored object does not match the manifest")
	}
	assertNoTempLeft(t, r.tmp)
}

// TestBackupAsRootOfAppOwnedDatabases: the Kamal case, SSH user root and the
// databases owned by the app's uid. No root-owned file may be left in the
// app's storage (a root-owned -wal/-shm breaks the app's next write).
func TestBackupAsRootOfAppOwnedDatabases(t *testing.T) {
	r := newRig(t, 300, 128)
	w := testutil.StartWriter(t, testutil.WriterOptions{Dir: r.storage, Rate: 200, UID: r.sshd.UID, GID: r.sshd.GID})
	w.Stop() // the app closed cleanly: no -wal/-shm exist now
	root := testutil.StartSSHD(t, testutil.SSHDOptions{User: "root"})
	flags := append(r.flags(), "--ssh-user", "root", "--ssh-port", itoa(root.Port),
		"--ssh-private-key-path", root.ClientKeyPath, "--ssh-known-hosts-path", root.KnownHostsPath)
	code, stdout, stderr := runMain(t, append([]string{"backup"}, flags...), r.env)
	if code != app.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	checkGroup(t, r.s3, backupIDFrom(t, stdout))
	entries, err := os.ReadDir(r.storage)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != r.sshd.UID {
			t.Errorf("%s is owned by uid %d after a root backup, want the app's uid %d", e.Name(), st.Uid, r.sshd.UID)
		}
	}
	// And the app can still write.
	w2 := testutil.StartWriter(t, testutil.WriterOptions{Dir: r.storage, Rate: 200, UID: r.sshd.UID, GID: r.sshd.GID})
	time.Sleep(time.Second)
	if s := w2.Stop(); s.Errors > 0 || s.Commits == 0 {
		t.Errorf("the app could not write after the backup: %+v", s)
	}
}

// TestBackupUnreadableDatabase: an SSH user without read access gets an
// error naming the file, and nothing is uploaded.
func TestBackupUnreadableDatabase(t *testing.T) {
	r := newRig(t, 100, 64)
	secret := filepath.Join(r.storage, "production.sqlite3")
	if err := os.Chown(secret, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runMain(t, append([]string{"backup"}, r.flags()...), r.env)
	if code != app.ExitFailed {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, app.ExitFailed, stdout, stderr)
	}
	errLines := grepLines(stderr, "error: ")
	t.Log(errLines)
	if !strings.Contains(errLines, "production.sqlite3") || !strings.Contains(errLines, "permission denied") {
		t.Errorf("the error does not name the file:\n%s", errLines)
	}
	if keys := listKeys(t, r.s3); len(keys) != 0 {
		t.Errorf("objects left after a failed backup: %v", keys)
	}
	assertNoTempLeft(t, r.tmp)
}

func itoa(n int) string { return strconv.Itoa(n) }
