package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/remote"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// appProc is the app on the host: the test writer, run as the app's user by
// a start script that records its pid, killed by a stop script, the way
// `docker start` and `docker kill` would treat a container.
type appProc struct {
	pidFile, log string
	start        string // shell command starting the app in the background
}

func newAppProc(t *testing.T, storage string, uid, gid int) *appProc {
	t.Helper()
	dir := t.TempDir()
	testutil.MakeTraversable(t, dir)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "app")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, n := range testutil.RailsDatabases() {
		files = append(files, filepath.Join(storage, n))
	}
	// The writer's configuration, as testutil.StartWriter passes it.
	cfg, _ := json.Marshal(map[string]any{"files": files, "rate": 200, "pad_bytes": 64, "max_duration_ns": int64(3 * time.Minute)})
	p := &appProc{pidFile: filepath.Join(dir, "pid"), log: filepath.Join(dir, "log")}
	inner := "cd " + remote.Quote(storage) + " && echo $$ > " + remote.Quote(p.pidFile) + " && exec " + remote.Command("setpriv", "--reuid="+strconv.Itoa(uid),
		"--regid="+strconv.Itoa(gid), "--clear-groups", "env", testutil.EnvWriter+"="+string(cfg), bin, "-test.run=^$")
	// Not "cd dir && cmd &": that backgrounds a subshell holding the
	// session's stdout until the app exits.
	p.start = "setsid sh -c " + remote.Quote(inner) + " </dev/null >>" + remote.Quote(p.log) + " 2>&1 &"
	t.Cleanup(func() { _ = exec.Command("sh", "-c", p.stop("KILL")).Run() })
	return p
}

// stop sends sig and waits (up to 20 s) until the process is gone or a zombie.
func (p *appProc) stop(sig string) string {
	return "pid=$(cat " + remote.Quote(p.pidFile) + ") && kill -" + sig + ` "$pid" && i=0 && ` +
		`while s=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) && [ "$s" != Z ]; do i=$((i+1)); [ $i -lt 400 ] || exit 1; sleep 0.05; done`
}

func sh(t *testing.T, cmd string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c %q: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// waitReady waits until the app has reported ready n times in all.
func (p *appProc) waitReady(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(p.log)
		if bytes.Count(b, []byte(`"ready":true`)) >= n {
			return
		}
	}
	b, _ := os.ReadFile(p.log)
	t.Fatalf("the app did not start (%d times):\n%s", n, b)
}

// lastStats is the stats line of the app's last clean stop.
func (p *appProc) lastStats(t *testing.T) testutil.WriterStats {
	t.Helper()
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var msg struct{ Stats *testutil.WriterStats }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &msg); err != nil || msg.Stats == nil {
		t.Fatalf("no stats from the app: %v\n%s", err, b)
	}
	return *msg.Stats
}

// replaceRig is the rig with the databases owned by the app's user (and
// production.sqlite3 mode 0640), the app running, one backup taken under
// it, and a second sshd logging in as root, as with Kamal.
type replaceRig struct {
	*rig
	app  *appProc
	id   string
	m    *catalog.Manifest
	root []string // flags that log in as root
}

func newReplaceRig(t *testing.T) *replaceRig {
	t.Helper()
	r := &replaceRig{rig: newRig(t, 1500, 256)}
	for _, n := range testutil.RailsDatabases() {
		if err := os.Chown(filepath.Join(r.storage, n), r.sshd.UID, r.sshd.GID); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(r.storage, "production.sqlite3"), 0o640); err != nil {
		t.Fatal(err)
	}
	root := testutil.StartSSHD(t, testutil.SSHDOptions{User: "root"})
	r.root = []string{"--ssh-user", "root", "--ssh-port", itoa(root.Port),
		"--ssh-private-key-path", root.ClientKeyPath, "--ssh-known-hosts-path", root.KnownHostsPath}
	r.app = newAppProc(t, r.storage, r.sshd.UID, r.sshd.GID)
	sh(t, r.app.start)
	r.app.waitReady(t, 1)
	time.Sleep(300 * time.Millisecond)
	code, stdout, stderr := runMain(t, append([]string{"backup"}, r.flags()...), r.env)
	mustOK(t, "backup", code, stdout, stderr)
	r.id = backupIDFrom(t, stdout)
	r.m = checkGroup(t, r.s3, r.id)
	time.Sleep(300 * time.Millisecond) // the live databases move on from the backup
	nextSecond()                       // so the safety backup gets a group id of its own
	return r
}

// state records inode, SHA-256 and name of every database file (with -wal
// and -shm) in the storage dir into out, when run on the host.
func (r *replaceRig) state(out string) string {
	return "cd " + remote.Quote(r.storage) + ` && for f in *.sqlite3 *.sqlite3-wal *.sqlite3-shm; do [ -f "$f" ] && ` +
		`echo "$(stat -c '%i %a %u:%g' -- "$f") $(sha256sum < "$f" | cut -c1-64) $f"; done > ` + remote.Quote(out) + "; true"
}

func (r *replaceRig) restore(t *testing.T, stop, start string) (int, string, string) {
	t.Helper()
	args := r.restoreArgs("--backup-id", r.id, "--restore-mode", "replace", "--stop-command", stop, "--start-command", start)
	return runMain(t, append(args, r.root...), r.env)
}

// TestRestoreReplace: the live databases are swapped for the backup's
// while the app is stopped; it starts on exactly the restored bytes, with
// their owner and mode, no stale -wal/-shm, the old files kept whole.
func TestRestoreReplace(t *testing.T) {
	r := newReplaceRig(t)
	atStart := filepath.Join(t.TempDir(), "at-start")
	start := time.Now()
	code, stdout, stderr := r.restore(t, r.app.stop("KILL"), r.state(atStart)+"; "+r.app.start)
	mustOK(t, "replace", code, stdout, stderr)
	t.Logf("replace (safety backup, stop, swap of 4 databases, start) took %s", time.Since(start).Round(time.Millisecond))
	r.app.waitReady(t, 2)

	// What the app found when it started: the restored bytes, nothing else.
	seen := readFile(t, atStart)
	for _, f := range r.m.Files {
		if !strings.Contains(seen, " "+f.SHA256+" "+f.Name+"\n") {
			t.Errorf("at start, %s was not the restored file:\n%s", f.Name, seen)
		}
		for _, suffix := range []string{"-wal", "-shm"} {
			if strings.Contains(seen, " "+f.Name+suffix+"\n") {
				t.Errorf("at start, a stale %s%s was beside the restored database", f.Name, suffix)
			}
		}
	}
	wantMeta := fmt.Sprintf(" 640 %d:%d ", r.sshd.UID, r.sshd.GID)
	if !strings.Contains(seen, wantMeta) {
		t.Errorf("production.sqlite3 lost its mode or owner (want%s):\n%s", wantMeta, seen)
	}

	time.Sleep(500 * time.Millisecond)
	sh(t, r.app.stop("TERM"))
	if s := r.app.lastStats(t); s.Commits == 0 || s.Errors > 0 {
		t.Errorf("the app did not work on the restored databases: %+v", s)
	}
	safety := ""
	if _, rest, ok := strings.Cut(stdout, "safety backup of the previous databases: "); ok {
		safety = strings.Fields(rest)[0]
	}
	checkGroup(t, r.s3, safety)
	names := entries(t, r.storage)
	for _, f := range r.m.Files {
		live := filepath.Join(r.storage, f.Name)
		if err := testutil.CheckInvariant(live); err != nil {
			t.Errorf("live %s: %v", f.Name, err)
		}
		if n, snap := countRows(t, live), snapshotRows(t, r.rig, f); n <= snap {
			t.Errorf("live %s has %d rows, the backup %d: the app did not write to it", f.Name, n, snap)
		}
		old := map[string]string{} // "", "-wal" or "-shm" -> file name
		for _, n := range names {
			if rest, ok := strings.CutPrefix(n, f.Name+".pre-restore-"); ok && len(rest) >= len(catalog.IDLayout) {
				old[rest[len(catalog.IDLayout):]] = n
			}
		}
		// The old database and its WAL (the app was killed) are kept whole.
		if old[""] == "" || old["-wal"] == "" || len(old) > 3 {
			t.Errorf("previous files of %s: %v, want the database and its -wal (and -shm)", f.Name, old)
		} else if err := testutil.CheckInvariant(filepath.Join(r.storage, old[""])); err != nil {
			t.Errorf("previous %s: %v", f.Name, err)
		} else if n, snap := countRows(t, filepath.Join(r.storage, old[""])), snapshotRows(t, r.rig, f); n <= snap {
			t.Errorf("previous %s has %d rows, the backup %d: its WAL was lost", f.Name, n, snap)
		}
	}
	for _, n := range names {
		if !strings.Contains(n, ".sqlite3") {
			continue // uploads/, .keep
		}
		fi, err := os.Lstat(filepath.Join(r.storage, n))
		if err != nil {
			t.Fatal(err)
		}
		if uid := int(fi.Sys().(*syscall.Stat_t).Uid); uid != r.sshd.UID {
			t.Errorf("%s is owned by uid %d, want the app's %d", n, uid, r.sshd.UID)
		}
		if strings.HasSuffix(n, ".partial") {
			t.Errorf("temp file %s left", n)
		}
	}
	assertNoTempLeft(t, r.tmp)
}

// TestRestoreReplaceFailures: a failure before the swap leaves every live
// file exactly as it was (same inode, same bytes) and starts the app again.
func TestRestoreReplaceFailures(t *testing.T) {
	r := newReplaceRig(t)
	dir := t.TempDir()
	atStop, atStart, started := filepath.Join(dir, "at-stop"), filepath.Join(dir, "at-start"), filepath.Join(dir, "started")

	t.Run("the app does not stop", func(t *testing.T) {
		before := sh(t, "ls -i "+remote.Quote(r.storage))
		code, stdout, stderr := r.restore(t, "true", "echo started >> "+remote.Quote(started))
		if code == 0 {
			t.Fatalf("replace succeeded\n%s\n%s", stdout, stderr)
		}
		errLines := grepLines(stderr, "error: ")
		for _, w := range []string{"processes still hold the databases", "left as they were and start_command ran"} {
			if !strings.Contains(errLines, w) {
				t.Errorf("error lines do not say %q:\n%s", w, errLines)
			}
		}
		if readFile(t, started) != "started\n" {
			t.Errorf("start_command did not run once")
		}
		if after := sh(t, "ls -i "+remote.Quote(r.storage)); after != before {
			t.Errorf("the live dir changed:\n%s\nwas\n%s", after, before)
		}
	})

	t.Run("failure after the live files were moved aside", func(t *testing.T) {
		nextSecond()
		blocker := filepath.Join(r.storage, "production_queue.sqlite3.restore-"+r.id+".partial")
		if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := r.restore(t, r.app.stop("KILL")+"; "+r.state(atStop), r.state(atStart)+"; "+r.app.start)
		if code == 0 {
			t.Fatalf("replace succeeded\n%s\n%s", stdout, stderr)
		}
		errLines := grepLines(stderr, "error: ")
		t.Log(errLines)
		for _, w := range []string{"is not a regular file", "left as they were and start_command ran"} {
			if !strings.Contains(errLines, w) {
				t.Errorf("error lines do not say %q", w)
			}
		}
		stopped, restarted := readFile(t, atStop), readFile(t, atStart)
		if stopped != restarted || !strings.Contains(stopped, "production.sqlite3-wal") {
			t.Errorf("the live files changed between stop and start:\n%s\nthen\n%s", stopped, restarted)
		}
		if err := os.RemoveAll(blocker); err != nil {
			t.Fatal(err)
		}
		for _, n := range entries(t, r.storage) {
			if strings.Contains(n, ".pre-restore-") || strings.Contains(n, ".partial") {
				t.Errorf("left in the live dir: %s", n)
			}
		}
		r.app.waitReady(t, 2)
		time.Sleep(300 * time.Millisecond)
		sh(t, r.app.stop("TERM"))
		if s := r.app.lastStats(t); s.Commits == 0 || s.Errors > 0 {
			t.Errorf("the app did not run again on its own databases: %+v", s)
		}
		for _, n := range testutil.RailsDatabases() {
			if err := testutil.CheckInvariant(filepath.Join(r.storage, n)); err != nil {
				t.Error(err)
			}
		}
	})
}

// nextSecond sleeps into the next second: group ids have one-second resolution.
func nextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now) + 10*time.Millisecond)
}

func countRows(t *testing.T, p string) int64 {
	t.Helper()
	n, err := testutil.CountRows(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// snapshotRows counts the ledger rows of a database as the backup holds it.
func snapshotRows(t *testing.T, r *rig, f catalog.File) int64 {
	t.Helper()
	d, err := snapshot.Decompressor(f.Compression, bytes.NewReader(getObject(t, r.s3, f.Key)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p := filepath.Join(t.TempDir(), f.Name)
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, d); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return countRows(t, p)
}
