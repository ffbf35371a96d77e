package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// Latest names the newest complete group.
const Latest = "latest"

// maxManifestBytes bounds the manifest read from the (untrusted) bucket.
const maxManifestBytes = 16 << 20

// ErrNoBackups is returned when the environment holds no complete group.
var ErrNoBackups = errors.New("no complete backup group")

// ListGroups lists every group of the layout's environment, newest first
// (catalog.Layout.Groups); keys that are not <id>/<name> are left out.
func ListGroups(ctx context.Context, st store.Backend, l catalog.Layout) ([]catalog.Group, error) {
	objs, err := st.List(ctx, l.Root())
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", l.Root(), st, err)
	}
	groups, _ := l.Groups(objs)
	return groups, nil
}

// Newest returns the newest group that is a backup (complete or legacy),
// or ErrNoBackups.
func Newest(groups []catalog.Group) (catalog.Group, error) {
	for _, g := range groups {
		if g.State.IsBackup() {
			return g, nil
		}
	}
	return catalog.Group{}, ErrNoBackups
}

// Group is a group resolved for restoring: its files, from the manifest or,
// for a legacy group, from the listing.
type Group struct {
	ID       string
	Legacy   bool
	Manifest *catalog.Manifest // nil for a legacy group
	Files    []catalog.File    // a legacy file has Name, Key, StoredSize and Compression "none"
}

// Resolve finds the group id ("latest" = the newest complete or legacy
// group) and opens it.
func Resolve(ctx context.Context, st store.Backend, l catalog.Layout, id string) (*Group, error) {
	groups, err := ListGroups(ctx, st, l)
	if err != nil {
		return nil, err
	}
	g, err := Find(groups, id)
	if err != nil {
		return nil, fmt.Errorf("%w under %s in %s", err, l.Root(), st)
	}
	return Open(ctx, st, l, g)
}

// Find picks the group id ("latest" or "" = the newest backup) from a
// listing.
func Find(groups []catalog.Group, id string) (catalog.Group, error) {
	if id == Latest || id == "" {
		return Newest(groups)
	}
	for _, g := range groups {
		if g.ID == id {
			return g, nil
		}
	}
	return catalog.Group{}, fmt.Errorf("backup group %s not found", id)
}

// Open reads a listed group's manifest, or the objects of a legacy group.
// Everything read from the bucket is checked: names are plain file names,
// keys lie inside the group. An incomplete group is refused.
func Open(ctx context.Context, st store.Backend, l catalog.Layout, g catalog.Group) (*Group, error) {
	switch g.State {
	case catalog.StateComplete:
		return readManifest(ctx, st, l, g.ID)
	case catalog.StateLegacy:
		return legacyGroup(l, g)
	}
	return nil, fmt.Errorf("backup group %s is %s (no manifest: the backup never finished): refusing to use it", g.ID, g.State)
}

func readManifest(ctx context.Context, st store.Backend, l catalog.Layout, id string) (*Group, error) {
	key := l.ManifestKey(id)
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", key, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(rc, maxManifestBytes+1)); err != nil {
		return nil, fmt.Errorf("download %s: %w", key, err)
	}
	if buf.Len() > maxManifestBytes {
		return nil, fmt.Errorf("manifest %s is larger than %d bytes: refusing to read it", key, maxManifestBytes)
	}
	m, err := catalog.ParseManifest(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", key, err)
	}
	if m.GroupID != id {
		return nil, fmt.Errorf("manifest %s names group %s: it belongs to another group", key, m.GroupID)
	}
	if len(m.Files) == 0 {
		return nil, fmt.Errorf("manifest %s lists no files", key)
	}
	for _, f := range m.Files {
		gid, name, ok := l.Split(f.Key)
		if !ok || gid != id || name == catalog.ManifestName || name == catalog.InProgressName {
			return nil, fmt.Errorf("manifest %s: file %s has key %q outside its group", key, f.Name, f.Key)
		}
	}
	return &Group{ID: id, Manifest: m, Files: m.Files}, nil
}

func legacyGroup(l catalog.Layout, lg catalog.Group) (*Group, error) {
	g := &Group{ID: lg.ID, Legacy: true}
	for _, o := range lg.Objects {
		_, name, ok := l.Split(o.Key)
		if !ok || !strings.HasSuffix(name, catalog.LegacyExt) {
			continue
		}
		if err := catalog.ValidateName(name); err != nil {
			return nil, fmt.Errorf("legacy group %s: object %q: %w", lg.ID, o.Key, err)
		}
		g.Files = append(g.Files, catalog.File{Name: name, Key: o.Key, StoredSize: o.Size, Compression: "none"})
	}
	return g, nil
}

// Select keeps the files whose names match glob ("" keeps all) and fails
// when none does.
func (g *Group) Select(glob string) error {
	if glob == "" {
		return nil
	}
	var keep []catalog.File
	var names []string
	for _, f := range g.Files {
		names = append(names, f.Name)
		ok, err := path.Match(glob, f.Name)
		if err != nil {
			return fmt.Errorf("files %q: %w", glob, err)
		}
		if ok {
			keep = append(keep, f)
		}
	}
	if len(keep) == 0 {
		return fmt.Errorf("files %q matches none of the databases of group %s (%s)", glob, g.ID, strings.Join(names, ", "))
	}
	g.Files = keep
	return nil
}

// CheckIdentities refuses, before anything is downloaded or written, an
// encrypted group when no identity is given or when none of ids is for one
// of the recipients its manifest records. (Decryption itself, in Fetch,
// has the last word: the manifest comes from the bucket.)
func (g *Group) CheckIdentities(ids *encryption.Identities) error {
	encrypted := false
	for _, f := range g.Files {
		encrypted = encrypted || f.Encryption != ""
	}
	if !encrypted || g.Manifest == nil {
		return nil
	}
	rs := g.Manifest.Recipients
	if ids == nil {
		return fmt.Errorf("input encryption_identity: backup %s is encrypted (recipients %s): set it to the private key (AGE-SECRET-KEY-1…) of one of them",
			g.ID, encryption.Describe(rs))
	}
	if !ids.Matches(rs) {
		return fmt.Errorf("input encryption_identity: does not decrypt backup %s (recipients %s; the identity given is for %s)",
			g.ID, encryption.Describe(rs), encryption.Describe(ids.Recipients()))
	}
	return nil
}
