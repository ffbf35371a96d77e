package app

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/config"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/prune"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/retention"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store"
)

func (e *env) prune(ctx context.Context, cfg *config.Config) error {
	st, err := e.openStore(ctx, cfg)
	if err != nil {
		return err
	}
	return e.group("Prune "+st.String(), func() error { return e.runPrune(ctx, cfg, st) })
}

// pruneAfterBackup runs prune with the configured policy when the prune
// input is set, and does nothing otherwise. Call it only after a
// successful backup, with the store the backup wrote to.
func (e *env) pruneAfterBackup(ctx context.Context, cfg *config.Config, st store.Backend) error {
	if !cfg.Prune.AfterBackup {
		return nil
	}
	if err := e.group("Prune after backup", func() error { return e.runPrune(ctx, cfg, st) }); err != nil {
		return fmt.Errorf("prune after backup (the backup itself succeeded): %w", err)
	}
	return nil
}

// runPrune prints the decision table, and in Action mode writes it to the
// job summary and sets the deleted and kept outputs, even when deletion
// failed: the table shows which groups are left.
func (e *env) runPrune(ctx context.Context, cfg *config.Config, st store.Backend) error {
	res, err := prune.Run(ctx, prune.Options{
		Store:       st,
		Layout:      catalog.Layout{Prefix: cfg.Prefix, Environment: cfg.Environment},
		Policy:      policy(cfg),
		ShrinkGuard: cfg.Prune.ShrinkGuard,
		DryRun:      cfg.Prune.DryRun,
		Now:         time.Now(),
		Log:         e.log,
	})
	if res == nil {
		return err
	}
	fmt.Fprint(e.stdout, res.Text())
	if res.Shrink != nil && e.gha != nil {
		e.gha.Warning(res.Shrink.String())
	}
	kept, deleted, _ := res.Counts()
	if e.gha != nil {
		if serr := e.gha.Summary(res.Markdown()); serr != nil && err == nil {
			err = serr
		}
		if oerr := e.gha.SetOutputs([][2]string{
			{"deleted", strconv.Itoa(deleted)},
			{"kept", strconv.Itoa(kept)},
		}); oerr != nil && err == nil {
			err = oerr
		}
	}
	return err
}

func policy(cfg *config.Config) retention.Policy {
	return retention.Policy{
		KeepMin:       cfg.Prune.KeepMin,
		RetentionDays: cfg.Prune.RetentionDays,
		KeepDaily:     cfg.Prune.KeepDaily,
		KeepWeekly:    cfg.Prune.KeepWeekly,
		KeepMonthly:   cfg.Prune.KeepMonthly,
	}
}

func (e *env) list(ctx context.Context, cfg *config.Config) error {
	st, err := e.openStore(ctx, cfg)
	if err != nil {
		return err
	}
	l, err := prune.List(ctx, st, catalog.Layout{Prefix: cfg.Prefix, Environment: cfg.Environment}, time.Now())
	if err != nil {
		return err
	}
	if cfg.Prune.JSON {
		b, err := l.JSON()
		if err != nil {
			return err
		}
		if _, err := e.stdout.Write(b); err != nil {
			return fmt.Errorf("write listing: %w", err)
		}
	} else {
		fmt.Fprint(e.stdout, l.Text())
	}
	if e.gha != nil {
		return e.gha.Summary(l.Markdown())
	}
	return nil
}
