package testutil

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// EnvWriter carries the JSON configuration of a writer child process; see
// WriterMain.
const EnvWriter = "SBA_TESTUTIL_WRITER"

// Writer defaults.
const (
	DefaultWriterRate        = 200
	DefaultWriterPadBytes    = 128
	DefaultWriterMaxDuration = 10 * time.Minute
	writerReadyTimeout       = 10 * time.Second
	writerStopTimeout        = 10 * time.Second
	writerTxTimeout          = 10 * time.Second
	maxErrorSamples          = 5
	maxWriterRate            = 100_000
	busyTimeoutMillis        = 5000
)

// RailsDatabases returns the file names of the four databases of a Rails 8
// app's storage/ directory.
func RailsDatabases() []string {
	return []string{
		"production.sqlite3",
		"production_cache.sqlite3",
		"production_queue.sqlite3",
		"production_cable.sqlite3",
	}
}

// WriterOptions configures StartWriter.
type WriterOptions struct {
	Dir string
	// Files are database paths, relative to Dir unless absolute; empty means
	// RailsDatabases().
	Files []string
	// Rate is the target of transactions per second across all files;
	// 0 means DefaultWriterRate.
	Rate int
	// UID and GID the writer runs as; 0 means the current user.
	UID, GID int
	// PadBytes is the size of each inserted row's random pad; 0 means
	// DefaultWriterPadBytes.
	PadBytes int
	// MaxDuration after which the writer stops by itself; 0 means
	// DefaultWriterMaxDuration.
	MaxDuration time.Duration
}

// WriterStats is what a writer reports when it stops.
type WriterStats struct {
	Commits         int           `json:"commits"`
	MaxLatency      time.Duration `json:"max_latency_ns"`
	P99             time.Duration `json:"p99_ns"`
	Errors          int           `json:"errors"`
	DurationSeconds float64       `json:"duration_seconds"`
	ErrorSamples    []string      `json:"error_samples,omitempty"`
	// UID is the user id the writer process ran as.
	UID int `json:"uid"`
	// Slow lists the first commits slower than slowCommit: when, and which
	// step of the transaction took the time.
	Slow []SlowCommit `json:"slow,omitempty"`
}

// SlowCommit is one transaction slower than slowCommit.
type SlowCommit struct {
	At      time.Time     `json:"at"`
	Latency time.Duration `json:"latency_ns"`
	File    string        `json:"file"`
	Step    string        `json:"step"` // begin, insert, update or commit: the slowest
}

// String is one line for a log.
func (c SlowCommit) String() string {
	return fmt.Sprintf("%s %s %s (%s)", c.At.Format("15:04:05.000"), c.Latency.Round(time.Millisecond), filepath.Base(c.File), c.Step)
}

const (
	slowCommit = 50 * time.Millisecond
	maxSlow    = 50
)

// writerConfig is the child's configuration, passed in EnvWriter.
type writerConfig struct {
	Files       []string      `json:"files"`
	Rate        int           `json:"rate"`
	PadBytes    int           `json:"pad_bytes"`
	MaxDuration time.Duration `json:"max_duration_ns"`
}

// writerMessage is one JSON line of the child's stdout: first a ready line,
// last the stats.
type writerMessage struct {
	Ready bool         `json:"ready,omitempty"`
	Stats *WriterStats `json:"stats,omitempty"`
}

// Writer is a running writer process; see StartWriter.
type Writer struct {
	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's result, set before exited is closed
	out    *lineSink
	log    *syncBuffer
	once   sync.Once
	stats  WriterStats
}

// StartWriter starts a writer in a separate process, as the app is in real
// life: the test binary re-executed with EnvWriter set, which requires the
// package's TestMain to call WriterMain first. When UID is set and differs
// from the current user, the test binary is copied where that user can run
// it, and opts.Dir is chowned recursively to UID:GID (the app owns its
// storage) and made traversable. StartWriter returns once every database is
// open; t.Cleanup stops the writer if the test did not.
func StartWriter(t testing.TB, opts WriterOptions) *Writer {
	t.Helper()
	cfg := writerConfig{Rate: opts.Rate, PadBytes: opts.PadBytes, MaxDuration: opts.MaxDuration}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultWriterRate
	}
	if cfg.Rate > maxWriterRate {
		t.Fatalf("writer: rate %d above %d tx/s", cfg.Rate, maxWriterRate)
	}
	if cfg.PadBytes <= 0 {
		cfg.PadBytes = DefaultWriterPadBytes
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = DefaultWriterMaxDuration
	}
	files := opts.Files
	if len(files) == 0 {
		files = RailsDatabases()
	}
	for _, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(opts.Dir, f)
		}
		cfg.Files = append(cfg.Files, f)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("writer config: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("writer: test executable: %v", err)
	}
	asOther := opts.UID != 0 && opts.UID != os.Getuid()
	if asOther {
		chownTree(t, opts.Dir, opts.UID, opts.GID)
		MakeTraversable(t, opts.Dir)
		exe = copyExecutable(t, exe)
	}

	w := &Writer{t: t, exited: make(chan struct{}), out: newLineSink(), log: &syncBuffer{}}
	w.cmd = exec.Command(exe, "-test.run=^$")
	w.cmd.Dir = opts.Dir
	w.cmd.Env = append(os.Environ(), EnvWriter+"="+string(raw))
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.log
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if asOther {
		w.cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(opts.UID), Gid: uint32(opts.GID)}
	}
	w.cmd.WaitDelay = 2 * time.Second
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("start writer: %v", err)
	}
	go func() { w.err = w.cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() { w.Stop() })

	select {
	case <-w.out.ready:
	case <-w.exited:
		t.Fatalf("writer exited before ready: %v\nwriter stderr:\n%s", w.err, w.log.String())
	case <-time.After(writerReadyTimeout):
		t.Fatalf("writer not ready within %s\nwriter stderr:\n%s", writerReadyTimeout, w.log.String())
	}
	return w
}

// Stop sends SIGTERM, waits up to 10 s for the writer to report and exit
// (then kills it and fails the test) and returns its stats. Later calls
// return the same stats.
func (w *Writer) Stop() WriterStats {
	w.t.Helper()
	w.once.Do(func() {
		stopProcess(w.t, "writer", w.cmd, w.exited, writerStopTimeout)
		stats, ok := w.out.stats()
		switch {
		case w.err != nil:
			w.t.Errorf("writer: %v\nwriter stderr:\n%s", w.err, w.log.String())
		case !ok:
			w.t.Errorf("writer printed no stats\nwriter stderr:\n%s", w.log.String())
		}
		w.stats = stats
	})
	return w.stats
}

// WriterMain runs the writer and exits the process when EnvWriter is set, and
// returns at once otherwise. A package that uses StartWriter calls it first
// in TestMain:
//
//	func TestMain(m *testing.M) {
//		testutil.WriterMain()
//		os.Exit(m.Run())
//	}
func WriterMain() {
	raw, ok := os.LookupEnv(EnvWriter)
	if !ok {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := runWriter(ctx, raw, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func runWriter(ctx context.Context, raw string, stdout, stderr io.Writer) int {
	var cfg writerConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintf(stderr, "writer: parse %s: %v\n", EnvWriter, err)
		return 2
	}
	if len(cfg.Files) == 0 || cfg.Rate <= 0 || cfg.MaxDuration <= 0 {
		fmt.Fprintf(stderr, "writer: incomplete config %s\n", raw)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	defer cancel()
	dbs := make([]*sql.DB, 0, len(cfg.Files))
	defer func() {
		for _, db := range dbs {
			if err := db.Close(); err != nil {
				fmt.Fprintf(stderr, "writer: close: %v\n", err)
			}
		}
	}()
	params := fmt.Sprintf("mode=rw&_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate", busyTimeoutMillis)
	for _, f := range cfg.Files {
		db, err := sql.Open("sqlite", sqliteURI(f, params))
		if err != nil {
			fmt.Fprintf(stderr, "writer: open %s: %v\n", f, err)
			return 1
		}
		db.SetMaxOpenConns(1)
		dbs = append(dbs, db)
		if err := db.PingContext(ctx); err != nil {
			fmt.Fprintf(stderr, "writer: open %s: %v\n", f, err)
			return 1
		}
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(writerMessage{Ready: true}); err != nil {
		fmt.Fprintf(stderr, "writer: report ready: %v\n", err)
		return 1
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	pad := make([]byte, cfg.PadBytes)
	// Paced by schedule, not a ticker: transaction i is due at start+i/rate,
	// and a late one runs at once, so the rate holds on a busy machine.
	interval := time.Second / time.Duration(cfg.Rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
	maxTicks := int(cfg.MaxDuration.Seconds()+1) * cfg.Rate
	stats := WriterStats{UID: os.Getuid()}
	latencies := make([]time.Duration, 0, min(maxTicks, 1<<20))
	start := time.Now()
loop:
	for i := range maxTicks {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				break loop
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break loop
		}
		fillRandom(rng, pad)
		began := time.Now()
		step, err := writeTx(dbs[i%len(dbs)], rng.Int64N(1000)+1, pad)
		if took := time.Since(began); took > slowCommit && len(stats.Slow) < maxSlow {
			stats.Slow = append(stats.Slow, SlowCommit{At: began, Latency: took, File: cfg.Files[i%len(dbs)], Step: step})
		}
		if err != nil {
			stats.Errors++
			if len(stats.ErrorSamples) < maxErrorSamples {
				stats.ErrorSamples = append(stats.ErrorSamples, fmt.Sprintf("%s: %v", cfg.Files[i%len(dbs)], err))
			}
			continue
		}
		latencies = append(latencies, time.Since(began))
	}
	stats.DurationSeconds = time.Since(start).Seconds()
	stats.Commits = len(latencies)
	stats.MaxLatency, stats.P99 = latencyStats(latencies)
	if err := enc.Encode(writerMessage{Stats: &stats}); err != nil {
		fmt.Fprintf(stderr, "writer: report stats: %v\n", err)
		return 1
	}
	return 0
}

// writeTx is one app transaction: BEGIN IMMEDIATE (the DSN's _txlock), a
// ledger row, the matching totals update, COMMIT. It gets its own timeout so
// that a stop signal lets the transaction in flight finish. It returns the
// step that took longest.
func writeTx(db *sql.DB, amount int64, pad []byte) (slowest string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), writerTxTimeout)
	defer cancel()
	var longest time.Duration
	last := time.Now()
	step := func(name string) {
		if d := time.Since(last); d >= longest {
			longest, slowest = d, name
		}
		last = time.Now()
	}
	tx, err := db.BeginTx(ctx, nil)
	step("begin")
	if err != nil {
		return slowest, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	if _, err := tx.ExecContext(ctx, "INSERT INTO ledger(amount, pad) VALUES(?, ?)", amount, pad); err != nil {
		return slowest, fmt.Errorf("insert ledger: %w", err)
	}
	step("insert")
	if _, err := tx.ExecContext(ctx, "UPDATE totals SET count = count + 1, sum = sum + ? WHERE id = 1", amount); err != nil {
		return slowest, fmt.Errorf("update totals: %w", err)
	}
	step("update")
	if err := tx.Commit(); err != nil {
		return slowest, fmt.Errorf("commit: %w", err)
	}
	step("commit")
	return slowest, nil
}

// latencyStats returns the maximum and the 99th percentile.
func latencyStats(latencies []time.Duration) (maxLatency, p99 time.Duration) {
	if len(latencies) == 0 {
		return 0, 0
	}
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	idx := (len(sorted)*99+99)/100 - 1 // ceil(0.99 n) - 1
	return sorted[len(sorted)-1], sorted[idx]
}

// lineSink collects a writer's stdout: it signals the ready line and keeps
// the last stats line.
type lineSink struct {
	mu        sync.Mutex
	partial   bytes.Buffer
	ready     chan struct{}
	readyOnce sync.Once
	last      *WriterStats
}

func newLineSink() *lineSink { return &lineSink{ready: make(chan struct{})} }

func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial.Write(p)
	for {
		line, err := s.partial.ReadBytes('\n')
		if err != nil { // no full line yet: keep the rest
			rest := slices.Clone(line)
			s.partial.Reset()
			s.partial.Write(rest)
			return len(p), nil
		}
		var msg writerMessage
		if json.Unmarshal(line, &msg) != nil {
			continue // not ours, e.g. a line printed by the test framework
		}
		if msg.Ready {
			s.readyOnce.Do(func() { close(s.ready) })
		}
		if msg.Stats != nil {
			s.last = msg.Stats
		}
	}
}

func (s *lineSink) stats() (WriterStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return WriterStats{}, false
	}
	return *s.last, true
}

// copyExecutable copies the test binary into a directory everyone can reach:
// go test builds it under a 0700 directory.
func copyExecutable(t testing.TB, exe string) string {
	t.Helper()
	dir := t.TempDir()
	MakeTraversable(t, dir)
	dst := filepath.Join(dir, filepath.Base(exe))
	src, err := os.Open(exe)
	if err != nil {
		t.Fatalf("copy test binary: %v", err)
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatalf("copy test binary: %v", err)
	}
	if _, err := io.Copy(out, src); err != nil {
		t.Fatalf("copy test binary to %s: %v", dst, errors.Join(err, out.Close()))
	}
	if err := out.Close(); err != nil {
		t.Fatalf("copy test binary to %s: %v", dst, err)
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		t.Fatalf("copy test binary: %v", err)
	}
	return dst
}

// sqliteURI returns a "file:" URI for path with the given query, escaping the
// characters that SQLite's URI parser would take for delimiters.
func sqliteURI(path, query string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	if query == "" {
		return "file:" + esc
	}
	return "file:" + esc + "?" + query
}
