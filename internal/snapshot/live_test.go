package snapshot

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	liveSnapshots   = 5
	liveSeedRows    = 30000
	liveMinTxPerSec = 300
	// liveMaxLatency flags a writer that a snapshot blocked; WAL readers
	// never should, so anything near the app's busy timeout is a failure.
	liveMaxLatency = 2 * time.Second
)

// liveWriter commits, as fast as it can, transactions that keep totals equal
// to the ledger, and records commit latencies while a snapshot runs.
type liveWriter struct {
	db           *sql.DB
	commits      atomic.Int64
	snapshotting atomic.Bool

	mu            sync.Mutex
	maxDuring     time.Duration // slowest commit while a snapshot ran
	maxOutside    time.Duration
	commitsDuring int64
}

func (w *liveWriter) run(ctx context.Context, t *testing.T) {
	for ctx.Err() == nil {
		amount := rand.Int64N(1000) + 1
		during := w.snapshotting.Load()
		start := time.Now()
		if err := w.commit(amount); err != nil {
			t.Errorf("writer: %v", err)
			return
		}
		took := time.Since(start)
		w.commits.Add(1)
		w.mu.Lock()
		if during {
			w.maxDuring = max(w.maxDuring, took)
			w.commitsDuring++
		} else {
			w.maxOutside = max(w.maxOutside, took)
		}
		w.mu.Unlock()
	}
}

func (w *liveWriter) commit(amount int64) error {
	tx, err := w.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec("INSERT INTO ledger(amount) VALUES (?)", amount); err != nil {
		return err
	}
	if _, err := tx.Exec("UPDATE totals SET count = count + 1, sum = sum + ?", amount); err != nil {
		return err
	}
	return tx.Commit()
}

// TestRunUnderLiveWriter snapshots a ~30 MB database five times while a
// writer commits hundreds of transactions a second, and checks that every
// snapshot is intact, consistent and recent.
func TestRunUnderLiveWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: seeds a 30 MB database")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "production.sqlite3")
	seed := openWriter(t, path)
	for range liveSeedRows / 1000 {
		addRows(t, seed, 1000, 1000) // 1 kB of random bytes a row: about 31 MB
	}
	w := &liveWriter{db: openWriter(t, path)}
	if err := seed.Close(); err != nil {
		t.Fatal(err)
	}

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.run(ctx, t) })
	began := time.Now()
	var inSnapshots time.Duration
	compressions := []string{CompressionZstd, CompressionGzip, CompressionNone, CompressionZstd, CompressionZstd}
	for i := range liveSnapshots {
		time.Sleep(100 * time.Millisecond) // let the writer run between snapshots
		committed := int64(liveSeedRows) + w.commits.Load()
		w.snapshotting.Store(true)
		start := time.Now()
		files, err := collect(t, Request{Dir: dir, Include: "*.sqlite3", OutDir: t.TempDir(), Compression: compressions[i]})
		inSnapshots += time.Since(start)
		w.snapshotting.Store(false)
		if err != nil {
			stop()
			wg.Wait()
			t.Fatalf("snapshot %d: %v", i, err)
		}
		f := files[0]
		rows := ledgerCount(t, restore(t, f))
		if rows < committed {
			t.Errorf("snapshot %d has %d ledger rows, but %d were committed before it began", i, rows, committed)
		}
		t.Logf("snapshot %d (%s): %d rows, %.1f MB, VACUUM INTO %d ms, hash+compress %d ms -> %.1f MB",
			i, f.Compression, rows, float64(f.Size)/1e6, f.SnapshotMS, f.CompressMS, float64(f.StoredSize)/1e6)
	}
	stop()
	wg.Wait()

	elapsed := time.Since(began)
	rate := float64(w.commits.Load()) / elapsed.Seconds()
	duringRate := float64(w.commitsDuring) / inSnapshots.Seconds()
	t.Logf("writer: %d commits in %v (%.0f tx/s; %.0f tx/s during snapshots); max commit latency %v during snapshots, %v outside",
		w.commits.Load(), elapsed.Round(time.Millisecond), rate, duringRate, w.maxDuring, w.maxOutside)
	if rate < liveMinTxPerSec || duringRate < liveMinTxPerSec {
		t.Errorf("writer managed %.0f tx/s overall, %.0f during snapshots; the test needs >= %d", rate, duringRate, liveMinTxPerSec)
	}
	if w.maxDuring > liveMaxLatency {
		t.Errorf("a commit took %v during a snapshot, want < %v: the snapshot blocked the writer", w.maxDuring, liveMaxLatency)
	}
}
