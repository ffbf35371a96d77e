package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/config"
)

const usageText = `sqlite-backup-action: consistent backups of live SQLite databases over SSH to S3.

Usage:
  sqlite-backup-action <command> [flags]

Commands:
  backup    snapshot every database on the host and upload one backup group
  prune     delete old backup groups by the retention policy
  list      list backup groups
  restore   restore a backup group (guarded by --confirm YES)
  verify    restore drill: download a group and check everything, touching nothing
  demo      make a demo database with a live writer and back it up locally
  version   print the version

Run 'sqlite-backup-action <command> --help' for the flags of a command.
Every flag is also an action input: --ssh-host is ssh_host.
`

func (e *env) runCLI(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usageText)
		return ExitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, usageText)
		return ExitOK
	case "version", "--version":
		fmt.Fprintln(e.stdout, "sqlite-backup-action", Version)
		return ExitOK
	case config.CommandDemo:
		return e.demo(ctx, rest)
	case config.CommandBackup, config.CommandPrune, config.CommandList, config.CommandRestore, config.CommandVerify:
	default:
		fmt.Fprintf(e.stderr, "error: unknown command %q\n\n%s", cmd, usageText)
		return ExitUsage
	}
	lookup, err := parseFlags(cmd, rest, e.stdout, e.stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		return ExitUsage
	}
	vals := config.Resolve(lookup, e.getenv, nil)
	vals["command"] = cmd
	given := func(name string) bool { _, ok := lookup(name); return ok }
	if err := config.ApplyKamal(vals, given, config.ReadFile, e.getenv); err != nil {
		return e.fail(ExitUsage, "invalid flags", err)
	}
	cfg, err := config.FromValues(vals, config.ReadFile)
	if err != nil {
		return e.fail(ExitUsage, "invalid flags", err)
	}
	return e.run(ctx, cfg)
}

// parseFlags gives every input of cmd a kebab-case flag and returns a
// Lookup over the flags that were set.
func parseFlags(cmd string, args []string, stdout, stderr io.Writer) (config.Lookup, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	set := map[string]string{}
	for _, in := range config.Inputs() {
		if in.Name == "command" || (len(in.Commands) > 0 && !slices.Contains(in.Commands, cmd)) {
			continue
		}
		help := in.Description
		if len(in.Env) > 0 {
			help += " (env " + strings.Join(in.Env, ", ") + ")"
		}
		if in.Secret {
			help += " Secret: prefer the environment or a *_path flag over the command line."
		}
		v := &flagValue{name: in.Name, set: set, def: in.Default, isBool: in.Bool}
		fs.Var(v, kebab(in.Name), help)
	}
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: sqlite-backup-action %s [flags]\n\nFlags:\n", cmd)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "error: unexpected argument %q\n", fs.Arg(0))
		return nil, errUsage
	}
	return func(name string) (string, bool) {
		v, ok := set[name]
		return v, ok
	}, nil
}

func kebab(s string) string { return strings.ReplaceAll(s, "_", "-") }

// flagValue records only flags that were given, so the environment
// fallbacks and defaults apply to the rest.
type flagValue struct {
	name   string
	def    string
	set    map[string]string
	isBool bool
}

func (f *flagValue) String() string {
	if f == nil {
		return ""
	}
	return f.def
}
func (f *flagValue) Set(s string) error { f.set[f.name] = s; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.isBool }
