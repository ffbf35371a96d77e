package retention

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixtureNow is "now" for the fixture: mid-May 2026, after the nightly run.
var fixtureNow = time.Date(2026, 5, 15, 12, 0, 0, 0, time.UTC)

// fixture is a history of group ids and states: nightly backups at 02:00
// with gaps, extra manual runs, failed runs, legacy groups of the old Rails
// service and one group two minutes in the future (a runner clock ahead).
var fixture = []string{
	"20260515-120200 complete", // 2 minutes ahead of now
	"20260515-020000 complete",
	"20260514-150000 incomplete",
	"20260514-020000 complete",
	"20260513-020000 complete",
	"20260512-093000 complete", // manual run, same day as the nightly
	"20260512-020000 complete",
	"20260511-020000 incomplete", // failed nightly
	"20260510-020000 complete",
	"20260509-020000 complete",
	"20260507-020000 complete", // 8th missing
	"20260506-020000 complete",
	"20260505-020000 complete",
	"20260504-020000 complete",
	"20260503-020000 complete",
	"20260501-020000 complete",
	"20260430-020000 incomplete", // old failure
	"20260428-020000 complete",
	"20260420-020000 complete",
	"20260413-020000 complete",
	"20260401-020000 complete",
	"20260331-230000 complete",
	"20260315-020000 complete",
	"20260301-020000 legacy",
	"20260215-020000 legacy",
	"20260201-020000 legacy",
	"20260115-020000 incomplete",
	"20251231-020000 legacy",
	"20251101-020000 legacy",
}

func fixtureGroups(t *testing.T) []Group {
	t.Helper()
	var gs []Group
	for _, line := range fixture {
		id, state, _ := strings.Cut(line, " ")
		at, err := catalog.ParseID(id)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, Group{ID: id, Time: at, State: catalog.State(state)})
	}
	// Shuffle-ish: Apply must not depend on input order.
	for i, j := 0, len(gs)-1; i < j; i, j = i+2, j-2 {
		gs[i], gs[j] = gs[j], gs[i]
	}
	return gs
}

func TestApplyGolden(t *testing.T) {
	cases := []struct {
		name string
		p    Policy
	}{
		{"seed-default", Policy{KeepMin: 7, RetentionDays: 14}},
		{"keep-min-only", Policy{KeepMin: 7}},
		{"keep-min-1", Policy{KeepMin: 1}},
		{"retention-only", Policy{RetentionDays: 14}},
		{"retention-1-day", Policy{KeepMin: 2, RetentionDays: 1}},
		{"keep-min-exceeds-history", Policy{KeepMin: 100, RetentionDays: 14}},
		{"daily-7", Policy{KeepDaily: 7}},
		{"weekly-4", Policy{KeepWeekly: 4}},
		{"monthly-6", Policy{KeepMonthly: 6}},
		{"gfs-with-seed-default", Policy{KeepMin: 7, RetentionDays: 14, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 6}},
		{"keeps-nothing", Policy{}},
	}
	groups := fixtureGroups(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keep, remove, reasons := Apply(groups, tc.p, fixtureNow)
			if err := invariants(groups, tc.p, fixtureNow, keep, remove, reasons); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "# policy: %s\n# now: %s\n", tc.p, fixtureNow.Format(time.RFC3339))
			decided := map[string]string{}
			for _, g := range keep {
				decided[g.ID] = "keep  "
			}
			for _, g := range remove {
				decided[g.ID] = "remove"
			}
			all := append(append([]Group(nil), keep...), remove...)
			sortNewestFirst(all)
			for _, g := range all {
				fmt.Fprintf(&b, "%s %-10s %s  %s\n", g.ID, g.State, decided[g.ID], reasons[g.ID])
			}
			golden(t, filepath.Join("testdata", tc.name+".golden"), b.String())
		})
	}
}

func sortNewestFirst(gs []Group) { slices.SortFunc(gs, NewestFirst) }

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/retention -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test ./internal/retention -update and review the diff)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// invariants: keep ∪ remove = all, keep ∩ remove = ∅, both newest
// first, every group has a reason, the newest KeepMin backups are kept and
// no group within retention is removed.
func invariants(all []Group, p Policy, now time.Time, keep, remove []Group, reasons map[string]string) error {
	where := map[string]int{}
	for _, g := range keep {
		where[g.ID]++
	}
	for _, g := range remove {
		where[g.ID] += 10
	}
	for _, g := range all {
		switch where[g.ID] {
		case 1, 10:
		case 0:
			return fmt.Errorf("group %s is neither kept nor removed", g.ID)
		default:
			return fmt.Errorf("group %s is kept and removed", g.ID)
		}
		if reasons[g.ID] == "" {
			return fmt.Errorf("group %s has no reason", g.ID)
		}
	}
	if len(keep)+len(remove) != len(all) {
		return fmt.Errorf("keep %d + remove %d != %d groups", len(keep), len(remove), len(all))
	}
	for _, list := range [][]Group{keep, remove} {
		for i := 1; i < len(list); i++ {
			if NewestFirst(list[i-1], list[i]) > 0 {
				return fmt.Errorf("not newest first: %s before %s", list[i-1].ID, list[i].ID)
			}
		}
	}
	sorted := append([]Group(nil), all...)
	sortNewestFirst(sorted)
	backups := 0
	for _, g := range sorted {
		if g.State.IsBackup() {
			backups++
			if backups <= p.KeepMin && where[g.ID] != 1 {
				return fmt.Errorf("backup %s is one of the newest %d but removed", g.ID, p.KeepMin)
			}
		}
		if p.Within(g.Time, now) && where[g.ID] != 1 {
			return fmt.Errorf("group %s is within %d days but removed", g.ID, p.RetentionDays)
		}
		if !g.State.IsBackup() && where[g.ID] == 1 && !p.Within(g.Time, now) {
			return fmt.Errorf("%s group %s older than retention is kept (%s)", g.State, g.ID, reasons[g.ID])
		}
	}
	return nil
}

func TestPolicyValidate(t *testing.T) {
	cases := []struct {
		name    string
		p       Policy
		wantErr string
	}{
		{"seed default", Policy{KeepMin: 7, RetentionDays: 14}, ""},
		{"keep_min only", Policy{KeepMin: 1}, ""},
		{"daily only", Policy{KeepDaily: 3}, ""},
		{"keeps nothing", Policy{}, "keeps nothing"},
		{"negative", Policy{KeepMin: -1, RetentionDays: 14}, "keep_min is -1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestWithinBoundary(t *testing.T) {
	p := Policy{RetentionDays: 14}
	at := fixtureNow.Add(-14 * Day)
	if !p.Within(at, fixtureNow) {
		t.Errorf("exactly 14 days old must be within retention")
	}
	if p.Within(at.Add(-time.Second), fixtureNow) {
		t.Errorf("14 days and a second old must not be within retention")
	}
	if !p.Within(fixtureNow.Add(time.Hour), fixtureNow) {
		t.Errorf("a group in the future is within retention")
	}
	if (Policy{KeepMin: 1}).Within(fixtureNow, fixtureNow) {
		t.Errorf("retention_days 0 turns the rule off")
	}
}
