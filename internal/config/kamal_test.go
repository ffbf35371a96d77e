package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kamalFixture reads paths relative to a deploy.yml fixture of package kamal.
func kamalFixture(dir string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		return os.ReadFile(filepath.Join("..", "kamal", "testdata", dir, p))
	}
}

// resolveGiven resolves as the Action does: given holds the inputs the
// user set; the rest come from defaults.
func resolveGiven(given map[string]string) (map[string]string, func(string) bool) {
	lookup := func(n string) (string, bool) { v, ok := given[n]; return v, ok && v != "" }
	isGiven := func(n string) bool { _, ok := lookup(n); return ok }
	return Resolve(lookup, func(string) string { return "" }, nil), isGiven
}

func TestApplyKamal(t *testing.T) {
	cases := []struct {
		name    string
		fixture string
		given   map[string]string
		env     map[string]string
		want    map[string]string
		wantErr []string
	}{
		{name: "off: nothing read", fixture: "nowhere", given: map[string]string{},
			want: map[string]string{"ssh_host": "", "ssh_user": DefaultSSHUser, "ssh_port": DefaultSSHPort, "remote_path": DefaultRemotePath}},
		{name: "rails 8 template fills everything", fixture: "single-host", given: map[string]string{"kamal": "true"},
			want: map[string]string{"ssh_host": "192.168.0.1", "ssh_user": "root", "ssh_port": "22", "ssh_jump_host": "",
				"remote_path": "/var/lib/docker/volumes/myapp_storage/_data"}},
		{name: "explicit inputs win", fixture: "roles",
			given: map[string]string{"kamal": "true", "ssh_host": "10.9.9.9", "ssh_port": "22", "remote_path": "/data"},
			want:  map[string]string{"ssh_host": "10.9.9.9", "ssh_user": "deploy", "ssh_port": "22", "remote_path": "/data"}},
		{name: "destination implies kamal", fixture: "destinations", given: map[string]string{"kamal_destination": "staging"},
			want: map[string]string{"ssh_host": "crm-staging.example.com", "ssh_user": "app", "ssh_port": "2200",
				"remote_path": "/var/lib/docker/volumes/crm_staging_storage/_data"}},
		{name: "proxy becomes the jump host", fixture: "proxy", given: map[string]string{"kamal": "true"},
			want: map[string]string{"ssh_host": "10.10.0.5", "ssh_jump_host": "root@bastion.corp.example.com"}},
		{name: "explicit jump host wins over ssh.proxy", fixture: "proxy", given: map[string]string{"kamal": "true", "ssh_jump_host": "ops@j2"},
			want: map[string]string{"ssh_jump_host": "ops@j2"}},
		{name: "an unset env read names the input and the key", fixture: "erb", given: map[string]string{"kamal": "true"},
			env:     map[string]string{"KAMAL_SSH_PORT": "22"},
			wantErr: []string{"input ssh_host: from kamal: config/deploy.yml: servers.web[0]: ERB <%= ENV[\"WEB_HOST\"] %> reads env WEB_HOST, which is not set"}},
		{name: "an unreadable key is skipped when its input is given", fixture: "erb",
			given: map[string]string{"kamal": "true", "ssh_host": "h", "ssh_port": "2"}, env: map[string]string{},
			want: map[string]string{"ssh_host": "h", "ssh_user": "deploy", "ssh_port": "2", "remote_path": "/var/lib/docker/volumes/billing_storage/_data"}},
		{name: "kamal_config points elsewhere", fixture: "nowhere", given: map[string]string{"kamal": "true", "kamal_config": "../list/config/deploy.yml"},
			want: map[string]string{"ssh_host": "blog.example.com", "remote_path": "/var/lib/docker/volumes/blog_storage/_data"}},
		{name: "prune never reads it", fixture: "nowhere", given: map[string]string{"kamal": "true", "command": CommandPrune},
			want: map[string]string{"ssh_host": "", "remote_path": DefaultRemotePath}},
		{name: "restore reads it", fixture: "list", given: map[string]string{"kamal": "true", "command": CommandRestore},
			want: map[string]string{"ssh_host": "blog.example.com"}},
		{name: "missing deploy.yml", fixture: "nowhere", given: map[string]string{"kamal": "true"},
			wantErr: []string{"input kamal: from kamal: read kamal config", "config/deploy.yml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vals, given := resolveGiven(tc.given)
			err := ApplyKamal(vals, given, kamalFixture(tc.fixture), func(k string) string { return tc.env[k] })
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error\n%v\nlacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				if got := vals[k]; got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestApplyKamalNoStorageVolume: remote_path has nowhere to come from.
func TestApplyKamalNoStorageVolume(t *testing.T) {
	vals, given := resolveGiven(map[string]string{"kamal": "true"})
	read := func(string) ([]byte, error) { return []byte("servers: [h]\nvolumes: [\"data:/data\"]\n"), nil }
	err := ApplyKamal(vals, given, read, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "input remote_path: not given, and no volume in config/deploy.yml is mounted at /rails/storage") {
		t.Fatalf("error %v", err)
	}
}

// TestKamalThenFromValues: the values Kamal fills are validated like
// given ones: a jump host from ssh.proxy needs its host key.
func TestKamalThenFromValues(t *testing.T) {
	vals, given := resolveGiven(map[string]string{"kamal": "true", "bucket": "b", "ssh_private_key": "k",
		"ssh_known_hosts": "10.10.0.5 ssh-ed25519 AAAA"})
	if err := ApplyKamal(vals, given, kamalFixture("proxy"), func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	_, err := FromValues(vals, ReadFile)
	if err == nil || !strings.Contains(err.Error(), "input ssh_jump_known_hosts: required with ssh_jump_host") {
		t.Fatalf("error %v, want the jump host's key to be required", err)
	}
	vals["ssh_jump_host_fingerprint"] = "SHA256:" + strings.Repeat("A", 43)
	c, err := FromValues(vals, ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.SSHHost != "10.10.0.5" || c.SSHUser != "deploy" || c.Jump == nil || c.Jump.Host != "bastion.corp.example.com" || c.Jump.User != "root" ||
		c.RemotePath != "/var/lib/docker/volumes/intranet_storage/_data" || !c.Kamal.Enabled || c.Kamal.Path != DefaultKamalConfig {
		t.Errorf("config %+v, jump %+v", c, c.Jump)
	}
}
