package prune

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/retention"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

var seedPolicy = retention.Policy{KeepMin: 2, RetentionDays: 14}

// bucket is a store holding, newest first: two recent complete groups, an
// old incomplete one, two old complete ones, an old legacy one, foreign
// keys under the root and a group of another environment.
func bucket(t *testing.T) (st *memStore, ids []string) {
	t.Helper()
	st = newMemStore()
	for _, g := range []struct {
		age   time.Duration
		state catalog.State
	}{
		{days(1), catalog.StateComplete}, {days(2), catalog.StateComplete}, {days(20), catalog.StateIncomplete},
		{days(30), catalog.StateComplete}, {days(31), catalog.StateComplete}, {days(200), catalog.StateLegacy},
	} {
		ids = append(ids, st.addGroup(planNow.Add(-g.age), g.state, 1000, 2000, 3000, 4000))
	}
	st.put("db_backups/production/README.txt", []byte("hello"))
	st.put("db_backups/production/"+ids[4]+"/nested/extra.sqlite3", []byte("keep me"))
	st.put("db_backups/staging/"+ids[5]+"/production.sqlite3", []byte("other env"))
	return st, ids
}

func without(keys []string, drop ...[]string) []string {
	var out []string
	for _, k := range keys {
		if !slices.ContainsFunc(drop, func(d []string) bool { return slices.Contains(d, k) }) {
			out = append(out, k)
		}
	}
	return out
}

func TestRunDeletesExactlyTheRemovedGroups(t *testing.T) {
	st, ids := bucket(t)
	before := st.keys()
	gone := [][]string{st.groupKeys(ids[2]), st.groupKeys(ids[3]), st.groupKeys(ids[4]), st.groupKeys(ids[5])}
	res, err := Run(t.Context(), Options{Store: st, Layout: testLayout, Policy: seedPolicy, ShrinkGuard: 0.5, Now: planNow})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.keys(), without(before, gone...); !slices.Equal(got, want) {
		t.Fatalf("left:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if want := ids[2:]; !slices.Equal(res.Deleted, want) {
		t.Errorf("deleted %v, want %v", res.Deleted, want)
	}
	if kept, deleted, left := res.Counts(); kept != 2 || deleted != 4 || left != 0 {
		t.Errorf("counts %d kept, %d deleted, %d left", kept, deleted, left)
	}
	if len(res.Foreign) != 2 {
		t.Errorf("foreign %v, want README.txt and the nested key", res.Foreign)
	}
	// Manifests go first, so a half-deleted group never looks complete.
	if len(st.deletes) != 2 || len(st.deletes[0]) == 0 {
		t.Fatalf("delete calls %v, want manifests then the rest", st.deletes)
	}
	for _, k := range st.deletes[0] {
		if !strings.HasSuffix(k, "/"+catalog.ManifestName) {
			t.Errorf("first delete call holds %s", k)
		}
	}
	for _, k := range st.deletes[1] {
		if strings.HasSuffix(k, "/"+catalog.ManifestName) {
			t.Errorf("second delete call holds %s", k)
		}
	}
}

func TestRunDryRunDeletesNothing(t *testing.T) {
	st, _ := bucket(t)
	before := st.keys()
	res, err := Run(t.Context(), Options{Store: st, Layout: testLayout, Policy: seedPolicy, DryRun: true, Now: planNow})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.deletes) != 0 || !slices.Equal(st.keys(), before) {
		t.Fatalf("dry run deleted: %v", st.deletes)
	}
	if kept, deleted, left := res.Counts(); kept != 2 || deleted != 0 || left != 4 {
		t.Errorf("counts %d kept, %d deleted, %d left", kept, deleted, left)
	}
	if !strings.Contains(res.Text(), "would delete") || !strings.Contains(res.Markdown(), "4 would be deleted (dry run)") {
		t.Errorf("report does not say what would be deleted:\n%s", res.Text())
	}
}

func TestShrinkGuard(t *testing.T) {
	cases := []struct {
		name         string
		newest, prev []int64 // original sizes of the two newest backups
		newestState  catalog.State
		prevState    catalog.State
		guard        float64
		wantSkip     bool
	}{
		{"same size", []int64{1000, 1000}, []int64{1000, 1000}, catalog.StateComplete, catalog.StateComplete, 0.5, false},
		{"grew", []int64{5000}, []int64{1000}, catalog.StateComplete, catalog.StateComplete, 0.5, false},
		{"exactly half", []int64{500}, []int64{1000}, catalog.StateComplete, catalog.StateComplete, 0.5, false},
		{"just under half", []int64{499}, []int64{1000}, catalog.StateComplete, catalog.StateComplete, 0.5, true},
		{"one database missing", []int64{1000}, []int64{1000, 1000, 1000}, catalog.StateComplete, catalog.StateComplete, 0.5, true},
		{"guard off", []int64{1}, []int64{1000}, catalog.StateComplete, catalog.StateComplete, 0, false},
		{"strict guard", []int64{900}, []int64{1000}, catalog.StateComplete, catalog.StateComplete, 0.95, true},
		{"previous is legacy", []int64{100}, []int64{1000}, catalog.StateComplete, catalog.StateLegacy, 0.5, true},
		{"newest is legacy", []int64{1000}, []int64{1000}, catalog.StateLegacy, catalog.StateComplete, 0.5, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newMemStore()
			st.addGroup(planNow.Add(-days(1)), tc.newestState, tc.newest...)
			st.addGroup(planNow.Add(-days(1.5)), catalog.StateIncomplete, 1) // not a backup: skipped
			st.addGroup(planNow.Add(-days(2)), tc.prevState, tc.prev...)
			old := st.addGroup(planNow.Add(-days(40)), catalog.StateComplete, 1000)
			res, err := Run(t.Context(), Options{Store: st, Layout: testLayout, Policy: retention.Policy{KeepMin: 1, RetentionDays: 14},
				ShrinkGuard: tc.guard, Now: planNow})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Shrink != nil; got != tc.wantSkip {
				t.Fatalf("shrink guard tripped: %v, want %v (%v)", got, tc.wantSkip, res.Shrink)
			}
			if left := len(st.groupKeys(old)) > 0; left != tc.wantSkip {
				t.Errorf("old group left: %v, want %v", left, tc.wantSkip)
			}
			if tc.wantSkip && (!strings.Contains(res.Text(), "shrink guard") || !strings.Contains(res.Markdown(), "[!WARNING]")) {
				t.Errorf("report does not warn:\n%s", res.Text())
			}
		})
	}
}

func TestShrinkGuardUnreadableManifestFails(t *testing.T) {
	st := newMemStore()
	newest := st.addGroup(planNow.Add(-days(1)), catalog.StateComplete, 1000)
	st.addGroup(planNow.Add(-days(2)), catalog.StateComplete, 1000)
	st.addGroup(planNow.Add(-days(40)), catalog.StateComplete, 1000)
	st.put(testLayout.ManifestKey(newest), []byte("{not json"))
	_, err := Run(t.Context(), Options{Store: st, Layout: testLayout, Policy: seedPolicy, ShrinkGuard: 0.5, Now: planNow})
	if err == nil || !strings.Contains(err.Error(), "shrink guard") || !strings.Contains(err.Error(), newest) {
		t.Fatalf("got %v, want a shrink guard error naming %s", err, newest)
	}
	if len(st.deletes) != 0 {
		t.Errorf("deleted %v", st.deletes)
	}
}

func TestDeleteFailuresAreLoud(t *testing.T) {
	cases := []struct {
		name      string
		setup     func(st *memStore, ids []string)
		wantLeft  func(st *memStore, ids []string) []string // keys reported as not deleted
		wantGone  []int                                     // indexes of ids deleted anyway
		wantInErr []string
	}{
		{"one data object fails", func(st *memStore, ids []string) {
			st.failKeys[testLayout.Key(ids[3], "production.sqlite3.zst")] = "AccessDenied: no"
		}, func(st *memStore, ids []string) []string {
			return []string{testLayout.Key(ids[3], "production.sqlite3.zst")}
		}, []int{2, 4, 5}, []string{"1 of 19 objects were not deleted", "production.sqlite3.zst (AccessDenied: no)"}},
		{"a manifest fails: its group is left whole", func(st *memStore, ids []string) {
			st.failKeys[testLayout.ManifestKey(ids[4])] = "InternalError: try again"
		}, func(st *memStore, ids []string) []string { return st.groupKeys(ids[4]) }, []int{2, 3, 5}, []string{"5 of 19 objects"}},
		{"the request fails", func(st *memStore, ids []string) {
			st.failCall[1] = errors.New("connection reset")
		}, func(st *memStore, ids []string) []string {
			var out []string
			for _, id := range ids[2:] {
				out = append(out, without(st.groupKeys(id), []string{testLayout.ManifestKey(id)})...)
			}
			return out
		}, nil, []string{"connection reset", "not deleted: "}},
		{"the store says done but keeps a key", func(st *memStore, ids []string) {
			st.silentKeep[testLayout.Key(ids[5], "production.sqlite3")] = true
			st.failKeys[testLayout.Key(ids[2], catalog.InProgressName)] = "SlowDown"
		}, func(st *memStore, ids []string) []string {
			return []string{testLayout.Key(ids[2], catalog.InProgressName), testLayout.Key(ids[5], "production.sqlite3")}
		}, []int{3, 4}, []string{"2 of 19"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, ids := bucket(t)
			tc.setup(st, ids)
			wantLeft := tc.wantLeft(st, ids)
			res, err := Run(t.Context(), Options{Store: st, Layout: testLayout, Policy: seedPolicy, Now: planNow})
			var nd *NotDeletedError
			if !errors.As(err, &nd) {
				t.Fatalf("got %v, want a NotDeletedError", err)
			}
			slices.Sort(wantLeft)
			if got := nd.Keys(); !slices.Equal(got, wantLeft) {
				t.Errorf("not deleted:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantLeft, "\n"))
			}
			for _, w := range tc.wantInErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			var gone []string
			for _, i := range tc.wantGone {
				gone = append(gone, ids[i])
			}
			if !slices.Equal(res.Deleted, gone) {
				t.Errorf("deleted groups %v, want %v", res.Deleted, gone)
			}
			if !strings.Contains(res.Text(), "not deleted (error)") {
				t.Errorf("report does not show the failure:\n%s", res.Text())
			}
		})
	}
}

func TestNotDeletedErrorListsAtMost20Keys(t *testing.T) {
	e := &NotDeletedError{Store: "mem://", Total: 1500, Left: map[string]string{}, Cause: errors.New("boom")}
	for i := range 25 {
		e.Left[fmt.Sprintf("k%02d", i)] = ""
	}
	lines := strings.Split(e.Error(), "\n")
	if len(lines) != 22 || !strings.Contains(lines[21], "and 5 more") || !strings.HasPrefix(lines[1], "not deleted: k00") {
		t.Errorf("error:\n%s", e.Error())
	}
}

// TestNeverTouchesKeysOutsideTheRoot: a store that lists keys outside the
// prefix it was asked for (or a bug that put one in a group) can not make
// prune delete them.
func TestNeverTouchesKeysOutsideTheRoot(t *testing.T) {
	st, _ := bucket(t)
	st.extraList = []store.Object{
		{Key: "db_backups/staging/20200101-000000/production.sqlite3"},
		{Key: "db_backups/20200101-000000/manifest.json"},
		{Key: "production/20200101-000000/manifest.json"},
	}
	res, err := Run(t.Context(), Options{Store: st, Layout: testLayout, Policy: seedPolicy, Now: planNow})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range st.deleted() {
		if !strings.HasPrefix(k, testLayout.Root()) {
			t.Errorf("deleted %s, outside %s", k, testLayout.Root())
		}
	}
	if len(res.Foreign) != 5 {
		t.Errorf("foreign %d, want 5 (2 under the root, 3 listed outside it)", len(res.Foreign))
	}

	// deleteGroups itself refuses a group holding a key outside it.
	st2 := newMemStore()
	id := st2.addGroup(planNow.Add(-days(40)), catalog.StateComplete, 10)
	g := catalog.Group{ID: id, State: catalog.StateComplete, Objects: []store.Object{
		{Key: testLayout.ManifestKey(id)}, {Key: "db_backups/staging/" + id + "/manifest.json"}}}
	if _, err := deleteGroups(t.Context(), st2, testLayout, []catalog.Group{g}, nil); !errors.Is(err, ErrOutsideGroup) {
		t.Fatalf("got %v, want ErrOutsideGroup", err)
	}
	g.Objects = []store.Object{{Key: testLayout.ManifestKey("20200101-000000")}}
	if _, err := deleteGroups(t.Context(), st2, testLayout, []catalog.Group{g}, nil); !errors.Is(err, ErrOutsideGroup) {
		t.Fatalf("key of another group: got %v, want ErrOutsideGroup", err)
	}
	if len(st2.deletes) != 0 {
		t.Errorf("Delete called: %v", st2.deletes)
	}
}

func TestRunListFails(t *testing.T) {
	st := newMemStore()
	st.listErr = errors.New("AccessDenied")
	_, err := Run(t.Context(), Options{Store: st, Layout: testLayout, Policy: seedPolicy, Now: planNow})
	if err == nil || !strings.Contains(err.Error(), "list db_backups/production/ in mem://test: AccessDenied") {
		t.Fatalf("got %v", err)
	}
	if _, err := Run(t.Context(), Options{Store: st, Layout: testLayout, Policy: seedPolicy}); err == nil {
		t.Fatal("Run without a time ran")
	}
}
