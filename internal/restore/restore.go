// Package restore is the restore command. It resolves a backup group,
// downloads every file to the runner and checks it (SHA-256 against the
// manifest, header, PRAGMA integrity_check, page count) before anything is
// written anywhere, then writes the databases next to the live ones on the
// host (side_by_side), into a runner directory (local), or in place of the
// live ones (replace: safety backup, app stopped, no process holding the
// files, rollback on any failure before the swap). Every file reaches its
// target under a temp name, is checked there, and is renamed last.
package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// Restore modes.
const (
	ModeSideBySide = "side_by_side"
	ModeLocal      = "local"
	ModeReplace    = "replace"
)

// ConfirmWord is what Guard.Confirm must be, exactly.
const ConfirmWord = "YES"

// defaultFileMode is the mode of a restored file with no live file to copy it from.
const defaultFileMode = 0o600

// ErrRefused is wrapped by every guard refusal.
var ErrRefused = errors.New("restore refused")

// Guard holds what a restore must be allowed by. Check does no I/O, so it
// runs before anything is contacted.
type Guard struct {
	Confirm     string // must be exactly ConfirmWord
	Environment string // "production" also needs Allow
	Allow       bool   // allow_restore / ALLOW_DB_RESTORE=1
}

// Check refuses a restore that was not confirmed, or that targets
// production without the explicit allowance; the message says what to set.
func (g Guard) Check() error {
	switch {
	case g.Confirm == "":
		return fmt.Errorf("%w: confirm is not set; set confirm: YES (CLI: --confirm YES) to restore", ErrRefused)
	case g.Confirm != ConfirmWord:
		return fmt.Errorf("%w: confirm is %q; it must be exactly YES", ErrRefused, g.Confirm)
	case strings.EqualFold(g.Environment, "production") && !g.Allow:
		return fmt.Errorf("%w: environment is production; set allow_restore: true (CLI: --allow-restore) or env ALLOW_DB_RESTORE=1 to restore it", ErrRefused)
	}
	return nil
}

// Options configure one restore.
type Options struct {
	Store    store.Backend
	Layout   catalog.Layout
	BackupID string // Latest or YYYYMMDD-HHMMSS
	Files    string // glob of database names; "" = all
	Mode     string // ModeSideBySide, ModeLocal or ModeReplace
	Guard    Guard
	// Dir is remote_path on the target (side_by_side, replace) or
	// restore_dir (local); relative paths are resolved by the target.
	Dir string
	// Connect opens the target; it is called after the group is resolved.
	Connect func(ctx context.Context) (Target, error)
	// StopCommand and StartCommand run on the target (replace only).
	StopCommand, StartCommand string
	// SafetyBackup backs up the live databases as a normal group and
	// returns its id (replace only).
	SafetyBackup func(ctx context.Context) (string, error)
	// Identities decrypt an encrypted group (nil: none given).
	Identities *encryption.Identities
	TempDir    string // runner scratch for the downloads ("" = os.TempDir)
	Now        func() time.Time
	Log        *slog.Logger
}

// FileResult is one restored database.
type FileResult struct {
	Name       string
	Size       int64
	SHA256     string
	Path       string // where it is now, on the target
	PreRestore string // replace: where the previous live file was moved
}

// Result is a finished restore.
type Result struct {
	ID             string
	Legacy         bool
	Mode           string
	Target         string // "local" or host:port
	Dir            string // where the databases were written
	Files          []FileResult
	SafetyBackupID string   // replace
	Warnings       []string // also logged
	Duration       time.Duration
}

// Run performs one restore. Nothing is written to the target unless every
// file of the group passed every check on the runner.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := o.Guard.Check(); err != nil {
		return nil, err
	}
	switch o.Mode {
	case ModeSideBySide, ModeLocal:
	case ModeReplace:
		if o.StopCommand == "" || o.StartCommand == "" || o.SafetyBackup == nil {
			return nil, errors.New("restore_mode replace needs stop_command, start_command and a safety backup")
		}
	default:
		return nil, fmt.Errorf("unknown restore_mode %q (want side_by_side, local or replace)", o.Mode)
	}
	start := o.Now()
	g, err := Resolve(ctx, o.Store, o.Layout, o.BackupID)
	if err != nil {
		return nil, err
	}
	if err := g.Select(o.Files); err != nil {
		return nil, err
	}
	if err := g.CheckIdentities(o.Identities); err != nil {
		return nil, err
	}
	res = &Result{ID: g.ID, Legacy: g.Legacy, Mode: o.Mode}
	if g.Legacy {
		res.Warnings = append(res.Warnings, fmt.Sprintf("group %s is a legacy group without a manifest: there are no checksums, so its files were checked with PRAGMA integrity_check only", g.ID))
	}
	o.Log.Info("restoring", "backup_id", g.ID, "files", len(g.Files), "mode", o.Mode, "legacy", g.Legacy)

	t, err := o.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := t.Close(); cerr != nil && err == nil && !strings.Contains(cerr.Error(), "closed") {
			err = fmt.Errorf("disconnect from %s: %w", t, cerr)
		}
	}()
	res.Target = t.String()
	base, err := t.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	// Look before downloading: a target that cannot take the files fails now.
	var rp *replacePlan
	switch o.Mode {
	case ModeSideBySide:
		res.Dir = path.Join(base, "restore-"+g.ID)
		err = preflightNew(ctx, t, base, res.Dir, true)
	case ModeLocal:
		res.Dir = base
		err = preflightNew(ctx, t, path.Dir(base), base, false)
	case ModeReplace:
		res.Dir = base
		rp, err = o.planReplace(ctx, t, base, g)
	}
	if err != nil {
		return nil, err
	}

	work, err := os.MkdirTemp(o.TempDir, "sba-restore-")
	if err != nil {
		return nil, fmt.Errorf("runner work dir: %w", err)
	}
	defer os.RemoveAll(work)
	fetched, err := Fetch(ctx, o.Store, g, work, o.Identities, o.Log)
	if err != nil {
		return nil, fmt.Errorf("backup group %s failed its checks; nothing was written: %w", g.ID, err)
	}

	switch o.Mode {
	case ModeReplace:
		err = o.replace(ctx, t, rp, fetched, res)
	default:
		err = o.writeNew(ctx, t, res, g.ID, fetched)
	}
	if err != nil {
		return nil, err
	}
	res.Duration = o.Now().Sub(start)
	return res, nil
}

// preflightNew checks that parent is a directory and that dir does not
// exist (mustBeNew) or is a directory (its files are checked one by one
// when written: none is overwritten).
func preflightNew(ctx context.Context, t Target, parent, dir string, mustBeNew bool) error {
	fi, err := t.Lstat(ctx, parent)
	if err != nil {
		return err
	}
	if !fi.Mode.IsDir() {
		return fmt.Errorf("%s on %s is not a directory", parent, t)
	}
	ok, fi, err := exists(ctx, t, dir)
	switch {
	case err != nil:
		return err
	case ok && mustBeNew:
		return fmt.Errorf("%s already exists on %s (an earlier restore of this group?): move it away first", dir, t)
	case ok && !fi.Mode.IsDir():
		return fmt.Errorf("%s on %s is not a directory", dir, t)
	}
	return nil
}

// writeNew writes every file into res.Dir, making it when missing. No file
// is overwritten. On failure everything this run wrote is removed again.
func (o Options) writeNew(ctx context.Context, t Target, res *Result, id string, files []Fetched) (err error) {
	var written []string // removed in reverse on failure
	defer func() {
		if err == nil {
			return
		}
		cctx := context.WithoutCancel(ctx)
		for i := len(written) - 1; i >= 0; i-- {
			if rerr := t.Remove(cctx, written[i]); rerr != nil {
				err = errors.Join(err, fmt.Errorf("clean up: %w", rerr))
			}
		}
	}()
	ok, _, err := exists(ctx, t, res.Dir)
	if err != nil {
		return err
	}
	if !ok {
		if err := t.Mkdir(ctx, res.Dir); err != nil {
			return err
		}
		written = append(written, res.Dir)
	}
	uid := -1
	if o.Mode == ModeSideBySide {
		if uid, err = loginUID(ctx, t); err != nil {
			return err
		}
	}
	for _, f := range files {
		dst, err := safeJoin(res.Dir, f.Name)
		if err != nil {
			return err
		}
		tmp, err := safeJoin(res.Dir, tempName(f.Name, id))
		if err != nil {
			return err
		}
		if ok, _, err := exists(ctx, t, dst); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%s already exists on %s: refusing to overwrite it", dst, t)
		}
		p := perms{mode: defaultFileMode}
		if o.Mode == ModeSideBySide {
			// Copy the live file's mode, and its owner when we may, so that
			// swapping the file in by hand keeps the app able to open it.
			live := path.Join(path.Dir(res.Dir), f.Name)
			if ok, fi, err := exists(ctx, t, live); err == nil && ok && fi.Mode.IsRegular() {
				p = perms{mode: fi.Mode.Perm(), chown: uid == 0, uid: fi.UID, gid: fi.GID}
			}
		}
		if err := stage(ctx, t, f, tmp, p); err != nil {
			return err
		}
		if err := t.Rename(ctx, tmp, dst); err != nil {
			return errors.Join(err, t.Remove(context.WithoutCancel(ctx), tmp))
		}
		written = append(written, dst)
		o.Log.Info("restored", "file", f.Name, "to", dst, "bytes", f.Bytes, "sha256", f.Sum)
		res.Files = append(res.Files, FileResult{Name: f.Name, Size: f.Bytes, SHA256: f.Sum, Path: dst})
	}
	return nil
}

// loginUID is the numeric uid the target runs as.
func loginUID(ctx context.Context, t Target) (int, error) {
	out, err := t.Run(ctx, "id -u")
	if err != nil {
		return 0, fmt.Errorf("id -u on %s: %w", t, err)
	}
	uid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("id -u on %s printed %q", t, truncate(string(out), 50))
	}
	return uid, nil
}
