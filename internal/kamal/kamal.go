// Package kamal reads what a backup needs from a Kamal config/deploy.yml:
// the first host of the primary role, the SSH user, port and jump host,
// the service name and where the app's /rails/storage volume lives on the
// host. It does no I/O of its own: the caller passes readFile and getenv.
package kamal

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kamal's own defaults, and where Docker keeps named volumes.
const (
	DefaultPrimaryRole = "web"
	DefaultSSHUser     = "root"
	DefaultSSHPort     = 22
	// ProxyUser is the user Kamal logs in to an ssh.proxy as when the value
	// names none (Kamal: "root@#{proxy}").
	ProxyUser = "root"
	// StorageMount is the container path of a Rails app's storage/.
	StorageMount = "/rails/storage"
	// DockerVolumes is where Docker keeps the data of named volumes.
	DockerVolumes = "/var/lib/docker/volumes"
)

// Config is what a backup needs from deploy.yml.
type Config struct {
	Service string
	Host    string // first host of the primary role
	Role    string // the primary role the host comes from
	SSHUser string
	SSHPort int
	// SSHProxy is the jump host as user@host[:port] (the user is always
	// filled in); empty without ssh.proxy.
	SSHProxy string
	// StoragePath is the host directory mounted at /rails/storage: the
	// named volume's _data directory, or a bind-mounted host path as is.
	// Empty when no volume maps /rails/storage.
	StoragePath string
	// Files are the files read, base config first.
	Files []string
}

// DestinationFile is the file Kamal merges over configPath for a
// destination: config/deploy.yml and staging give config/deploy.staging.yml.
func DestinationFile(configPath, destination string) string {
	ext := filepath.Ext(configPath)
	return strings.TrimSuffix(configPath, ext) + "." + destination + ext
}

// Field names one thing Load can read, so a caller reads only what it
// will use: a key the caller does not need cannot fail the load.
type Field string

// The fields of Config that Load reads.
const (
	FieldService Field = "service"
	FieldHost    Field = "host"
	FieldSSHUser Field = "ssh.user"
	FieldSSHPort Field = "ssh.port"
	FieldProxy   Field = "ssh.proxy"
	FieldStorage Field = "storage"
)

// AllFields lists every Field.
func AllFields() []Field {
	return []Field{FieldService, FieldHost, FieldSSHUser, FieldSSHPort, FieldProxy, FieldStorage}
}

// FieldError is a problem with one field: Key is the deploy.yml key,
// File the file or files (base + destination) it was read from.
type FieldError struct {
	Field Field
	File  string
	Key   string
	Err   error
}

func (e *FieldError) Error() string { return e.File + ": " + e.Key + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Options say which config to read and how.
type Options struct {
	Path        string // config/deploy.yml
	Destination string // "" or a destination name: Path's .<name>.yml is merged over Path
	Fields      []Field
	ReadFile    func(string) ([]byte, error)
	Getenv      func(string) string
}

// Load reads o.Path and, with a destination, the destination file merged
// over it (as kamal -d does: maps merge key by key, everything else is
// replaced), then the fields asked for. ERB tags that are plain
// environment reads (<%= ENV["X"] %>, <%= ENV.fetch("X", "default") %>)
// are evaluated with Getenv. A field whose key holds any other ERB, or
// reads a variable that is not set, fails with a *FieldError naming the
// key; every failing field is reported (errors.Join).
func Load(o Options) (*Config, error) {
	files := []string{o.Path}
	if o.Destination != "" {
		files = append(files, DestinationFile(o.Path, o.Destination))
	}
	merged := map[string]any{}
	erb := &erbTable{getenv: o.Getenv}
	for _, f := range files {
		b, err := o.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read kamal config: %w", err)
		}
		text, err := erb.expand(f, string(b))
		if err != nil {
			return nil, err
		}
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
			return nil, fmt.Errorf("parse %s: %w", f, err)
		}
		merged = deepMerge(merged, doc)
	}
	r := &reader{doc: merged, erb: erb, file: strings.Join(files, " + ")}
	c := &Config{Files: files}
	var errs []error
	for _, f := range o.Fields {
		var err error
		switch f {
		case FieldService:
			c.Service, err = r.optionalString("service")
		case FieldHost:
			c.Role, c.Host, err = r.primaryHost()
		case FieldSSHUser:
			c.SSHUser, err = r.optionalString("ssh", "user")
			if c.SSHUser == "" {
				c.SSHUser = DefaultSSHUser
			}
		case FieldSSHPort:
			c.SSHPort, err = r.port()
		case FieldProxy:
			c.SSHProxy, err = r.proxy()
		case FieldStorage:
			c.StoragePath, err = r.storage()
		default:
			err = r.errorf(string(f), "unknown field")
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Field = f
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// deepMerge merges over into base as ActiveSupport's deep_merge does.
func deepMerge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, ok1 := out[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			out[k] = deepMerge(bm, om)
			continue
		}
		out[k] = v
	}
	return out
}

// reader walks the merged document; every error names the key.
type reader struct {
	doc  map[string]any
	erb  *erbTable
	file string
}

func (r *reader) errorf(key, format string, args ...any) error {
	return &FieldError{File: r.file, Key: key, Err: fmt.Errorf(format, args...)}
}

// lookup follows keys from the top of the document; missing is nil.
func (r *reader) lookup(keys ...string) any {
	var v any = r.doc
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// scalar turns a YAML scalar into its text, with ERB placeholders resolved.
func (r *reader) scalar(key string, v any) (string, error) {
	var s string
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		s = v
	case int, int64, uint64, float64, bool:
		s = fmt.Sprint(v)
	default:
		return "", r.errorf(key, "is a %s, want a single value", kindOf(v))
	}
	s, err := r.erb.resolve(s)
	if err != nil {
		return "", r.errorf(key, "%w", err)
	}
	return strings.TrimSpace(s), nil
}

func (r *reader) optionalString(keys ...string) (string, error) {
	return r.scalar(strings.Join(keys, "."), r.lookup(keys...))
}

// primaryHost returns the first host of the primary role: servers as a
// list (the web role), or roles that are lists of hosts or {hosts: [...]}.
// A host may carry tags ({"1.2.3.4": [tag]}).
func (r *reader) primaryHost() (role, host string, err error) {
	role, err = r.optionalString("primary_role")
	if err != nil {
		return "", "", err
	}
	if role == "" {
		role = DefaultPrimaryRole
	}
	key := "servers"
	var hosts any
	switch s := r.lookup("servers").(type) {
	case nil:
		return role, "", r.errorf(key, "missing: deploy.yml names no servers")
	case []any:
		if role != DefaultPrimaryRole {
			return role, "", r.errorf("primary_role", "is %q but servers is a plain list (the %s role)", role, DefaultPrimaryRole)
		}
		hosts = s
	case map[string]any:
		key += "." + role
		rv, ok := s[role]
		if !ok {
			return role, "", r.errorf(key, "missing: the primary role %q has no servers (set primary_role to the role to back up from)", role)
		}
		hosts = rv
		if m, ok := rv.(map[string]any); ok {
			key += ".hosts"
			hosts = m["hosts"]
		}
	default:
		return role, "", r.errorf(key, "is a %s, want a list of hosts or a map of roles", kindOf(s))
	}
	list, ok := hosts.([]any)
	if !ok || len(list) == 0 {
		return role, "", r.errorf(key, "has no hosts")
	}
	key += "[0]"
	first := list[0]
	if m, ok := first.(map[string]any); ok && len(m) == 1 { // a tagged host: {host: [tags]}
		for k := range m {
			first = k
		}
	}
	host, err = r.scalar(key, first)
	if err != nil {
		return role, "", err
	}
	if host == "" || strings.ContainsAny(host, " /@") {
		return role, "", r.errorf(key, "%q is not a host name or address", host)
	}
	return role, host, nil
}

func (r *reader) port() (int, error) {
	s, err := r.optionalString("ssh", "port")
	if err != nil || s == "" {
		return DefaultSSHPort, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, r.errorf("ssh.port", "%q is not a port number", s)
	}
	return n, nil
}

// proxy returns ssh.proxy as user@host[:port]; ssh.proxy_command, which
// runs an arbitrary command, is refused.
func (r *reader) proxy() (string, error) {
	if pc, err := r.optionalString("ssh", "proxy_command"); err != nil || pc != "" {
		if err != nil {
			return "", err
		}
		return "", r.errorf("ssh.proxy_command", "proxy commands are not supported: give ssh_jump_host (user@host:port) instead")
	}
	p, err := r.optionalString("ssh", "proxy")
	if err != nil || p == "" {
		return "", err
	}
	if !strings.Contains(p, "@") {
		p = ProxyUser + "@" + p
	}
	if strings.ContainsAny(p, " /") {
		return "", r.errorf("ssh.proxy", "%q is not [user@]host[:port]", p)
	}
	return p, nil
}

// storage finds the volume mounted at /rails/storage.
func (r *reader) storage() (string, error) {
	vols, ok := r.lookup("volumes").([]any)
	if !ok {
		if v := r.lookup("volumes"); v != nil {
			return "", r.errorf("volumes", "is a %s, want a list of \"source:/container/path\"", kindOf(v))
		}
		return "", nil
	}
	for i, v := range vols {
		key := fmt.Sprintf("volumes[%d]", i)
		s, err := r.scalar(key, v)
		if err != nil {
			return "", err
		}
		parts := strings.Split(s, ":")
		if len(parts) < 2 || path.Clean(parts[1]) != StorageMount {
			continue
		}
		src := parts[0]
		switch {
		case path.IsAbs(src):
			return path.Clean(src), nil
		case src == "" || strings.Contains(src, "/"):
			return "", r.errorf(key, "%q: the source must be a volume name or an absolute host path", s)
		default:
			return path.Join(DockerVolumes, src, "_data"), nil
		}
	}
	return "", nil
}

func kindOf(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case map[string]any:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}
