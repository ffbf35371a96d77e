// Package remote connects to the database host: SSH with the host key
// always verified, a bounded connect and handshake, keepalives, quoted
// remote commands whose stderr lands in the error, and SFTP.
package remote

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// DefaultKeepAlive is how often a keepalive@openssh.com request is sent.
const DefaultKeepAlive = 15 * time.Second

// keepAliveMisses is how many unanswered keepalives close the connection.
const keepAliveMisses = 3

// Hop is one SSH server to authenticate to.
type Hop struct {
	Host       string
	Port       int
	User       string
	PrivateKey []byte // PEM/OpenSSH private key
	Passphrase []byte // empty when the key has none
	HostKeys   *HostKeys
}

// Options say where and how to connect.
type Options struct {
	Hop
	// Jump, when set, is a bastion the connection to Hop goes through
	// (like ssh -J); its host key is verified too.
	Jump           *Hop
	ConnectTimeout time.Duration // bounds TCP connect and SSH handshakes together
	KeepAlive      time.Duration // 0 = DefaultKeepAlive
	Logger         *slog.Logger
}

// Client is a verified SSH connection with an SFTP session on it.
type Client struct {
	ssh    *ssh.Client
	jump   *ssh.Client // nil without a jump host
	sftp   *sftp.Client
	addr   string
	log    *slog.Logger
	stop   chan struct{}
	once   sync.Once
	unhook func() bool
}

// Dial connects (through the jump host, if any), verifies every host key,
// authenticates and opens SFTP. The connection closes when ctx is done.
func Dial(ctx context.Context, o Options) (_ *Client, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	timeout := o.ConnectTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(ctx, "tcp", addr)
	}
	var jump *ssh.Client
	if o.Jump != nil {
		jump, err = connect(dctx, *o.Jump, "jump host ", dial, timeout)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				_ = jump.Close()
			}
		}()
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return jump.DialContext(ctx, "tcp", addr) }
	}
	sc, err := connect(dctx, o.Hop, "", dial, timeout)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
	c := &Client{ssh: sc, jump: jump, addr: addr, log: o.Logger, stop: make(chan struct{})}
	c.unhook = context.AfterFunc(ctx, func() { _ = c.Close() })
	ka := o.KeepAlive
	if ka <= 0 {
		ka = DefaultKeepAlive
	}
	go c.keepAlive(ka)
	c.sftp, err = sftp.NewClient(c.ssh,
		sftp.UseConcurrentReads(true),
		sftp.UseConcurrentWrites(true),
		sftp.MaxConcurrentRequestsPerFile(64),
	)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("start sftp on %s: %w (is the sftp subsystem enabled in sshd_config?)", addr, err)
	}
	return c, nil
}

// connect dials one hop and runs the SSH handshake within dctx's deadline.
// ssh.ClientConfig.Timeout only bounds a TCP connect, so the handshake
// gets a deadline too, and the connection is closed if dctx ends meanwhile.
func connect(dctx context.Context, h Hop, what string, dial func(context.Context, string) (net.Conn, error), timeout time.Duration) (*ssh.Client, error) {
	if h.HostKeys == nil {
		return nil, fmt.Errorf("ssh %s%s: no host keys to verify against", what, h.Host)
	}
	signer, err := ParsePrivateKey(h.PrivateKey, h.Passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s%w", what, err)
	}
	addr := net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
	conn, err := dial(dctx, addr)
	if err != nil {
		return nil, fmt.Errorf("ssh connect %s%s: %w", what, addr, friendlyNetErr(err, timeout))
	}
	deadline, _ := dctx.Deadline()
	_ = conn.SetDeadline(deadline) // not supported through a jump host; the watch below still bounds it
	stopWatch := context.AfterFunc(dctx, func() { _ = conn.Close() })
	cfg := &ssh.ClientConfig{
		User:              h.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   h.HostKeys.Callback,
		HostKeyAlgorithms: h.HostKeys.Algorithms(addr, conn.RemoteAddr()),
		Timeout:           timeout,
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if !stopWatch() || err != nil {
		_ = conn.Close()
		if err == nil || dctx.Err() != nil {
			// The watch closed the connection: say why, not "closed connection".
			err = dctx.Err()
		}
		return nil, fmt.Errorf("ssh handshake with %s%s: %w", what, addr, friendlyNetErr(err, timeout))
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// ParsePrivateKey reads an OpenSSH or PEM private key, with a passphrase
// when it has one; errors say which of the two inputs is wrong.
func ParsePrivateKey(key, passphrase []byte) (ssh.Signer, error) {
	if len(bytes.TrimSpace(key)) == 0 {
		return nil, errors.New("ssh_private_key is empty")
	}
	var signer ssh.Signer
	var err error
	if len(passphrase) > 0 {
		signer, err = ssh.ParsePrivateKeyWithPassphrase(key, passphrase)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, errors.New("ssh_private_key_passphrase does not decrypt ssh_private_key")
		}
	} else {
		signer, err = ssh.ParsePrivateKey(key)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, errors.New("ssh_private_key is encrypted: set ssh_private_key_passphrase")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ssh_private_key could not be parsed (want an OpenSSH or PEM private key): %w", err)
	}
	return signer, nil
}

func friendlyNetErr(err error, timeout time.Duration) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("no answer within %s (host down, firewall, or wrong ssh_port?): %w", timeout, err)
	}
	return err
}

func (c *Client) keepAlive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	misses := 0
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			done <- err
		}()
		select {
		case <-c.stop:
			return
		case err := <-done:
			if err != nil {
				misses++
			} else {
				misses = 0
			}
		case <-time.After(every):
			misses++
		}
		if misses >= keepAliveMisses {
			c.log.Warn("ssh keepalive: no answer, closing connection", "host", c.addr, "misses", misses)
			_ = c.Close()
			return
		}
	}
}

// SFTP returns the SFTP session.
func (c *Client) SFTP() *sftp.Client { return c.sftp }

// Addr is host:port.
func (c *Client) Addr() string { return c.addr }

// Close ends SFTP and SSH. It is safe to call more than once.
func (c *Client) Close() error {
	var err error
	c.once.Do(func() {
		close(c.stop)
		if c.unhook != nil {
			c.unhook()
		}
		if c.sftp != nil {
			_ = c.sftp.Close()
		}
		err = c.ssh.Close()
		if c.jump != nil {
			_ = c.jump.Close()
		}
	})
	return err
}

// Run runs a command line (already quoted with Quote) and returns its
// stdout. A non-zero exit gives an error holding the tail of stderr.
func (c *Client) Run(ctx context.Context, cmd string) ([]byte, error) {
	var out bytes.Buffer
	p, err := c.Start(ctx, cmd, &out)
	if err != nil {
		return nil, err
	}
	err = p.Wait()
	return out.Bytes(), err
}

// Process is a started remote command.
type Process struct {
	sess   *ssh.Session
	stderr *tailBuffer
	unhook func() bool
	cmd    string
}

// Start starts cmd with stdout going to w.
func (c *Client) Start(ctx context.Context, cmd string, stdout io.Writer) (*Process, error) {
	sess, err := c.ssh.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open ssh session on %s: %w", c.addr, err)
	}
	p := &Process{sess: sess, stderr: &tailBuffer{max: 4096}, cmd: cmd}
	sess.Stdout = stdout
	sess.Stderr = p.stderr
	if err := sess.Start(cmd); err != nil {
		_ = sess.Close()
		return nil, fmt.Errorf("start remote command: %w", err)
	}
	p.unhook = context.AfterFunc(ctx, func() {
		_ = sess.Signal(ssh.SIGKILL)
		_ = sess.Close()
	})
	return p, nil
}

// Wait waits for the command; a failure carries its exit status and stderr.
func (p *Process) Wait() error {
	err := p.sess.Wait()
	p.unhook()
	_ = p.sess.Close()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(p.stderr.String())
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Status: ee.ExitStatus(), Stderr: msg}
	}
	if msg != "" {
		return fmt.Errorf("remote command: %w: %s", err, msg)
	}
	return fmt.Errorf("remote command: %w (connection lost?)", err)
}

// ExitError is a remote command that exited non-zero.
type ExitError struct {
	Status int
	Stderr string
}

func (e *ExitError) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("remote command exited with status %d", e.Status)
	}
	return fmt.Sprintf("remote command exited with status %d: %s", e.Status, e.Stderr)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = b.buf[len(b.buf)-b.max:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Quote quotes s for a POSIX shell: one single-quoted word in which
// nothing is expanded, whatever s holds.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// Command joins quoted words into one command line.
func Command(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}
