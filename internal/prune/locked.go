package prune

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
)

// lockTimeLayout is how a retain-until date is shown.
const lockTimeLayout = "2006-01-02 15:04Z"

// Locker is a Store that can tell whether S3 Object Lock keeps an object
// from being deleted (s3store.Backend is one).
type Locker interface {
	// LockedUntil returns the end of key's retention (it may have passed),
	// or the zero time when it has none.
	LockedUntil(ctx context.Context, key string) (time.Time, error)
}

// lockedGroups takes out of a deletion's NotDeletedError the groups that
// Object Lock retention still protects: a group whose manifest is locked
// (its other objects were never tried), or whose every object left is
// locked. Only keys the store refused with AccessDenied are looked up. It
// returns those groups with their latest retain-until date, and the error
// that remains: nil when every object left is locked.
func lockedGroups(ctx context.Context, st Store, l catalog.Layout, err error, now time.Time, log *slog.Logger) (map[string]time.Time, error) {
	var nd *NotDeletedError
	lk, ok := st.(Locker)
	if !ok || !errors.As(err, &nd) {
		return nil, err
	}
	until := map[string]time.Time{} // key -> retain until, for locked keys only
	byGroup := map[string][]string{}
	for k, reason := range nd.Left {
		id, _, _ := l.Split(k)
		byGroup[id] = append(byGroup[id], k)
		if !strings.HasPrefix(reason, "AccessDenied") {
			continue
		}
		if t, lerr := lk.LockedUntil(ctx, k); lerr == nil && t.After(now) {
			until[k] = t
		}
	}
	locked := map[string]time.Time{}
	for id, keys := range byGroup {
		_, manifestLocked := until[l.ManifestKey(id)]
		var latest time.Time
		all := true
		for _, k := range keys {
			t, ok := until[k]
			all = all && (ok || (manifestLocked && nd.Left[k] == ""))
			if t.After(latest) {
				latest = t
			}
		}
		if !all || latest.IsZero() {
			continue
		}
		locked[id] = latest
		for _, k := range keys {
			delete(nd.Left, k)
		}
		log.Warn("group not deleted: Object Lock retention holds it", "id", id, "locked_until", latest.UTC().Format(time.RFC3339))
	}
	if len(locked) == 0 {
		return nil, err
	}
	if len(nd.Left) == 0 {
		return locked, nil
	}
	return locked, err
}
