package config

import (
	"strings"
	"testing"
)

func TestPruneConfig(t *testing.T) {
	cases := []struct {
		name    string
		inputs  map[string]string
		env     map[string]string
		want    PruneConfig
		wantErr []string
	}{
		{"defaults", nil, nil, PruneConfig{RetentionDays: 14, KeepMin: 7, ShrinkGuard: 0.5}, nil},
		{"env fallbacks", nil, map[string]string{"BACKUP_RETENTION_DAYS": "30", "BACKUP_KEEP_MIN": "3"},
			PruneConfig{RetentionDays: 30, KeepMin: 3, ShrinkGuard: 0.5}, nil},
		{"input beats env", map[string]string{"retention_days": "5"}, map[string]string{"BACKUP_RETENTION_DAYS": "30"},
			PruneConfig{RetentionDays: 5, KeepMin: 7, ShrinkGuard: 0.5}, nil},
		{"gfs dry run", map[string]string{"keep_daily": "7", "keep_weekly": "4", "keep_monthly": "12", "dry_run": "true", "shrink_guard": "0"},
			nil, PruneConfig{RetentionDays: 14, KeepMin: 7, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 12, DryRun: true}, nil},
		{"keep_min only", map[string]string{"retention_days": "0"}, nil, PruneConfig{KeepMin: 7, ShrinkGuard: 0.5}, nil},
		{"keeps nothing", map[string]string{"retention_days": "0", "keep_min": "0"}, nil, PruneConfig{},
			[]string{"input keep_min: the retention policy keeps nothing"}},
		{"keeps nothing from env", nil, map[string]string{"BACKUP_RETENTION_DAYS": "0", "BACKUP_KEEP_MIN": "0"}, PruneConfig{},
			[]string{"input keep_min: the retention policy keeps nothing"}},
		{"every problem at once", map[string]string{"retention_days": "-1", "keep_min": "seven", "keep_daily": "1.5",
			"keep_weekly": "999999", "keep_monthly": "x", "shrink_guard": "2", "dry_run": "maybe", "json": "yes please"}, nil, PruneConfig{},
			[]string{"input retention_days:", "input keep_min:", "input keep_daily:", "input keep_weekly:", "input keep_monthly:",
				"input shrink_guard:", "input dry_run:", "input json:"}},
		{"shrink guard not a number", map[string]string{"shrink_guard": "half"}, nil, PruneConfig{}, []string{"input shrink_guard: \"half\" is not a fraction"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]string{"destination": "file:///tmp/x", "command": CommandPrune}
			for k, v := range tc.inputs {
				in[k] = v
			}
			c, err := FromValues(resolve(in, tc.env), noFiles)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("got valid, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Prune != tc.want {
				t.Errorf("got %+v, want %+v", c.Prune, tc.want)
			}
		})
	}
}

// TestKeepsNothingOnlyWhenPruning: list and restore do not care about the
// policy; backup refuses it only with prune: true.
func TestKeepsNothingOnlyWhenPruning(t *testing.T) {
	cases := []struct {
		name    string
		command string
		prune   string
		wantErr bool
	}{
		{"list", CommandList, "", false},
		{"backup", CommandBackup, "false", false},
		{"backup with prune", CommandBackup, "true", true},
		{"prune", CommandPrune, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]string{"destination": "file:///tmp/x", "remote_path": "/srv/storage", "command": tc.command,
				"retention_days": "0", "keep_min": "0", "prune": tc.prune}
			_, err := FromValues(resolve(in, nil), noFiles)
			if got := err != nil && strings.Contains(err.Error(), "keeps nothing"); got != tc.wantErr {
				t.Errorf("got %v, want a keeps-nothing error: %v", err, tc.wantErr)
			}
		})
	}
}

func TestPruneInputsCommands(t *testing.T) {
	for _, in := range pruneInputs() {
		if len(in.Commands) == 0 {
			t.Errorf("input %s: no Commands: a prune flag must not appear on every command", in.Name)
		}
		if in.Description == "" {
			t.Errorf("input %s: no description", in.Name)
		}
	}
}
