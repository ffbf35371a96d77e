package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// faultTarget is a Local target whose operations fail when fail says so.
type faultTarget struct {
	Local
	fail func(op string, paths ...string) error
}

func (f faultTarget) Create(ctx context.Context, p string) (io.WriteCloser, error) {
	if err := f.fail("create", p); err != nil {
		return nil, err
	}
	return f.Local.Create(ctx, p)
}

func (f faultTarget) Rename(ctx context.Context, a, b string) error {
	if err := f.fail("rename", a, b); err != nil {
		return err
	}
	return f.Local.Rename(ctx, a, b)
}

func (f faultTarget) SHA256(ctx context.Context, p string) (string, error) {
	if err := f.fail("sha256", p); err != nil {
		return strings.Repeat("0", 64), nil
	}
	return f.Local.SHA256(ctx, p)
}

var errInjected = errors.New("injected failure")

type replaceRig struct {
	*fixture
	log  string // what safety backup, stop_command and start_command did, one word a line
	live string // production.sqlite3
}

// newReplaceRig is the fixture with production.sqlite3 given mode 0640, an
// owner other than root (when the test runs as root), and a stale -wal and
// -shm beside it.
func newReplaceRig(t *testing.T) *replaceRig {
	t.Helper()
	r := &replaceRig{fixture: newFixture(t), log: filepath.Join(t.TempDir(), "log")}
	r.live = filepath.Join(r.fixture.live, "production.sqlite3")
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.WriteFile(r.live+suffix, []byte("stale "+suffix), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(r.live, 0o640); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(r.live, 4242, 4343); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *replaceRig) opts(t *testing.T, fail func(op string, paths ...string) error) Options {
	o := r.fixture.opts(t, ModeReplace, r.fixture.live)
	if fail == nil {
		fail = func(string, ...string) error { return nil }
	}
	o.Connect = func(context.Context) (Target, error) { return faultTarget{fail: fail}, nil }
	o.StopCommand = "echo stop >> " + r.log
	o.StartCommand = "echo start >> " + r.log
	o.SafetyBackup = func(context.Context) (string, error) {
		f, err := os.OpenFile(r.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return "", err
		}
		defer f.Close()
		_, err = f.WriteString("safety\n")
		return "20250201-115959", err
	}
	return o
}

func (r *replaceRig) steps(t *testing.T) string {
	b, err := os.ReadFile(r.log)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

func TestReplace(t *testing.T) {
	r := newReplaceRig(t)
	old := tree(t, r.fixture.live)
	st, err := os.Stat(r.live)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), r.opts(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.steps(t); got != "safety stop start" {
		t.Errorf("steps %q, want safety stop start", got)
	}
	if res.SafetyBackupID != "20250201-115959" || len(res.Files) != 4 {
		t.Errorf("result: safety %q, %d files", res.SafetyBackupID, len(res.Files))
	}
	aside := ".pre-restore-20250201-120000"
	now := tree(t, r.fixture.live)
	for _, mf := range r.m.Files {
		if now[mf.Name] != mf.SHA256 {
			t.Errorf("%s is not the restored file", mf.Name)
		}
		if now[mf.Name+aside] != old[mf.Name] {
			t.Errorf("%s was not kept as %s", mf.Name, mf.Name+aside)
		}
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, ok := now["production.sqlite3"+suffix]; ok {
			t.Errorf("stale production.sqlite3%s left beside the restored database", suffix)
		}
		if now["production.sqlite3"+aside+suffix] != old["production.sqlite3"+suffix] {
			t.Errorf("production.sqlite3%s was not kept with the old database", suffix)
		}
	}
	for name := range now {
		if strings.HasSuffix(name, ".partial") {
			t.Errorf("temp file %s left", name)
		}
	}
	got, err := os.Stat(r.live)
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode() != st.Mode() || owner(got) != owner(st) {
		t.Errorf("restored file is %s %s, the original was %s %s", got.Mode(), owner(got), st.Mode(), owner(st))
	}
}

// TestReplaceFailures injects a failure at each step: before the rename
// into place, the live files end up exactly as they were and start_command
// runs; if they cannot be put back, start_command does not run.
func TestReplaceFailures(t *testing.T) {
	isTemp := func(p string) bool { return strings.HasSuffix(p, ".partial") }
	cases := []struct {
		name      string
		setup     func(t *testing.T, r *replaceRig, o *Options)
		fail      func(op string, paths ...string) error
		want      []string
		wantSteps string
		untouched bool
	}{
		{name: "safety backup fails", setup: func(t *testing.T, r *replaceRig, o *Options) {
			o.SafetyBackup = func(context.Context) (string, error) { return "", errInjected }
		}, want: []string{"safety backup", "nothing was stopped"}, wantSteps: "", untouched: true},
		{name: "stop_command fails", setup: func(t *testing.T, r *replaceRig, o *Options) {
			o.StopCommand = "echo stop >> " + r.log + "; echo cannot stop >&2; exit 3"
		}, want: []string{"stop_command", "cannot stop", "start_command ran"}, wantSteps: "safety stop start", untouched: true},
		{name: "a process still holds a database", setup: func(t *testing.T, r *replaceRig, o *Options) {
			f, err := os.Open(r.live + "-wal")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
		}, want: []string{"processes still hold the databases", "restore.test"}, wantSteps: "safety stop start", untouched: true},
		{name: "upload of the second file fails", fail: func(op string, p ...string) error {
			if op == "create" && strings.Contains(p[0], "production_cable") {
				return errInjected
			}
			return nil
		}, want: []string{"injected failure", "left as they were"}, wantSteps: "safety stop start", untouched: true},
		{name: "something in the way of the temp file", setup: func(t *testing.T, r *replaceRig, o *Options) {
			blocker := filepath.Join(r.fixture.live, tempName("production_queue.sqlite3", r.id))
			if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"is not a regular file"}, wantSteps: "safety stop start", untouched: true},
		{name: "rename into place fails for the last file", fail: func(op string, p ...string) error {
			if op == "rename" && isTemp(p[0]) && strings.HasSuffix(p[1], "production_queue.sqlite3") {
				return errInjected
			}
			return nil
		}, want: []string{"injected failure", "left as they were"}, wantSteps: "safety stop start", untouched: true},
		{name: "check after the swap fails", fail: func(op string, p ...string) error {
			if op == "sha256" && strings.HasSuffix(p[0], "/production_cache.sqlite3") {
				return errInjected
			}
			return nil
		}, want: []string{"after the swap"}, wantSteps: "safety stop start", untouched: true},
		{name: "putting back fails", fail: func(op string, p ...string) error {
			switch {
			case op == "rename" && isTemp(p[0]) && strings.HasSuffix(p[1], "production_queue.sqlite3"):
				return errInjected
			case op == "rename" && strings.Contains(p[0], ".pre-restore-") && strings.HasSuffix(p[1], "/production.sqlite3"):
				return errInjected
			}
			return nil
		}, want: []string{"start_command was NOT run", "finish by hand", "mv "}, wantSteps: "safety stop"},
		{name: "start_command fails after the swap", setup: func(t *testing.T, r *replaceRig, o *Options) {
			o.StartCommand = "echo start >> " + r.log + "; exit 1"
		}, want: []string{"replaced, but the app did not start"}, wantSteps: "safety stop start"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplaceRig(t)
			o := r.opts(t, tc.fail)
			if tc.setup != nil {
				tc.setup(t, r, &o)
			}
			before := tree(t, r.fixture.live)
			_, err := Run(context.Background(), o)
			if err == nil {
				t.Fatal("replace succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if got := r.steps(t); got != tc.wantSteps {
				t.Errorf("steps %q, want %q", got, tc.wantSteps)
			}
			if tc.untouched {
				sameTree(t, "live dir", tree(t, r.fixture.live), before)
			}
		})
	}
}

func owner(fi os.FileInfo) string {
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", s.Uid, s.Gid)
	}
	return "?"
}
