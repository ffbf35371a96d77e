package testutil

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Defaults for StartSSHD.
const (
	SSHDPath           = "/usr/sbin/sshd"
	DefaultSSHUser     = "sbatest"
	sshdPrivSepDir     = "/run/sshd"
	sshdReadyTimeout   = 10 * time.Second
	sshdStopTimeout    = 5 * time.Second
	sshdMaxSessions    = 64
	sshdMaxStartups    = 256
	sshdBindAttempts   = 3
	rsaClientKeyBits   = 2048
	commandTimeout     = 30 * time.Second
	userCommandRetries = 5
)

// KeyType names a client key algorithm for SSHDOptions.
type KeyType string

// Client key algorithms that StartSSHD can generate.
const (
	KeyEd25519 KeyType = "ed25519"
	KeyRSA     KeyType = "rsa"
	KeyECDSA   KeyType = "ecdsa"
)

// SSHDOptions tunes StartSSHD. The zero value logs in as DefaultSSHUser with
// an unencrypted ed25519 key.
type SSHDOptions struct {
	// User is the login user; empty means DefaultSSHUser, created if missing.
	User string
	// KeyType of the client key; empty means KeyEd25519.
	KeyType KeyType
	// Passphrase, when set, encrypts ClientKeyPEM.
	Passphrase string
	// ExtraConfig lines are written at the top of sshd_config: sshd keeps the
	// first value it reads for a keyword, so they override the defaults.
	// Match blocks are not supported.
	ExtraConfig []string
}

// SSHD is a running OpenSSH server on loopback, stopped by t.Cleanup.
type SSHD struct {
	Host string
	Port int
	User string
	UID  int
	GID  int
	Home string

	// ClientKeyPEM is the client's private key, encrypted with Passphrase
	// when that is set; ClientKeyPath holds the same bytes (mode 0600).
	ClientKeyPEM  []byte
	ClientKeyPath string
	Passphrase    string
	// Signer is the client key, ready for ssh.PublicKeys.
	Signer ssh.Signer

	// KnownHostsLine is "[127.0.0.1]:PORT ssh-ed25519 AAAA...", as
	// ssh-keyscan prints it; KnownHostsPath is a file holding that line.
	KnownHostsLine     string
	KnownHostsPath     string
	HostKeyFingerprint string
	HostPublicKey      ssh.PublicKey

	log *syncBuffer
}

// Addr returns "127.0.0.1:PORT".
func (s *SSHD) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Log returns what sshd has written to stderr so far.
func (s *SSHD) Log() string { return s.log.String() }

// UserDir returns a new directory owned by the login user (mode 0755) whose
// parents the user can traverse.
func (s *SSHD) UserDir(t testing.TB) string {
	t.Helper()
	return OwnedTempDir(t, s.UID, s.GID)
}

// StartSSHD runs /usr/sbin/sshd -D -e on 127.0.0.1 at a free port with its
// own configuration, host key and client key, and waits until it sends its
// banner. It needs root; without it, or without sshd, RequireOrSkip decides.
func StartSSHD(t testing.TB, opts SSHDOptions) *SSHD {
	t.Helper()
	if _, err := os.Stat(SSHDPath); err != nil {
		RequireOrSkip(t, "sshd", err)
	}
	if os.Geteuid() != 0 {
		RequireOrSkip(t, "sshd", errors.New("running sshd for another user needs root"))
	}
	if err := os.MkdirAll(sshdPrivSepDir, 0o755); err != nil {
		RequireOrSkip(t, "sshd privilege separation dir", err)
	}
	name := opts.User
	if name == "" {
		name = DefaultSSHUser
	}
	u := EnsureUser(t, name)

	dir := t.TempDir()
	MakeTraversable(t, dir) // sshd reads AuthorizedKeysFile as the user
	s := &SSHD{
		Host: "127.0.0.1", User: u.Name, UID: u.UID, GID: u.GID, Home: u.Home,
		Passphrase: opts.Passphrase,
	}
	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	s.HostPublicKey = writeHostKey(t, hostKeyPath)
	s.HostKeyFingerprint = ssh.FingerprintSHA256(s.HostPublicKey)

	authKeysPath := filepath.Join(dir, "authorized_keys")
	s.ClientKeyPath = filepath.Join(dir, "client_key")
	s.ClientKeyPEM, s.Signer = newClientKey(t, opts.KeyType, opts.Passphrase)
	writeFile(t, s.ClientKeyPath, s.ClientKeyPEM, 0o600)
	writeFile(t, authKeysPath, ssh.MarshalAuthorizedKey(s.Signer.PublicKey()), 0o644)

	cfgPath := filepath.Join(dir, "sshd_config")
	penalties := sshdHasPenalties()
	var err error
	for range sshdBindAttempts { // FreePort races other tests for the port
		s.Port, s.log = FreePort(t), &syncBuffer{}
		writeFile(t, cfgPath, []byte(sshdConfig(s, hostKeyPath, authKeysPath, penalties, opts.ExtraConfig)), 0o644)
		if err = launchSSHD(t, s, cfgPath); err == nil || !strings.Contains(s.log.String(), "Address already in use") {
			break
		}
	}
	if err != nil {
		t.Fatalf("sshd not ready: %v\nsshd log:\n%s", err, s.log.String())
	}
	s.KnownHostsLine = knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.HostPublicKey)
	s.KnownHostsPath = filepath.Join(dir, "known_hosts")
	writeFile(t, s.KnownHostsPath, []byte(s.KnownHostsLine+"\n"), 0o644)
	return s
}

// launchSSHD starts sshd with cfgPath, registers its stop and log dump with
// t.Cleanup, and waits until it both logs that it listens and sends its
// banner: the log line proves that the banner is not another server's.
func launchSSHD(t testing.TB, s *SSHD, cfgPath string) error {
	t.Helper()
	cmd := exec.Command(SSHDPath, "-D", "-e", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.WaitDelay = 2 * time.Second // session children may hold stderr open
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	log := s.log
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sshd log (%s):\n%s", s.Addr(), log.String())
		}
	})
	t.Cleanup(func() { stopProcess(t, "sshd", cmd, exited, sshdStopTimeout) })

	ctx, cancel := context.WithTimeout(context.Background(), sshdReadyTimeout)
	defer cancel()
	listening := fmt.Sprintf("Server listening on %s port %d.", s.Host, s.Port)
	err := waitUntil(ctx, exited, func(ctx context.Context) error {
		if !strings.Contains(log.String(), listening) {
			return errors.New("not listening yet")
		}
		return readBanner(ctx, s.Addr())
	})
	if err != nil && isClosed(exited) {
		err = fmt.Errorf("%w (exit: %v)", err, waitErr)
	}
	if err != nil {
		return fmt.Errorf("sshd on %s: %w", s.Addr(), err)
	}
	return nil
}

func sshdConfig(s *SSHD, hostKeyPath, authKeysPath string, penalties bool, extra []string) string {
	var b strings.Builder
	for _, line := range extra {
		b.WriteString(line + "\n")
	}
	fmt.Fprintf(&b, "ListenAddress %s\n", s.Addr())
	fmt.Fprintf(&b, "HostKey %s\n", hostKeyPath)
	fmt.Fprintf(&b, "AuthorizedKeysFile %s\n", authKeysPath)
	fmt.Fprintf(&b, "MaxSessions %d\nMaxStartups %d\n", sshdMaxSessions, sshdMaxStartups)
	if penalties {
		b.WriteString("PerSourcePenalties no\n") // OpenSSH 9.8+ would throttle failing tests
	}
	b.WriteString(`PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
PidFile none
LogLevel VERBOSE
AllowTcpForwarding yes
X11Forwarding no
Subsystem sftp internal-sftp
`)
	return b.String()
}

// sshdHasPenalties reports whether sshd knows PerSourcePenalties (9.8+); an
// unknown keyword is fatal to sshd.
func sshdHasPenalties() bool {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, _ := exec.CommandContext(ctx, SSHDPath, "-V").CombinedOutput() // prints its version and may exit 1
	m := regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`).FindSubmatch(out)
	if m == nil {
		return false
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	return major > 9 || (major == 9 && minor >= 8)
}

// waitUntil polls ready until it succeeds, ctx ends or the process exits.
func waitUntil(ctx context.Context, exited <-chan struct{}, ready func(context.Context) error) error {
	const poll = 50 * time.Millisecond
	for {
		if isClosed(exited) {
			return errors.New("process exited")
		}
		lastErr := ready(ctx)
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for readiness: %w (last: %w)", ctx.Err(), lastErr)
		case <-exited:
			return errors.New("process exited")
		case <-time.After(poll):
		}
	}
}

func readBanner(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read banner: %w", err)
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}

func writeHostKey(t testing.TB, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate host key: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "sbatest host key")
	if err != nil {
		t.Fatalf("marshal host key: %v", err)
	}
	writeFile(t, path, pem.EncodeToMemory(block), 0o600)
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("host public key: %v", err)
	}
	return sshPub
}

func newClientKey(t testing.TB, kt KeyType, passphrase string) ([]byte, ssh.Signer) {
	t.Helper()
	var key crypto.Signer
	var err error
	switch kt {
	case "", KeyEd25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case KeyRSA:
		key, err = rsa.GenerateKey(rand.Reader, rsaClientKeyBits)
	case KeyECDSA:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		t.Fatalf("client key: unknown key type %q", kt)
	}
	if err != nil {
		t.Fatalf("generate %s client key: %v", kt, err)
	}
	var block *pem.Block
	if passphrase != "" {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(key, "sbatest client key", []byte(passphrase))
	} else {
		block, err = ssh.MarshalPrivateKey(key, "sbatest client key")
	}
	if err != nil {
		t.Fatalf("marshal client key: %v", err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatalf("client signer: %v", err)
	}
	return pem.EncodeToMemory(block), signer
}
