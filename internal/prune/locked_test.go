package prune

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// lockingStore is a memStore whose objects can carry an Object Lock
// retention, as s3store.Backend reports it.
type lockingStore struct {
	*memStore
	until map[string]time.Time
}

var _ Locker = lockingStore{}

func (l lockingStore) LockedUntil(ctx context.Context, key string) (time.Time, error) {
	return l.until[key], nil
}

const lockedReason = "AccessDenied: Access Denied because object protected by object lock."

func TestLockedGroupsAreReportedNotFailed(t *testing.T) {
	later := planNow.Add(36 * time.Hour)
	cases := []struct {
		name       string
		setup      func(st lockingStore, ids []string)
		wantLocked []int    // indexes of ids reported locked
		wantGone   []int    // indexes of ids deleted
		wantLeft   []string // keys still reported as not deleted (an error), by name in group ids[4]
	}{
		{"a locked manifest keeps its group whole", func(st lockingStore, ids []string) {
			st.lock(testLayout.ManifestKey(ids[3]), later)
		}, []int{3}, []int{2, 4, 5}, nil},
		{"the locked objects of an incomplete group", func(st lockingStore, ids []string) {
			for _, k := range st.groupKeys(ids[2]) {
				if !strings.HasSuffix(k, "/in-progress") {
					st.lock(k, later)
				}
			}
		}, []int{2}, []int{3, 4, 5}, nil},
		{"access denied without a retention stays an error", func(st lockingStore, ids []string) {
			st.failKeys[testLayout.ManifestKey(ids[4])] = lockedReason
		}, nil, []int{2, 3, 5}, []string{"manifest.json", "production.sqlite3.zst", "production_cable.sqlite3.zst",
			"production_cache.sqlite3.zst", "production_queue.sqlite3.zst"}},
		{"a retention that has passed stays an error", func(st lockingStore, ids []string) {
			st.lock(testLayout.ManifestKey(ids[4]), planNow.Add(-time.Hour))
		}, nil, []int{2, 3, 5}, []string{"manifest.json", "production.sqlite3.zst", "production_cable.sqlite3.zst",
			"production_cache.sqlite3.zst", "production_queue.sqlite3.zst"}},
		{"a lock beside a real failure", func(st lockingStore, ids []string) {
			st.lock(testLayout.ManifestKey(ids[3]), later)
			st.failKeys[testLayout.Key(ids[4], "production.sqlite3.zst")] = "InternalError: try again"
		}, []int{3}, []int{2, 5}, []string{"production.sqlite3.zst"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem, ids := bucket(t)
			st := lockingStore{memStore: mem, until: map[string]time.Time{}}
			tc.setup(st, ids)
			res, err := Run(t.Context(), Options{Store: st, Layout: testLayout, Policy: seedPolicy, Now: planNow})
			var nd *NotDeletedError
			switch {
			case len(tc.wantLeft) == 0 && err != nil:
				t.Fatalf("locked groups made prune fail: %v", err)
			case len(tc.wantLeft) > 0 && !errors.As(err, &nd):
				t.Fatalf("got %v, want a NotDeletedError", err)
			}
			if nd != nil {
				var want []string
				for _, name := range tc.wantLeft {
					want = append(want, testLayout.Key(ids[4], name))
				}
				if got := nd.Keys(); !slices.Equal(got, want) {
					t.Errorf("not deleted:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
			var locked []string
			for _, i := range tc.wantLocked {
				locked = append(locked, ids[i])
				if got := res.Locked[ids[i]]; !got.Equal(later) {
					t.Errorf("group %s locked until %s, want %s", ids[i], got, later)
				}
				for _, k := range st.groupKeys(ids[i]) {
					if strings.HasSuffix(k, "/in-progress") {
						continue
					}
					if _, ok := st.objs[k]; !ok {
						t.Errorf("locked object %s is gone", k)
					}
				}
				if text := res.Text(); !strings.Contains(text, "locked until "+later.Format(lockTimeLayout)) {
					t.Errorf("report does not show the lock:\n%s", text)
				}
			}
			if len(res.Locked) != len(locked) {
				t.Errorf("locked groups %v, want %v", res.Locked, locked)
			}
			var gone []string
			for _, i := range tc.wantGone {
				gone = append(gone, ids[i])
			}
			if !slices.Equal(res.Deleted, gone) {
				t.Errorf("deleted groups %v, want %v", res.Deleted, gone)
			}
			headline := strings.TrimSpace(res.Text()[strings.LastIndex(strings.TrimSpace(res.Text()), "\n"):])
			if len(locked) > 0 && !strings.Contains(headline, "locked (Object Lock)") {
				t.Errorf("headline %q does not count the locked groups", headline)
			}
			if len(tc.wantLeft) == 0 && strings.Contains(headline, "not deleted") {
				t.Errorf("headline %q counts locked groups as failures", headline)
			}
		})
	}
}

// lock gives key a retention: Delete refuses it as S3 does.
func (l lockingStore) lock(key string, until time.Time) {
	l.until[key] = until
	l.failKeys[key] = lockedReason
}
