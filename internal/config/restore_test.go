package config

import (
	"strings"
	"testing"
	"time"
)

func TestRestoreInputs(t *testing.T) {
	base := func(cmd string) map[string]string {
		return map[string]string{"command": cmd, "destination": "file:///tmp/x", "ssh_host": "app.example.com",
			"ssh_private_key": "KEY", "ssh_known_hosts": "app.example.com ssh-ed25519 AAAA"}
	}
	cases := []struct {
		name    string
		cmd     string
		inputs  map[string]string
		env     map[string]string
		check   func(r RestoreConfig) bool
		wantErr []string
	}{
		{name: "defaults", cmd: CommandRestore, check: func(r RestoreConfig) bool {
			return r.BackupID == "latest" && r.Mode == RestoreModeSideBySide && !r.Allow && r.Confirm == ""
		}},
		{name: "confirm is kept for the guard", cmd: CommandRestore, inputs: map[string]string{"confirm": " YES\n"},
			check: func(r RestoreConfig) bool { return r.Confirm == "YES" }},
		{name: "ALLOW_DB_RESTORE=1", cmd: CommandRestore, env: map[string]string{"ALLOW_DB_RESTORE": "1"},
			check: func(r RestoreConfig) bool { return r.Allow }},
		{name: "allow_restore input", cmd: CommandRestore, inputs: map[string]string{"allow_restore": "true"},
			check: func(r RestoreConfig) bool { return r.Allow }},
		{name: "bad allow", cmd: CommandRestore, env: map[string]string{"ALLOW_DB_RESTORE": "please"}, wantErr: []string{"input allow_restore", "ALLOW_DB_RESTORE"}},
		{name: "group id", cmd: CommandVerify, inputs: map[string]string{"backup_id": "20250131-020000"},
			check: func(r RestoreConfig) bool { return r.BackupID == "20250131-020000" }},
		{name: "bad group id", cmd: CommandRestore, inputs: map[string]string{"backup_id": "../x"}, wantErr: []string{"input backup_id"}},
		{name: "bad mode", cmd: CommandRestore, inputs: map[string]string{"restore_mode": "swap"}, wantErr: []string{"input restore_mode"}},
		{name: "replace needs both commands", cmd: CommandRestore, inputs: map[string]string{"restore_mode": "replace"},
			wantErr: []string{"input stop_command: required", "input start_command: required"}},
		{name: "replace", cmd: CommandRestore, inputs: map[string]string{"restore_mode": "replace", "stop_command": "docker stop app", "start_command": "docker start app"},
			check: func(r RestoreConfig) bool { return r.Mode == RestoreModeReplace && r.StopCommand == "docker stop app" }},
		{name: "stop_command without replace", cmd: CommandRestore, inputs: map[string]string{"stop_command": "x"}, wantErr: []string{"input stop_command: only used with restore_mode replace"}},
		{name: "restore_dir without local", cmd: CommandRestore, inputs: map[string]string{"restore_dir": "/x"}, wantErr: []string{"input restore_dir"}},
		{name: "files with slash", cmd: CommandRestore, inputs: map[string]string{"files": "../*.sqlite3"}, wantErr: []string{"input files"}},
		{name: "bad files glob", cmd: CommandRestore, inputs: map[string]string{"files": "[x"}, wantErr: []string{"input files"}},
		{name: "max age", cmd: CommandVerify, inputs: map[string]string{"max_age_hours": "26.5"},
			check: func(r RestoreConfig) bool { return r.MaxAge == 26*time.Hour+30*time.Minute }},
		{name: "bad max age", cmd: CommandVerify, inputs: map[string]string{"max_age_hours": "-1"}, wantErr: []string{"input max_age_hours"}},
		{name: "other commands ignore restore values", cmd: CommandBackup, inputs: map[string]string{"restore_mode": "swap", "backup_id": "x"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := base(tc.cmd)
			for k, v := range tc.inputs {
				in[k] = v
			}
			c, err := FromValues(resolve(in, tc.env), noFiles)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				if tc.check != nil && !tc.check(c.Restore) {
					t.Errorf("got %+v", c.Restore)
				}
				return
			}
			if err == nil {
				t.Fatalf("got valid, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
