package app_test

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// How the runner runs a Docker action (actions/runner ContainerActionHandler
// and DockerCommandManager): `docker run` as the image's USER (root) with
// the default capabilities and no user namespace, the image's ENTRYPOINT
// and no arguments, cwd /github/workspace, these runner directories
// mounted, every declared input as INPUT_<NAME> (its with: value, else
// its action.yml default, else empty), and the GITHUB_* variables.
const (
	runnerUID      = 1001 // the runner user on GitHub-hosted runners
	runnerTimeout  = 3 * time.Minute
	workspaceMount = "/github/workspace"
	homeMount      = "/github/home"
	fileCmdsMount  = "/github/file_commands"
	workflowMount  = "/github/workflow"
	dockerPath     = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// dockerCaps is Docker's default capability set for a container.
var dockerCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

// TestRunnerEquivalence runs the static binary the way the runner runs
// the image, inside a root that holds only what the image's final stage
// holds (bubblewrap; no Docker engine needed), against the real sshd and
// S3 server on loopback (the one liberty: the host's network is shared).
func TestRunnerEquivalence(t *testing.T) {
	bwrap := requireBwrap(t)
	r := newRig(t, 300, 256)
	root := imageRoot(t)
	key, err := os.ReadFile(r.sshd.ClientKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	common := map[string]string{
		"ssh_private_key": string(key), "ssh_known_hosts": r.sshd.KnownHostsLine, "remote_temp_dir": r.tmp,
		"bucket": bucket, "endpoint": r.s3.Endpoint, "region": r.s3.Region, "force_path_style": "true",
		"access_key_id": r.s3.AccessKey, "secret_access_key": r.s3.SecretKey,
	}
	t.Run("inputs", func(t *testing.T) {
		with := map[string]string{"ssh_host": r.sshd.Host, "ssh_port": strconv.Itoa(r.sshd.Port), "ssh_user": r.sshd.User,
			"remote_path": r.storage}
		res := runContainer(t, bwrap, root, merge(common, with), nil, nil)
		checkGroup(t, r.s3, res.outputs["backup_id"])
		checkRun(t, res, key, r.s3.SecretKey, "db_backups")
		assertNoTempLeft(t, r.tmp)
	})
	t.Run("kamal and an env fallback", func(t *testing.T) {
		deploy := fmt.Sprintf("service: myapp\nimage: me/myapp\nservers:\n  web:\n    - %s\nssh:\n  user: %s\n  port: %d\n"+
			"volumes:\n  - \"%s:/rails/storage\"\n", r.sshd.Host, r.sshd.User, r.sshd.Port, r.storage)
		workspace := map[string]string{"config/deploy.yml": deploy}
		// Only secrets and the store are given; BACKUP_PREFIX comes from the step's env:, which
		// an action.yml default for prefix would silently override.
		env := map[string]string{"BACKUP_PREFIX": "runner_prefix"}
		res := runContainer(t, bwrap, root, merge(common, map[string]string{"kamal": "true"}), env, workspace)
		checkRun(t, res, key, r.s3.SecretKey, "runner_prefix")
		m, err := catalog.ParseManifest(getObject(t, r.s3, res.outputs["manifest_key"]))
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Files) != len(testutil.RailsDatabases()) || m.RemotePath != r.storage {
			t.Errorf("manifest: %d files from %q, want %d from the Kamal volume %q", len(m.Files), m.RemotePath, len(testutil.RailsDatabases()), r.storage)
		}
		assertNoTempLeft(t, r.tmp)
	})
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range []map[string]string{a, b} {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// requireBwrap finds a bubblewrap that can make the sandbox as root
// without a user namespace (as Docker runs a container).
func requireBwrap(t *testing.T) string {
	t.Helper()
	bwrap, err := exec.LookPath("bwrap")
	if err == nil && os.Geteuid() != 0 {
		err = fmt.Errorf("runs as uid %d: the runner's container runs as root and the test needs root to emulate it", os.Geteuid())
	}
	if err == nil {
		var out []byte
		out, err = exec.Command(bwrap, "--unshare-pid", "--bind", "/", "/", "--proc", "/proc", "true").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("bwrap: %w: %s", err, out)
		}
	}
	testutil.RequireOrSkip(t, "bubblewrap (Debian package bubblewrap, installed by .ci/deps.sh)", err)
	return bwrap
}

// imageRoot lays out a root holding exactly what the final image stage
// holds (imageFiles): the static binary, the helpers for every
// architecture, the CA certificates and an empty /tmp.
func imageRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	bin := buildBinary(t)
	requireStatic(t, bin)
	helpers := filepath.Join(root, imageHelperDir)
	for _, arch := range helperArchs {
		out := filepath.Join(helpers, snapshot.HelperName(arch))
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/sqlite-backup-helper")
		cmd.Dir = testutil.RepoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build helper for %s: %v\n%s", arch, err, b)
		}
	}
	installFile(t, bin, filepath.Join(root, imageEntrypoint), 0o755)
	installFile(t, imageCACerts, filepath.Join(root, imageCACerts), 0o644)
	if err := os.Mkdir(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	return root
}

// requireStatic fails unless bin runs without a dynamic loader (scratch has none).
func requireStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked: it cannot run in a scratch image", bin)
		}
	}
}

// installFile copies src to dst, making dst's directories.
func installFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// runResult is what a step leaves behind.
type runResult struct {
	code           int
	stdout, stderr string
	outputs        map[string]string // GITHUB_OUTPUT as the runner reads it
	summary        string
	outputFile     string
}

// runContainer runs the image root as the runner runs the action with
// the given with: inputs, step env and workspace files.
func runContainer(t *testing.T, bwrap, root string, with, stepEnv, workspace map[string]string) runResult {
	t.Helper()
	host := t.TempDir() // the runner's _work directory
	dirs := map[string]string{}
	for _, d := range []string{workspaceMount, homeMount, fileCmdsMount, workflowMount} {
		dirs[d] = filepath.Join(host, filepath.Base(d))
		if err := os.Mkdir(dirs[d], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range workspace {
		installFile(t, writeTemp(t, body), filepath.Join(dirs[workspaceMount], name), 0o644)
	}
	writeTo := func(dir, name, body string) string {
		if err := os.WriteFile(filepath.Join(dirs[dir], name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir + "/" + name
	}
	const id = "3f2c9a4e-5b1d-4c7e-9f00-0a1b2c3d4e5f"
	env := map[string]string{
		"PATH": dockerPath, "HOSTNAME": "0123456789ab", "HOME": homeMount, "CI": "true", "GITHUB_ACTIONS": "true",
		"GITHUB_WORKSPACE": workspaceMount, "GITHUB_EVENT_NAME": "schedule", "GITHUB_ACTION": "backup",
		"GITHUB_REPOSITORY": "acme/myapp", "GITHUB_RUN_ID": "1", "GITHUB_JOB": "backup",
		"GITHUB_EVENT_PATH":   writeTo(workflowMount, "event.json", `{"schedule":"0 2 * * *"}`),
		"GITHUB_OUTPUT":       writeTo(fileCmdsMount, "set_output_"+id, ""),
		"GITHUB_STEP_SUMMARY": writeTo(fileCmdsMount, "step_summary_"+id, ""),
		"GITHUB_ENV":          writeTo(fileCmdsMount, "set_env_"+id, ""),
		"GITHUB_PATH":         writeTo(fileCmdsMount, "add_path_"+id, ""),
		"GITHUB_STATE":        writeTo(fileCmdsMount, "save_state_"+id, ""),
		"RUNNER_OS":           "Linux", "RUNNER_ARCH": "X64", "RUNNER_TEMP": "/home/runner/work/_temp", // a host path, as the runner passes it
	}
	for k, v := range stepEnv {
		env[k] = v
	}
	for k, v := range runnerInputs(t, with) {
		env[k] = v
	}
	chownTree(t, host, runnerUID, runnerUID)

	args := []string{"--die-with-parent", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
		"--hostname", env["HOSTNAME"], "--cap-drop", "ALL"}
	for _, c := range dockerCaps {
		args = append(args, "--cap-add", c)
	}
	args = append(args, "--bind", root, "/", "--proc", "/proc", "--dev", "/dev")
	for _, d := range []string{workspaceMount, homeMount, fileCmdsMount, workflowMount} {
		args = append(args, "--bind", dirs[d], d)
	}
	args = append(args, "--chdir", workspaceMount, "--clearenv")
	for k, v := range env {
		args = append(args, "--setenv", k, v)
	}
	args = append(args, imageEntrypoint) // ENTRYPOINT, and no args: action.yml declares none

	ctx, cancel := context.WithTimeout(context.Background(), runnerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bwrap, args...)
	cmd.Env = []string{}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := runResult{stdout: stdout.String(), stderr: stderr.String(), outputFile: filepath.Join(dirs[fileCmdsMount], "set_output_"+id)}
	if err != nil {
		t.Fatalf("the action failed (%v) after %s\nstdout:\n%s\nstderr:\n%s", err, time.Since(start).Round(time.Millisecond), res.stdout, res.stderr)
	}
	t.Logf("the action ran in %s", time.Since(start).Round(time.Millisecond))
	res.outputs = parseFileCommand(t, readFile(t, res.outputFile))
	res.summary = readFile(t, filepath.Join(dirs[fileCmdsMount], "step_summary_"+id))
	return res
}

func writeTemp(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// chownTree gives a tree to the runner user, as the runner's own files are.
func chownTree(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkRun checks what the step left for the runner: declared outputs
// only, in a file still owned by the runner user, a summary naming every
// database, and secrets masked before anything could print them.
func checkRun(t *testing.T, res runResult, key []byte, s3Secret, prefix string) {
	t.Helper()
	declared := declaredOutputs(t)
	for name := range res.outputs {
		if !slices.Contains(declared, name) {
			t.Errorf("GITHUB_OUTPUT sets %s, which action.yml does not declare", name)
		}
	}
	id := res.outputs["backup_id"]
	if want := (catalog.Layout{Prefix: prefix, Environment: "production"}).ManifestKey(id); id == "" || res.outputs["manifest_key"] != want {
		t.Errorf("outputs %v: want backup_id and manifest_key %s", res.outputs, want)
	}
	if n, err := strconv.Atoi(res.outputs["files"]); err != nil || n != len(testutil.RailsDatabases()) {
		t.Errorf("output files = %q, want %d", res.outputs["files"], len(testutil.RailsDatabases()))
	}
	if st, err := os.Stat(res.outputFile); err != nil {
		t.Error(err)
	} else if uid := fileUID(st); uid != runnerUID {
		t.Errorf("GITHUB_OUTPUT is now owned by uid %d, want the runner's %d (appended to, not replaced)", uid, runnerUID)
	}
	for _, name := range testutil.RailsDatabases() {
		if !strings.Contains(res.summary, "`"+name+"`") {
			t.Errorf("job summary lacks %s:\n%s", name, res.summary)
		}
	}
	keyLine := strings.Split(string(key), "\n")[1]
	if !strings.Contains(res.stdout, "::add-mask::"+s3Secret) {
		t.Errorf("the S3 secret was not masked")
	}
	var printed []string // stdout less the mask commands themselves
	for _, line := range strings.Split(res.stdout, "\n") {
		if !strings.HasPrefix(line, "::add-mask::") {
			printed = append(printed, line)
		}
	}
	for what, secret := range map[string]string{"the S3 secret": s3Secret, "a line of the SSH key": keyLine} {
		for where, text := range map[string]string{"stdout": strings.Join(printed, "\n"), "stderr": res.stderr, "the job summary": res.summary} {
			if strings.Contains(text, secret) {
				t.Errorf("%s was printed to %s", what, where)
			}
		}
	}
}

func fileUID(st os.FileInfo) int {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid)
	}
	return -1
}
