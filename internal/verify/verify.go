// Package verify is the restore drill: it downloads a backup group to a
// private directory on the runner and checks everything a restore checks
// (every SHA-256 of the manifest, header, PRAGMA integrity_check, page
// count), records the tables and row counts of each database, and raises
// a freshness alarm when the newest complete group is too old. It never
// contacts a database host.
package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/restore"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// ErrStale is wrapped by the freshness failure.
var ErrStale = errors.New("backups are stale")

// Options configure one drill.
type Options struct {
	Store    store.Backend
	Layout   catalog.Layout
	BackupID string        // restore.Latest or YYYYMMDD-HHMMSS
	MaxAge   time.Duration // 0: no freshness check
	// Identities decrypt an encrypted group (nil: none given).
	Identities *encryption.Identities
	TempDir    string // runner scratch ("" = os.TempDir)
	Now        func() time.Time
	Log        *slog.Logger
}

// Table is one table of a database and its row count (-1: a virtual table
// that was not counted).
type Table struct {
	Name string
	Rows int64
}

// File is the report on one database of the group.
type File struct {
	Name              string
	Size              int64
	SHA256            string
	PageSize          int
	PageCount         int64 // from the database header
	ManifestPageCount int64 // 0 for a legacy group
	Tables            []Table
	Err               error // nil when every check passed
}

// Result is the drill's report, filled as far as it got.
type Result struct {
	ID        string // the group checked
	Legacy    bool
	Newest    string        // the newest complete (or legacy) group
	NewestAge time.Duration // its age at Now
	MaxAge    time.Duration
	Files     []File
	Duration  time.Duration
}

// OK reports whether the group passed every check (freshness aside).
func (r *Result) OK() bool {
	if len(r.Files) == 0 {
		return false
	}
	for _, f := range r.Files {
		if f.Err != nil {
			return false
		}
	}
	return true
}

// Stale reports whether the newest complete group is older than MaxAge.
func (r *Result) Stale() bool { return r.MaxAge > 0 && r.Newest != "" && r.NewestAge > r.MaxAge }

// Run performs the drill. It returns the report even on failure (nil only
// when the store could not be listed), with an error joining every problem.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	start := o.Now()
	groups, err := restore.ListGroups(ctx, o.Store, o.Layout)
	if err != nil {
		return nil, err
	}
	res := &Result{MaxAge: o.MaxAge}
	newest, err := restore.Newest(groups)
	if err != nil {
		return res, fmt.Errorf("%w under %s in %s", err, o.Layout.Root(), o.Store)
	}
	res.Newest, res.NewestAge = newest.ID, start.Sub(newest.Time)
	var errs []error
	if res.Stale() {
		errs = append(errs, fmt.Errorf("%w: the newest complete group %s is %s old, more than max_age_hours %g",
			ErrStale, newest.ID, res.NewestAge.Round(time.Minute), o.MaxAge.Hours()))
	}

	found, err := restore.Find(groups, o.BackupID)
	if err != nil {
		return res, errors.Join(append(errs, fmt.Errorf("%w under %s in %s", err, o.Layout.Root(), o.Store))...)
	}
	res.ID = found.ID
	g, err := restore.Open(ctx, o.Store, o.Layout, found)
	if err != nil {
		return res, errors.Join(append(errs, err)...)
	}
	res.Legacy = g.Legacy
	if err := g.CheckIdentities(o.Identities); err != nil {
		return res, errors.Join(append(errs, err)...)
	}
	o.Log.Info("verifying", "backup_id", g.ID, "files", len(g.Files), "legacy", g.Legacy)

	work, err := os.MkdirTemp(o.TempDir, "sba-verify-")
	if err != nil {
		return res, errors.Join(append(errs, fmt.Errorf("runner work dir: %w", err))...)
	}
	defer os.RemoveAll(work)
	fetched, ferr := restore.Fetch(ctx, o.Store, g, work, o.Identities, o.Log)
	if ferr != nil {
		errs = append(errs, ferr)
	}
	for _, fx := range fetched {
		f := File{Name: fx.Name, Size: fx.Bytes, SHA256: fx.Sum, PageSize: fx.Header.PageSize,
			PageCount: fx.Header.PageCount, ManifestPageCount: fx.PageCount, Err: fx.Err}
		if f.Err == nil {
			if f.Tables, err = tables(ctx, fx.Path); err != nil {
				f.Err = fmt.Errorf("%s: %w", fx.Name, err)
				errs = append(errs, f.Err)
			}
		}
		res.Files = append(res.Files, f)
	}
	res.Duration = o.Now().Sub(start)
	return res, errors.Join(errs...)
}
