package snapshot

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
)

// HelperVersion is the version of the helper's command line and JSON lines,
// as "helper version" prints it. 2: snapshot --follow and "growing" lines.
// The runner ships the helper of its own build (checked by SHA-256), so the
// two always match; an older helper put in SBA_HELPER_DIR by hand fails
// with "flag provided but not defined: -follow".
const HelperVersion = "2"

// Helper exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

const (
	// EnvNoReexec, set to 1, keeps the helper from re-executing itself at a
	// lower priority (for tests and debugging).
	EnvNoReexec = "SBA_HELPER_NO_REEXEC"
	// envReniced marks the re-executed, already lowered helper.
	envReniced = "SBA_HELPER_RENICED"

	helperNice   = 10
	ioprioClass  = 2 // IOPRIO_CLASS_BE
	ioprioLevel  = 7 // lowest best-effort level
	ioprioShift  = 13
	ioprioWhoPID = 1 // IOPRIO_WHO_PROCESS; with who 0, the calling thread
)

const helperUsage = `usage:
  helper snapshot --dir DIR --include GLOB --out OUTDIR [--compression zstd|gzip|none] [--follow]
      snapshot each database in DIR matching GLOB into OUTDIR; prints one JSON line per file
      (with --follow, also one as each compressed file is started, marked "growing")
  helper version
      print the helper and SQLite versions as one JSON line
`

// VersionInfo is what "helper version" prints.
type VersionInfo struct {
	HelperVersion string `json:"helper_version"`
	SQLiteVersion string `json:"sqlite_version"`
	GOOS          string `json:"goos"`
	GOARCH        string `json:"goarch"`
	Nice          int    `json:"nice"`        // of the thread that answered
	IOPriority    string `json:"io_priority"` // class/level, e.g. be/7
}

// HelperMain runs the helper command line (args without the program name)
// and returns its exit code. It first re-executes the process at nice 10
// and best-effort I/O level 7, unless EnvNoReexec=1.
func HelperMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	lowerPriority(stderr)
	if len(args) == 0 {
		fmt.Fprint(stderr, helperUsage)
		return ExitUsage
	}
	switch args[0] {
	case "snapshot":
		return helperSnapshot(ctx, args[1:], stdout, stderr)
	case "version":
		return helperVersion(ctx, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, helperUsage)
		return ExitOK
	default:
		fmt.Fprintf(stderr, "helper: unknown command %q\n%s", args[0], helperUsage)
		return ExitUsage
	}
}

func helperSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("helper snapshot", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var req Request
	fl.StringVar(&req.Dir, "dir", "", "directory holding the databases")
	fl.StringVar(&req.Include, "include", "", "glob of database file names")
	fl.StringVar(&req.OutDir, "out", "", "private directory for the snapshots")
	fl.StringVar(&req.Compression, "compression", CompressionZstd, "zstd, gzip or none")
	fl.BoolVar(&req.Follow, "follow", false, "report each file as growing once its compressed copy is started, then again when finished")
	var cleanDir string
	fl.StringVar(&cleanDir, "clean-stale", "", "remote_temp_dir: remove temp dirs of dead earlier runs found there")
	fl.Func("previous", "NAME=SHA256 of a database's snapshot in the newest backup (repeatable): unchanged ones are not sent",
		func(v string) error {
			i := strings.LastIndex(v, "=")
			if i <= 0 || len(v)-i-1 != 64 {
				return fmt.Errorf("want NAME=SHA256, got %q", v)
			}
			if req.Previous == nil {
				req.Previous = map[string]string{}
			}
			req.Previous[v[:i]] = v[i+1:]
			return nil
		})
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	for _, f := range []struct{ name, val string }{{"dir", req.Dir}, {"include", req.Include}, {"out", req.OutDir}} {
		if f.val == "" {
			fmt.Fprintf(stderr, "helper snapshot: flag --%s is required\n", f.name)
			return ExitUsage
		}
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "helper snapshot: unexpected arguments %q\n", fl.Args())
		return ExitUsage
	}
	lock, err := holdLock(req.OutDir)
	if err != nil {
		fmt.Fprintf(stderr, "helper snapshot: %v\n", err)
		return ExitFailure
	}
	defer lock.Close()
	if cleanDir != "" {
		if n := cleanStale(cleanDir, filepath.Dir(req.OutDir), stderr); n > 0 {
			fmt.Fprintf(stderr, "helper: removed %d temp dirs left by earlier runs that died\n", n)
		}
	}
	enc := json.NewEncoder(stdout)
	err = Run(ctx, req, func(f File) error {
		if err := enc.Encode(Line{File: &f}); err != nil {
			return fmt.Errorf("write report line: %w", err)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "helper snapshot: %v\n", err)
		_ = enc.Encode(Line{Error: err.Error()}) // stdout may be the thing that failed
		return ExitFailure
	}
	return ExitOK
}

func helperVersion(ctx context.Context, stdout, stderr io.Writer) int {
	v := VersionInfo{HelperVersion: HelperVersion, GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	var err error
	if v.SQLiteVersion, err = sqliteVersion(ctx); err != nil {
		fmt.Fprintf(stderr, "helper version: %v\n", err)
		return ExitFailure
	}
	v.Nice, v.IOPriority = currentPriority()
	if err := json.NewEncoder(stdout).Encode(v); err != nil {
		fmt.Fprintf(stderr, "helper version: %v\n", err)
		return ExitFailure
	}
	return ExitOK
}

func sqliteVersion(ctx context.Context) (string, error) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		return "", fmt.Errorf("open sqlite: %w", err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v); err != nil {
		return "", fmt.Errorf("sqlite version: %w", err)
	}
	return v, nil
}
