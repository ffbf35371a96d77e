package config

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func resolve(inputs, env map[string]string) map[string]string {
	return Resolve(func(n string) (string, bool) { v, ok := inputs[n]; return v, ok },
		func(k string) string { return env[k] }, nil)
}

func noFiles(p string) ([]byte, error) { return nil, fmt.Errorf("open %s: %w", p, fs.ErrNotExist) }

func sshInputs() map[string]string {
	return map[string]string{
		"ssh_host": "app.example.com", "ssh_private_key": "KEY-9f3a", "ssh_known_hosts": "app.example.com ssh-ed25519 AAAA",
		"bucket": "b", "access_key_id": "AK-c02e", "secret_access_key": "SK-77b1",
	}
}

func TestFromValuesErrorsNameTheInput(t *testing.T) {
	cases := []struct {
		name    string
		change  func(m map[string]string)
		env     map[string]string
		wantErr []string // each must appear; nil = valid
	}{
		{"valid", func(map[string]string) {}, nil, nil},
		{"missing bucket", func(m map[string]string) { delete(m, "bucket") }, nil, []string{"input bucket: required"}},
		{"bucket from DO_SPACES_BUCKET", func(m map[string]string) { delete(m, "bucket") }, map[string]string{"DO_SPACES_BUCKET": "x"}, nil},
		{"missing key and known hosts", func(m map[string]string) { delete(m, "ssh_private_key"); delete(m, "ssh_known_hosts") },
			nil, []string{"input ssh_private_key: required", "input ssh_known_hosts: required", "ssh-keyscan -t ed25519 app.example.com"}},
		{"fingerprint instead of known hosts", func(m map[string]string) {
			delete(m, "ssh_known_hosts")
			m["ssh_host_fingerprint"] = "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
		}, nil, nil},
		{"bad fingerprint", func(m map[string]string) { m["ssh_host_fingerprint"] = "MD5:aa:bb" }, nil, []string{"input ssh_host_fingerprint"}},
		{"bad port", func(m map[string]string) { m["ssh_port"] = "http" }, nil, []string{"input ssh_port"}},
		{"bad compression", func(m map[string]string) { m["compression"] = "xz" }, nil, []string{"input compression"}},
		{"include with slash", func(m map[string]string) { m["include"] = "../*.sqlite3" }, nil, []string{"input include"}},
		{"relative temp dir", func(m map[string]string) { m["remote_temp_dir"] = "tmp" }, nil, []string{"input remote_temp_dir"}},
		{"half credentials", func(m map[string]string) { delete(m, "secret_access_key") }, nil, []string{"input access_key_id"}},
		{"bad command", func(m map[string]string) { m["command"] = "nuke" }, nil, []string{"input command"}},
		{"bucket and destination", func(m map[string]string) { m["destination"] = "file:///x" }, nil, []string{"input destination"}},
		{"destination not file", func(m map[string]string) { delete(m, "bucket"); m["destination"] = "s3://x" }, nil, []string{"input destination"}},
		{"local source needs no ssh", func(m map[string]string) {
			delete(m, "ssh_host")
			delete(m, "ssh_private_key")
			delete(m, "ssh_known_hosts")
		}, nil, nil},
		{"key path unreadable", func(m map[string]string) { delete(m, "ssh_private_key"); m["ssh_private_key_path"] = "/nope" }, nil, []string{"input ssh_private_key_path: read /nope"}},
		{"every problem at once", func(m map[string]string) { delete(m, "bucket"); m["ssh_port"] = "0"; m["compression"] = "xz" },
			nil, []string{"input bucket", "input ssh_port", "input compression"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := sshInputs()
			tc.change(in)
			_, err := FromValues(resolve(in, tc.env), noFiles)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got valid, want errors %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestEnvFallbackOrder(t *testing.T) {
	cases := []struct {
		name   string
		input  string
		env    map[string]string
		field  func(*Config) string
		want   string
		inputs map[string]string
	}{
		{"bucket BACKUP_BUCKET first", "bucket", map[string]string{"BACKUP_BUCKET": "a", "DO_SPACES_BACKUP_BUCKET": "b", "DO_SPACES_BUCKET": "c"}, func(c *Config) string { return c.Bucket }, "a", nil},
		{"bucket DO_SPACES_BACKUP_BUCKET second", "bucket", map[string]string{"DO_SPACES_BACKUP_BUCKET": "b", "DO_SPACES_BUCKET": "c"}, func(c *Config) string { return c.Bucket }, "b", nil},
		{"input beats env", "bucket", map[string]string{"BACKUP_BUCKET": "a"}, func(c *Config) string { return c.Bucket }, "in", map[string]string{"bucket": "in"}},
		{"RAILS_ENV", "environment", map[string]string{"RAILS_ENV": "staging"}, func(c *Config) string { return c.Environment }, "staging", nil},
		{"environment default", "environment", nil, func(c *Config) string { return c.Environment }, DefaultEnvironment, nil},
		{"BACKUP_PREFIX", "prefix", map[string]string{"BACKUP_PREFIX": "/x/"}, func(c *Config) string { return c.Prefix }, "x", nil},
		{"AWS region first", "region", map[string]string{"AWS_REGION": "eu-west-1", "DO_SPACES_REGION": "nyc3"}, func(c *Config) string { return c.Region }, "eu-west-1", nil},
		{"DO region", "region", map[string]string{"DO_SPACES_REGION": "nyc3"}, func(c *Config) string { return c.Region }, "nyc3", nil},
		{"DO endpoint", "endpoint", map[string]string{"DO_SPACES_ENDPOINT": "https://nyc3.digitaloceanspaces.com"}, func(c *Config) string { return c.Endpoint }, "https://nyc3.digitaloceanspaces.com", nil},
		{"DO key", "access_key_id", map[string]string{"DO_SPACES_ACCESS_KEY_ID": "dk", "DO_SPACES_SECRET_ACCESS_KEY": "ds"}, func(c *Config) string { return c.AccessKeyID.Reveal() + "/" + c.SecretAccessKey.Reveal() }, "dk/ds", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]string{"destination": "file:///tmp/x", "command": "list"}
			for k, v := range tc.inputs {
				in[k] = v
			}
			if tc.input == "bucket" {
				delete(in, "destination")
			}
			c, err := FromValues(resolve(in, tc.env), noFiles)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.field(c); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	c, err := FromValues(resolve(sshInputs(), nil), noFiles)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		for _, secret := range []string{"KEY-9f3a", "SK-77b1", "AK-c02e"} {
			if strings.Contains(s, secret) {
				t.Errorf("secret %q printed in %s", secret, s)
			}
		}
	}
	var masked []string
	Resolve(func(n string) (string, bool) { v, ok := sshInputs()[n]; return v, ok }, func(string) string { return "" },
		func(s string) { masked = append(masked, s) })
	if got, want := strings.Join(masked, ","), "KEY-9f3a,AK-c02e,SK-77b1"; got != want {
		t.Errorf("masked %q, want %q", got, want)
	}
}
