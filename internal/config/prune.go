package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Defaults of the prune inputs: the seed's policy.
const (
	DefaultRetentionDays = "14"
	DefaultKeepMin       = "7"
	DefaultShrinkGuard   = "0.5"
)

// Bounds of the prune counts: large enough for anyone, small enough that
// a typo (an extra zero or two) is caught.
const (
	maxRetentionDays = 36500
	maxKeep          = 100000
)

// pruneInputs are the inputs of prune and list, and of backup with
// prune: true (which runs the same prune after a successful backup).
func pruneInputs() []Input {
	policy := []string{CommandPrune, CommandBackup}
	return []Input{
		{Name: "retention_days", Default: DefaultRetentionDays, Env: []string{"BACKUP_RETENTION_DAYS"}, Commands: policy,
			Description: "prune: delete groups only once they are older than this many days (any state). 0 turns this rule off."},
		{Name: "keep_min", Default: DefaultKeepMin, Env: []string{"BACKUP_KEEP_MIN"}, Commands: policy,
			Description: "prune: always keep this many newest complete (or legacy) groups, however old. Incomplete groups never count."},
		{Name: "keep_daily", Default: "0", Commands: policy,
			Description: "prune: also keep the newest group of each of the last N days that have one (UTC days, restic semantics)."},
		{Name: "keep_weekly", Default: "0", Commands: policy,
			Description: "prune: also keep the newest group of each of the last N ISO weeks that have one."},
		{Name: "keep_monthly", Default: "0", Commands: policy,
			Description: "prune: also keep the newest group of each of the last N months that have one."},
		{Name: "shrink_guard", Default: DefaultShrinkGuard, Commands: policy,
			Description: "prune: skip deletion (and warn) when the newest complete group's original size is below this fraction of the previous one's. 0 turns the guard off."},
		{Name: "dry_run", Default: "false", Bool: true, Commands: []string{CommandPrune},
			Description: "prune: print the decisions and delete nothing. In the Action it also applies to the prune run by prune: true."},
		{Name: "prune", Default: "false", Bool: true, Commands: []string{CommandBackup},
			Description: "backup: run prune with the same policy after a successful backup (never after a failed one)."},
		{Name: "json", Default: "false", Bool: true, Commands: []string{CommandList},
			Description: "list: print the groups as JSON on stdout."},
	}
}

// PruneConfig holds the prune and list settings.
type PruneConfig struct {
	RetentionDays int
	KeepMin       int
	KeepDaily     int
	KeepWeekly    int
	KeepMonthly   int
	// ShrinkGuard is a fraction in [0, 1]; 0 turns the guard off.
	ShrinkGuard float64
	DryRun      bool
	// AfterBackup is the prune input: backup runs prune when it succeeds.
	AfterBackup bool
	// JSON makes list print JSON on stdout.
	JSON bool
}

// KeepsNothing reports whether every keep rule is 0.
func (p *PruneConfig) KeepsNothing() bool {
	return p.KeepMin == 0 && p.RetentionDays == 0 && p.KeepDaily == 0 && p.KeepWeekly == 0 && p.KeepMonthly == 0
}

// parse fills p from the resolved values; each problem names its input.
// A policy that keeps nothing is refused when the command would prune.
func (p *PruneConfig) parse(vals map[string]string) []error {
	var errs []error
	bad := func(input, format string, args ...any) {
		errs = append(errs, fmt.Errorf("input %s: "+format, append([]any{input}, args...)...))
	}
	count := func(name string, max int) int {
		s := strings.TrimSpace(vals[name])
		if s == "" {
			return 0
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > max {
			bad(name, "%q is not a whole number from 0 to %d", vals[name], max)
			return 0
		}
		return n
	}
	flag := func(name string) bool {
		b, ok := parseBool(vals[name])
		if !ok {
			bad(name, "%q is not true or false", vals[name])
		}
		return b
	}
	p.RetentionDays = count("retention_days", maxRetentionDays)
	p.KeepMin = count("keep_min", maxKeep)
	p.KeepDaily = count("keep_daily", maxKeep)
	p.KeepWeekly = count("keep_weekly", maxKeep)
	p.KeepMonthly = count("keep_monthly", maxKeep)
	p.DryRun = flag("dry_run")
	p.AfterBackup = flag("prune")
	p.JSON = flag("json")
	if s := strings.TrimSpace(vals["shrink_guard"]); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f > 1 {
			bad("shrink_guard", "%q is not a fraction from 0 to 1 (like 0.5)", vals["shrink_guard"])
		} else {
			p.ShrinkGuard = f
		}
	}
	cmd := strings.TrimSpace(vals["command"])
	if (cmd == CommandPrune || cmd == CommandBackup && p.AfterBackup) && p.KeepsNothing() {
		bad("keep_min", "the retention policy keeps nothing (keep_min, retention_days, keep_daily, keep_weekly and keep_monthly are all 0): prune refuses to run")
	}
	return errs
}
