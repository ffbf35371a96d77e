package remote

import (
	"net"
	"testing"
)

// FuzzNewHostKeys: any known_hosts text or fingerprint either fails to
// parse or gives a checker that never accepts a key it does not hold.
func FuzzNewHostKeys(f *testing.F) {
	f.Add("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGn0lXbQyF1Vd+8r1/9oQ0b0Yb6Yw9YF3yF0C1m2xF0a", "")
	f.Add("|1|abc=|def= ssh-rsa AAAA", "SHA256:abc")
	f.Add("@revoked * ssh-ed25519 AAAA", "")
	f.Add("", "SHA256:0000000000000000000000000000000000000000000")
	f.Fuzz(func(t *testing.T, lines, fingerprint string) {
		var fps []string
		if fingerprint != "" {
			fps = []string{fingerprint}
		}
		h, err := NewHostKeys(lines, fps)
		if err != nil {
			return
		}
		addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}
		if err := h.Callback("127.0.0.1:2222", addr, probeKey{}); err == nil {
			t.Fatalf("accepted a key no known_hosts line or fingerprint holds")
		}
		_ = h.Algorithms("127.0.0.1:2222", addr)
	})
}
