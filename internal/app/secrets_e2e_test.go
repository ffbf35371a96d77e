package app_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/config"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// Known secret values. Letters, digits and dashes only, so that no output
// format (JSON, URL or workflow-command escaping) can hide them from the
// search.
const (
	secretPassphrase      = "sba-passphrase-Qv7Zr2Lk9w"
	secretWrongPassphrase = "sba-wrong-passphrase-Hn4Tx8"
	secretWrongS3Key      = "sba-wrong-s3-secret-Pm3Wd6Yc1f"
)

// secretValue is one value that must never be printed.
type secretValue struct {
	what  string
	value string
}

// secretRig is the usual rig with an encrypted client key, plus every
// secret value the runs are given.
type secretRig struct {
	*rig
	key     string        // the encrypted private key, PEM
	known   []secretValue // every secret value any run is given
	age     bool          // encryption_recipients and encryption_identity exist
	ageID   string        // the age identity (secret)
	ageRcpt string        // its recipient (public)
	wrongID string        // another age identity (secret)
}

func newSecretRig(t *testing.T) *secretRig {
	t.Helper()
	r := &rig{
		sshd: testutil.StartSSHD(t, testutil.SSHDOptions{Passphrase: secretPassphrase}),
		s3:   testutil.StartS3(t),
	}
	r.s3.CreateBucket(t, bucket)
	r.storage = r.sshd.UserDir(t)
	r.tmp = r.sshd.UserDir(t)
	testutil.MakeRailsStorage(t, r.storage, 200, 64)
	r.env = map[string]string{"SBA_HELPER_DIR": helperDir(t)}
	s := &secretRig{rig: r, key: string(r.sshd.ClientKeyPEM)}
	var missing *ssh.PassphraseMissingError
	if _, err := ssh.ParseRawPrivateKey(r.sshd.ClientKeyPEM); !errors.As(err, &missing) {
		t.Fatalf("the client key is not encrypted: %v", err)
	}
	for i, line := range strings.Split(s.key, "\n") {
		if line = strings.TrimSpace(line); len(line) > 10 {
			s.known = append(s.known, secretValue{fmt.Sprintf("private key line %d", i+1), line})
		}
	}
	s.known = append(s.known,
		secretValue{"SSH key passphrase", secretPassphrase},
		secretValue{"wrong SSH key passphrase", secretWrongPassphrase},
		secretValue{"S3 secret key", r.s3.SecretKey},
		secretValue{"wrong S3 secret key", secretWrongS3Key},
		secretValue{"S3 access key id", r.s3.AccessKey},
	)
	s.age = hasInput("encryption_recipients") && hasInput("encryption_identity")
	if s.age {
		id, other := newAgeIdentity(t), newAgeIdentity(t)
		s.ageID, s.ageRcpt, s.wrongID = id.String(), id.Recipient().String(), other.String()
		s.known = append(s.known, secretValue{"age identity", s.ageID}, secretValue{"wrong age identity", s.wrongID})
	}
	return s
}

func newAgeIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// hasInput reports whether the tool reads an input of that name.
func hasInput(name string) bool {
	return slices.ContainsFunc(config.Inputs(), func(in config.Input) bool { return in.Name == name })
}

// inputs are what a workflow would give every step: the connection, the
// store and every secret, as input names.
func (s *secretRig) inputs() map[string]string {
	in := map[string]string{
		"ssh_host": s.sshd.Host, "ssh_port": strconv.Itoa(s.sshd.Port), "ssh_user": s.sshd.User,
		"ssh_private_key": s.key, "ssh_private_key_passphrase": secretPassphrase,
		"ssh_known_hosts": s.sshd.KnownHostsLine,
		"remote_path":     s.storage, "remote_temp_dir": s.tmp,
		"bucket": bucket, "endpoint": s.s3.Endpoint, "region": s.s3.Region, "force_path_style": "true",
		"access_key_id": s.s3.AccessKey, "secret_access_key": s.s3.SecretKey,
	}
	if s.age {
		in["encryption_recipients"] = s.ageRcpt
		in["encryption_identity"] = s.ageID
	}
	return in
}

// secretCase is one command run with the rig's secrets, changed by set
// (an empty value removes the input).
type secretCase struct {
	name    string
	command string
	set     func(t *testing.T) map[string]string
	code    int
	want    string // in an error line: proves the failure path was taken
}

// TestSecretsNeverPrinted runs every command, and the failure paths most
// likely to echo what they were given, in CLI and in Action mode, with known
// secret values: none may appear in stdout, stderr, the job summary or the
// outputs, except in Action mode inside the ::add-mask:: commands that hide
// them, which must be there for every secret given.
func TestSecretsNeverPrinted(t *testing.T) {
	s := newSecretRig(t)
	if !s.age {
		t.Log("no encryption_identity input yet: the age identity is not part of this run")
	}
	wrongHostKey := otherHostKeyLine(t, s.sshd.Addr())
	closedPort := strconv.Itoa(testutil.FreePort(t))
	none := func(*testing.T) map[string]string { return nil }
	restoreLocal := func(extra map[string]string) func(*testing.T) map[string]string {
		return func(t *testing.T) map[string]string {
			m := map[string]string{"restore_mode": "local", "confirm": "YES", "allow_restore": "true", "restore_dir": filepath.Join(t.TempDir(), "restore")}
			maps.Copy(m, extra)
			return m
		}
	}
	with := func(m map[string]string) func(*testing.T) map[string]string {
		return func(*testing.T) map[string]string { return m }
	}
	wrongS3 := map[string]string{"secret_access_key": secretWrongS3Key}
	cases := []secretCase{
		{"backup", "backup", with(map[string]string{"skip_unchanged": "false"}), app.ExitOK, ""},
		{"list", "list", none, app.ExitOK, ""},
		{"prune dry run", "prune", with(map[string]string{"dry_run": "true", "keep_min": "1", "retention_days": "1"}), app.ExitOK, ""},
		{"verify", "verify", none, app.ExitOK, ""},
		{"restore local", "restore", restoreLocal(nil), app.ExitOK, ""},

		{"backup, wrong S3 secret", "backup", with(wrongS3), app.ExitFailed, "S3 credentials rejected"},
		{"list, wrong S3 secret", "list", with(wrongS3), app.ExitFailed, "S3 credentials rejected"},
		{"prune, wrong S3 secret", "prune", with(map[string]string{"secret_access_key": secretWrongS3Key, "dry_run": "true"}), app.ExitFailed, "S3 credentials rejected"},
		{"verify, wrong S3 secret", "verify", with(wrongS3), app.ExitFailed, "S3 credentials rejected"},
		{"restore local, wrong S3 secret", "restore", restoreLocal(wrongS3), app.ExitFailed, "S3 credentials rejected"},

		{"backup, wrong host key", "backup", with(map[string]string{"ssh_known_hosts": wrongHostKey}), app.ExitFailed, "host key mismatch"},
		{"backup, wrong passphrase", "backup", with(map[string]string{"ssh_private_key_passphrase": secretWrongPassphrase}), app.ExitFailed,
			"ssh_private_key_passphrase does not decrypt ssh_private_key"},
		{"backup, passphrase missing", "backup", with(map[string]string{"ssh_private_key_passphrase": ""}), app.ExitFailed,
			"ssh_private_key is encrypted"},
		{"restore side_by_side, wrong passphrase", "restore", with(map[string]string{"confirm": "YES", "allow_restore": "true",
			"ssh_private_key_passphrase": secretWrongPassphrase}), app.ExitFailed, "ssh_private_key_passphrase does not decrypt ssh_private_key"},
		{"backup, unreachable host", "backup", with(map[string]string{"ssh_port": closedPort, "retries": "1"}), app.ExitFailed, "refused"},
	}
	if s.age {
		cases = append(cases,
			secretCase{"verify, wrong age identity", "verify", with(map[string]string{"encryption_identity": s.wrongID}), app.ExitFailed,
				"encryption_identity: does not decrypt"},
			secretCase{"restore local, wrong age identity", "restore", restoreLocal(map[string]string{"encryption_identity": s.wrongID}), app.ExitFailed,
				"encryption_identity: does not decrypt"},
		)
	}
	for _, mode := range []string{"cli", "action"} {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				in := s.inputs()
				for k, v := range tc.set(t) {
					if v == "" {
						delete(in, k)
					} else {
						in[k] = v
					}
				}
				if tc.command == "backup" {
					waitNextSecond() // one group per second
				}
				run := s.run(t, mode, tc.command, in)
				if run.code != tc.code {
					t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", run.code, tc.code, run.stdout, run.stderr)
				}
				if errLines := grepLines(run.stderr, "error: "); tc.want != "" && !strings.Contains(errLines, tc.want) {
					t.Errorf("error lines do not say %q:\n%s", tc.want, errLines)
				}
				s.assertNoSecret(t, mode, run, in)
			})
		}
	}
}

// secretRun is what one run printed and wrote.
type secretRun struct {
	code             int
	stdout, stderr   string
	summary, outputs string
}

// run runs command with the inputs: in Action mode as INPUT_* variables
// with GITHUB_OUTPUT and GITHUB_STEP_SUMMARY; in CLI mode as flags, with
// the S3 keys in the environment as a shell user would keep them.
func (s *secretRig) run(t *testing.T, mode, command string, in map[string]string) secretRun {
	t.Helper()
	env := maps.Clone(s.env)
	var args []string
	files := t.TempDir()
	switch mode {
	case "action":
		env["GITHUB_ACTIONS"] = "true"
		env["GITHUB_WORKSPACE"] = t.TempDir()
		env["GITHUB_OUTPUT"] = filepath.Join(files, "output")
		env["GITHUB_STEP_SUMMARY"] = filepath.Join(files, "summary")
		env["INPUT_COMMAND"] = command
		for k, v := range in {
			env["INPUT_"+strings.ToUpper(k)] = v
		}
	case "cli":
		args = []string{command}
		env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = in["access_key_id"], in["secret_access_key"]
		for _, k := range slices.Sorted(maps.Keys(in)) {
			if k == "access_key_id" || k == "secret_access_key" || !readBy(k, command) {
				continue
			}
			args = append(args, "--"+strings.ReplaceAll(k, "_", "-")+"="+in[k])
		}
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	var r secretRun
	r.code, r.stdout, r.stderr = runMain(t, args, env)
	if mode == "action" {
		r.summary = readIfExists(t, env["GITHUB_STEP_SUMMARY"])
		r.outputs = readIfExists(t, env["GITHUB_OUTPUT"])
	}
	return r
}

// readBy reports whether command reads the input (has a flag for it).
func readBy(name, command string) bool {
	for _, in := range config.Inputs() {
		if in.Name == name {
			return len(in.Commands) == 0 || slices.Contains(in.Commands, command)
		}
	}
	return false
}

// readIfExists reads a file the run may not have written.
func readIfExists(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertNoSecret checks every place a run writes to for every known secret
// value; in Action mode stdout may hold a secret only in an ::add-mask::
// command, and must hold one for each secret given, before anything else.
func (s *secretRig) assertNoSecret(t *testing.T, mode string, run secretRun, in map[string]string) {
	t.Helper()
	stdout := run.stdout
	if mode == "action" {
		var rest []string
		masked := map[string]bool{}
		lines := strings.Split(run.stdout, "\n")
		for i, l := range lines {
			if v, ok := strings.CutPrefix(l, "::add-mask::"); ok {
				masked[v] = true
				if i > 0 && !strings.HasPrefix(lines[i-1], "::add-mask::") {
					t.Errorf("a secret was masked only after other output:\n%s", strings.Join(lines[:i+1], "\n"))
				}
				continue
			}
			rest = append(rest, l)
		}
		stdout = strings.Join(rest, "\n")
		for _, v := range s.given(in) {
			if !masked[v.value] {
				t.Errorf("%s was given but not masked (no ::add-mask:: for it)", v.what)
			}
		}
	} else if strings.Contains(run.stdout, "::add-mask::") {
		t.Errorf("CLI mode printed workflow commands:\n%s", run.stdout)
	}
	places := []struct{ name, text string }{
		{"stdout", stdout}, {"stderr", run.stderr}, {"the job summary", run.summary}, {"the outputs file", run.outputs},
	}
	for _, p := range places {
		for _, v := range s.known {
			if strings.Contains(p.text, v.value) {
				t.Errorf("%s appears in %s", v.what, p.name)
			}
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	}
}

// given lists the secret values the inputs hold, the private key line by
// line as the runner masks it.
func (s *secretRig) given(in map[string]string) []secretValue {
	var out []secretValue
	for _, def := range config.Inputs() {
		v, ok := in[def.Name]
		if !def.Secret || !ok || v == "" {
			continue
		}
		if def.Name == "ssh_private_key" {
			for i, line := range strings.Split(v, "\n") {
				if line = strings.TrimSpace(line); len(line) > 10 {
					out = append(out, secretValue{fmt.Sprintf("private key line %d", i+1), line})
				}
			}
			continue
		}
		out = append(out, secretValue{def.Name, v})
	}
	return out
}

// otherHostKeyLine is a known_hosts line for addr with a key the server
// does not hold.
func otherHostKeyLine(t *testing.T, addr string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
}
