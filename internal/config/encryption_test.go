package config

import (
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"
)

func TestEncryptionInputs(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	secret, pub := id.String(), id.Recipient().String()
	keyFile := func(p string) ([]byte, error) {
		if p == "/keys/age.txt" {
			return []byte("# created: today\n# public key: " + pub + "\n" + secret + "\n"), nil
		}
		return noFiles(p)
	}
	cases := []struct {
		name    string
		inputs  map[string]string
		wantErr string // "" = valid
		check   func(t *testing.T, c *Config)
	}{
		{name: "no encryption", inputs: map[string]string{}, check: func(t *testing.T, c *Config) {
			if c.Encryption.Recipients != nil || c.Encryption.Identities != nil {
				t.Error("keys set without inputs")
			}
		}},
		{name: "recipients", inputs: map[string]string{"encryption_recipients": pub + ",\n" + pub}, check: func(t *testing.T, c *Config) {
			if got := c.Encryption.Recipients.Strings(); len(got) != 1 || got[0] != pub {
				t.Errorf("recipients %v", got)
			}
		}},
		{name: "private key as recipient", inputs: map[string]string{"encryption_recipients": secret},
			wantErr: "input encryption_recipients: entry 1 is a private key"},
		{name: "identity is ignored by backup", inputs: map[string]string{"encryption_identity": "junk"}},
		{name: "identity", inputs: map[string]string{"command": "verify", "encryption_identity": secret}, check: func(t *testing.T, c *Config) {
			if got := c.Encryption.Identities.Recipients(); len(got) != 1 || got[0] != pub {
				t.Errorf("identity is for %v", got)
			}
			if s := fmt.Sprintf("%v %+v %#v", c.Encryption.Identities, c.Encryption, c.Encryption); strings.Contains(s, secret[20:]) {
				t.Error("the identity prints itself")
			}
		}},
		{name: "identity file", inputs: map[string]string{"command": "restore", "confirm": "YES", "encryption_identity_path": "/keys/age.txt"},
			check: func(t *testing.T, c *Config) {
				if c.Encryption.Identities == nil {
					t.Error("no identity read")
				}
			}},
		{name: "both identity inputs", inputs: map[string]string{"command": "verify", "encryption_identity": secret, "encryption_identity_path": "/keys/age.txt"},
			wantErr: "not both"},
		{name: "identity file missing", inputs: map[string]string{"command": "verify", "encryption_identity_path": "/nope"},
			wantErr: "input encryption_identity_path: read /nope"},
		{name: "public key as identity", inputs: map[string]string{"command": "verify", "encryption_identity": pub},
			wantErr: "input encryption_identity: entry 1 is a public key"},
		{name: "recipients ignored by verify", inputs: map[string]string{"command": "verify", "encryption_recipients": "junk"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := sshInputs()
			in["command"] = "backup"
			for k, v := range tc.inputs {
				in[k] = v
			}
			c, err := FromValues(resolve(in, nil), keyFile)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.check != nil {
					tc.check(t, c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), secret[20:]) {
				t.Errorf("the error repeats the private key: %v", err)
			}
		})
	}
}
