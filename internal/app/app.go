// Package app picks Action mode (GITHUB_ACTIONS=true and no arguments) or
// CLI mode, builds the Config, wires the concrete clients and maps the
// outcome to an exit code and one clear error line.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/action"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/config"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
)

// Version of the tool, recorded in every manifest.
const Version = "0.1.0"

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1 // the command ran and failed
	ExitUsage  = 2 // bad input: nothing was attempted
)

// env is the process environment and I/O, injected so tests can run the
// whole program in process.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	gha    *action.Action // nil in CLI mode
	// leftovers are host temp dirs of failed attempts still to remove.
	leftovers []string
}

// Main runs the program and returns its exit code.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "helper" {
		return snapshot.HelperMain(ctx, args[1:], stdout, stderr)
	}
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	if getenv("GITHUB_ACTIONS") == "true" && len(args) == 0 {
		e.gha = action.New(getenv, stdout)
		return e.runAction(ctx)
	}
	return e.runCLI(ctx, args)
}

func (e *env) runAction(ctx context.Context) int {
	vals := config.Resolve(e.gha.Input, e.getenv, e.gha.Mask)
	given := func(name string) bool { _, ok := e.gha.Input(name); return ok }
	if err := config.ApplyKamal(vals, given, config.ReadFile, e.getenv); err != nil {
		return e.fail(ExitUsage, "invalid inputs", err)
	}
	cfg, err := config.FromValues(vals, config.ReadFile)
	if err != nil {
		return e.fail(ExitUsage, "invalid inputs", err)
	}
	return e.run(ctx, cfg)
}

// run executes the configured command.
func (e *env) run(ctx context.Context, cfg *config.Config) int {
	var err error
	switch cfg.Command {
	case config.CommandBackup:
		err = e.backup(ctx, cfg)
	case config.CommandPrune:
		err = e.prune(ctx, cfg)
	case config.CommandList:
		err = e.list(ctx, cfg)
	case config.CommandRestore:
		err = e.restore(ctx, cfg)
	case config.CommandVerify:
		err = e.verify(ctx, cfg)
	default:
		err = fmt.Errorf("command %q is not implemented yet", cfg.Command)
	}
	if err != nil {
		return e.fail(ExitFailed, cfg.Command+" failed", err)
	}
	return ExitOK
}

// fail prints one clear line per problem (errors.Join gives several),
// as a GitHub error annotation too in Action mode.
func (e *env) fail(code int, what string, err error) int {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	for _, l := range lines {
		fmt.Fprintf(e.stderr, "error: %s\n", l)
	}
	if e.gha != nil {
		e.gha.Error(what + ": " + strings.Join(lines, "; "))
	}
	return code
}

// helperDirs are where standalone remote helpers are looked for.
func (e *env) helperDirs() []string {
	dirs := []string{e.getenv("SBA_HELPER_DIR")}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "helpers"))
	}
	return append(dirs, "/usr/local/lib/sqlite-backup-action")
}

// group wraps a step in a collapsible log group in Action mode.
func (e *env) group(title string, fn func() error) error {
	if e.gha != nil {
		e.gha.Group(title)
		defer e.gha.EndGroup()
	}
	return fn()
}

var errUsage = errors.New("usage")
