package app_test

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// BenchmarkHostWriterImpact measures what the host side alone does to the
// app: the helper snapshots and compresses the four Rails databases
// (SBA_BENCH_MIB in all, default 1024, text-like rows) on this disk while a
// writer commits 300 tx/s, and a reader takes each compressed file as it
// is finished and removes it (what the runner does over SFTP). Nothing
// else writes to the disk: in BenchmarkBackupBinary the runner's temp copy
// and the S3 server share this machine's disk with the "host", which a real
// host does not. Three rounds.
//
//	SBA_BENCH_MIB=1024 go test ./internal/app -run '^$' -bench HostWriterImpact -benchtime 1x -v
func BenchmarkHostWriterImpact(b *testing.B) {
	mib := 1024
	if v := os.Getenv("SBA_BENCH_MIB"); v != "" {
		var err error
		if mib, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	const pad = 4 << 10
	storage := b.TempDir()
	testutil.MakeRailsStorageText(b, storage, mib<<20/4/(pad+80), pad)
	flushFixture()
	helper := filepath.Join(helperDir(b), snapshot.HelperName(runtime.GOARCH))
	b.ResetTimer()
	for range b.N {
		for round := range 3 {
			w := testutil.StartWriter(b, testutil.WriterOptions{Dir: storage, Rate: 300})
			time.Sleep(time.Second)
			start := time.Now()
			runHelperAlone(b, helper, storage)
			took := time.Since(start)
			time.Sleep(time.Second)
			st := w.Stop()
			b.Logf("round %d: helper %.1f s; writer %.0f tx/s, max commit %s, p99 %s, %d commits over 50 ms",
				round+1, took.Seconds(), float64(st.Commits)/st.DurationSeconds, st.MaxLatency.Round(time.Millisecond),
				st.P99.Round(100*time.Microsecond), len(st.Slow))
			for _, c := range st.Slow[:min(len(st.Slow), 5)] {
				b.Logf("slow commit: %s", c)
			}
		}
	}
}

// runHelperAlone runs the helper over storage and reads and removes each
// compressed file once it is finished.
func runHelperAlone(tb testing.TB, helper, storage string) {
	tb.Helper()
	out := tb.TempDir()
	cmd := exec.Command(helper, "helper", "snapshot", "--dir", storage, "--include", "*.sqlite3", "--out", out, "--follow")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var l snapshot.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			tb.Fatalf("helper printed %q", sc.Text())
		}
		if l.Error != "" {
			tb.Fatalf("helper: %s", l.Error)
		}
		if l.File == nil || l.File.Growing || l.File.Unchanged {
			continue
		}
		f, err := os.Open(l.File.Path)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, f); err != nil {
			tb.Fatal(err)
		}
		f.Close()
		if err := os.Remove(l.File.Path); err != nil {
			tb.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("helper: %v", err)
	}
}
