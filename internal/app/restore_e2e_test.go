package app_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

var rsLayout = catalog.Layout{Prefix: "db_backups", Environment: "production"}

// restoreArgs are the CLI arguments of a guarded restore against the rig.
func (r *rig) restoreArgs(extra ...string) []string {
	args := append([]string{"restore"}, r.flags()...)
	return append(append(args, "--confirm", "YES", "--allow-restore"), extra...)
}

func putObject(t testing.TB, s *testutil.S3Server, key string, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// forgeGroup copies group id to newID under l, as someone with write access
// to the bucket could: change edits the manifest and the objects (by file
// name) before they are written, manifest last and unvalidated.
func forgeGroup(t testing.TB, s *testutil.S3Server, l catalog.Layout, id, newID string, change func(m *catalog.Manifest, objs map[string][]byte)) {
	t.Helper()
	m, err := catalog.ParseManifest(getObject(t, s, rsLayout.ManifestKey(id)))
	if err != nil {
		t.Fatal(err)
	}
	m.GroupID, m.Environment = newID, l.Environment
	objs := map[string][]byte{}
	for i, f := range m.Files {
		objs[f.Name] = getObject(t, s, f.Key)
		m.Files[i].Key = l.Key(newID, f.Name+".zst")
	}
	if change != nil {
		change(m, objs)
	}
	for _, f := range m.Files {
		if b, ok := objs[f.Name]; ok {
			putObject(t, s, l.Key(newID, f.Name+".zst"), b)
		}
	}
	body, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	putObject(t, s, l.ManifestKey(newID), body)
}

// entries lists the names in dir.
func entries(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func mustOK(t *testing.T, what string, code int, stdout, stderr string) {
	t.Helper()
	if code != app.ExitOK {
		t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", what, code, stdout, stderr)
	}
}

// checkRestored checks that dir holds exactly the group's databases, each
// byte-identical to the snapshot the manifest describes and consistent.
func checkRestored(t *testing.T, m *catalog.Manifest, dir string) {
	t.Helper()
	var want []string
	for _, f := range m.Files {
		want = append(want, f.Name)
		p := filepath.Join(dir, f.Name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v", f.Name, err)
			continue
		}
		if got := sha256hex(b); got != f.SHA256 {
			t.Errorf("%s: restored sha256 %s, manifest %s", f.Name, got, f.SHA256)
		}
		if err := testutil.CheckInvariant(p); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
	}
	got := entries(t, dir)
	if strings.Join(got, ",") != strings.Join(slices.Sorted(slices.Values(want)), ",") {
		t.Errorf("%s holds %v, want %v", dir, got, want)
	}
}

// TestRestoreSideBySideRoundTrip: back up under a live writer, restore next
// to the live databases while the writer keeps writing; the restored files
// are the snapshots, byte for byte, and the live ones are never touched.
func TestRestoreSideBySideRoundTrip(t *testing.T) {
	r := newRig(t, 3000, 512)
	w := testutil.StartWriter(t, testutil.WriterOptions{Dir: r.storage, Rate: 300, UID: r.sshd.UID, GID: r.sshd.GID})
	time.Sleep(300 * time.Millisecond)
	code, stdout, stderr := runMain(t, append([]string{"backup"}, r.flags()...), r.env)
	mustOK(t, "backup", code, stdout, stderr)
	id := backupIDFrom(t, stdout)
	m := checkGroup(t, r.s3, id)

	start := time.Now()
	code, stdout, stderr = runMain(t, r.restoreArgs(), r.env)
	mustOK(t, "restore", code, stdout, stderr)
	t.Logf("side_by_side restore of 4 databases took %s", time.Since(start).Round(time.Millisecond))
	stats := w.Stop()
	if stats.Errors > 0 {
		t.Errorf("the live writer failed during the restore: %v", stats.ErrorSamples)
	}
	dir := filepath.Join(r.storage, "restore-"+id)
	checkRestored(t, m, dir)
	for _, e := range entries(t, r.storage) {
		if strings.Contains(e, ".partial") || strings.Contains(e, ".pre-restore-") {
			t.Errorf("left in the live dir: %s", e)
		}
	}
	live, _ := os.Stat(filepath.Join(r.storage, "production.sqlite3"))
	restored, _ := os.Stat(filepath.Join(dir, "production.sqlite3"))
	if live.Mode() != restored.Mode() {
		t.Errorf("restored mode %s, live %s", restored.Mode(), live.Mode())
	}
	if !strings.Contains(stdout, "restore "+id+" (side_by_side)") {
		t.Errorf("stdout does not report the restore:\n%s", stdout)
	}
	assertNoTempLeft(t, r.tmp)

	local := filepath.Join(t.TempDir(), "restore")
	code, stdout, stderr = runMain(t, r.restoreArgs("--restore-mode", "local", "--restore-dir", local, "--backup-id", id), r.env)
	mustOK(t, "restore local", code, stdout, stderr)
	checkRestored(t, m, local)
}

// TestRestoreLocalAndVerifyActionMode: restore_mode local and verify, as
// the runner runs them (INPUT_*, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY).
func TestRestoreLocalAndVerifyActionMode(t *testing.T) {
	r := newRig(t, 500, 128)
	code, stdout, stderr := runMain(t, append([]string{"backup"}, r.flags()...), r.env)
	mustOK(t, "backup", code, stdout, stderr)
	id := backupIDFrom(t, stdout)
	m := checkGroup(t, r.s3, id)

	files := t.TempDir()
	workspace := t.TempDir()
	env := map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": workspace,
		"GITHUB_OUTPUT": filepath.Join(files, "output"), "GITHUB_STEP_SUMMARY": filepath.Join(files, "summary"),
		"INPUT_BUCKET": bucket, "INPUT_ENDPOINT": r.s3.Endpoint, "INPUT_FORCE_PATH_STYLE": "true",
		"INPUT_ACCESS_KEY_ID": r.s3.AccessKey, "INPUT_SECRET_ACCESS_KEY": r.s3.SecretKey,
		"INPUT_COMMAND": "restore", "INPUT_RESTORE_MODE": "local", "INPUT_CONFIRM": "YES",
		"INPUT_BACKUP_ID": "latest", "ALLOW_DB_RESTORE": "1",
	}
	code, stdout, stderr = runMain(t, nil, env)
	mustOK(t, "restore local", code, stdout, stderr)
	dir := filepath.Join(workspace, "restore")
	checkRestored(t, m, dir)
	out := readFile(t, env["GITHUB_OUTPUT"])
	for _, want := range []string{"restored_backup_id<<", id, "restore_path<<", dir} {
		if !strings.Contains(out, want) {
			t.Errorf("GITHUB_OUTPUT lacks %q:\n%s", want, out)
		}
	}
	if s := readFile(t, env["GITHUB_STEP_SUMMARY"]); !strings.Contains(s, "SQLite restore `"+id+"` (local)") {
		t.Errorf("job summary:\n%s", s)
	}

	env["INPUT_COMMAND"], env["INPUT_MAX_AGE_HOURS"] = "verify", "1"
	code, stdout, stderr = runMain(t, nil, env)
	mustOK(t, "verify", code, stdout, stderr)
	if out := readFile(t, env["GITHUB_OUTPUT"]); !strings.Contains(out, "verified_backup_id<<") {
		t.Errorf("GITHUB_OUTPUT lacks verified_backup_id:\n%s", out)
	}
	summary := readFile(t, env["GITHUB_STEP_SUMMARY"])
	for _, want := range []string{"restore drill `" + id + "`: passed", "`ledger` 500", "`totals` 1", "freshness passed"} {
		if !strings.Contains(summary, want) {
			t.Errorf("verify summary lacks %q:\n%s", want, summary)
		}
	}
}

// counter is a TCP listener that counts connections: a refused restore
// must not open any.
type counter struct {
	ln net.Listener
	n  atomic.Int64
}

func newCounter(t *testing.T) *counter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.n.Add(1)
			conn.Close()
		}
	}()
	return c
}

func (c *counter) port() string { return strings.TrimPrefix(c.ln.Addr().String(), "127.0.0.1:") }

// TestRestoreGuards: a restore without confirm: YES, or into production
// without the allowance, is refused before any connection is made.
func TestRestoreGuards(t *testing.T) {
	ssh, s3srv := newCounter(t), newCounter(t)
	base := []string{"restore", "--ssh-host", "127.0.0.1", "--ssh-port", ssh.port(), "--ssh-user", "x",
		"--ssh-private-key-path", "/dev/null", "--ssh-host-fingerprint", "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"--bucket", bucket, "--endpoint", "http://127.0.0.1:" + s3srv.port(), "--force-path-style"}
	env := map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		want     string
		contacts bool
	}{
		{"confirm missing", base, env, "confirm is not set; set confirm: YES", false},
		{"confirm wrong", append(base, "--confirm", "yes"), env, `confirm is "yes"; it must be exactly YES`, false},
		{"production without allow", append(base, "--confirm", "YES"), env,
			"environment is production; set allow_restore: true (CLI: --allow-restore) or env ALLOW_DB_RESTORE=1", false},
		{"ALLOW_DB_RESTORE=1 passes the guard", append(base, "--confirm", "YES"),
			map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "ALLOW_DB_RESTORE": "1"}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ssh.n.Store(0)
			s3srv.n.Store(0)
			code, stdout, stderr := runMain(t, tc.args, tc.env)
			if code == app.ExitOK {
				t.Fatalf("restore succeeded\n%s\n%s", stdout, stderr)
			}
			errLines := grepLines(stderr, "error: ")
			if tc.want != "" && !strings.Contains(errLines, "restore refused: "+tc.want) {
				t.Errorf("error lines do not say %q:\n%s", tc.want, errLines)
			}
			if n := ssh.n.Load() + s3srv.n.Load(); (n > 0) != tc.contacts {
				t.Errorf("%d connections made, want contact %v:\n%s", n, tc.contacts, errLines)
			}
		})
	}
}

// TestRestoreRejectsBadGroups: a damaged or hostile group is detected on
// the runner and nothing at all is written to the host.
func TestRestoreRejectsBadGroups(t *testing.T) {
	r := newRig(t, 300, 128)
	code, stdout, stderr := runMain(t, append([]string{"backup"}, r.flags()...), r.env)
	mustOK(t, "backup", code, stdout, stderr)
	id := backupIDFrom(t, stdout)
	before := dirDigest(t, r.storage) + strings.Join(entries(t, r.storage), ",")
	db := "production_cache.sqlite3"
	at := func(m *catalog.Manifest) int {
		for i, f := range m.Files {
			if f.Name == db {
				return i
			}
		}
		t.Fatalf("no %s in the manifest", db)
		return 0
	}
	cases := []struct {
		name   string
		id     string
		change func(m *catalog.Manifest, o map[string][]byte)
		want   []string
	}{
		{"bit-flipped object", "20240101-000001", func(m *catalog.Manifest, o map[string][]byte) { o[db][len(o[db])/2] ^= 0x04 },
			[]string{db, "stored object does not match the manifest"}},
		{"truncated object", "20240101-000002", func(m *catalog.Manifest, o map[string][]byte) { o[db] = o[db][:len(o[db])-100] },
			[]string{db, "stored object does not match the manifest"}},
		{"wrong manifest hash", "20240101-000003", func(m *catalog.Manifest, o map[string][]byte) {
			m.Files[at(m)].SHA256 = strings.Repeat("0", 64)
		}, []string{db, "database does not match the manifest"}},
		{"../evil in the manifest", "20240101-000004", func(m *catalog.Manifest, o map[string][]byte) { m.Files[at(m)].Name = "../evil" },
			[]string{`"../evil"`}},
		{"absolute name in the manifest", "20240101-000005", func(m *catalog.Manifest, o map[string][]byte) {
			m.Files[at(m)].Name = r.storage + "/evil.sqlite3"
		}, []string{"evil.sqlite3", "path separator"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forgeGroup(t, r.s3, rsLayout, id, tc.id, tc.change)
			code, stdout, stderr := runMain(t, r.restoreArgs("--backup-id", tc.id), r.env)
			if code != app.ExitFailed {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, app.ExitFailed, stdout, stderr)
			}
			errLines := grepLines(stderr, "error: ")
			t.Log(errLines)
			for _, w := range tc.want {
				if !strings.Contains(errLines, w) {
					t.Errorf("error lines do not say %q", w)
				}
			}
			if got := dirDigest(t, r.storage) + strings.Join(entries(t, r.storage), ","); got != before {
				t.Errorf("the host's storage dir changed: %v", entries(t, r.storage))
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(r.storage), "evil.sqlite3")); err == nil {
				t.Errorf("evil.sqlite3 was written outside the target dir")
			}
		})
	}
}

// TestRestoreLegacyGroup: a group of raw *.sqlite3 objects without a
// manifest, as the seed's Rails service wrote them, restores with a warning.
func TestRestoreLegacyGroup(t *testing.T) {
	r := newRig(t, 200, 64)
	legacyID := "20240301-030000"
	want := map[string]string{}
	for _, name := range testutil.RailsDatabases() {
		raw, err := os.ReadFile(filepath.Join(r.storage, name))
		if err != nil {
			t.Fatal(err)
		}
		putObject(t, r.s3, rsLayout.Key(legacyID, name), raw)
		want[name] = sha256hex(raw)
	}
	code, stdout, stderr := runMain(t, r.restoreArgs("--files", "production.sqlite3"), r.env)
	mustOK(t, "restore legacy", code, stdout, stderr)
	if !strings.Contains(stderr, "legacy backup group") || !strings.Contains(stdout, "warning: group "+legacyID+" is a legacy group") {
		t.Errorf("no legacy warning:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	dir := filepath.Join(r.storage, "restore-"+legacyID)
	if got := entries(t, dir); strings.Join(got, ",") != "production.sqlite3" {
		t.Fatalf("%s holds %v, want production.sqlite3 only", dir, got)
	}
	p := filepath.Join(dir, "production.sqlite3")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if sha256hex(b) != want["production.sqlite3"] {
		t.Errorf("restored legacy file differs from the object")
	}
	if err := testutil.CheckInvariant(p); err != nil {
		t.Error(err)
	}
}

// TestVerifyCommand: the drill passes on a good group, fails on a corrupted
// one and on a stale bucket, and never needs the host.
func TestVerifyCommand(t *testing.T) {
	r := newRig(t, 300, 64)
	code, stdout, stderr := runMain(t, append([]string{"backup"}, r.flags()...), r.env)
	mustOK(t, "backup", code, stdout, stderr)
	id := backupIDFrom(t, stdout)
	bad := "20240101-000009"
	forgeGroup(t, r.s3, rsLayout, id, bad, func(m *catalog.Manifest, o map[string][]byte) {
		b := o["production_queue.sqlite3"]
		b[len(b)/3] ^= 0x80
	})
	stale := catalog.Layout{Prefix: rsLayout.Prefix, Environment: "staging"}
	forgeGroup(t, r.s3, stale, id, "20240101-000000", nil)

	store := []string{"--bucket", bucket, "--endpoint", r.s3.Endpoint, "--region", r.s3.Region, "--force-path-style"}
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"good group", []string{"--max-age-hours", "1"}, app.ExitOK, []string{"verify " + id + ": passed", "table ledger", "300 rows"}},
		{"corrupted group", []string{"--backup-id", bad}, app.ExitFailed, []string{"production_queue.sqlite3", "stored object does not match the manifest"}},
		{"stale bucket", []string{"--environment", "staging", "--max-age-hours", "24"}, app.ExitFailed,
			[]string{"backups are stale", "20240101-000000", "more than max_age_hours 24"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, append(append([]string{"verify"}, store...), tc.args...), r.env)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.code, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output does not say %q:\n%s\n%s", w, stdout, stderr)
				}
			}
		})
	}
}
