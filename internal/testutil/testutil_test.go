package testutil_test

import (
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

func TestMain(m *testing.M) {
	testutil.WriterMain()
	os.Exit(m.Run())
}

// fakeTB records what RequireOrSkip asks of a testing.TB.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Fatalf(format string, a ...any) { f.fatal = fmt.Sprintf(format, a...) }
func (f *fakeTB) Skipf(format string, a ...any)  { f.skip = fmt.Sprintf(format, a...) }

func TestRequireOrSkip(t *testing.T) {
	cause := errors.New("no sshd")
	tests := []struct {
		name      string
		ci        string
		err       error
		wantFatal string
		wantSkip  string
	}{
		{name: "available locally", ci: "", err: nil},
		{name: "available in CI", ci: "true", err: nil},
		{name: "missing locally", ci: "", err: cause, wantSkip: "sshd unavailable: no sshd"},
		{name: "missing with CI=false", ci: "false", err: cause, wantSkip: "sshd unavailable: no sshd"},
		{name: "missing in CI", ci: "true", err: cause, wantFatal: "sshd unavailable in CI: no sshd"},
		{name: "missing with CI=1", ci: "1", err: cause, wantFatal: "sshd unavailable in CI: no sshd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(testutil.EnvCI, tc.ci)
			f := &fakeTB{TB: t}
			testutil.RequireOrSkip(f, "sshd", tc.err)
			if got, want := f.fatal, tc.wantFatal; got != want {
				t.Errorf("Fatalf got %q, want %q", got, want)
			}
			if got, want := f.skip, tc.wantSkip; got != want {
				t.Errorf("Skipf got %q, want %q", got, want)
			}
		})
	}
}

func TestRepoRootAndFreePort(t *testing.T) {
	root := testutil.RepoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatalf("read go.mod: %v", err)
	}
	if got, want := strings.SplitN(string(data), "\n", 2)[0], "module github.com/sqlite-backup-action/sqlite-backup-action"; got != want {
		t.Errorf("go.mod first line got %q, want %q", got, want)
	}
	port := testutil.FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listen on free port %d: %v", port, err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestMakeTraversable(t *testing.T) {
	deep := filepath.Join(t.TempDir(), "a", "b")
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	testutil.MakeTraversable(t, deep)
	for dir := deep; dir != "/"; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			t.Errorf("%s mode %v: not traversable", dir, fi.Mode())
		}
	}
}

func TestStartSSHD(t *testing.T) {
	tests := []struct {
		name string
		opts testutil.SSHDOptions
	}{
		{name: "default ed25519", opts: testutil.SSHDOptions{}},
		{name: "rsa with passphrase", opts: testutil.SSHDOptions{KeyType: testutil.KeyRSA, Passphrase: "s3cret pass"}},
		{name: "ecdsa", opts: testutil.SSHDOptions{KeyType: testutil.KeyECDSA}},
		{name: "root", opts: testutil.SSHDOptions{User: "root"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := testutil.StartSSHD(t, tc.opts)
			if !strings.HasPrefix(s.KnownHostsLine, fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 AAAA", s.Port)) {
				t.Errorf("KnownHostsLine got %q", s.KnownHostsLine)
			}
			if got, want := s.HostKeyFingerprint, ssh.FingerprintSHA256(s.HostPublicKey); got != want || !strings.HasPrefix(got, "SHA256:") {
				t.Errorf("HostKeyFingerprint got %q, want %q", got, want)
			}
			client := dialSSH(t, s, s.KnownHostsLine)
			if got, want := run(t, client, "id -u"), strconv.Itoa(s.UID); got != want {
				t.Errorf("id -u got %q, want %q", got, want)
			}
			dir := s.UserDir(t)
			probe := filepath.Join(dir, "probe")
			if got, want := run(t, client, "touch "+probe+" && stat -c %u:%g "+probe), fmt.Sprintf("%d:%d", s.UID, s.GID); got != want {
				t.Errorf("file made in UserDir owned by %q, want %q", got, want)
			}
			checkParallelSessions(t, client, 16)
			checkSFTP(t, client)
		})
	}
}

func TestStartSSHDWrongHostKey(t *testing.T) {
	s := testutil.StartSSHD(t, testutil.SSHDOptions{})
	other := testutil.StartSSHD(t, testutil.SSHDOptions{})
	wrong := strings.Replace(other.KnownHostsLine, strconv.Itoa(other.Port), strconv.Itoa(s.Port), 1)
	_, err := dialSSHErr(t, s, wrong)
	var keyErr *knownhosts.KeyError
	if !errors.As(err, &keyErr) || len(keyErr.Want) == 0 {
		t.Fatalf("dial with another host's key: got %v, want a knownhosts.KeyError with Want set", err)
	}
}

func dialSSH(t *testing.T, s *testutil.SSHD, knownHostsLine string) *ssh.Client {
	t.Helper()
	client, err := dialSSHErr(t, s, knownHostsLine)
	if err != nil {
		t.Fatalf("ssh to %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func dialSSHErr(t *testing.T, s *testutil.SSHD, knownHostsLine string) (*ssh.Client, error) {
	t.Helper()
	khPath := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(khPath, []byte(knownHostsLine+"\n"), 0o600); err != nil {
		t.Fatalf("write known_hosts: %v", err)
	}
	hostKeys, err := knownhosts.New(khPath)
	if err != nil {
		t.Fatalf("known_hosts: %v", err)
	}
	var signer ssh.Signer
	if s.Passphrase != "" {
		signer, err = ssh.ParsePrivateKeyWithPassphrase(s.ClientKeyPEM, []byte(s.Passphrase))
	} else {
		signer, err = ssh.ParsePrivateKey(s.ClientKeyPEM)
	}
	if err != nil {
		t.Fatalf("parse client key: %v", err)
	}
	cfg := &ssh.ClientConfig{
		User:              s.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   hostKeys,
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Timeout:           5 * time.Second,
	}
	conn, err := net.DialTimeout("tcp", s.Addr(), cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil { // bound the handshake
		return nil, errors.Join(err, conn.Close())
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, s.Addr(), cfg)
	if err != nil {
		return nil, errors.Join(err, conn.Close())
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return ssh.NewClient(c, chans, reqs), nil
}

func run(t *testing.T, client *ssh.Client, cmd string) string {
	t.Helper()
	out, err := runErr(client, cmd)
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	return out
}

func runErr(client *ssh.Client, cmd string) (string, error) {
	sess, err := client.NewSession()
	if err != nil {
		return "", fmt.Errorf("new session: %w", err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(cmd)
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func checkParallelSessions(t *testing.T, client *ssh.Client, n int) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = runErr(client, "sleep 0.2") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Errorf("%d parallel sessions: %v", n, err)
	}
}

func checkSFTP(t *testing.T, client *ssh.Client) {
	t.Helper()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer sess.Close()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		t.Errorf("sftp subsystem: %v", err)
	}
}

func TestWriter(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.RequireOrSkip(t, "root (to run the writer as another user)", errors.New("not root"))
	}
	u := testutil.EnsureUser(t, testutil.DefaultSSHUser)
	dir := testutil.OwnedTempDir(t, u.UID, u.GID)
	const prefill = 200
	testutil.MakeRailsStorage(t, dir, prefill, 512)
	for _, name := range []string{".keep", "uploads/avatar-1.bin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("storage: %v", err)
		}
	}

	w := testutil.StartWriter(t, testutil.WriterOptions{Dir: dir, Rate: 300, UID: u.UID, GID: u.GID})
	time.Sleep(time.Second) // the run itself, not a readiness wait
	if err := testutil.CheckInvariant(filepath.Join(dir, "production.sqlite3")); err != nil {
		t.Errorf("invariant while writing: %v", err)
	}
	time.Sleep(time.Second)
	stats := w.Stop()
	t.Logf("writer stats: %+v", stats)
	// 600 at the target rate; a loaded 2-core CI machine gets about 400.
	if stats.Commits <= 200 {
		t.Errorf("commits got %d, want > 200", stats.Commits)
	}
	if got, want := stats.UID, u.UID; got != want {
		t.Errorf("writer ran as uid %d, want %d", got, want)
	}
	if stats.Errors != 0 {
		t.Errorf("errors got %d (%v), want 0", stats.Errors, stats.ErrorSamples)
	}
	if stats.MaxLatency < stats.P99 || stats.P99 <= 0 {
		t.Errorf("latency got max %v p99 %v", stats.MaxLatency, stats.P99)
	}
	var total int64
	for _, name := range testutil.RailsDatabases() {
		path := filepath.Join(dir, name)
		if err := testutil.CheckInvariant(path); err != nil {
			t.Errorf("invariant: %v", err)
		}
		n, err := testutil.CountRows(path)
		if err != nil {
			t.Errorf("count rows: %v", err)
		}
		total += n
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if got, want := int(fi.Sys().(*syscall.Stat_t).Uid), u.UID; got != want {
			t.Errorf("%s owner got %d, want %d", name, got, want)
		}
	}
	if got, want := total, int64(4*prefill+stats.Commits); got != want {
		t.Errorf("ledger rows got %d, want %d", got, want)
	}
}

func TestCheckInvariant(t *testing.T) {
	tests := []struct {
		name          string
		mutate        string // SQL run on the database first
		remove        bool
		wantInvariant bool
		wantErr       bool
	}{
		{name: "consistent"},
		{name: "count drift", mutate: "UPDATE totals SET count = count + 1", wantInvariant: true, wantErr: true},
		{name: "sum drift", mutate: "UPDATE totals SET sum = sum - 7", wantInvariant: true, wantErr: true},
		{name: "lost ledger row", mutate: "DELETE FROM ledger WHERE id = 3", wantInvariant: true, wantErr: true},
		{name: "missing totals", mutate: "DELETE FROM totals", wantErr: true},
		{name: "missing file", remove: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			testutil.MakeRailsStorage(t, dir, 10, 64)
			path := filepath.Join(dir, "production.sqlite3")
			if tc.mutate != "" {
				execSQL(t, path, tc.mutate)
			}
			if tc.remove {
				if err := os.Remove(path); err != nil {
					t.Fatalf("remove: %v", err)
				}
			}
			err := testutil.CheckInvariant(path)
			if got, want := err != nil, tc.wantErr; got != want {
				t.Fatalf("CheckInvariant error got %v, want error %v", err, want)
			}
			if got, want := errors.Is(err, testutil.ErrInvariant), tc.wantInvariant; got != want {
				t.Errorf("errors.Is(%v, ErrInvariant) got %v, want %v", err, got, want)
			}
			for _, sidecar := range []string{"-wal", "-shm"} {
				if _, err := os.Stat(path + sidecar); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s after CheckInvariant: got %v, want not exist", sidecar, err)
				}
			}
		})
	}
}

func execSQL(t *testing.T, path, query string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	if _, err := db.Exec(query); err != nil {
		t.Fatalf("exec %q: %v", query, err)
	}
}
