package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// tables lists the tables of the database at p, in name order, with their
// row counts, on a read-only connection. Virtual tables are listed with
// Rows -1: counting one may need a module this build lacks.
func tables(ctx context.Context, p string) (_ []Table, err error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	// url.URL escapes '?', '#' and '%' in the path, which SQLite decodes.
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: "mode=ro"}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, "SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var out []Table
	var virtual []bool
	for rows.Next() {
		var name, ddl string
		if err := rows.Scan(&name, &ddl); err != nil {
			return nil, errors.Join(fmt.Errorf("list tables: %w", err), rows.Close())
		}
		out = append(out, Table{Name: name, Rows: -1})
		virtual = append(virtual, strings.HasPrefix(strings.ToUpper(strings.TrimSpace(ddl)), "CREATE VIRTUAL"))
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for i := range out {
		if virtual[i] {
			continue
		}
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+quoteIdent(out[i].Name)).Scan(&out[i].Rows); err != nil {
			return nil, fmt.Errorf("count rows of table %s: %w", out[i].Name, err)
		}
	}
	return out, nil
}

// quoteIdent quotes an SQL identifier: table names come from the backup.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
