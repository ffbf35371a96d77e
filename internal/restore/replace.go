package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
)

// Timeouts of the replace steps that run commands on the target.
const (
	commandTimeout  = 10 * time.Minute // stop_command, start_command
	rollbackTimeout = 10 * time.Minute // putting the live files back, then start_command
)

// sideFiles are the suffixes of a database's files that move together:
// the database, its WAL and its shared-memory index.
var sideFiles = []string{"", "-wal", "-shm"}

// replacePlan is what planReplace found on the target.
type replacePlan struct {
	dir  string
	live map[string]FileInfo // by database name
}

// swap is one live database being replaced.
type swap struct {
	f         Fetched
	live      string   // the live path
	aside     string   // <live>.pre-restore-<timestamp>
	tmp       string   // the restored file until it is renamed over live
	moved     []string // sideFiles moved aside so far, in order
	staged    bool
	committed bool
}

// planReplace checks, before anything is downloaded, that every database
// to restore is a regular file in dir, and that the login user is root or
// the owner of each: only they can see every process that may hold the
// file and give the restored file the original owner.
func (o Options) planReplace(ctx context.Context, t Target, dir string, g *Group) (*replacePlan, error) {
	fi, err := t.Lstat(ctx, dir)
	if err != nil {
		return nil, err
	}
	if !fi.Mode.IsDir() {
		return nil, fmt.Errorf("%s on %s is not a directory", dir, t)
	}
	uid, err := loginUID(ctx, t)
	if err != nil {
		return nil, err
	}
	rp := &replacePlan{dir: dir, live: map[string]FileInfo{}}
	for _, f := range g.Files {
		live, err := safeJoin(dir, f.Name)
		if err != nil {
			return nil, err
		}
		ok, fi, err := exists(ctx, t, live)
		switch {
		case err != nil:
			return nil, err
		case !ok:
			return nil, fmt.Errorf("live database %s does not exist on %s: replace swaps existing databases; restore side_by_side and move the file into place", live, t)
		case !fi.Mode.IsRegular():
			return nil, fmt.Errorf("live database %s on %s is not a regular file (%s): refusing to replace it", live, t, fi.Mode.Type())
		case uid != 0 && uid != fi.UID:
			return nil, fmt.Errorf("live database %s belongs to uid %d, but ssh_user is uid %d: replace needs root or the owner (to see every process holding the file and to keep its owner)", live, fi.UID, uid)
		}
		rp.live[f.Name] = fi
	}
	return rp, nil
}

// replace swaps the live databases for the verified files, in this order:
// safety backup, stop_command, no process may hold a database, each live
// file (and its -wal, -shm) moved to <name>.pre-restore-<timestamp>, the
// restored file placed under a temp name, checked, given the original owner
// and mode, renamed into place, checked again, start_command. Any failure
// after the stop puts the live files back as they were and runs
// start_command.
func (o Options) replace(ctx context.Context, t Target, rp *replacePlan, files []Fetched, res *Result) (err error) {
	ts := o.Now().UTC().Format(catalog.IDLayout)
	swaps := make([]*swap, 0, len(files))
	for _, f := range files {
		live, err := safeJoin(rp.dir, f.Name)
		if err != nil {
			return err
		}
		tmp, err := safeJoin(rp.dir, tempName(f.Name, res.ID))
		if err != nil {
			return err
		}
		swaps = append(swaps, &swap{f: f, live: live, aside: live + ".pre-restore-" + ts, tmp: tmp})
	}

	o.Log.Info("replace: safety backup of the live databases")
	if res.SafetyBackupID, err = o.SafetyBackup(ctx); err != nil {
		return fmt.Errorf("safety backup of the live databases failed; nothing was stopped or changed: %w", err)
	}
	o.Log.Info("replace: safety backup done", "backup_id", res.SafetyBackupID)

	done := false
	defer func() {
		if err != nil && !done {
			err = o.putBack(ctx, t, swaps, err)
		}
	}()
	o.Log.Info("replace: stopping the app", "command", o.StopCommand)
	if err := o.runCommand(ctx, t, "stop_command", o.StopCommand); err != nil {
		return err
	}
	lives := make([]string, len(swaps))
	for i, s := range swaps {
		lives[i] = s.live
	}
	holders, unreadable, err := findHolders(ctx, t, lives)
	if err != nil {
		return err
	}
	if len(holders) > 0 {
		return fmt.Errorf("after stop_command, processes still hold the databases: %s", strings.Join(holders, ", "))
	}
	o.Log.Info("replace: no process holds the databases")
	if unreadable > 0 {
		o.warn(res, fmt.Sprintf("could not look into %d processes of other users on %s for open database files (connect as root for a complete check)", unreadable, t))
	}

	for _, s := range swaps {
		if err := moveAside(ctx, t, s); err != nil {
			return err
		}
	}
	o.Log.Info("replace: live files moved aside", "suffix", ".pre-restore-"+ts)
	for _, s := range swaps {
		fi := rp.live[s.f.Name]
		if err := stage(ctx, t, s.f, s.tmp, perms{mode: fi.Mode.Perm(), chown: true, uid: fi.UID, gid: fi.GID}); err != nil {
			return err
		}
		s.staged = true
	}
	o.Log.Info("replace: restored files placed and checked under temp names")
	for _, s := range swaps {
		if err := t.Rename(ctx, s.tmp, s.live); err != nil {
			return err
		}
		s.committed = true
	}
	// PRAGMA integrity_check passed on the runner on these very bytes: the
	// SHA-256 of the file now at the live name proves it holds them, and
	// with no -wal or -shm beside it SQLite will read nothing else.
	for _, s := range swaps {
		if err := checkLive(ctx, t, s, rp.live[s.f.Name]); err != nil {
			return err
		}
	}
	done = true
	for _, s := range swaps {
		res.Files = append(res.Files, FileResult{Name: s.f.Name, Size: s.f.Bytes, SHA256: s.f.Sum, Path: s.live, PreRestore: s.aside})
		o.Log.Info("replaced", "file", s.live, "sha256", s.f.Sum, "previous", s.aside)
	}
	o.Log.Info("replace: starting the app", "command", o.StartCommand)
	if err := o.runCommand(ctx, t, "start_command", o.StartCommand); err != nil {
		return fmt.Errorf("the databases were replaced, but the app did not start: %w", err)
	}
	return nil
}

// moveAside moves the live database and its -wal and -shm (those that
// exist) to the pre-restore name, so the old database stays whole and no
// stale WAL is left for the restored one.
func moveAside(ctx context.Context, t Target, s *swap) error {
	for _, suffix := range sideFiles {
		ok, fi, err := exists(ctx, t, s.live+suffix)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if !fi.Mode.IsRegular() {
			return fmt.Errorf("%s on %s is not a regular file: refusing to move it", s.live+suffix, t)
		}
		if ok, _, err := exists(ctx, t, s.aside+suffix); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%s already exists on %s: refusing to overwrite it", s.aside+suffix, t)
		}
		if err := t.Rename(ctx, s.live+suffix, s.aside+suffix); err != nil {
			return err
		}
		s.moved = append(s.moved, suffix)
	}
	return nil
}

// checkLive checks the file now at the live name: the restored bytes, the
// original owner and mode, and no -wal or -shm beside it.
func checkLive(ctx context.Context, t Target, s *swap, want FileInfo) error {
	sum, err := t.SHA256(ctx, s.live)
	if err != nil {
		return err
	}
	if sum != s.f.Sum {
		return fmt.Errorf("%s on %s has sha256 %s after the swap, want %s", s.live, t, sum, s.f.Sum)
	}
	fi, err := t.Lstat(ctx, s.live)
	if err != nil {
		return err
	}
	if fi.Mode.Perm() != want.Mode.Perm() || fi.UID != want.UID || fi.GID != want.GID {
		return fmt.Errorf("%s on %s is %s %d:%d after the swap, want %s %d:%d", s.live, t, fi.Mode.Perm(), fi.UID, fi.GID, want.Mode.Perm(), want.UID, want.GID)
	}
	for _, suffix := range sideFiles[1:] {
		if ok, _, err := exists(ctx, t, s.live+suffix); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%s appeared on %s during the swap: is the app still running?", s.live+suffix, t)
		}
	}
	return nil
}

// putBack undoes a replace that failed after stop_command: removes staged
// files, moves every live file back (over a restored one already renamed
// into place), then runs start_command. It runs on a fresh context: ctx
// may be why the replace failed. If the files cannot be put back, the app
// is not started (it would start on missing databases) and the error says
// how to finish by hand.
func (o Options) putBack(ctx context.Context, t Target, swaps []*swap, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	o.Log.Warn("replace failed: putting the live databases back", "error", cause)
	var errs []error
	var manual []string
	for i := len(swaps) - 1; i >= 0; i-- {
		s := swaps[i]
		if s.staged && !s.committed {
			if err := t.Remove(ctx, s.tmp); err != nil {
				errs = append(errs, err)
			}
		}
		for j := len(s.moved) - 1; j >= 0; j-- {
			from, to := s.aside+s.moved[j], s.live+s.moved[j]
			if err := t.Rename(ctx, from, to); err != nil {
				errs = append(errs, err)
				manual = append(manual, fmt.Sprintf("mv %s %s", from, to))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w; putting the live databases back also failed, so start_command was NOT run: %v; finish by hand on %s: %s, then run start_command",
			cause, err, t, strings.Join(manual, "; "))
	}
	if err := o.runCommand(ctx, t, "start_command", o.StartCommand); err != nil {
		return fmt.Errorf("%w; the live databases were put back as they were, but start_command failed: %v", cause, err)
	}
	return fmt.Errorf("%w; the live databases were left as they were and start_command ran", cause)
}

func (o Options) runCommand(ctx context.Context, t Target, name, cmd string) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	out, err := t.Run(ctx, cmd)
	if s := strings.TrimSpace(string(out)); s != "" {
		o.Log.Info(name+" output", "output", truncate(s, 2000))
	}
	if err != nil {
		return fmt.Errorf("%s on %s: %w", name, t, err)
	}
	return nil
}

func (o Options) warn(res *Result, msg string) {
	o.Log.Warn(msg)
	res.Warnings = append(res.Warnings, msg)
}
