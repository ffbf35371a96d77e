package remote

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Host key failures callers can branch on. Both messages carry the
// fingerprint the server presented and how to pin it.
var (
	ErrHostKeyMismatch = errors.New("host key mismatch")
	ErrHostKeyUnknown  = errors.New("host key unknown")
)

// HostKeys verifies a server's host key against known_hosts lines and/or
// pinned SHA256 fingerprints. There is no way to turn verification off.
type HostKeys struct {
	check        ssh.HostKeyCallback // from known_hosts lines; nil when none
	fingerprints []string
	knownHosts   bool
}

// NewHostKeys parses known_hosts lines (any format ssh-keyscan prints,
// hashed or not) and SHA256:... fingerprints. At least one must be given.
func NewHostKeys(knownHostsLines string, fingerprints []string) (*HostKeys, error) {
	h := &HostKeys{fingerprints: fingerprints}
	if strings.TrimSpace(knownHostsLines) != "" {
		cb, err := parseKnownHosts(knownHostsLines)
		if err != nil {
			return nil, err
		}
		h.check = cb
		h.knownHosts = true
	}
	if h.check == nil && len(fingerprints) == 0 {
		return nil, errors.New("no host key to verify against: set ssh_known_hosts or ssh_host_fingerprint")
	}
	return h, nil
}

// parseKnownHosts checks every line, then hands them to knownhosts (which
// only reads files) through a private temp file removed at once.
func parseKnownHosts(lines string) (ssh.HostKeyCallback, error) {
	rest := []byte(lines)
	for n := 1; len(rest) > 0; n++ {
		var err error
		_, _, _, _, rest, err = ssh.ParseKnownHosts(rest)
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		return nil, fmt.Errorf("ssh_known_hosts: entry %d: %w", n, err)
	}
	f, err := os.CreateTemp("", "sba-known-hosts-*")
	if err != nil {
		return nil, fmt.Errorf("ssh_known_hosts: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(lines + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("ssh_known_hosts: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("ssh_known_hosts: %w", err)
	}
	cb, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, fmt.Errorf("ssh_known_hosts: %w", err)
	}
	return cb, nil
}

// Callback is the ssh.HostKeyCallback.
func (h *HostKeys) Callback(hostport string, remote net.Addr, key ssh.PublicKey) error {
	got := ssh.FingerprintSHA256(key)
	if slices.Contains(h.fingerprints, got) {
		return nil
	}
	var khErr error
	if h.check != nil {
		khErr = h.check(hostport, remote, key)
		if khErr == nil {
			return nil
		}
	}
	pin := fmt.Sprintf("the server presented %s %s; if you checked that out of band, pin it with ssh_host_fingerprint: %s", key.Type(), got, got)
	var ke *knownhosts.KeyError
	if errors.As(khErr, &ke) && len(ke.Want) > 0 {
		var want []string
		for _, w := range ke.Want {
			want = append(want, w.Key.Type()+" "+ssh.FingerprintSHA256(w.Key))
		}
		return fmt.Errorf("%w for %s: refusing to connect: known_hosts expects %s but %s (a changed key can mean a man-in-the-middle)",
			ErrHostKeyMismatch, hostport, strings.Join(want, ", "), pin)
	}
	if len(h.fingerprints) > 0 && !h.knownHosts {
		return fmt.Errorf("%w for %s: refusing to connect: ssh_host_fingerprint pins %s but %s (a changed key can mean a man-in-the-middle)",
			ErrHostKeyMismatch, hostport, strings.Join(h.fingerprints, ", "), pin)
	}
	if khErr != nil && !errors.As(khErr, &ke) {
		return fmt.Errorf("verify host key of %s: %w", hostport, khErr)
	}
	return fmt.Errorf("%w: %s is not in ssh_known_hosts: refusing to connect; %s, or add the output of `ssh-keyscan -t ed25519 %s` to ssh_known_hosts",
		ErrHostKeyUnknown, hostport, pin, keyscanArgs(hostport))
}

// Algorithms returns the host key algorithms to offer for hostport: only
// the types held, so the server cannot pick a type we have no key for
// (golang/go#29286). Nil means "the library's defaults" (fingerprints only).
func (h *HostKeys) Algorithms(hostport string, remote net.Addr) []string {
	if h.check == nil || len(h.fingerprints) > 0 {
		return nil
	}
	// Asking about a key that is surely not there makes knownhosts list
	// every key it holds for the host in KeyError.Want.
	var ke *knownhosts.KeyError
	if err := h.check(hostport, remote, probeKey{}); !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	for _, w := range ke.Want {
		switch t := w.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			algos = append(algos, t)
		}
	}
	slices.Sort(algos)
	return slices.Compact(algos)
}

func keyscanArgs(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || port == "22" {
		return strings.Trim(hostport, "[]")
	}
	return "-p " + port + " " + host
}

// probeKey is a public key no host has.
type probeKey struct{}

func (probeKey) Type() string                        { return "sba-probe" }
func (probeKey) Marshal() []byte                     { return []byte("\x00\x00\x00\x09sba-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe") }
