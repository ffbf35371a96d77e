package app_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// handPipeline is what a competent operator writes: per database, a
// snapshot on the host with the sqlite3 CLI, scp to the runner, zstd -3
// there, and an S3 CLI upload (s5cmd).
type handPipeline struct {
	r       *rig
	s5cmd   string
	work    string
	sshArgs []string
	stages  map[string]time.Duration
	rawSSH  int64 // bytes copied over SSH
	stored  int64
	peakKiB float64
}

func newHandPipeline(tb testing.TB, r *rig) *handPipeline {
	tb.Helper()
	s5 := filepath.Join(testutil.RepoRoot(tb), ".ci", "bin", "s5cmd")
	if _, err := os.Stat(s5); err != nil {
		testutil.RequireOrSkip(tb, "s5cmd (bash bench/deps.sh)", err)
	}
	return &handPipeline{r: r, s5cmd: s5, work: tb.TempDir(), stages: map[string]time.Duration{},
		sshArgs: []string{"-i", r.sshd.ClientKeyPath, "-o", "UserKnownHostsFile=" + r.sshd.KnownHostsPath,
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"}}
}

// timed runs a command under /usr/bin/time -v, adds its wall time to stage
// and keeps the largest peak RSS.
func (h *handPipeline) timed(tb testing.TB, stage string, env []string, name string, args ...string) {
	tb.Helper()
	start := time.Now()
	cmd := exec.Command("/usr/bin/time", append([]string{"-v", name}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %s %v: %v\n%s", stage, name, args, err, out)
	}
	h.stages[stage] += time.Since(start)
	h.peakKiB = max(h.peakKiB, timeField(tb, string(out), `Maximum resident set size \(kbytes\): (\d+)`))
}

func (h *handPipeline) run(tb testing.TB, id string) time.Duration {
	tb.Helper()
	r := h.r
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+r.s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+r.s3.SecretKey, "AWS_REGION="+r.s3.Region)
	host := r.sshd.User + "@" + r.sshd.Host
	start := time.Now()
	for _, name := range testutil.RailsDatabases() {
		remoteSnap := filepath.Join(r.tmp, "hand-"+name)
		local := filepath.Join(h.work, name)
		// .backup steps 100 pages at a time and restarts whenever the writer
		// commits: under a live writer it does not finish. VACUUM INTO does.
		sql := fmt.Sprintf(`VACUUM INTO '%s'`, remoteSnap)
		h.timed(tb, "snapshot", env, "ssh", append(h.sshArgs, "-p", strconv.Itoa(r.sshd.Port), host,
			fmt.Sprintf("sqlite3 'file:%s?mode=ro' %q", filepath.Join(r.storage, name), sql))...)
		h.timed(tb, "scp", env, "scp", append(h.sshArgs, "-q", "-P", strconv.Itoa(r.sshd.Port), host+":"+remoteSnap, local)...)
		st, err := os.Stat(local)
		if err != nil {
			tb.Fatal(err)
		}
		h.rawSSH += st.Size()
		h.timed(tb, "zstd", env, "zstd", "-3", "-q", "-f", local, "-o", local+".zst")
		h.timed(tb, "upload", env, h.s5cmd, "--endpoint-url", r.s3.Endpoint, "cp", local+".zst", "s3://"+bucket+"/hand/"+id+"/"+name+".zst")
		zst, err := os.Stat(local + ".zst")
		if err != nil {
			tb.Fatal(err)
		}
		h.stored += zst.Size()
		_ = os.Remove(local)
		_ = os.Remove(local + ".zst")
		_ = os.Remove(remoteSnap)
	}
	return time.Since(start)
}

// BenchmarkPipelines runs, in one process and on the same databases with
// the same live writer, the hand-written pipeline and this tool's backup,
// and prints both wall times, their ratio, peak RSS and bytes moved.
// SBA_BENCH_MIB sets the total size of the four databases (default 256).
//
//	make bench   # 1024 MiB
func BenchmarkPipelines(b *testing.B) {
	mib := 256
	if v := os.Getenv("SBA_BENCH_MIB"); v != "" {
		var err error
		if mib, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	bin := buildBinary(b)
	const pad = 4 << 10
	r := &rig{sshd: testutil.StartSSHD(b, testutil.SSHDOptions{}), s3: testutil.StartS3(b)}
	r.s3.CreateBucket(b, bucket)
	r.storage, r.tmp = r.sshd.UserDir(b), r.sshd.UserDir(b)
	testutil.MakeRailsStorageText(b, r.storage, mib<<20/4/(pad+80), pad)
	hand := newHandPipeline(b, r)
	w := testutil.StartWriter(b, testutil.WriterOptions{Dir: r.storage, Rate: 300, UID: r.sshd.UID, GID: r.sshd.GID})
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+r.s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+r.s3.SecretKey)
	b.ResetTimer()
	var handWall, oursWall, oursRSS float64
	var oursStored int64
	for i := 0; i < b.N; i++ {
		handWall += hand.run(b, strconv.Itoa(i)).Seconds()
		waitNextSecond()
		cmd := exec.Command("/usr/bin/time", append([]string{"-v", bin, "backup"}, r.flags()...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("backup: %v\n%s", err, out)
		}
		oursWall += timeField(b, string(out), `Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)`)
		oursRSS = max(oursRSS, timeField(b, string(out), `Maximum resident set size \(kbytes\): (\d+)`)/1024)
		oursStored += storedBytes(b, string(out))
	}
	b.StopTimer()
	stats := w.Stop()
	n := float64(b.N)
	b.ReportMetric(handWall/n, "hand-s")
	b.ReportMetric(oursWall/n, "ours-s")
	b.ReportMetric(oursWall/handWall, "ratio")
	b.ReportMetric(oursRSS, "ours-peak-MiB")
	var stages []string
	for _, s := range []string{"snapshot", "scp", "zstd", "upload"} {
		stages = append(stages, fmt.Sprintf("%s %.1fs", s, hand.stages[s].Seconds()/n))
	}
	b.Logf("\n| %d MiB, writer %d tx/s (max commit %s) | wall | peak RSS | over SSH | stored |\n|---|---:|---:|---:|---:|\n"+
		"| hand pipeline (%s) | %.1f s | %.0f MiB | %.0f MiB | %.0f MiB |\n| sqlite-backup-action | %.1f s | %.0f MiB | %.0f MiB | %.0f MiB |\n| ratio | %.2f× | | | |",
		mib, int(float64(stats.Commits)/stats.DurationSeconds), stats.MaxLatency.Round(time.Millisecond), strings.Join(stages, ", "),
		handWall/n, hand.peakKiB/1024, float64(hand.rawSSH)/n/(1<<20), float64(hand.stored)/n/(1<<20),
		oursWall/n, oursRSS, float64(oursStored)/n/(1<<20), float64(oursStored)/n/(1<<20), oursWall/handWall)
}

// storedBytes sums the STORED column of the backup's table.
func storedBytes(tb testing.TB, out string) int64 {
	tb.Helper()
	var total int64
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && strings.HasSuffix(f[0], ".sqlite3") {
			n, err := strconv.ParseInt(f[2], 10, 64)
			if err == nil {
				total += n
			}
		}
	}
	return total
}
