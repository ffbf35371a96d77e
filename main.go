// Command sqlite-backup-action backs up live SQLite databases over SSH to
// S3-compatible storage. It is a GitHub Action (GITHUB_ACTIONS=true, no
// arguments) and a CLI; see README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
