package app_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// ageKey is an age key pair: the identity as age-keygen writes it (with
// its comment lines), the bare secret line, and the public key.
type ageKey struct {
	file, secret, public string
	ids                  *encryption.Identities
}

func newAgeKey(t *testing.T) ageKey {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	k := ageKey{secret: id.String(), public: id.Recipient().String()}
	k.file = "# created: " + time.Now().UTC().Format(time.RFC3339) + "\n# public key: " + k.public + "\n" + k.secret + "\n"
	if k.ids, err = encryption.ParseIdentities(k.file); err != nil {
		t.Fatal(err)
	}
	return k
}

// actionEnv is the runner's environment for a store-only command
// (verify, restore_mode local) with the given inputs.
func (r *rig) actionEnv(t *testing.T, inputs map[string]string) map[string]string {
	t.Helper()
	files := t.TempDir()
	env := map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": t.TempDir(),
		"GITHUB_OUTPUT": filepath.Join(files, "output"), "GITHUB_STEP_SUMMARY": filepath.Join(files, "summary"),
		"INPUT_BUCKET": bucket, "INPUT_ENDPOINT": r.s3.Endpoint, "INPUT_FORCE_PATH_STYLE": "true",
		"INPUT_ACCESS_KEY_ID": r.s3.AccessKey, "INPUT_SECRET_ACCESS_KEY": r.s3.SecretKey, "ALLOW_DB_RESTORE": "1",
	}
	for k, v := range inputs {
		env["INPUT_"+strings.ToUpper(k)] = v
	}
	return env
}

// assertHidden fails if a line of the identity reached anything the runner
// shows, other than the ::add-mask:: commands that hide it.
func assertHidden(t *testing.T, k ageKey, env map[string]string, stdout, stderr string) {
	t.Helper()
	secret := k.secret[len("AGE-SECRET-KEY-1"):] // the key material itself
	var shownOut []string
	for line := range strings.Lines(stdout) {
		if !strings.HasPrefix(line, "::add-mask::") {
			shownOut = append(shownOut, line)
		}
	}
	shown := map[string]string{"stderr": stderr, "stdout": strings.Join(shownOut, "")}
	for _, name := range []string{"GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"} {
		b, _ := os.ReadFile(env[name])
		shown[name] = string(b)
	}
	for where, text := range shown {
		if strings.Contains(strings.ToUpper(text), strings.ToUpper(secret)) {
			t.Errorf("the age identity appears in %s", where)
		}
	}
	if !strings.Contains(stdout, "::add-mask::"+k.secret+"\n") {
		t.Errorf("the identity was not masked line by line:\n%s", stdout)
	}
}

// TestEncryptedBackupEndToEnd: a backup under a live writer, encrypted on
// the runner to two keys; the bucket holds only age files; each identity
// alone verifies and restores it byte for byte; a wrong or missing one
// fails in one line and writes nothing; the identity is never shown.
func TestEncryptedBackupEndToEnd(t *testing.T) {
	r := newRig(t, 3000, 512)
	k1, k2, wrong := newAgeKey(t), newAgeKey(t), newAgeKey(t)
	w := testutil.StartWriter(t, testutil.WriterOptions{Dir: r.storage, Rate: 300, UID: r.sshd.UID, GID: r.sshd.GID})
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	args := append([]string{"backup", "--encryption-recipients", k1.public + ",\n" + k2.public}, r.flags()...)
	code, stdout, stderr := runMain(t, args, r.env)
	took := time.Since(start)
	stats := w.Stop()
	mustOK(t, "encrypted backup", code, stdout, stderr)
	t.Logf("encrypted backup of 4 databases under %.0f tx/s took %s", float64(stats.Commits)/stats.DurationSeconds, took.Round(time.Millisecond))
	if stats.Errors > 0 {
		t.Errorf("the live writer failed: %v", stats.ErrorSamples)
	}
	id := backupIDFrom(t, stdout)

	// The bucket: age files only, and a plaintext manifest naming public keys.
	raw := getObject(t, r.s3, rsLayout.ManifestKey(id))
	if bytes.Contains(raw, []byte("AGE-SECRET-KEY")) {
		t.Fatal("the manifest holds a private key")
	}
	m := checkGroupWith(t, r.s3, id, k1.ids)
	checkGroupWith(t, r.s3, id, k2.ids)
	if !encryption.Equal(m.Recipients, []string{k1.public, k2.public}) {
		t.Errorf("manifest recipients %v, want %s and %s", m.Recipients, k1.public, k2.public)
	}
	for _, f := range m.Files {
		obj := getObject(t, r.s3, f.Key)
		if !bytes.HasPrefix(obj, []byte("age-encryption.org/v1\n")) || bytes.Contains(obj[:64], []byte("\x28\xb5\x2f\xfd")) || bytes.Contains(obj, []byte("SQLite format 3")) {
			t.Errorf("%s: object starts %q: not (only) an age file", f.Key, obj[:32])
		}
		if !strings.HasSuffix(f.Key, ".sqlite3.zst.age") || f.CompressedSHA256 == "" || f.StoredSHA256 == f.CompressedSHA256 {
			t.Errorf("%s: key or hashes wrong: %+v", f.Name, f)
		}
	}

	// verify with each identity: action mode for the first (masking), CLI
	// with an identity file for the second.
	env := r.actionEnv(t, map[string]string{"command": "verify", "encryption_identity": k1.file})
	code, stdout, stderr = runMain(t, nil, env)
	mustOK(t, "verify with identity 1", code, stdout, stderr)
	if out := readFile(t, env["GITHUB_OUTPUT"]); !strings.Contains(out, id) {
		t.Errorf("GITHUB_OUTPUT lacks verified_backup_id %s:\n%s", id, out)
	}
	assertHidden(t, k1, env, stdout, stderr)
	idFile := filepath.Join(t.TempDir(), "age.txt")
	if err := os.WriteFile(idFile, []byte(k2.file), 0o600); err != nil {
		t.Fatal(err)
	}
	verifyArgs := []string{"verify", "--bucket", bucket, "--endpoint", r.s3.Endpoint, "--region", r.s3.Region, "--force-path-style"}
	code, stdout, stderr = runMain(t, append(verifyArgs, "--encryption-identity-path", idFile), r.env)
	mustOK(t, "verify with identity 2", code, stdout, stderr)

	// Wrong and missing identities: one clear line, exit 1, nothing written.
	for _, tc := range []struct {
		name, command, identity, want string
	}{
		{"verify, wrong identity", "verify", wrong.file, "input encryption_identity: does not decrypt backup " + id + " (recipients age1"},
		{"verify, no identity", "verify", "", "input encryption_identity: backup " + id + " is encrypted (recipients age1"},
		{"restore, wrong identity", "restore", wrong.file, "input encryption_identity: does not decrypt backup " + id},
	} {
		env := r.actionEnv(t, map[string]string{"command": tc.command, "encryption_identity": tc.identity,
			"restore_mode": "local", "confirm": "YES"})
		code, stdout, stderr := runMain(t, nil, env)
		if i := strings.Index(stderr, "error: "); i >= 0 {
			t.Logf("%s: %s", tc.name, strings.TrimSpace(stderr[i:]))
		}
		if code != app.ExitFailed || !strings.Contains(stderr, "error: "+tc.want) || strings.Count(stderr, "error: ") != 1 {
			t.Errorf("%s: exit %d, want 1 and one line saying %q\nstderr:\n%s", tc.name, code, tc.want, stderr)
		}
		if out, _ := os.ReadFile(env["GITHUB_OUTPUT"]); len(out) != 0 {
			t.Errorf("%s: outputs were set:\n%s", tc.name, out)
		}
		if _, err := os.Stat(filepath.Join(env["GITHUB_WORKSPACE"], "restore")); !os.IsNotExist(err) {
			t.Errorf("%s: something was written to the restore dir (%v)", tc.name, err)
		}
		if tc.identity != "" {
			assertHidden(t, wrong, env, stdout, stderr)
		}
	}

	// restore_mode local with the second identity: the snapshots, byte for byte.
	env = r.actionEnv(t, map[string]string{"command": "restore", "restore_mode": "local", "confirm": "YES",
		"backup_id": id, "encryption_identity": k2.file})
	code, stdout, stderr = runMain(t, nil, env)
	mustOK(t, "restore with identity 2", code, stdout, stderr)
	checkRestored(t, m, filepath.Join(env["GITHUB_WORKSPACE"], "restore"))
	assertHidden(t, k2, env, stdout, stderr)
}

// TestEncryptedSkipUnchanged: unchanged databases are copied server-side
// only from a group encrypted to exactly this run's recipients.
func TestEncryptedSkipUnchanged(t *testing.T) {
	r := newRig(t, 300, 128)
	k1, k2 := newAgeKey(t), newAgeKey(t)
	steps := []struct {
		name, recipients string
		copied           bool
	}{
		{"first", k1.public + " " + k2.public, false},
		{"same recipients, listed the other way round", k2.public + "\n" + k1.public, true},
		{"one recipient revoked", k1.public, false},
		{"no encryption", "", false},
	}
	prev := ""
	for _, s := range steps {
		waitNextSecond()
		args := append([]string{"backup"}, r.flags()...)
		if s.recipients != "" {
			args = append(args, "--encryption-recipients", s.recipients)
		}
		code, stdout, stderr := runMain(t, args, r.env)
		mustOK(t, s.name, code, stdout, stderr)
		id := backupIDFrom(t, stdout)
		var m *catalog.Manifest
		if s.recipients == "" {
			m = checkGroup(t, r.s3, id)
		} else {
			m = checkGroupWith(t, r.s3, id, k1.ids)
		}
		for _, f := range m.Files {
			if copied := f.CopiedFrom != ""; copied != s.copied || copied && f.CopiedFrom != prev {
				t.Errorf("%s: %s copied_from %q, want copied %v (from %s)", s.name, f.Name, f.CopiedFrom, s.copied, prev)
			}
		}
		prev = id
	}
}

// TestEncryptedRestoreReplace: restore_mode replace of an encrypted group;
// its safety backup of the live databases is encrypted too, to the key of
// the identity given, and opens with it.
func TestEncryptedRestoreReplace(t *testing.T) {
	r := newReplaceRig(t)
	k := newAgeKey(t)
	code, stdout, stderr := runMain(t, append([]string{"backup", "--encryption-recipients", k.public}, r.flags()...), r.env)
	mustOK(t, "encrypted backup", code, stdout, stderr)
	id := backupIDFrom(t, stdout)
	m := checkGroupWith(t, r.s3, id, k.ids)
	nextSecond()
	idFile := filepath.Join(t.TempDir(), "age.txt")
	if err := os.WriteFile(idFile, []byte(k.file), 0o600); err != nil {
		t.Fatal(err)
	}
	args := r.restoreArgs("--backup-id", id, "--restore-mode", "replace", "--stop-command", r.app.stop("KILL"),
		"--start-command", r.app.start, "--encryption-identity-path", idFile)
	code, stdout, stderr = runMain(t, append(args, r.root...), r.env)
	mustOK(t, "replace", code, stdout, stderr)
	r.app.waitReady(t, 2)
	sh(t, r.app.stop("TERM"))
	safety := ""
	if _, rest, ok := strings.Cut(stdout, "safety backup of the previous databases: "); ok {
		safety = strings.Fields(rest)[0]
	}
	sm := checkGroupWith(t, r.s3, safety, k.ids)
	if !encryption.Equal(sm.Recipients, []string{k.public}) {
		t.Errorf("safety backup recipients %v, want %s", sm.Recipients, k.public)
	}
	for _, f := range m.Files {
		if err := testutil.CheckInvariant(filepath.Join(r.storage, f.Name)); err != nil {
			t.Errorf("live %s: %v", f.Name, err)
		}
	}
}
