package kamal_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/kamal"
)

const deployYML = "config/deploy.yml"

// readFrom reads paths relative to testdata/<dir>, as the action reads
// them relative to the workspace.
func readFrom(dir string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) { return os.ReadFile(filepath.Join("testdata", dir, p)) }
}

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// TestLoadFixtures reads deploy.yml files of the shapes found in the wild.
func TestLoadFixtures(t *testing.T) {
	cases := []struct {
		name        string
		dir         string
		destination string
		env         map[string]string
		want        kamal.Config
	}{
		{name: "rails 8 generated, single host", dir: "single-host", want: kamal.Config{
			Service: "myapp", Host: "192.168.0.1", Role: "web", SSHUser: "root", SSHPort: 22,
			StoragePath: "/var/lib/docker/volumes/myapp_storage/_data", Files: []string{deployYML}}},
		{name: "roles with hosts, tags, anchors, ssh user and port, bind mount", dir: "roles", want: kamal.Config{
			Service: "shop", Host: "10.0.1.10", Role: "web", SSHUser: "deploy", SSHPort: 2222,
			StoragePath: "/srv/shop/storage", Files: []string{deployYML}}},
		{name: "servers as a plain list", dir: "list", want: kamal.Config{
			Service: "blog", Host: "blog.example.com", Role: "web", SSHUser: "root", SSHPort: 22,
			StoragePath: "/var/lib/docker/volumes/blog_storage/_data", Files: []string{deployYML}}},
		{name: "base without destination", dir: "destinations", want: kamal.Config{
			Service: "crm", Host: "crm-1.example.com", Role: "web", SSHUser: "app", SSHPort: 22,
			StoragePath: "/var/lib/docker/volumes/crm_storage/_data", Files: []string{deployYML}}},
		{name: "destination merged over base", dir: "destinations", destination: "staging", want: kamal.Config{
			Service: "crm", Host: "crm-staging.example.com", Role: "web", SSHUser: "app", SSHPort: 2200,
			StoragePath: "/var/lib/docker/volumes/crm_staging_storage/_data",
			Files:       []string{deployYML, "config/deploy.staging.yml"}}},
		{name: "ssh proxy without a user logs in as root", dir: "proxy", want: kamal.Config{
			Service: "intranet", Host: "10.10.0.5", Role: "web", SSHUser: "deploy", SSHPort: 22,
			SSHProxy: "root@bastion.corp.example.com", StoragePath: "/var/lib/docker/volumes/intranet_storage/_data",
			Files: []string{deployYML}}},
		{name: "erb environment reads", dir: "erb",
			env: map[string]string{"WEB_HOST": "billing.example.com", "KAMAL_SSH_PORT": "2022", "SERVICE_NAME": "bill"},
			want: kamal.Config{Service: "bill", Host: "billing.example.com", Role: "web", SSHUser: "deploy", SSHPort: 2022,
				StoragePath: "/var/lib/docker/volumes/bill_storage/_data", Files: []string{deployYML}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kamal.Load(kamal.Options{Path: deployYML, Destination: tc.destination, Fields: kamal.AllFields(),
				ReadFile: readFrom(tc.dir), Getenv: getenv(tc.env)})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

// TestLoadErrors: what cannot be read fails clearly, naming the key; a key
// that is not asked for cannot fail the load.
func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name        string
		dir         string
		destination string
		fields      []kamal.Field
		env         map[string]string
		want        []string
		wantField   kamal.Field
	}{
		{name: "unset env in the host", dir: "erb", fields: []kamal.Field{kamal.FieldHost},
			want:      []string{"config/deploy.yml: servers.web[0]: ", `ERB <%= ENV["WEB_HOST"] %> reads env WEB_HOST, which is not set`},
			wantField: kamal.FieldHost},
		{name: "unset env fetched without default", dir: "erb", fields: []kamal.Field{kamal.FieldSSHPort},
			want: []string{"ssh.port: ", `ENV.fetch("KAMAL_SSH_PORT")`, "KAMAL_SSH_PORT, which is not set"}, wantField: kamal.FieldSSHPort},
		{name: "ruby code in a key not asked for", dir: "erb", fields: []kamal.Field{kamal.FieldHost, kamal.FieldSSHUser},
			env: map[string]string{"WEB_HOST": "h"}, want: nil},
		{name: "erb control code", dir: "erb-code", fields: []kamal.Field{kamal.FieldStorage},
			want: []string{"config/deploy.yml line 5: ERB code", "cannot be evaluated without Ruby"}},
		{name: "missing destination file", dir: "single-host", destination: "staging", fields: kamal.AllFields(),
			want: []string{"read kamal config", "deploy.staging.yml"}},
		{name: "missing config", dir: "nowhere", fields: kamal.AllFields(), want: []string{"read kamal config", "config/deploy.yml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kamal.Load(kamal.Options{Path: deployYML, Destination: tc.destination, Fields: tc.fields,
				ReadFile: readFrom(tc.dir), Getenv: getenv(tc.env)})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.wantField != "" {
				var fe *kamal.FieldError
				if !errors.As(err, &fe) || fe.Field != tc.wantField {
					t.Errorf("error %v is not a FieldError for %s", err, tc.wantField)
				}
			}
		})
	}
}

// TestLoadInline covers shapes too small for a fixture file each.
func TestLoadInline(t *testing.T) {
	cases := []struct {
		name, yml string
		want      kamal.Config
		wantErr   string
	}{
		{name: "primary role", yml: "primary_role: workers\nservers:\n  web: [w1]\n  workers:\n    hosts: [j1, j2]\n",
			want: kamal.Config{Host: "j1", Role: "workers"}},
		{name: "primary role missing", yml: "servers:\n  job: [j1]\n", wantErr: "servers.web: missing: the primary role \"web\" has no servers"},
		{name: "no servers", yml: "service: x\n", wantErr: "servers: missing"},
		{name: "empty host list", yml: "servers:\n  web:\n    hosts: []\n", wantErr: "servers.web.hosts: has no hosts"},
		{name: "proxy with user and port", yml: "servers: [h]\nssh:\n  proxy: ops@jump.example.com:2201\n",
			want: kamal.Config{Host: "h", Role: "web", SSHProxy: "ops@jump.example.com:2201"}},
		{name: "proxy command refused", yml: "servers: [h]\nssh:\n  proxy_command: ssh -W %h:%p bastion\n", wantErr: "ssh.proxy_command: proxy commands are not supported"},
		{name: "bad port", yml: "servers: [h]\nssh:\n  port: ssh\n", wantErr: `ssh.port: "ssh" is not a port number`},
		{name: "relative bind mount", yml: "servers: [h]\nvolumes:\n  - ./storage:/rails/storage\n", wantErr: "volumes[0]"},
		{name: "no storage volume", yml: "servers: [h]\nvolumes:\n  - data:/data\n", want: kamal.Config{Host: "h", Role: "web"}},
		{name: "host is a map", yml: "servers:\n  web:\n    - {a: 1, b: 2}\n", wantErr: "servers.web[0]: is a map"},
		{name: "ruby code in the host", yml: "servers:\n  - <%= Socket.gethostname %>\n",
			wantErr: "servers[0]: ERB <%= Socket.gethostname %> is Ruby code, which cannot be evaluated here"},
		{name: "literal erb", yml: "service: \"<%%= x %>\"\nservers: [h]\n", want: kamal.Config{Service: "<%= x %>", Host: "h", Role: "web"}},
	}
	fields := []kamal.Field{kamal.FieldService, kamal.FieldHost, kamal.FieldSSHPort, kamal.FieldProxy, kamal.FieldStorage}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			read := func(string) ([]byte, error) { return []byte(tc.yml), nil }
			got, err := kamal.Load(kamal.Options{Path: deployYML, Fields: fields, ReadFile: read, Getenv: getenv(nil)})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Files, tc.want.SSHPort = []string{deployYML}, kamal.DefaultSSHPort
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

// TestLoadReportsEveryField: two broken keys give two errors.
func TestLoadReportsEveryField(t *testing.T) {
	_, err := kamal.Load(kamal.Options{Path: deployYML, Fields: kamal.AllFields(), ReadFile: readFrom("erb"), Getenv: getenv(nil)})
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"servers.web[0]", "ssh.port"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %s:\n%v", w, err)
		}
	}
}

func TestDestinationFile(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"config/deploy.yml", "staging"}: "config/deploy.staging.yml",
		{"deploy/app.yaml", "eu"}:        "deploy/app.eu.yaml",
		{"/w/config/deploy.yml", "prod"}: "/w/config/deploy.prod.yml",
	} {
		if got := kamal.DestinationFile(in[0], in[1]); got != want {
			t.Errorf("DestinationFile(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
}
