package snapshot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// envRunHelper makes the test binary act as the helper binary, so the
// re-exec through /proc/self/exe can be tested for real.
const envRunHelper = "SBA_TEST_RUN_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(envRunHelper) == "1" {
		os.Exit(HelperMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// runHelper runs HelperMain in-process without the re-exec.
func runHelper(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv(EnvNoReexec, "1")
	var out, errOut bytes.Buffer
	code = HelperMain(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func decodeStrict(t *testing.T, line string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
}

func TestHelperVersion(t *testing.T) {
	code, stdout, stderr := runHelper(t, "version")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var v VersionInfo
	decodeStrict(t, stdout, &v)
	if v.HelperVersion != HelperVersion || v.SQLiteVersion == "" || v.GOOS == "" || v.GOARCH == "" {
		t.Errorf("version = %+v, want every field set", v)
	}
	if strings.Count(stdout, "\n") != 1 {
		t.Errorf("stdout = %q, want one line", stdout)
	}
}

// TestHelperLowersPriority runs the helper as a real process: it must
// re-execute itself once, at nice 10 and best-effort I/O level 7.
func TestHelperLowersPriority(t *testing.T) {
	cmd := exec.Command(os.Args[0], "version")
	cmd.Env = append(filterEnv(os.Environ(), EnvNoReexec, envReniced), envRunHelper+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper version: %v, stderr %q", err, stderr.String())
	}
	var v VersionInfo
	decodeStrict(t, string(out), &v)
	if v.Nice < helperNice || v.IOPriority != "be/7" {
		t.Errorf("helper ran at nice %d, io %s; want nice >= %d, io be/7 (stderr %q)",
			v.Nice, v.IOPriority, helperNice, stderr.String())
	}
}

func filterEnv(env []string, drop ...string) []string {
	var kept []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, name) {
			kept = append(kept, kv)
		}
	}
	return kept
}

func TestHelperUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"no command", nil, ExitUsage, "usage:"},
		{"unknown command", []string{"restore"}, ExitUsage, `unknown command "restore"`},
		{"unknown flag", []string{"snapshot", "--bogus", "1"}, ExitUsage, "flag provided but not defined: -bogus"},
		{"missing include", []string{"snapshot", "--dir", "/d", "--out", "/o"}, ExitUsage, "flag --include is required"},
		{"extra argument", []string{"snapshot", "--dir", "/d", "--include", "*", "--out", "/o", "x"}, ExitUsage, `unexpected arguments ["x"]`},
		{"help", []string{"--help"}, ExitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runHelper(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr containing %q", code, stderr, tt.wantCode, tt.wantStderr)
			}
		})
	}
}

func TestHelperSnapshot(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	for _, name := range []string{"a.sqlite3", "b.sqlite3"} {
		addRows(t, openWriter(t, filepath.Join(dir, name)), 10, 10)
	}
	code, stdout, stderr := runHelper(t, "snapshot", "--dir", dir, "--include", "*.sqlite3", "--out", out, "--compression", "gzip")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	var names []string
	for sc.Scan() {
		var l Line
		decodeStrict(t, sc.Text(), &l)
		if l.File == nil || l.Error != "" {
			t.Fatalf("line %q: want a file and no error", sc.Text())
		}
		restore(t, *l.File)
		names = append(names, l.File.Name)
	}
	if got := strings.Join(names, ","); got != "a.sqlite3,b.sqlite3" {
		t.Errorf("reported %s, want a.sqlite3,b.sqlite3", got)
	}

	code, stdout, _ = runHelper(t, "snapshot", "--dir", dir, "--include", "*.db", "--out", t.TempDir())
	var l Line
	decodeStrict(t, stdout, &l)
	if code != ExitFailure || l.File != nil || !strings.Contains(l.Error, "no database files in "+dir) {
		t.Errorf("exit %d, line %+v; want exit 1 and an error line", code, l)
	}
}
