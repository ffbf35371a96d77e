package app

import (
	"context"
	"fmt"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/backup"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/config"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/humanize"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/remote"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/fsstore"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/s3store"
)

// memoryHeadroom is what a backup needs beside the upload buffers: SFTP
// reads in flight, hashing, zstd decoding, SQLite's page cache, the runtime.
const memoryHeadroom = 8 << 20

// openStore builds the destination backend from the config.
func (e *env) openStore(ctx context.Context, cfg *config.Config) (store.Backend, error) {
	if cfg.Destination != "" {
		dir, err := fsstore.ParseURL(cfg.Destination)
		if err != nil {
			return nil, fmt.Errorf("input destination: %w", err)
		}
		return fsstore.New(dir)
	}
	return s3store.New(ctx, s3store.Options{
		Bucket: cfg.Bucket, Endpoint: cfg.Endpoint, Region: cfg.Region, ForcePathStyle: cfg.ForcePathStyle,
		AccessKeyID: cfg.AccessKeyID.Reveal(), SecretAccessKey: cfg.SecretAccessKey.Reveal(),
		PartSize: int64(cfg.PartSizeMiB) << 20, Concurrency: cfg.Parallel, Retries: cfg.Retries,
		ProbePrefix:    catalog.Layout{Prefix: cfg.Prefix, Environment: cfg.Environment}.Root(),
		ObjectLockDays: cfg.ObjectLockDays, ObjectLockMode: cfg.ObjectLockMode, ObjectLockSkip: func(k string) bool { return path.Base(k) == catalog.InProgressName },
	})
}

// connect opens the source: the host over SSH, or a local directory.
func (e *env) connect(cfg *config.Config) func(ctx context.Context) (backup.Source, error) {
	return func(ctx context.Context) (backup.Source, error) {
		if cfg.SSHHost == "" {
			return snapshot.NewLocal(cfg.RemotePath, cfg.Include, cfg.Compression, "")
		}
		c, err := e.dial(ctx, cfg)
		if err != nil {
			return nil, err
		}
		e.removeLeftovers(ctx, c)
		r, err := snapshot.NewRemote(ctx, snapshot.RemoteOptions{
			Client: c, Dir: cfg.RemotePath, Include: cfg.Include, Compression: cfg.Compression,
			TempDir: cfg.RemoteTempDir, HelperDirs: e.helperDirs(), HelperCache: cfg.HelperCache, Log: e.log,
			OnLeftover: func(dir string) { e.leftovers = append(e.leftovers, dir) },
		})
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		return &remoteSource{Remote: r, client: c}, nil
	}
}

// dial connects to ssh_host (through ssh_jump_host, if set) with every
// host key verified.
func (e *env) dial(ctx context.Context, cfg *config.Config) (*remote.Client, error) {
	hk, err := remote.NewHostKeys(cfg.SSHKnownHosts, cfg.SSHHostFingerprints)
	if err != nil {
		return nil, err
	}
	o := remote.Options{
		Hop: remote.Hop{Host: cfg.SSHHost, Port: cfg.SSHPort, User: cfg.SSHUser, HostKeys: hk,
			PrivateKey: []byte(cfg.SSHPrivateKey.Reveal()), Passphrase: []byte(cfg.SSHPrivateKeyPassphrase.Reveal())},
		ConnectTimeout: cfg.ConnectTimeout, Logger: e.log,
	}
	if j := cfg.Jump; j != nil {
		jhk, err := remote.NewHostKeys(j.KnownHosts, j.Fingerprints)
		if err != nil {
			return nil, fmt.Errorf("jump host: %w", err)
		}
		o.Jump = &remote.Hop{Host: j.Host, Port: j.Port, User: j.User, HostKeys: jhk, PrivateKey: o.PrivateKey, Passphrase: o.Passphrase}
		if j.PrivateKey.IsSet() {
			o.Jump.PrivateKey, o.Jump.Passphrase = []byte(j.PrivateKey.Reveal()), nil
		}
		e.log.Info("connecting through jump host", "jump", j.Host, "jump_port", j.Port)
	}
	e.log.Info("connecting", "host", cfg.SSHHost, "port", cfg.SSHPort, "user", cfg.SSHUser)
	return remote.Dial(ctx, o)
}

// removeLeftovers removes the temp dirs of this process's earlier attempts
// that could not be removed when their connection dropped (their helper
// died with the connection). Best effort.
func (e *env) removeLeftovers(ctx context.Context, c *remote.Client) {
	var keep []string
	for _, dir := range e.leftovers {
		if !strings.HasPrefix(path.Base(dir), snapshot.TempPrefix) {
			continue
		}
		if _, err := c.Run(ctx, "rm -rf -- "+remote.Quote(dir)); err != nil {
			e.log.Warn("could not remove the temp dir of a failed attempt", "dir", dir, "error", err)
			keep = append(keep, dir)
		}
	}
	e.leftovers = keep
}

// remoteSource closes the SSH connection after the temp dir is removed.
type remoteSource struct {
	*snapshot.Remote
	client *remote.Client
}

func (r *remoteSource) Close() error {
	err := r.Remote.Close()
	if cerr := r.client.Close(); err == nil && cerr != nil && !strings.Contains(cerr.Error(), "closed") {
		err = cerr
	}
	return err
}

func (e *env) backup(ctx context.Context, cfg *config.Config) (err error) {
	// Upload buffers dominate memory: (parallel+1) parts per object. A soft
	// limit just above them keeps garbage from old parts from piling up, so
	// peak RSS stays flat whatever the database size. GOMEMLIMIT overrides.
	if e.getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(cfg.PartSizeMiB*(cfg.Parallel+1))<<20 + memoryHeadroom)
	}
	st, err := e.openStore(ctx, cfg)
	if err != nil {
		return err
	}
	var res *backup.Result
	err = e.group("Backup to "+st.String(), func() error {
		return retry(ctx, e.log, cfg.Retries, func() error {
			res, err = backup.Run(ctx, backup.Options{
				Store:         st,
				Connect:       e.connect(cfg),
				Layout:        catalog.Layout{Prefix: cfg.Prefix, Environment: cfg.Environment},
				Compression:   cfg.Compression,
				Log:           e.log,
				ToolVersion:   Version,
				SkipUnchanged: cfg.SkipUnchanged,
				Recipients:    cfg.Encryption.Recipients,
			})
			return err
		})
	})
	if err != nil {
		return err
	}
	defer func() {
		// Prune only after a successful backup, outside its log group.
		if err == nil {
			err = e.pruneAfterBackup(ctx, cfg, st)
		}
	}()
	e.log.Info("backup complete", "backup_id", res.ID, "files", len(res.Files), "stored_bytes", res.StoredBytes, "duration", res.Duration.Round(time.Millisecond))
	fmt.Fprint(e.stdout, textTable(res, st.String()))
	sealed := ""
	if r := cfg.Encryption.Recipients; r != nil {
		sealed = fmt.Sprintf("Encrypted with age to %s: %s\n", plural(len(r.Strings()), "recipient"), encryption.Describe(r.Strings()))
		fmt.Fprint(e.stdout, sealed)
	}
	if e.gha == nil {
		return nil
	}
	if sealed != "" {
		sealed = "\n" + sealed // a line right after a table would be a row of it
	}
	if err := e.gha.Summary(markdownSummary(res, st.String()) + sealed); err != nil {
		return err
	}
	return e.gha.SetOutputs([][2]string{
		{"backup_id", res.ID},
		{"manifest_key", res.ManifestKey},
		{"files", strconv.Itoa(len(res.Files))},
		{"bytes", strconv.FormatInt(res.StoredBytes, 10)},
	})
}

func textTable(res *backup.Result, dest string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "backup %s -> %s\n", res.ID, dest)
	fmt.Fprintf(&b, "%-32s %14s %14s  %-16s %8s\n", "FILE", "SIZE", "STORED", "SHA256", "TIME")
	for _, f := range res.Files {
		fmt.Fprintf(&b, "%-32s %14d %14d  %-16s %8s\n", f.Name, f.Size, f.StoredSize, f.SHA256[:16], f.Duration.Round(10*time.Millisecond))
	}
	fmt.Fprintf(&b, "manifest: %s\n", res.ManifestKey)
	return b.String()
}

func markdownSummary(res *backup.Result, dest string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### SQLite backup `%s`\n\nDestination: `%s` · manifest `%s` · %d files · %s stored · %s\n\n",
		res.ID, dest, res.ManifestKey, len(res.Files), humanize.Bytes(res.StoredBytes), res.Duration.Round(time.Second))
	b.WriteString("| File | Size | Stored | SHA-256 | Integrity | Duration |\n|---|---:|---:|---|---|---:|\n")
	for _, f := range res.Files {
		fmt.Fprintf(&b, "| `%s` | %s | %s | `%s…` | %s | %s |\n", f.Name, humanize.Bytes(f.Size), humanize.Bytes(f.StoredSize),
			f.SHA256[:12], f.IntegrityCheck, f.Duration.Round(10*time.Millisecond))
	}
	return b.String()
}

// plural says "1 recipient", "2 recipients".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
