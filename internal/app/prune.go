package app

import (
	"context"
	"errors"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/config"
)

func (e *env) prune(ctx context.Context, cfg *config.Config) error {
	return errors.New("prune is not implemented yet")
}

func (e *env) list(ctx context.Context, cfg *config.Config) error {
	return errors.New("list is not implemented yet")
}
