package testutil

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// ErrInvariant marks a database whose totals row disagrees with its ledger,
// or that fails PRAGMA integrity_check.
var ErrInvariant = errors.New("invariant violated")

const (
	storageTimeout    = 30 * time.Minute // a 1 GiB prefill or check on a slow disk
	prefillBatchBytes = 32 << 20
	prefillBatchRows  = 50_000
	schemaSQL         = `CREATE TABLE ledger(id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, pad BLOB);
CREATE TABLE totals(id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL, sum INTEGER NOT NULL);`
)

// MakeRailsStorage creates in dir the four WAL-mode RailsDatabases, each with
// rowsPerDB ledger rows of padBytes random bytes and a matching totals row,
// plus uploads/ holding a file and an empty .keep. The databases are filled
// in parallel, in large transactions without a journal, then switched to WAL.
func MakeRailsStorage(t testing.TB, dir string, rowsPerDB, padBytes int) {
	t.Helper()
	makeRailsStorage(t, dir, rowsPerDB, padBytes, fillRandom)
}

// MakeRailsStorageText is MakeRailsStorage with pads of text-like data that
// compresses about as well as a real app's rows (zstd -3 about 4-6x), for
// benchmarks where bytes over the wire matter.
func MakeRailsStorageText(t testing.TB, dir string, rowsPerDB, padBytes int) {
	t.Helper()
	makeRailsStorage(t, dir, rowsPerDB, padBytes, fillText)
}

func makeRailsStorage(t testing.TB, dir string, rowsPerDB, padBytes int, fill func(*rand.Rand, []byte)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), storageTimeout)
	defer cancel()
	if err := os.MkdirAll(filepath.Join(dir, "uploads"), 0o755); err != nil {
		t.Fatalf("rails storage: %v", err)
	}
	writeFile(t, filepath.Join(dir, ".keep"), nil, 0o644)
	upload := make([]byte, 4096)
	fillRandom(rand.New(rand.NewPCG(1, 2)), upload)
	writeFile(t, filepath.Join(dir, "uploads", "avatar-1.bin"), upload, 0o644)

	names := RailsDatabases()
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			errs[i] = createDB(ctx, filepath.Join(dir, name), rowsPerDB, padBytes, uint64(i), fill)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("rails storage: %v", err)
	}
}

func createDB(ctx context.Context, path string, rows, padBytes int, seed uint64, fill func(*rand.Rand, []byte)) (err error) {
	db, err := sql.Open("sqlite", sqliteURI(path, "_pragma=journal_mode(OFF)&_pragma=synchronous(OFF)&_pragma=cache_size(-65536)"))
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	db.SetMaxOpenConns(1) // the pragmas hold for this one connection
	if _, err := db.ExecContext(ctx, schemaSQL); err != nil {
		return fmt.Errorf("create %s: schema: %w", path, err)
	}
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	pad := make([]byte, padBytes)
	batch := max(1, min(prefillBatchRows, prefillBatchBytes/max(1, padBytes)))
	var count, sum int64
	for done := 0; done < rows; done += batch {
		n := min(batch, rows-done)
		s, err := insertBatch(ctx, db, rng, pad, n, fill)
		if err != nil {
			return fmt.Errorf("create %s: prefill: %w", path, err)
		}
		count, sum = count+int64(n), sum+s
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO totals(id, count, sum) VALUES(1, ?, ?)", count, sum); err != nil {
		return fmt.Errorf("create %s: totals: %w", path, err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil || mode != "wal" {
		return fmt.Errorf("create %s: journal_mode=WAL gave %q: %w", path, mode, err)
	}
	return nil
}

func insertBatch(ctx context.Context, db *sql.DB, rng *rand.Rand, pad []byte, n int, fill func(*rand.Rand, []byte)) (sum int64, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO ledger(amount, pad) VALUES(?, ?)")
	if err != nil {
		return 0, fmt.Errorf("prepare: %w", err)
	}
	defer stmt.Close()
	for range n {
		amount := rng.Int64N(1000) + 1
		fill(rng, pad)
		if _, err := stmt.ExecContext(ctx, amount, pad); err != nil {
			return 0, fmt.Errorf("insert: %w", err)
		}
		sum += amount
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return sum, nil
}

// CheckInvariant opens the database read-only and checks, in one read
// transaction, that PRAGMA integrity_check is ok and that the totals row
// matches count(*) and sum(amount) of the ledger. A violation wraps
// ErrInvariant.
func CheckInvariant(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), storageTimeout)
	defer cancel()
	return withReadTx(ctx, path, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "PRAGMA integrity_check")
		if err != nil {
			return fmt.Errorf("integrity_check: %w", err)
		}
		var problems []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return errors.Join(fmt.Errorf("integrity_check: %w", err), rows.Close())
			}
			problems = append(problems, line)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("integrity_check: %w", err)
		}
		if len(problems) != 1 || problems[0] != "ok" {
			return fmt.Errorf("%w: integrity_check: %s", ErrInvariant, strings.Join(problems, "; "))
		}
		var count, sum, wantCount, wantSum int64
		if err := tx.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(amount), 0) FROM ledger").Scan(&count, &sum); err != nil {
			return fmt.Errorf("read ledger: %w", err)
		}
		if err := tx.QueryRowContext(ctx, "SELECT count, sum FROM totals WHERE id = 1").Scan(&wantCount, &wantSum); err != nil {
			return fmt.Errorf("read totals: %w", err)
		}
		if count != wantCount || sum != wantSum {
			return fmt.Errorf("%w: ledger has %d rows summing to %d, totals say %d and %d",
				ErrInvariant, count, sum, wantCount, wantSum)
		}
		return nil
	})
}

// CountRows returns the number of ledger rows in the database.
func CountRows(path string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storageTimeout)
	defer cancel()
	var n int64
	err := withReadTx(ctx, path, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM ledger").Scan(&n); err != nil {
			return fmt.Errorf("count ledger: %w", err)
		}
		return nil
	})
	return n, err
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// withReadTx runs fn in a read transaction on a read-only connection to path.
func withReadTx(ctx context.Context, path string, fn func(*sql.Tx) error) (err error) {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	query := fmt.Sprintf("mode=ro&_pragma=busy_timeout(%d)", busyTimeoutMillis)
	if !exists(path+"-wal") && !exists(path+"-shm") {
		// Nobody has the database open: read it as immutable, or SQLite would
		// leave an empty -wal and -shm beside it even on a read-only open.
		query += "&immutable=1"
	}
	db, err := sql.Open("sqlite", sqliteURI(path, query))
	if err != nil {
		return fmt.Errorf("check %s: open: %w", path, err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("check %s: begin: %w", path, err)
	}
	defer func() { err = errors.Join(err, tx.Rollback()) }()
	if err := fn(tx); err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	return nil
}

// textWords make rows that look like an app's: names, statuses, numbers.
var textWords = strings.Fields(`order customer invoice paid pending shipped refunded cancelled user account
session token email address street city country postal note comment status created updated deleted amount
currency price quantity product sku warehouse carrier tracking delivered returned review rating message
subject body reply draft archived active inactive admin member guest plan monthly yearly trial renewal`)

// fillText fills p with random words and numbers.
func fillText(rng *rand.Rand, p []byte) {
	i := 0
	for i < len(p) {
		var w string
		if rng.IntN(4) == 0 {
			w = strconv.Itoa(rng.IntN(100000))
		} else {
			w = textWords[rng.IntN(len(textWords))]
		}
		i += copy(p[i:], w)
		if i < len(p) {
			p[i] = ' '
			i++
		}
	}
}

func fillRandom(rng *rand.Rand, p []byte) {
	for i := 0; i < len(p); i += 8 {
		v := rng.Uint64()
		for j := i; j < min(i+8, len(p)); j++ {
			p[j] = byte(v)
			v >>= 8
		}
	}
}
