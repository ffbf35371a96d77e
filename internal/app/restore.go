package app

import (
	"context"
	"errors"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/config"
)

func (e *env) restore(ctx context.Context, cfg *config.Config) error {
	return errors.New("restore is not implemented yet")
}

func (e *env) verify(ctx context.Context, cfg *config.Config) error {
	return errors.New("verify is not implemented yet")
}
