// Command sqlite-backup-helper is the small, static helper the action copies
// to a database host: it takes consistent snapshots of live SQLite databases
// there. It accepts "sqlite-backup-helper [helper] snapshot ...", so the
// runner calls it like the full binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "helper" {
		args = args[1:]
	}
	code := snapshot.HelperMain(ctx, args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
