package app_test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// handPipeline is what a competent operator writes: per database, a
// snapshot on the host with the sqlite3 CLI, scp to the runner, zstd -3
// there, and an S3 CLI upload (s5cmd).
type handPipeline struct {
	r       *rig
	port    int // SSH port: the server's, or a link proxy's
	s5cmd   string
	work    string
	sshArgs []string
	stages  map[string]time.Duration
	rawSSH  int64 // bytes copied over SSH
	stored  int64
	peakKiB float64
}

func newHandPipeline(tb testing.TB, r *rig, port int, knownHosts string) *handPipeline {
	tb.Helper()
	s5 := filepath.Join(testutil.RepoRoot(tb), ".ci", "bin", "s5cmd")
	if _, err := os.Stat(s5); err != nil {
		testutil.RequireOrSkip(tb, "s5cmd (bash bench/deps.sh)", err)
	}
	return &handPipeline{r: r, port: port, s5cmd: s5, work: tb.TempDir(), stages: map[string]time.Duration{},
		sshArgs: []string{"-i", r.sshd.ClientKeyPath, "-o", "UserKnownHostsFile=" + knownHosts,
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
		h.timed(tb, "snapshot", env, "ssh", append(h.sshArgs, "-p", strconv.Itoa(h.port), host,
			fmt.Sprintf("sqlite3 'file:%s?mode=ro' %q", filepath.Join(r.storage, name), sql))...)
		h.timed(tb, "scp", env, "scp", append(h.sshArgs, "-q", "-P", strconv.Itoa(h.port), host+":"+remoteSnap, local)...)
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
// and prints both wall times, their ratio, peak RSS and bytes moved: once
// on loopback and once with the SSH host behind an emulated 200 Mbit/s,
// 20 ms RTT link (where a VPS reached from a GitHub runner is).
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
	flushFixture()
	w := testutil.StartWriter(b, testutil.WriterOptions{Dir: r.storage, Rate: 300, UID: r.sshd.UID, GID: r.sshd.GID, MaxDuration: 30 * time.Minute})
	wan := testutil.StartLinkProxy(b, r.sshd.Addr(), 200_000_000, 10*time.Millisecond)
	wanKnownHosts := filepath.Join(b.TempDir(), "known_hosts")
	line := strings.Replace(r.sshd.KnownHostsLine, "]:"+strconv.Itoa(r.sshd.Port)+" ", "]:"+strconv.Itoa(wan.Port)+" ", 1)
	if err := os.WriteFile(wanKnownHosts, []byte(line+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, link := range []struct {
		name       string
		port       int
		knownHosts string
	}{
		{"loopback", r.sshd.Port, r.sshd.KnownHostsPath},
		{"wan-200mbit-20ms", wan.Port, wanKnownHosts},
	} {
		b.Run(link.name, func(b *testing.B) {
			benchPipelines(b, r, bin, mib, link.name, link.port, link.knownHosts)
		})
	}
	st := w.Stop()
	b.Logf("writer during both: %.0f tx/s, max commit latency %s, p99 %s, %d errors",
		float64(st.Commits)/st.DurationSeconds, st.MaxLatency.Round(time.Millisecond), st.P99.Round(time.Millisecond), st.Errors)
}

func benchPipelines(b *testing.B, r *rig, bin string, mib int, link string, port int, knownHosts string) {
	hand := newHandPipeline(b, r, port, knownHosts)
	// The standalone helper, as the Docker image ships it (a plain `go build .`
	// binary would send itself: about four times the bytes).
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+r.s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+r.s3.SecretKey,
		"SBA_HELPER_DIR="+helperDir(b))
	// Every database is sent in full (no unchanged skipping) and the helper is
	// sent every run, as the hand pipeline has no such shortcuts.
	flags := append(r.flags(), "--ssh-port", strconv.Itoa(port), "--ssh-known-hosts-path", knownHosts,
		"--skip-unchanged=false", "--helper-cache=false")
	b.ResetTimer()
	var handWall, oursWall, oursRSS float64
	var hostTempPeak int64
	var oursStored int64
	for i := 0; i < b.N; i++ {
		handWall += hand.run(b, link+strconv.Itoa(i)).Seconds()
		waitNextSecond()
		cmd := exec.Command("/usr/bin/time", append([]string{"-v", bin, "backup"}, flags...)...)
		cmd.Env = env
		stopSampling := sampleDiskUse(r.tmp, &hostTempPeak)
		out, err := cmd.CombinedOutput()
		stopSampling()
		if err != nil {
			b.Fatalf("backup: %v\n%s", err, out)
		}
		if os.Getenv("SBA_BENCH_VERBOSE") != "" {
			b.Logf("%s", out)
		}
		oursWall += timeField(b, string(out), `Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)`)
		oursRSS = max(oursRSS, timeField(b, string(out), `Maximum resident set size \(kbytes\): (\d+)`)/1024)
		oursStored += storedBytes(b, string(out))
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(handWall/n, "hand-s")
	b.ReportMetric(oursWall/n, "ours-s")
	b.ReportMetric(oursWall/handWall, "ratio")
	b.ReportMetric(oursRSS, "ours-peak-MiB")
	var stages []string
	for _, s := range []string{"snapshot", "scp", "zstd", "upload"} {
		stages = append(stages, fmt.Sprintf("%s %.1fs", s, hand.stages[s].Seconds()/n))
	}
	largest := largestFile(b, r.storage)
	b.ReportMetric(float64(hostTempPeak)/float64(largest), "host-temp-x-largest-db")
	mibps := func(bytes int64, stage string) float64 {
		return float64(bytes) / n / (1 << 20) / (hand.stages[stage].Seconds() / n)
	}
	slowest := 0.0
	for _, s := range hand.stages {
		slowest = max(slowest, s.Seconds()/n)
	}
	b.Logf("%s ceilings (from the hand pipeline's stages): scp %.0f MiB/s, zstd -3 %.0f MiB/s, s5cmd upload %.0f MiB/s; "+
		"slowest stage %.1f s, ours %.2f× of it; host temp dir peak %.0f MiB = %.2f× the largest database (%.0f MiB)",
		link, mibps(hand.rawSSH, "scp"), mibps(hand.rawSSH, "zstd"), mibps(hand.stored, "upload"),
		slowest, oursWall/n/slowest, float64(hostTempPeak)/(1<<20), float64(hostTempPeak)/float64(largest), float64(largest)/(1<<20))
	b.Logf("\n| %s, %d MiB, live writer 300 tx/s | wall | peak RSS | over SSH | stored |\n|---|---:|---:|---:|---:|\n"+
		"| hand pipeline (%s) | %.1f s | %.0f MiB | %.0f MiB | %.0f MiB |\n| sqlite-backup-action | %.1f s | %.0f MiB | %.0f MiB | %.0f MiB |\n| ratio | %.2f× | | | |",
		link, mib, strings.Join(stages, ", "),
		handWall/n, hand.peakKiB/1024, float64(hand.rawSSH)/n/(1<<20), float64(hand.stored)/n/(1<<20),
		oursWall/n, oursRSS, float64(oursStored)/n/(1<<20), float64(oursStored)/n/(1<<20), oursWall/handWall)
}

// sampleDiskUse keeps the peak disk use (allocated blocks) of the files
// under dir in *peak, sampling every 10 ms until stopped.
func sampleDiskUse(dir string, peak *int64) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			var sum int64
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return nil
				}
				var st syscall.Stat_t
				if syscall.Lstat(p, &st) == nil {
					sum += st.Blocks * 512
				}
				return nil
			})
			*peak = max(*peak, sum)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// largestFile is the size of the largest file in dir.
func largestFile(tb testing.TB, dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var largest int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			largest = max(largest, info.Size())
		}
	}
	return largest
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
