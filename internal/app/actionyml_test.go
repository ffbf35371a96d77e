package app_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// TestActionYAMLRunnerInputs runs the app in process with its inputs
// exactly as the runner passes them for action.yml: every declared input
// as INPUT_<NAME>, its with: value, else its action.yml default, else
// empty. Environment fallbacks must still work then (an action.yml default
// would be passed as if given and hide them), and every output the app
// writes must be declared.
func TestActionYAMLRunnerInputs(t *testing.T) {
	storage := t.TempDir()
	testutil.MakeRailsStorage(t, storage, 50, 64)
	dest, files := t.TempDir(), t.TempDir()
	env := runnerInputs(t, map[string]string{"remote_path": storage, "destination": "file://" + dest})
	env["GITHUB_ACTIONS"] = "true"
	env["GITHUB_OUTPUT"] = filepath.Join(files, "set_output")
	env["GITHUB_STEP_SUMMARY"] = filepath.Join(files, "step_summary")
	env["BACKUP_PREFIX"] = "from_step_env" // env: of the step
	env["RAILS_ENV"] = "staging"
	code, stdout, stderr := runMain(t, nil, env)
	if code != app.ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	outputs := parseFileCommand(t, readFile(t, env["GITHUB_OUTPUT"]))
	declared := declaredOutputs(t)
	for name := range outputs {
		if !slices.Contains(declared, name) {
			t.Errorf("GITHUB_OUTPUT sets %s, which action.yml does not declare", name)
		}
	}
	want := catalog.Layout{Prefix: "from_step_env", Environment: "staging"}.ManifestKey(outputs["backup_id"])
	if got := outputs["manifest_key"]; got != want {
		t.Errorf("manifest_key %q, want %q: BACKUP_PREFIX and RAILS_ENV from the step's env must apply when prefix and environment are not given", got, want)
	}
}

// TestActionYAMLKamalError: with kamal: true, a deploy.yml key the action
// cannot evaluate stops the run before anything is contacted, with one
// line naming the input and the key.
func TestActionYAMLKamalError(t *testing.T) {
	deploy := filepath.Join(t.TempDir(), "deploy.yml")
	body := "service: myapp\nservers:\n  web:\n    - <%= ENV[\"WEB_HOST\"] %>\nvolumes:\n  - myapp_storage:/rails/storage\n"
	if err := os.WriteFile(deploy, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	env := runnerInputs(t, map[string]string{"kamal": "true", "kamal_config": deploy, "destination": "file://" + t.TempDir()})
	env["GITHUB_ACTIONS"] = "true"
	code, stdout, stderr := runMain(t, nil, env)
	want := "input ssh_host: from kamal: " + deploy + `: servers.web[0]: ERB <%= ENV["WEB_HOST"] %> reads env WEB_HOST, which is not set`
	if code != app.ExitUsage || !strings.Contains(stderr, "error: "+want) || !strings.Contains(stdout, "::error::") {
		t.Errorf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, app.ExitUsage, want, stdout, stderr)
	}
}

// runnerInputs returns INPUT_<NAME> for every input action.yml declares,
// as the runner sets them: the with: value, else the default, else empty.
func runnerInputs(t *testing.T, with map[string]string) map[string]string {
	t.Helper()
	declared := declaredInputs(t)
	for name := range with {
		if _, ok := declared[name]; !ok {
			t.Fatalf("with: %s is not an input action.yml declares", name)
		}
	}
	env := map[string]string{}
	for name, def := range declared {
		v, ok := with[name]
		if !ok {
			v = def
		}
		env["INPUT_"+strings.ToUpper(strings.ReplaceAll(name, " ", "_"))] = v
	}
	return env
}

// declaredInputs reads action.yml's inputs and their defaults, as the
// runner does.
func declaredInputs(t *testing.T) map[string]string {
	t.Helper()
	var meta struct {
		Inputs map[string]struct {
			Default string `yaml:"default"`
		} `yaml:"inputs"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(testutil.RepoRoot(t), "action.yml"))), &meta); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	out := map[string]string{}
	for name, in := range meta.Inputs {
		out[name] = in.Default
	}
	return out
}

// declaredOutputs are the outputs action.yml declares.
func declaredOutputs(t *testing.T) []string {
	t.Helper()
	var meta struct {
		Outputs map[string]any `yaml:"outputs"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(testutil.RepoRoot(t), "action.yml"))), &meta); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	var out []string
	for name := range meta.Outputs {
		out = append(out, name)
	}
	return out
}

// parseFileCommand reads a GITHUB_OUTPUT file as the runner does:
// name=value lines and name<<DELIMITER heredocs.
func parseFileCommand(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if line == "" {
			continue
		}
		if name, delim, ok := strings.Cut(line, "<<"); ok && !strings.Contains(name, "=") {
			var val []string
			for i++; i < len(lines) && lines[i] != delim; i++ {
				val = append(val, lines[i])
			}
			if i == len(lines) {
				t.Fatalf("GITHUB_OUTPUT: %s<<%s is not closed", name, delim)
			}
			out[name] = strings.Join(val, "\n")
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("GITHUB_OUTPUT: line %q is neither name=value nor name<<DELIMITER", line)
		}
		out[name] = val
	}
	return out
}
