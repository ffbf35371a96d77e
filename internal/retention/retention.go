// Package retention decides which backup groups a policy keeps. Apply is a
// pure function of the groups, the policy and the time passed in: it reads
// no clock and does no I/O. The guard rails that make a deletion safe
// (refusing a policy that keeps nothing, the newest complete group, clock
// skew) are enforced again by the prune command on top of it.
package retention

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
)

// Day is the unit of RetentionDays: 24 hours, not a calendar day.
const Day = 24 * time.Hour

// ErrKeepsNothing is returned by Policy.Validate for a policy under which
// every group could be deleted.
var ErrKeepsNothing = errors.New("the retention policy keeps nothing (keep_min, retention_days, keep_daily, keep_weekly and keep_monthly are all 0)")

// Group is what the policy needs to know of a backup group.
type Group struct {
	ID    string        // unique; ties on Time are broken by ID
	Time  time.Time     // when the backup started
	State catalog.State // only complete and legacy groups are backups
}

// Policy says what to keep. Every rule is OR-ed: a group is kept when any
// rule keeps it, and removed only when none does.
type Policy struct {
	// KeepMin keeps the KeepMin newest backups (complete or legacy groups).
	// Incomplete groups never count.
	KeepMin int
	// RetentionDays keeps every group, whatever its state, whose age
	// (now - Time) is at most RetentionDays days. Groups in the future are
	// within it. 0 turns the rule off.
	RetentionDays int
	// KeepDaily, KeepWeekly and KeepMonthly keep, as restic does, the
	// newest backup of each of the last N days, ISO weeks and months
	// that hold a backup (days, weeks and months in UTC, as group ids are).
	KeepDaily, KeepWeekly, KeepMonthly int
}

// KeepsNothing reports whether no rule is set.
func (p Policy) KeepsNothing() bool {
	return p.KeepMin == 0 && p.RetentionDays == 0 && p.KeepDaily == 0 && p.KeepWeekly == 0 && p.KeepMonthly == 0
}

// Validate rejects negative counts and a policy that keeps nothing.
func (p Policy) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		n    int
	}{{"keep_min", p.KeepMin}, {"retention_days", p.RetentionDays}, {"keep_daily", p.KeepDaily}, {"keep_weekly", p.KeepWeekly}, {"keep_monthly", p.KeepMonthly}} {
		if f.n < 0 {
			errs = append(errs, fmt.Errorf("retention policy: %s is %d, must not be negative", f.name, f.n))
		}
	}
	if p.KeepsNothing() {
		errs = append(errs, ErrKeepsNothing)
	}
	return errors.Join(errs...)
}

// String describes the policy, e.g. "keep_min 7, retention_days 14".
func (p Policy) String() string {
	parts := []string{"keep_min " + strconv.Itoa(p.KeepMin), "retention_days " + strconv.Itoa(p.RetentionDays)}
	for _, t := range []struct {
		name string
		n    int
	}{{"keep_daily", p.KeepDaily}, {"keep_weekly", p.KeepWeekly}, {"keep_monthly", p.KeepMonthly}} {
		if t.n > 0 {
			parts = append(parts, t.name+" "+strconv.Itoa(t.n))
		}
	}
	return strings.Join(parts, ", ")
}

// Within reports whether a group taken at t is young enough for the
// retention_days rule at now; never when the rule is off.
func (p Policy) Within(t, now time.Time) bool {
	return p.RetentionDays > 0 && now.Sub(t) <= time.Duration(p.RetentionDays)*Day
}

// NewestFirst orders groups by Time, newest first, then by ID descending.
func NewestFirst(a, b Group) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// Apply splits groups into those the policy keeps and those it removes,
// both newest first, with a reason for every group keyed by its ID (kept:
// "newest 7, within 14 days, daily"; removed: "older than 14 days").
// Every group is in exactly one of keep and remove. Apply does not refuse
// anything: a policy that keeps nothing removes every group older than
// retention; refusing it is the caller's guard rail.
func Apply(groups []Group, p Policy, now time.Time) (keep, remove []Group, reasons map[string]string) {
	sorted := slices.Clone(groups)
	slices.SortStableFunc(sorted, NewestFirst)
	tiers := []*tier{
		{name: "daily", left: p.KeepDaily, bucket: func(t time.Time) string { return t.UTC().Format("2006-01-02") }},
		{name: "weekly", left: p.KeepWeekly, bucket: isoWeek},
		{name: "monthly", left: p.KeepMonthly, bucket: func(t time.Time) string { return t.UTC().Format("2006-01") }},
	}
	reasons = make(map[string]string, len(sorted))
	backups := 0
	for _, g := range sorted {
		var why []string
		if g.State.IsBackup() {
			backups++
			if backups <= p.KeepMin {
				why = append(why, "newest "+strconv.Itoa(p.KeepMin))
			}
			for _, t := range tiers {
				if t.take(g.Time) {
					why = append(why, t.name)
				}
			}
		}
		if p.Within(g.Time, now) {
			why = append(why, "within "+days(p.RetentionDays))
		}
		if len(why) > 0 {
			keep = append(keep, g)
			reasons[g.ID] = strings.Join(why, ", ")
			continue
		}
		remove = append(remove, g)
		reasons[g.ID] = removeReason(g, p)
	}
	return keep, remove, reasons
}

func removeReason(g Group, p Policy) string {
	var r string
	switch {
	case p.RetentionDays > 0:
		r = "older than " + days(p.RetentionDays)
	case g.State.IsBackup() && p.KeepMin > 0:
		r = "not among the newest " + strconv.Itoa(p.KeepMin)
	default:
		r = "kept by no rule"
	}
	if !g.State.IsBackup() {
		return string(g.State) + ", " + r
	}
	return r
}

// tier is one GFS rule: the newest backup of each of the last `left`
// buckets (restic's semantics: a bucket is counted once a backup in it is
// kept, and the newest backup of a bucket is the first one seen).
type tier struct {
	name   string
	left   int
	last   string
	bucket func(time.Time) string
}

func (t *tier) take(at time.Time) bool {
	if t.left <= 0 {
		return false
	}
	b := t.bucket(at)
	if b == t.last {
		return false
	}
	t.last = b
	t.left--
	return true
}

func days(n int) string {
	if n == 1 {
		return "1 day"
	}
	return strconv.Itoa(n) + " days"
}

func isoWeek(t time.Time) string {
	y, w := t.UTC().ISOWeek()
	return fmt.Sprintf("%04d-W%02d", y, w)
}
