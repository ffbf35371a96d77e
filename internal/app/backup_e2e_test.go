package app_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// TestBackupEndToEnd: a real sshd, a real S3 server, four Rails WAL
// databases written by another process (as the app's user) at >= 200 tx/s
// during the whole backup. Every object is downloaded and checked.
func TestBackupEndToEnd(t *testing.T) {
	r := newRig(t, 4000, 1024)
	w := testutil.StartWriter(t, testutil.WriterOptions{Dir: r.storage, Rate: 300, UID: r.sshd.UID, GID: r.sshd.GID})
	time.Sleep(500 * time.Millisecond) // let the WAL fill up a little before the snapshot
	code, stdout, stderr := runMain(t, append([]string{"backup"}, r.flags()...), r.env)
	stats := w.Stop()
	if code != app.ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nsshd:\n%s", code, stdout, stderr, r.sshd.Log())
	}
	rate := float64(stats.Commits) / stats.DurationSeconds
	t.Logf("writer: %d commits in %.1fs (%.0f tx/s), max commit latency %s, p99 %s, errors %d",
		stats.Commits, stats.DurationSeconds, rate, stats.MaxLatency, stats.P99, stats.Errors)
	if rate < 200 || stats.Errors > 0 {
		t.Errorf("the writer did not keep writing during the backup: %.0f tx/s, %d errors %v", rate, stats.Errors, stats.ErrorSamples)
	}
	id := backupIDFrom(t, stdout)
	m := checkGroup(t, r.s3, id)
	if len(m.Files) != 4 || m.Host == "" || m.RemotePath != r.storage {
		t.Errorf("manifest: %d files, host %q, remote_path %q", len(m.Files), m.Host, m.RemotePath)
	}
	if keys := listKeys(t, r.s3); len(keys) != 5 {
		t.Errorf("bucket holds %d objects, want 5 (4 databases + manifest):\n%s", len(keys), strings.Join(keys, "\n"))
	}
	assertNoTempLeft(t, r.tmp)
	for _, name := range []string{"production.sqlite3", "uploads", ".keep"} {
		if _, err := os.Stat(filepath.Join(r.storage, name)); err != nil {
			t.Errorf("the app's %s is gone: %v", name, err)
		}
	}
}

// TestBackupActionMode runs the same backup as the GitHub runner would:
// INPUT_* variables (empty when not given), GITHUB_OUTPUT, GITHUB_STEP_SUMMARY.
func TestBackupActionMode(t *testing.T) {
	r := newRig(t, 500, 256)
	files := t.TempDir()
	env := map[string]string{
		"GITHUB_ACTIONS":      "true",
		"GITHUB_OUTPUT":       filepath.Join(files, "output"),
		"GITHUB_STEP_SUMMARY": filepath.Join(files, "summary"),
		"SBA_HELPER_DIR":      r.env["SBA_HELPER_DIR"],
	}
	key, err := os.ReadFile(r.sshd.ClientKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	inputs := map[string]string{
		"ssh_host": r.sshd.Host, "ssh_port": strings.TrimPrefix(r.sshd.Addr(), r.sshd.Host+":"), "ssh_user": r.sshd.User,
		"ssh_private_key": string(key), "ssh_known_hosts": r.sshd.KnownHostsLine,
		"remote_path": r.storage, "remote_temp_dir": r.tmp, "bucket": bucket, "endpoint": r.s3.Endpoint,
		"force_path_style": "true", "access_key_id": r.s3.AccessKey, "secret_access_key": r.s3.SecretKey,
		"ssh_private_key_passphrase": "", "prefix": "", "environment": "", "compression": "",
	}
	for k, v := range inputs {
		env["INPUT_"+strings.ToUpper(k)] = v
	}
	env["INPUT_PREFIX"] = "db_backups"
	code, stdout, stderr := runMain(t, nil, env)
	if code != app.ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	out := readFile(t, env["GITHUB_OUTPUT"])
	id := backupIDFrom(t, stdout)
	for _, want := range []string{"backup_id<<", id, "manifest_key<<", "db_backups/production/" + id + "/manifest.json", "files<<", "bytes<<"} {
		if !strings.Contains(out, want) {
			t.Errorf("GITHUB_OUTPUT lacks %q:\n%s", want, out)
		}
	}
	summary := readFile(t, env["GITHUB_STEP_SUMMARY"])
	for _, name := range testutil.RailsDatabases() {
		if !strings.Contains(summary, "`"+name+"`") {
			t.Errorf("job summary lacks %s:\n%s", name, summary)
		}
	}
	for _, secret := range []string{r.s3.SecretKey, strings.Split(string(key), "\n")[1]} {
		if strings.Contains(stdout, secret) && !strings.Contains(stdout, "::add-mask::"+secret) {
			t.Errorf("a secret was printed unmasked")
		}
		if strings.Contains(stderr, secret) || strings.Contains(summary, secret) || strings.Contains(out, secret) {
			t.Errorf("a secret reached stderr, the summary or the outputs")
		}
	}
	if !strings.Contains(stdout, "::add-mask::") {
		t.Errorf("secrets were not masked")
	}
	checkGroup(t, r.s3, id)
	assertNoTempLeft(t, r.tmp)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBackupRefusals: each bad setup fails with one clear line, uploads
// nothing (no manifest, no group) and leaves nothing on the host.
func TestBackupRefusals(t *testing.T) {
	r := newRig(t, 100, 64)
	otherKey := testutil.StartSSHD(t, testutil.SSHDOptions{}) // a different host key
	// A server that accepts TCP but never speaks SSH: the handshake must time out.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	closed := testutil.FreePort(t)
	wrongKnownHosts := filepath.Join(t.TempDir(), "known_hosts")
	line := strings.Replace(otherKey.KnownHostsLine, otherKey.Addr(), r.sshd.Addr(), 1)
	line = strings.Replace(line, "]:"+strings.TrimPrefix(otherKey.Addr(), "127.0.0.1:"), "]:"+strings.TrimPrefix(r.sshd.Addr(), "127.0.0.1:"), 1)
	if err := os.WriteFile(wrongKnownHosts, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	set := func(flags []string, name, value string) []string {
		out := append([]string(nil), flags...)
		for i := 0; i < len(out)-1; i++ {
			if out[i] == name {
				out[i+1] = value
				return out
			}
		}
		return append(out, name, value)
	}
	drop := func(flags []string, name string) []string {
		var out []string
		for i := 0; i < len(flags); i++ {
			if flags[i] == name {
				i++
				continue
			}
			out = append(out, flags[i])
		}
		return out
	}
	cases := []struct {
		name     string
		flags    []string
		env      map[string]string
		wantCode int
		want     []string
		maxTime  time.Duration
	}{
		{"missing bucket", drop(r.flags(), "--bucket"), r.env, app.ExitUsage, []string{"input bucket: required"}, 0},
		{"missing host key", drop(drop(r.flags(), "--ssh-known-hosts-path"), "--ssh-private-key-path"), r.env, app.ExitUsage,
			[]string{"input ssh_known_hosts: required", "input ssh_private_key: required"}, 0},
		{"wrong host key", set(r.flags(), "--ssh-known-hosts-path", wrongKnownHosts), r.env, app.ExitFailed,
			[]string{"host key mismatch", r.sshd.HostKeyFingerprint, "refusing to connect"}, 0},
		{"wrong fingerprint", set(drop(r.flags(), "--ssh-known-hosts-path"), "--ssh-host-fingerprint", otherKey.HostKeyFingerprint), r.env, app.ExitFailed,
			[]string{"host key mismatch", "ssh_host_fingerprint: " + r.sshd.HostKeyFingerprint}, 0},
		{"wrong S3 secret", r.flags(), map[string]string{"AWS_ACCESS_KEY_ID": r.s3.AccessKey, "AWS_SECRET_ACCESS_KEY": "wrong-secret-value", "SBA_HELPER_DIR": r.env["SBA_HELPER_DIR"]},
			app.ExitFailed, []string{"credentials"}, 0},
		{"wrong bucket", set(r.flags(), "--bucket", "no-such-bucket"), r.env, app.ExitFailed, []string{"no-such-bucket", "does not exist"}, 0},
		{"host refuses connections", append(set(r.flags(), "--ssh-port", strconv.Itoa(closed)), "--retries", "1"), r.env, app.ExitFailed,
			[]string{"after 2 attempts", "ssh connect", "refused"}, 10 * time.Second},
		{"host never answers", append(set(r.flags(), "--ssh-port", strconv.Itoa(silent.Addr().(*net.TCPAddr).Port)), "--connect-timeout", "2s", "--retries", "0"), r.env, app.ExitFailed,
			[]string{"ssh handshake", "no answer within 2s"}, 10 * time.Second},
		{"missing remote path", set(r.flags(), "--remote-path", "/does/not/exist"), r.env, app.ExitFailed, []string{"remote_path /does/not/exist"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runMain(t, append([]string{"backup"}, tc.flags...), tc.env)
			took := time.Since(start)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			errLines := grepLines(stderr, "error: ")
			t.Logf("stderr:\n%s", stderr)
			for _, w := range tc.want {
				if !strings.Contains(errLines, w) {
					t.Errorf("error lines do not say %q:\n%s", w, errLines)
				}
			}
			if strings.Contains(stderr, "wrong-secret-value") || strings.Contains(stdout, "wrong-secret-value") {
				t.Errorf("the S3 secret was printed")
			}
			if tc.maxTime > 0 && took > tc.maxTime {
				t.Errorf("took %s, want under %s", took, tc.maxTime)
			}
			if keys := listKeys(t, r.s3); len(keys) != 0 {
				t.Errorf("bucket holds objects after a refused backup:\n%s", strings.Join(keys, "\n"))
			}
			assertNoTempLeft(t, r.tmp)
		})
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBackupHostLimits: a remote_temp_dir that is too small or mounted
// noexec gives one clear line, leaves nothing in the bucket or on the host,
// and the live databases are untouched.
func TestBackupHostLimits(t *testing.T) {
	r := newRig(t, 8000, 1024) // about 9 MiB per database
	cases := []struct {
		name    string
		options string
		want    []string
	}{
		{"no room for the helper", "size=1m", []string{"not enough space in", "the helper needs"}},
		{"no room for a snapshot", "size=14m", []string{"not enough space", "remote_temp_dir"}},
		{"noexec", "noexec,size=64m", []string{"cannot run the snapshot helper", "noexec"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmp := testutil.MountTmpfs(t, tc.options, r.sshd.UID, r.sshd.GID)
			before := dirDigest(t, r.storage)
			// Without the helper cache in the home dir, the helper goes to remote_temp_dir too.
			code, stdout, stderr := runMain(t, append([]string{"backup", "--helper-cache=false"}, append(r.flags(), "--remote-temp-dir", tmp)...), r.env)
			if code != app.ExitFailed {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, app.ExitFailed, stdout, stderr)
			}
			errLines := grepLines(stderr, "error: ")
			t.Logf("stderr:\n%s", stderr)
			for _, w := range tc.want {
				if !strings.Contains(errLines, w) {
					t.Errorf("error lines do not say %q:\n%s", w, errLines)
				}
			}
			if keys := listKeys(t, r.s3); len(keys) != 0 {
				t.Errorf("bucket holds objects after a failed backup:\n%s", strings.Join(keys, "\n"))
			}
			assertNoTempLeft(t, tmp)
			if after := dirDigest(t, r.storage); after != before {
				t.Errorf("the live databases changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// dirDigest names, sizes and hashes the database files of a dir.
func dirDigest(t *testing.T, dir string) string {
	t.Helper()
	var parts []string
	for _, name := range testutil.RailsDatabases() {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, name+":"+sha256hex(b)[:12])
	}
	return strings.Join(parts, " ")
}

// TestBackupThroughJumpHost connects through a second real sshd as a
// bastion, with both host keys verified; a wrong jump host key is refused.
func TestBackupThroughJumpHost(t *testing.T) {
	r := newRig(t, 300, 128)
	jump := testutil.StartSSHD(t, testutil.SSHDOptions{})
	jumpKey, err := os.ReadFile(jump.ClientKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	wrong := testutil.StartSSHD(t, testutil.SSHDOptions{})
	jumpFlags := func(knownHosts string) []string {
		return append(r.flags(), "--ssh-jump-host", jump.User+"@"+jump.Addr(),
			"--ssh-jump-known-hosts", knownHosts, "--ssh-jump-private-key", string(jumpKey))
	}
	t.Run("wrong jump host key", func(t *testing.T) {
		line := strings.Replace(wrong.KnownHostsLine, strconv.Itoa(wrong.Port), strconv.Itoa(jump.Port), 1)
		code, _, stderr := runMain(t, append([]string{"backup"}, jumpFlags(line)...), r.env)
		if code != app.ExitFailed || !strings.Contains(stderr, "jump host") || !strings.Contains(stderr, "host key mismatch") {
			t.Fatalf("exit %d, want a jump host key mismatch:\n%s", code, stderr)
		}
		if strings.Contains(r.sshd.Log(), "Accepted publickey") {
			t.Errorf("the target was reached although the jump host's key was wrong")
		}
	})
	t.Run("through the jump host", func(t *testing.T) {
		code, stdout, stderr := runMain(t, append([]string{"backup"}, jumpFlags(jump.KnownHostsLine)...), r.env)
		if code != app.ExitOK {
			t.Fatalf("exit %d\n%s\n%s\njump sshd:\n%s", code, stdout, stderr, jump.Log())
		}
		if !strings.Contains(jump.Log(), "Accepted publickey for "+jump.User) {
			t.Errorf("the jump host was not used:\n%s", jump.Log())
		}
		checkGroup(t, r.s3, backupIDFrom(t, stdout))
		assertNoTempLeft(t, r.tmp)
	})
}

// TestBackupWithPrune: prune: true runs after a successful backup only.
func TestBackupWithPrune(t *testing.T) {
	r := newRig(t, 200, 64)
	b := &prBucket{s3: r.s3, now: time.Now().UTC(), keys: map[string][]string{}, env: r.env}
	b.group(t, "old1", 30*24*time.Hour, catalog.StateComplete, 2, 100)
	b.group(t, "old2", 20*24*time.Hour, catalog.StateComplete, 2, 100)
	before := listKeys(t, r.s3)
	pruneFlags := []string{"--prune", "--keep-min", "1", "--retention-days", "14"}

	code, _, stderr := runMain(t, append(append([]string{"backup"}, r.flags()...), append(pruneFlags, "--remote-path", "/nope")...), r.env)
	if code != app.ExitFailed {
		t.Fatalf("exit %d, want a failed backup\n%s", code, stderr)
	}
	if got := listKeys(t, r.s3); strings.Join(got, ",") != strings.Join(before, ",") {
		t.Fatalf("a failed backup with prune: true changed the bucket:\nbefore %v\nafter  %v", before, got)
	}

	code, stdout, stderr := runMain(t, append(append([]string{"backup"}, r.flags()...), pruneFlags...), r.env)
	if code != app.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	id := backupIDFrom(t, stdout)
	layout := catalog.Layout{Prefix: "db_backups", Environment: "production"}
	for _, k := range listKeys(t, r.s3) {
		if !strings.HasPrefix(k, layout.GroupPrefix(id)) {
			t.Errorf("prune after backup left %s", k)
		}
	}
	checkGroup(t, r.s3, id)
}

// TestBackupSkipsUnchanged: a second backup copies the objects of databases
// whose snapshots did not change server-side and sends only the changed one.
func TestBackupSkipsUnchanged(t *testing.T) {
	r := newRig(t, 500, 512)
	code, stdout, stderr := runMain(t, append([]string{"backup"}, r.flags()...), r.env)
	if code != app.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	first := backupIDFrom(t, stdout)
	// The app writes to one database only.
	w := testutil.StartWriter(t, testutil.WriterOptions{Dir: r.storage, Files: []string{"production.sqlite3"}, Rate: 200, UID: r.sshd.UID, GID: r.sshd.GID})
	time.Sleep(300 * time.Millisecond)
	w.Stop()
	waitNextSecond()
	code, stdout, stderr = runMain(t, append([]string{"backup"}, r.flags()...), r.env)
	if code != app.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	second := backupIDFrom(t, stdout)
	m := checkGroup(t, r.s3, second)
	for _, f := range m.Files {
		want := first
		if f.Name == "production.sqlite3" {
			want = ""
		}
		if f.CopiedFrom != want {
			t.Errorf("%s: copied_from %q, want %q", f.Name, f.CopiedFrom, want)
		}
	}
	if n := strings.Count(stderr, "unchanged since the previous backup"); n != 3 {
		t.Errorf("%d files reported unchanged, want 3:\n%s", n, stderr)
	}
	if !strings.Contains(stderr, "helper already on the host") {
		t.Errorf("the helper was sent again although it is cached:\n%s", stderr)
	}
	assertNoTempLeft(t, r.tmp)

	// A cached helper that changed on the host is never run: it is replaced.
	helperBin, err := os.ReadFile(filepath.Join(r.env["SBA_HELPER_DIR"], snapshot.HelperName("amd64")))
	if err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(r.sshd.Home, ".cache", "sqlite-backup-action", "helper-"+sha256hex(helperBin)[:16])
	if err := os.WriteFile(cached, []byte("#!/bin/sh\ntouch tampered\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	waitNextSecond()
	code, stdout, stderr = runMain(t, append([]string{"backup"}, r.flags()...), r.env)
	if code != app.ExitOK || strings.Contains(stderr, "helper already on the host") {
		t.Fatalf("exit %d; a tampered cached helper must be re-sent\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(r.sshd.Home, "tampered")); err == nil {
		t.Fatal("the tampered helper ran")
	}

	// With skip_unchanged off, everything is sent again.
	waitNextSecond()
	code, stdout, stderr = runMain(t, append([]string{"backup", "--skip-unchanged=false"}, r.flags()...), r.env)
	if code != app.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, f := range checkGroup(t, r.s3, backupIDFrom(t, stdout)).Files {
		if f.CopiedFrom != "" {
			t.Errorf("%s copied with skip_unchanged off", f.Name)
		}
	}
}

// TestBackupInOneDatabaseOfTempSpace: a remote_temp_dir with room for the
// largest database plus a margin, but not for its snapshot and compressed
// copy side by side (the data is incompressible) nor for two databases,
// still takes a complete backup: the helper releases the raw snapshot as
// it compresses, and waits for the runner to take the previous file.
func TestBackupInOneDatabaseOfTempSpace(t *testing.T) {
	r := newRig(t, 12000, 4096) // about 50 MiB of random pads per database
	var largest int64
	for _, name := range testutil.RailsDatabases() {
		var n int64 // the helper's estimate counts the WAL too
		for _, suffix := range []string{"", "-wal"} {
			if st, err := os.Stat(filepath.Join(r.storage, name+suffix)); err == nil {
				n += st.Size()
			}
		}
		largest = max(largest, n)
	}
	helper, err := os.Stat(filepath.Join(helperDir(t), snapshot.HelperName(runtime.GOARCH)))
	if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	// The helper's estimate: database + up to 16 MiB not yet released + 8 MiB slack.
	size := largest + min(largest, 16*mib) + 8*mib + helper.Size() + 6*mib
	if size >= 2*largest {
		t.Fatalf("tmpfs of %d MiB would hold raw and compressed side by side: make the databases larger", size/mib)
	}
	tmp := testutil.MountTmpfs(t, fmt.Sprintf("size=%dk", size/1024), r.sshd.UID, r.sshd.GID)
	var peak int64
	stop := sampleDiskUse(tmp, &peak)
	code, stdout, stderr := runMain(t, append([]string{"backup", "--helper-cache=false"}, append(r.flags(), "--remote-temp-dir", tmp)...), r.env)
	stop()
	if code != app.ExitOK {
		t.Fatalf("exit %d in a %d MiB temp dir (largest database %d MiB)\n%s\n%s", code, size/mib, largest/mib, stdout, stderr)
	}
	keys := listKeys(t, r.s3)
	if len(keys) != len(testutil.RailsDatabases())+1 {
		t.Errorf("bucket holds %d objects, want %d files and a manifest:\n%s", len(keys), len(testutil.RailsDatabases()), strings.Join(keys, "\n"))
	}
	assertNoTempLeft(t, tmp)
	t.Logf("temp dir of %d MiB; largest database %d MiB; peak use %d MiB (%.2f× the largest, the helper binary included)",
		size/mib, largest/mib, peak/mib, float64(peak)/float64(largest))
}
