package remote

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newKey(t *testing.T, kind string) ssh.PublicKey {
	t.Helper()
	var pub any
	switch kind {
	case "ed25519":
		p, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = p
	case "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = &k.PublicKey
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestHostKeys(t *testing.T) {
	good := newKey(t, "ed25519")
	other := newKey(t, "ed25519")
	ec := newKey(t, "ecdsa")
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}
	const hostport = "127.0.0.1:2222"
	line := knownhosts.Line([]string{knownhosts.Normalize(hostport)}, good)
	hashed := knownhosts.Line([]string{knownhosts.HashHostname(knownhosts.Normalize(hostport))}, good)
	otherHostLine := knownhosts.Line([]string{"example.com"}, good)

	cases := []struct {
		name         string
		knownHosts   string
		fingerprints []string
		presented    ssh.PublicKey
		wantErr      error  // nil = accepted
		wantInMsg    string // the message must say this
	}{
		{"known_hosts match", line, nil, good, nil, ""},
		{"hashed known_hosts match", hashed, nil, good, nil, ""},
		{"known_hosts with comments and blanks", "# keyscan\n\n" + line + "\n", nil, good, nil, ""},
		{"known_hosts mismatch", line, nil, other, ErrHostKeyMismatch, ssh.FingerprintSHA256(other)},
		{"known_hosts other type is a mismatch", line, nil, ec, ErrHostKeyMismatch, "ssh_host_fingerprint: " + ssh.FingerprintSHA256(ec)},
		{"host not in known_hosts", otherHostLine, nil, good, ErrHostKeyUnknown, "ssh-keyscan -t ed25519 -p 2222 127.0.0.1"},
		{"fingerprint match", "", []string{ssh.FingerprintSHA256(good)}, good, nil, ""},
		{"fingerprint rotation, second matches", "", []string{ssh.FingerprintSHA256(other), ssh.FingerprintSHA256(good)}, good, nil, ""},
		{"fingerprint mismatch", "", []string{ssh.FingerprintSHA256(good)}, other, ErrHostKeyMismatch, ssh.FingerprintSHA256(other)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHostKeys(tc.knownHosts, tc.fingerprints)
			if err != nil {
				t.Fatalf("NewHostKeys: %v", err)
			}
			err = h.Callback(hostport, addr, tc.presented)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Errorf("message %q does not say %q", err, tc.wantInMsg)
			}
		})
	}
}

func TestHostKeysNeedsSomething(t *testing.T) {
	if _, err := NewHostKeys("  \n", nil); err == nil {
		t.Fatal("got nil, want an error when no host key is given")
	}
	if _, err := NewHostKeys("this is not a known_hosts line", nil); err == nil {
		t.Fatal("got nil, want a parse error")
	}
}

func TestAlgorithmsNarrowed(t *testing.T) {
	ed := newKey(t, "ed25519")
	ec := newKey(t, "ecdsa")
	const hostport = "127.0.0.1:2222"
	lines := knownhosts.Line([]string{knownhosts.Normalize(hostport)}, ed) + "\n" +
		knownhosts.Line([]string{knownhosts.Normalize(hostport)}, ec) + "\n" +
		knownhosts.Line([]string{"other.example"}, newKey(t, "ed25519"))
	h, err := NewHostKeys(lines, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(h.Algorithms(hostport, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}), ",")
	want := strings.Join([]string{ec.Type(), ed.Type()}, ",")
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
