package prune

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/retention"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

// MaxClockSkew is how far in the future of now the newest group may be
// before prune refuses to run: a runner whose clock is behind would find
// every group younger than it is, or a bogus group id may be in the bucket.
const MaxClockSkew = 5 * time.Minute

// MinIncompleteAge protects an incomplete group whatever the policy says:
// a younger one may be a backup that is running right now.
const MinIncompleteAge = 24 * time.Hour

// ErrClockSkew is returned when now is earlier than the newest group by
// more than MaxClockSkew.
var ErrClockSkew = errors.New("clock skew")

// Decision is what prune does with one group, and why.
type Decision struct {
	Group  catalog.Group
	Keep   bool
	Reason string // e.g. "newest 7, within 14 days" or "older than 14 days"
}

// Plan is the decision for every group, newest first, and the foreign
// objects that are left alone.
type Plan struct {
	Now       time.Time
	Policy    retention.Policy
	Decisions []Decision
	Foreign   []store.Object
}

// Remove lists the groups the plan deletes, newest first.
func (p *Plan) Remove() []catalog.Group {
	var out []catalog.Group
	for _, d := range p.Decisions {
		if !d.Keep {
			out = append(out, d.Group)
		}
	}
	return out
}

// Kept counts the groups the plan keeps.
func (p *Plan) Kept() int {
	n := 0
	for _, d := range p.Decisions {
		if d.Keep {
			n++
		}
	}
	return n
}

// applyFunc is retention.Apply; tests swap in a rogue one to prove that
// the guard rails hold whatever the policy decides.
type applyFunc func([]retention.Group, retention.Policy, time.Time) (keep, remove []retention.Group, reasons map[string]string)

// MakePlan decides the fate of every group (as catalog.Layout.Groups
// returns them) by the policy at now, then applies the guard rails, which
// hold whatever the policy says:
//   - a policy that keeps nothing is refused (retention.ErrKeepsNothing);
//   - a group more than MaxClockSkew after now is refused (ErrClockSkew);
//   - the newest complete group and the newest backup (complete or legacy)
//     are kept, and so are the newest keep_min backups;
//   - no group within retention_days is removed;
//   - no incomplete group younger than MinIncompleteAge is removed;
//   - a group the policy did not decide, or decided twice, is kept.
func MakePlan(groups []catalog.Group, foreign []store.Object, p retention.Policy, now time.Time) (*Plan, error) {
	return makePlan(groups, foreign, p, now, retention.Apply)
}

func makePlan(groups []catalog.Group, foreign []store.Object, p retention.Policy, now time.Time, apply applyFunc) (*Plan, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("refuse to prune: %w", err)
	}
	rgs := make([]retention.Group, len(groups))
	byID := make(map[string]catalog.Group, len(groups))
	for i, g := range groups {
		if _, dup := byID[g.ID]; dup {
			return nil, fmt.Errorf("refuse to prune: group %s listed twice", g.ID)
		}
		byID[g.ID] = g
		rgs[i] = retention.Group{ID: g.ID, Time: g.Time, State: g.State}
		if ahead := g.Time.Sub(now); ahead > MaxClockSkew {
			return nil, fmt.Errorf("refuse to prune: group %s is %s ahead of now (%s); check this machine's clock (more than %s of %w)",
				g.ID, ahead.Round(time.Second), now.UTC().Format(time.RFC3339), MaxClockSkew, ErrClockSkew)
		}
	}
	keep, remove, reasons := apply(rgs, p, now)
	verdict := map[string]int{} // 1 keep, 2 remove, 3 both
	for _, g := range keep {
		verdict[g.ID] |= 1
	}
	for _, g := range remove {
		verdict[g.ID] |= 2
	}

	sorted := slices.Clone(rgs)
	slices.SortStableFunc(sorted, retention.NewestFirst)
	guard := guards(sorted, p, now)
	plan := &Plan{Now: now, Policy: p, Foreign: foreign}
	for _, rg := range sorted {
		d := Decision{Group: byID[rg.ID], Keep: true, Reason: reasons[rg.ID]}
		switch {
		case verdict[rg.ID] != 2:
			if d.Reason == "" || verdict[rg.ID] != 1 {
				d.Reason = "not decided by the policy (kept)"
			}
		case guard[rg.ID] != "":
			d.Reason = guard[rg.ID]
		default:
			d.Keep = false
		}
		plan.Decisions = append(plan.Decisions, d)
	}
	return plan, nil
}

// guards returns, for every group a guard rail protects, why.
func guards(newestFirst []retention.Group, p retention.Policy, now time.Time) map[string]string {
	out := map[string]string{}
	set := func(id, why string) {
		if out[id] == "" {
			out[id] = why
		}
	}
	backups, complete := 0, 0
	for _, g := range newestFirst {
		if g.State == catalog.StateComplete {
			complete++
			if complete == 1 {
				set(g.ID, "newest complete group (guard rail)")
			}
		}
		if g.State.IsBackup() {
			backups++
			if backups == 1 {
				set(g.ID, "newest backup (guard rail)")
			}
			if backups <= p.KeepMin {
				set(g.ID, fmt.Sprintf("newest %d (guard rail)", p.KeepMin))
			}
		}
		if p.Within(g.Time, now) {
			set(g.ID, fmt.Sprintf("within %d days (guard rail)", p.RetentionDays))
		}
		if !g.State.IsBackup() && now.Sub(g.Time) < MinIncompleteAge {
			set(g.ID, fmt.Sprintf("incomplete, younger than %dh: may still be running (guard rail)", int(MinIncompleteAge.Hours())))
		}
	}
	return out
}
