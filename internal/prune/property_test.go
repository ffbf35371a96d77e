package prune

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/retention"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// propertyHistories is how many random bucket histories the guard-rail
// property test prunes.
const propertyHistories = 10_000

// history is a random bucket: groups of every state (some sharing a
// timestamp, hence an id, so their objects mix), foreign keys under the
// root, keys of other environments and prefixes, sometimes a store that
// lists keys outside the prefix it was asked for, and sometimes a group
// ahead of now (clock skew).
type history struct {
	layout catalog.Layout
	now    time.Time
	policy retention.Policy
	dryRun bool
	st     *memStore
	owner  map[string]string // key -> id of the group it belongs to; none for foreign keys
	newest time.Time         // the newest group's time
}

func randomBucket(r *rand.Rand) history {
	h := history{st: newMemStore(), owner: map[string]string{}}
	h.layout = catalog.Layout{Prefix: []string{"db_backups", "", "a/b"}[r.IntN(3)], Environment: "production"}
	h.now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(365 * retention.Day)))).Truncate(time.Second)
	small := func() int {
		if r.IntN(3) == 0 {
			return 0
		}
		return r.IntN(10)
	}
	h.policy = retention.Policy{KeepMin: small(), RetentionDays: small() * 2, KeepDaily: small(), KeepWeekly: small(), KeepMonthly: small()}
	h.dryRun = r.IntN(5) == 0
	var times []time.Time
	n := r.IntN(31)
	for i := range n {
		var at time.Time
		switch {
		case i == n-1 && r.IntN(8) == 0: // ahead of now: within or beyond the allowed skew
			at = h.now.Add(time.Duration(r.Int64N(int64(10 * time.Minute))))
		case len(times) > 0 && r.IntN(25) == 0: // same second as another group: one id
			at = times[r.IntN(len(times))]
		default:
			at = h.now.Add(-time.Duration(r.Int64N(int64(90 * retention.Day))))
		}
		at = at.Truncate(time.Second)
		times = append(times, at)
		if at.After(h.newest) {
			h.newest = at
		}
		id := catalog.NewID(at)
		key := func(name string) string {
			k := h.layout.Key(id, name)
			h.owner[k] = id
			return k
		}
		files := 1 + r.IntN(4)
		switch r.IntN(5) {
		case 0: // legacy
			for i := range files {
				h.st.put(key(fmt.Sprintf("db%d.sqlite3", i)), make([]byte, r.IntN(50)))
			}
		case 1: // started, never finished
			h.st.put(key(catalog.InProgressName), []byte("{}"))
			for i := range files - 1 {
				h.st.put(key(fmt.Sprintf("db%d.sqlite3.zst", i)), make([]byte, r.IntN(50)))
			}
		case 2: // files without manifest or marker
			h.st.put(key("db0.sqlite3.gz"), make([]byte, r.IntN(50)))
		default: // complete, sometimes with a stale marker
			for i := range files {
				h.st.put(key(fmt.Sprintf("db%d.sqlite3.zst", i)), make([]byte, r.IntN(50)))
			}
			h.st.put(key(catalog.ManifestName), []byte("{}"))
			if r.IntN(10) == 0 {
				h.st.put(key(catalog.InProgressName), []byte("{}"))
			}
		}
	}
	root := h.layout.Root()
	for _, k := range []string{root + "README.txt", root + "latest/db.sqlite3", root + "20260231-000000/db.sqlite3", root + "x/y/z"} {
		if r.IntN(3) == 0 {
			h.st.put(k, []byte("foreign"))
		}
	}
	if len(times) > 0 && r.IntN(3) == 0 {
		h.st.put(root+catalog.NewID(times[0])+"/nested/db.sqlite3", []byte("foreign"))
	}
	for _, other := range []string{"staging/", "production-eu/", "production.old/"} {
		if len(times) > 0 && r.IntN(2) == 0 {
			h.st.put(strings.TrimPrefix(h.layout.Prefix+"/", "/")+other+catalog.NewID(times[0])+"/db.sqlite3", []byte("other env"))
		}
	}
	if r.IntN(10) == 0 { // a store that lists more than it was asked for
		h.st.extraList = []store.Object{{Key: "elsewhere/production/20250101-000000/db.sqlite3"}, {Key: "db_backups/staging/20250101-000000/manifest.json"}}
	}
	return h
}

func TestGuardRailsHoldOverRandomHistories(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 20260515))
	stats := map[string]int{}
	for i := range propertyHistories {
		h := randomBucket(r)
		outcome, err := checkHistory(t, h)
		if err != nil {
			t.Fatalf("history %d (layout %+v, now %s, policy %s, dry run %v): %v\nkeys:\n%s",
				i, h.layout, h.now.Format(time.RFC3339), h.policy, h.dryRun, err, strings.Join(h.st.keys(), "\n"))
		}
		stats[outcome]++
	}
	t.Logf("outcomes over %d histories: %v", propertyHistories, stats)
	for _, o := range []string{"refused: keeps nothing", "refused: clock skew", "pruned", "nothing to prune", "dry run"} {
		if stats[o] == 0 {
			t.Errorf("no history ended %q: the generator misses a case", o)
		}
	}
}

// checkHistory prunes one history and checks every guard rail.
func checkHistory(t *testing.T, h history) (string, error) {
	before := h.st.keys()
	res, err := Run(t.Context(), Options{Store: h.st, Layout: h.layout, Policy: h.policy, DryRun: h.dryRun, Now: h.now})

	ahead := h.newest.Sub(h.now) > MaxClockSkew
	switch {
	case h.policy.KeepsNothing():
		if !errors.Is(err, retention.ErrKeepsNothing) {
			return "", fmt.Errorf("policy keeps nothing: got %v", err)
		}
		return "refused: keeps nothing", noDeletes(h.st)
	case ahead:
		if !errors.Is(err, ErrClockSkew) {
			return "", fmt.Errorf("clock skew: got %v", err)
		}
		return "refused: clock skew", noDeletes(h.st)
	case err != nil:
		return "", fmt.Errorf("unexpected error: %v", err)
	}

	// Every group decided once; the guard rails hold.
	ids := map[string]bool{}
	for _, id := range h.owner {
		ids[id] = true
	}
	if len(res.Decisions) != len(ids) {
		return "", fmt.Errorf("%d decisions for %d groups", len(res.Decisions), len(ids))
	}
	removed := map[string]bool{}
	backups, complete := 0, 0
	for _, d := range res.Decisions {
		g := d.Group
		if !d.Keep {
			removed[g.ID] = true
		}
		age := h.now.Sub(g.Time)
		var rail string
		if g.State == catalog.StateComplete {
			if complete++; complete == 1 {
				rail = "newest complete group"
			}
		}
		if g.State.IsBackup() {
			if backups++; backups == 1 || backups <= h.policy.KeepMin {
				rail = fmt.Sprintf("backup %d of keep_min %d", backups, h.policy.KeepMin)
			}
		}
		if h.policy.RetentionDays > 0 && age <= time.Duration(h.policy.RetentionDays)*retention.Day {
			rail = "within retention"
		}
		if !g.State.IsBackup() && age < MinIncompleteAge {
			rail = "young incomplete"
		}
		if rail != "" && !d.Keep {
			return "", fmt.Errorf("group %s (%s, %s old) removed despite the guard rail %q", g.ID, g.State, age, rail)
		}
	}

	// Exactly the objects of removed groups are gone; nothing else moved.
	var want []string
	for _, k := range before {
		if id := h.owner[k]; h.dryRun || id == "" || !removed[id] {
			want = append(want, k)
		}
	}
	if got := h.st.keys(); !slices.Equal(got, want) {
		return "", fmt.Errorf("keys left:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, k := range h.st.deleted() {
		if id := h.owner[k]; id == "" || !removed[id] {
			return "", fmt.Errorf("deleted %s, which is in no removed group", k)
		}
	}
	if h.dryRun {
		return "dry run", noDeletes(h.st)
	}
	if backups > 0 && !slices.ContainsFunc(res.Decisions, func(d Decision) bool { return d.Keep && d.Group.State.IsBackup() }) {
		return "", errors.New("no backup left")
	}
	if len(removed) == 0 {
		return "nothing to prune", nil
	}
	return "pruned", nil
}

func noDeletes(st *memStore) error {
	if len(st.deletes) > 0 {
		return fmt.Errorf("Delete called: %v", st.deletes)
	}
	return nil
}
