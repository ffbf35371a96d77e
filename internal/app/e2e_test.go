package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/app"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/testutil"
)

func TestMain(m *testing.M) {
	testutil.WriterMain()
	os.Exit(m.Run())
}

const bucket = "backups"

// rig is a host (real sshd) with a Rails storage dir, a real S3 server
// and the flags/env that point the tool at both.
type rig struct {
	sshd    *testutil.SSHD
	s3      *testutil.S3Server
	storage string // the app's storage/ on the "host"
	tmp     string // remote_temp_dir on the "host"
	env     map[string]string
}

func newRig(t testing.TB, rows, pad int) *rig {
	t.Helper()
	r := &rig{
		sshd: testutil.StartSSHD(t, testutil.SSHDOptions{}),
		s3:   testutil.StartS3(t),
	}
	r.s3.CreateBucket(t, bucket)
	r.storage = r.sshd.UserDir(t)
	r.tmp = r.sshd.UserDir(t)
	testutil.MakeRailsStorage(t, r.storage, rows, pad)
	r.env = map[string]string{
		"AWS_ACCESS_KEY_ID":     r.s3.AccessKey,
		"AWS_SECRET_ACCESS_KEY": r.s3.SecretKey,
		"SBA_HELPER_DIR":        helperDir(t),
	}
	return r
}

// flags are the CLI flags of a backup against the rig.
func (r *rig) flags() []string {
	return []string{
		"--ssh-host", r.sshd.Host, "--ssh-port", fmt.Sprint(r.sshd.Port), "--ssh-user", r.sshd.User,
		"--ssh-private-key-path", r.sshd.ClientKeyPath, "--ssh-known-hosts-path", r.sshd.KnownHostsPath,
		"--remote-path", r.storage, "--remote-temp-dir", r.tmp,
		"--bucket", bucket, "--endpoint", r.s3.Endpoint, "--region", r.s3.Region, "--force-path-style",
	}
}

var (
	helperOnce sync.Once
	helperPath string
	helperErr  error
)

// helperDir builds the standalone helper once per test binary.
func helperDir(t testing.TB) string {
	t.Helper()
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sba-helpers-")
		if err != nil {
			helperErr = err
			return
		}
		helperPath = dir
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, snapshot.HelperName("amd64")),
			"github.com/sqlite-backup-action/sqlite-backup-action/cmd/sqlite-backup-helper").CombinedOutput()
		if err != nil {
			helperErr = fmt.Errorf("build helper: %v: %s", err, out)
		}
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	testutil.MakeTraversable(t, helperPath)
	return helperPath
}

func runMain(t *testing.T, args []string, env map[string]string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code = app.Main(ctx, args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

// listKeys lists every key in the bucket.
func listKeys(t testing.TB, s *testutil.S3Server) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys
}

func getObject(t testing.TB, s *testutil.S3Server, key string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := s.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b
}

// checkGroup downloads a whole group, checks it holds exactly the four
// Rails databases and the manifest, that every hash matches, and that
// every database passes integrity_check and the ledger/totals invariant.
func checkGroup(t testing.TB, s *testutil.S3Server, id string) *catalog.Manifest {
	t.Helper()
	return checkGroupWith(t, s, id, nil)
}

// checkGroupWith is checkGroup for a group that may be encrypted: ids
// decrypt its objects (<name>.zst.age) first.
func checkGroupWith(t testing.TB, s *testutil.S3Server, id string, ids *encryption.Identities) *catalog.Manifest {
	t.Helper()
	layout := catalog.Layout{Prefix: "db_backups", Environment: "production"}
	m, err := catalog.ParseManifest(getObject(t, s, layout.ManifestKey(id)))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{layout.ManifestKey(id)}
	for _, name := range testutil.RailsDatabases() {
		ext := ".zst"
		if ids != nil {
			ext += encryption.Ext
		}
		want = append(want, layout.Key(id, name+ext))
	}
	sort.Strings(want)
	var got []string
	for _, k := range listKeys(t, s) {
		if strings.HasPrefix(k, layout.GroupPrefix(id)) {
			got = append(got, k)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("group %s holds\n%s\nwant\n%s", id, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	dir := t.TempDir()
	for _, f := range m.Files {
		stored := getObject(t, s, f.Key)
		if got := sha256hex(stored); got != f.StoredSHA256 || int64(len(stored)) != f.StoredSize {
			t.Errorf("%s: stored sha256 %s (%d bytes), manifest says %s (%d)", f.Name, got, len(stored), f.StoredSHA256, f.StoredSize)
		}
		if ids != nil {
			stored = decrypt(t, ids, f, stored)
		}
		d, err := snapshot.Decompressor(f.Compression, bytes.NewReader(stored))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(d)
		d.Close()
		if err != nil {
			t.Fatalf("%s: decompress: %v", f.Name, err)
		}
		if got := sha256hex(raw); got != f.SHA256 || int64(len(raw)) != f.Size {
			t.Errorf("%s: raw sha256 %s, manifest says %s", f.Name, got, f.SHA256)
		}
		if f.IntegrityCheck != "ok" {
			t.Errorf("%s: manifest integrity_check %q", f.Name, f.IntegrityCheck)
		}
		p := filepath.Join(dir, f.Name)
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := testutil.CheckInvariant(p); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
	}
	return m
}

// decrypt returns the plaintext (the compressed snapshot) of an encrypted
// object, checked against the manifest.
func decrypt(t testing.TB, ids *encryption.Identities, f catalog.File, stored []byte) []byte {
	t.Helper()
	if f.Encryption != catalog.EncryptionAge {
		t.Fatalf("%s: manifest encryption %q, want age", f.Name, f.Encryption)
	}
	r, err := ids.Decrypt(bytes.NewReader(stored))
	if err != nil {
		t.Fatalf("%s: %v", f.Name, err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: decrypt: %v", f.Name, err)
	}
	if got := sha256hex(plain); got != f.CompressedSHA256 || int64(len(plain)) != f.CompressedSize {
		t.Errorf("%s: decrypted sha256 %s (%d bytes), manifest says %s (%d)", f.Name, got, len(plain), f.CompressedSHA256, f.CompressedSize)
	}
	return plain
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// assertNoTempLeft fails if the host's remote_temp_dir still holds anything.
func assertNoTempLeft(t testing.TB, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left on the host in remote_temp_dir: %s", e.Name())
	}
}

func backupIDFrom(t testing.TB, stdout string) string {
	t.Helper()
	for _, line := range strings.Split(stdout, "\n") {
		if rest, ok := strings.CutPrefix(line, "backup "); ok {
			return strings.Fields(rest)[0]
		}
	}
	t.Fatalf("no backup id in output:\n%s", stdout)
	return ""
}
