package retention

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
)

// propertyHistories is how many random histories the property test checks.
const propertyHistories = 10_000

// randomHistory makes up to 60 groups over up to 120 days before now, with
// every state, several groups on one day, groups sharing one timestamp
// (ids differ) and groups up to an hour in the future (clock skew).
func randomHistory(r *rand.Rand, now time.Time) []Group {
	n := r.IntN(61)
	span := time.Duration(1+r.IntN(120)) * Day
	gs := make([]Group, 0, n)
	for i := range n {
		var at time.Time
		switch k := r.IntN(20); {
		case k == 0 && len(gs) > 0: // same timestamp as an earlier group
			at = gs[r.IntN(len(gs))].Time
		case k == 1: // ahead of now
			at = now.Add(time.Duration(r.Int64N(int64(time.Hour))))
		default:
			at = now.Add(-time.Duration(r.Int64N(int64(span)))).Truncate(time.Second)
		}
		state := catalog.StateComplete
		switch r.IntN(6) {
		case 0:
			state = catalog.StateIncomplete
		case 1:
			state = catalog.StateLegacy
		}
		gs = append(gs, Group{ID: fmt.Sprintf("%s-%03d", catalog.NewID(at), i), Time: at, State: state})
	}
	return gs
}

func randomPolicy(r *rand.Rand) Policy {
	small := func() int {
		if r.IntN(3) == 0 {
			return 0
		}
		return r.IntN(12)
	}
	return Policy{KeepMin: small(), RetentionDays: small() * 3, KeepDaily: small(), KeepWeekly: small(), KeepMonthly: small()}
}

func TestApplyProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(20260515, 1))
	base := time.Date(2026, 5, 15, 12, 0, 0, 0, time.UTC)
	for i := range propertyHistories {
		now := base.Add(time.Duration(r.Int64N(int64(400 * Day))))
		groups := randomHistory(r, now)
		p := randomPolicy(r)
		keep, remove, reasons := Apply(groups, p, now)
		err := errors.Join(invariants(groups, p, now, keep, remove, reasons), tiers(keep, reasons, p), orderFree(groups, p, now, keep, reasons))
		if err != nil {
			t.Fatalf("history %d: %v\npolicy %s, now %s, groups %v", i, err, p, now.Format(time.RFC3339), groups)
		}
	}
}

// orderFree: the input order does not change the result.
func orderFree(groups []Group, p Policy, now time.Time, keep []Group, reasons map[string]string) error {
	rev := make([]Group, len(groups))
	for j, g := range groups {
		rev[len(groups)-1-j] = g
	}
	keep2, _, reasons2 := Apply(rev, p, now)
	if ids(keep) != ids(keep2) {
		return fmt.Errorf("input order changed the result:\n%s\n%s", ids(keep), ids(keep2))
	}
	for id, why := range reasons {
		if reasons2[id] != why {
			return fmt.Errorf("input order changed the reason of %s: %q vs %q", id, why, reasons2[id])
		}
	}
	return nil
}

// tiers: each tier keeps at most N backups, in N different buckets, and
// never an incomplete group.
func tiers(keep []Group, reasons map[string]string, p Policy) error {
	for _, tc := range []struct {
		name   string
		n      int
		bucket func(time.Time) string
	}{
		{"daily", p.KeepDaily, func(t time.Time) string { return t.UTC().Format("2006-01-02") }},
		{"weekly", p.KeepWeekly, isoWeek},
		{"monthly", p.KeepMonthly, func(t time.Time) string { return t.UTC().Format("2006-01") }},
	} {
		seen := map[string]bool{}
		for _, g := range keep {
			if !strings.Contains(reasons[g.ID], tc.name) {
				continue
			}
			if !g.State.IsBackup() {
				return fmt.Errorf("%s group %s kept as %s", g.State, g.ID, tc.name)
			}
			b := tc.bucket(g.Time)
			if seen[b] {
				return fmt.Errorf("two %s groups in %s", tc.name, b)
			}
			seen[b] = true
		}
		if len(seen) > tc.n {
			return fmt.Errorf("%d %s groups kept, policy says %d", len(seen), tc.name, tc.n)
		}
	}
	return nil
}

func ids(gs []Group) string {
	var b strings.Builder
	for _, g := range gs {
		b.WriteString(g.ID + " ")
	}
	return b.String()
}
