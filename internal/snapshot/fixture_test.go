package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// writerDSN opens path the way a Rails 8 app does: WAL, synchronous NORMAL,
// a busy timeout and BEGIN IMMEDIATE.
func writerDSN(path string) string {
	return "file:" + escapeURIPath(path) +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// openWriter opens a read-write pool on path, closed at the end of the test.
func openWriter(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", writerDSN(path))
	if err != nil {
		t.Fatalf("open writer %s: %v", path, err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS ledger(id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, note BLOB);
		CREATE TABLE IF NOT EXISTS totals(id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL, sum INTEGER NOT NULL);
		INSERT OR IGNORE INTO totals VALUES (1, 0, 0)`); err != nil {
		t.Fatalf("create schema in %s: %v", path, err)
	}
	return db
}

// addRows commits rows ledger rows (amount i+1, a note of noteSize bytes)
// and the matching totals in one transaction.
func addRows(t *testing.T, db *sql.DB, rows, noteSize int) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback()
	for i := range rows {
		if _, err := tx.Exec("INSERT INTO ledger(amount, note) VALUES (?, randomblob(?))", i+1, noteSize); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	if _, err := tx.Exec("UPDATE totals SET count = count + ?, sum = sum + ?", rows, rows*(rows+1)/2); err != nil {
		t.Fatalf("update totals: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// ledgerCount checks the totals invariant in the database at path and
// returns the number of ledger rows.
func ledgerCount(t *testing.T, path string) int64 {
	t.Helper()
	db, err := openReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var count, sum, rows, rowsSum int64
	err = db.QueryRow(`SELECT count, sum, (SELECT count(*) FROM ledger), (SELECT coalesce(sum(amount), 0) FROM ledger)
		FROM totals`).Scan(&count, &sum, &rows, &rowsSum)
	if err != nil {
		t.Fatalf("query %s: %v", path, err)
	}
	if count != rows || sum != rowsSum {
		t.Errorf("%s is inconsistent: totals (%d, %d), ledger (%d, %d)", path, count, sum, rows, rowsSum)
	}
	return rows
}

// restore checks a reported file against its stored bytes, decompresses it
// into a fresh dir, checks the raw bytes and runs CheckFile; it returns the
// raw snapshot's path.
func restore(t *testing.T, f File) string {
	t.Helper()
	stored, err := os.ReadFile(f.Path)
	if err != nil {
		t.Fatalf("read stored file: %v", err)
	}
	if got := sha256Hex(stored); got != f.StoredSHA256 {
		t.Errorf("%s: stored sha256 = %s, reported %s", f.Name, got, f.StoredSHA256)
	}
	if got := int64(len(stored)); got != f.StoredSize {
		t.Errorf("%s: stored size = %d, reported %d", f.Name, got, f.StoredSize)
	}
	if got, want := filepath.Base(f.Path), f.Name+Extension(f.Compression); got != want {
		t.Errorf("stored name = %q, want %q", got, want)
	}
	r, err := Decompressor(f.Compression, bytes.NewReader(stored))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompress %s: %v", f.Path, err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("close decompressor: %v", err)
	}
	if got := sha256Hex(raw); got != f.SHA256 {
		t.Errorf("%s: raw sha256 = %s, reported %s", f.Name, got, f.SHA256)
	}
	if got := int64(len(raw)); got != f.Size || int64(f.PageSize)*f.PageCount != f.Size {
		t.Errorf("%s: raw size = %d, reported %d = %d pages of %d", f.Name, got, f.Size, f.PageCount, f.PageSize)
	}
	if f.SQLiteVersion == "" {
		t.Errorf("%s: no sqlite version", f.Name)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := CheckFile(context.Background(), path)
	if err != nil {
		t.Fatalf("CheckFile(%s): %v", f.Name, err)
	}
	if h.PageSize != f.PageSize || h.PageCount != f.PageCount {
		t.Errorf("%s: CheckFile header = %+v, reported %d x %d", f.Name, h, f.PageCount, f.PageSize)
	}
	return path
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// collect runs Run and returns the files it reported.
func collect(t *testing.T, req Request) ([]File, error) {
	t.Helper()
	var files []File
	err := Run(context.Background(), req, func(f File) error {
		files = append(files, f)
		return nil
	})
	return files, err
}
