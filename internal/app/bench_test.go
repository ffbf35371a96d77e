package app_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// buildBinary builds the action as a user would (`go build .`): it then
// ships itself as the helper to a host of its own architecture.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sba-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "sqlite-backup-action")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, ".")
		cmd.Dir = testutil.RepoRoot(tb)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

// BenchmarkBackupBinary runs the built binary (no helper dir: it ships
// itself) under /usr/bin/time -v against the real sshd and S3 server while
// a writer commits 300 tx/s, and reports wall time, peak RSS and the
// writer's max commit latency. SBA_BENCH_MIB sets the total size of the
// four databases (default 64); SBA_BENCH_RUNNER_TMPFS=1 puts the runner's
// temp dir on a tmpfs.
//
//	SBA_BENCH_MIB=1024 go test ./internal/app -run '^$' -bench BackupBinary -benchtime 1x
func BenchmarkBackupBinary(b *testing.B) {
	mib := 64
	if v := os.Getenv("SBA_BENCH_MIB"); v != "" {
		var err error
		if mib, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	bin := buildBinary(b)
	const pad = 16 << 10
	rows := mib << 20 / 4 / (pad + 64)
	r := newRig(b, rows, pad)
	flushFixture()
	env := os.Environ()
	env = append(env, "AWS_ACCESS_KEY_ID="+r.s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+r.s3.SecretKey)
	if os.Getenv("SBA_BENCH_RUNNER_TMPFS") == "1" {
		// The runner's checked copy in RAM, as if the runner were another
		// machine: its writes then do not share the "host" disk.
		env = append(env, "TMPDIR="+testutil.MountTmpfs(b, fmt.Sprintf("size=%dm", mib+256), 0, 0))
	}
	w := testutil.StartWriter(b, testutil.WriterOptions{Dir: r.storage, Rate: 300, UID: r.sshd.UID, GID: r.sshd.GID})
	b.ResetTimer()
	var wall, rss float64
	for i := 0; i < b.N; i++ {
		waitNextSecond()
		cmd := exec.Command("/usr/bin/time", append([]string{"-v", bin, "backup"}, r.flags()...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("backup: %v\n%s", err, out)
		}
		if os.Getenv("SBA_BENCH_VERBOSE") != "" {
			b.Logf("%s", out)
		}
		wall += timeField(b, string(out), `Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)`)
		rss += timeField(b, string(out), `Maximum resident set size \(kbytes\): (\d+)`) / 1024
	}
	b.StopTimer()
	stats := w.Stop()
	n := float64(b.N)
	b.ReportMetric(wall/n, "wall-s/op")
	b.ReportMetric(rss/n, "peak-rss-MiB")
	b.ReportMetric(float64(stats.MaxLatency.Microseconds())/1000, "writer-max-ms")
	b.ReportMetric(float64(mib), "db-MiB")
	b.Logf("%d MiB in 4 DBs: wall %.2fs, peak RSS %.1f MiB; writer %d commits, max latency %s, p99 %s, %d commits over 50 ms",
		mib, wall/n, rss/n, stats.Commits, stats.MaxLatency, stats.P99, len(stats.Slow))
	for _, c := range stats.Slow[:min(len(stats.Slow), 10)] {
		b.Logf("slow commit: %s", c)
	}
}

// flushFixture writes a freshly made fixture out now: 30 s later the
// kernel would flush it in one burst in the middle of the measurement,
// stalling the writer's commits.
func flushFixture() { syscall.Sync() }

func waitNextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now) + 10*time.Millisecond)
}

func timeField(tb testing.TB, out, pattern string) float64 {
	tb.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		tb.Fatalf("no %q in /usr/bin/time output:\n%s", pattern, out)
	}
	v := m[1]
	if strings.Contains(v, ":") { // m:ss.cc or h:mm:ss
		var secs float64
		for _, part := range strings.Split(v, ":") {
			f, _ := strconv.ParseFloat(part, 64)
			secs = secs*60 + f
		}
		return secs
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}
