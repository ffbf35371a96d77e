package prune

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/retention"
)

var planNow = time.Date(2026, 5, 15, 12, 0, 0, 0, time.UTC)

func days(n float64) time.Duration { return time.Duration(n * float64(retention.Day)) }

// groupsAt makes groups of the given states at the given ages.
func groupsAt(t *testing.T, specs ...any) []catalog.Group {
	t.Helper()
	var gs []catalog.Group
	for i := 0; i < len(specs); i += 2 {
		at := planNow.Add(-specs[i].(time.Duration)).Truncate(time.Second)
		gs = append(gs, catalog.Group{ID: catalog.NewID(at), Time: at, State: specs[i+1].(catalog.State)})
	}
	return gs
}

// removeAll is a rogue policy that removes every group.
func removeAll(gs []retention.Group, _ retention.Policy, _ time.Time) (keep, remove []retention.Group, reasons map[string]string) {
	reasons = map[string]string{}
	for _, g := range gs {
		reasons[g.ID] = "rogue"
	}
	return nil, gs, reasons
}

func decisions(p *Plan) map[string]Decision {
	out := map[string]Decision{}
	for _, d := range p.Decisions {
		out[d.Group.ID] = d
	}
	return out
}

func TestGuardRefusesPolicyThatKeepsNothing(t *testing.T) {
	gs := groupsAt(t, days(30), catalog.StateComplete)
	_, err := MakePlan(gs, nil, retention.Policy{}, planNow)
	if !errors.Is(err, retention.ErrKeepsNothing) {
		t.Fatalf("got %v, want ErrKeepsNothing", err)
	}
	_, err = MakePlan(gs, nil, retention.Policy{KeepMin: -1, RetentionDays: 3}, planNow)
	if err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("got %v, want a negative-count refusal", err)
	}
	// And Run deletes nothing.
	st := newMemStore()
	st.addGroup(planNow.Add(-days(30)), catalog.StateComplete, 100)
	if _, err := Run(t.Context(), Options{Store: st, Layout: testLayout, Now: planNow}); !errors.Is(err, retention.ErrKeepsNothing) {
		t.Fatalf("Run: got %v, want ErrKeepsNothing", err)
	}
	if len(st.deletes) != 0 {
		t.Errorf("Delete called: %v", st.deletes)
	}
}

func TestGuardKeepsNewestCompleteGroup(t *testing.T) {
	cases := []struct {
		name   string
		groups []catalog.Group
		policy retention.Policy
		apply  applyFunc
		want   []string // reasons that must appear among the kept groups
	}{
		{"everything old, retention only", groupsAt(t, days(40), catalog.StateComplete, days(50), catalog.StateComplete),
			retention.Policy{RetentionDays: 14}, retention.Apply, []string{"newest complete group (guard rail)"}},
		{"rogue policy", groupsAt(t, days(40), catalog.StateComplete, days(50), catalog.StateComplete),
			retention.Policy{KeepMin: 1}, removeAll, []string{"newest complete group (guard rail)"}},
		{"newest complete behind a newer legacy and incomplete", groupsAt(t, days(30), catalog.StateIncomplete, days(35), catalog.StateLegacy, days(40), catalog.StateComplete),
			retention.Policy{RetentionDays: 14}, retention.Apply, []string{"newest backup (guard rail)", "newest complete group (guard rail)"}},
		{"only legacy", groupsAt(t, days(40), catalog.StateLegacy, days(41), catalog.StateLegacy),
			retention.Policy{RetentionDays: 1}, removeAll, []string{"newest backup (guard rail)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := makePlan(tc.groups, nil, tc.policy, planNow, tc.apply)
			if err != nil {
				t.Fatal(err)
			}
			var reasons []string
			for _, d := range p.Decisions {
				if d.Keep {
					reasons = append(reasons, d.Reason)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(strings.Join(reasons, "; "), w) {
					t.Errorf("kept reasons %q lack %q", reasons, w)
				}
			}
			if len(p.Remove()) == 0 {
				t.Errorf("nothing removed: the case should remove the older groups")
			}
		})
	}
}

func TestGuardNeverRemovesWithinRetention(t *testing.T) {
	gs := groupsAt(t, days(0.5), catalog.StateComplete, days(13.9), catalog.StateComplete, days(14), catalog.StateLegacy,
		days(3), catalog.StateIncomplete, days(14.1), catalog.StateComplete, days(20), catalog.StateIncomplete)
	p, err := makePlan(gs, nil, retention.Policy{KeepMin: 1, RetentionDays: 14}, planNow, removeAll)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range p.Decisions {
		age := planNow.Sub(d.Group.Time)
		if age <= days(14) && !d.Keep {
			t.Errorf("group %s, %s old, removed", d.Group.ID, age)
		}
		if age > days(14) && d.Keep {
			t.Errorf("group %s, %s old, kept (%s): only the guard rails should keep anything under a rogue policy", d.Group.ID, age, d.Reason)
		}
	}
}

func TestGuardKeepsYoungIncomplete(t *testing.T) {
	gs := groupsAt(t, time.Duration(0), catalog.StateComplete, time.Hour, catalog.StateIncomplete, days(0.99), catalog.StateIncomplete,
		days(1.01), catalog.StateIncomplete, days(2), catalog.StateComplete)
	p, err := MakePlan(gs, nil, retention.Policy{KeepMin: 1}, planNow)
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, d := range p.Decisions {
		got += map[bool]string{true: "k", false: "r"}[d.Keep]
	}
	if want := "kkkrr"; got != want {
		t.Errorf("decisions %s, want %s: %+v", got, want, p.Decisions)
	}
	if d := decisions(p)[gs[1].ID]; !strings.Contains(d.Reason, "may still be running") {
		t.Errorf("reason %q", d.Reason)
	}
}

func TestGuardRefusesClockSkew(t *testing.T) {
	cases := []struct {
		name    string
		ahead   time.Duration
		state   catalog.State
		wantErr bool
	}{
		{"in the past", -time.Hour, catalog.StateComplete, false},
		{"now", 0, catalog.StateComplete, false},
		{"4m59s ahead", 4*time.Minute + 59*time.Second, catalog.StateComplete, false},
		{"5m ahead", 5 * time.Minute, catalog.StateComplete, false},
		{"5m01s ahead", 5*time.Minute + time.Second, catalog.StateComplete, true},
		{"a day ahead, incomplete", 24 * time.Hour, catalog.StateIncomplete, true},
		{"a year ahead, legacy", 365 * 24 * time.Hour, catalog.StateLegacy, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gs := groupsAt(t, -tc.ahead, tc.state, days(30), catalog.StateComplete)
			_, err := MakePlan(gs, nil, retention.Policy{KeepMin: 1, RetentionDays: 14}, planNow)
			if got := errors.Is(err, ErrClockSkew); got != tc.wantErr {
				t.Fatalf("got %v, want clock skew error: %v", err, tc.wantErr)
			}
			if tc.wantErr && !strings.Contains(err.Error(), gs[0].ID) {
				t.Errorf("error %q does not name the group", err)
			}
		})
	}
}

func TestGuardKeepsWhatThePolicyLeftUndecided(t *testing.T) {
	gs := groupsAt(t, days(30), catalog.StateComplete, days(40), catalog.StateComplete, days(50), catalog.StateLegacy)
	cases := []struct {
		name  string
		apply applyFunc
	}{
		{"nothing decided", func(gs []retention.Group, _ retention.Policy, _ time.Time) ([]retention.Group, []retention.Group, map[string]string) {
			return nil, nil, nil
		}},
		{"everything both kept and removed", func(gs []retention.Group, _ retention.Policy, _ time.Time) ([]retention.Group, []retention.Group, map[string]string) {
			return gs, gs, nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := makePlan(gs, nil, retention.Policy{KeepMin: 1}, planNow, tc.apply)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Remove()) != 0 || p.Kept() != 3 {
				t.Errorf("removed %d, kept %d; want every group kept", len(p.Remove()), p.Kept())
			}
		})
	}
}

func TestGuardRefusesDuplicateGroups(t *testing.T) {
	gs := groupsAt(t, days(30), catalog.StateComplete)
	gs = append(gs, gs[0])
	if _, err := MakePlan(gs, nil, retention.Policy{KeepMin: 1}, planNow); err == nil {
		t.Fatal("a group listed twice was accepted")
	}
}
