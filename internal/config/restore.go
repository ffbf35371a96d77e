package config

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
)

// Restore and verify defaults and the values they accept.
const (
	DefaultBackupID       = "latest"
	RestoreModeSideBySide = "side_by_side"
	RestoreModeLocal      = "local"
	RestoreModeReplace    = "replace"
	DefaultRestoreMode    = RestoreModeSideBySide
	// ConfirmWord is what confirm must be, exactly, for a restore to run.
	ConfirmWord = "YES"
)

// restoreInputs are the inputs of restore and verify.
func restoreInputs() []Input {
	both := []string{CommandRestore, CommandVerify}
	restore := []string{CommandRestore}
	return []Input{
		{Name: "backup_id", Default: DefaultBackupID, Commands: both,
			Description: "restore, verify: the group to use, `latest` (the newest complete group) or its id YYYYMMDD-HHMMSS."},
		{Name: "confirm", Commands: restore,
			Description: "restore: must be exactly YES, or the restore is refused before anything is contacted."},
		{Name: "restore_mode", Default: DefaultRestoreMode, Commands: restore,
			Description: "restore: side_by_side writes into <remote_path>/restore-<backup_id>/ on the host and never touches the live databases; " +
				"local writes into restore_dir on the runner; replace swaps the live databases (needs stop_command and start_command, takes a safety backup first)."},
		{Name: "files", Commands: restore,
			Description: "restore: glob of the database names to restore from the group, e.g. production.sqlite3. Empty: every database of the group."},
		{Name: "allow_restore", Bool: true, Env: []string{"ALLOW_DB_RESTORE"}, Commands: restore,
			Description: "restore: must be true (or env ALLOW_DB_RESTORE=1) when environment is production. Default false."},
		{Name: "restore_dir", Commands: restore,
			Description: "restore_mode local: the runner directory to write into. Empty: $GITHUB_WORKSPACE/restore (./restore outside Actions)."},
		{Name: "stop_command", Commands: restore,
			Description: "restore_mode replace: shell command run on the host to stop the app (e.g. docker stop myapp-web); afterwards no process may hold the databases."},
		{Name: "start_command", Commands: restore,
			Description: "restore_mode replace: shell command run on the host to start the app again; it also runs when the restore fails after stop_command."},
		{Name: "max_age_hours", Commands: []string{CommandVerify},
			Description: "verify: fail when the newest complete group is older than this many hours (a freshness alarm). Empty or 0: no check."},
	}
}

// RestoreOutputs are the outputs restore and verify set; the app writes them.
func RestoreOutputs() []Input {
	return []Input{
		{Name: "restored_backup_id", Description: "restore: id of the group restored."},
		{Name: "restore_path", Description: "restore: directory the databases were written to (on the host, or on the runner for restore_mode local)."},
		{Name: "safety_backup_id", Description: "restore_mode replace: id of the safety backup of the live databases taken before they were replaced."},
		{Name: "verified_backup_id", Description: "verify: id of the group that passed every check."},
	}
}

// RestoreConfig holds the restore and verify settings.
type RestoreConfig struct {
	BackupID     string        // "latest" or YYYYMMDD-HHMMSS
	Confirm      string        // must equal ConfirmWord to restore; checked by the restore command
	Mode         string        // one of the RestoreMode* constants
	Files        string        // glob of database names; "" = all
	Allow        bool          // allow_restore / ALLOW_DB_RESTORE
	Dir          string        // restore_dir; "" = the app picks the default
	StopCommand  string        // replace only
	StartCommand string        // replace only
	MaxAge       time.Duration // verify: 0 = no freshness check
}

// parse fills r from the resolved values; each problem names its input.
// Values are checked for the command that reads them only, so a stray
// default never fails another command.
func (r *RestoreConfig) parse(vals map[string]string) []error {
	var errs []error
	bad := func(input, format string, args ...any) {
		errs = append(errs, fmt.Errorf("input %s: "+format, append([]any{input}, args...)...))
	}
	cmd := strings.TrimSpace(vals["command"])
	r.BackupID = strings.TrimSpace(vals["backup_id"])
	r.Confirm = strings.TrimSpace(vals["confirm"])
	r.Mode = strings.ToLower(strings.TrimSpace(vals["restore_mode"]))
	r.Files = strings.TrimSpace(vals["files"])
	r.Dir = strings.TrimSpace(vals["restore_dir"])
	r.StopCommand = strings.TrimSpace(vals["stop_command"])
	r.StartCommand = strings.TrimSpace(vals["start_command"])
	if cmd != CommandRestore && cmd != CommandVerify {
		return nil
	}
	if r.BackupID == "" {
		r.BackupID = DefaultBackupID
	}
	if r.BackupID != DefaultBackupID {
		if _, err := catalog.ParseID(r.BackupID); err != nil {
			bad("backup_id", "%q is not latest or a group id like 20250131-020000", r.BackupID)
		}
	}
	if cmd == CommandVerify {
		if s := strings.TrimSpace(vals["max_age_hours"]); s != "" {
			h, err := strconv.ParseFloat(s, 64)
			if err != nil || h < 0 || h > 24*366*10 {
				bad("max_age_hours", "%q is not a number of hours (0 or empty: no check)", s)
			} else {
				r.MaxAge = time.Duration(h * float64(time.Hour))
			}
		}
		return errs
	}

	var ok bool
	if r.Allow, ok = parseBool(vals["allow_restore"]); !ok {
		bad("allow_restore", "%q is not true or false (env ALLOW_DB_RESTORE is read when the input is not given)", vals["allow_restore"])
	}
	if r.Mode == "" {
		r.Mode = DefaultRestoreMode
	}
	switch r.Mode {
	case RestoreModeSideBySide, RestoreModeLocal, RestoreModeReplace:
	default:
		bad("restore_mode", "%q is not side_by_side, local or replace", r.Mode)
	}
	if r.Files != "" {
		if strings.ContainsAny(r.Files, `/\`) {
			bad("files", "%q must be a file name glob without a slash", r.Files)
		} else if _, err := path.Match(r.Files, "x"); err != nil {
			bad("files", "%q is not a valid glob: %v", r.Files, err)
		}
	}
	replace := r.Mode == RestoreModeReplace
	for _, c := range []struct{ name, val string }{{"stop_command", r.StopCommand}, {"start_command", r.StartCommand}} {
		switch {
		case replace && c.val == "":
			bad(c.name, "required with restore_mode replace (the app must be stopped while its databases are swapped)")
		case !replace && c.val != "":
			bad(c.name, "only used with restore_mode replace, and restore_mode is %s", r.Mode)
		}
	}
	if r.Dir != "" && r.Mode != RestoreModeLocal {
		bad("restore_dir", "only used with restore_mode local, and restore_mode is %s", r.Mode)
	}
	return errs
}
