package config

// Input describes one input: its snake_case name (the action input and, in
// kebab-case, the CLI flag), default, environment fallbacks and which
// commands read it. action.yml and the README table are checked against
// this list by tests, so the three cannot drift.
type Input struct {
	Name        string
	Default     string
	Env         []string // fallbacks, first set wins, after the input itself
	Secret      bool     // masked the moment it is read, never printed
	Bool        bool     // a CLI switch (--flag means true)
	Commands    []string // commands that read it; empty = every command
	Description string
}

// Commands the tool knows.
const (
	CommandBackup  = "backup"
	CommandPrune   = "prune"
	CommandRestore = "restore"
	CommandVerify  = "verify"
	CommandList    = "list"
	CommandDemo    = "demo"
)

// Defaults, named so code and docs share them.
const (
	DefaultSSHPort        = "22"
	DefaultSSHUser        = "root"
	DefaultRemotePath     = "storage"
	DefaultInclude        = "*.sqlite3"
	DefaultPrefix         = "db_backups"
	DefaultEnvironment    = "production"
	DefaultCompression    = "zstd"
	DefaultRemoteTempDir  = "/var/tmp"
	DefaultConnectTimeout = "30s"
	DefaultPartSize       = "5"
	DefaultParallel       = "4"
	DefaultRetries        = "3"
	DefaultObjectLockMode = "GOVERNANCE"
)

// Inputs returns every input the tool reads, in documentation order.
func Inputs() []Input {
	in := commonInputs()
	in = append(in, encryptionInputs()...)
	in = append(in, pruneInputs()...)
	in = append(in, restoreInputs()...)
	in = append(in, kamalInputs()...)
	return in
}

// commonInputs are read by backup and (the connection and store ones) by
// every other command.
func commonInputs() []Input {
	return []Input{
		{Name: "command", Default: CommandBackup, Description: "What to run: backup, prune, restore, verify or list."},
		{Name: "ssh_host", Description: "Host holding the databases. Empty: remote_path is a local directory (no SSH)."},
		{Name: "ssh_port", Default: DefaultSSHPort, Description: "SSH port."},
		{Name: "ssh_user", Default: DefaultSSHUser, Description: "SSH user."},
		{Name: "ssh_private_key", Secret: true, Description: "Private key (OpenSSH or PEM; ed25519, ECDSA or RSA)."},
		{Name: "ssh_private_key_path", Description: "Path of a private key file, instead of ssh_private_key (CLI use)."},
		{Name: "ssh_private_key_passphrase", Secret: true, Description: "Passphrase of the private key, if it has one."},
		{Name: "ssh_known_hosts", Description: "known_hosts lines for the host (from `ssh-keyscan -t ed25519 host`, checked out of band). This or ssh_host_fingerprint is required."},
		{Name: "ssh_known_hosts_path", Description: "Path of a known_hosts file, instead of ssh_known_hosts (CLI use)."},
		{Name: "ssh_host_fingerprint", Description: "Pinned host key fingerprint(s), SHA256:..., comma or newline separated."},
		{Name: "ssh_jump_host", Description: "Jump host (bastion) as user@host:port, like ssh -J; its host key is verified too."},
		{Name: "ssh_jump_known_hosts", Description: "known_hosts lines for the jump host. This or ssh_jump_host_fingerprint is required with ssh_jump_host."},
		{Name: "ssh_jump_host_fingerprint", Description: "Pinned host key fingerprint(s) of the jump host, SHA256:..."},
		{Name: "ssh_jump_private_key", Secret: true, Description: "Private key for the jump host (default: ssh_private_key)."},
		{Name: "connect_timeout", Default: DefaultConnectTimeout, Description: "Bound on the TCP connect plus SSH handshake."},
		{Name: "remote_path", Default: DefaultRemotePath, Description: "Directory holding the databases: relative to the SSH login directory, or absolute. Without ssh_host, a local directory."},
		{Name: "include", Default: DefaultInclude, Description: "Glob of database file names in remote_path."},
		{Name: "remote_temp_dir", Default: DefaultRemoteTempDir, Description: "Where the helper makes its private temp dir on the host (never inside the app's volume)."},
		{Name: "compression", Default: DefaultCompression, Description: "zstd, gzip or none; done on the host."},
		{Name: "bucket", Env: []string{"BACKUP_BUCKET", "DO_SPACES_BACKUP_BUCKET", "DO_SPACES_BUCKET"}, Description: "S3 bucket. This or destination is required."},
		{Name: "destination", Description: "file:///dir to write groups to a local directory instead of a bucket."},
		{Name: "prefix", Default: DefaultPrefix, Env: []string{"BACKUP_PREFIX"}, Description: "Key prefix of every group."},
		{Name: "environment", Default: DefaultEnvironment, Env: []string{"RAILS_ENV"}, Description: "Environment name; groups live under <prefix>/<environment>/."},
		{Name: "endpoint", Env: []string{"DO_SPACES_ENDPOINT"}, Description: "S3-compatible endpoint URL (DigitalOcean Spaces, R2, B2, MinIO...). Empty: AWS S3."},
		{Name: "region", Env: []string{"AWS_REGION", "DO_SPACES_REGION"}, Description: "S3 region (us-east-1 when empty)."},
		{Name: "force_path_style", Default: "false", Bool: true, Description: "Use path-style S3 URLs (MinIO, versitygw, some gateways)."},
		{Name: "access_key_id", Secret: true, Env: []string{"AWS_ACCESS_KEY_ID", "DO_SPACES_ACCESS_KEY_ID"}, Description: "S3 access key id."},
		{Name: "secret_access_key", Secret: true, Env: []string{"AWS_SECRET_ACCESS_KEY", "DO_SPACES_SECRET_ACCESS_KEY"}, Description: "S3 secret access key."},
		{Name: "skip_unchanged", Default: "true", Bool: true, Commands: []string{CommandBackup},
			Description: "Copy a database's object server-side from the newest complete backup when its snapshot is byte-identical, instead of sending it again."},
		{Name: "helper_cache", Default: "true", Bool: true, Commands: []string{CommandBackup},
			Description: "Keep the snapshot helper in ~/.cache/sqlite-backup-action on the host (checked by SHA-256 before every run) instead of sending it every run."},
		{Name: "object_lock_days", Default: "0", Commands: []string{CommandBackup},
			Description: "S3 Object Lock: keep every object of a backup from deletion for this many days (the bucket must have Object Lock enabled; backup credentials need s3:PutObjectRetention, prune's s3:GetObjectRetention to tell a locked group from a failure); prune reports such groups as locked and leaves them. 0: no lock."},
		{Name: "object_lock_mode", Default: DefaultObjectLockMode, Commands: []string{CommandBackup},
			Description: "GOVERNANCE (credentials with s3:BypassGovernanceRetention can still delete) or COMPLIANCE (nobody can, not even the account root, until the date)."},
		{Name: "retries", Default: DefaultRetries, Description: "How often a failed step is retried when the failure is transient (S3 5xx/SlowDown/reset, a dropped SSH connection), with exponential backoff; wrong credentials, a missing bucket or a bad host key fail at once."},
		{Name: "part_size", Default: DefaultPartSize, Description: "Multipart upload part size in MiB."},
		{Name: "parallel", Default: DefaultParallel, Description: "Concurrent multipart part uploads per object."},
	}
}

// Outputs lists the action outputs with their descriptions.
func Outputs() []Input {
	return []Input{
		{Name: "backup_id", Description: "Group id of the backup written (YYYYMMDD-HHMMSS)."},
		{Name: "manifest_key", Description: "Key of the group's manifest.json."},
		{Name: "files", Description: "Number of databases in the group."},
		{Name: "bytes", Description: "Bytes stored (after compression) for the group."},
		{Name: "deleted", Description: "Prune: number of backup groups deleted (0 on a dry run or when the shrink guard held deletion back)."},
		{Name: "kept", Description: "Prune: number of backup groups kept."},
	}
}
