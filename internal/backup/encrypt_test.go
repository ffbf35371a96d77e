package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/sqlite-backup-action/sqlite-backup-action/internal/backup"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/catalog"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/encryption"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/snapshot"
	"github.com/sqlite-backup-action/sqlite-backup-action/internal/store/fsstore"
)

// keys makes n age identities and the Recipients of all of them.
func keys(t *testing.T, n int) ([]*encryption.Identities, *encryption.Recipients) {
	t.Helper()
	var ids []*encryption.Identities
	var pubs []string
	for range n {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := encryption.ParseIdentities(id.String())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, parsed)
		pubs = append(pubs, id.Recipient().String())
	}
	rs, err := encryption.ParseRecipients(strings.Join(pubs, ","))
	if err != nil {
		t.Fatal(err)
	}
	return ids, rs
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// run backs up dir at now into st.
func run(t *testing.T, st *fsstore.Backend, dir, compression string, now time.Time, rs *encryption.Recipients) *catalog.Manifest {
	t.Helper()
	ctx := context.Background()
	res, err := backup.Run(ctx, backup.Options{
		Store: st, Layout: catalog.Layout{Prefix: "db_backups", Environment: "test"}, Compression: compression,
		TempDir: t.TempDir(), Now: func() time.Time { return now }, SkipUnchanged: true, Recipients: rs,
		Connect: func(context.Context) (backup.Source, error) {
			return snapshot.NewLocal(dir, "*.sqlite3", compression, t.TempDir())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := catalog.ParseManifest(read(t, st, res.ManifestKey))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func read(t *testing.T, st *fsstore.Backend, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncryptedBackup: every object is the compressed snapshot sealed to
// both recipients; each identity alone opens it; every hash in the
// manifest is of what it says.
func TestEncryptedBackup(t *testing.T) {
	for _, tc := range []struct{ compression, ext string }{
		{snapshot.CompressionZstd, ".zst.age"}, {snapshot.CompressionGzip, ".gz.age"}, {"none", ".age"},
	} {
		t.Run(tc.compression, func(t *testing.T) {
			ids, rs := keys(t, 2)
			st, err := fsstore.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			m := run(t, st, makeDBs(t), tc.compression, time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC), rs)
			if !encryption.Equal(m.Recipients, rs.Strings()) || len(m.Recipients) != 2 {
				t.Errorf("manifest recipients %v, want %v", m.Recipients, rs.Strings())
			}
			for _, f := range m.Files {
				if !strings.HasSuffix(f.Key, f.Name+tc.ext) || f.Encryption != catalog.EncryptionAge {
					t.Errorf("%s: key %s, encryption %q", f.Name, f.Key, f.Encryption)
				}
				obj := read(t, st, f.Key)
				if !encryption.IsEncrypted(obj) {
					t.Fatalf("%s: object starts %q, not an age header", f.Name, obj[:min(len(obj), 22)])
				}
				if sum(obj) != f.StoredSHA256 || int64(len(obj)) != f.StoredSize {
					t.Errorf("%s: object %d bytes sha256 %s, manifest stored %d %s", f.Name, len(obj), sum(obj), f.StoredSize, f.StoredSHA256)
				}
				for i, id := range ids {
					r, err := id.Decrypt(bytes.NewReader(obj))
					if err != nil {
						t.Fatalf("%s: identity %d: %v", f.Name, i+1, err)
					}
					compressed, err := io.ReadAll(r)
					if err != nil {
						t.Fatal(err)
					}
					if sum(compressed) != f.CompressedSHA256 || int64(len(compressed)) != f.CompressedSize {
						t.Errorf("%s: plaintext %d bytes sha256 %s, manifest compressed %d %s", f.Name, len(compressed), sum(compressed), f.CompressedSize, f.CompressedSHA256)
					}
					d, err := snapshot.Decompressor(f.Compression, bytes.NewReader(compressed))
					if err != nil {
						t.Fatal(err)
					}
					raw, err := io.ReadAll(d)
					if err != nil || sum(raw) != f.SHA256 {
						t.Errorf("%s: snapshot sha256 %s (%v), manifest %s", f.Name, sum(raw), err, f.SHA256)
					}
				}
			}
		})
	}
}

// TestUnchangedNeedsSameRecipients: an unchanged database's object is
// reused only when this run encrypts exactly as the one that stored it.
func TestUnchangedNeedsSameRecipients(t *testing.T) {
	_, rsA := keys(t, 2)
	_, rsB := keys(t, 1)
	dir := makeDBs(t)
	st, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	steps := []struct {
		name   string
		rs     *encryption.Recipients
		copied bool
	}{
		{"first, encrypted", rsA, false},
		{"same recipients", rsA, true},
		{"other recipients", rsB, false},
		{"not encrypted", nil, false},
		{"encrypted again", rsB, false},
		{"same again", rsB, true},
	}
	var prev string
	for i, s := range steps {
		m := run(t, st, dir, snapshot.CompressionZstd, start.Add(time.Duration(i)*time.Hour), s.rs)
		for _, f := range m.Files {
			if copied := f.CopiedFrom != ""; copied != s.copied || (copied && f.CopiedFrom != prev) {
				t.Errorf("%s: %s copied_from %q, want copied %v", s.name, f.Name, f.CopiedFrom, s.copied)
			}
			if encrypted := f.Encryption != ""; encrypted != (s.rs != nil) || encrypted != strings.HasSuffix(f.Key, ".age") {
				t.Errorf("%s: %s encryption %q, key %s", s.name, f.Name, f.Encryption, f.Key)
			}
			if obj := read(t, st, f.Key); encryption.IsEncrypted(obj) != (s.rs != nil) || sum(obj) != f.StoredSHA256 {
				t.Errorf("%s: %s object does not match its manifest entry", s.name, f.Name)
			}
		}
		prev = m.GroupID
	}
}

// TestEncryptedBackupFaults: the host's hash still guards the compressed
// bytes, and a failed upload leaves nothing.
func TestEncryptedBackupFaults(t *testing.T) {
	_, rs := keys(t, 1)
	for _, tc := range []struct {
		name    string
		report  func(*snapshot.File)
		failKey string
		wantErr string
	}{
		{name: "compressed hash differs", report: func(f *snapshot.File) { f.StoredSHA256 = strings.Repeat("0", 64) }, wantErr: "compressed file changed in transit"},
		{name: "compressed size differs", report: func(f *snapshot.File) { f.StoredSize-- }, wantErr: "longer than the"},
		{name: "upload fails", failKey: "b.sqlite3.zst.age", wantErr: "503 SlowDown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := makeDBs(t)
			fs, err := fsstore.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			failKey := tc.failKey
			if failKey == "" {
				failKey = "\x00" // matches no key
			}
			ctx := context.Background()
			_, err = backup.Run(ctx, backup.Options{
				Store: failingStore{Backend: fs, failKey: failKey}, Layout: catalog.Layout{Prefix: "p", Environment: "test"},
				Compression: snapshot.CompressionZstd, TempDir: t.TempDir(), Recipients: rs,
				Connect: func(context.Context) (backup.Source, error) {
					l, err := snapshot.NewLocal(dir, "*.sqlite3", snapshot.CompressionZstd, t.TempDir())
					return &faultySource{Source: l, report: tc.report}, err
				},
			})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
			if objs, _ := fs.List(ctx, ""); len(objs) != 0 {
				t.Errorf("a failed backup left %d objects", len(objs))
			}
		})
	}
}
