package app_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/prune"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/s3store"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

// prune tells locked groups from failures through s3store's LockedUntil.
var _ prune.Locker = (*s3store.Backend)(nil)

// lockSlack bounds the difference between the retain-until date the test
// expects and the one the server reports (the run's own duration).
const lockSlack = 2 * time.Minute

// TestObjectLock: object_lock_days puts an Object Lock retention on every
// object of a group (uploads and server-side copies of unchanged
// databases), never on the in-progress marker or the probe, which must go;
// prune deletes the groups it may and reports the locked ones as "locked
// until ...", without failing. A bucket without Object Lock fails the
// backup clearly and leaves no group.
func TestObjectLock(t *testing.T) {
	r := newRig(t, 6000, 1024) // incompressible pads: each object above the 5 MiB part size, a multipart upload
	layout := catalog.Layout{Prefix: "db_backups", Environment: "production"}
	backup := func(t *testing.T, extra ...string) string {
		t.Helper()
		waitNextSecond() // one group per second
		code, stdout, stderr := runMain(t, append(append([]string{"backup"}, r.flags()...), extra...), r.env)
		mustOK(t, "backup "+strings.Join(extra, " "), code, stdout, stderr)
		return backupIDFrom(t, stdout)
	}

	t.Run("bucket without Object Lock", func(t *testing.T) {
		code, stdout, stderr := runMain(t, append(append([]string{"backup"}, r.flags()...), "--object-lock-days", "1"), r.env)
		if code != app.ExitFailed {
			t.Fatalf("exit %d, want %d\n%s\n%s", code, app.ExitFailed, stdout, stderr)
		}
		errLines := grepLines(stderr, "error: ")
		t.Log(errLines)
		if !strings.Contains(errLines, "has no Object Lock configuration") {
			t.Errorf("the error does not say the bucket lacks Object Lock:\n%s", errLines)
		}
		if keys := listKeys(t, r.s3); len(keys) != 0 {
			t.Errorf("bucket holds objects after the failed backup:\n%s", strings.Join(keys, "\n"))
		}
	})
	enableObjectLock(t, r.s3)

	start := time.Now()
	governance := backup(t, "--object-lock-days", "1", "--skip-unchanged=false")
	plain := backup(t) // copies every unchanged database from the locked group
	compliance := backup(t, "--object-lock-days", "2", "--object-lock-mode", "compliance")
	newest := backup(t)
	wants := []struct {
		id   string
		mode types.ObjectLockMode
		days int
	}{{governance, types.ObjectLockModeGovernance, 1}, {plain, "", 0}, {compliance, types.ObjectLockModeCompliance, 2}, {newest, "", 0}}
	for _, w := range wants {
		m := checkGroup(t, r.s3, w.id) // exactly the four databases and the manifest: no marker, no probe
		copied := 0
		for _, f := range m.Files {
			if f.CopiedFrom != "" {
				copied++
			}
		}
		t.Logf("group %s: %d of %d files copied server-side", w.id, copied, len(m.Files))
		if w.id == governance && slices.IndexFunc(m.Files, func(f catalog.File) bool { return f.StoredSize > 5<<20 }) < 0 {
			t.Errorf("no object above the 5 MiB part size: the multipart upload path was not tested")
		}
		for _, k := range listKeys(t, r.s3) {
			if !strings.HasPrefix(k, layout.GroupPrefix(w.id)) {
				continue
			}
			mode, until := objectLockOf(t, r.s3, k)
			if mode != w.mode {
				t.Errorf("%s: lock mode %q, want %q", k, mode, w.mode)
			}
			want := start.Add(time.Duration(w.days) * 24 * time.Hour)
			if w.days > 0 && (until.Before(want.Add(-lockSlack)) || until.After(want.Add(lockSlack))) {
				t.Errorf("%s: locked until %s, want about %s", k, until, want)
			}
		}
	}

	// Prune keeps the newest; of the three older groups only the unlocked one can go.
	files := t.TempDir()
	env := map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": filepath.Join(files, "output"), "GITHUB_STEP_SUMMARY": filepath.Join(files, "summary"),
		"INPUT_COMMAND": "prune", "INPUT_BUCKET": bucket, "INPUT_ENDPOINT": r.s3.Endpoint, "INPUT_FORCE_PATH_STYLE": "true",
		"INPUT_ACCESS_KEY_ID": r.s3.AccessKey, "INPUT_SECRET_ACCESS_KEY": r.s3.SecretKey,
		"INPUT_KEEP_MIN": "1", "INPUT_RETENTION_DAYS": "0",
	}
	for range 2 { // and again: the locked groups are reported the same way, the run still succeeds
		code, stdout, stderr := runMain(t, nil, env)
		mustOK(t, "prune", code, stdout, stderr)
		t.Logf("prune:\n%s", stdout)
		summary := readFile(t, env["GITHUB_STEP_SUMMARY"])
		for _, id := range []string{governance, compliance} {
			_, until := objectLockOf(t, r.s3, layout.ManifestKey(id))
			want := "locked until " + until.UTC().Format("2006-01-02 15:04Z")
			if !strings.Contains(grepLines(stdout, id), want) || !strings.Contains(summary, want) {
				t.Errorf("group %s is not reported as %q:\nstdout:\n%s\nsummary:\n%s", id, want, stdout, summary)
			}
		}
		if !strings.Contains(stdout, "2 locked (Object Lock)") || strings.Contains(stdout, "not deleted") {
			t.Errorf("prune headline:\n%s", stdout)
		}
		if !strings.Contains(stderr, "Object Lock retention holds it") {
			t.Errorf("no log line for the locked groups:\n%s", stderr)
		}
	}
	if out := readFile(t, env["GITHUB_OUTPUT"]); !strings.Contains(out, "deleted<<") || !strings.Contains(out, "kept<<") {
		t.Errorf("GITHUB_OUTPUT:\n%s", out)
	}
	for _, k := range listKeys(t, r.s3) {
		if strings.HasPrefix(k, layout.GroupPrefix(plain)) {
			t.Errorf("the unlocked group %s was not deleted: %s left", plain, k)
		}
	}
	for _, id := range []string{governance, compliance, newest} {
		checkGroup(t, r.s3, id) // whole, and still good
	}
	assertNoTempLeft(t, r.tmp)
}

// enableObjectLock replaces the rig's empty bucket with one created with
// Object Lock enabled (S3 allows it only at creation).
func enableObjectLock(t *testing.T, s *testutil.S3Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := s.Client()
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("delete bucket: %v", err)
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatalf("create bucket with Object Lock: %v", err)
	}
}

// objectLockOf returns an object's retention mode and date, as HeadObject
// reports them.
func objectLockOf(t *testing.T, s *testutil.S3Server, key string) (types.ObjectLockMode, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := s.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("head %s: %v", key, err)
	}
	return out.ObjectLockMode, aws.ToTime(out.ObjectLockRetainUntilDate)
}
