// Package config holds the one Config every command reads, with two front
// doors: action inputs (INPUT_*) and CLI flags, each falling back to the
// environment variables the seed system used, then to defaults.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// Config is everything a run needs. Secrets are of type Secret.
type Config struct {
	Command string

	SSHHost                 string
	SSHPort                 int
	SSHUser                 string
	SSHPrivateKey           Secret
	SSHPrivateKeyPassphrase Secret
	SSHKnownHosts           string
	SSHHostFingerprints     []string
	ConnectTimeout          time.Duration
	Jump                    *Jump // nil without ssh_jump_host

	RemotePath    string
	Include       string
	RemoteTempDir string
	Compression   string

	Bucket          string
	Destination     string
	Prefix          string
	Environment     string
	Endpoint        string
	Region          string
	ForcePathStyle  bool
	AccessKeyID     Secret
	SecretAccessKey Secret
	PartSizeMiB     int
	Parallel        int
	SkipUnchanged   bool
	Retries         int
	HelperCache     bool
	ObjectLockDays  int    // 0: objects are not locked
	ObjectLockMode  string // GOVERNANCE or COMPLIANCE

	Encryption EncryptionConfig // age keys: recipients (backup), identities (restore, verify)

	Prune   PruneConfig   // prune, list, and backup with prune: true
	Restore RestoreConfig // restore and verify
	Kamal   KamalConfig   // defaults read from the app's config/deploy.yml
}

// Lookup returns the raw value given for an input, and whether one was
// given at all (an empty INPUT_X counts as not given, as on the runner).
type Lookup func(name string) (string, bool)

// Resolve applies input > environment fallbacks > default for every input
// and returns the raw values. secret is called once for each secret value
// found, before anything else happens with it (the action masks it there).
func Resolve(lookup Lookup, getenv func(string) string, secret func(string)) map[string]string {
	vals := map[string]string{}
	for _, in := range Inputs() {
		v, ok := lookup(in.Name)
		if !ok || v == "" {
			for _, e := range in.Env {
				if ev := getenv(e); ev != "" {
					v = ev
					break
				}
			}
		}
		if v == "" {
			v = in.Default
		}
		if in.Secret && v != "" && secret != nil {
			secret(v)
		}
		vals[in.Name] = v
	}
	return vals
}

// FromValues builds a Config from resolved values and validates it for its
// command, reporting every problem at once, each naming the input.
// readFile reads the *_path inputs (os.ReadFile outside tests).
func FromValues(vals map[string]string, readFile func(string) ([]byte, error)) (*Config, error) {
	var errs []error
	bad := func(input, format string, args ...any) {
		errs = append(errs, fmt.Errorf("input %s: "+format, append([]any{input}, args...)...))
	}
	intVal := func(name string, min, max int) int {
		n, err := strconv.Atoi(strings.TrimSpace(vals[name]))
		if err != nil || n < min || n > max {
			bad(name, "%q is not a whole number from %d to %d", vals[name], min, max)
		}
		return n
	}
	boolVal := func(name string) bool {
		b, ok := parseBool(vals[name])
		if !ok {
			bad(name, "%q is not true or false", vals[name])
		}
		return b
	}
	c := &Config{
		Command:                 strings.TrimSpace(vals["command"]),
		SSHHost:                 strings.TrimSpace(vals["ssh_host"]),
		SSHUser:                 strings.TrimSpace(vals["ssh_user"]),
		SSHPrivateKey:           Secret(vals["ssh_private_key"]),
		SSHPrivateKeyPassphrase: Secret(vals["ssh_private_key_passphrase"]),
		SSHKnownHosts:           vals["ssh_known_hosts"],
		RemotePath:              strings.TrimSpace(vals["remote_path"]),
		Include:                 strings.TrimSpace(vals["include"]),
		RemoteTempDir:           strings.TrimSpace(vals["remote_temp_dir"]),
		Compression:             strings.ToLower(strings.TrimSpace(vals["compression"])),
		Bucket:                  strings.TrimSpace(vals["bucket"]),
		Destination:             strings.TrimSpace(vals["destination"]),
		Prefix:                  strings.Trim(strings.TrimSpace(vals["prefix"]), "/"),
		Environment:             strings.TrimSpace(vals["environment"]),
		Endpoint:                strings.TrimSpace(vals["endpoint"]),
		Region:                  strings.TrimSpace(vals["region"]),
		ForcePathStyle:          boolVal("force_path_style"),
		SkipUnchanged:           boolVal("skip_unchanged"),
		HelperCache:             boolVal("helper_cache"),
		AccessKeyID:             Secret(strings.TrimSpace(vals["access_key_id"])),
		SecretAccessKey:         Secret(strings.TrimSpace(vals["secret_access_key"])),
		SSHPort:                 intVal("ssh_port", 1, 65535),
		PartSizeMiB:             intVal("part_size", 5, 5120),
		Parallel:                intVal("parallel", 1, 64),
		Retries:                 intVal("retries", 0, 10),
		ObjectLockDays:          intVal("object_lock_days", 0, 36500),
		ObjectLockMode:          strings.ToUpper(strings.TrimSpace(vals["object_lock_mode"])),
	}
	c.SSHHostFingerprints = parseFingerprints(vals["ssh_host_fingerprint"], "ssh_host_fingerprint", bad)
	c.Jump = parseJump(vals, bad)
	if d, err := time.ParseDuration(strings.TrimSpace(vals["connect_timeout"])); err != nil || d <= 0 {
		bad("connect_timeout", "%q is not a positive duration like 30s", vals["connect_timeout"])
	} else {
		c.ConnectTimeout = d
	}
	readInto := func(pathInput, valueInput string, dst *string) {
		p := strings.TrimSpace(vals[pathInput])
		if p == "" {
			return
		}
		if *dst != "" {
			bad(pathInput, "give %s or %s, not both", valueInput, pathInput)
			return
		}
		b, err := readFile(p)
		if err != nil {
			bad(pathInput, "read %s: %v", p, err)
			return
		}
		*dst = string(b)
	}
	key := string(c.SSHPrivateKey)
	readInto("ssh_private_key_path", "ssh_private_key", &key)
	c.SSHPrivateKey = Secret(key)
	readInto("ssh_known_hosts_path", "ssh_known_hosts", &c.SSHKnownHosts)

	errs = append(errs, c.Prune.parse(vals)...)
	errs = append(errs, c.Restore.parse(vals)...)
	errs = append(errs, c.Encryption.parse(vals, readFile)...)
	errs = append(errs, c.Kamal.parse(vals)...)
	errs = append(errs, c.validate()...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) validate() []error {
	var errs []error
	bad := func(input, format string, args ...any) {
		errs = append(errs, fmt.Errorf("input %s: "+format, append([]any{input}, args...)...))
	}
	switch c.Command {
	case CommandBackup, CommandPrune, CommandRestore, CommandVerify, CommandList:
	default:
		bad("command", "%q is not one of backup, prune, restore, verify, list", c.Command)
	}
	if c.Bucket == "" && c.Destination == "" {
		bad("bucket", "required (or set destination: file:///dir); env BACKUP_BUCKET, DO_SPACES_BACKUP_BUCKET and DO_SPACES_BUCKET are also read")
	}
	if c.Bucket != "" && c.Destination != "" {
		bad("destination", "give bucket or destination, not both")
	}
	if c.Destination != "" && !strings.HasPrefix(c.Destination, "file://") {
		bad("destination", "%q must be a file:///absolute/dir URL", c.Destination)
	}
	if c.Environment == "" || strings.Contains(c.Environment, "/") || strings.Contains(c.Environment, "..") {
		bad("environment", "%q must be a plain name like production", c.Environment)
	}
	if strings.Contains(c.Prefix, "..") {
		bad("prefix", "%q must not contain ..", c.Prefix)
	}
	if c.Bucket != "" && c.SecretAccessKey.IsSet() != c.AccessKeyID.IsSet() {
		bad("access_key_id", "access_key_id and secret_access_key go together: one of them is missing")
	}
	if c.Command == CommandBackup {
		errs = append(errs, c.validateSource()...)
	}
	if c.ObjectLockDays > 0 && c.ObjectLockMode != "GOVERNANCE" && c.ObjectLockMode != "COMPLIANCE" {
		bad("object_lock_mode", "%q is not GOVERNANCE or COMPLIANCE", c.ObjectLockMode)
	}
	if c.ObjectLockDays > 0 && c.Destination != "" {
		bad("object_lock_days", "Object Lock needs an S3 bucket; destination %s cannot lock objects", c.Destination)
	}
	return errs
}

func (c *Config) validateSource() []error {
	var errs []error
	bad := func(input, format string, args ...any) {
		errs = append(errs, fmt.Errorf("input %s: "+format, append([]any{input}, args...)...))
	}
	switch c.Compression {
	case "zstd", "gzip", "none":
	default:
		bad("compression", "%q is not zstd, gzip or none", c.Compression)
	}
	if c.Include == "" || strings.Contains(c.Include, "/") {
		bad("include", "%q must be a file name glob without a slash, like *.sqlite3", c.Include)
	} else if _, err := path.Match(c.Include, "x"); err != nil {
		bad("include", "%q is not a valid glob: %v", c.Include, err)
	}
	if c.RemotePath == "" {
		bad("remote_path", "required")
	}
	if c.SSHHost == "" {
		return errs
	}
	if strings.ContainsAny(c.SSHHost, " /\n") {
		bad("ssh_host", "%q is not a host name or address", c.SSHHost)
	}
	if c.SSHUser == "" {
		bad("ssh_user", "required with ssh_host")
	}
	if !c.SSHPrivateKey.IsSet() {
		bad("ssh_private_key", "required with ssh_host")
	}
	if strings.TrimSpace(c.SSHKnownHosts) == "" && len(c.SSHHostFingerprints) == 0 {
		bad("ssh_known_hosts", "required with ssh_host (or ssh_host_fingerprint); get it with `ssh-keyscan -t ed25519 %s` and check it out of band", c.SSHHost)
	}
	if !path.IsAbs(c.RemoteTempDir) {
		bad("remote_temp_dir", "%q must be an absolute path", c.RemoteTempDir)
	}
	return errs
}

// Jump is a bastion host the SSH connection goes through.
type Jump struct {
	Host         string
	Port         int
	User         string
	KnownHosts   string
	Fingerprints []string
	PrivateKey   Secret // empty: use ssh_private_key
}

// parseJump reads ssh_jump_host as [user@]host[:port] and its host keys.
func parseJump(vals map[string]string, bad func(input, format string, args ...any)) *Jump {
	spec := strings.TrimSpace(vals["ssh_jump_host"])
	if spec == "" {
		return nil
	}
	j := &Jump{Port: 22, User: strings.TrimSpace(vals["ssh_user"]), KnownHosts: vals["ssh_jump_known_hosts"],
		PrivateKey: Secret(vals["ssh_jump_private_key"])}
	if u, rest, ok := strings.Cut(spec, "@"); ok {
		j.User, spec = u, rest
	}
	j.Host = spec
	if h, p, err := net.SplitHostPort(spec); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			bad("ssh_jump_host", "%q has a bad port", vals["ssh_jump_host"])
		}
		j.Host, j.Port = h, n
	}
	if j.Host == "" || j.User == "" || strings.ContainsAny(j.Host, " /\n") {
		bad("ssh_jump_host", "%q is not user@host:port", vals["ssh_jump_host"])
	}
	j.Fingerprints = parseFingerprints(vals["ssh_jump_host_fingerprint"], "ssh_jump_host_fingerprint", bad)
	if strings.TrimSpace(j.KnownHosts) == "" && len(j.Fingerprints) == 0 {
		bad("ssh_jump_known_hosts", "required with ssh_jump_host (or ssh_jump_host_fingerprint): the jump host's key is verified too")
	}
	return j
}

func parseFingerprints(v, input string, bad func(input, format string, args ...any)) []string {
	var out []string
	for _, fp := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' || r == ' ' }) {
		if !strings.HasPrefix(fp, "SHA256:") || len(fp) < 20 {
			bad(input, "%q is not a SHA256:... fingerprint (as printed by ssh-keygen -lf)", fp)
			continue
		}
		out = append(out, fp)
	}
	return out
}

// ReadFile is the readFile to pass to FromValues outside tests.
func ReadFile(p string) ([]byte, error) { return os.ReadFile(p) }

// parseBool reads a boolean input: true/1/yes/on or false/0/no/off, any
// case; empty is false. ok is false for anything else.
func parseBool(v string) (b, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "false", "0", "no", "off":
		return false, true
	case "true", "1", "yes", "on":
		return true, true
	}
	return false, false
}
