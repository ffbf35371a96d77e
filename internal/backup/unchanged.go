package backup

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// maxManifestBytes bounds what is read of a manifest from the bucket.
const maxManifestBytes = 16 << 20

// previous is the newest complete group, whose unchanged files a backup
// copies server-side instead of sending them again.
type previous struct {
	id    string
	files map[string]catalog.File
}

// hashes gives the helper the snapshot hash of each reusable file.
func (p *previous) hashes() map[string]string {
	if p == nil {
		return nil
	}
	m := make(map[string]string, len(p.files))
	for name, f := range p.files {
		m[name] = f.SHA256
	}
	return m
}

// findPrevious reads the newest complete group's manifest. Any problem
// only means every file is sent in full: it is logged, never fatal.
func (o Options) findPrevious(ctx context.Context) *previous {
	objs, err := o.Store.List(ctx, o.Layout.Root())
	if err != nil {
		o.Log.Warn("cannot list earlier backups: every database is sent in full", "error", err)
		return nil
	}
	groups, _ := o.Layout.Groups(objs)
	for _, g := range groups {
		if g.State != catalog.StateComplete {
			continue
		}
		m, err := readManifest(ctx, o.Store, o.Layout.ManifestKey(g.ID))
		if err != nil {
			o.Log.Warn("cannot read the newest backup's manifest: every database is sent in full", "group", g.ID, "error", err)
			return nil
		}
		p := &previous{id: g.ID, files: map[string]catalog.File{}}
		sealed := o.sealedLikeThisRun(m)
		for _, f := range m.Files {
			// Only objects stored the way this run stores them can be reused.
			if f.Compression == o.Compression && sealed(f) && f.IntegrityCheck == "ok" && len(f.SHA256) == 64 {
				p.files[f.Name] = f
			}
		}
		if len(p.files) == 0 && len(m.Files) > 0 {
			o.Log.Info("the newest backup was stored with other compression or encryption settings: every database is sent in full", "group", g.ID)
		}
		return p
	}
	return nil
}

// sealedLikeThisRun reports whether a file of m is encrypted exactly as
// this run encrypts: not at all, or with age to the same set of recipients.
// A changed set (a key added or revoked) means every object is sent anew.
func (o Options) sealedLikeThisRun(m *catalog.Manifest) func(catalog.File) bool {
	if o.Recipients == nil {
		return func(f catalog.File) bool { return f.Encryption == "" }
	}
	same := encryption.Equal(m.Recipients, o.Recipients.Strings())
	return func(f catalog.File) bool { return same && f.Encryption == catalog.EncryptionAge }
}

func readManifest(ctx context.Context, st store.Backend, key string) (*catalog.Manifest, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return catalog.ParseManifest(b)
}

// copyUnchanged copies the previous group's object of a database whose
// snapshot the host found byte-identical. The returned result is set once
// the new key may hold an object (so a failure can clean it up).
func (o Options) copyUnchanged(ctx context.Context, p *previous, f snapshot.File, id string) (*FileResult, error) {
	start := time.Now()
	if p == nil {
		return nil, fmt.Errorf("helper reported an unchanged snapshot, but no previous backup was given")
	}
	old, ok := p.files[f.Name]
	if !ok || old.SHA256 != f.SHA256 || old.Size != f.Size || old.PageSize != f.PageSize || old.PageCount != f.PageCount {
		return nil, fmt.Errorf("helper reported an unchanged snapshot that does not match backup %s", p.id)
	}
	nf := old
	ext := snapshot.Extension(old.Compression)
	if old.Encryption != "" {
		ext += encryption.Ext
	}
	nf.Key = o.Layout.Key(id, f.Name+ext)
	nf.CopiedFrom = p.id
	nf.SQLiteVersion = f.SQLiteVersion
	fr := &FileResult{File: nf}
	if err := store.Copy(ctx, o.Store, old.Key, nf.Key); err != nil {
		return fr, fmt.Errorf("unchanged since %s: copy %s: %w", p.id, old.Key, err)
	}
	fr.Duration = time.Since(start)
	o.Log.Info("unchanged since the previous backup: copied, not sent", "file", f.Name, "from", p.id)
	return fr, nil
}
