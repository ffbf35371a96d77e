package app

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/config"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// railsDatabases are the files a Rails 8 app keeps in storage/.
var railsDatabases = []string{"production.sqlite3", "production_cache.sqlite3", "production_queue.sqlite3", "production_cable.sqlite3"}

// demo makes a Rails-like storage dir with WAL databases, keeps writing to
// them while it backs them up to a local directory, then checks the group.
func (e *env) demo(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	dir := fs.String("dir", "demo-data", "where to create the demo databases")
	dest := fs.String("destination-dir", "demo-backups", "where to write the backup groups")
	rows := fs.Int("rows", 20000, "ledger rows per database")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	absDest, err := filepath.Abs(*dest)
	if err != nil {
		return e.fail(ExitFailed, "demo failed", err)
	}
	if err := makeDemo(ctx, *dir, *rows); err != nil {
		return e.fail(ExitFailed, "demo failed", err)
	}
	fmt.Fprintf(e.stdout, "demo databases in %s; a writer commits to them while the backup runs\n", *dir)
	w := startDemoWriter(ctx, *dir)
	vals := config.Resolve(func(string) (string, bool) { return "", false }, func(string) string { return "" }, nil)
	vals["remote_path"] = *dir
	vals["destination"] = "file://" + absDest
	cfg, err := config.FromValues(vals, config.ReadFile)
	if err != nil {
		w.stop()
		return e.fail(ExitUsage, "demo failed", err)
	}
	code := e.run(ctx, cfg)
	commits, werr := w.stop()
	fmt.Fprintf(e.stdout, "the writer committed %d transactions during the demo\n", commits)
	if werr != nil {
		return e.fail(ExitFailed, "demo writer failed", werr)
	}
	if code == ExitOK {
		fmt.Fprintf(e.stdout, "backup groups are in %s (layout <prefix>/<environment>/<YYYYMMDD-HHMMSS>/)\n", absDest)
	}
	return code
}

func makeDemo(ctx context.Context, dir string, rows int) error {
	if err := os.MkdirAll(filepath.Join(dir, "uploads"), 0o755); err != nil {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".keep"), nil, 0o644); err != nil {
		return err
	}
	for _, name := range railsDatabases {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			continue // keep an existing demo database: it grows run after run
		}
		db, err := openDemo(p)
		if err != nil {
			return err
		}
		err = fillDemo(ctx, db, rows)
		db.Close()
		if err != nil {
			return fmt.Errorf("fill %s: %w", p, err)
		}
	}
	return nil
}

func openDemo(p string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func fillDemo(ctx context.Context, db *sql.DB, rows int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{
		`CREATE TABLE ledger(id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, pad BLOB)`,
		`CREATE TABLE totals(id INTEGER PRIMARY KEY CHECK (id=1), count INTEGER NOT NULL, sum INTEGER NOT NULL)`,
		`INSERT INTO totals VALUES(1, 0, 0)`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	var sum int64
	for i := 0; i < rows; i++ {
		amount := int64(i%1000 + 1)
		sum += amount
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger(amount, pad) VALUES(?, randomblob(200))`, amount); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE totals SET count=?, sum=?`, rows, sum); err != nil {
		return err
	}
	return tx.Commit()
}

type demoWriter struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	commits atomic.Int64
	mu      sync.Mutex
	err     error
}

// startDemoWriter commits a ledger row plus a totals update to each
// database in turn, about 200 times a second, until stopped.
func startDemoWriter(ctx context.Context, dir string) *demoWriter {
	ctx, cancel := context.WithCancel(ctx)
	w := &demoWriter{cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		dbs := make([]*sql.DB, 0, len(railsDatabases))
		defer func() {
			for _, db := range dbs {
				db.Close()
			}
		}()
		for _, name := range railsDatabases {
			db, err := openDemo(filepath.Join(dir, name))
			if err != nil {
				w.setErr(err)
				return
			}
			dbs = append(dbs, db)
		}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n, _ := rand.Int(rand.Reader, big.NewInt(1000))
			amount := n.Int64() + 1
			if err := demoCommit(ctx, dbs[i%len(dbs)], amount); err != nil {
				if ctx.Err() == nil {
					w.setErr(err)
				}
				return
			}
			w.commits.Add(1)
		}
	}()
	return w
}

func demoCommit(ctx context.Context, db *sql.DB, amount int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO ledger(amount, pad) VALUES(?, randomblob(200))`, amount); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE totals SET count=count+1, sum=sum+?`, amount); err != nil {
		return err
	}
	return tx.Commit()
}

func (w *demoWriter) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

func (w *demoWriter) stop() (int64, error) {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.commits.Load(), w.err
}
