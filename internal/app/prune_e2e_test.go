package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/prune"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

var prLayout = catalog.Layout{Prefix: "db_backups", Environment: "production"}

// prBucket is a real S3 server with backdated groups written behind the
// tool's back, as the old Rails service, failed runs and strangers would
// have left them.
type prBucket struct {
	s3   *testutil.S3Server
	env  map[string]string
	now  time.Time
	keys map[string][]string // group label -> its keys
}

func newPrBucket(t *testing.T) *prBucket {
	t.Helper()
	s := testutil.StartS3(t)
	s.CreateBucket(t, bucket)
	return &prBucket{s3: s, now: time.Now().UTC(), keys: map[string][]string{},
		env: map[string]string{"AWS_ACCESS_KEY_ID": s.AccessKey, "AWS_SECRET_ACCESS_KEY": s.SecretKey}}
}

func (b *prBucket) flags(extra ...string) []string {
	return append([]string{"--bucket", bucket, "--endpoint", b.s3.Endpoint, "--region", b.s3.Region, "--force-path-style"}, extra...)
}

// put uploads objects concurrently.
func (b *prBucket) put(t *testing.T, objs map[string][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	client := b.s3.Client()
	keys := make(chan string)
	errs := make(chan error, len(objs))
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for k := range keys {
				if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k),
					Body: bytes.NewReader(objs[k])}); err != nil {
					errs <- fmt.Errorf("put %s: %w", k, err)
				}
			}
		})
	}
	for k := range objs {
		keys <- k
	}
	close(keys)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// group writes a group age ago: complete (files + manifest), incomplete
// (marker + files), or legacy (raw .sqlite3, no manifest). n files of size
// bytes each. It returns the group id.
func (b *prBucket) group(t *testing.T, label string, age time.Duration, state catalog.State, n int, size int) string {
	t.Helper()
	at := b.now.Add(-age)
	id := catalog.NewID(at)
	objs := map[string][]byte{}
	m := &catalog.Manifest{Format: catalog.ManifestFormat, Tool: "sqlite-backup-action", ToolVersion: app.Version, GroupID: id,
		CreatedAt: at, CompletedAt: at, Environment: prLayout.Environment}
	for i := range n {
		name := fmt.Sprintf("db%04d.sqlite3", i)
		key := prLayout.Key(id, name+".zst")
		if state == catalog.StateLegacy {
			key = prLayout.Key(id, name)
		}
		objs[key] = bytes.Repeat([]byte{'x'}, size)
		m.Files = append(m.Files, catalog.File{Name: name, Size: int64(size) * 3, Key: key, StoredSize: int64(size), Compression: "zstd", IntegrityCheck: "ok"})
	}
	switch state {
	case catalog.StateComplete:
		body, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		objs[prLayout.ManifestKey(id)] = body
	case catalog.StateIncomplete:
		objs[prLayout.InProgressKey(id)] = []byte(`{"group_id":"` + id + `"}`)
	}
	b.put(t, objs)
	for k := range objs {
		b.keys[label] = append(b.keys[label], k)
	}
	return id
}

// history writes the standard bucket: with keep_min 2 and 14 days,
// "old-complete", "old-incomplete" and "legacy" go; everything else stays.
func (b *prBucket) history(t *testing.T) map[string]string {
	t.Helper()
	day := 24 * time.Hour
	ids := map[string]string{
		"newest":         b.group(t, "newest", time.Hour, catalog.StateComplete, 2, 1000),
		"running":        b.group(t, "running", 10*time.Minute, catalog.StateIncomplete, 1, 10),
		"second":         b.group(t, "second", 2*day, catalog.StateComplete, 2, 1000),
		"third":          b.group(t, "third", 3*day, catalog.StateComplete, 2, 1000),
		"old-incomplete": b.group(t, "old-incomplete", 20*day, catalog.StateIncomplete, 1, 10),
		"old-complete":   b.group(t, "old-complete", 30*day, catalog.StateComplete, 2, 1000),
		"legacy":         b.group(t, "legacy", 40*day, catalog.StateLegacy, 2, 3000),
	}
	other := catalog.NewID(b.now.Add(-100 * day))
	strangers := map[string][]byte{
		"db_backups/production/README.txt":                      []byte("hands off"),
		"db_backups/production/latest/production.sqlite3":       []byte("hands off"),
		"db_backups/production/" + other + "/nested/x.sqlite3":  []byte("hands off"),
		"db_backups/staging/" + other + "/production.sqlite3":   []byte("other environment"),
		"db_backups/production-eu/" + other + "/manifest.json":  []byte("other environment"),
		"elsewhere/production/" + other + "/production.sqlite3": []byte("other prefix"),
	}
	b.put(t, strangers)
	for k := range strangers {
		b.keys["strangers"] = append(b.keys["strangers"], k)
	}
	return ids
}

func (b *prBucket) want(labels ...string) []string {
	var out []string
	for _, l := range labels {
		out = append(out, b.keys[l]...)
	}
	slices.Sort(out)
	return out
}

func assertKeys(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("bucket holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPruneEndToEnd(t *testing.T) {
	b := newPrBucket(t)
	ids := b.history(t)
	all := listKeys(t, b.s3)
	policy := []string{"--keep-min", "2", "--retention-days", "14"}

	// Dry run: the same table, nothing deleted.
	code, stdout, stderr := runMain(t, append([]string{"prune", "--dry-run"}, b.flags(policy...)...), b.env)
	if code != app.ExitOK {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	assertKeys(t, listKeys(t, b.s3), all)
	for _, want := range []string{"would delete", ids["legacy"], "3 would be deleted (dry run)", "foreign objects under the root, left alone: 3"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = runMain(t, append([]string{"prune"}, b.flags(policy...)...), b.env)
	if code != app.ExitOK {
		t.Fatalf("prune: exit %d\n%s\n%s", code, stdout, stderr)
	}
	assertKeys(t, listKeys(t, b.s3), b.want("newest", "running", "second", "third", "strangers"))
	if !strings.Contains(stdout, "4 kept, 3 deleted") {
		t.Errorf("prune output:\n%s", stdout)
	}

	// Run again: nothing left to delete, nothing changes.
	code, stdout, stderr = runMain(t, append([]string{"prune"}, b.flags(policy...)...), b.env)
	if code != app.ExitOK || !strings.Contains(stdout, "4 kept, 0 deleted") {
		t.Fatalf("second prune: exit %d\n%s\n%s", code, stdout, stderr)
	}
	assertKeys(t, listKeys(t, b.s3), b.want("newest", "running", "second", "third", "strangers"))
}

func TestPruneRefusals(t *testing.T) {
	b := newPrBucket(t)
	b.history(t)
	cases := []struct {
		name     string
		flags    []string
		setup    func()
		wantCode int
		want     string
	}{
		{"policy keeps nothing", []string{"--keep-min", "0", "--retention-days", "0"}, nil, app.ExitUsage, "input keep_min: the retention policy keeps nothing"},
		{"clock skew", []string{"--keep-min", "1", "--retention-days", "1"}, func() {
			b.group(t, "future", -2*time.Hour, catalog.StateComplete, 1, 10)
		}, app.ExitFailed, "check this machine's clock"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			before := listKeys(t, b.s3)
			code, stdout, stderr := runMain(t, append([]string{"prune"}, b.flags(tc.flags...)...), b.env)
			if code != tc.wantCode || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, tc.want, stdout, stderr)
			}
			assertKeys(t, listKeys(t, b.s3), before)
		})
	}
}

// TestPruneActionModeAndShrinkGuard: the runner's INPUT_* variables, the
// deleted/kept outputs and the job summary; the newest backup is a tenth
// of the previous one, so nothing is deleted and a warning is shown.
func TestPruneActionModeAndShrinkGuard(t *testing.T) {
	b := newPrBucket(t)
	ids := b.history(t)
	b.group(t, "tiny", 30*time.Minute, catalog.StateComplete, 1, 100)
	files := t.TempDir()
	env := map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": filepath.Join(files, "output"), "GITHUB_STEP_SUMMARY": filepath.Join(files, "summary"),
		"INPUT_COMMAND": "prune", "INPUT_BUCKET": bucket, "INPUT_ENDPOINT": b.s3.Endpoint, "INPUT_FORCE_PATH_STYLE": "true",
		"INPUT_ACCESS_KEY_ID": b.s3.AccessKey, "INPUT_SECRET_ACCESS_KEY": b.s3.SecretKey, "INPUT_DRY_RUN": "", "INPUT_JSON": "",
		"BACKUP_KEEP_MIN": "2", "BACKUP_RETENTION_DAYS": "14",
	}
	before := listKeys(t, b.s3)
	code, stdout, stderr := runMain(t, nil, env)
	if code != app.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	assertKeys(t, listKeys(t, b.s3), before)
	if !strings.Contains(stdout, "::warning::shrink guard") {
		t.Errorf("no warning annotation:\n%s", stdout)
	}
	out := readFile(t, env["GITHUB_OUTPUT"])
	for _, want := range []string{"deleted<<", "\n0\n", "kept<<", "\n5\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("GITHUB_OUTPUT lacks %q:\n%s", want, out)
		}
	}
	summary := readFile(t, env["GITHUB_STEP_SUMMARY"])
	for _, want := range []string{"| `" + ids["legacy"] + "` |", "not deleted (shrink guard)", "[!WARNING]", "| keep | newest 2, within 14 days |"} {
		if !strings.Contains(summary, want) {
			t.Errorf("job summary lacks %q:\n%s", want, summary)
		}
	}

	// With the guard lowered the same run deletes.
	env["INPUT_SHRINK_GUARD"] = "0.05"
	if code, stdout, stderr := runMain(t, nil, env); code != app.ExitOK || !strings.Contains(stdout, "5 kept, 3 deleted") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	assertKeys(t, listKeys(t, b.s3), b.want("tiny", "newest", "running", "second", "third", "strangers"))
}

// TestPruneMoreThan1000Objects: DeleteObjects takes at most 1000 keys, so
// the deletion must be batched, and every object must go.
func TestPruneMoreThan1000Objects(t *testing.T) {
	b := newPrBucket(t)
	b.group(t, "newest", time.Hour, catalog.StateComplete, 2, 2000)
	b.group(t, "big-complete", 20*24*time.Hour, catalog.StateComplete, 1100, 1)
	b.group(t, "big-legacy", 21*24*time.Hour, catalog.StateLegacy, 400, 1)
	if n := len(listKeys(t, b.s3)); n != 1504 {
		t.Fatalf("bucket holds %d objects, want 1504", n)
	}
	code, stdout, stderr := runMain(t, append([]string{"prune"}, b.flags("--keep-min", "1", "--retention-days", "14")...), b.env)
	if code != app.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	assertKeys(t, listKeys(t, b.s3), b.want("newest"))
}

func TestListJSON(t *testing.T) {
	b := newPrBucket(t)
	ids := b.history(t)
	code, stdout, stderr := runMain(t, append([]string{"list", "--json"}, b.flags()...), b.env)
	if code != app.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var l prune.Listing
	if err := json.Unmarshal([]byte(stdout), &l); err != nil {
		t.Fatalf("stdout is not the JSON listing: %v\n%s", err, stdout)
	}
	got := map[string]prune.ListedGroup{}
	for _, g := range l.Groups {
		got[g.ID] = g
	}
	want := map[string]struct {
		state catalog.State
		files int
		bytes int64 // without the manifest, whose size varies
	}{
		"newest": {catalog.StateComplete, 2, 2000}, "running": {catalog.StateIncomplete, 1, 10},
		"old-incomplete": {catalog.StateIncomplete, 1, 10}, "legacy": {catalog.StateLegacy, 2, 6000},
	}
	for label, w := range want {
		g, ok := got[ids[label]]
		if !ok {
			t.Errorf("%s (%s) not listed", label, ids[label])
			continue
		}
		if g.State != w.state || g.Files != w.files || g.StoredBytes < w.bytes || g.AgeSeconds <= 0 {
			t.Errorf("%s: got %+v, want %s, %d files, >= %d bytes", label, g, w.state, w.files, w.bytes)
		}
	}
	if len(l.Groups) != 7 || len(l.Foreign) != 3 || l.Root != "db_backups/production/" || l.Store == "" {
		t.Errorf("listing: %d groups, %d foreign, root %q, store %q", len(l.Groups), len(l.Foreign), l.Root, l.Store)
	}
	if !slices.IsSortedFunc(l.Groups, func(a, b prune.ListedGroup) int { return strings.Compare(b.ID, a.ID) }) {
		t.Errorf("groups not newest first")
	}

	// Without --json: the table.
	code, stdout, _ = runMain(t, append([]string{"list"}, b.flags()...), b.env)
	if code != app.ExitOK || !strings.Contains(stdout, ids["legacy"]) || !strings.Contains(stdout, "legacy") || json.Valid([]byte(stdout)) {
		t.Errorf("list table: exit %d\n%s", code, stdout)
	}
}
