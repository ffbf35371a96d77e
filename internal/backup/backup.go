// Package backup is the backup command: it checks the destination, takes
// consistent snapshots on the host, streams them into the store while
// verifying them on the runner, and writes the group's manifest last.
package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// Source is where the databases live: a remote host over SSH or a local
// directory. Snapshot calls emit for each finished snapshot, in order,
// while it may already be working on the next one.
type Source interface {
	// previous maps names to the snapshot SHA-256 of the newest complete
	// backup: a byte-identical snapshot is reported Unchanged, not sent.
	Snapshot(ctx context.Context, previous map[string]string, emit func(snapshot.File) error) error
	// Open reads a finished snapshot reported by Snapshot.
	Open(ctx context.Context, path string) (io.ReadCloser, error)
	// Remove deletes a snapshot once it is stored, freeing host disk.
	Remove(ctx context.Context, path string) error
	// Describe names the source for the manifest and logs (user@host:path).
	Describe() (host, path string)
	// Close removes every temporary file on the host and disconnects.
	Close() error
}

// Options configure one backup run.
type Options struct {
	Store       store.Backend
	Connect     func(ctx context.Context) (Source, error) // called after the store check
	Layout      catalog.Layout
	Compression string
	Now         func() time.Time
	Log         *slog.Logger
	TempDir     string // runner-side scratch for verification ("" = os.TempDir)
	ToolVersion string
	// SkipUnchanged copies a database's object server-side from the newest
	// complete group when its snapshot is byte-identical, instead of sending it.
	SkipUnchanged bool
	// Recipients, when set, encrypt every object on the runner after
	// compression (<name>.zst.age); the manifest records them.
	Recipients *encryption.Recipients
	// ProgressEvery is how often a long transfer logs its progress.
	ProgressEvery time.Duration
}

// FileResult is one stored database.
type FileResult struct {
	catalog.File
	Duration time.Duration
}

// Result is a finished backup.
type Result struct {
	ID            string
	ManifestKey   string
	Files         []FileResult
	OriginalBytes int64
	StoredBytes   int64
	Duration      time.Duration
}

// Run performs one backup. On any failure no manifest is written, the
// files already uploaded are removed (best effort; the in-progress marker
// stays if they cannot be, so the group shows as incomplete) and the
// host's temp dir is removed.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
	start := o.Now()
	// Fail fast on a wrong bucket or credentials, before touching the host.
	if err := o.Store.Check(ctx); err != nil {
		return nil, fmt.Errorf("check destination %s: %w", o.Store, err)
	}
	id := catalog.NewID(start)
	existing, err := o.Store.List(ctx, o.Layout.GroupPrefix(id))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", o.Layout.GroupPrefix(id), err)
	}
	if len(existing) > 0 {
		return nil, fmt.Errorf("backup group %s already exists in %s: another backup started in the same second?", id, o.Store)
	}

	var prev *previous
	if o.SkipUnchanged {
		prev = o.findPrevious(ctx)
	}

	src, err := o.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		cerr := src.Close()
		switch {
		case cerr == nil:
		case err == nil:
			// The group is complete; the host's temp dir is removed by the
			// next run's helper (its lock is gone with this run's helper).
			o.Log.Warn("backup complete, but its temp dir on the host could not be removed now; the next run removes it", "error", cerr)
		default:
			err = errors.Join(err, fmt.Errorf("clean up on host: %w", cerr))
		}
	}()
	host, path := src.Describe()

	marker, _ := json.Marshal(map[string]string{"group_id": id, "started_at": start.UTC().Format(time.RFC3339), "host": host})
	markerKey := o.Layout.InProgressKey(id)
	if err := o.Store.Put(ctx, markerKey, bytes.NewReader(marker), int64(len(marker))); err != nil {
		return nil, fmt.Errorf("upload %s: %w", markerKey, err)
	}

	res = &Result{ID: id, ManifestKey: o.Layout.ManifestKey(id)}
	var uploaded []string
	defer func() {
		if err != nil {
			o.discard(uploaded, markerKey)
		}
	}()

	// Checks on the runner's copy run one at a time beside the transfers:
	// while file n is checked, file n+1 streams (and n+2 is snapshotted).
	vctx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	checks := make(chan func(context.Context) error)
	var checkErr error
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		for check := range checks {
			if checkErr != nil {
				continue
			}
			if checkErr = check(vctx); checkErr != nil {
				cancelAll()
			}
		}
	}()
	err = src.Snapshot(vctx, prev.hashes(), func(f snapshot.File) error {
		if f.Unchanged {
			fr, err := o.copyUnchanged(vctx, prev, f, id)
			if fr != nil {
				uploaded = append(uploaded, fr.Key)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", f.Name, err)
			}
			res.Files = append(res.Files, *fr)
			res.OriginalBytes += fr.Size
			res.StoredBytes += fr.StoredSize
			return nil
		}
		key := o.Layout.Key(id, f.Name+o.extension(f.Compression))
		uploaded = append(uploaded, key)
		fr, check, err := o.transfer(vctx, src, f, key)
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		named := func(ctx context.Context) error {
			if err := check(ctx); err != nil {
				return fmt.Errorf("%s: %w", f.Name, err)
			}
			return nil
		}
		select {
		case checks <- named:
		case <-vctx.Done():
			_ = check(vctx) // returns at once on a done context; removes the runner copy
			return vctx.Err()
		}
		res.Files = append(res.Files, *fr)
		res.OriginalBytes += fr.Size
		res.StoredBytes += fr.StoredSize
		if err := src.Remove(vctx, f.Path); err != nil {
			return fmt.Errorf("%s: remove snapshot on host: %w", f.Name, err)
		}
		return nil
	})
	close(checks)
	<-checked
	if checkErr != nil {
		err = checkErr // the root cause; Snapshot only saw the cancel
	}
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	if len(res.Files) == 0 {
		return nil, fmt.Errorf("backup %s: no database was snapshotted", id)
	}

	m := &catalog.Manifest{
		Format: catalog.ManifestFormat, Tool: "sqlite-backup-action", ToolVersion: o.ToolVersion,
		GroupID: id, CreatedAt: start.UTC(), CompletedAt: o.Now().UTC(),
		Host: host, RemotePath: path, Environment: o.Layout.Environment,
	}
	if o.Recipients != nil {
		m.Recipients = o.Recipients.Strings()
	}
	for _, f := range res.Files {
		m.Files = append(m.Files, f.File)
	}
	body, err := m.Encode()
	if err != nil {
		return nil, err
	}
	// The manifest goes last: only now does the group count as a backup.
	if err := o.Store.Put(ctx, res.ManifestKey, bytes.NewReader(body), int64(len(body))); err != nil {
		return nil, fmt.Errorf("upload %s: %w", res.ManifestKey, err)
	}
	if derr := o.Store.Delete(ctx, []string{markerKey}); derr != nil {
		o.Log.Warn("could not remove the in-progress marker; the group is complete anyway (it has a manifest)", "key", markerKey, "error", derr)
	}
	res.Duration = o.Now().Sub(start)
	return res, nil
}

// extension ends the key of a file stored by this run: .zst, .zst.age...
func (o Options) extension(compression string) string {
	if o.Recipients != nil {
		return snapshot.Extension(compression) + encryption.Ext
	}
	return snapshot.Extension(compression)
}

// discard removes the objects of a failed group: files first, then the
// marker only if every file went, so a group is never left looking like
// anything but incomplete. Runs on a fresh context: ctx may be done.
func (o Options) discard(keys []string, marker string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if len(keys) > 0 {
		if err := o.Store.Delete(ctx, keys); err != nil {
			o.Log.Warn("failed backup: could not remove its objects; the group stays marked in-progress", "error", err)
			return
		}
	}
	if err := o.Store.Delete(ctx, []string{marker}); err != nil {
		o.Log.Warn("failed backup: could not remove its in-progress marker", "key", marker, "error", err)
	}
}
