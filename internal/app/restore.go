package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/backup"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/config"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/humanize"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/restore"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/verify"
)

func (e *env) restore(ctx context.Context, cfg *config.Config) error {
	rc := cfg.Restore
	guard := restore.Guard{Confirm: rc.Confirm, Environment: cfg.Environment, Allow: rc.Allow}
	// Refuse before the store or the host is contacted.
	if err := guard.Check(); err != nil {
		return err
	}
	st, err := e.openStore(ctx, cfg)
	if err != nil {
		return err
	}
	layout := catalog.Layout{Prefix: cfg.Prefix, Environment: cfg.Environment}
	dir := cfg.RemotePath
	if rc.Mode == config.RestoreModeLocal {
		dir = rc.Dir
		if dir == "" {
			dir = "restore"
			if ws := e.getenv("GITHUB_WORKSPACE"); ws != "" {
				dir = filepath.Join(ws, "restore")
			}
		}
	}
	// Downloads go to os.TempDir, not RUNNER_TEMP: a Docker action's
	// container does not reliably have it mounted (actions/runner#1984).
	opts := restore.Options{
		Store: st, Layout: layout, BackupID: rc.BackupID, Files: rc.Files, Mode: rc.Mode, Guard: guard,
		Dir: dir, Connect: e.restoreTarget(cfg), StopCommand: rc.StopCommand, StartCommand: rc.StartCommand,
		Identities: cfg.Encryption.Identities, Log: e.log,
	}
	if rc.Mode == config.RestoreModeReplace {
		// The safety backup holds production data too: with an identity, it
		// is encrypted to that identity's public key.
		var sealTo *encryption.Recipients
		if ids := cfg.Encryption.Identities; ids != nil {
			if sealTo, err = ids.AsRecipients(); err != nil {
				return fmt.Errorf("input encryption_identity: %w", err)
			}
		}
		opts.SafetyBackup = func(ctx context.Context) (string, error) {
			res, err := backup.Run(ctx, backup.Options{
				Store: st, Connect: e.connect(cfg), Layout: layout, Compression: cfg.Compression,
				Log: e.log, ToolVersion: Version, Recipients: sealTo,
			})
			if err != nil {
				return "", err
			}
			return res.ID, nil
		}
	}
	var res *restore.Result
	err = e.group("Restore from "+st.String(), func() error {
		res, err = restore.Run(ctx, opts)
		return err
	})
	if err != nil {
		return err
	}
	e.log.Info("restore complete", "backup_id", res.ID, "mode", res.Mode, "files", len(res.Files), "to", res.Dir, "duration", res.Duration.Round(time.Millisecond))
	fmt.Fprint(e.stdout, restoreText(res))
	if e.gha == nil {
		return nil
	}
	for _, w := range res.Warnings {
		e.gha.Warning(w)
	}
	if err := e.gha.Summary(restoreMarkdown(res, st.String())); err != nil {
		return err
	}
	out := [][2]string{{"restored_backup_id", res.ID}, {"restore_path", res.Dir}}
	if res.SafetyBackupID != "" {
		out = append(out, [2]string{"safety_backup_id", res.SafetyBackupID})
	}
	return e.gha.SetOutputs(out)
}

// restoreTarget opens where restored files go: the runner for
// restore_mode local or without ssh_host, else the host over SSH (no
// helper is shipped; a replace's safety backup ships its own).
func (e *env) restoreTarget(cfg *config.Config) func(ctx context.Context) (restore.Target, error) {
	return func(ctx context.Context) (restore.Target, error) {
		if cfg.Restore.Mode == config.RestoreModeLocal || cfg.SSHHost == "" {
			return restore.Local{}, nil
		}
		// The connection outlives ctx: once the app is stopped, putting the
		// live files back and running start_command must still be possible
		// when the run is cancelled. connect_timeout bounds the dial.
		c, err := e.dial(context.WithoutCancel(ctx), cfg)
		if err != nil {
			return nil, err
		}
		return &restore.Remote{Client: c}, nil
	}
}

func restoreText(res *restore.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "restore %s (%s) -> %s:%s\n", res.ID, res.Mode, res.Target, res.Dir)
	fmt.Fprintf(&b, "%-32s %14s  %-16s %s\n", "FILE", "SIZE", "SHA256", "PATH")
	for _, f := range res.Files {
		fmt.Fprintf(&b, "%-32s %14d  %-16s %s\n", f.Name, f.Size, f.SHA256[:16], f.Path)
		if f.PreRestore != "" {
			fmt.Fprintf(&b, "%-32s %14s  %-16s previous file kept as %s\n", "", "", "", f.PreRestore)
		}
	}
	if res.SafetyBackupID != "" {
		fmt.Fprintf(&b, "safety backup of the previous databases: %s\n", res.SafetyBackupID)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}

func restoreMarkdown(res *restore.Result, src string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### SQLite restore `%s` (%s)\n\nFrom `%s` to `%s:%s` · %d files · %s\n\n",
		res.ID, res.Mode, src, res.Target, res.Dir, len(res.Files), res.Duration.Round(time.Second))
	for _, w := range res.Warnings {
		fmt.Fprintf(&b, "> [!WARNING]\n> %s\n\n", w)
	}
	b.WriteString("| File | Size | SHA-256 | Written to | Previous file |\n|---|---:|---|---|---|\n")
	for _, f := range res.Files {
		fmt.Fprintf(&b, "| `%s` | %s | `%s…` | `%s` | %s |\n", f.Name, humanize.Bytes(f.Size), f.SHA256[:12], f.Path, code(f.PreRestore))
	}
	if res.SafetyBackupID != "" {
		fmt.Fprintf(&b, "\nSafety backup of the replaced databases: `%s`\n", res.SafetyBackupID)
	}
	return b.String()
}

func (e *env) verify(ctx context.Context, cfg *config.Config) error {
	st, err := e.openStore(ctx, cfg)
	if err != nil {
		return err
	}
	var res *verify.Result
	err = e.group("Verify "+st.String(), func() error {
		res, err = verify.Run(ctx, verify.Options{
			Store: st, Layout: catalog.Layout{Prefix: cfg.Prefix, Environment: cfg.Environment},
			BackupID: cfg.Restore.BackupID, MaxAge: cfg.Restore.MaxAge, Identities: cfg.Encryption.Identities, Log: e.log,
		})
		return err
	})
	if res != nil {
		fmt.Fprint(e.stdout, verifyText(res))
		if e.gha != nil {
			if serr := e.gha.Summary(verifyMarkdown(res, st.String())); serr != nil && err == nil {
				err = serr
			}
		}
	}
	if err != nil {
		return err
	}
	e.log.Info("verify passed", "backup_id", res.ID, "files", len(res.Files), "duration", res.Duration.Round(time.Millisecond))
	if e.gha == nil {
		return nil
	}
	return e.gha.SetOutputs([][2]string{{"verified_backup_id", res.ID}})
}

func verifyText(res *verify.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "verify %s: %s\n", orNone(res.ID), passFail(res.OK()))
	if res.Newest != "" {
		fmt.Fprintf(&b, "newest complete group: %s, %s old\n", res.Newest, res.NewestAge.Round(time.Minute))
	}
	if res.MaxAge > 0 {
		fmt.Fprintf(&b, "freshness (max_age_hours %g): %s\n", res.MaxAge.Hours(), passFail(!res.Stale()))
	}
	for _, f := range res.Files {
		fmt.Fprintf(&b, "%s  %d bytes  pages %d (manifest %d)  sha256 %s\n", f.Name, f.Size, f.PageCount, f.ManifestPageCount, f.SHA256)
		if f.Err != nil {
			fmt.Fprintf(&b, "  FAILED: %v\n", f.Err)
		}
		for _, t := range f.Tables {
			fmt.Fprintf(&b, "  table %-30s %d rows\n", t.Name, t.Rows)
		}
	}
	return b.String()
}

func verifyMarkdown(res *verify.Result, src string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### SQLite restore drill `%s`: %s\n\nSource `%s`", orNone(res.ID), passFail(res.OK()), src)
	if res.Newest != "" {
		fmt.Fprintf(&b, " · newest complete group `%s`, %s old", res.Newest, res.NewestAge.Round(time.Minute))
	}
	if res.MaxAge > 0 {
		fmt.Fprintf(&b, " (max_age_hours %g: freshness %s)", res.MaxAge.Hours(), passFail(!res.Stale()))
	}
	if res.Legacy {
		b.WriteString(" · legacy group: no checksums, integrity_check only")
	}
	b.WriteString("\n\n| File | Size | SHA-256 | Pages (manifest) | Result | Tables (rows) |\n|---|---:|---|---|---|---|\n")
	for _, f := range res.Files {
		result := "ok"
		if f.Err != nil {
			result = "**failed**: " + strings.ReplaceAll(f.Err.Error(), "|", `\|`)
		}
		var tables []string
		for _, t := range f.Tables {
			tables = append(tables, fmt.Sprintf("`%s` %d", t.Name, t.Rows))
		}
		sum := f.SHA256
		if len(sum) > 12 {
			sum = sum[:12] + "…"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %d (%d) | %s | %s |\n", f.Name, humanize.Bytes(f.Size), sum, f.PageCount, f.ManifestPageCount, result, strings.Join(tables, ", "))
	}
	return b.String()
}

func passFail(ok bool) string {
	if ok {
		return "passed"
	}
	return "FAILED"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}
