package prune

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// ErrOutsideGroup is returned, before anything is deleted, when a key to
// delete does not lie in the group it was listed under: prune never
// touches a key outside <prefix>/<environment>/<id>/.
var ErrOutsideGroup = errors.New("key outside its group")

// maxListedKeys bounds how many keys NotDeletedError prints.
const maxListedKeys = 20

// NotDeletedError lists the objects that were to be deleted and are still
// in the store.
type NotDeletedError struct {
	Store string
	Total int               // objects prune set out to delete
	Left  map[string]string // key -> reason, "" when the store gave none
	Cause error
}

// Keys returns the keys not deleted, sorted.
func (e *NotDeletedError) Keys() []string {
	keys := make([]string, 0, len(e.Left))
	for k := range e.Left {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Error is one line per key not deleted (at most 20), after a summary.
func (e *NotDeletedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "delete from %s: %d of %d objects were not deleted: %v", e.Store, len(e.Left), e.Total, e.Cause)
	for i, k := range e.Keys() {
		if i == maxListedKeys {
			fmt.Fprintf(&b, "\nnot deleted: ... and %d more", len(e.Left)-maxListedKeys)
			break
		}
		fmt.Fprintf(&b, "\nnot deleted: %s", k)
		if r := e.Left[k]; r != "" {
			fmt.Fprintf(&b, " (%s)", r)
		}
	}
	return b.String()
}

func (e *NotDeletedError) Unwrap() error { return e.Cause }

// deleteGroups deletes every object of the groups: first their manifests,
// so that a group that is partly deleted never looks like a backup, then
// the rest of each group whose manifest is gone. Any failure is checked by
// listing again, and every object still there is reported. It returns the
// ids of the groups now wholly gone.
func deleteGroups(ctx context.Context, st Store, l catalog.Layout, groups []catalog.Group, log *slog.Logger) ([]string, error) {
	var manifests []string
	rest := map[string][]string{} // id -> other keys
	total := 0
	for _, g := range groups {
		for _, o := range g.Objects {
			id, name, ok := l.Split(o.Key)
			if !ok || id != g.ID || !strings.HasPrefix(o.Key, l.GroupPrefix(g.ID)) {
				return nil, fmt.Errorf("refuse to delete %q (group %s, root %s): %w", o.Key, g.ID, l.Root(), ErrOutsideGroup)
			}
			total++
			if name == catalog.ManifestName {
				manifests = append(manifests, o.Key)
			} else {
				rest[g.ID] = append(rest[g.ID], o.Key)
			}
		}
	}

	var errs []error
	manifestLeft := map[string]bool{}
	if len(manifests) > 0 {
		if err := st.Delete(ctx, manifests); err != nil {
			errs = append(errs, err)
			var de *store.DeleteError
			if !errors.As(err, &de) {
				return notDeleted(ctx, st, l, groups, total, errs)
			}
			for k := range de.Failed {
				manifestLeft[k] = true
			}
		}
	}
	var keys []string
	for _, g := range groups {
		if !manifestLeft[l.ManifestKey(g.ID)] {
			keys = append(keys, rest[g.ID]...)
		}
	}
	if len(keys) > 0 {
		if err := st.Delete(ctx, keys); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return notDeleted(ctx, st, l, groups, total, errs)
	}
	ids := make([]string, len(groups))
	for i, g := range groups {
		ids[i] = g.ID
		log.Info("deleted group", "id", g.ID, "state", g.State, "objects", len(g.Objects), "bytes", g.StoredBytes())
	}
	return ids, nil
}

// notDeleted lists the root again and reports every object of the groups
// still there, with the store's reason where it gave one, and the groups
// wholly gone all the same. If the listing fails too, every object counts
// as not deleted.
func notDeleted(ctx context.Context, st Store, l catalog.Layout, groups []catalog.Group, total int, errs []error) ([]string, error) {
	reasons := map[string]string{}
	for _, err := range errs {
		var de *store.DeleteError
		if errors.As(err, &de) {
			for k, r := range de.Failed {
				reasons[k] = r
			}
		}
	}
	e := &NotDeletedError{Store: st.String(), Total: total, Left: map[string]string{}, Cause: errors.Join(errs...)}
	still := map[string]bool{}
	objs, lerr := st.List(ctx, l.Root())
	if lerr != nil {
		e.Cause = errors.Join(e.Cause, fmt.Errorf("list %s again to see what is left: %w", l.Root(), lerr))
	}
	for _, o := range objs {
		still[o.Key] = true
	}
	for _, g := range groups {
		for _, o := range g.Objects {
			if lerr != nil || still[o.Key] {
				e.Left[o.Key] = reasons[o.Key]
			}
		}
	}
	if len(e.Left) == 0 { // listed as gone, but the store said these failed: believe it
		for k, r := range reasons {
			e.Left[k] = r
		}
	}
	var gone []string
	for _, g := range groups {
		left := false
		for _, o := range g.Objects {
			if _, ok := e.Left[o.Key]; ok {
				left = true
			}
		}
		if !left {
			gone = append(gone, g.ID)
		}
	}
	return gone, e
}
