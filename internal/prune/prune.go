// Package prune is the prune and list commands: it lists the groups of one
// environment, decides with the retention policy, enforces the guard rails
// that make unattended deletion safe, and deletes what the plan removes.
package prune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/retention"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// maxManifestBytes bounds the read of a manifest (the bucket is untrusted).
const maxManifestBytes = 16 << 20

// Store is what prune needs of a store.Backend; see its contracts.
type Store interface {
	// List returns every object under prefix, sorted by key, all pages.
	List(ctx context.Context, prefix string) ([]store.Object, error)
	// Get returns an object's bytes; a missing key wraps store.ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes keys (missing ones are fine); a *store.DeleteError
	// names those it could not remove.
	Delete(ctx context.Context, keys []string) error
	String() string
}

var _ Store = store.Backend(nil)

// Options configure one prune run.
type Options struct {
	Store  Store
	Layout catalog.Layout
	Policy retention.Policy
	// ShrinkGuard: when the newest backup's original size is below this
	// fraction of the previous backup's, nothing is deleted this run.
	// 0 turns the guard off.
	ShrinkGuard float64
	DryRun      bool
	Now         time.Time // ages are measured from here; never read inside
	Log         *slog.Logger
}

// Result is what a prune run decided and did. Run returns it, with the
// decisions filled in, even when deletion failed.
type Result struct {
	*Plan
	Store  string
	Root   string
	DryRun bool
	// Shrink is set when the shrink guard held deletion back.
	Shrink *Shrink
	// Deleted holds the ids of the groups whose every object is gone.
	Deleted []string
	// Locked holds the groups S3 Object Lock kept from deletion, with the
	// date their retention ends.
	Locked map[string]time.Time
}

// Shrink describes a tripped shrink guard.
type Shrink struct {
	Newest, Previous           string // group ids
	NewestBytes, PreviousBytes int64  // original (uncompressed) sizes
	Guard                      float64
}

func (s *Shrink) String() string {
	return fmt.Sprintf("shrink guard: the newest backup %s holds %d bytes, less than %.2f of the previous backup %s (%d bytes); nothing deleted this run (check the backup, or lower shrink_guard)",
		s.Newest, s.NewestBytes, s.Guard, s.Previous, s.PreviousBytes)
}

// Run lists the environment's groups, plans by the policy and the guard
// rails, and deletes the removed groups unless DryRun is set or the
// shrink guard trips. It never touches a key outside the removed groups.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now.IsZero() {
		return nil, errors.New("prune: no time given")
	}
	root := o.Layout.Root()
	objs, err := o.Store.List(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", root, o.Store, err)
	}
	groups, foreign := o.Layout.Groups(objs)
	plan, err := MakePlan(groups, foreign, o.Policy, o.Now)
	if err != nil {
		return nil, err
	}
	res := &Result{Plan: plan, Store: o.Store.String(), Root: root, DryRun: o.DryRun}
	for _, f := range foreign {
		o.Log.Info("foreign object left alone", "key", f.Key, "bytes", f.Size)
	}
	remove := plan.Remove()
	o.Log.Info("prune plan", "store", res.Store, "root", root, "policy", o.Policy.String(),
		"groups", len(plan.Decisions), "keep", plan.Kept(), "remove", len(remove), "foreign", len(foreign), "dry_run", o.DryRun)
	if len(remove) == 0 {
		return res, nil
	}
	if res.Shrink, err = shrinkCheck(ctx, o.Store, plan, o.ShrinkGuard); err != nil {
		return res, err
	}
	if res.Shrink != nil {
		o.Log.Warn(res.Shrink.String())
		return res, nil
	}
	if o.DryRun {
		return res, nil
	}
	res.Deleted, err = deleteGroups(ctx, o.Store, o.Layout, remove, o.Log)
	res.Locked, err = lockedGroups(ctx, o.Store, o.Layout, err, o.Now, o.Log)
	return res, err
}

// shrinkCheck compares the original sizes of the two newest backups.
func shrinkCheck(ctx context.Context, st Store, plan *Plan, guard float64) (*Shrink, error) {
	if guard <= 0 {
		return nil, nil
	}
	var two []catalog.Group
	for _, d := range plan.Decisions {
		if d.Group.State.IsBackup() {
			two = append(two, d.Group)
			if len(two) == 2 {
				break
			}
		}
	}
	if len(two) < 2 {
		return nil, nil
	}
	var sizes [2]int64
	for i, g := range two {
		n, err := OriginalBytes(ctx, st, g)
		if err != nil {
			return nil, fmt.Errorf("shrink guard: %w", err)
		}
		sizes[i] = n
	}
	if sizes[1] <= 0 || float64(sizes[0]) >= guard*float64(sizes[1]) {
		return nil, nil
	}
	return &Shrink{Newest: two[0].ID, Previous: two[1].ID, NewestBytes: sizes[0], PreviousBytes: sizes[1], Guard: guard}, nil
}

// OriginalBytes is a backup's total uncompressed database size: the sum of
// the manifest's file sizes, or of the raw *.sqlite3 objects of a legacy
// group.
func OriginalBytes(ctx context.Context, st Store, g catalog.Group) (int64, error) {
	switch g.State {
	case catalog.StateLegacy:
		return g.LegacyBytes(), nil
	case catalog.StateComplete:
	default:
		return 0, fmt.Errorf("group %s is %s: no original size", g.ID, g.State)
	}
	var key string
	for _, o := range g.Objects {
		if strings.HasSuffix(o.Key, "/"+catalog.ManifestName) {
			key = o.Key
		}
	}
	if key == "" {
		return 0, fmt.Errorf("group %s: no %s", g.ID, catalog.ManifestName)
	}
	rc, err := st.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	m, err := catalog.ParseManifest(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n, nil
}
